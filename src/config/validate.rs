//! `NodeArgs::validate`: every setting checked and defaulted, in steps
//! that each answer one group of `NodeConfig`'s fields, in the order the
//! settings were always checked (so the first bad setting is the one
//! named), each with a message that names the setting.

use std::net::SocketAddr;
use std::path::PathBuf;

use ringkv_actors::bridge::RECONNECT_BACKOFF_MAX_MS_DEFAULT;
use ringkv_actors::client_api::access::{ClientTokens, TokenFile};
use ringkv_actors::client_api::{CLIENT_CONNECTIONS_MAX_DEFAULT, CLIENT_INFLIGHT_MAX_DEFAULT};
use ringkv_actors::failure_detector::gossip::{
    GENERATION_SKEW_MS_MAX_DEFAULT, GOSSIP_FANOUT_DEFAULT,
};
use ringkv_actors::failure_detector::{
    BOOTSTRAP_WAIT_MS_DEFAULT, JOIN_SETTLE_GOSSIP_ROUNDS_DEFAULT,
};
use ringkv_actors::net::is_loopback;
use ringkv_actors::repair::{
    ANTI_ENTROPY_BYTES_PER_S_MAX_DEFAULT, ANTI_ENTROPY_INTERVAL_MS_DEFAULT,
    HINT_DELIVERY_BYTES_PER_S_MAX_DEFAULT, STREAM_BYTES_PER_S_MAX_DEFAULT,
};
use ringkv_actors::replicator::{N_DEFAULT, QUORUM_DEFAULT};
use ringkv_actors::ring::{
    DcReplication, RING_TOKENS_MAX, VNODES_PER_WEIGHT_DEFAULT, VNODES_PER_WEIGHT_MAX,
};
use ringkv_actors::secret::ClusterSecret;
use ringkv_actors::storage::{HINTS_BYTES_MAX_PER_TARGET_DEFAULT, STORAGE_QUEUE_MAX_DEFAULT};
use ringkv_actors::tls::{NodeTls, TlsFiles};
use ringkv_actors::wire::peer::{LABEL_BYTES_MAX, NODE_WEIGHT_MAX};
use ringkv_actors::NodeId;

use super::limits::{Frames, Timings};
use super::{
    positive, protected_mode, ConfigError, LogFormat, NodeArgs, NodeConfig, ReadAsks, RespSiblings,
    StorageKind, StorageWriter, REPLICAS_MAX,
};

/// The node's addresses and its secret.
struct Addresses {
    id: NodeId,
    listen: SocketAddr,
    client_listen: SocketAddr,
    advertise_addr: SocketAddr,
    cluster_secret: Option<(PathBuf, ClusterSecret)>,
}

/// Where the node's replicas go and what quorums default to.
struct Placement {
    dc_replication: DcReplication,
    n: usize,
    r: usize,
    w: usize,
    weight: u32,
    vnodes: u32,
}

impl NodeArgs {
    /// Validates and fills defaults.
    pub fn validate(self) -> Result<NodeConfig, ConfigError> {
        let Addresses {
            id,
            listen,
            client_listen,
            advertise_addr,
            cluster_secret,
        } = self.addresses()?;
        let data_dir = self.data_dir.clone().ok_or("--data-dir is required")?;
        let Placement {
            dc_replication,
            n,
            r,
            w,
            weight,
            vnodes,
        } = self.placement()?;
        let Frames {
            request_timeout_ms,
            max_frame_bytes,
            max_key_bytes,
            max_value_bytes,
        } = self.frames()?;
        let Timings {
            gossip_interval_ms,
            suspect_after_ms,
            stand_in_after_ms,
            read_retry_after_ms,
        } = self.timings(request_timeout_ms)?;
        let (object_bytes_max, version_limits) =
            self.objects(max_frame_bytes, max_key_bytes, max_value_bytes)?;
        let (client_tokens, tls) = self.access()?;
        Ok(NodeConfig {
            id,
            cluster: self.cluster.clone().unwrap_or_else(|| "ringkv".into()),
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
            seeds: self.seeds.clone().unwrap_or_default(),
            n,
            r,
            w,
            dc_replication,
            dc: self.dc.clone().unwrap_or_else(|| "dc1".into()),
            rack: self.rack.clone().unwrap_or_else(|| "r1".into()),
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
            storage_writer: self.storage_writer.unwrap_or(StorageWriter::Loop),
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
            tombstone_reap: self.tombstone_reap(request_timeout_ms)?,
            lsm: self.lsm()?,
        })
    }

    /// Id, listen addresses (distinct; loopback only without a cluster
    /// secret) and the address peers dial.
    fn addresses(&self) -> Result<Addresses, ConfigError> {
        let id = NodeId::new(
            self.id
                .clone()
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
        let cluster_secret = match &self.cluster_secret_file {
            Some(path) => {
                let secret = ClusterSecret::from_file(path)?;
                Some((path.clone(), secret))
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
        Ok(Addresses {
            id,
            listen,
            client_listen,
            advertise_addr,
            cluster_secret,
        })
    }

    /// N (or the per-DC replication it adds up to), R, W, the node's
    /// weight and virtual nodes, its DC and rack labels.
    fn placement(&self) -> Result<Placement, ConfigError> {
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
        Ok(Placement {
            dc_replication,
            n,
            r,
            w,
            weight,
            vnodes,
        })
    }

    /// Client tokens and TLS (all three files or none).
    fn access(&self) -> Result<(ClientTokens, Option<NodeTls>), ConfigError> {
        let client_tokens = match &self.client_token_file {
            Some(path) => ClientTokens::new(
                &TokenFile::read(path).map_err(|e| format!("--client-token-file: {e}"))?,
            ),
            None => ClientTokens::default(),
        };
        let tls = match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => {
                if self.tls_peer_name.is_some() {
                    return Err("--tls-peer-name needs --tls-cert, --tls-key and --tls-ca".into());
                }
                None
            }
            (Some(cert), Some(key), Some(ca)) => Some(
                NodeTls::load(&TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: ca.clone(),
                    peer_name: self.tls_peer_name.clone(),
                })
                .map_err(|e| format!("TLS: {e}"))?,
            ),
            _ => {
                return Err(
                    "--tls-cert, --tls-key and --tls-ca go together: give all three or none".into(),
                )
            }
        };
        Ok((client_tokens, tls))
    }
}
