//! Tests of compaction (`compaction.rs`).

use super::{
    overlaps_older, pick_window, space_amplification_exceeded, tables_a_read_consults, tables_max,
    PickLimits, TableShape,
};

/// The defaults' shape: 8 tables per read, 4 per merge, 125 %.
const LIMITS: PickLimits = PickLimits {
    tables_per_read_max: 8,
    fan_in_max: 4,
    space_amplification_percent_max: 125,
};

/// The same with the space trigger off (plain size tiering).
const TIERED: PickLimits = PickLimits {
    space_amplification_percent_max: 0,
    ..LIMITS
};

/// Tables of these sizes, each overlapping the older ones (overwrites).
fn overwrites(sizes: &[u64]) -> Vec<TableShape> {
    let last = sizes.len().saturating_sub(1);
    sizes
        .iter()
        .enumerate()
        .map(|(position, size)| TableShape {
            size_bytes: *size,
            overlaps_older: position < last,
        })
        .collect()
}

/// Tables of these sizes, none overlapping (a fill in key order).
fn appends(sizes: &[u64]) -> Vec<TableShape> {
    sizes
        .iter()
        .map(|size| TableShape {
            size_bytes: *size,
            overlaps_older: false,
        })
        .collect()
}

#[test]
fn few_tables_need_no_compaction() {
    assert_eq!(pick_window(&overwrites(&[1, 2, 100]), LIMITS, false), None);
    assert_eq!(pick_window(&overwrites(&[1, 2, 3]), TIERED, false), None);
    assert_eq!(pick_window(&[], LIMITS, false), None);
    assert_eq!(pick_window(&overwrites(&[100]), LIMITS, false), None);
}

#[test]
fn the_smallest_adjacent_window_is_merged() {
    let sizes = [5, 1, 1, 1, 1, 100, 100];
    assert_eq!(
        pick_window(&overwrites(&sizes), TIERED, false),
        Some((1, 5))
    );
    // Under the space bound too: 109 newer bytes over 1000.
    let sizes = [5, 1, 1, 1, 1, 100, 1000];
    assert_eq!(
        pick_window(&overwrites(&sizes), LIMITS, false),
        Some((1, 5))
    );
}

#[test]
fn a_full_compaction_takes_everything() {
    assert_eq!(pick_window(&appends(&[1, 2]), LIMITS, true), Some((0, 2)));
    assert_eq!(pick_window(&[], LIMITS, true), None);
}

#[test]
fn newer_tables_past_a_quarter_of_the_oldest_merge_everything() {
    // 25 newer bytes over 100: exactly 125 %, not past it.
    assert_eq!(
        pick_window(&overwrites(&[10, 15, 100]), LIMITS, false),
        None
    );
    assert_eq!(
        pick_window(&overwrites(&[10, 16, 100]), LIMITS, false),
        Some((0, 3))
    );
    // One flushed table as large as the store: 200 %.
    assert_eq!(
        pick_window(&overwrites(&[100, 100]), LIMITS, false),
        Some((0, 2))
    );
    // The same tables without the trigger stay as they are.
    assert_eq!(pick_window(&overwrites(&[100, 100]), TIERED, false), None);
}

#[test]
fn tables_past_the_older_key_span_are_not_amplification() {
    // A fill in key order: every table is new data.
    assert_eq!(pick_window(&appends(&[100, 100, 10]), LIMITS, false), None);
    // Only the overlapping table counts: 30 over a base of 110.
    let mut tables = appends(&[30, 100, 10]);
    tables[0].overlaps_older = true;
    assert!(space_amplification_exceeded(&tables, 125));
    tables[0].size_bytes = 27;
    assert!(!space_amplification_exceeded(&tables, 125));
}

#[test]
fn the_space_trigger_wins_over_a_narrower_count_merge() {
    let sizes = [1, 1, 1, 1, 1, 100, 300];
    assert_eq!(
        pick_window(&overwrites(&sizes), LIMITS, false),
        Some((0, 7))
    );
    assert_eq!(
        pick_window(&overwrites(&sizes), TIERED, false),
        Some((0, 4))
    );
    // Appended tables are not merged for space either.
    assert_eq!(pick_window(&appends(&sizes), LIMITS, false), None);
}

#[test]
fn disjoint_tables_count_once_until_the_store_holds_too_many() {
    assert_eq!(tables_a_read_consults(&[]), 0);
    assert_eq!(tables_a_read_consults(&appends(&[1, 1, 1])), 1);
    assert_eq!(tables_a_read_consults(&overwrites(&[1, 1, 1])), 3);
    let mut mixed = appends(&[1, 1, 1, 1]);
    mixed[0].overlaps_older = true;
    mixed[2].overlaps_older = true;
    assert_eq!(tables_a_read_consults(&mixed), 3);

    let max = tables_max(LIMITS.tables_per_read_max);
    assert_eq!(max, 32);
    let fill: Vec<u64> = (0..max as u64 - 1).map(|i| 10 + i).collect();
    assert_eq!(pick_window(&appends(&fill), LIMITS, false), None);
    let fill: Vec<u64> = (0..max as u64).map(|i| 10 + i).collect();
    assert_eq!(
        pick_window(&appends(&fill), LIMITS, false),
        Some((0, 4)),
        "at the bound, the smallest window"
    );
}

#[test]
fn a_count_merge_takes_two_overlapping_tables_over_smaller_disjoint_ones() {
    // Newest first: one overlapping table, four disjoint ones, six
    // overlapping ones, the base. A read may consult 7 + 1 tables.
    let mut tables = appends(&[1, 1, 1, 1, 1, 10, 10, 10, 10, 10, 10, 1000]);
    for i in [0, 5, 6, 7, 8, 9, 10] {
        tables[i].overlaps_older = true;
    }
    assert_eq!(tables_a_read_consults(&tables), 8);
    assert!(!space_amplification_exceeded(&tables, 125));
    // (0, 4) and (1, 5) are smaller but hold at most one overlapping
    // table: merging them would not lower the count.
    assert_eq!(pick_window(&tables, LIMITS, false), Some((3, 7)));
}

#[test]
fn space_amplification_edges() {
    let shapes = overwrites;
    assert!(!space_amplification_exceeded(&[], 125));
    assert!(!space_amplification_exceeded(&shapes(&[7]), 125));
    assert!(space_amplification_exceeded(&shapes(&[1, 0]), 125));
    assert!(!space_amplification_exceeded(&shapes(&[0, 0]), 125));
    assert!(!space_amplification_exceeded(&shapes(&[1_000, 1]), 0));
    let huge = shapes(&[u64::MAX, u64::MAX]);
    assert!(!space_amplification_exceeded(&huge, u64::MAX));
    assert!(space_amplification_exceeded(&huge, 199));
}

#[test]
fn overlap_is_judged_against_every_older_table() {
    let range = |low: &'static str, high: &'static str| Some((low.as_bytes(), high.as_bytes()));
    // Newest first. [j-k] lies past [a-b]; [c-d] lies between them, so
    // inside the older span a..k; [m-p] lies past everything older.
    assert_eq!(
        overlaps_older(&[
            range("m", "p"),
            range("c", "d"),
            range("j", "k"),
            range("a", "b")
        ]),
        vec![false, true, false, false]
    );
    // Touching at one key is overlap; empty tables overlap nothing.
    assert_eq!(
        overlaps_older(&[range("k", "z"), None, range("a", "k")]),
        vec![true, false, false]
    );
    assert_eq!(overlaps_older(&[]), Vec::<bool>::new());
}
