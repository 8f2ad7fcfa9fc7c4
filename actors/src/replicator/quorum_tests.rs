//! Tests of quorum counting (`quorum.rs`).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::bridge::PeerError;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn failed() -> ReplicaError {
    ReplicaError::Peer(PeerError::Unreachable)
}

fn timed_out() -> ReplicaError {
    ReplicaError::Peer(PeerError::Timeout { timeout_ms: 5 })
}

fn tally(needed: usize, needed_primaries: usize, primaries: usize) -> Tally {
    let mut t = Tally::new(needed, needed_primaries);
    for _ in 0..primaries {
        t.asked(Role::Primary);
    }
    t
}

#[test]
fn reached_once_enough_succeed() {
    let mut t = tally(2, 0, 3);
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.success(Role::Primary);
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.failure(id("b"), Role::Primary, failed());
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.success(Role::Primary);
    assert_eq!(t.verdict(), Verdict::Reached);
}

#[test]
fn impossible_as_soon_as_failures_rule_it_out() {
    let mut t = tally(2, 0, 3);
    t.failure(id("a"), Role::Primary, failed());
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.failure(id("b"), Role::Primary, failed());
    assert_eq!(t.verdict(), Verdict::Impossible);
    let e = t.error("replies", Ending::Impossible, Effect::Nothing);
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(
        e.message.contains("0 of 2") && e.message.contains("a: peer unreachable"),
        "{}",
        e.message
    );
    // Asking one more (a stand-in) makes it possible again.
    t.asked(Role::StandIn);
    assert_eq!(t.verdict(), Verdict::Waiting);
}

#[test]
fn silence_and_partial_writes_are_timeouts() {
    let t = tally(2, 0, 2);
    assert_eq!(
        t.error("acks", Ending::Deadline { timeout_ms: 50 }, Effect::Nothing)
            .code,
        ErrorCode::Timeout
    );
    let mut t = tally(2, 0, 2);
    t.success(Role::Primary);
    t.failure(id("b"), Role::Primary, failed());
    // Something was written locally: never claim nothing happened.
    assert_eq!(
        t.error("acks", Ending::Impossible, Effect::MaybeWritten)
            .code,
        ErrorCode::Timeout
    );
    let mut t = tally(3, 0, 3);
    t.failure(id("c"), Role::Primary, timed_out());
    assert_eq!(
        t.error("acks", Ending::Impossible, Effect::Nothing).code,
        ErrorCode::Timeout
    );
}

#[test]
fn quorum_of_all_needs_everyone() {
    let mut t = tally(3, 0, 3);
    t.success(Role::Primary);
    t.success(Role::Primary);
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.success(Role::Primary);
    assert_eq!(t.verdict(), Verdict::Reached);
}

#[test]
fn stand_ins_count_toward_the_quorum_but_not_toward_primaries() {
    let mut t = tally(2, 2, 1);
    t.asked(Role::StandIn);
    t.success(Role::Primary);
    t.success(Role::StandIn);
    assert_eq!(
        t.verdict(),
        Verdict::Impossible,
        "only one primary answered"
    );
    let e = t.error("acks", Ending::Impossible, Effect::Nothing);
    assert!(e.message.contains("1 of 2 from primaries"), "{}", e.message);
    let mut t = tally(2, 1, 1);
    t.asked(Role::StandIn);
    t.success(Role::StandIn);
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.success(Role::Primary);
    assert_eq!(t.verdict(), Verdict::Reached);
}

fn dcs(text: &str) -> DcReplication {
    DcReplication::parse(text, 16).unwrap()
}

#[test]
fn levels_resolve_to_counts_per_dc() {
    let two = dcs("dc1:3,dc2:2");
    let need = |level| Need::for_level(level, 5, &two, "dc2").unwrap();
    let plain = |needed| Need {
        needed,
        dcs: Vec::new(),
    };
    let q = |dc: &str, needed| DcQuorum {
        dc: dc.into(),
        needed,
    };
    assert_eq!(need(Consistency::One), plain(1));
    assert_eq!(need(Consistency::Quorum), plain(3));
    assert_eq!(need(Consistency::All), plain(5));
    let local = |needed| Need {
        needed,
        dcs: vec![q("dc2", needed)],
    };
    assert_eq!(need(Consistency::LocalOne), local(1));
    assert_eq!(need(Consistency::LocalQuorum), local(2));
    assert_eq!(
        need(Consistency::EachQuorum),
        Need {
            needed: 4,
            dcs: vec![q("dc1", 2), q("dc2", 2)],
        }
    );
    // Without per-DC replication the ring is one DC.
    let none = DcReplication::default();
    for (level, needed) in [
        (Consistency::LocalOne, 1),
        (Consistency::LocalQuorum, 2),
        (Consistency::EachQuorum, 2),
    ] {
        assert_eq!(
            Need::for_level(level, 3, &none, "dc1").unwrap(),
            plain(needed)
        );
    }
    // A coordinator in a DC without replicas has no "local".
    let e = Need::for_level(Consistency::LocalQuorum, 5, &two, "dc3").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("dc3 holds no replicas"), "{}", e.message);
}

#[test]
fn a_dc_quorum_waits_for_its_own_dc_and_fails_when_its_dc_cannot_make_it() {
    let quorums = [DcQuorum {
        dc: "dc2".into(),
        needed: 2,
    }];
    let mut t = Tally::new(2, 0).with_dc_quorums(&quorums);
    for dc in ["dc1", "dc1", "dc2", "dc2"] {
        t.asked_in(Role::Primary, Some(dc));
    }
    t.success_in(Role::Primary, Some("dc1"));
    t.success_in(Role::Primary, Some("dc1"));
    assert_eq!(t.verdict(), Verdict::Waiting, "two answers, none from dc2");
    t.success_in(Role::Primary, Some("dc2"));
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.failure_in(id("b2"), Role::Primary, Some("dc2"), failed());
    assert_eq!(t.verdict(), Verdict::Impossible);
    let e = t.error("acks", Ending::Impossible, Effect::Nothing);
    assert!(e.message.contains("(1 of 2 in dc2)"), "{}", e.message);
    // A stand-in counting for dc2 makes it possible again.
    t.asked_in(Role::StandIn, Some("dc2"));
    assert_eq!(t.verdict(), Verdict::Waiting);
    t.success_in(Role::StandIn, Some("dc2"));
    assert_eq!(t.verdict(), Verdict::Reached);
}
