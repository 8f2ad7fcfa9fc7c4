//! The event loop's lag, sampled: every actor of a node runs on one
//! thread, so a handler that runs long, a burst of work or a VM pause
//! delays every request that arrives meanwhile. A probe on that thread
//! sleeps [`EVENT_LOOP_PROBE_INTERVAL_MS`] at a time and records how late
//! it woke (`ringkv_event_loop_lag_seconds`); a lag of at least
//! [`EVENT_LOOP_LAG_WARN_MS`] is also logged. A tail in the request
//! latencies that shows here too is the node's own (or its machine's);
//! one that does not lies elsewhere (disk, network, other nodes).
//!
//! tokio's timer fires on whole milliseconds, so a lag up to about 1 ms is
//! its rounding (an idle node shows it too). The probe samples: a stall
//! between two wake-ups that is over before the next one goes unseen, so
//! the histogram estimates the share of time the loop is late by each
//! amount, not every stall. Twenty wake-ups a second cost nothing
//! measurable (a lone put's p50 and CPU unchanged), where a probe every
//! millisecond would keep an idle node's CPU awake.

use std::time::{Duration, Instant};

use ringkv_actors::metrics::Metrics;
use tracing::warn;

/// How often the probe sleeps and checks, in milliseconds.
pub const EVENT_LOOP_PROBE_INTERVAL_MS: u64 = 50;
/// A lag at least this long is logged (a warning), in milliseconds.
pub const EVENT_LOOP_LAG_WARN_MS: u64 = 500;

/// How late a sleep of `interval` that started at `slept` and ended at
/// `woke` was.
pub fn lag(slept: Instant, woke: Instant, interval: Duration) -> Duration {
    woke.saturating_duration_since(slept)
        .saturating_sub(interval)
}

/// Runs the probe on the current thread's event loop until the runtime
/// stops: one sample into `metrics` per `interval`, a warning for each
/// lag of `warn_after` or more.
pub async fn probe(metrics: Metrics, node: String, interval: Duration, warn_after: Duration) {
    loop {
        let slept = Instant::now();
        tokio::time::sleep(interval).await;
        let late = lag(slept, Instant::now(), interval);
        metrics.event_loop_lag(late);
        if late >= warn_after {
            warn!(
                node = %node,
                actor = "node",
                lag_ms = late.as_millis() as u64,
                limit_ms = warn_after.as_millis() as u64,
                "the event loop ran late: every request that arrived meanwhile waited"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_time_past_the_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(lag(t0, t0 + ms(12), ms(10)), ms(2));
        assert_eq!(lag(t0, t0 + ms(10), ms(10)), ms(0));
        // Woken early (never, with tokio's timer; but never negative).
        assert_eq!(lag(t0, t0 + ms(3), ms(10)), ms(0));
    }

    /// The sum of the lag samples in `metrics`' text, in seconds.
    fn lag_sum(metrics: &Metrics) -> f64 {
        let text = metrics.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("ringkv_event_loop_lag_seconds_sum"))
            .unwrap();
        line.split_whitespace().last().unwrap().parse().unwrap()
    }

    #[test]
    fn a_blocked_event_loop_shows_as_lag() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let metrics = Metrics::default();
        runtime.block_on(async {
            let probe = tokio::spawn(probe(
                metrics.clone(),
                "n1".into(),
                Duration::from_millis(10),
                Duration::from_secs(60),
            ));
            // Let the probe start its first sleep, then hold the thread
            // for 80 ms as a long handler would: the sleep cannot end
            // before the thread is free, at least 70 ms late.
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(80));
            tokio::time::sleep(Duration::from_millis(30)).await;
            probe.abort();
        });
        let sum = lag_sum(&metrics);
        assert!(sum >= 0.070, "lag recorded: {sum} s");
    }
}
