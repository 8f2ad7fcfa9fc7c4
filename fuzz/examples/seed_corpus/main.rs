//! Writes the seed corpora of the fuzz targets, `fuzz/corpus/<target>/`,
//! from real frames and files: requests and responses as the client and
//! the node encode them, peer frames, objects and contexts minted by the
//! versioning rules, gossip lists from a gossip node, and the tables, log
//! segments and manifests an `LsmEngine` writes (over the in-memory
//! `FaultVfs`, which hands their bytes back).
//!
//! ```sh
//! cd fuzz && cargo run --example seed_corpus
//! ```
//!
//! Deterministic: fixed keys, values and times, so running it again gives
//! the same files. Each target's folder is emptied first.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_bytes::ByteBuf;

use ringkv_actors::conflict_resolver::{ContextKey, Object, VersionLimits, VersionVector};
use ringkv_actors::failure_detector::{Gossip, GossipOptions, MemberState};
use ringkv_actors::storage::engine::{Engine, WriteOp};
use ringkv_actors::storage::keys::{data_key, hint_key, HintRecord};
use ringkv_actors::storage::lsm::vfs::fault::FaultVfs;
use ringkv_actors::storage::lsm::{fuzz, Compression, LsmEngine, LsmOptions, SyncPolicy};
use ringkv_actors::wire::client::{
    encode_request, encode_response, ClientError, ClientOp, ClientReply, ClientRequest, ErrorCode,
    MemberStatus,
};
use ringkv_actors::wire::frame::encode_frame;
use ringkv_actors::wire::peer::{
    Coordinated, Durable, ForwardedWrite, GossipExchange, GossipReply, HintedWrite, LeafHashes,
    MemberInfo, MerkleLeaves, PeerFrame, PeerRpc, Probe, Probed, RemoteError, ReplicaRead,
    ReplicaWrite, ScanPage, ScanRange, StoredObject, PEER_PROTOCOL_VERSION,
};
use ringkv_actors::NodeId;
use ringkv_fuzz::{block_body, index_section, TABLE_FOOTER_BYTES};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Where the store lives inside the FaultVfs.
const DB: &str = "/db";

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let objects = objects()?;
    let gossip = gossip_messages()?;
    let store = store_files()?;
    let mut corpus = Corpus::new(root);
    client_frames(&mut corpus.target("client_frames")?)?;
    peer_frames(&mut corpus.target("peer_frames")?, &objects, &gossip)?;
    versioning(&mut corpus.target("versioning")?, &objects)?;
    sstables(&mut corpus, &store)?;
    commit_log(&mut corpus.target("commit_log")?, &store)?;
    manifests(&mut corpus.target("manifest")?, &store)?;
    hints_and_gossip(&mut corpus.target("hints_and_gossip")?, &gossip)?;
    println!("wrote {} files, {} bytes", corpus.files, corpus.bytes);
    Ok(())
}

/// The corpus folders and a count of what went in.
struct Corpus {
    root: PathBuf,
    files: usize,
    bytes: usize,
}

/// One target's folder.
struct Target<'a> {
    corpus: &'a mut Corpus,
    dir: PathBuf,
}

impl Corpus {
    fn new(root: PathBuf) -> Self {
        Self {
            root,
            files: 0,
            bytes: 0,
        }
    }

    fn target(&mut self, name: &str) -> Result<Target<'_>> {
        let dir = self.root.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Target { corpus: self, dir })
    }
}

impl Target<'_> {
    fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        std::fs::write(self.dir.join(name), bytes)?;
        self.corpus.files += 1;
        self.corpus.bytes += bytes.len();
        Ok(())
    }

    /// Writes `bytes` behind a mode byte (see each target's doc).
    fn write_mode(&mut self, name: &str, mode: u8, bytes: &[u8]) -> Result<()> {
        self.write(
            &format!("{name}-mode{mode}"),
            &[&[mode][..], bytes].concat(),
        )
    }
}

fn node(id: &str) -> Result<NodeId> {
    Ok(NodeId::new(id)?)
}

fn member(id: &str, port: u16) -> Result<MemberInfo> {
    Ok(MemberInfo {
        id: node(id)?,
        peer_addr: format!("127.0.0.1:{}", 7100 + port),
        client_addr: format!("127.0.0.1:{}", 7000 + port),
        dc: "dc1".into(),
        rack: format!("r{port}"),
        weight: 1,
    })
}

/// Objects as the coordinators mint them: one write, a delete, concurrent
/// siblings, a write that resolves them, writes by version actors.
fn objects() -> Result<Vec<(&'static str, Object)>> {
    let limits = VersionLimits::default();
    let blind = VersionVector::new();
    let (n1, n2) = (node("n1")?, node("n2")?);
    let actor = n1.version_actor(0x1a2b_3c4d);
    let one = Object::update(None, &blind, Some(b"apples".to_vec()), &n1, 1_000, &limits)?;
    let deleted = Object::update(Some(&one), one.context(), None, &n1, 2_000, &limits)?;
    let siblings = Object::update(
        Some(&one),
        &blind,
        Some(b"pears".to_vec()),
        &n2,
        3_000,
        &limits,
    )?;
    let resolved = Object::update(
        Some(&siblings),
        siblings.context(),
        Some(b"apples+pears".to_vec()),
        &n2,
        4_000,
        &limits,
    )?;
    let by_actor = Object::update(None, &blind, Some(vec![0; 64]), &actor, 5_000, &limits)?;
    let merged = by_actor.merge(&siblings);
    Ok(vec![
        ("one-write", one),
        ("deleted", deleted),
        ("siblings", siblings),
        ("resolved", resolved),
        ("version-actor", by_actor),
        ("merged", merged),
    ])
}

/// A gossip node's lists: alone, then knowing others in several states.
fn gossip_messages() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut gossip = Gossip::new(
        member("n1", 1)?,
        Vec::new(),
        1_000,
        0,
        GossipOptions::default(),
    );
    let mut rng = SmallRng::seed_from_u64(7);
    let alone = gossip.tick(1_000, &mut rng).message;
    gossip.introduce(member("n2", 2)?, 1_000);
    gossip.introduce(member("n3", 3)?, 1_000);
    gossip.set_own_status(MemberState::Leaving, 2_000);
    let three = gossip.tick(20_000, &mut rng).message;
    Ok(vec![
        ("alone", rmp_serde::to_vec_named(&alone)?),
        ("three-members", rmp_serde::to_vec_named(&three)?),
    ])
}

fn client_frames(target: &mut Target<'_>) -> Result<()> {
    let request = |id, op| {
        encode_frame(&encode_request(&ClientRequest {
            id,
            op,
            timeout_ms: (id % 2 == 0).then_some(500),
            consistency: None,
        }))
    };
    let key = b"cart:42".to_vec();
    let requests = [
        ("ping", ClientOp::Ping),
        ("status", ClientOp::Status),
        ("leave", ClientOp::Leave),
        ("forget", ClientOp::Forget { node: "n3".into() }),
        (
            "get",
            ClientOp::Get {
                key: key.clone(),
                r: Some(2),
                pr: Some(1),
            },
        ),
        (
            "put",
            ClientOp::Put {
                key: key.clone(),
                value: b"apples".to_vec(),
                context: Some(sealed(&key, &VersionVector::new())),
                w: Some(2),
                pw: None,
                ttl_ms: None,
            },
        ),
        (
            "delete",
            ClientOp::Delete {
                key: key.clone(),
                context: None,
                w: None,
                pw: Some(0),
            },
        ),
    ];
    let mut stream = Vec::new();
    for (id, (name, op)) in (1..).zip(requests) {
        let frame = request(id, op);
        target.write(&format!("request-{name}"), &frame)?;
        stream.extend_from_slice(&frame);
    }
    target.write("requests-pipelined", &stream)?;
    let responses = [
        ("pong", Ok(ClientReply::Pong { node: "n1".into() })),
        (
            "values",
            Ok(ClientReply::Values {
                values: vec![b"apples".to_vec(), b"pears".to_vec()],
                context: Some(vec![1, 0x90]),
            }),
        ),
        (
            "written",
            Ok(ClientReply::Written {
                context: vec![1, 0x90],
            }),
        ),
        (
            "status",
            Ok(ClientReply::Status {
                node: "n1".into(),
                members: vec![MemberStatus {
                    id: "n1".into(),
                    addr: "127.0.0.1:7101".into(),
                    client_addr: "127.0.0.1:7001".into(),
                    dc: "dc1".into(),
                    rack: "r1".into(),
                    state: "alive".into(),
                    ring_share: 0.5,
                    heartbeat_age_ms: 0,
                }],
                extra: vec![("n".into(), 3.into())],
            }),
        ),
        (
            "error",
            Err(ClientError::new(
                ErrorCode::Unavailable,
                "2 of 3 replicas down",
            )),
        ),
    ];
    for (id, (name, result)) in (100..).zip(responses) {
        target.write(
            &format!("response-{name}"),
            &encode_frame(&encode_response(id, &result)),
        )?;
    }
    // The edges of framing: an empty frame, a torn one, one over the limit.
    target.write("frame-empty", &encode_frame(b""))?;
    let torn = request(9, ClientOp::Ping);
    target.write("frame-torn", &torn[..torn.len() - 2])?;
    target.write("frame-too-large", &u32::MAX.to_be_bytes())?;
    Ok(())
}

fn peer_frames(
    target: &mut Target<'_>,
    objects: &[(&str, Object)],
    gossip: &[(&str, Vec<u8>)],
) -> Result<()> {
    let object = ByteBuf::from(objects.first().map(|(_, o)| o.encode()).unwrap_or_default());
    let message = ByteBuf::from(gossip.last().map(|(_, m)| m.clone()).unwrap_or_default());
    let key = ByteBuf::from(b"\x00\x00\x00\x00\x00\x00\x00\x2acart:42".to_vec());
    let request = |id, body| PeerFrame::Request {
        id,
        trace: 1_000 + id,
        timeout_ms: 500,
        body,
    };
    let frames = vec![
        (
            "hello",
            PeerFrame::Hello {
                protocol: PEER_PROTOCOL_VERSION,
                cluster: "ringkv".into(),
                node: node("n1")?,
                nonce: ByteBuf::from(vec![1; 32]),
            },
        ),
        (
            "challenge",
            PeerFrame::Challenge {
                node: node("n2")?,
                nonce: ByteBuf::from(vec![2; 32]),
            },
        ),
        (
            "proof",
            PeerFrame::Proof {
                proof: ByteBuf::from(vec![3; 32]),
                member: member("n1", 1)?,
            },
        ),
        (
            "welcome",
            PeerFrame::Welcome {
                proof: ByteBuf::from(vec![4; 32]),
                member: member("n2", 2)?,
            },
        ),
        (
            "read",
            request(1, ReplicaRead { key: key.clone() }.into_request()),
        ),
        (
            "write",
            request(
                2,
                ReplicaWrite {
                    key: key.clone(),
                    object: object.clone(),
                }
                .into_request(),
            ),
        ),
        (
            "hinted-write",
            request(
                3,
                HintedWrite {
                    key: key.clone(),
                    object: object.clone(),
                    owner: node("n3")?,
                }
                .into_request(),
            ),
        ),
        (
            "coordinate",
            request(
                4,
                ForwardedWrite {
                    key: key.clone(),
                    value: Some(ByteBuf::from(b"apples".to_vec())),
                    context: None,
                    w: 2,
                    pw: 1,
                    supersede_local: false,
                    ttl_ms: None,
                    dc_quorums: vec![("dc1".into(), 2)],
                }
                .into_request(),
            ),
        ),
        (
            "scan",
            request(
                5,
                ScanRange {
                    start: key.clone(),
                    end: None,
                    limit: 100,
                    bytes_max: 1 << 20,
                }
                .into_request(),
            ),
        ),
        (
            "merkle-leaves",
            request(
                6,
                MerkleLeaves {
                    with: node("n2")?,
                    leaves: 64,
                }
                .into_request(),
            ),
        ),
        (
            "gossip",
            request(
                7,
                GossipExchange {
                    message: message.clone(),
                }
                .into_request(),
            ),
        ),
        ("probe", request(8, Probe.into_request())),
        (
            "reply-read",
            reply(
                1,
                ReplicaRead::reply_into(StoredObject {
                    object: Some(object.clone()),
                }),
            ),
        ),
        ("reply-write", reply(2, ReplicaWrite::reply_into(Durable))),
        (
            "reply-coordinate",
            reply(
                4,
                ForwardedWrite::reply_into(Coordinated {
                    context: ByteBuf::from(vec![1, 0x90]),
                }),
            ),
        ),
        (
            "reply-scan",
            reply(
                5,
                ScanRange::reply_into(ScanPage {
                    entries: vec![(key.clone(), object.clone())],
                    more: true,
                    resume: None,
                }),
            ),
        ),
        (
            "reply-merkle-leaves",
            reply(
                6,
                MerkleLeaves::reply_into(LeafHashes {
                    hashes: vec![1, u64::MAX, 0xdead_beef],
                }),
            ),
        ),
        (
            "reply-gossip",
            reply(7, GossipExchange::reply_into(GossipReply { message })),
        ),
        ("reply-probe", reply(8, Probe::reply_into(Probed))),
        (
            "reply-error",
            PeerFrame::Response {
                id: 9,
                body: Err(RemoteError::new(ErrorCode::Timeout, "replica too slow")),
            },
        ),
    ];
    let mut stream = Vec::new();
    for (name, frame) in frames {
        let framed = encode_frame(&frame.encode()?);
        target.write(&format!("frame-{name}"), &framed)?;
        stream.extend_from_slice(&framed);
    }
    target.write("frames-all", &stream)?;
    Ok(())
}

fn reply(id: u64, reply: ringkv_actors::wire::peer::PeerReply) -> PeerFrame {
    PeerFrame::Response {
        id,
        body: Ok(reply),
    }
}

fn versioning(target: &mut Target<'_>, objects: &[(&str, Object)]) -> Result<()> {
    for (name, object) in objects {
        target.write(&format!("object-{name}"), &object.encode())?;
        target.write(
            &format!("context-{name}"),
            &sealed(b"k", object.context()),
        )?;
    }
    target.write("context-empty", &sealed(b"k", &VersionVector::new()))?;
    Ok(())
}

/// A client context for `clock` on `key`, sealed as a cluster without a
/// secret seals it (the fuzz target opens contexts for key `k` so).
fn sealed(key: &[u8], clock: &VersionVector) -> Vec<u8> {
    ContextKey::from_cluster_name("ringkv").seal(key, clock)
}

/// What an engine left on its file system.
struct StoreFiles {
    /// Tables, by name, with how they were written.
    tables: Vec<(String, Vec<u8>)>,
    /// Log segments, in order.
    segments: Vec<(String, Vec<u8>)>,
    /// Manifests as installed at several points.
    manifests: Vec<(String, Vec<u8>)>,
}

/// Runs `LsmEngine`s over FaultVfs and collects their files.
fn store_files() -> Result<StoreFiles> {
    let mut files = StoreFiles {
        tables: Vec::new(),
        segments: Vec::new(),
        manifests: Vec::new(),
    };
    for compression in [Compression::Lz4, Compression::None] {
        let vfs = FaultVfs::new();
        let options = LsmOptions {
            block_bytes: 192,
            compression,
            sync: SyncPolicy::Always,
            log_preallocate_bytes: 0,
            ..LsmOptions::default()
        };
        let label = format!("{compression:?}").to_lowercase();
        let engine = LsmEngine::open(Arc::new(vfs.clone()), DB, options.clone())?;
        collect(
            &vfs,
            "manifest",
            &format!("{label}-fresh"),
            &mut files.manifests,
        );
        write_batches(&engine, 0)?;
        collect(&vfs, ".log", &label, &mut files.segments);
        engine.flush()?;
        write_batches(&engine, 1)?;
        collect(&vfs, ".log", &label, &mut files.segments);
        engine.flush()?;
        collect(&vfs, ".sst", &label, &mut files.tables);
        collect(
            &vfs,
            "manifest",
            &format!("{label}-two-tables"),
            &mut files.manifests,
        );
        engine.compact_all()?;
        collect(&vfs, ".sst", &label, &mut files.tables);
        collect(
            &vfs,
            "manifest",
            &format!("{label}-compacted"),
            &mut files.manifests,
        );
    }
    Ok(files)
}

/// The batches every store gets: data objects, hints, a meta key, deletes
/// (`round` 1 overwrites half of round 0's keys and adds as many).
fn write_batches(engine: &LsmEngine, round: u64) -> Result<()> {
    let owner = node("n3")?;
    for batch in round * 3..round * 3 + 6 {
        let mut ops = Vec::new();
        for i in 0..4u64 {
            let token = (batch * 4 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let storage_key = [
                &token.to_be_bytes()[..],
                format!("user-{batch}-{i}").as_bytes(),
            ]
            .concat();
            ops.push(WriteOp::Put {
                key: data_key(&storage_key),
                value: format!("value-{round}-{batch}-{i}-{}", "x".repeat(i as usize * 8))
                    .into_bytes(),
            });
        }
        ops.push(WriteOp::Put {
            key: hint_key(&owner, format!("user-{batch}").as_bytes()),
            value: HintRecord {
                seq: batch,
                object_bytes: 100,
            }
            .encode(),
        });
        if batch % 3 == 2 {
            ops.push(WriteOp::Delete {
                key: hint_key(&owner, format!("user-{}", batch - 1).as_bytes()),
            });
        }
        engine.write_batch(&ops)?;
    }
    engine.write_batch(&[WriteOp::Put {
        key: b"\x00layout".to_vec(),
        value: vec![2],
    }])?;
    Ok(())
}

/// Adds the files of `vfs` whose name ends in `suffix` (case-insensitive).
fn collect(vfs: &FaultVfs, suffix: &str, label: &str, into: &mut Vec<(String, Vec<u8>)>) {
    for (path, bytes) in vfs.snapshot() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.to_lowercase().ends_with(suffix) && !bytes.is_empty() {
            let name = format!("{label}-{}", name.trim_start_matches('0'));
            if !into.iter().any(|(_, seen)| *seen == bytes) {
                into.push((name, bytes));
            }
        }
    }
}

/// The index section of a table, with its offset (from the footer).
fn index_of(table: &[u8]) -> Option<(u64, &[u8])> {
    let footer = table.get(table.len().checked_sub(TABLE_FOOTER_BYTES)?..)?;
    let offset = u64::from_le_bytes(footer.get(..8)?.try_into().ok()?);
    let len = u32::from_le_bytes(footer.get(8..12)?.try_into().ok()?);
    let start = usize::try_from(offset).ok()?;
    let index = table.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
    Some((offset, index))
}

fn sstables(corpus: &mut Corpus, store: &StoreFiles) -> Result<()> {
    let mut tables = corpus.target("sstable_table")?;
    for (name, table) in &store.tables {
        tables.write_mode(name, 0, table)?;
        tables.write_mode(name, 1, table)?;
    }
    // The engine writes the newest table format only; older tables are
    // still read, so the golden file of format version 1 seeds them.
    let v1 = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../actors/src/storage/lsm/testdata/golden_table_v1.sst"),
    )?;
    tables.write_mode("golden-v1.sst", 0, &v1)?;
    tables.write_mode("golden-v1.sst", 1, &v1)?;
    let mut indexes = Vec::new();
    let mut blocks = Vec::new();
    for (name, table) in &store.tables {
        let (offset, index) = index_of(table).ok_or("a table without an index")?;
        let handles = fuzz::index(index, offset).ok_or("an index that does not parse")?;
        assert_eq!(
            index_section(&handles.iter().flatten().cloned().collect::<Vec<_>>()),
            index
        );
        indexes.push((name.clone(), [&offset.to_le_bytes()[..], index].concat()));
        for (number, (_, offset, stored_len)) in handles.iter().flatten().enumerate().take(3) {
            let start = usize::try_from(*offset)?;
            let stored = table
                .get(start..start + stored_len)
                .ok_or("a block outside its table")?;
            blocks.push((format!("{name}-block{number}"), stored.to_vec()));
        }
    }
    let mut target = corpus.target("sstable_index")?;
    for (name, index) in &indexes {
        target.write(name, index)?;
    }
    let mut target = corpus.target("sstable_block")?;
    for (name, stored) in &blocks {
        target.write_mode(name, 0, stored)?;
        let body = block_body(&fuzz::block(stored)?);
        // Modes 2 and 3 seal the body themselves.
        target.write_mode(name, 2, &body)?;
        target.write_mode(name, 3, &body)?;
    }
    Ok(())
}

fn commit_log(target: &mut Target<'_>, store: &StoreFiles) -> Result<()> {
    for (name, segment) in &store.segments {
        target.write_mode(name, 0, segment)?;
        target.write_mode(name, 1, segment)?;
        target.write_mode(name, 3, segment)?;
        // Preallocated space after the records, and a torn final record.
        let zeros = [segment.as_slice(), &[0; 64]].concat();
        target.write_mode(&format!("{name}-preallocated"), 0, &zeros)?;
        target.write_mode(&format!("{name}-torn"), 1, &segment[..segment.len() - 7])?;
        // Recovery over two segments, split at a record boundary (the
        // first batch) and in the middle of a record.
        let first = fuzz::log_segment(segment, true)?.len();
        let first_record = replay_prefix(segment).unwrap_or(first);
        for (how, split) in [
            ("at-record", first_record),
            ("mid-record", first_record + 9),
        ] {
            let split = u16::try_from(split)?.to_le_bytes();
            target.write_mode(
                &format!("{name}-recover-{how}"),
                4,
                &[&split[..], segment].concat(),
            )?;
        }
    }
    Ok(())
}

/// The length of a segment's first record (from its length field).
fn replay_prefix(segment: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(segment.get(..4)?.try_into().ok()?);
    Some(20 + usize::try_from(len).ok()? + 1)
}

fn manifests(target: &mut Target<'_>, store: &StoreFiles) -> Result<()> {
    for (name, manifest) in &store.manifests {
        target.write_mode(name, 0, manifest)?;
        target.write_mode(name, 1, manifest)?;
    }
    Ok(())
}

fn hints_and_gossip(target: &mut Target<'_>, gossip: &[(&str, Vec<u8>)]) -> Result<()> {
    let owner = node("n3")?;
    let actor = node("n1")?.version_actor(7);
    target.write(
        "hint-key",
        &hint_key(&owner, b"\x00\x00\x00\x00\x00\x00\x00\x2acart:42"),
    )?;
    target.write("hint-key-empty-user-key", &hint_key(&owner, b""))?;
    target.write(
        "hint-key-long-owner",
        &hint_key(&node(&"n".repeat(64))?, b"k"),
    )?;
    target.write("hint-key-version-actor", &hint_key(&actor, b"k"))?;
    for (name, record) in [
        (
            "hint-record",
            HintRecord {
                seq: 7,
                object_bytes: 100,
            },
        ),
        (
            "hint-record-max",
            HintRecord {
                seq: u64::MAX,
                object_bytes: u64::MAX,
            },
        ),
    ] {
        target.write(name, &record.encode())?;
    }
    for (name, message) in gossip {
        target.write(&format!("gossip-{name}"), message)?;
    }
    Ok(())
}
