//! Space amplification under overwrites: the bytes the tables hold, counted
//! against the bytes the same live data takes after one full merge.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;
use crate::storage::lsm::options::Compression;
use crate::storage::lsm::vfs::counting::CountingVfs;

/// Keys in the workload (each written once, then overwritten at random).
const KEYS: u64 = 200;
/// Rounds of `KEYS` random overwrites after the first load.
const OVERWRITE_ROUNDS: u64 = 20;
/// Puts per write batch.
const BATCH_PUTS: u64 = 20;
/// Every value has this length, so a full merge of the same key set always
/// takes the same bytes.
const VALUE_BYTES: usize = 32;

/// Small tables, the default merge shape (8 tables per read, 4 per merge),
/// no compression (sizes independent of the values' contents).
fn space_options(space_amplification_percent_max: u64) -> LsmOptions {
    LsmOptions {
        tables_per_read_max: 8,
        compaction_tables_max: 4,
        compression: Compression::None,
        space_amplification_percent_max,
        ..small_options()
    }
}

fn key(n: u64) -> Vec<u8> {
    format!("key-{n:012}").into_bytes()
}

/// What one run of the workload saw.
struct Run {
    /// Table bytes at each checkpoint (after a flush and the due merges).
    table_bytes: Vec<u64>,
    /// Bytes written to files (log, tables, manifests).
    written_bytes: u64,
    /// Bytes of keys and values the workload wrote.
    user_bytes: u64,
    /// Every key's last value.
    model: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Loads `KEYS` keys, then overwrites random ones `OVERWRITE_ROUNDS` times
/// the key count; after each round, flushes and runs the due merges, and
/// counts the table bytes. Leaves the engine open for the caller.
fn overwrite(vfs: &FaultVfs, options: LsmOptions) -> (LsmEngine, Run) {
    let counting = CountingVfs::new(vfs.clone());
    let written = counting.written_bytes();
    let engine = LsmEngine::open(Arc::new(counting), DIR, options).unwrap();
    let mut model = BTreeMap::new();
    let mut table_bytes = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut user_bytes = 0;
    for round in 0..=OVERWRITE_ROUNDS {
        for batch_start in (0..KEYS).step_by(usize::try_from(BATCH_PUTS).unwrap()) {
            let batch: Vec<_> = (batch_start..batch_start + BATCH_PUTS)
                .map(|n| {
                    // xorshift64: a fixed pseudo-random key order.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let k = if round == 0 { n } else { state % KEYS };
                    let value = format!("{round:08}-{n:023}");
                    assert_eq!(value.len(), VALUE_BYTES);
                    put(&key(k), value.as_bytes())
                })
                .collect();
            user_bytes += BATCH_PUTS * (key(0).len() + VALUE_BYTES) as u64;
            engine.write_batch(&batch).unwrap();
            apply(&mut model, &batch);
        }
        engine.flush().unwrap();
        engine.compact_due().unwrap();
        table_bytes.push(engine.table_bytes());
    }
    let written_bytes = written.load(Ordering::Relaxed);
    let run = Run {
        table_bytes,
        written_bytes,
        user_bytes,
        model,
    };
    (engine, run)
}

/// The live data's size as tables: everything merged into one.
fn merged_bytes(engine: &LsmEngine) -> u64 {
    engine.compact_all().unwrap();
    assert_eq!(engine.table_count(), 1);
    engine.table_bytes()
}

#[test]
fn space_amplification_stays_within_the_trigger_under_overwrites() {
    let vfs = FaultVfs::new();
    let (engine, run) = overwrite(&vfs, space_options(125));
    let write_amplification = run.written_bytes as f64 / run.user_bytes as f64;
    assert_equals_model(&engine, &run.model);
    let merged = merged_bytes(&engine);
    for (round, bytes) in run.table_bytes.iter().enumerate() {
        assert!(
            bytes * 100 <= merged * 125,
            "round {round}: {bytes} table bytes, over 125% of {merged}: {:?}",
            run.table_bytes
        );
    }
    assert!(
        write_amplification <= 8.0,
        "write amplification {write_amplification:.2}"
    );
    assert_equals_model(&engine, &run.model);
}

#[test]
fn without_the_trigger_size_tiering_lets_overwrites_pile_up() {
    // The measure above can fail: plain size tiering goes past 125%.
    let vfs = FaultVfs::new();
    let (engine, run) = overwrite(&vfs, space_options(0));
    let merged = merged_bytes(&engine);
    let most = run.table_bytes.iter().copied().max().unwrap();
    assert!(
        most * 100 > merged * 125,
        "{most} table bytes at most, {merged} merged"
    );
    assert_equals_model(&engine, &run.model);
}

#[test]
fn a_store_past_the_bound_is_merged_when_opened_with_the_trigger() {
    // Written as a build without the trigger left it (the manifest format
    // is the same), then opened with the default options.
    let vfs = FaultVfs::new();
    let (engine, run) = overwrite(&vfs, space_options(0));
    let amplified = engine.table_bytes();
    drop(engine);
    let engine = open(&vfs, space_options(125)).unwrap();
    assert_equals_model(&engine, &run.model);
    engine.compact_due().unwrap();
    let settled = engine.table_bytes();
    assert_equals_model(&engine, &run.model);
    let merged = merged_bytes(&engine);
    assert!(
        amplified * 100 > merged * 125,
        "{amplified} table bytes before, {merged} merged"
    );
    assert!(
        settled * 100 <= merged * 125,
        "{settled} table bytes after the open, {merged} merged"
    );
}
