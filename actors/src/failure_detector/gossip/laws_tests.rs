//! The merge laws, checked with proptest.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::tests::{self, id_of, info, node, record};
use super::*;

fn administrative() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Joining),
        Just(MemberState::Alive),
        Just(MemberState::Leaving),
        Just(MemberState::Left),
    ]
}

fn any_record() -> impl Strategy<Value = MemberRecord> {
    (0u64..3, 0u64..4, administrative(), 0u64..3).prop_map(|(g, h, s, v)| record(g, h, s, v))
}

fn joined(a: &MemberRecord, b: &MemberRecord) -> MemberRecord {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// Entries about members `m0..m3` (never the receiver `a`).
fn any_message() -> impl Strategy<Value = GossipMessage> {
    prop::collection::vec((0usize..4, any_record(), any::<bool>()), 0..8).prop_map(|entries| {
        GossipMessage {
            version: GOSSIP_MESSAGE_VERSION,
            members: entries
                .into_iter()
                .map(|(m, record, stale)| GossipEntry {
                    info: info(&format!("m{m}")),
                    record,
                    stale,
                })
                .collect(),
        }
    })
}

fn records(gossip: &Gossip) -> Vec<(MemberInfo, MemberRecord)> {
    let snapshot = gossip.snapshot().into_iter();
    snapshot.map(|p| (p.info, p.record)).collect()
}

proptest! {
    #[test]
    fn record_merge_is_commutative(a in any_record(), b in any_record()) {
        prop_assert_eq!(joined(&a, &b), joined(&b, &a));
    }

    #[test]
    fn record_merge_is_associative(a in any_record(), b in any_record(), c in any_record()) {
        prop_assert_eq!(joined(&joined(&a, &b), &c), joined(&a, &joined(&b, &c)));
    }

    #[test]
    fn record_merge_is_idempotent(a in any_record(), b in any_record()) {
        prop_assert_eq!(joined(&a, &a), a.clone());
        let ab = joined(&a, &b);
        prop_assert_eq!(joined(&ab, &b), ab);
    }

    /// The law on [`Gossip::receive`]: the known records do not depend on
    /// the order of messages, nor on repeats. Each entry comes from the
    /// member it describes (the origin rule lets a relay rewrite only a
    /// member this node cannot hear, which depends on timing).
    #[test]
    fn receive_order_and_repeats_do_not_change_known_records(
        m1 in any_message(),
        m2 in any_message(),
        now_ms in 0u64..20_000,
    ) {
        let mut forward = node("a", 0);
        first_hand(&mut forward, &m1, now_ms);
        first_hand(&mut forward, &m2, now_ms);
        let mut backward = node("a", 0);
        first_hand(&mut backward, &m2, now_ms);
        first_hand(&mut backward, &m1, now_ms);
        first_hand(&mut backward, &m1, now_ms);
        prop_assert_eq!(records(&forward), records(&backward));
        // Equal to the join of every record, member by member.
        for (info, record) in records(&forward).into_iter().skip(1) {
            let all = m1.members.iter().chain(&m2.members);
            let expected = all
                .filter(|e| e.info.id == info.id)
                .fold(MemberRecord::unknown(), |acc, e| joined(&acc, &e.record));
            prop_assert_eq!(record, expected);
        }
    }

    /// A relay never changes the generation or status of a member this
    /// node hears, whatever it sends and in whatever order.
    #[test]
    fn relays_never_rewrite_a_member_heard_first_hand(
        relayed in any_message(),
        now_ms in 0u64..4_000,
    ) {
        let mut a = node("a", 0);
        let own: Vec<MemberRecord> = (0..4)
            .map(|m| {
                let heard = record(1, 1, MemberState::Alive, 1);
                let from = id_of(&format!("m{m}"));
                a.receive(&from, tests::entry_message(&format!("m{m}"), heard.clone(), false), 0);
                heard
            })
            .collect();
        a.receive(&id_of("x"), relayed, now_ms);
        for (m, heard) in own.iter().enumerate() {
            let now = tests::record_of(&a, &format!("m{m}"));
            prop_assert_eq!((now.generation, now.status, now.status_version),
                (heard.generation, heard.status, heard.status_version));
            prop_assert_eq!(a.state_of(&id_of(&format!("m{m}"))), Some(MemberState::Alive));
        }
    }
}

/// Delivers each entry of `message` as a message from the member it
/// describes.
fn first_hand(gossip: &mut Gossip, message: &GossipMessage, now_ms: u64) {
    for entry in &message.members {
        let single = GossipMessage {
            version: GOSSIP_MESSAGE_VERSION,
            members: vec![entry.clone()],
        };
        gossip.receive(&entry.info.id, single, now_ms);
    }
}
