//! The coordinators driven by hand (random event orders: in
//! `coordinator_property_tests.rs`, with these helpers).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::bridge::PeerError;
use crate::replicator::fanout::Asking;
use crate::replicator::quorum::DcQuorum;
use crate::wire::client::ErrorCode;

pub(super) fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|n| id(n)).collect()
}

fn usable(names: &[&str]) -> Vec<(NodeId, Reach)> {
    names.iter().map(|n| (id(n), Reach::Usable)).collect()
}

pub(super) fn unreachable() -> ReplicaError {
    ReplicaError::Peer(PeerError::Unreachable)
}

pub(super) const SLOPPY: SloppyPolicy = SloppyPolicy {
    replace_failed: true,
    replace_silent: true,
};

#[test]
fn a_read_answers_at_r_and_finishes_when_everyone_answered() {
    let (mut read, step) = ReadCoordinator::start(2, 0, &usable(&["a", "b", "c"]), vec![], SLOPPY);
    assert_eq!(step.asks.len(), 3);
    assert!(step.answer.is_none());
    let step = read.on_reply(&id("a"), Ok(Some(b"x".to_vec())));
    assert!(step.answer.is_none());
    let step = read.on_reply(&id("b"), Ok(None));
    let answers = step.answer.unwrap().unwrap();
    assert_eq!(answers.len(), 2);
    assert!(step.finished.is_none(), "c has not answered");
    let step = read.on_reply(&id("c"), Ok(None));
    assert!(step.answer.is_none(), "answered once");
    let finished = step.finished.unwrap();
    assert_eq!(finished.answers.len(), 3);
    assert_eq!(finished.primaries.len(), 3);
    assert!(read.is_finished());
}

#[test]
fn a_sloppy_read_asks_a_stand_in_for_a_failed_primary_and_repairs_only_primaries() {
    let (mut read, _) =
        ReadCoordinator::start(2, 0, &usable(&["a", "b", "c"]), ids(&["d"]), SLOPPY);
    let step = read.on_reply(&id("b"), Err(unreachable()));
    assert_eq!(step.asks[0].node, id("d"));
    read.on_reply(&id("a"), Ok(None));
    let step = read.on_reply(&id("d"), Ok(Some(b"hinted".to_vec())));
    assert!(
        step.answer.unwrap().is_ok(),
        "a and the stand-in d make R=2"
    );
    let step = read.on_deadline(100);
    let finished = step.finished.unwrap();
    assert_eq!(finished.primaries, ids(&["a"]));
}

#[test]
fn pr_needs_primaries_whatever_the_stand_ins_say() {
    let primaries = [
        (id("a"), Reach::Usable),
        (id("b"), Reach::Unusable),
        (id("c"), Reach::Unusable),
    ];
    let (_, step) = ReadCoordinator::start(2, 2, &primaries, ids(&["d", "e"]), SLOPPY);
    let error = step.answer.unwrap().unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable, "{}", error.message);
    let (mut read, step) = ReadCoordinator::start(2, 1, &primaries, ids(&["d", "e"]), SLOPPY);
    assert_eq!(step.asks.len(), 3);
    read.on_reply(&id("d"), Ok(None));
    let step = read.on_reply(&id("e"), Ok(None));
    assert!(step.answer.is_none(), "two stand-ins but no primary yet");
    let step = read.on_reply(&id("a"), Ok(None));
    assert!(step.answer.unwrap().is_ok());
}

#[test]
fn a_read_that_times_out_says_who_was_silent() {
    let (mut read, _) = ReadCoordinator::start(2, 0, &usable(&["a", "b"]), vec![], SLOPPY);
    read.on_reply(&id("a"), Ok(None));
    let step = read.on_deadline(50);
    let error = step.answer.unwrap().unwrap_err();
    assert_eq!(error.code, ErrorCode::Timeout);
    assert!(
        error.message.contains("silent after 50 ms"),
        "{}",
        error.message
    );
    assert!(step.finished.is_some());
}

#[test]
fn a_write_counts_its_own_copy_and_hints_through_stand_ins() {
    let primaries = [
        (id("a"), Reach::Usable),
        (id("b"), Reach::Unusable),
        (id("c"), Reach::Usable),
    ];
    let (mut write, step) =
        WriteCoordinator::start(3, 0, &primaries, Some(&id("a")), ids(&["d"]), SLOPPY);
    assert_eq!(
        step.asks,
        vec![
            Ask {
                node: id("c"),
                stand_in_for: None
            },
            Ask {
                node: id("d"),
                stand_in_for: Some(id("b"))
            },
        ]
    );
    write.on_ack(&id("c"), Ok(()));
    write.on_ack(&id("d"), Ok(()));
    let step = write.on_ack(&id("a"), Ok(()));
    assert_eq!(step.answer, Some(Ok(())));
    assert!(step.finished);
}

#[test]
fn an_impossible_write_is_refused_before_anything_is_sent() {
    let primaries = [
        (id("a"), Reach::Usable),
        (id("b"), Reach::Unusable),
        (id("c"), Reach::Unusable),
    ];
    let (_, step) = WriteCoordinator::start(2, 0, &primaries, Some(&id("a")), vec![], SLOPPY);
    assert!(step.asks.is_empty());
    assert_eq!(
        step.answer.unwrap().unwrap_err().code,
        ErrorCode::Unavailable,
        "nothing was written, so nothing is promised"
    );
}

#[test]
fn a_write_that_fails_after_sending_is_a_timeout_not_unavailable() {
    let (mut write, _) =
        WriteCoordinator::start(2, 0, &usable(&["a", "b"]), Some(&id("a")), vec![], SLOPPY);
    write.on_ack(&id("a"), Ok(()));
    let step = write.on_ack(&id("b"), Err(unreachable()));
    assert_eq!(
        step.answer.unwrap().unwrap_err().code,
        ErrorCode::Timeout,
        "the local copy exists: the write may have happened"
    );
}

pub(super) fn needed(
    r: usize,
    pr: usize,
    primaries: &[(NodeId, Reach)],
    spare: &[&str],
    policy: SloppyPolicy,
) -> (ReadCoordinator, ReadStep) {
    ReadCoordinator::start_in(
        DcScope::default(),
        Asking::Needed,
        r,
        pr,
        primaries,
        ids(spare),
        policy,
    )
}

pub(super) fn nodes(asks: &[Ask]) -> Vec<NodeId> {
    asks.iter().map(|a| a.node.clone()).collect()
}

#[test]
fn a_read_asking_only_what_r_needs_asks_the_first_r_and_finishes_with_them() {
    let (mut read, step) = needed(2, 0, &usable(&["a", "b", "c"]), &["d"], SLOPPY);
    assert_eq!(nodes(&step.asks), ids(&["a", "b"]), "c waits in reserve");
    assert!(read.has_reserve());
    read.on_reply(&id("a"), Ok(Some(b"x".to_vec())));
    let step = read.on_reply(&id("b"), Ok(Some(b"x".to_vec())));
    assert_eq!(step.answer.unwrap().unwrap().len(), 2);
    let finished = step.finished.expect("everyone asked answered");
    assert_eq!(
        finished.primaries,
        ids(&["a", "b"]),
        "read repair reaches those asked"
    );
    assert!(step.asks.is_empty(), "c is never asked");
}

#[test]
fn a_reserve_primary_answers_for_a_failed_or_silent_one_before_any_stand_in() {
    let (mut read, _) = needed(2, 0, &usable(&["a", "b", "c"]), &["d"], SLOPPY);
    let step = read.on_reply(&id("b"), Err(unreachable()));
    assert_eq!(
        step.asks,
        vec![Ask {
            node: id("c"),
            stand_in_for: None
        }]
    );
    let step = read.on_reply(&id("c"), Err(unreachable()));
    assert_eq!(
        step.asks,
        vec![Ask {
            node: id("d"),
            stand_in_for: Some(id("c"))
        }],
        "the reserve spent, a stand-in"
    );

    // Silent, with a strict policy: the reserve is still asked (a
    // speculative retry is no sloppy quorum), a stand-in never.
    let strict = SloppyPolicy::default();
    let (mut read, _) = needed(2, 0, &usable(&["a", "b", "c"]), &["d"], strict);
    read.on_reply(&id("a"), Ok(None));
    let step = read.on_stand_in_timer();
    assert_eq!(nodes(&step.asks), ids(&["c"]));
    let step = read.on_reply(&id("c"), Ok(None));
    assert!(step.answer.unwrap().is_ok(), "a and c make R=2");
    let step = read.on_reply(&id("b"), Err(unreachable()));
    assert!(step.asks.is_empty(), "b was replaced once already");
    assert!(step.finished.is_some());
}

#[test]
fn the_retry_timer_asks_reserve_primaries_and_never_a_stand_in() {
    let (mut read, _) = needed(1, 0, &usable(&["a", "b", "c"]), &["d"], SLOPPY);
    let step = read.on_retry_timer();
    assert_eq!(
        nodes(&step.asks),
        ids(&["b"]),
        "a is silent: b in its place"
    );
    // Both silent, the reserve (c) spent: the stand-in timer asks d.
    let step = read.on_stand_in_timer();
    assert_eq!(
        step.asks,
        vec![Ask {
            node: id("c"),
            stand_in_for: None
        }],
        "b has c in its place; a was replaced once already"
    );
    let step = read.on_stand_in_timer();
    assert_eq!(
        step.asks,
        vec![Ask {
            node: id("d"),
            stand_in_for: Some(id("c"))
        }]
    );

    let (mut read, _) = needed(2, 0, &usable(&["a", "b"]), &["d"], SLOPPY);
    assert!(!read.has_reserve());
    assert!(
        read.on_retry_timer().asks.is_empty(),
        "no reserve, no stand-in"
    );
}

#[test]
fn a_needed_read_asks_usable_primaries_before_doubtful_ones_and_stand_ins_only_for_the_missing() {
    let primaries = [
        (id("a"), Reach::Doubtful),
        (id("b"), Reach::Usable),
        (id("c"), Reach::Unusable),
    ];
    let (_, step) = needed(1, 0, &primaries, &["d"], SLOPPY);
    assert_eq!(nodes(&step.asks), ids(&["b"]));
    let (_, step) = needed(2, 0, &primaries, &["d", "e"], SLOPPY);
    assert_eq!(
        step.asks,
        vec![
            Ask {
                node: id("b"),
                stand_in_for: None
            },
            Ask {
                node: id("a"),
                stand_in_for: None
            },
            Ask {
                node: id("d"),
                stand_in_for: Some(id("a"))
            },
        ],
        "the doubtful one gets its stand-in at once, as with every primary asked"
    );
    let (_, step) = needed(3, 0, &primaries, &["d", "e"], SLOPPY);
    assert_eq!(
        nodes(&step.asks),
        ids(&["b", "a", "d", "e"]),
        "c is unusable: a stand-in for it"
    );
    let (_, step) = needed(2, 2, &usable(&["a", "b", "c"]), &[], SLOPPY);
    assert_eq!(nodes(&step.asks), ids(&["a", "b"]), "PR counts like R");
}

#[test]
fn per_dc_quorums_ask_every_primary_even_when_reads_ask_only_what_they_need() {
    let scope = DcScope {
        dc_of: vec![
            (id("a"), "dc1".into()),
            (id("b"), "dc1".into()),
            (id("c"), "dc2".into()),
        ],
        quorums: vec![DcQuorum {
            dc: "dc2".into(),
            needed: 1,
        }],
    };
    let (_, step) = ReadCoordinator::start_in(
        scope,
        Asking::Needed,
        1,
        0,
        &usable(&["a", "b", "c"]),
        vec![],
        SLOPPY,
    );
    assert_eq!(nodes(&step.asks), ids(&["a", "b", "c"]));
}
