//! The clock seam (DESIGN.md §8).
//!
//! Node code reads time only through [`Clock`], so the same actors run
//! with the system clock in production and with turmoil's simulated time
//! in the deterministic tests. Timers use tokio's clock, which the
//! simulator drives.
//!
//! A clock has two readings, for two different questions:
//!
//! - [`Clock::now_ms`], wall time, answers "when": version timestamps
//!   stored in objects and compared across nodes, and the gossip
//!   generation, which must grow across restarts of the process. NTP or an
//!   operator may step it, backwards as well as forwards.
//! - [`Clock::monotonic_ms`] answers "how long since": heartbeat ages,
//!   suspicion timers, settle times, deadlines. It never goes back and
//!   does not jump when the wall clock is stepped, so a step neither hides
//!   a dead node (its age stops growing) nor makes every live one look
//!   stale at once. Its origin is arbitrary: readings mean something only
//!   compared with other readings of the same clock, in the same process.

use std::rc::Rc;

/// The node's two time sources: wall time for timestamps, monotonic time
/// for elapsed time.
pub trait Clock {
    /// Wall-clock milliseconds since the Unix epoch. May step (NTP,
    /// `date -s`): use it only for timestamps, never to measure an
    /// interval.
    fn now_ms(&self) -> u64;

    /// Milliseconds since an arbitrary start (fixed for this clock),
    /// never going back and unaffected by wall-clock steps: what every
    /// timer, age and deadline measures.
    fn monotonic_ms(&self) -> u64;
}

/// Shared handle to the clock seam.
pub type SharedClock = Rc<dyn Clock>;

/// The system clock: `SystemTime` for the wall reading,
/// `std::time::Instant` (`CLOCK_MONOTONIC` on Linux) for the monotonic one.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    /// The origin of [`Clock::monotonic_ms`]: when this clock was made.
    start: std::time::Instant,
}

impl SystemClock {
    /// A system clock whose monotonic reading starts at 0 now.
    pub fn new() -> Self {
        Self {
            start: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn monotonic_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// A clock that follows tokio's (possibly simulated) time: wall time from
/// a fixed epoch, monotonic time from its creation. Deterministic under
/// turmoil or a paused runtime.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    /// The wall reading at `start`, in ms since the Unix epoch.
    epoch_ms: u64,
    /// When the clock was made; both readings count from here.
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `epoch_ms` (wall) and 0 (monotonic) now.
    pub fn new(epoch_ms: u64) -> Self {
        Self {
            epoch_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.monotonic_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_starts_its_monotonic_reading_near_zero() {
        let clock = SystemClock::new();
        let first = clock.monotonic_ms();
        assert!(first < 1_000, "{first}");
        assert!(clock.monotonic_ms() >= first);
        assert!(clock.now_ms() > 1_600_000_000_000, "wall time is epoch ms");
    }

    #[tokio::test]
    async fn the_tokio_clock_counts_both_readings_from_its_creation() {
        let clock = TokioClock::new(5_000);
        let (wall, monotonic) = (clock.now_ms(), clock.monotonic_ms());
        assert!(
            monotonic < 1_000 && wall >= 5_000 + monotonic,
            "{wall} {monotonic}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let monotonic = clock.monotonic_ms();
        assert!(monotonic >= 20, "{monotonic}");
        assert!(clock.now_ms() >= 5_000 + monotonic);
    }
}
