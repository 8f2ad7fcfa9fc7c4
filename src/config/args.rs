//! `NodeArgs`: the flags of `ringkv node`, each also a key of the
//! `--config` file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::{LogFormat, ReadAsks, RespSiblings, StorageKind, StorageWriter};

/// Flags of `ringkv node`; each also a key of the `--config` file.
#[derive(Args, Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeArgs {
    /// TOML file with any of these settings (same names, `-` or `_`); flags win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's unique, stable id (letters, digits, '-', '_', '.').
    #[arg(long)]
    pub id: Option<String>,
    /// Name of the cluster; peers with another name are refused. Default "ringkv".
    #[arg(long)]
    pub cluster: Option<String>,
    /// File holding the cluster secret (32 to 4096 bytes; trailing
    /// whitespace ignored) that every member shares: peers prove they hold
    /// it, and context MACs are keyed from it. Keep it readable by the
    /// node's user only. Without it the node is in protected mode: it
    /// listens on and serves loopback addresses only. See SECURITY.md.
    #[arg(long, value_name = "PATH")]
    pub cluster_secret_file: Option<PathBuf>,
    /// File holding the client token (line 1) and, optionally, the admin
    /// token (line 2), 16 to 1024 bytes each. With it, clients must send
    /// `auth` with the client token before any other op; the admin ops
    /// (`leave`, `forget`, `members`, `ring`, `repair`) need the admin
    /// token when there is one (from any address),
    /// else come from loopback only. Keep it readable by the node's user
    /// only. See SECURITY.md.
    #[arg(long, value_name = "PATH")]
    pub client_token_file: Option<PathBuf>,
    /// TLS on the client port and the peer port: this node's certificate
    /// chain (PEM, leaf first). Needs --tls-key and --tls-ca. See
    /// SECURITY.md, "TLS".
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) peer certificates must chain to.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
    /// The name every peer certificate must carry (default: the peer's IP
    /// address as dialled).
    #[arg(long, value_name = "NAME")]
    pub tls_peer_name: Option<String>,
    /// Address for node-to-node traffic, e.g. 127.0.0.1:7101.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Peer address other nodes should dial, when --listen is a wildcard
    /// (0.0.0.0) or behind NAT. Default: the --listen address.
    #[arg(long, value_name = "ADDR")]
    pub advertise_addr: Option<SocketAddr>,
    /// Address for clients, e.g. 127.0.0.1:7001.
    #[arg(long, value_name = "ADDR")]
    pub client_listen: Option<SocketAddr>,
    /// Address for Redis clients (RESP2/RESP3: redis-cli, redis-benchmark,
    /// client libraries), e.g. 127.0.0.1:6401; off when absent. Served like
    /// the client port: loopback only in protected mode, the same
    /// --client-token-file (`AUTH`), --client-connections-max and TLS. See
    /// README, "Redis protocol".
    #[arg(long, value_name = "ADDR")]
    pub resp_listen: Option<SocketAddr>,
    /// What a RESP GET answers for a key with siblings: `error` (default:
    /// an error naming them; RINGKV.SIBLINGS / RINGKV.RESOLVE resolve them)
    /// or `lww` (the last writer's value: concurrent writes silently lose
    /// on the RESP port).
    #[arg(long, value_enum)]
    pub resp_siblings: Option<RespSiblings>,
    /// Address of the Prometheus metrics endpoint (HTTP `GET /metrics`),
    /// e.g. 127.0.0.1:9101. Default: off. Same accept policy as the client
    /// port (loopback only in protected mode).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory for this node's data (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Peer addresses of other nodes to connect to, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ADDR,...")]
    pub seeds: Option<Vec<SocketAddr>>,
    /// Replicas per key (N). Default 3.
    #[arg(long)]
    pub n: Option<usize>,
    /// Replicas per data center, e.g. dc1:3,dc2:2: each key gets, in every
    /// DC named, that many replicas (the first members of that DC
    /// clockwise). N is then their sum (--n may be left out, or must equal
    /// it), and --dc must be one of them. Every node of a cluster must
    /// have the same setting. Default: N over the whole ring.
    #[arg(long, value_name = "DC:COUNT,...")]
    pub dc_replication: Option<String>,
    /// Default read quorum (R), 1..=N. Default 2.
    #[arg(long)]
    pub r: Option<usize>,
    /// Default write quorum (W), 1..=N. Default 2.
    #[arg(long)]
    pub w: Option<usize>,
    /// Data center of this node (replicas are spread across DCs). Default "dc1".
    #[arg(long)]
    pub dc: Option<String>,
    /// Rack of this node (replicas are spread across racks). Default "r1".
    #[arg(long)]
    pub rack: Option<String>,
    /// Capacity weight: this node gets weight x vnodes ring positions. Default 1.
    #[arg(long)]
    pub weight: Option<u32>,
    /// Virtual nodes per unit of weight. Default 128.
    #[arg(long)]
    pub vnodes: Option<u32>,
    /// Storage backend: lsm (durable, default) or memory (lost on exit).
    #[arg(long, value_enum)]
    pub storage: Option<StorageKind>,
    /// Log format: pretty or json. Default pretty.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Default deadline of a client request, in milliseconds. Default 2000.
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// Largest frame accepted from a client, in bytes. Default 4 MiB.
    #[arg(long, value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Largest key, in bytes. Default 1 KiB.
    #[arg(long, value_name = "BYTES")]
    pub max_key_bytes: Option<usize>,
    /// Largest value, in bytes. Default 1 MiB.
    #[arg(long, value_name = "BYTES")]
    pub max_value_bytes: Option<usize>,
    /// Most siblings a key may hold; writes beyond are refused. Default 100.
    #[arg(long)]
    pub siblings_max: Option<usize>,
    /// Clock entries before old ones are pruned. Default 50.
    #[arg(long)]
    pub vclock_entries_max: Option<usize>,
    /// Age before a clock entry may be pruned, in seconds. Default 86400.
    #[arg(long, value_name = "S")]
    pub vclock_prune_age_s: Option<u64>,
    /// Requests one client connection may have in flight. Default 1024.
    #[arg(long)]
    pub client_inflight_max: Option<usize>,
    /// Open client connections. Default 4096.
    #[arg(long)]
    pub client_connections_max: Option<usize>,
    /// Storage requests queued before new ones are refused. Default 4096.
    #[arg(long)]
    pub storage_queue_max: Option<usize>,
    /// Where the storage writer runs: loop (default: the event loop, as
    /// Redis does: less CPU per write and larger group commits; the loop
    /// waits for each sync, and hands anything slower to a thread) or
    /// thread (its own thread: the event loop goes on while a write
    /// syncs). See README "Storage" and benches/README.md.
    #[arg(long, value_enum)]
    pub storage_writer: Option<StorageWriter>,
    /// Cap on the delay between redials of a lost peer, in milliseconds. Default 5000.
    #[arg(long, value_name = "MS")]
    pub reconnect_backoff_max_ms: Option<u64>,
    /// Time between gossip rounds, in milliseconds. Default 1000.
    #[arg(long, value_name = "MS")]
    pub gossip_interval_ms: Option<u64>,
    /// Peers each gossip round is sent to. Default 3.
    #[arg(long)]
    pub gossip_fanout: Option<usize>,
    /// A member silent for this long is suspect (down once another member
    /// agrees), in milliseconds. Default 10 gossip intervals (10000).
    #[arg(long, value_name = "MS")]
    pub suspect_after_ms: Option<u64>,
    /// How far ahead of this node's clock a member's gossip generation (its
    /// start time) may be, in milliseconds; gossip beyond it is ignored.
    /// Must exceed the clock skew between nodes. Default one day (86400000).
    #[arg(long, value_name = "MS")]
    pub generation_skew_ms_max: Option<u64>,
    /// Time a joining or leaving node announces itself before streaming,
    /// in milliseconds. Default 3 gossip intervals.
    #[arg(long, value_name = "MS")]
    pub join_settle_ms: Option<u64>,
    /// Pace of join/leave streaming, in bytes per second. Default 64 MiB/s.
    #[arg(long, value_name = "BYTES")]
    pub stream_bytes_per_s_max: Option<u64>,
    /// Time between Merkle anti-entropy exchanges (one peer each), in
    /// milliseconds; 0 turns it off. Default 60000.
    #[arg(long, value_name = "MS")]
    pub anti_entropy_interval_ms: Option<u64>,
    /// Pace of anti-entropy: bytes of objects an exchange pulls per second
    /// (0: unthrottled). Default 16 MiB/s.
    #[arg(long, value_name = "BYTES")]
    pub anti_entropy_bytes_per_s_max: Option<u64>,
    /// A replica that has not answered a request within this long gets a
    /// sloppy-quorum stand-in (the next reachable node past the key's
    /// replicas), in milliseconds; less than --request-timeout-ms. Default
    /// 250.
    #[arg(long, value_name = "MS")]
    pub stand_in_after_ms: Option<u64>,
    /// Which of a key's N replicas a read asks: `needed` (default: as many
    /// as R needs, this node's own copy first; another replica when one
    /// fails or is silent past --stand-in-after-ms; read repair reaches the
    /// replicas asked, anti-entropy the rest) or `all` (every replica, for
    /// the latency of the fastest R and read repair of all N, at the cost
    /// of N - R more replica reads per get).
    #[arg(long, value_enum)]
    pub read_asks: Option<ReadAsks>,
    /// With `--read-asks needed`: a replica a read asked that has not
    /// answered within this long gets another replica asked in its place
    /// (a speculative read), in milliseconds; at most --stand-in-after-ms.
    /// Default 20.
    #[arg(long, value_name = "MS")]
    pub read_retry_after_ms: Option<u64>,
    /// Longest wait at start-up for the seeds to answer before this node
    /// coordinates with what it knows, in milliseconds (client requests
    /// wait meanwhile). Default 2000.
    #[arg(long, value_name = "MS")]
    pub bootstrap_wait_ms: Option<u64>,
    /// Largest stored object (a key's siblings and clock), in bytes; a
    /// write that would make it larger is refused `too_large`. At most
    /// --max-frame-bytes minus 16 KiB (a get answers the whole object in
    /// one frame). Default: that bound.
    #[arg(long, value_name = "BYTES")]
    pub object_bytes_max: Option<usize>,
    /// Bytes of writes this node holds as a stand-in for one replica that
    /// is away (hints); past it, it refuses to stand in for that replica.
    /// Default 1 GiB.
    #[arg(long, value_name = "BYTES")]
    pub hints_bytes_max_per_target: Option<u64>,
    /// Pace of hint delivery to a returning replica, in bytes per second
    /// (0: unthrottled). Default 16 MiB/s.
    #[arg(long, value_name = "BYTES")]
    pub hint_delivery_bytes_per_s_max: Option<u64>,
    /// LSM engine: a memtable holding more than this is flushed to a
    /// table, in bytes (what its entries hold: an overwrite replaces the
    /// old value). Default 32 MiB.
    #[arg(long, value_name = "BYTES")]
    pub lsm_memtable_bytes_max: Option<usize>,
    /// LSM engine: each commit log segment is reserved on disk at this
    /// size up front (faster fsyncs), in bytes; 0 reserves nothing.
    /// Default 64 MiB.
    #[arg(long, value_name = "BYTES")]
    pub lsm_log_preallocate_bytes: Option<u64>,
    /// LSM engine: a commit log segment holding this many bytes of records
    /// is closed and its memtable flushed, however little memory the
    /// memtable holds (overwrites of the same keys do not grow it); bounds
    /// what a restart replays, in bytes. Default 64 MiB.
    #[arg(long, value_name = "BYTES")]
    pub lsm_log_segment_bytes_max: Option<u64>,
    /// Time between tombstone reaper rounds, in milliseconds; 0 turns
    /// reaping off (tombstones are then kept forever). Default 60000.
    #[arg(long, value_name = "MS")]
    pub tombstone_reap_interval_ms: Option<u64>,
    /// A tombstone is reaped only when its deletes are at least this old,
    /// in milliseconds (so replica writes in flight have landed); at least
    /// the streaming deadline (the larger of --request-timeout-ms and
    /// 5000). Default 600000.
    #[arg(long, value_name = "MS")]
    pub tombstone_reap_age_ms_min: Option<u64>,
    /// Most tombstones one reaper round checks with every member, in keys
    /// (1 to 1024). Default 256.
    #[arg(long, value_name = "KEYS")]
    pub tombstone_reap_batch_keys: Option<usize>,
}
