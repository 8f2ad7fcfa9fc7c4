//! ringkv's actors: one folder per box of the node diagram (the chapter's
//! Figure 18), each holding its pure algorithm and a thin actix actor.
//!
//! # Layout
//!
//! | module | job |
//! |---|---|
//! | [`wire`] | the frame codec (u32 BE length + MessagePack), the client protocol, the peer protocol |
//! | [`net`] | the network and clock seams (real sockets, or turmoil's in tests) |
//! | [`persist`] | small snapshots (membership, hints) written atomically off the arbiter |
//! | [`ring`] | the consistent-hash ring: virtual nodes, weights, preference lists |
//! | [`client_api`] | ClientApi (client listener) + one ClientSession per connection |
//! | [`replicator`] | the coordinator: preference list -> fan-out -> quorum -> reply; the replica side of peer requests |
//! | [`conflict_resolver`] | dotted version vectors, sibling sets, merge; the ConflictResolver actor |
//! | [`failure_detector`] | gossip membership, corroborated failure detection, the join/leave life cycle, MembershipChanged events |
//! | [`repair`] | read repair, join/leave handoff streaming, hinted handoff, Merkle anti-entropy |
//! | [`storage`] | the Engine seam, the LSM engine (and two simpler ones), the Storage actor with its own threads |
//! | [`bridge`] | node-to-node TCP: Bridge + one PeerConnection per peer + one PeerSession per inbound link |
//!
//! # The actor graph
//!
//! ```text
//!  client ──frames──> ClientSession ──CoordinateGet/CoordinateWrite──> Replicator
//!                        │ StatusQuery, Leave                           │  │  │
//!                        v                                              │  │  └─Reconcile──> ConflictResolver
//!                  FailureDetector ──MembershipChanged──> Replicator,   │  └─ReadRepair──> Repair
//!                   │    ^      └──StreamTransfers──> Repair   Repair,  │     (+ RecordHint from Replicator)
//!                   │    │ PeerEvent, gossip                   Bridge   │
//!                   │  Bridge <──────────CallPeer───────────────────────┤── LocalRead/LocalApply/LocalScan ──> Storage ──> engine threads
//!                   └──CallPeer(Gossip)──┘ │ PeerCall                   │
//!                                          v                            │ IncomingPeerRequest: Read, Write, HintedWrite,
//!                   PeerConnection ==TCP==> (peer) PeerSession ──> (peer) Replicator   Coordinate, Scan, MerkleLeaves
//!                                                             └──> (peer) FailureDetector   Gossip
//! ```
//!
//! Repair also calls peers through the Bridge: handoff and anti-entropy pull
//! ranges (Scan), hinted handoff and read repair write (Write), anti-entropy
//! asks for Merkle leaves.
//!
//! All actors of a node share one arbiter (messages between them are cheap
//! same-thread hand-offs); the storage engine runs on its own threads, so no
//! handler ever blocks on disk.
#![deny(clippy::unwrap_used)]
#![warn(missing_docs)]

pub mod bridge;
pub mod client_api;
pub mod conflict_resolver;
pub mod failure_detector;
pub mod net;
pub mod node_id;
pub mod persist;
pub mod repair;
pub mod replicator;
pub mod ring;
pub mod storage;
pub mod wire;

pub use node_id::NodeId;
