//! Tests of starting a node (`node.rs`).
#![allow(clippy::unwrap_used)]

use super::*;
use ringkv_actors::failure_detector::gossip::MemberRecord;
use ringkv_actors::NodeId;

fn persisted(id: &str, status: MemberState) -> PersistedMember {
    PersistedMember {
        info: MemberInfo {
            id: NodeId::new(id).unwrap(),
            peer_addr: "127.0.0.1:1".into(),
            client_addr: "127.0.0.1:2".into(),
            dc: "dc1".into(),
            rack: "r1".into(),
            weight: 1,
        },
        record: MemberRecord {
            generation: 1,
            heartbeat: 1,
            status,
            status_version: 1,
        },
    }
}

#[test]
fn joins_when_new_with_seeds_or_when_it_never_finished_joining() {
    let me = NodeId::new("n1").unwrap();
    assert!(should_join(&me, &[], true), "a new node with seeds joins");
    assert!(!should_join(&me, &[], false), "the first node does not");
    let serving = [
        persisted("n1", MemberState::Alive),
        persisted("n2", MemberState::Alive),
    ];
    assert!(
        !should_join(&me, &serving, true),
        "a restart of a serving node serves"
    );
    let crashed = [
        persisted("n1", MemberState::Joining),
        persisted("n2", MemberState::Alive),
    ];
    assert!(
        should_join(&me, &crashed, true),
        "a crash mid-join joins again"
    );
    let left = [persisted("n1", MemberState::Left)];
    assert!(
        should_join(&me, &left, true),
        "a node that left streams before serving again"
    );
}
