//! Behaviour of the engine on a healthy file system.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;

#[test]
fn reads_see_writes_through_flushes_compactions_and_reopen() {
    let vfs = FaultVfs::new();
    let mut model = BTreeMap::new();
    let engine = open(&vfs, small_options()).unwrap();
    for round in 0..20u32 {
        let mut batch = Vec::new();
        for i in 0..20u32 {
            let key = format!("key{:04}", (i * 7 + round) % 97);
            batch.push(put(key.as_bytes(), format!("v{round}-{i}").as_bytes()));
        }
        batch.push(delete(format!("key{:04}", round * 3).as_bytes()));
        engine.write_batch(&batch).unwrap();
        apply(&mut model, &batch);
    }
    assert_equals_model(&engine, &model);
    assert!(engine.tables_a_read_consults() <= small_options().tables_per_read_max);
    engine.flush().unwrap();
    drop(engine);
    let engine = open(&vfs, small_options()).unwrap();
    assert_equals_model(&engine, &model);
    let bounded = engine.scan(b"key0010", Some(b"key0020"), 3).unwrap();
    let expected: Vec<_> = model
        .range(b"key0010".to_vec()..b"key0020".to_vec())
        .take(3)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(bounded, expected);
}

#[test]
fn tombstones_are_purged_only_when_allowed() {
    let vfs = FaultVfs::new();
    let engine = open(&vfs, small_options()).unwrap();
    engine.write_batch(&[put(b"a", b"1")]).unwrap();
    engine.flush().unwrap();
    engine.write_batch(&[delete(b"a")]).unwrap();
    engine.compact_all().unwrap();
    assert_eq!(engine.get(b"a").unwrap(), None);
    assert_eq!(engine.table_count(), 1, "the tombstone is kept");
    engine.allow_tombstone_purge(engine.last_sequence());
    engine.compact_all().unwrap();
    assert_eq!(engine.table_count(), 0, "the tombstone is gone");
    assert_eq!(engine.get(b"a").unwrap(), None);
}

#[test]
fn readers_see_consistent_values_during_flushes_and_compactions() {
    let vfs = FaultVfs::new();
    let engine = Arc::new(open(&vfs, small_options()).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Every value names its key, so a reader can tell a torn or misplaced one.
    let writers: Vec<_> = (0..2u32)
        .map(|writer| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for i in 0..400u32 {
                    let key = format!("k{:02}", (i * 7 + writer) % 50);
                    let value = format!("{key}:{writer}:{i}");
                    engine
                        .write_batch(&[put(key.as_bytes(), value.as_bytes())])
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for k in 0..50u32 {
                        let key = format!("k{k:02}");
                        if let Some(value) = engine.get(key.as_bytes()).unwrap() {
                            assert!(value.starts_with(format!("{key}:").as_bytes()));
                        }
                    }
                    let all = engine.scan(&[], None, usize::MAX).unwrap();
                    assert!(all.windows(2).all(|pair| pair[0].0 < pair[1].0));
                    for (key, value) in all {
                        assert!(value.starts_with(&[key.as_slice(), b":"].concat()));
                    }
                }
            })
        })
        .collect();
    for _ in 0..5 {
        engine.flush().unwrap();
        engine.compact_all().unwrap();
    }
    for writer in writers {
        writer.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(engine.scan(&[], None, usize::MAX).unwrap().len(), 50);
}

#[test]
fn a_value_larger_than_many_blocks_round_trips() {
    let vfs = FaultVfs::new();
    let engine = open(&vfs, small_options()).unwrap();
    let big = vec![0x5a; 1 << 20];
    engine.write_batch(&[put(b"big", &big)]).unwrap();
    engine.flush().unwrap();
    drop(engine);
    let engine = open(&vfs, small_options()).unwrap();
    assert_eq!(engine.get(b"big").unwrap(), Some(big));
}

#[test]
fn a_lost_manifest_is_reported_not_mistaken_for_a_new_store() {
    use crate::storage::lsm::Vfs;
    let vfs = FaultVfs::new();
    let engine = open(&vfs, small_options()).unwrap();
    engine.write_batch(&[put(b"a", b"1")]).unwrap();
    engine.flush().unwrap();
    drop(engine);
    vfs.remove(std::path::Path::new("/db/MANIFEST")).unwrap();
    let error = open(&vfs, small_options()).err().unwrap();
    assert!(matches!(error, StorageError::Corruption { .. }), "{error}");
}

#[test]
fn the_engine_metrics_follow_fsyncs_memtables_tables_and_compactions() {
    let vfs = FaultVfs::new();
    let options = small_options();
    let metrics = options.metrics.clone();
    let engine = open(&vfs, options.clone()).unwrap();
    // The histogram's count, as a scrape reads it.
    let fsyncs = || -> u64 {
        let text = crate::metrics::Metrics::new(Some(&metrics)).encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("ringkv_storage_fsync_duration_seconds_count"))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let fsyncs_at_open = fsyncs();
    for i in 0..50u32 {
        let key = format!("key{i:04}");
        engine
            .write_batch(&[put(key.as_bytes(), &[7u8; 100])])
            .unwrap();
    }
    // SyncPolicy::Always: one fsync per batch at least.
    assert!(fsyncs() >= fsyncs_at_open + 50);
    // Each of those commits made one write durable; a batch of ten, one
    // commit of ten (in the 16 bucket, not the 8 one).
    let commit_writes = |field: &str| -> u64 {
        let text = crate::metrics::Metrics::new(Some(&metrics)).encode();
        let name = format!("ringkv_storage_commit_writes_{field}");
        let line = text.lines().find(|l| l.starts_with(&name)).unwrap();
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64
    };
    let (count, sum) = (commit_writes("count"), commit_writes("sum"));
    assert_eq!((count, sum), (50, 50));
    let (upto_8, upto_16) = (
        commit_writes("bucket{le=\"8\"}"),
        commit_writes("bucket{le=\"16\"}"),
    );
    let ten: Vec<_> = (0..10u32)
        .map(|i| put(format!("ten{i}").as_bytes(), b"v"))
        .collect();
    engine.write_batch(&ten).unwrap();
    assert_eq!(commit_writes("count"), count + 1);
    assert_eq!(commit_writes("sum"), sum + 10);
    assert_eq!(commit_writes("bucket{le=\"8\"}"), upto_8);
    assert_eq!(commit_writes("bucket{le=\"16\"}"), upto_16 + 1);
    engine.compact_all().unwrap();
    assert_eq!(metrics.tables.get(), engine.table_count() as i64);
    assert_eq!(metrics.tables.get(), 1);
    assert_eq!(metrics.table_bytes.get(), engine.table_bytes() as i64);
    // 5 KB through 2 KB memtables made several tables; compact_all
    // merged them (or a background compaction did, counted before
    // compact_all could take the compaction lock).
    assert!(metrics.compactions.get() >= 1);
    drop(engine);
    // A reopened engine records into the same handles.
    let engine = open(&vfs, options).unwrap();
    engine.write_batch(&[put(b"again", b"v")]).unwrap();
    assert!(metrics.memtable_bytes.get() > 0);
}

#[test]
fn get_cached_answers_from_memory_only_and_agrees_with_get() {
    let vfs = FaultVfs::new();
    let mut model = BTreeMap::new();
    let engine = open(&vfs, small_options()).unwrap();
    for i in 0..97u32 {
        let batch = [put(
            format!("key{i:04}").as_bytes(),
            format!("v{i}").as_bytes(),
        )];
        engine.write_batch(&batch).unwrap();
        apply(&mut model, &batch);
    }
    engine.flush().unwrap();
    drop(engine);
    // Reopened: every key is in a table and the block cache is cold.
    let engine = open(&vfs, small_options()).unwrap();
    assert!(engine.table_count() > 0);
    assert!(
        engine.get_cached(b"key0005").is_none(),
        "a cold block needs a disk read"
    );
    assert_eq!(engine.get(b"key0005").unwrap(), Some(b"v5".to_vec()));
    assert_eq!(
        engine.get_cached(b"key0005").map(Result::unwrap),
        Some(Some(b"v5".to_vec())),
        "the block `get` read is cached now"
    );
    // Past every table's last key: no table is asked, nothing to read.
    assert_eq!(engine.get_cached(b"zzz").map(Result::unwrap), Some(None));
    // A write lands in the memtable, a delete too.
    engine.write_batch(&[put(b"key0050", b"new")]).unwrap();
    engine.write_batch(&[delete(b"key0051")]).unwrap();
    model.insert(b"key0050".to_vec(), b"new".to_vec());
    model.remove(b"key0051".as_slice());
    assert_eq!(
        engine.get_cached(b"key0050").map(Result::unwrap),
        Some(Some(b"new".to_vec()))
    );
    assert_eq!(
        engine.get_cached(b"key0051").map(Result::unwrap),
        Some(None)
    );
    // Whatever it answers is what `get` answers.
    for i in 0..100u32 {
        let key = format!("key{i:04}");
        if let Some(cached) = engine.get_cached(key.as_bytes()) {
            assert_eq!(cached.unwrap(), model.get(key.as_bytes()).cloned(), "{key}");
        }
        assert_eq!(
            engine.get(key.as_bytes()).unwrap(),
            model.get(key.as_bytes()).cloned()
        );
    }
}

#[test]
fn a_fill_in_key_order_is_not_rewritten_and_reads_consult_one_table_of_it() {
    let vfs = FaultVfs::new();
    let options = small_options();
    let engine = open(&vfs, options.clone()).unwrap();
    let mut model = BTreeMap::new();
    let mut next = 0u32;
    // Ten puts of the next keys in order, past every key written so far.
    let append_ten = |engine: &LsmEngine, model: &mut BTreeMap<_, _>, next: &mut u32| {
        let batch: Vec<_> = (0..10)
            .map(|_| {
                *next += 1;
                put(format!("key{next:06}").as_bytes(), &[b'v'; 40])
            })
            .collect();
        engine.write_batch(&batch).unwrap();
        apply(model, &batch);
    };
    // Each table lies past the last: more tables than a read may consult,
    // none of them merged.
    while engine.table_count() <= options.tables_per_read_max {
        append_ten(&engine, &mut model, &mut next);
        assert!(
            next < 100_000,
            "the tables never outnumbered the read bound"
        );
    }
    assert_eq!(engine.tables_a_read_consults(), 1);
    assert_eq!(
        options.metrics.compactions.get(),
        0,
        "disjoint tables were merged"
    );
    assert_equals_model(&engine, &model);

    // Up to the store's bound on tables: then they merge.
    let tables_max = crate::storage::lsm::compaction::tables_max(options.tables_per_read_max);
    for _ in 0..tables_max * 4 {
        append_ten(&engine, &mut model, &mut next);
        assert!(engine.table_count() <= tables_max);
    }
    assert!(options.metrics.compactions.get() > 0);

    // Overwrites and deletes overlap: the count a read consults stays
    // bounded, and scans (the disjoint tables in one layer, last) see the
    // newer versions over the older ones.
    for round in 0..20u32 {
        let mut batch: Vec<_> = (0..10u32)
            .map(|i| {
                put(
                    format!("key{:06}", (i * 37 + round * 11) % next + 1).as_bytes(),
                    b"new",
                )
            })
            .collect();
        batch.push(delete(
            format!("key{:06}", (round * 53) % next + 1).as_bytes(),
        ));
        engine.write_batch(&batch).unwrap();
        apply(&mut model, &batch);
        assert!(engine.tables_a_read_consults() <= options.tables_per_read_max);
    }
    assert_equals_model(&engine, &model);
    for (low, high, limit) in [
        (1, 40, 100),
        (35, 900, 7),
        (500, 501, 3),
        (next - 5, next + 5, 100),
    ] {
        let (low, high) = (format!("key{low:06}"), format!("key{high:06}"));
        let expected: Vec<_> = model
            .range(low.as_bytes().to_vec()..high.as_bytes().to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let scanned = engine
            .scan(low.as_bytes(), Some(high.as_bytes()), limit)
            .unwrap();
        assert_eq!(scanned, expected, "{low}..{high} limit {limit}");
    }
    drop(engine);
    let engine = open(&vfs, options).unwrap();
    assert_equals_model(&engine, &model);
}

#[test]
fn flush_and_compaction_threads_run_at_the_lowest_priority() {
    let vfs = FaultVfs::new();
    let engine = open(&vfs, small_options()).unwrap();
    assert_eq!(engine.thread_ids.len(), 2);
    for tid in &engine.thread_ids {
        // The kernel's view, from /proc (field 19 of stat: nice), read
        // after the name and its parentheses.
        let stat =
            std::fs::read_to_string(format!("/proc/self/task/{}/stat", tid.as_raw_nonzero()))
                .unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        assert_eq!(
            fields[16],
            crate::storage::lsm::engine::BACKGROUND_THREAD_NICE.to_string(),
            "{stat}"
        );
    }
    // Requests' threads are left alone.
    assert_eq!(rustix::process::getpriority_process(None).unwrap(), 0);
}

/// Overwrites of one key keep the memtable at one entry (it counts what it
/// holds, not what was written), so they do not flush it; the log segment
/// that grows with every write is closed at `log_segment_bytes_max`,
/// which freezes and flushes the memtable it covers.
#[test]
fn overwrites_stay_in_the_memtable_until_their_log_segment_fills() {
    let vfs = FaultVfs::new();
    let options = LsmOptions {
        memtable_bytes_max: 2 << 10,
        log_segment_bytes_max: 16 << 10,
        ..small_options()
    };
    let metrics = options.metrics.clone();
    let engine = open(&vfs, options).unwrap();
    let newest_segment = || {
        vfs.paths()
            .iter()
            .filter_map(|p| {
                p.file_name()?
                    .to_str()?
                    .strip_suffix(".log")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap()
    };
    let first = newest_segment();
    let value = |i: u32| format!("{i:0100}").into_bytes();
    // 60 records of about 130 bytes: 8 KB of log, four times the
    // memtable's limit, half the segment's.
    for i in 0..60 {
        engine.write_batch(&[put(b"hot", &value(i))]).unwrap();
    }
    assert_eq!(newest_segment(), first, "no segment was closed");
    assert_eq!(engine.table_count(), 0);
    // One entry: key, value and the per-entry overhead.
    assert_eq!(metrics.memtable_bytes.get(), 3 + 100 + 32);
    assert_eq!(engine.get(b"hot").unwrap(), Some(value(59)));
    for i in 60..200 {
        engine.write_batch(&[put(b"hot", &value(i))]).unwrap();
    }
    assert!(newest_segment() > first, "a full segment was closed");
    engine.flush().unwrap();
    assert!(engine.table_count() >= 1);
    assert_eq!(engine.get(b"hot").unwrap(), Some(value(199)));
    drop(engine);
    let engine = open(&vfs, small_options()).unwrap();
    assert_eq!(engine.get(b"hot").unwrap(), Some(value(199)));
}
