//! The engine equals a `BTreeMap` across random puts, deletes, reads, scans,
//! flushes, compactions, restarts and power cuts (sled's model test, adapted).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::storage::lsm::vfs::fault::UnsyncedTail;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    Get(u8),
    Scan(u8, u8, u8),
    Flush,
    Compact,
    Restart,
    PowerCut(u64),
    PurgeTombstones,
}

fn key(k: u8) -> Vec<u8> {
    // Few distinct keys so overwrites and deletes hit existing ones.
    format!("k{:02}", k % 40).into_bytes()
}

fn value(k: u8, v: u8) -> Vec<u8> {
    // Values of varying size so blocks and memtables fill unevenly.
    vec![v; usize::from(k % 7) * 9 + 1]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        10 => any::<u8>().prop_map(Op::Delete),
        10 => any::<u8>().prop_map(Op::Get),
        5 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, l)| Op::Scan(a, b, l)),
        2 => Just(Op::Flush),
        2 => Just(Op::Compact),
        2 => Just(Op::Restart),
        2 => any::<u64>().prop_map(Op::PowerCut),
        1 => Just(Op::PurgeTombstones),
    ]
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let vfs = FaultVfs::new();
    let mut engine = Some(open(&vfs, small_options()).unwrap());
    let mut model = BTreeMap::new();
    for op in ops {
        let db = engine.as_ref().unwrap();
        match op {
            Op::Put(k, v) => {
                let ops = [put(&key(*k), &value(*k, *v))];
                db.write_batch(&ops).unwrap();
                apply(&mut model, &ops);
            }
            Op::Delete(k) => {
                let ops = [delete(&key(*k))];
                db.write_batch(&ops).unwrap();
                apply(&mut model, &ops);
            }
            Op::Get(k) => prop_assert_eq!(db.get(&key(*k)).unwrap(), model.get(&key(*k)).cloned()),
            Op::Scan(a, b, limit) => {
                let (start, end) = (key(*a), key(*b));
                let found = db
                    .scan(&start, Some(&end), usize::from(*limit % 20))
                    .unwrap();
                let expected: Vec<_> = if start < end {
                    model
                        .range(start..end)
                        .take(usize::from(*limit % 20))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                } else {
                    Vec::new()
                };
                prop_assert_eq!(found, expected);
            }
            Op::Flush => db.flush().unwrap(),
            Op::Compact => db.compact_all().unwrap(),
            Op::PurgeTombstones => db.allow_tombstone_purge(db.last_sequence()),
            Op::Restart | Op::PowerCut(_) => {
                drop(engine.take());
                if let Op::PowerCut(seed) = op {
                    vfs.power_cut(UnsyncedTail::TornPrefix(*seed));
                }
                engine = Some(open(&vfs, small_options()).unwrap());
            }
        }
    }
    assert_equals_model(engine.as_ref().unwrap(), &model);
    Ok(())
}

proptest! {
    // No regression files outside this module: a failing case is turned
    // into a named test here instead (STYLE.md, rule 9).
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_equals_a_btreemap(ops in proptest::collection::vec(op(), 1..200)) {
        run(&ops)?;
    }
}
