//! `NodeConfig`: every setting of a node, from flags and an optional TOML
//! file with the same key names (`--request-timeout-ms` is
//! `request_timeout_ms` or `request-timeout-ms` in the file; flags win),
//! validated once at start-up with a message that names the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use ringkv_actors::client_api::access::ClientTokens;
use ringkv_actors::conflict_resolver::VersionLimits;
use ringkv_actors::net::is_loopback;
use ringkv_actors::repair::reap::ReapOptions;
use ringkv_actors::ring::DcReplication;
use ringkv_actors::secret::{ClusterSecret, SecretError};
use ringkv_actors::tls::NodeTls;
use ringkv_actors::NodeId;
use serde::{Deserialize, Serialize};

mod args;
mod limits;
mod validate;

pub use args::NodeArgs;

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

/// Where a node's storage writer runs (`--storage-writer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageWriter {
    /// A thread of its own: the event loop hands it each write and takes
    /// the answers back; the loop goes on while a group syncs.
    Thread,
    /// The node's event loop (default), as Redis writes: no thread
    /// wake-up per write and larger groups (less CPU per write), but the
    /// loop waits for each group's log sync (steps that may wait longer,
    /// such as a write stall, a store reopen or any group after a slow
    /// one, go to a thread).
    Loop,
}

impl StorageWriter {
    /// The Storage actor's threading for this choice.
    pub fn threading(self) -> ringkv_actors::storage::StorageThreading {
        use ringkv_actors::storage::StorageThreading;
        match self {
            StorageWriter::Thread => StorageThreading::Threads,
            StorageWriter::Loop => StorageThreading::Loop {
                blocking_off_loop: true,
            },
        }
    }
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
    /// Where the storage writer runs.
    pub storage_writer: StorageWriter,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "config_security_tests.rs"]
mod security_tests;
