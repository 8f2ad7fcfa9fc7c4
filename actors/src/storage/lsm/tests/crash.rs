//! Crashes at every step of a flush and of a compaction, log cuts at every
//! byte offset, and power cuts under concurrent writers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::*;
use crate::storage::lsm::vfs::fault::UnsyncedTail;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Writes `rounds` batches of overwrites and deletes; returns the model.
fn fill(engine: &LsmEngine, rounds: u32, model: &mut Model) {
    for round in 0..rounds {
        let mut batch = Vec::new();
        for i in 0..8u32 {
            let key = format!("key{:03}", (i * 13 + round * 5) % 60);
            batch.push(put(key.as_bytes(), format!("r{round}i{i}").as_bytes()));
        }
        batch.push(delete(format!("key{:03}", (round * 7) % 60).as_bytes()));
        engine.write_batch(&batch).unwrap();
        apply(model, &batch);
    }
}

/// Runs `step` with the file system crashing after `k` mutations, for every
/// `k` until `step` completes without reaching the crash point; after each
/// crash, a power cut (with torn tails) and a reopen must give the model.
fn crash_everywhere(prepare: impl Fn(&LsmEngine, &mut Model), step: impl Fn(&LsmEngine)) {
    let options = LsmOptions {
        memtable_bytes_max: 1 << 20,
        ..small_options()
    };
    for crash_point in 0.. {
        let vfs = FaultVfs::new();
        let mut model = Model::new();
        let engine = open(&vfs, options.clone()).unwrap();
        prepare(&engine, &mut model);
        vfs.crash_after(Some(crash_point));
        step(&engine);
        let finished = vfs.mutations() < crash_point;
        drop(engine);
        vfs.power_cut(UnsyncedTail::TornPrefix(crash_point));
        let engine = open(&vfs, options.clone()).unwrap();
        assert_equals_model(&engine, &model);
        if finished {
            assert!(crash_point > 3, "the step did some I/O");
            return;
        }
    }
}

#[test]
fn a_crash_at_any_step_of_a_flush_loses_nothing() {
    crash_everywhere(
        |engine, model| fill(engine, 30, model),
        |engine| {
            let _ = engine.flush();
        },
    );
}

#[test]
fn a_crash_at_any_step_of_a_compaction_loses_nothing() {
    crash_everywhere(
        |engine, model| {
            for _ in 0..3 {
                fill(engine, 10, model);
                engine.flush().unwrap();
            }
            fill(engine, 5, model);
        },
        |engine| {
            engine.allow_tombstone_purge(engine.last_sequence());
            let _ = engine.compact_all();
        },
    );
}

fn log_path(vfs: &FaultVfs) -> PathBuf {
    let logs: Vec<_> = vfs
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs.into_iter().next().unwrap()
}

/// How a cut log looks after the crash.
#[derive(Clone, Copy)]
enum Cut {
    /// The file ends at the cut (no preallocation).
    Truncated,
    /// The file keeps its preallocated length; bytes from the cut are zero.
    ZeroFilled,
}

#[test]
fn a_log_cut_at_any_byte_recovers_exactly_the_acknowledged_prefix() {
    const BATCHES: usize = 6;
    let batch = |i: usize| {
        vec![
            put(format!("k{i}").as_bytes(), &vec![i as u8; 10 + i]),
            delete(b"k0"),
        ]
    };
    let options = |cut: Cut| LsmOptions {
        log_preallocate_bytes: match cut {
            Cut::Truncated => 0,
            Cut::ZeroFilled => 4 << 10,
        },
        ..small_options()
    };
    // Record where each batch's record ends in the log.
    let vfs = FaultVfs::new();
    let engine = open(&vfs, options(Cut::Truncated)).unwrap();
    let mut ends = Vec::new();
    for i in 0..BATCHES {
        engine.write_batch(&batch(i)).unwrap();
        ends.push(vfs.contents(&log_path(&vfs)).unwrap().len());
    }
    drop(engine);
    let first_cut = ends.get(BATCHES - 4).copied().unwrap();
    let last = ends.last().copied().unwrap();
    for cut_kind in [Cut::Truncated, Cut::ZeroFilled] {
        for cut in first_cut..=last {
            let vfs = FaultVfs::new();
            let engine = open(&vfs, options(cut_kind)).unwrap();
            for i in 0..BATCHES {
                engine.write_batch(&batch(i)).unwrap();
            }
            drop(engine);
            match cut_kind {
                Cut::Truncated => vfs.truncate(&log_path(&vfs), cut).unwrap(),
                Cut::ZeroFilled => vfs.zero_from(&log_path(&vfs), cut).unwrap(),
            }
            let engine = open(&vfs, options(cut_kind)).unwrap();
            let survivors = ends.iter().filter(|end| **end <= cut).count();
            let mut model = Model::new();
            for i in 0..survivors {
                apply(&mut model, &batch(i));
            }
            assert_equals_model(&engine, &model);
        }
    }
}

#[test]
fn a_power_cut_under_concurrent_writers_loses_no_acknowledged_write() {
    let vfs = FaultVfs::new();
    let engine = Arc::new(open(&vfs, small_options()).unwrap());
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4u32)
        .map(|writer| {
            let (engine, acknowledged) = (engine.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    let key = format!("w{writer}-{i:05}").into_bytes();
                    if engine.write_batch(&[put(&key, &key)]).is_err() {
                        return;
                    }
                    acknowledged.lock().unwrap().push(key);
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The power goes: from now on nothing reaches the disk.
    vfs.crash_after(Some(0));
    for writer in writers {
        writer.join().unwrap();
    }
    drop(engine);
    vfs.power_cut(UnsyncedTail::Lost);
    let engine = open(&vfs, small_options()).unwrap();
    let acknowledged = acknowledged.lock().unwrap();
    assert!(acknowledged.len() > 10, "the writers made progress");
    for key in acknowledged.iter() {
        assert_eq!(engine.get(key).unwrap().as_ref(), Some(key));
    }
}
