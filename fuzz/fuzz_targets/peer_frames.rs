//! A peer link's input: a byte stream cut into frames by `FrameCodec`,
//! each decoded by `PeerFrame::decode`; the objects and gossip lists that
//! requests and replies carry are decoded as their receivers decode them.
//!
//! Laws: framing does not depend on how the bytes arrive; a frame that
//! decodes, encoded again, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::conflict_resolver::Object;
use ringkv_actors::failure_detector::GossipMessage;
use ringkv_actors::wire::peer::{PeerFrame, PeerReply, PeerRequest};
use ringkv_actors::wire::MAX_FRAME_BYTES_DEFAULT;

fuzz_target!(|data: &[u8]| {
    for frame in ringkv_fuzz::frames_any_split(data, MAX_FRAME_BYTES_DEFAULT) {
        let Ok(decoded) = PeerFrame::decode(&frame) else {
            continue;
        };
        let encoded = decoded.encode().expect("a decoded frame encodes");
        let again = PeerFrame::decode(&encoded).expect("an encoded frame decodes");
        assert_eq!(again, decoded, "a peer frame does not round-trip");
        carried(&decoded);
    }
});

/// Decodes what a frame carries, as the serving actor would.
fn carried(frame: &PeerFrame) {
    match frame {
        PeerFrame::Request { body, .. } => match body {
            PeerRequest::Write(write) => drop(Object::decode(&write.object)),
            PeerRequest::HintedWrite(write) => drop(Object::decode(&write.object)),
            PeerRequest::Gossip(gossip) => {
                drop(rmp_serde::from_slice::<GossipMessage>(&gossip.message))
            }
            _ => {}
        },
        PeerFrame::Response {
            body: Ok(reply), ..
        } => match reply {
            PeerReply::Read(read) => {
                if let Some(object) = &read.object {
                    drop(Object::decode(object));
                }
            }
            PeerReply::Scan(page) => {
                for (_, object) in &page.entries {
                    drop(Object::decode(object));
                }
            }
            PeerReply::Gossip(gossip) => {
                drop(rmp_serde::from_slice::<GossipMessage>(&gossip.message))
            }
            _ => {}
        },
        _ => {}
    }
}
