//! A deterministic, round-based simulation of many [`Gossip`] nodes: one
//! seeded `SmallRng`, every node ticks once per round, messages arrive at
//! the end of the round unless a fault drops them. Each node's clock has its
//! own large offset, so any comparison of clocks across nodes would show.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::tests::{id_of, info, options};
use super::*;

/// Round length, as `tests::options()` has it.
const ROUND_MS: u64 = 1_000;
/// Rounds before an unheard member is suspected (`suspect_after_ms / ROUND_MS`).
const SUSPECT_ROUNDS: u64 = 5;

struct Sim {
    nodes: Vec<Gossip>,
    ids: Vec<NodeId>,
    clock_offsets_ms: Vec<u64>,
    rng: SmallRng,
    now_ms: u64,
    /// `(from, to)`: messages from `from` never reach `to`.
    blocked: HashSet<(usize, usize)>,
    /// `(observer, member)`: entries about `member` are cut from every
    /// message `observer` receives.
    blind: HashSet<(usize, usize)>,
    /// Every change so far: `(round, observer, change)`.
    history: Vec<(u64, usize, StateChange)>,
    round: u64,
}

impl Sim {
    /// `n` nodes with `tests::options()`; `knows(i)` lists the nodes node `i`
    /// is introduced to.
    fn new(n: usize, seed: u64, knows: impl Fn(usize) -> Vec<usize>) -> Self {
        Self::with_options(n, seed, options(), knows)
    }

    /// `n` nodes with `options`.
    fn with_options(
        n: usize,
        seed: u64,
        options: GossipOptions,
        knows: impl Fn(usize) -> Vec<usize>,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let ids: Vec<NodeId> = (0..n).map(|i| id_of(&format!("n{i:03}"))).collect();
        let clock_offsets_ms: Vec<u64> = (0..n).map(|_| rng.gen_range(0..1_000_000_000)).collect();
        let mut nodes: Vec<Gossip> = (0..n)
            .map(|i| {
                let own = info(ids[i].as_str());
                Gossip::new(
                    own,
                    Vec::new(),
                    clock_offsets_ms[i],
                    clock_offsets_ms[i],
                    options.clone(),
                )
            })
            .collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            for j in knows(i) {
                node.introduce(info(ids[j].as_str()), clock_offsets_ms[i]);
            }
        }
        Self {
            nodes,
            ids,
            clock_offsets_ms,
            rng,
            now_ms: 0,
            blocked: HashSet::new(),
            blind: HashSet::new(),
            history: Vec::new(),
            round: 0,
        }
    }

    fn clock(&self, i: usize) -> u64 {
        self.now_ms + self.clock_offsets_ms[i]
    }

    fn index(&self, id: &NodeId) -> usize {
        self.ids.iter().position(|x| x == id).unwrap()
    }

    fn run_round(&mut self) {
        self.round += 1;
        self.now_ms += ROUND_MS;
        let mut outbox = Vec::new();
        for i in 0..self.nodes.len() {
            let now_ms = self.clock(i);
            let tick = self.nodes[i].tick(now_ms, &mut self.rng);
            let round = self.round;
            self.history
                .extend(tick.changes.into_iter().map(|c| (round, i, c)));
            for target in tick.targets {
                outbox.push((i, self.index(&target.id), tick.message.clone()));
            }
        }
        for (from, to, mut message) in outbox {
            if self.blocked.contains(&(from, to)) {
                continue;
            }
            let blind = &self.blind;
            let ids = &self.ids;
            message.members.retain(|e| {
                !blind.contains(&(to, ids.iter().position(|x| *x == e.info.id).unwrap()))
            });
            let now_ms = self.clock(to);
            let changes = self.nodes[to].receive(&self.ids[from], message, now_ms);
            let round = self.round;
            self.history
                .extend(changes.into_iter().map(|c| (round, to, c)));
        }
    }

    fn state(&self, observer: usize, member: usize) -> Option<MemberState> {
        self.nodes[observer].state_of(&self.ids[member])
    }

    fn all_see(
        &self,
        member: usize,
        observers: impl Iterator<Item = usize>,
        state: MemberState,
    ) -> bool {
        observers
            .into_iter()
            .all(|o| self.state(o, member) == Some(state))
    }

    fn all_see_all_alive(&self) -> bool {
        let n = self.nodes.len();
        (0..n).all(|m| self.all_see(m, 0..n, MemberState::Alive))
    }

    /// Runs rounds until `done` holds; returns how many it took (None if
    /// not within `limit`).
    fn rounds_until(&mut self, limit: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
        let start = self.round;
        while self.round - start < limit {
            self.run_round();
            if done(self) {
                return Some(self.round - start);
            }
        }
        None
    }

    fn ever_down(&self, member: usize) -> Vec<(u64, usize, StateChange)> {
        let id = &self.ids[member];
        let downs = self
            .history
            .iter()
            .filter(|(_, _, c)| &c.node == id && c.to == MemberState::Down);
        downs.cloned().collect()
    }

    fn partition(&mut self, node: usize, cut: bool) {
        for other in 0..self.nodes.len() {
            for link in [(node, other), (other, node)] {
                if cut {
                    self.blocked.insert(link);
                } else {
                    self.blocked.remove(&link);
                }
            }
        }
    }
}

fn everyone(n: usize) -> impl Fn(usize) -> Vec<usize> {
    move |i| (0..n).filter(|&j| j != i).collect()
}

#[test]
fn partitioned_node_goes_down_everywhere_and_comes_back_when_healed() {
    for seed in 1..=5 {
        let mut sim = Sim::new(5, seed, everyone(5));
        let warm = sim.rounds_until(10, Sim::all_see_all_alive);
        assert!(warm.is_some(), "seed {seed}: no warm-up");
        sim.partition(4, true);
        let down_bound = SUSPECT_ROUNDS + 3;
        let down = sim.rounds_until(down_bound, |s| s.all_see(4, 0..4, MemberState::Down));
        println!("seed {seed}: warm-up {warm:?} rounds, partitioned node down everywhere after {down:?} rounds");
        assert!(
            down.is_some(),
            "seed {seed}: not down within {down_bound} rounds"
        );
        // The isolated node hears nobody, so it suspects all but takes none down.
        for _ in 0..10 {
            sim.run_round();
        }
        assert!(sim.all_see(4, 0..4, MemberState::Down));
        for other in 0..4 {
            assert_eq!(
                sim.state(4, other),
                Some(MemberState::Suspect),
                "seed {seed}"
            );
            assert!(
                sim.ever_down(other).is_empty(),
                "seed {seed}: {other} went down"
            );
        }
        sim.partition(4, false);
        let healed = sim.rounds_until(5, Sim::all_see_all_alive);
        println!("seed {seed}: healed after {healed:?} rounds");
        assert!(healed.is_some(), "seed {seed}: not healed within 5 rounds");
    }
}

#[test]
fn one_way_link_loss_does_not_take_a_member_down() {
    for seed in 1..=5 {
        let mut sim = Sim::new(5, seed, everyone(5));
        assert!(sim.rounds_until(10, Sim::all_see_all_alive).is_some());
        // Node 0 never hears node 1 directly; the others still do.
        sim.blocked.insert((1, 0));
        for _ in 0..60 {
            sim.run_round();
        }
        assert!(
            sim.ever_down(1).is_empty(),
            "seed {seed}: {:?}",
            sim.ever_down(1)
        );
        assert!(sim.all_see_all_alive(), "seed {seed}");
    }
}

#[test]
fn a_node_blind_to_a_peer_suspects_it_but_never_takes_it_down() {
    for seed in 1..=5 {
        let mut sim = Sim::new(5, seed, everyone(5));
        assert!(sim.rounds_until(10, Sim::all_see_all_alive).is_some());
        // Node 0 hears nothing from or about node 1: its own source says
        // stale, nobody else agrees.
        sim.blocked.insert((1, 0));
        sim.blind.insert((0, 1));
        for _ in 0..60 {
            sim.run_round();
        }
        assert_eq!(sim.state(0, 1), Some(MemberState::Suspect), "seed {seed}");
        assert!(
            sim.ever_down(1).is_empty(),
            "seed {seed}: {:?}",
            sim.ever_down(1)
        );
        assert!(sim.all_see(1, 1..5, MemberState::Alive), "seed {seed}");
    }
}

/// What a ring-of-seeds run measured.
struct Convergence {
    /// Rounds until every node first saw every member alive.
    rounds: u64,
    /// `Alive -> Suspect` changes in the `STEADY_ROUNDS` after that.
    false_suspicions: usize,
}

/// The convergence runs measure dissemination, not detection: with the
/// default 5-round timeout, 128 nodes keep suspecting live members (see
/// `false_suspicions_by_timeout`) and "all alive at once" comes late or never.
const CONVERGENCE_SUSPECT_ROUNDS: u64 = 20;

/// Rounds watched after convergence for false suspicions.
const STEADY_ROUNDS: u64 = 20;

/// Runs `n` nodes that each know only their successor until every node sees
/// every member alive, then `STEADY_ROUNDS` more; no member may go `Down`.
fn ring_convergence(n: usize, seed: u64) -> Option<Convergence> {
    let options = GossipOptions {
        suspect_after_ms: CONVERGENCE_SUSPECT_ROUNDS * ROUND_MS,
        ..GossipOptions::default()
    };
    let mut sim = Sim::with_options(n, seed, options, move |i| vec![(i + 1) % n]);
    let rounds = sim.rounds_until(200, Sim::all_see_all_alive)?;
    let converged = sim.round;
    for _ in 0..STEADY_ROUNDS {
        sim.run_round();
    }
    let after = |h: &&(u64, usize, StateChange)| h.0 > converged;
    let downs: Vec<_> = sim
        .history
        .iter()
        .filter(after)
        .filter(|h| h.2.to == MemberState::Down)
        .collect();
    assert!(
        downs.is_empty(),
        "n {n} seed {seed}: live members went down: {downs:?}"
    );
    let suspicions = sim
        .history
        .iter()
        .filter(after)
        .filter(|h| h.2.to == MemberState::Suspect);
    Some(Convergence {
        rounds,
        false_suspicions: suspicions.count(),
    })
}

#[test]
fn ring_of_seeds_converges_in_logarithmic_rounds() {
    const SEEDS: u64 = 10;
    for n in [8usize, 32, 128] {
        let bound = 4 * (n as f64).log2().ceil() as u64 + 10;
        let mut measured = Vec::new();
        let mut suspicions = Vec::new();
        for seed in 1..=SEEDS {
            let run = ring_convergence(n, seed);
            let rounds = run.as_ref().map(|r| r.rounds);
            assert!(
                rounds.is_some_and(|r| r <= bound),
                "n {n} seed {seed}: {rounds:?} > {bound}"
            );
            measured.extend(rounds);
            suspicions.extend(run.map(|r| r.false_suspicions));
        }
        let max = measured.iter().max().unwrap();
        let mean = measured.iter().sum::<u64>() as f64 / measured.len() as f64;
        println!(
            "gossip convergence n={n}: seeds 1..={SEEDS}, rounds {measured:?}, mean {mean:.1}, \
             max {max}, bound {bound}; false suspicions in the next {STEADY_ROUNDS} rounds \
             {suspicions:?}"
        );
    }
}

/// Counts `Suspect` and `Down` verdicts on live members in a healthy,
/// fully introduced cluster, by cluster size and `suspect_after_ms`.
#[test]
fn false_suspicions_by_timeout() {
    const WARM_ROUNDS: u64 = 20;
    const WATCHED_ROUNDS: u64 = 50;
    for n in [32usize, 128] {
        for suspect_rounds in [5u64, 10, 20] {
            let options = GossipOptions {
                suspect_after_ms: suspect_rounds * ROUND_MS,
                ..GossipOptions::default()
            };
            let mut sim = Sim::with_options(n, 1, options, everyone(n));
            for _ in 0..WARM_ROUNDS + WATCHED_ROUNDS {
                sim.run_round();
            }
            let watched = sim.history.iter().filter(|h| h.0 > WARM_ROUNDS);
            let (mut suspects, mut downs) = (0, 0);
            for (_, _, change) in watched {
                suspects += usize::from(change.to == MemberState::Suspect);
                downs += usize::from(change.to == MemberState::Down);
            }
            println!(
                "gossip false verdicts n={n} suspect_after={suspect_rounds} rounds: \
                 {suspects} suspect, {downs} down in {WATCHED_ROUNDS} rounds"
            );
            if suspect_rounds >= 10 {
                assert_eq!(downs, 0, "n {n} suspect_after {suspect_rounds} rounds");
            }
        }
    }
}
