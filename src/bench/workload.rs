//! The workload of `ringkv bench`, as pure functions of a random source:
//! which operation comes next (`--read-ratio`, `--delete-ratio`), which key it touches
//! (`--distribution uniform|zipfian` over `--keys`), and the key's name.
//!
//! The zipfian generator is the one YCSB uses (Gray et al., "Quickly
//! generating billion-record synthetic databases", SIGMOD 1994): `theta`
//! is YCSB's `zipfian constant` (0.99 by default), rank 0 is the hottest
//! key, and one draw costs two `powf`s after an O(keys) set-up.

use rand::Rng;

/// Most keys a run can address (`--keys`): the zipfian set-up sums one
/// term per key (about a second at this size).
pub const KEYS_MAX: u64 = 100_000_000;

/// How keys are drawn from `0..keys`.
#[derive(Clone, Debug)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform {
        /// Size of the key space.
        keys: u64,
    },
    /// Zipfian: key `i` drawn with probability proportional to
    /// `1 / (i + 1)^theta`.
    Zipfian(Zipfian),
}

impl KeyDist {
    /// Size of the key space.
    pub fn keys(&self) -> u64 {
        match self {
            KeyDist::Uniform { keys } => *keys,
            KeyDist::Zipfian(z) => z.items,
        }
    }

    /// Draws one key index in `0..keys`.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        match self {
            KeyDist::Uniform { keys } => rng.gen_range(0..*keys),
            KeyDist::Zipfian(z) => z.rank(rng.gen::<f64>()),
        }
    }
}

/// YCSB's zipfian generator over `0..items`.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// A generator over `items` keys with skew `theta` (0 < theta < 1;
    /// the formula divides by `1 - theta`).
    pub fn new(items: u64, theta: f64) -> Result<Zipfian, String> {
        if items == 0 || items > KEYS_MAX {
            return Err(format!("--keys must be in 1..={KEYS_MAX}, got {items}"));
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!(
                "--zipf-theta must be in (0, 1) exclusive (YCSB's zipfian constant), got {theta}"
            ));
        }
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2.min(items), theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Ok(Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        })
    }

    /// The rank (key index) for one uniform draw `u` in `[0, 1)`. With one
    /// or two items `eta` is undefined (0/0), but the first two branches
    /// catch every draw then.
    pub fn rank(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let rank = self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (rank as u64).min(self.items - 1)
    }
}

/// `sum_{i=1..=n} 1 / i^theta`.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// A key a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// Index `i` of the key space.
    Space(u64),
    /// The `i`-th fresh key of the run (`--fresh-puts`): written once,
    /// never read.
    Fresh(u64),
}

/// One request of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Read a key of the key space.
    Get(u64),
    /// Write a key.
    Put(KeyRef),
    /// Delete a key of the key space.
    Delete(u64),
}

/// The workload: the operation mix and the key distribution.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Share of gets, `0.0..=1.0`.
    pub read_ratio: f64,
    /// Share of deletes; `read_ratio + delete_ratio <= 1`, the rest are puts.
    pub delete_ratio: f64,
    /// Which keys reads and (unless `fresh_puts`) writes touch.
    pub dist: KeyDist,
    /// Puts write a new key each instead of a key of the key space.
    pub fresh_puts: bool,
}

impl Workload {
    /// The next request; `fresh` numbers fresh keys (a shared counter).
    pub fn next(&self, rng: &mut impl Rng, fresh: impl FnOnce() -> u64) -> Step {
        // `gen::<f64>()` is in [0, 1): a ratio of 1.0 reads always, 0.0 never.
        let u = rng.gen::<f64>();
        if u < self.read_ratio {
            Step::Get(self.dist.pick(rng))
        } else if u < self.read_ratio + self.delete_ratio {
            Step::Delete(self.dist.pick(rng))
        } else if self.fresh_puts {
            Step::Put(KeyRef::Fresh(fresh()))
        } else {
            Step::Put(KeyRef::Space(self.dist.pick(rng)))
        }
    }
}

/// The key's bytes: under a per-run prefix, so runs never touch each
/// other's keys; the key space and the fresh keys are apart.
pub fn key_name(run: u64, key: KeyRef) -> String {
    match key {
        KeyRef::Space(i) => format!("bench:{run}:k{i:012}"),
        KeyRef::Fresh(i) => format!("bench:{run}:f{i:012}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn counts(dist: &KeyDist, draws: usize) -> Vec<u64> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u64; dist.keys() as usize];
        for _ in 0..draws {
            counts[dist.pick(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn zipfian_is_skewed_towards_low_ranks_and_stays_in_range() {
        let dist = KeyDist::Zipfian(Zipfian::new(1000, 0.99).unwrap());
        let c = counts(&dist, 200_000);
        // Rank 0 is the hottest, then rank 1; both far above the mean.
        assert!(c[0] > c[1] && c[1] > c[10], "{:?}", &c[..12]);
        assert!(c[0] > 20 * (200_000 / 1000), "rank 0 drew {}", c[0]);
        // The top 10% of keys take most of the draws (about 70% at 0.99).
        let top: u64 = c[..100].iter().sum();
        assert!(top > 200_000 / 2, "top 100 keys drew {top}");
        // Every draw was in range (indexing would have panicked), and the
        // tail is reached.
        assert!(c[500..].iter().sum::<u64>() > 0);
    }

    #[test]
    fn zipfian_frequency_follows_the_power_law() {
        // P(rank 0) / P(rank 1) = 2^theta for a zipfian (the two exact
        // branches of the generator).
        let z = Zipfian::new(10_000, 0.5).unwrap();
        let dist = KeyDist::Zipfian(z);
        let c = counts(&dist, 400_000);
        let ratio = c[0] as f64 / c[1] as f64;
        assert!((ratio - 2f64.powf(0.5)).abs() < 0.1, "ratio {ratio}");
    }

    #[test]
    fn zipfian_with_one_or_two_keys_stays_in_range() {
        for items in [1, 2] {
            let z = Zipfian::new(items, 0.99).unwrap();
            for u in [0.0, 0.3, 0.5, 0.999_999] {
                assert!(z.rank(u) < items, "items {items} u {u}");
            }
        }
    }

    #[test]
    fn zipfian_rejects_bad_parameters() {
        assert!(Zipfian::new(0, 0.99).is_err());
        assert!(Zipfian::new(10, 1.0).is_err());
        assert!(Zipfian::new(10, 0.0).is_err());
        assert!(Zipfian::new(10, f64::NAN).is_err());
        assert!(Zipfian::new(KEYS_MAX + 1, 0.5).is_err());
    }

    #[test]
    fn uniform_covers_every_key_evenly() {
        let dist = KeyDist::Uniform { keys: 10 };
        let c = counts(&dist, 100_000);
        assert!(c.iter().all(|&n| (9_000..11_000).contains(&n)), "{c:?}");
    }

    #[test]
    fn read_ratio_sets_the_mix() {
        let w = Workload {
            read_ratio: 0.3,
            delete_ratio: 0.1,
            dist: KeyDist::Uniform { keys: 100 },
            fresh_puts: false,
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let steps: Vec<Step> = (0..100_000).map(|_| w.next(&mut rng, || 0)).collect();
        let count = |f: fn(&Step) -> bool| steps.iter().filter(|s| f(s)).count();
        let gets = count(|s| matches!(s, Step::Get(_)));
        let deletes = count(|s| matches!(s, Step::Delete(_)));
        assert!((29_000..31_000).contains(&gets), "{gets} gets");
        assert!((9_000..11_000).contains(&deletes), "{deletes} deletes");
        let w = Workload {
            delete_ratio: 0.0,
            ..w
        };
        for (ratio, want_get) in [(0.0, false), (1.0, true)] {
            let w = Workload {
                read_ratio: ratio,
                ..w.clone()
            };
            assert!((0..1000).all(|_| matches!(w.next(&mut rng, || 0), Step::Get(_)) == want_get));
        }
    }

    #[test]
    fn fresh_puts_number_new_keys_and_reads_stay_in_the_space() {
        let w = Workload {
            read_ratio: 0.5,
            delete_ratio: 0.0,
            dist: KeyDist::Uniform { keys: 5 },
            fresh_puts: true,
        };
        let mut rng = SmallRng::seed_from_u64(3);
        let mut next_fresh = 0;
        for _ in 0..1000 {
            match w.next(&mut rng, || {
                next_fresh += 1;
                next_fresh - 1
            }) {
                Step::Get(i) => assert!(i < 5),
                Step::Put(KeyRef::Fresh(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(next_fresh > 400);
    }

    #[test]
    fn key_names_are_per_run_and_apart() {
        assert_eq!(key_name(9, KeyRef::Space(42)), "bench:9:k000000000042");
        assert_ne!(key_name(9, KeyRef::Space(1)), key_name(9, KeyRef::Fresh(1)));
        assert_ne!(
            key_name(9, KeyRef::Space(1)),
            key_name(10, KeyRef::Space(1))
        );
    }
}
