//! The commit log: a segment replayed by the log's reader, or segments
//! recovered the way `LsmEngine::open` does.
//!
//! The first byte picks the mode: bit 0, the segment is the newest (a torn
//! tail is allowed); bit 1, every record's checksums are fixed first; bit
//! 2, recovery over two segments, split at the offset in the next two
//! bytes (u16 LE), instead of one replay.
//!
//! Laws, for a replay that succeeds: the records it found, encoded again,
//! are the segment's first bytes; an older segment holds only zeros after
//! them; and they replay to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::storage::lsm::fuzz;
use ringkv_fuzz::{fix_log, mode};

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = mode(data);
    let newest = mode & 1 == 1;
    let fix = |segment: &[u8]| {
        let mut segment = segment.to_vec();
        if mode & 2 == 2 {
            fix_log(&mut segment);
        }
        segment
    };
    if mode & 4 == 4 {
        let Some((split, rest)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let split = usize::from(u16::from_le_bytes(*split)).min(rest.len());
        let (older, newer) = rest.split_at(split);
        let _ = fuzz::recover_log(&[&fix(older), &fix(newer)]);
        return;
    }
    let segment = fix(rest);
    if let Ok(records) = fuzz::log_segment(&segment, newest) {
        assert!(segment.starts_with(&records), "records are not canonical");
        if !newest {
            assert!(segment[records.len()..].iter().all(|b| *b == 0));
        }
        let again = fuzz::log_segment(&records, false).expect("encoded records replay");
        assert_eq!(again, records, "records do not replay to themselves");
    }
});
