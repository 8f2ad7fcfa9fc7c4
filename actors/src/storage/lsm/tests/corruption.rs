//! Random single-bit flips in the log and the tables: every read either
//! fails with an error or returns the right answer; never a wrong value.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

const FLIPS: usize = 10_000;

#[test]
fn single_bit_flips_never_produce_a_wrong_value() {
    let vfs = FaultVfs::new();
    let engine = open(&vfs, small_options()).unwrap();
    let mut model = BTreeMap::new();
    for round in 0..3u32 {
        let batch: Vec<_> = (0..12u32)
            .map(|i| {
                put(
                    format!("k{:02}", (i * 5 + round) % 20).as_bytes(),
                    format!("v{round}-{i}").as_bytes(),
                )
            })
            .chain([delete(format!("k{:02}", round * 3).as_bytes())])
            .collect();
        engine.write_batch(&batch).unwrap();
        apply(&mut model, &batch);
        if round < 2 {
            engine.flush().unwrap();
        }
    }
    drop(engine);
    let snapshot = vfs.snapshot();
    let total_bits: u64 = snapshot.iter().map(|(_, data)| data.len() as u64 * 8).sum();
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let (mut detected, mut harmless) = (0, 0);
    for _ in 0..FLIPS {
        let mut bit = rng.gen_range(0..total_bits);
        let vfs = FaultVfs::from_snapshot(&snapshot);
        for (path, data) in &snapshot {
            let bits = data.len() as u64 * 8;
            if bit < bits {
                vfs.flip_bit(path, bit).unwrap();
                break;
            }
            bit -= bits;
        }
        let Ok(engine) = open(&vfs, small_options()) else {
            detected += 1;
            continue;
        };
        let mut failed = false;
        for k in 0..20u32 {
            let key = format!("k{k:02}").into_bytes();
            match engine.get(&key) {
                Ok(found) => {
                    assert_eq!(found.as_ref(), model.get(&key), "a wrong value was served")
                }
                Err(_) => failed = true,
            }
        }
        match engine.scan(&[], None, usize::MAX) {
            Ok(found) => {
                let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(found, expected, "a wrong scan was served");
            }
            Err(_) => failed = true,
        }
        if failed {
            detected += 1;
        } else {
            harmless += 1;
        }
    }
    assert!(
        detected > FLIPS / 2,
        "detected {detected}, harmless {harmless}"
    );
}
