//! Transparent huge pages off for the whole process.
//!
//! mimalloc asks the kernel for transparent huge pages on its arenas
//! (`madvise(MADV_HUGEPAGE)`), so the first touch of a fresh 2 MiB stretch
//! faults in a whole huge page, which the kernel zeroes there and then, on
//! whichever thread touched it: the storage writer in the middle of a group,
//! or the event loop in the middle of a turn. On this project's 2-core VMs
//! one such fault held a writer group of 180 puts for 20 ms (`perf record`
//! of the writer: `clear_page_erms` under `do_huge_pmd_anonymous_page`, 163
//! of the window's 176 samples), and every request queued behind it waited
//! as long. With `PR_SET_THP_DISABLE` pages come 4 KiB at a time: an open
//! loop of puts at 15 k/s on three nodes went from p99.9 156-194 ms to
//! 17-30 ms, and CPU per put at 128 in flight from 50-55 to 45-48 µs, with
//! gets unchanged (benches/README.md, "Session 18").
//!
//! The flag is the process's (`prctl(2)`: every thread, and kept across
//! `fork` and `execve`, so `ringkv dev`'s nodes start with it too). Every
//! `ringkv` command sets it first thing in `main`; `ringkv node` logs the
//! outcome once its logging is up.

use std::io;

/// Turns transparent huge pages off for this process (and the processes
/// it starts). An error means the kernel refused or the platform has no
/// such switch; the process works the same either way, only with the
/// latency spikes described above.
pub fn turn_off() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::disable_transparent_huge_pages(true).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no PR_SET_THP_DISABLE on this platform",
        ))
    }
}

/// The node's log line about [`turn_off`]'s outcome.
pub fn log_outcome(node: &impl std::fmt::Display, outcome: &io::Result<()>) {
    match outcome {
        Ok(()) => tracing::info!(
            node = %node, actor = "node",
            "transparent huge pages off for this process (PR_SET_THP_DISABLE): no 2 MiB page zeroed inside a request"
        ),
        Err(e) => tracing::warn!(
            node = %node, actor = "node", error = %e,
            "could not turn transparent huge pages off; a request that faults one in waits for the kernel to zero 2 MiB"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn turning_them_off_sticks_for_the_process() {
        let are_off = || rustix::thread::transparent_huge_pages_are_disabled().unwrap();
        turn_off().unwrap();
        assert!(are_off());
        // The flag is the process's, not the calling thread's.
        assert!(std::thread::spawn(are_off).join().unwrap());
    }
}
