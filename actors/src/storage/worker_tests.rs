//! Tests of the storage threads' jobs (`worker.rs`).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::storage::MemoryEngine;

#[test]
fn a_scan_page_stops_at_its_byte_bound_but_always_holds_one_entry() {
    let engine = MemoryEngine::default();
    let ops: Vec<WriteOp> = (0..100u8)
        .map(|i| WriteOp::Put {
            key: vec![1, i],
            value: vec![i; 1000],
        })
        .collect();
    engine.write_batch(&ops).unwrap();
    let page = scan_bounded(&engine, &[1], &[2], 1000, 10_500).unwrap();
    assert_eq!(
        page.entries.len(),
        10,
        "ten entries of 1002 bytes fit in 10,500"
    );
    assert!(page.more);
    let page = scan_bounded(&engine, &[1], &[2], 1000, 10).unwrap();
    assert_eq!(page.entries.len(), 1, "one entry always fits");
    assert!(page.more);
    let page = scan_bounded(&engine, &[1], &[2], 70, usize::MAX).unwrap();
    assert_eq!(
        page.entries.len(),
        70,
        "the entry limit holds across chunks"
    );
    assert!(page.more);
    let page = scan_bounded(&engine, &[1, 95], &[2], 1000, usize::MAX).unwrap();
    assert_eq!(page.entries.len(), 5);
    assert_eq!(page.entries[0].0, vec![1, 95]);
    assert!(!page.more, "the range ends with the page");
    let page = scan_bounded(&engine, &[1, 95], &[2], 5, usize::MAX).unwrap();
    assert!(!page.more, "exactly the rest: nothing after it");
}

/// Keys 0..200 under `[1, i]`; odd ones are "tombstones" (value 0).
fn listing_engine() -> MemoryEngine {
    let engine = MemoryEngine::default();
    let ops: Vec<WriteOp> = (0..200u8)
        .map(|i| WriteOp::Put {
            key: vec![1, i],
            value: vec![u8::from(i % 2 == 0); 10],
        })
        .collect();
    engine.write_batch(&ops).unwrap();
    engine
}

fn live_filter() -> LiveFilter {
    Arc::new(|v: &[u8]| match v.first() {
        Some(1) => Ok(true),
        Some(0) => Ok(false),
        _ => Err("garbage".into()),
    })
}

const WIDE: ListBounds = ListBounds {
    keys_max: 1000,
    scanned_entries_max: 100_000,
    scanned_bytes_max: usize::MAX,
};

#[test]
fn a_listing_holds_only_live_keys_and_stops_at_each_bound() {
    let engine = listing_engine();
    let all = list_live(&engine, &[1], &[2], WIDE, &live_filter()).unwrap();
    assert_eq!(all.keys.len(), 100);
    assert!(all.keys.iter().all(|k| k[1] % 2 == 0));
    assert_eq!(all.stopped_after, None, "the range is done");
    let few = ListBounds {
        keys_max: 7,
        ..WIDE
    };
    let page = list_live(&engine, &[1], &[2], few, &live_filter()).unwrap();
    assert_eq!(page.keys.len(), 7);
    assert_eq!(
        page.stopped_after,
        Some(vec![1, 12]),
        "after the 7th live key"
    );
    // Resuming after it continues with the next live key.
    let page = list_live(&engine, &[1, 12, 0], &[2], few, &live_filter()).unwrap();
    assert_eq!(page.keys[0], vec![1, 14]);
    // The scan bound counts tombstones too.
    let scan = ListBounds {
        scanned_entries_max: 9,
        ..WIDE
    };
    let page = list_live(&engine, &[1], &[2], scan, &live_filter()).unwrap();
    assert_eq!(page.keys.len(), 5);
    assert_eq!(page.stopped_after, Some(vec![1, 8]));
    let bytes = ListBounds {
        scanned_bytes_max: 1,
        ..WIDE
    };
    let page = list_live(&engine, &[1, 1], &[2], bytes, &live_filter()).unwrap();
    assert!(page.keys.is_empty(), "one tombstone examined");
    assert_eq!(
        page.stopped_after,
        Some(vec![1, 1]),
        "progress all the same"
    );
    let exact = ListBounds {
        keys_max: 100,
        ..WIDE
    };
    let page = list_live(&engine, &[1], &[2], exact, &live_filter()).unwrap();
    assert_eq!(page.keys.len(), 100);
    assert_eq!(
        page.stopped_after,
        Some(vec![1, 198]),
        "a tombstone follows"
    );
    let rest = list_live(&engine, &[1, 198, 0], &[2], exact, &live_filter()).unwrap();
    assert_eq!(rest, KeyListing::default(), "nothing live after, and done");
}

#[test]
fn an_object_that_does_not_decode_fails_the_listing() {
    let engine = listing_engine();
    engine
        .write_batch(&[WriteOp::Put {
            key: vec![1, 50],
            value: vec![9],
        }])
        .unwrap();
    let error = list_live(&engine, &[1], &[2], WIDE, &live_filter()).unwrap_err();
    assert!(error.to_string().contains("garbage"), "{error}");
}
