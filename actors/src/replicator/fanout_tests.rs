//! Tests of the fan-out state machine (`fanout.rs`).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::bridge::PeerError;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|n| id(n)).collect()
}

fn down() -> Result<(), ReplicaError> {
    Err(ReplicaError::Peer(PeerError::Unreachable))
}

const EAGER: SloppyPolicy = SloppyPolicy {
    replace_failed: true,
    replace_silent: true,
};

#[test]
fn usable_primaries_are_asked_and_unusable_ones_get_stand_ins() {
    let primaries = [
        (id("a"), Reach::Usable),
        (id("b"), Reach::Unusable),
        (id("c"), Reach::Doubtful),
    ];
    let (f, asks) = Fanout::start(2, 0, &primaries, &[id("a")], ids(&["d", "e"]), EAGER);
    assert_eq!(
        asks,
        vec![
            Ask {
                node: id("c"),
                stand_in_for: None
            },
            Ask {
                node: id("d"),
                stand_in_for: Some(id("b"))
            },
            Ask {
                node: id("e"),
                stand_in_for: Some(id("c"))
            },
        ],
        "a is already asked (the local write)"
    );
    assert_eq!(f.role_of(&id("d")), Some(Role::StandIn));
    assert!(f.uncovered().is_empty());
}

#[test]
fn a_failed_primary_gets_one_stand_in_and_a_failed_stand_in_another() {
    let primaries = [(id("a"), Reach::Usable), (id("b"), Reach::Usable)];
    let (mut f, _) = Fanout::start(2, 0, &primaries, &[], ids(&["c", "d", "e"]), EAGER);
    let asks = f.on_result(&id("b"), down());
    assert_eq!(asks[0].node, id("c"));
    assert_eq!(asks[0].stand_in_for, Some(id("b")));
    let asks = f.on_result(&id("c"), down());
    assert_eq!(asks[0].node, id("d"), "the next spare, still for b");
    assert_eq!(asks[0].stand_in_for, Some(id("b")));
    f.on_result(&id("a"), Ok(()));
    assert_eq!(f.verdict(), Verdict::Waiting);
    f.on_result(&id("d"), Ok(()));
    assert_eq!(f.verdict(), Verdict::Reached);
}

#[test]
fn silent_primaries_get_stand_ins_when_the_timer_fires() {
    let primaries = [(id("a"), Reach::Usable), (id("b"), Reach::Usable)];
    let (mut f, _) = Fanout::start(2, 0, &primaries, &[], ids(&["c", "d"]), EAGER);
    f.on_result(&id("a"), Ok(()));
    let asks = f.on_stand_in_timer();
    assert_eq!(asks.len(), 1, "only b is silent: {asks:?}");
    assert_eq!(asks[0].stand_in_for, Some(id("b")));
    assert!(f.on_stand_in_timer().is_empty(), "b is covered now");
    // A late failure of the covered primary asks nobody new.
    assert!(f.on_result(&id("b"), down()).is_empty());
}

#[test]
fn without_the_policy_nothing_is_replaced_and_the_ring_can_run_out() {
    let primaries = [(id("a"), Reach::Usable), (id("b"), Reach::Unusable)];
    let (mut f, asks) = Fanout::start(2, 0, &primaries, &[], vec![], SloppyPolicy::default());
    assert_eq!(asks.len(), 1);
    assert_eq!(f.uncovered(), &[id("b")]);
    assert_eq!(f.verdict(), Verdict::Impossible, "1 asked, 2 needed");
    assert!(f.on_result(&id("a"), down()).is_empty());
    assert!(f.on_stand_in_timer().is_empty());
}

#[test]
fn spare_nodes_that_are_primaries_are_never_stand_ins() {
    let primaries = [(id("a"), Reach::Unusable), (id("b"), Reach::Usable)];
    let (_, asks) = Fanout::start(1, 0, &primaries, &[], ids(&["b", "c"]), EAGER);
    assert_eq!(asks[1].node, id("c"));
}

fn two_dc_scope(quorums: Vec<DcQuorum>) -> DcScope {
    let dc_of = ["a1", "a2", "a3", "b1", "b2", "b3"]
        .iter()
        .map(|n| {
            (
                id(n),
                if n.starts_with('a') { "dc1" } else { "dc2" }.to_owned(),
            )
        })
        .collect();
    DcScope { dc_of, quorums }
}

#[test]
fn per_dc_stand_ins_come_from_the_primary_s_own_dc() {
    let primaries = vec![
        (id("a1"), Reach::Usable),
        (id("b1"), Reach::Unusable),
        (id("a2"), Reach::Unusable),
    ];
    // Spares in ring order: a dc1 node first, yet b1 gets b3.
    let spare = ids(&["a3", "b3"]);
    let (mut fanout, asks) = Fanout::start_in(
        two_dc_scope(Vec::new()),
        2,
        0,
        &primaries,
        &[],
        spare,
        SloppyPolicy::default(),
    );
    let stand_in_for = |node: &str| {
        asks.iter()
            .find(|a| a.node == id(node))
            .and_then(|a| a.stand_in_for.clone())
    };
    assert_eq!(stand_in_for("b3"), Some(id("b1")));
    assert_eq!(stand_in_for("a3"), Some(id("a2")));
    assert_eq!(asks.len(), 3);
    // With no dc2 spare left, a failed dc2 stand-in stays uncovered.
    let mut fanout2 = fanout.clone();
    fanout2.policy.replace_failed = true;
    assert!(fanout2.on_result(&id("b3"), down()).is_empty());
    assert_eq!(fanout2.uncovered(), &[id("b1")]);
    assert!(fanout.on_result(&id("a1"), Ok(())).is_empty());
}

#[test]
fn each_quorum_is_refused_up_front_when_a_dc_cannot_answer() {
    let q = |dc: &str| DcQuorum {
        dc: dc.into(),
        needed: 2,
    };
    let scope = two_dc_scope(vec![q("dc1"), q("dc2")]);
    let dc2_down = vec![
        (id("a1"), Reach::Usable),
        (id("a2"), Reach::Usable),
        (id("b1"), Reach::Unusable),
        (id("b2"), Reach::Unusable),
    ];
    // dc1 nodes to spare do not help dc2.
    assert_eq!(
        scope.shortfall(&dc2_down, &ids(&["a3"])),
        Some(("dc2".to_owned(), 0, 2))
    );
    // One dc2 stand-in covers one of them: still one short.
    assert_eq!(
        scope.shortfall(&dc2_down, &ids(&["b3", "a3"])),
        Some(("dc2".to_owned(), 1, 2))
    );
    let one_down = vec![
        (id("a1"), Reach::Usable),
        (id("a2"), Reach::Usable),
        (id("b1"), Reach::Doubtful),
        (id("b2"), Reach::Unusable),
    ];
    assert_eq!(scope.shortfall(&one_down, &ids(&["b3"])), None);
    // The request then waits for both DCs' quorums.
    let (mut fanout, asks) = Fanout::start_in(
        scope,
        4,
        0,
        &one_down,
        &[],
        ids(&["b3"]),
        SloppyPolicy::default(),
    );
    assert_eq!(asks.len(), 4, "{asks:?}");
    for n in ["a1", "a2", "b1"] {
        fanout.on_result(&id(n), Ok(()));
    }
    assert_eq!(fanout.verdict(), Verdict::Waiting);
    fanout.on_result(&id("b3"), Ok(()));
    assert_eq!(fanout.verdict(), Verdict::Reached);
}
