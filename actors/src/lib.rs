//! ringkv's actors: one folder per box of the node diagram (the chapter's
//! Figure 18), each holding its pure algorithm and a thin actix actor.
//!
//! # Layout
//!
//! | module | job |
//! |---|---|
//! | [`resp`] | the Redis protocol front end (`--resp-listen`): RespApi (listener) + one RespSession per connection; RESP framing (`frame`, the `redis-protocol` crate), command parsing (`command`), `INFO` text (`info`) |
//! | [`client_api`] | ClientApi (client listener) + one ClientSession per connection |
//! | [`failure_detector`] | gossip membership, corroborated failure detection, the join/leave life cycle; publishes `MembershipChanged` |
//! | [`repair`] | read repair, join/leave handoff streaming, hinted handoff, Merkle anti-entropy, tombstone reaping (`repair::reap`); serves peers' scans and Merkle tree nodes (only what the caller shares, rate-limited per peer: `repair::rate`) and reap checks and drops |
//! | [`replicator`] | the coordinator: preference list -> fan-out -> quorum -> reply; the key listing (`list`: one replica per ring arc, paged); the replica side of peer reads, writes and listing spans |
//! | [`replicas`] | one handle to the local replica (Storage) and the remote ones (Bridge), and the replica-side merge |
//! | [`bridge`] | node-to-node TCP: Bridge + one PeerConnection per peer + one PeerSession per inbound link; typed calls (`CallPeer<T>`, or straight onto a link through the `LinkDirectory` the Bridge publishes: its `Outbound` sending side while it is up, its connection otherwise) and typed serving (`Incoming<T>`); the authenticated handshake (`handshake`) and sealed frames (`seal`) |
//! | [`storage`] | the Engine seam, the LSM engine (and an in-memory one), the Storage actor with its own threads |
//! | [`conflict_resolver`] | dotted version vectors, sibling sets, merge; the ConflictResolver actor |
//! | [`membership`] | shared vocabulary: `MembershipChanged` (rings, reachability, peers) |
//! | [`ring`] | the consistent-hash ring: virtual nodes, weights, preference lists |
//! | [`wire`] | the frame codec (u32 BE length + MessagePack), the client protocol, the typed peer protocol |
//! | [`metrics`] | the Prometheus metrics handle (`Metrics`): pre-created counters, gauges, histograms; the storage engine's (`EngineMetrics`) |
//! | [`tls`] | optional TLS for the client and peer ports, as a wrapper around the network seam |
//! | [`net`] / [`clock`] | the network and clock seams (real sockets and time, or turmoil's in tests); protected mode's accept policy (`AcceptPolicy`) |
//! | [`persist`] | small snapshots (membership, hints) written atomically off the arbiter |
//! | [`node_id`] | `NodeId` and version actors |
//! | [`secret`] | the cluster secret (`--cluster-secret-file`) and the keys derived from it |
//!
//! # Layers
//!
//! The table is also the import order: a module uses only modules listed
//! below it (`bridge`, `storage` and `conflict_resolver` share a layer and
//! do not use each other; so do the seams). An actor that must reach one
//! above it holds a `Recipient<M>` for a message defined in the lower
//! module: the Replicator sends `ReadRepair` (defined in `replicator`) to
//! Repair; the Bridge delivers `Incoming<T>` and
//! `PeerEvent` (defined in `bridge`) to whoever serves them.
//! `layering_tests.rs` fails the build's tests when an import points up.
//!
//! # The actor graph
//!
//! ```text
//!  Redis client ──RESP──> RespSession ──┐ (the same messages; SET/DEL with supersede_local)
//!  client ──frames──> ClientSession ──CoordinateGet/CoordinateWrite──> Replicator
//!                        │ StatusQuery, Leave                           │  │  │
//!                        v                                              │  │  └─Reconcile──> ConflictResolver
//!                  FailureDetector ──MembershipChanged──> Replicator,   │  └─ReadRepair──────────────> Repair
//!                   │    ^      └──StreamTransfers──> Repair   Repair,  │
//!                   │    │ PeerEvent                            Bridge  │
//!                   │  Bridge <──────────CallPeer<T>────────────────────┤── LocalRead/LocalApply/LocalScan/LocalListKeys ──> Storage ──> engine threads
//!                   └─CallPeer<GossipExchange>─┘ │                      │
//!                                                v
//!                   PeerConnection ==TCP==> (peer) PeerSession ──Incoming<T>──> (peer) Replicator: Read, Write, HintedWrite, Coordinate, ListKeys
//!                                                                          └──> (peer) Repair: Scan, MerkleNodes, ReapCheck, ReapDrop
//!                                                                          └──> (peer) FailureDetector: Gossip
//! ```
//!
//! Repair also calls peers through the Bridge: handoff and anti-entropy pull
//! ranges (`ScanRange`), hinted handoff and read repair write
//! (`ReplicaWrite`), anti-entropy walks a peer's Merkle tree (`MerkleNodes`).
//!
//! # Where the README's behaviours live
//!
//! | behaviour | code (pure part first, then the actor that carries it out) |
//! |---|---|
//! | ring, virtual nodes, weights, racks | `ring.rs` |
//! | data centers: per-DC placement (`--dc-replication`), DC-aware consistency levels, same-DC stand-ins | `ring.rs` (`DcReplication`, `Ring::preference_list_at`), `replicator/quorum.rs` (`Need::for_level`, per-DC `Tally`), `replicator/fanout.rs` (`DcScope`); resolved per request in `replicator/mod.rs` |
//! | preference list, sloppy quorum, stand-ins | `replicator/placement.rs`, `replicator/fanout.rs` |
//! | R / W / PR / PW quorums, deadlines, read-repair trigger | `replicator/coordinator.rs` (`ReadCoordinator`, `WriteCoordinator`: `on_reply` / `on_ack` / `on_deadline` -> steps), `replicator/quorum.rs`; carried out by `replicator/read.rs`, `write.rs` |
//! | minting versions, the incarnation rule | `storage/writer.rs` |
//! | group commit on a thread or on the event loop (`--storage-writer`) | `storage/writer.rs` (`run`), `storage/writer/event_loop.rs` (`run_on_loop`: what stays off the loop) |
//! | siblings, causal contexts, merge, pruning | `conflict_resolver/{clock,object,prune,encoding}.rs` |
//! | gossip, suspicion, failure detection | `failure_detector/gossip/`, `failure_detector/view.rs` |
//! | bootstrap, join, leave, forget | `failure_detector/bootstrap.rs`, `failure_detector/lifecycle.rs` (`Lifecycle`: `tick` / `on_transfers_done` / `on_leave` -> steps), `repair/handoff.rs` (transfer plans), `repair/stream.rs` |
//! | hinted handoff | hints written with the stand-in's object in `storage/writer.rs`; delivered by `repair/hints.rs` |
//! | read repair | `replicator/read.rs` decides, `repair/mod.rs` writes |
//! | Merkle anti-entropy | leaves kept as data changes: `storage/tree.rs` (updated by `storage/writer.rs`); pair trees and the walk: `repair/merkle.rs`, `repair/anti_entropy.rs` |
//! | tombstone reaping, the counter floor | `repair/reap.rs` (`decide`, `dominated`: pure; `round`, in `repair/reap/round.rs`, carries it out), the compare-and-delete and the durable floor in `storage/writer.rs`, minting above the floor in `conflict_resolver/object.rs` (`Object::update_above`) |
//! | LSM engine (log, memtable, SSTables, compaction, recovery) | `storage/lsm/` (its folders follow its disk format) |
//! | key listing (`list`), its cursor and bounds | `replicator/list_walk.rs` (`PageWalk`: `next` / `on_answer` -> asks), carried out by `replicator/list.rs`; the replica's bounded scan `storage/worker.rs` (`list_live`) |
//! | client protocol | `wire/client/`, served by `client_api/session.rs` |
//! | Redis protocol (RESP), SET/DEL superseding the coordinator's copy | `resp/frame.rs`, `resp/command.rs`, served by `resp/session.rs`; `supersede_local` in `replicator/write.rs` |
//! | peer protocol, typed RPC | `wire/peer.rs`, `bridge/` |
//! | Prometheus metrics | `metrics.rs` (handles; recorded by client sessions, `replicas.rs`, repair, the LSM engine); served by the binary's `metrics_http.rs` |
//! | admin `members`, `ring`, `repair` | `ring.rs` (`replica_ranges`), `repair/admin.rs`, answered by `client_api/admin.rs`; printed by the binary's `admin.rs` |
//!
//! All actors of a node share one arbiter (messages between them are cheap
//! same-thread hand-offs); the storage engine runs on its own threads, so no
//! handler ever blocks on disk.
#![deny(clippy::unwrap_used)]
#![warn(missing_docs)]

pub mod bridge;
pub mod client_api;
pub mod clock;
pub mod conflict_resolver;
pub mod failure_detector;
pub mod membership;
pub mod metrics;
pub mod net;
pub mod node_id;
pub mod persist;
pub mod repair;
pub mod replicas;
pub mod replicator;
pub mod resp;
pub mod ring;
pub mod secret;
pub mod storage;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod layering_tests;

pub use node_id::NodeId;
