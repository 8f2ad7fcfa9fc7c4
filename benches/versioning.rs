//! Cost of the versioning rules per object: encode, decode and merge at 1, 3
//! and 10 siblings and 3, 10 and 50 clock entries.
//!
//! Objects are built through the public API the node uses: a chain of writes
//! through `entries` distinct nodes (each replacing the last) gives the clock
//! its entries, then `siblings - 1` writes through the last node from the
//! context read just before the last chain write add concurrent siblings.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ringkv_actors::conflict_resolver::{Object, VersionLimits, VersionVector};
use ringkv_actors::NodeId;

/// Bytes in each sibling's value: a small record, so that the clock and
/// sibling overhead dominates what is measured.
const VALUE_BYTES: usize = 64;
/// Sibling counts measured.
const SIBLINGS: [usize; 3] = [1, 3, 10];
/// Clock sizes measured (50 is the default `vclock_entries_max`).
const CLOCK_ENTRIES: [usize; 3] = [3, 10, 50];

fn node(index: usize) -> NodeId {
    match NodeId::new(format!("node-{index:02}")) {
        Ok(id) => id,
        Err(reason) => panic!("bench node id: {reason}"),
    }
}

fn write(local: &Object, context: &VersionVector, via: &NodeId, now_ms: u64) -> Object {
    let value = Some(vec![0xab; VALUE_BYTES]);
    match Object::update(
        Some(local),
        context,
        value,
        via,
        now_ms,
        &VersionLimits::default(),
    ) {
        Ok(object) => object,
        Err(error) => panic!("bench write: {error}"),
    }
}

/// An object with `siblings` siblings and `entries` clock entries.
fn object(siblings: usize, entries: usize) -> Object {
    let mut object = Object::default();
    let mut stale = VersionVector::new();
    for index in 0..entries {
        stale = object.context().clone();
        object = write(&object, &stale, &node(index), index as u64);
    }
    // `stale` has not seen the last chain write, so writes from it keep it.
    let last = node(entries - 1);
    for extra in 1..siblings {
        object = write(&object, &stale, &last, (entries + extra) as u64);
    }
    assert_eq!(
        (object.siblings().len(), object.context().len()),
        (siblings, entries)
    );
    object
}

fn cases() -> impl Iterator<Item = (String, Object)> {
    SIBLINGS.into_iter().flat_map(|siblings| {
        CLOCK_ENTRIES
            .into_iter()
            .map(move |entries| (format!("s{siblings}_e{entries}"), object(siblings, entries)))
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (id, object) in cases() {
        group.bench_with_input(BenchmarkId::from_parameter(id), &object, |b, o| {
            b.iter(|| black_box(o).encode())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    for (id, object) in cases() {
        let bytes = object.encode();
        group.bench_with_input(BenchmarkId::from_parameter(id), &bytes, |b, bytes| {
            b.iter(|| Object::decode(black_box(bytes)))
        });
    }
    group.finish();

    // Two replicas that agree: the common case of a quorum read.
    let mut group = c.benchmark_group("merge_equal");
    for (id, object) in cases() {
        let other = object.clone();
        group.bench_with_input(BenchmarkId::from_parameter(id), &object, |b, o| {
            b.iter(|| black_box(o).merge(black_box(&other)))
        });
    }
    group.finish();

    // A replica that missed the last write, which replaced every sibling:
    // read repair's case; the merge drops all of the stale side's siblings.
    let mut group = c.benchmark_group("merge_behind");
    for (id, object) in cases() {
        let newer = write(&object, &object.context().clone(), &node(0), u64::MAX / 2);
        group.bench_with_input(BenchmarkId::from_parameter(id), &object, |b, o| {
            b.iter(|| black_box(o).merge(black_box(&newer)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
