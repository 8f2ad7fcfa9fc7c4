//! The storage keyspace's hint keys (`parse_hint_key`) and hint records
//! (`HintRecord::decode`), and the gossip message (`GossipMessage`, as the
//! failure detector decodes it with `rmp_serde::from_slice`), all run on
//! every input. A gossip message that decodes is merged into a node's
//! member list (`Gossip::receive`), twice, followed by a tick.
//!
//! Laws: a hint key that parses is rebuilt by `hint_key`; records and
//! messages that decode round-trip; receiving a message again changes no
//! member's record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use ringkv_actors::failure_detector::{Gossip, GossipMessage, GossipOptions};
use ringkv_actors::storage::keys::{hint_key, parse_hint_key, HintRecord};
use ringkv_actors::wire::peer::MemberInfo;
use ringkv_actors::NodeId;

fuzz_target!(|data: &[u8]| {
    if let Some((owner, user_key)) = parse_hint_key(data) {
        assert_eq!(
            hint_key(&owner, user_key),
            data,
            "a hint key does not round-trip"
        );
    }
    if let Ok(record) = HintRecord::decode(data) {
        assert_eq!(HintRecord::decode(&record.encode()).ok(), Some(record));
    }
    if let Ok(message) = rmp_serde::from_slice::<GossipMessage>(data) {
        let encoded = rmp_serde::to_vec_named(&message).expect("a message encodes");
        let again: GossipMessage = rmp_serde::from_slice(&encoded).expect("a message decodes");
        assert_eq!(again, message, "a gossip message does not round-trip");
        receive(message);
    }
});

fn receive(message: GossipMessage) {
    let member = |id: &str| MemberInfo {
        id: NodeId::new(id).expect("a valid node id"),
        peer_addr: "127.0.0.1:7101".into(),
        client_addr: "127.0.0.1:7001".into(),
        dc: "dc1".into(),
        rack: "r1".into(),
        weight: 1,
    };
    // A small list, so that a message can fill it.
    let options = GossipOptions {
        gossip_members_max: 8,
        ..GossipOptions::default()
    };
    let mut gossip = Gossip::new(member("n1"), Vec::new(), 1_000, 0, options);
    let from = member("n2").id;
    gossip.receive(&from, message.clone(), 10);
    let records = gossip.snapshot();
    gossip.receive(&from, message, 20);
    assert_eq!(
        gossip.snapshot(),
        records,
        "a repeated message changed records"
    );
    gossip.tick(10_000, &mut SmallRng::seed_from_u64(1));
    gossip.members(10_000);
}
