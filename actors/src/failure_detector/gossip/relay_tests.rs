//! What a node takes from gossip relayed by others: a forged eviction
//! does not evict, a relay still speaks for a member this node cannot
//! hear, a member outruns a forgery about itself, and records or member
//! lists out of bounds are refused.

#![allow(clippy::unwrap_used)]

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::tests::{entry_message, id_of, info, node, record, record_of};
use super::*;

/// `a` has heard `b` first-hand (generation 7, heartbeat 1, alive).
fn a_hears_b() -> Gossip {
    let mut a = node("a", 0);
    let alive = record(7, 1, MemberState::Alive, 1);
    a.receive(&id_of("b"), entry_message("b", alive, false), 0);
    a
}

#[test]
fn a_forged_eviction_relayed_by_a_third_node_does_not_evict() {
    let mut a = a_hears_b();
    // The attack of issue 12: generation u64::MAX and `left`, relayed by
    // c. Refused by the bounds (it could never be outrun)...
    let forever = record(u64::MAX, 0, MemberState::Left, 1);
    assert!(a
        .receive(&id_of("c"), entry_message("b", forever, false), 100)
        .is_empty());
    assert_eq!(a.entries_refused(), 1);
    // ...and within the bounds, by the origin rule: c cannot change b's
    // generation, status or status version while a hears b itself.
    for forged in [
        record(8, 0, MemberState::Left, 1),
        record(7, 2, MemberState::Left, 5),
        record(
            7,
            2,
            MemberState::Left,
            crate::failure_detector::gossip::FORGOTTEN_STATUS_VERSION,
        ),
    ] {
        a.receive(&id_of("c"), entry_message("b", forged, false), 100);
        assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Alive));
        let now = record_of(&a, "b");
        assert_eq!(
            (now.generation, now.status, now.status_version),
            (7, MemberState::Alive, 1)
        );
    }
    // A relayed heartbeat within b's generation still counts (that is how
    // liveness spreads).
    assert_eq!(record_of(&a, "b").heartbeat, 2);
    // b's own word changes its status.
    let leaving = record(7, 3, MemberState::Leaving, 2);
    a.receive(&id_of("b"), entry_message("b", leaving, false), 200);
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Leaving));
}

#[test]
fn a_relay_speaks_for_a_member_this_node_cannot_hear() {
    let mut a = a_hears_b();
    let mut rng = SmallRng::seed_from_u64(1);
    a.tick(5_000, &mut rng);
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Suspect));
    // b left and stopped; c heard it say so.
    let left = record(7, 4, MemberState::Left, 3);
    a.receive(&id_of("c"), entry_message("b", left, false), 5_100);
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Left));
}

#[test]
fn a_member_outruns_a_forgery_about_itself() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut a = node("a", 0);
    let mut b = node("b", 0);
    a.receive(&id_of("b"), b.tick(1_000, &mut rng).message, 1_000);
    // a stopped hearing b; a forged `left` for b, relayed by c, is taken.
    a.tick(7_000, &mut rng);
    let forged = record(b.generation(), 1, MemberState::Left, 9);
    a.receive(&id_of("c"), entry_message("b", forged, false), 7_000);
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Left));
    // b sees it in a's list and starts a new generation, which wins.
    let before = b.generation();
    b.receive(&id_of("a"), a.tick(8_000, &mut rng).message, 8_000);
    assert_eq!(b.generation(), before + 1);
    a.receive(&id_of("b"), b.tick(8_000, &mut rng).message, 8_000);
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Alive));
}

#[test]
fn out_of_bounds_records_and_members_are_refused() {
    const WALL_MS: u64 = 1_764_000_000_000;
    let mut a = node("a", WALL_MS);
    let skew = GossipOptions::default().generation_skew_ms_max;
    let at = |generation, heartbeat, status_version| {
        record(generation, heartbeat, MemberState::Alive, status_version)
    };
    // The bounds themselves.
    assert_eq!(at(WALL_MS + skew, 0, 0).validate(WALL_MS, skew), Ok(()));
    for (bad, name) in [
        (at(WALL_MS + skew + 1, 0, 0), "generation"),
        (at(u64::MAX, 0, 0), "generation"),
        (at(WALL_MS - 10, skew + 11, 0), "heartbeat"),
        (at(WALL_MS, 0, STATUS_VERSION_MAX + 1), "status version"),
        (record(WALL_MS, 0, MemberState::Down, 1), "status"),
    ] {
        let refused = bad.validate(WALL_MS, skew).unwrap_err().to_string();
        assert!(refused.contains(name), "{refused}");
    }
    let forgotten = at(
        WALL_MS,
        0,
        crate::failure_detector::gossip::FORGOTTEN_STATUS_VERSION,
    );
    assert_eq!(forgotten.validate(WALL_MS, skew), Ok(()));
    // In gossip: a future generation, first-hand or not, is never taken; the
    // node's wall clock advances with its monotonic one.
    let future = at(WALL_MS + skew + 5_000, 0, 0);
    a.receive(
        &id_of("b"),
        entry_message("b", future.clone(), false),
        WALL_MS,
    );
    assert_eq!(a.state_of(&id_of("b")), None);
    a.receive(
        &id_of("b"),
        entry_message("b", future, false),
        WALL_MS + 5_000,
    );
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Alive));
    // A member of weight 2^32-1, in gossip or in a handshake.
    let heavy = MemberInfo {
        weight: u32::MAX,
        ..info("h")
    };
    let message = GossipMessage {
        version: GOSSIP_MESSAGE_VERSION,
        members: vec![GossipEntry {
            info: heavy.clone(),
            record: at(WALL_MS, 0, 0),
            stale: false,
        }],
    };
    a.receive(&id_of("h"), message, WALL_MS);
    assert!(a.introduce(heavy, WALL_MS).is_empty());
    assert_eq!(a.state_of(&id_of("h")), None);
    assert_eq!(a.entries_refused(), 3);
    // A message listing more than MEMBERS_MAX members is refused whole.
    let flood = GossipMessage {
        version: GOSSIP_MESSAGE_VERSION,
        members: (0..=MEMBERS_MAX)
            .map(|i| GossipEntry {
                info: info(&format!("f{i}")),
                record: at(WALL_MS, 0, 0),
                stale: false,
            })
            .collect(),
    };
    a.receive(&id_of("f0"), flood, WALL_MS);
    assert_eq!(a.members(WALL_MS).len(), 2);
}
