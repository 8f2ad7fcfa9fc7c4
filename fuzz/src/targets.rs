//! What each fuzz target does with one input: the decoders it runs and
//! the laws it checks (a broken law panics, which libFuzzer reports as a
//! crash). `fuzz_targets/<name>.rs` calls the function of its name; the
//! root package's `tests/fuzz_corpus.rs` feeds every file of
//! `corpus/<name>/` to it, so a corpus is also a regression test.
//!
//! Also compiled into `tests/fuzz_corpus.rs` (with `#[path]`): it reaches
//! the helpers as `crate::harness` and names only crates both have.

use rand::rngs::SmallRng;
use rand::SeedableRng;

use ringkv_actors::conflict_resolver::{
    is_stale, ContextKey, Object, VersionLimits, VersionVector,
};
use ringkv_actors::failure_detector::{Gossip, GossipMessage, GossipOptions};
use ringkv_actors::storage::keys::{hint_key, parse_hint_key, HintRecord};
use ringkv_actors::storage::lsm::fuzz;
use ringkv_actors::wire::client::{
    encode_request, encode_response, parse_request, parse_response, RequestLimits,
    MAX_KEY_BYTES_DEFAULT, MAX_VALUE_BYTES_DEFAULT,
};
use ringkv_actors::wire::peer::{MemberInfo, PeerFrame, PeerReply, PeerRequest};
use ringkv_actors::wire::MAX_FRAME_BYTES_DEFAULT;
use ringkv_actors::NodeId;

use crate::harness::{
    block_body, fix_block, fix_log, fix_manifest, fix_table, frames_any_split, index_section, mode,
    seal_block, COMPRESSION_LZ4, COMPRESSION_NONE,
};

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz_targets/` and `corpus/`).
pub const TARGETS: [(&str, Target); 9] = [
    ("client_frames", client_frames),
    ("peer_frames", peer_frames),
    ("versioning", versioning),
    ("sstable_block", sstable_block),
    ("sstable_index", sstable_index),
    ("sstable_table", sstable_table),
    ("commit_log", commit_log),
    ("manifest", manifest),
    ("hints_and_gossip", hints_and_gossip),
];

const CLIENT_LIMITS: RequestLimits = RequestLimits {
    max_key_bytes: MAX_KEY_BYTES_DEFAULT,
    max_value_bytes: MAX_VALUE_BYTES_DEFAULT,
    replicas: 3,
};

/// The client listener's input: a byte stream cut into frames by
/// `FrameCodec`, each frame parsed by `parse_request` and, failing that,
/// answered with `encode_response`; the client's side, `parse_response`,
/// reads the same frames.
///
/// Laws: framing does not depend on how the bytes arrive; a request that
/// parses, encoded again by `encode_request`, parses to itself.
pub fn client_frames(data: &[u8]) {
    for frame in frames_any_split(data, MAX_FRAME_BYTES_DEFAULT) {
        match parse_request(&frame, &CLIENT_LIMITS) {
            Ok(request) => {
                let again = parse_request(&encode_request(&request), &CLIENT_LIMITS);
                assert_eq!(again, Ok(request), "a request does not round-trip");
            }
            Err((id, error)) => {
                encode_response(id, &Err(error));
            }
        }
        let _ = parse_response(&frame);
    }
}

/// A peer link's input: a byte stream cut into frames by `FrameCodec`,
/// each decoded by `PeerFrame::decode`; the objects and gossip lists that
/// requests and replies carry are decoded as their receivers decode them.
///
/// Laws: framing does not depend on how the bytes arrive; a frame that
/// decodes, encoded again, decodes to itself.
pub fn peer_frames(data: &[u8]) {
    for frame in frames_any_split(data, MAX_FRAME_BYTES_DEFAULT) {
        let Ok(decoded) = PeerFrame::decode(&frame) else {
            continue;
        };
        let encoded = decoded.encode().expect("a decoded frame encodes");
        let again = PeerFrame::decode(&encoded).expect("an encoded frame decodes");
        assert_eq!(again, decoded, "a peer frame does not round-trip");
        carried(&decoded);
    }
}

/// Decodes what a peer frame carries, as the serving actor would.
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

/// The versioning decoders: `Object::decode` (stored values, replica
/// writes), the clock decoder behind a context's MAC, and
/// `ContextKey::open` (client contexts), all run on every input.
///
/// Laws, where a decode succeeds: encode then decode gives the same value
/// and the encoding is stable; `merge` with itself changes nothing (and
/// read repair sees nothing stale); a coordinator's write on top of the
/// object gives an object that encodes and decodes.
pub fn versioning(data: &[u8]) {
    if let Ok(object) = Object::decode(data) {
        let encoded = object.encode();
        let again = Object::decode(&encoded).expect("an encoded object decodes");
        assert_eq!(again, object, "an object does not round-trip");
        assert_eq!(
            again.encode(),
            encoded,
            "an object's encoding is not stable"
        );
        assert_eq!(object.merge(&object), object, "merge is not idempotent");
        assert!(
            !is_stale(Some(&object), &object),
            "an object is stale to itself"
        );
        check_clock(object.context());
        let coordinator = NodeId::new("fuzz").expect("a valid node id");
        let limits = VersionLimits::default();
        let written = Object::update(
            Some(&object),
            object.context(),
            Some(b"v".to_vec()),
            &coordinator,
            0,
            &limits,
        );
        if let Ok(written) = written {
            let again = Object::decode(&written.encode()).expect("a written object decodes");
            assert_eq!(again, written);
        }
    }
    if let Ok(clock) = VersionVector::decode_clock_for_fuzzing(data) {
        check_clock(&clock);
    }
    // A context as a client sends it: refused unless sealed for the key.
    let _ = ContextKey::from_cluster_name("ringkv").open(b"k", data);
}

fn check_clock(clock: &VersionVector) {
    let key = ContextKey::from_cluster_name("ringkv");
    let sealed = key.seal(b"k", clock);
    let again = key.open(b"k", &sealed).expect("a sealed context opens");
    assert_eq!(&again, clock, "a context does not round-trip");
    assert!(
        key.open(b"j", &sealed).is_err(),
        "a context opens for another key"
    );
    let mut merged = clock.clone();
    merged.merge(clock);
    assert_eq!(&merged, clock, "clock merge is not idempotent");
    assert!(clock.descends(clock));
}

/// SSTable data blocks: `Block::decode` (trailer, checksum, LZ4, entries)
/// then every entry read and every key sought.
///
/// The first byte picks the mode: 0 the rest is a stored block as is; 1
/// the same with its checksum fixed; 2 the rest is a block body, sealed
/// uncompressed; 3 the rest is a block body, sealed with LZ4.
///
/// Law: a body that decodes is the canonical encoding of its entries.
pub fn sstable_block(data: &[u8]) {
    let (mode, rest) = mode(data);
    let stored = match mode % 4 {
        0 => rest.to_vec(),
        1 => {
            let mut stored = rest.to_vec();
            fix_block(&mut stored);
            stored
        }
        2 => seal_block(rest, COMPRESSION_NONE),
        _ => seal_block(rest, COMPRESSION_LZ4),
    };
    let decoded = fuzz::block(&stored);
    if mode % 4 >= 2 {
        if let Ok(entries) = decoded {
            assert_eq!(block_body(&entries), rest, "a block body is not canonical");
        }
    }
}

/// SSTable block indexes: `BlockIndex::parse`, then every block's last
/// key and handle read and every last key sought.
///
/// Input: the index's offset in its table (u64 LE), then the index bytes.
///
/// Law: an index that parses is the canonical encoding of its blocks.
pub fn sstable_index(data: &[u8]) {
    let Some((offset, index)) = data.split_first_chunk::<8>() else {
        return;
    };
    if let Some(blocks) = fuzz::index(index, u64::from_le_bytes(*offset)) {
        let blocks: Vec<_> = blocks
            .into_iter()
            .map(|block| block.expect("a parsed index names all its blocks"))
            .collect();
        assert_eq!(index_section(&blocks), index, "an index is not canonical");
    }
}

/// Whole SSTables: `Table::open` (header, footer, index and key filter
/// sections with their checksums, the first block), then every block read
/// and every key looked up through the key filter and the index (tables
/// of every format version the reader knows; the seeds hold both).
///
/// The first byte picks the mode: even, the rest is a table file as is;
/// odd, the same with every checksum the footer and index lead to fixed.
pub fn sstable_table(data: &[u8]) {
    let (mode, rest) = mode(data);
    let mut table = rest.to_vec();
    if mode % 2 == 1 {
        fix_table(&mut table);
    }
    let _ = fuzz::table(&table);
}

/// The commit log: a segment replayed by the log's reader, or segments
/// recovered the way `LsmEngine::open` does.
///
/// The first byte picks the mode: bit 0, the segment is the newest (a torn
/// tail is allowed); bit 1, every record's checksums are fixed first; bit
/// 2, recovery over two segments, split at the offset in the next two
/// bytes (u16 LE), instead of one replay.
///
/// Laws, for a replay that succeeds: the records it found, encoded again,
/// are the segment's first bytes; an older segment holds only zeros after
/// them; and they replay to themselves.
pub fn commit_log(data: &[u8]) {
    let (mode, rest) = mode(data);
    let newest = mode & 1 == 1;
    let fix = |segment: &[u8]| {
        let mut segment = segment.to_vec();
        if mode & 2 == 2 {
            fix_log(&mut segment);
        }
        segment
    };
    if mode & 4 == 4 {
        let Some((split, rest)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let split = usize::from(u16::from_le_bytes(*split)).min(rest.len());
        let (older, newer) = rest.split_at(split);
        let _ = fuzz::recover_log(&[&fix(older), &fix(newer)]);
        return;
    }
    let segment = fix(rest);
    if let Ok(records) = fuzz::log_segment(&segment, newest) {
        assert!(segment.starts_with(&records), "records are not canonical");
        if !newest {
            assert!(segment[records.len()..].iter().all(|b| *b == 0));
        }
        let again = fuzz::log_segment(&records, false).expect("encoded records replay");
        assert_eq!(again, records, "records do not replay to themselves");
    }
}

/// The manifest: `Manifest::decode`.
///
/// The first byte picks the mode: even, the rest as is; odd, the rest with
/// its trailing checksum fixed.
///
/// Law: a manifest that decodes encodes back to the same bytes.
pub fn manifest(data: &[u8]) {
    let (mode, rest) = mode(data);
    let mut manifest = rest.to_vec();
    if mode % 2 == 1 {
        fix_manifest(&mut manifest);
    }
    if let Ok(encoded) = fuzz::manifest(&manifest) {
        assert_eq!(encoded, manifest, "a manifest does not round-trip");
    }
}

/// The storage keyspace's hint keys (`parse_hint_key`) and hint records
/// (`HintRecord::decode`), and the gossip message (`GossipMessage`, as the
/// failure detector decodes it with `rmp_serde::from_slice`), all run on
/// every input. A gossip message that decodes is merged into a node's
/// member list (`Gossip::receive`), twice, followed by a tick.
///
/// Laws: a hint key that parses is rebuilt by `hint_key`; records and
/// messages that decode round-trip; receiving a message again changes no
/// member's record.
pub fn hints_and_gossip(data: &[u8]) {
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
}

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
