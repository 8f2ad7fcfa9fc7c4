//! The clock seam (DESIGN.md §8).
//!
//! Node code reads wall time only through [`Clock`], so the same actors run
//! with the system clock in production and with turmoil's simulated time
//! in the deterministic tests. Timers use tokio's clock, which the
//! simulator drives.

use std::rc::Rc;

/// Wall-clock time, for version timestamps and heartbeat ages.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// Shared handle to the clock seam.
pub type SharedClock = Rc<dyn Clock>;

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that follows tokio's (possibly simulated) time from a fixed
/// epoch: deterministic under turmoil or a paused runtime.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    epoch_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `epoch_ms` now.
    pub fn new(epoch_ms: u64) -> Self {
        Self {
            epoch_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64
    }
}
