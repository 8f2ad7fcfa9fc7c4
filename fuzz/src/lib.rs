//! The fuzz harness, shared by the fuzz targets (`fuzz_targets/`), the
//! seed corpus generator (`examples/seed_corpus/`) and the corpus
//! regression test of the root package (`tests/fuzz_corpus.rs`, which
//! compiles `harness.rs` and `targets.rs` itself).
//!
//! - `harness`: framing, the mode byte, the on-disk format encoders and
//!   checksum fixers;
//! - `targets`: what each fuzz target does with one input (the decoders it
//!   runs and the laws it checks); `fuzz_targets/<name>.rs` only calls
//!   `targets::<name>`.
//!
//! Over-allocation: under `cargo fuzz` (`cfg(fuzzing)`) the global
//! allocator aborts the process on any single allocation larger than
//! [`ALLOCATION_BYTES_MAX`], which libFuzzer reports as a crash and keeps
//! the input. This works without a sanitizer (libFuzzer's own
//! `-malloc_limit_mb` needs ASan's malloc hooks, and ASan runs the
//! targets several times slower); `-rss_limit_mb` still bounds the total.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

pub mod harness;
pub mod targets;

pub use harness::*;

/// The largest single allocation a fuzz target may make. The inputs are a
/// few KB (`-max_len`); the largest legitimate buffers are a frame of
/// `MAX_FRAME_BYTES_DEFAULT` (4 MB, reserved when a frame header claims
/// it) and a block LZ4 may expand to, so anything past 32 MB is an
/// allocation sized by a length read from the input, not by the input.
pub const ALLOCATION_BYTES_MAX: usize = 32 << 20;

/// The system allocator, refusing allocations over
/// [`ALLOCATION_BYTES_MAX`] by aborting (so libFuzzer records the input).
pub struct GuardedAllocator;

impl GuardedAllocator {
    fn check(size: usize) {
        if size > ALLOCATION_BYTES_MAX {
            // No formatting: it could allocate.
            let _ = std::io::stderr().write_all(
                b"==ringkv-fuzz== allocation over ALLOCATION_BYTES_MAX: over-allocation\n",
            );
            std::process::abort();
        }
    }
}

// SAFETY: every call is passed to `System` unchanged; the guard only looks
// at the requested size first.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[cfg(fuzzing)]
#[global_allocator]
static ALLOCATOR: GuardedAllocator = GuardedAllocator;
