//! The open-loop schedule of `ringkv bench --rate`: request `i` of the
//! run is due `i / rate` seconds after the measured phase starts, whatever
//! happened to the requests before it, so a slow answer does not slow the
//! load down (no coordinated omission: a closed loop waits for its answers
//! and so stops sending while the system stalls, and never measures the
//! requests it did not send).
//!
//! The workers claim request numbers in order; a worker that claims one
//! before it is due sleeps until then (on tokio's timer, which releases
//! sleepers in whole milliseconds: requests go out in bursts of about
//! `rate / 1000`). A worker that claims one after it was due (every
//! worker was busy: `--concurrency` is the most in flight) sends it at
//! once, and its latency counts from when it was due, the wait included;
//! it is counted late, unless it is the worker's first (the workers start
//! one after the other, see [`latency_start`]).

use std::time::{Duration, Instant};

/// Highest `--rate`, in requests per second.
pub const RATE_MAX: f64 = 10_000_000.0;

/// Requests per second, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(f64);

impl Rate {
    /// `per_s` requests per second: finite, above 0 and at most
    /// [`RATE_MAX`].
    pub fn new(per_s: f64) -> Result<Rate, String> {
        if per_s.is_finite() && per_s > 0.0 && per_s <= RATE_MAX {
            Ok(Rate(per_s))
        } else {
            Err(format!(
                "--rate must be above 0 and at most {RATE_MAX} requests per second, got {per_s}"
            ))
        }
    }

    /// Requests per second.
    pub fn per_s(self) -> f64 {
        self.0
    }

    /// When request `i` is due, from the start of the measured phase.
    pub fn due(self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.0)
    }
}

/// Where a request's latency starts, and whether it counts as late:
/// claimed after it was `due`, its latency counts from `due`; claimed in
/// time, from when it was `sent` (the timer's rounding is the load
/// generator's, not the system's). Late means every worker was busy, the
/// system behind the schedule; but a worker's `first` request is claimed
/// as the workers start, one after the other, and the first ones come
/// due before the last worker has started (about a millisecond of
/// requests at 1,024 workers: 14-17 at 16,500/s however long the run),
/// so those count from `due` without being counted late.
pub fn latency_start(
    due: Instant,
    claimed: Instant,
    sent: Instant,
    first: bool,
) -> (Instant, bool) {
    if claimed > due {
        (due, !first)
    } else {
        (sent, false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_due_evenly_from_the_start() {
        let rate = Rate::new(4_000.0).unwrap();
        assert_eq!(rate.due(0), Duration::ZERO);
        assert_eq!(rate.due(1), Duration::from_micros(250));
        assert_eq!(rate.due(4_000), Duration::from_secs(1));
        // Far into a long run the schedule has not drifted.
        let rate = Rate::new(30_000.0).unwrap();
        let day = 30_000 * 86_400;
        assert_eq!(rate.due(day).as_millis(), 86_400_000);
    }

    #[test]
    fn bad_rates_are_refused_with_the_flag_named() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, RATE_MAX * 2.0] {
            let e = Rate::new(bad).unwrap_err();
            assert!(e.contains("--rate"), "{bad}: {e}");
        }
        assert_eq!(Rate::new(RATE_MAX).unwrap().per_s(), RATE_MAX);
        assert_eq!(Rate::new(0.5).unwrap().due(1), Duration::from_secs(2));
    }

    #[test]
    fn a_late_request_counts_from_when_it_was_due_an_early_one_from_its_send() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // Claimed before it was due, sent at the timer's next tick.
        assert_eq!(latency_start(ms(5), ms(3), ms(6), false), (ms(6), false));
        // Claimed exactly when due.
        assert_eq!(latency_start(ms(5), ms(5), ms(5), false), (ms(5), false));
        // Every worker was busy until 9 ms: the 4 ms of waiting count.
        assert_eq!(latency_start(ms(5), ms(9), ms(9), false), (ms(5), true));
        // A worker's first request, claimed as the workers start: from
        // when it was due as well, but not late.
        assert_eq!(latency_start(ms(5), ms(9), ms(9), true), (ms(5), false));
    }
}
