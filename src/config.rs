//! `NodeConfig`: every setting of a node, from flags and an optional TOML
//! file with the same key names (`--request-timeout-ms` is
//! `request_timeout_ms` or `request-timeout-ms` in the file; flags win),
//! validated once at start-up with a message that names the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use ringkv_actors::bridge::RECONNECT_BACKOFF_MAX_MS_DEFAULT;
use ringkv_actors::client_api::access::{ClientTokens, TokenFile};
use ringkv_actors::client_api::{CLIENT_CONNECTIONS_MAX_DEFAULT, CLIENT_INFLIGHT_MAX_DEFAULT};
use ringkv_actors::conflict_resolver::{
    VersionLimits, SIBLINGS_MAX_DEFAULT, VCLOCK_ENTRIES_MAX_DEFAULT, VCLOCK_PRUNE_AGE_S_DEFAULT,
};
use ringkv_actors::failure_detector::gossip::{
    GENERATION_SKEW_MS_MAX_DEFAULT, GOSSIP_FANOUT_DEFAULT, GOSSIP_INTERVAL_MS_DEFAULT,
    SUSPECT_AFTER_GOSSIP_ROUNDS_DEFAULT,
};
use ringkv_actors::failure_detector::{
    BOOTSTRAP_WAIT_MS_DEFAULT, JOIN_SETTLE_GOSSIP_ROUNDS_DEFAULT,
};
use ringkv_actors::net::is_loopback;
use ringkv_actors::repair::reap::{
    ReapOptions, TOMBSTONE_REAP_AGE_MS_MIN_DEFAULT, TOMBSTONE_REAP_BATCH_KEYS_DEFAULT,
    TOMBSTONE_REAP_BATCH_KEYS_MAX, TOMBSTONE_REAP_INTERVAL_MS_DEFAULT,
};
use ringkv_actors::repair::{
    stream_timeout_ms, ANTI_ENTROPY_BYTES_PER_S_MAX_DEFAULT, ANTI_ENTROPY_INTERVAL_MS_DEFAULT,
    HINT_DELIVERY_BYTES_PER_S_MAX_DEFAULT, STREAM_BYTES_PER_S_MAX_DEFAULT,
};
use ringkv_actors::replicator::{
    N_DEFAULT, QUORUM_DEFAULT, READ_RETRY_AFTER_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT,
    STAND_IN_AFTER_MS_DEFAULT,
};
use ringkv_actors::ring::{
    DcReplication, RING_TOKENS_MAX, VNODES_PER_WEIGHT_DEFAULT, VNODES_PER_WEIGHT_MAX,
};
use ringkv_actors::secret::{ClusterSecret, SecretError};
use ringkv_actors::storage::{HINTS_BYTES_MAX_PER_TARGET_DEFAULT, STORAGE_QUEUE_MAX_DEFAULT};
use ringkv_actors::tls::{NodeTls, TlsFiles};
use ringkv_actors::wire::client::{MAX_KEY_BYTES_DEFAULT, MAX_VALUE_BYTES_DEFAULT};
use ringkv_actors::wire::peer::{LABEL_BYTES_MAX, NODE_WEIGHT_MAX};
use ringkv_actors::wire::MAX_FRAME_BYTES_DEFAULT;
use ringkv_actors::NodeId;
use serde::{Deserialize, Serialize};

/// Largest replication factor accepted: preference lists are walked per
/// request, and more than 16 copies of a key is a configuration mistake.
pub const REPLICAS_MAX: usize = 16;
/// Longest request deadline accepted, in milliseconds (10 minutes).
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 600_000;
/// Bytes of a response frame kept for what is not the object's values (id,
/// keys, the context, which is at most the object's clock, framing):
/// `object_bytes_max` is at most `max_frame_bytes` minus this.
pub const OBJECT_FRAME_HEADROOM_BYTES: usize = 16 * 1024;
/// Why a node's settings were refused. Every message names the setting
/// (its flag), so an operator can fix it from the message alone.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting missing, out of its range, or inconsistent with another;
    /// the message starts with the flag.
    #[error("{0}")]
    Invalid(String),
    /// The `--config` file could not be read or understood.
    #[error("--config {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The cluster secret file could not be used.
    #[error("--cluster-secret-file: {0}")]
    Secret(#[from] SecretError),
}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError::Invalid(message)
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        ConfigError::Invalid(message.to_owned())
    }
}

/// Where a node keeps its data. The first durable backend, `log` (an
/// append-only log replayed into memory), was removed once the LSM engine
/// superseded it: a flag or config file saying `log` is refused at start
/// with a message naming the two choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// The LSM engine: commit log, memtable, SSTables, compaction (default).
    Lsm,
    /// In memory only: everything is lost when the process stops.
    Memory,
}

/// What a RESP GET answers for a key with siblings (`--resp-siblings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RespSiblings {
    /// An error that names the siblings and how to resolve them.
    Error,
    /// The last writer's value (latest write time, then the larger dot).
    Lww,
}

/// Which of a key's replicas a read asks (`--read-asks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAsks {
    /// As many as R needs, this node first; another when one fails or is
    /// silent past --stand-in-after-ms (default).
    Needed,
    /// Every replica: each read reads (and read-repairs) all N.
    All,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

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

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Node id.
    pub id: NodeId,
    /// Cluster name.
    pub cluster: String,
    /// The cluster secret and the file it was read from (`None`: no
    /// secret given).
    pub cluster_secret: Option<(PathBuf, ClusterSecret)>,
    /// The client and admin tokens (`--client-token-file`; default none).
    /// `Debug` shows only which are set.
    pub client_tokens: ClientTokens,
    /// TLS for the client and peer ports (`--tls-cert`, `--tls-key`,
    /// `--tls-ca`; default none: plain TCP).
    pub tls: Option<NodeTls>,
    /// Peer listen address.
    pub listen: SocketAddr,
    /// The peer address other nodes dial.
    pub advertise_addr: SocketAddr,
    /// Client listen address.
    pub client_listen: SocketAddr,
    /// RESP listen address (`None`: no RESP front end).
    pub resp_listen: Option<SocketAddr>,
    /// What a RESP GET answers for a key with siblings.
    pub resp_siblings: RespSiblings,
    /// Metrics endpoint address (`None`: off).
    pub metrics_listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Seeds.
    pub seeds: Vec<SocketAddr>,
    /// N.
    pub n: usize,
    /// Replicas per data center (empty: N over the whole ring).
    pub dc_replication: DcReplication,
    /// Default R.
    pub r: usize,
    /// Default W.
    pub w: usize,
    /// Data center.
    pub dc: String,
    /// Rack.
    pub rack: String,
    /// Capacity weight.
    pub weight: u32,
    /// Virtual nodes per unit of weight.
    pub vnodes: u32,
    /// Storage backend.
    pub storage: StorageKind,
    /// Log format.
    pub log_format: LogFormat,
    /// Default request deadline, in milliseconds.
    pub request_timeout_ms: u64,
    /// Largest client frame, in bytes.
    pub max_frame_bytes: usize,
    /// Largest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Sibling and clock limits.
    pub version_limits: VersionLimits,
    /// Requests per client connection.
    pub client_inflight_max: usize,
    /// Client connections.
    pub client_connections_max: usize,
    /// Storage queue.
    pub storage_queue_max: usize,
    /// Cap on peer redial delay, in milliseconds.
    pub reconnect_backoff_max_ms: u64,
    /// Gossip round interval, in milliseconds.
    pub gossip_interval_ms: u64,
    /// Peers per gossip round.
    pub gossip_fanout: usize,
    /// Silence before suspicion, in milliseconds.
    pub suspect_after_ms: u64,
    /// Furthest a gossip generation may be ahead of our clock, in milliseconds.
    pub generation_skew_ms_max: u64,
    /// Announcement time before join/leave streaming, in milliseconds.
    pub join_settle_ms: u64,
    /// Streaming pace, in bytes per second.
    pub stream_bytes_per_s_max: u64,
    /// Anti-entropy exchange interval, in milliseconds (0: off).
    pub anti_entropy_interval_ms: u64,
    /// Anti-entropy pace, in bytes per second (0: unthrottled).
    pub anti_entropy_bytes_per_s_max: u64,
    /// Silence after which a replica gets a stand-in, in milliseconds.
    pub stand_in_after_ms: u64,
    /// Which replicas a read asks.
    pub read_asks: ReadAsks,
    /// Silence after which a read asks another replica, in milliseconds.
    pub read_retry_after_ms: u64,
    /// Longest start-up wait for the seeds, in milliseconds.
    pub bootstrap_wait_ms: u64,
    /// Largest stored object, in bytes.
    pub object_bytes_max: usize,
    /// Hint bytes held for one replica, in bytes.
    pub hints_bytes_max_per_target: u64,
    /// Hint delivery pace, in bytes per second (0: unthrottled).
    pub hint_delivery_bytes_per_s_max: u64,
    /// LSM engine settings (memtable size, log preallocation).
    pub lsm: ringkv_actors::storage::LsmOptions,
    /// The tombstone reaper's interval, minimum age and batch.
    pub tombstone_reap: ReapOptions,
}

impl NodeArgs {
    /// Reads the `--config` file (if any) under these flags: each setting
    /// given as a flag wins over the file's (one merge over the serialized
    /// settings, so a new setting needs no line here).
    pub fn with_file(self) -> Result<NodeArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let in_file = |e: &dyn std::fmt::Display| ConfigError::File {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut merged = read_file(&path)?;
        let flags = serde_json::to_value(&self).map_err(|e| in_file(&e))?;
        if let serde_json::Value::Object(flags) = flags {
            merged.extend(flags.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let mut args: NodeArgs =
            serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| in_file(&e))?;
        args.config = self.config;
        Ok(args)
    }

    /// Validates and fills defaults.
    pub fn validate(self) -> Result<NodeConfig, ConfigError> {
        let id = NodeId::new(
            self.id
                .ok_or("--id is required (a unique name for this node)")?,
        )
        .map_err(|e| format!("--id: {e}"))?;
        let listen = self
            .listen
            .ok_or("--listen is required (the node-to-node address)")?;
        let client_listen = self
            .client_listen
            .ok_or("--client-listen is required (the address clients connect to)")?;
        if listen == client_listen {
            return Err(format!("--listen and --client-listen must differ (both {listen})").into());
        }
        if let Some(resp) = self.resp_listen {
            if resp == listen || resp == client_listen {
                return Err(format!(
                    "--resp-listen ({resp}) must differ from --listen and --client-listen"
                )
                .into());
            }
        }
        if let Some(metrics) = self.metrics_listen {
            if (metrics == listen || metrics == client_listen) && metrics.port() != 0 {
                return Err(format!(
                    "--metrics-listen {metrics} must differ from --listen and --client-listen"
                )
                .into());
            }
        }
        let cluster_secret = match self.cluster_secret_file {
            Some(path) => {
                let secret = ClusterSecret::from_file(&path)?;
                Some((path, secret))
            }
            None => None,
        };
        if cluster_secret.is_none() {
            let seeds = self.seeds.as_deref().unwrap_or_default();
            protected_mode(listen, client_listen, self.advertise_addr, seeds)?;
            if let Some(resp) = self.resp_listen.filter(|a| !is_loopback(a.ip())) {
                return Err(format!(
                    "--resp-listen {resp} is not a loopback address, and this node has no \
                     --cluster-secret-file: without one a node is in protected mode and takes \
                     clients from this machine only"
                )
                .into());
            }
            if let Some(metrics) = self.metrics_listen {
                if !is_loopback(metrics.ip()) {
                    return Err(format!(
                        "--metrics-listen {metrics} is not a loopback address, and this node has \
                         no --cluster-secret-file: in protected mode the metrics endpoint, like \
                         the client port, serves this machine only"
                    )
                    .into());
                }
            }
        }
        let advertise_addr = match self.advertise_addr {
            Some(a) if a.ip().is_unspecified() || a.port() == 0 => {
                return Err(format!("--advertise-addr must be a dialable address, got {a}").into())
            }
            Some(a) => a,
            None if listen.ip().is_unspecified() => {
                return Err(format!(
                    "--listen {listen} is a wildcard address: set --advertise-addr to the address peers should dial"
                ).into())
            }
            None => listen,
        };
        let data_dir = self.data_dir.ok_or("--data-dir is required")?;
        let dc_replication = match &self.dc_replication {
            Some(text) => DcReplication::parse(text, REPLICAS_MAX)
                .map_err(|e| format!("--dc-replication {text:?}: {e}"))?,
            None => DcReplication::default(),
        };
        let n = match (self.n, dc_replication.total()) {
            (n, 0) => n.unwrap_or(N_DEFAULT),
            (Some(n), total) if n != total => {
                return Err(format!(
                    "--n ({n}) must equal the replicas --dc-replication adds up to ({total}), \
                     or be left out"
                )
                .into())
            }
            (_, total) => total,
        };
        if !(1..=REPLICAS_MAX).contains(&n) {
            return Err(format!("--n must be in 1..={REPLICAS_MAX}, got {n}").into());
        }
        if !dc_replication.is_empty() {
            let own = self.dc.as_deref().unwrap_or("dc1");
            if dc_replication.in_dc(own) == 0 {
                return Err(format!(
                    "--dc {own} is not one of the data centers of --dc-replication \
                     ({dc_replication}): this node would hold no replica"
                )
                .into());
            }
        }
        let r = self.r.unwrap_or(QUORUM_DEFAULT.min(n));
        let w = self.w.unwrap_or(QUORUM_DEFAULT.min(n));
        for (name, q) in [("--r", r), ("--w", w)] {
            if !(1..=n).contains(&q) {
                return Err(format!("{name} must be in 1..=N ({n}), got {q}").into());
            }
        }
        let weight = self.weight.unwrap_or(1);
        if !(1..=NODE_WEIGHT_MAX).contains(&weight) {
            return Err(format!("--weight must be in 1..={NODE_WEIGHT_MAX}, got {weight}").into());
        }
        let vnodes = self.vnodes.unwrap_or(VNODES_PER_WEIGHT_DEFAULT);
        if !(1..=VNODES_PER_WEIGHT_MAX).contains(&vnodes) {
            return Err(
                format!("--vnodes must be in 1..={VNODES_PER_WEIGHT_MAX}, got {vnodes}").into(),
            );
        }
        if u64::from(weight) * u64::from(vnodes) > RING_TOKENS_MAX as u64 {
            return Err(format!(
                "--weight ({weight}) x --vnodes ({vnodes}) must be at most {RING_TOKENS_MAX} \
                 ring tokens"
            )
            .into());
        }
        for (name, label) in [("--dc", &self.dc), ("--rack", &self.rack)] {
            if let Some(label) = label {
                if label.is_empty()
                    || label.len() > LABEL_BYTES_MAX
                    || !label.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(format!(
                        "{name} must be 1..={LABEL_BYTES_MAX} printable ASCII bytes without \
                         spaces, got {label:?}"
                    )
                    .into());
                }
            }
        }
        let request_timeout_ms = positive(
            "--request-timeout-ms",
            self.request_timeout_ms,
            REQUEST_TIMEOUT_MS_DEFAULT,
        )?;
        if request_timeout_ms > REQUEST_TIMEOUT_MS_MAX {
            return Err(
                format!("--request-timeout-ms must be at most {REQUEST_TIMEOUT_MS_MAX}").into(),
            );
        }
        let max_frame_bytes = positive(
            "--max-frame-bytes",
            self.max_frame_bytes,
            MAX_FRAME_BYTES_DEFAULT,
        )?;
        if max_frame_bytes > u32::MAX as usize {
            return Err("--max-frame-bytes must fit the 4-byte length prefix".into());
        }
        let max_key_bytes = positive("--max-key-bytes", self.max_key_bytes, MAX_KEY_BYTES_DEFAULT)?;
        let max_value_bytes = positive(
            "--max-value-bytes",
            self.max_value_bytes,
            MAX_VALUE_BYTES_DEFAULT,
        )?;
        if max_key_bytes + max_value_bytes + 1024 > max_frame_bytes {
            return Err(format!(
                "--max-frame-bytes ({max_frame_bytes}) must leave room for a key ({max_key_bytes}) \
                 and a value ({max_value_bytes}) plus 1 KiB of request fields"
            )
            .into());
        }
        let gossip_interval_ms = positive(
            "--gossip-interval-ms",
            self.gossip_interval_ms,
            GOSSIP_INTERVAL_MS_DEFAULT,
        )?;
        let suspect_after_ms = positive(
            "--suspect-after-ms",
            self.suspect_after_ms,
            SUSPECT_AFTER_GOSSIP_ROUNDS_DEFAULT * gossip_interval_ms,
        )?;
        if suspect_after_ms < 2 * gossip_interval_ms {
            return Err(format!(
                "--suspect-after-ms ({suspect_after_ms}) must be at least two gossip intervals \
                 ({gossip_interval_ms} ms each), or healthy nodes would look silent"
            )
            .into());
        }
        let stand_in_after_ms = positive(
            "--stand-in-after-ms",
            self.stand_in_after_ms,
            STAND_IN_AFTER_MS_DEFAULT.min(request_timeout_ms / 2),
        )?;
        if stand_in_after_ms >= request_timeout_ms {
            return Err(format!(
                "--stand-in-after-ms ({stand_in_after_ms}) must be less than \
                 --request-timeout-ms ({request_timeout_ms}), or no request would wait for a stand-in"
            ).into());
        }
        let read_retry_after_ms = positive(
            "--read-retry-after-ms",
            self.read_retry_after_ms,
            READ_RETRY_AFTER_MS_DEFAULT.min(stand_in_after_ms),
        )?;
        if read_retry_after_ms > stand_in_after_ms {
            return Err(format!(
                "--read-retry-after-ms ({read_retry_after_ms}) must not exceed \
                 --stand-in-after-ms ({stand_in_after_ms}): a read asks another replica \
                 before it asks a stand-in"
            )
            .into());
        }
        // A get answers a key's whole object in one frame, beside the
        // response's other fields.
        let object_bytes_bound = max_frame_bytes.saturating_sub(OBJECT_FRAME_HEADROOM_BYTES);
        let object_bytes_max = positive(
            "--object-bytes-max",
            self.object_bytes_max,
            object_bytes_bound,
        )?;
        if object_bytes_max > object_bytes_bound {
            return Err(format!(
                "--object-bytes-max ({object_bytes_max}) must leave {OBJECT_FRAME_HEADROOM_BYTES} \
                 bytes of --max-frame-bytes ({max_frame_bytes}) for the rest of a response"
            )
            .into());
        }
        if object_bytes_max < max_value_bytes + max_key_bytes {
            return Err(format!(
                "--object-bytes-max ({object_bytes_max}) must hold at least one value \
                 (--max-value-bytes {max_value_bytes}) and its key"
            )
            .into());
        }
        let version_limits = VersionLimits {
            siblings_max: positive("--siblings-max", self.siblings_max, SIBLINGS_MAX_DEFAULT)?,
            vclock_entries_max: positive(
                "--vclock-entries-max",
                self.vclock_entries_max,
                VCLOCK_ENTRIES_MAX_DEFAULT,
            )?,
            vclock_prune_age_s: self
                .vclock_prune_age_s
                .unwrap_or(VCLOCK_PRUNE_AGE_S_DEFAULT),
        };
        let client_tokens = match self.client_token_file {
            Some(path) => ClientTokens::new(
                &TokenFile::read(&path).map_err(|e| format!("--client-token-file: {e}"))?,
            ),
            None => ClientTokens::default(),
        };
        let tls = match (self.tls_cert, self.tls_key, self.tls_ca) {
            (None, None, None) => {
                if self.tls_peer_name.is_some() {
                    return Err("--tls-peer-name needs --tls-cert, --tls-key and --tls-ca".into());
                }
                None
            }
            (Some(cert), Some(key), Some(ca)) => Some(
                NodeTls::load(&TlsFiles {
                    cert,
                    key,
                    ca,
                    peer_name: self.tls_peer_name,
                })
                .map_err(|e| format!("TLS: {e}"))?,
            ),
            _ => {
                return Err(
                    "--tls-cert, --tls-key and --tls-ca go together: give all three or none".into(),
                )
            }
        };
        Ok(NodeConfig {
            id,
            cluster: self.cluster.unwrap_or_else(|| "ringkv".into()),
            cluster_secret,
            client_tokens,
            tls,
            listen,
            advertise_addr,
            client_listen,
            resp_listen: self.resp_listen,
            resp_siblings: self.resp_siblings.unwrap_or(RespSiblings::Error),
            metrics_listen: self.metrics_listen,
            data_dir,
            seeds: self.seeds.unwrap_or_default(),
            n,
            r,
            w,
            dc_replication,
            dc: self.dc.unwrap_or_else(|| "dc1".into()),
            rack: self.rack.unwrap_or_else(|| "r1".into()),
            weight,
            vnodes,
            storage: self.storage.unwrap_or(StorageKind::Lsm),
            log_format: self.log_format.unwrap_or(LogFormat::Pretty),
            request_timeout_ms,
            max_frame_bytes,
            max_key_bytes,
            max_value_bytes,
            version_limits,
            client_inflight_max: positive(
                "--client-inflight-max",
                self.client_inflight_max,
                CLIENT_INFLIGHT_MAX_DEFAULT,
            )?,
            client_connections_max: positive(
                "--client-connections-max",
                self.client_connections_max,
                CLIENT_CONNECTIONS_MAX_DEFAULT,
            )?,
            storage_queue_max: positive(
                "--storage-queue-max",
                self.storage_queue_max,
                STORAGE_QUEUE_MAX_DEFAULT,
            )?,
            reconnect_backoff_max_ms: positive(
                "--reconnect-backoff-max-ms",
                self.reconnect_backoff_max_ms,
                RECONNECT_BACKOFF_MAX_MS_DEFAULT,
            )?,
            gossip_interval_ms,
            gossip_fanout: positive("--gossip-fanout", self.gossip_fanout, GOSSIP_FANOUT_DEFAULT)?,
            suspect_after_ms,
            generation_skew_ms_max: positive(
                "--generation-skew-ms-max",
                self.generation_skew_ms_max,
                GENERATION_SKEW_MS_MAX_DEFAULT,
            )?,
            join_settle_ms: self
                .join_settle_ms
                .unwrap_or(JOIN_SETTLE_GOSSIP_ROUNDS_DEFAULT * gossip_interval_ms),
            stream_bytes_per_s_max: positive(
                "--stream-bytes-per-s-max",
                self.stream_bytes_per_s_max,
                STREAM_BYTES_PER_S_MAX_DEFAULT,
            )?,
            anti_entropy_interval_ms: self
                .anti_entropy_interval_ms
                .unwrap_or(ANTI_ENTROPY_INTERVAL_MS_DEFAULT),
            anti_entropy_bytes_per_s_max: self
                .anti_entropy_bytes_per_s_max
                .unwrap_or(ANTI_ENTROPY_BYTES_PER_S_MAX_DEFAULT),
            stand_in_after_ms,
            read_asks: self.read_asks.unwrap_or(ReadAsks::Needed),
            read_retry_after_ms,
            bootstrap_wait_ms: positive(
                "--bootstrap-wait-ms",
                self.bootstrap_wait_ms,
                BOOTSTRAP_WAIT_MS_DEFAULT,
            )?,
            object_bytes_max,
            hints_bytes_max_per_target: positive(
                "--hints-bytes-max-per-target",
                self.hints_bytes_max_per_target,
                HINTS_BYTES_MAX_PER_TARGET_DEFAULT,
            )?,
            hint_delivery_bytes_per_s_max: self
                .hint_delivery_bytes_per_s_max
                .unwrap_or(HINT_DELIVERY_BYTES_PER_S_MAX_DEFAULT),
            tombstone_reap: {
                let age_ms_min = self
                    .tombstone_reap_age_ms_min
                    .unwrap_or(TOMBSTONE_REAP_AGE_MS_MIN_DEFAULT);
                let settle_ms = stream_timeout_ms(request_timeout_ms);
                if age_ms_min < settle_ms {
                    return Err(format!(
                        "--tombstone-reap-age-ms-min must be at least the streaming deadline \
                         ({settle_ms} ms: the larger of --request-timeout-ms and 5000), got {age_ms_min}"
                    )
                    .into());
                }
                let batch_keys = positive(
                    "--tombstone-reap-batch-keys",
                    self.tombstone_reap_batch_keys,
                    TOMBSTONE_REAP_BATCH_KEYS_DEFAULT,
                )?;
                if batch_keys > TOMBSTONE_REAP_BATCH_KEYS_MAX {
                    return Err(format!(
                        "--tombstone-reap-batch-keys must be at most {TOMBSTONE_REAP_BATCH_KEYS_MAX}, got {batch_keys}"
                    )
                    .into());
                }
                ReapOptions {
                    interval_ms: self
                        .tombstone_reap_interval_ms
                        .unwrap_or(TOMBSTONE_REAP_INTERVAL_MS_DEFAULT),
                    age_ms_min,
                    batch_keys,
                }
            },
            lsm: {
                let defaults = ringkv_actors::storage::LsmOptions::default();
                ringkv_actors::storage::LsmOptions {
                    memtable_bytes_max: positive(
                        "--lsm-memtable-bytes-max",
                        self.lsm_memtable_bytes_max,
                        defaults.memtable_bytes_max,
                    )?,
                    log_preallocate_bytes: self
                        .lsm_log_preallocate_bytes
                        .unwrap_or(defaults.log_preallocate_bytes),
                    log_segment_bytes_max: positive(
                        "--lsm-log-segment-bytes-max",
                        self.lsm_log_segment_bytes_max,
                        defaults.log_segment_bytes_max,
                    )?,
                    ..defaults
                }
            },
        })
    }
}

/// Protected mode (no cluster secret): peers cannot prove anything, so
/// the node listens on loopback only, and says so when asked for more.
/// The advertised address counts too (peers elsewhere would dial it), and
/// so do the seeds (a peer elsewhere could not take us).
fn protected_mode(
    listen: SocketAddr,
    client_listen: SocketAddr,
    advertise_addr: Option<SocketAddr>,
    seeds: &[SocketAddr],
) -> Result<(), String> {
    let addresses = [("--listen", listen), ("--client-listen", client_listen)]
        .into_iter()
        .chain(advertise_addr.map(|a| ("--advertise-addr", a)))
        .chain(seeds.iter().map(|s| ("--seeds", *s)));
    for (flag, addr) in addresses {
        if !is_loopback(addr.ip()) {
            return Err(format!(
                "{flag} {addr} is not a loopback address, and this node has no \
                 --cluster-secret-file: without one a node is in protected mode and takes peers \
                 and clients from this machine only; give every node of the cluster the same \
                 --cluster-secret-file (32 or more random bytes) to listen on {addr}"
            ));
        }
    }
    Ok(())
}

fn positive<T: PartialOrd + Default + Copy + std::fmt::Display>(
    name: &str,
    value: Option<T>,
    default: T,
) -> Result<T, String> {
    let v = value.unwrap_or(default);
    if v <= T::default() {
        return Err(format!("{name} must be greater than 0, got {v}"));
    }
    Ok(v)
}

/// The file's settings, with `-` in names read as `_`.
fn read_file(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let in_file = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| in_file(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| in_file(format!("not valid TOML: {e}")))?;
    // Accept `client-listen` as well as `client_listen`.
    table
        .into_iter()
        .map(|(k, v)| {
            let v = serde_json::to_value(v).map_err(|e| in_file(e.to_string()))?;
            Ok((k.replace('-', "_"), v))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "config_tests.rs"]
mod tests;
