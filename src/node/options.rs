//! What each actor of a node is started with, read from the node's
//! [`NodeConfig`]: plain functions of the configuration (and of what
//! `start` found on disk), so `start` itself is the order the actors are
//! wired in.

use std::net::SocketAddr;
use std::path::PathBuf;

use ringkv_actors::client_api::{client_write_queue_frames_max, ClientApiOptions};
use ringkv_actors::conflict_resolver::ContextKey;
use ringkv_actors::failure_detector::{FailureDetectorOptions, GossipOptions};
use ringkv_actors::metrics::Metrics;
use ringkv_actors::net::AcceptPolicy;
use ringkv_actors::repair::{stream_timeout_ms, RepairOptions, READ_REPAIR_INFLIGHT_MAX_DEFAULT};
use ringkv_actors::replicator::{Asking, ReplicationOptions};
use ringkv_actors::resp::command::CommandLimits;
use ringkv_actors::resp::frame::RESP_ARGS_MAX;
use ringkv_actors::resp::{RespOptions, SiblingsMode};
use ringkv_actors::wire::client::RequestLimits;

use crate::config::{NodeConfig, ReadAsks, RespSiblings};

/// What `status` reports beyond the failure detector's own fields: the
/// replication settings and the cluster's name.
fn status_extra(config: &NodeConfig) -> Vec<(String, rmpv::Value)> {
    let mut status_extra = vec![
        ("n".to_string(), rmpv::Value::from(config.n as u64)),
        ("r".to_string(), rmpv::Value::from(config.r as u64)),
        ("w".to_string(), rmpv::Value::from(config.w as u64)),
        (
            "cluster".to_string(),
            rmpv::Value::from(config.cluster.as_str()),
        ),
    ];
    if !config.dc_replication.is_empty() {
        // Replicas per DC, as `--dc-replication` reads (`dc1:3,dc2:2`).
        status_extra.push((
            "dc_replication".to_string(),
            rmpv::Value::from(config.dc_replication.to_string()),
        ));
    }
    status_extra
}

/// The repair actor's options.
pub(super) fn repair_options(config: &NodeConfig) -> RepairOptions {
    RepairOptions {
        read_repair_inflight_max: READ_REPAIR_INFLIGHT_MAX_DEFAULT,
        repair_timeout_ms: config.request_timeout_ms,
        stream_bytes_per_s_max: config.stream_bytes_per_s_max,
        hint_retry_ms: config.gossip_interval_ms,
        hint_delivery_bytes_per_s_max: config.hint_delivery_bytes_per_s_max,
        anti_entropy_interval_ms: config.anti_entropy_interval_ms,
        anti_entropy_bytes_per_s_max: config.anti_entropy_bytes_per_s_max,
        replicas_per_key: config.n,
        reap: config.tombstone_reap,
    }
}

/// The failure detector's options: `members_file` where it keeps the
/// members it knows, `join` whether it joins (streams before serving),
/// `seeds` the peers it dials first.
pub(super) fn failure_detector_options(
    config: &NodeConfig,
    members_file: Option<PathBuf>,
    join: bool,
    seeds: Vec<SocketAddr>,
) -> FailureDetectorOptions {
    let status_extra = status_extra(config);
    FailureDetectorOptions {
        vnodes_per_weight: config.vnodes,
        replicas: config.n,
        dc_replication: config.dc_replication.clone(),
        members_file,
        status_extra,
        gossip: GossipOptions {
            gossip_interval_ms: config.gossip_interval_ms,
            gossip_fanout: config.gossip_fanout,
            suspect_after_ms: config.suspect_after_ms,
            generation_skew_ms_max: config.generation_skew_ms_max,
            ..GossipOptions::default()
        },
        join,
        join_settle_ms: config.join_settle_ms,
        stream_timeout_ms: stream_timeout_ms(config.request_timeout_ms),
        seeds,
        bootstrap_wait_ms: config.bootstrap_wait_ms,
    }
}

/// The replicator's options.
pub(super) fn replication_options(config: &NodeConfig) -> ReplicationOptions {
    ReplicationOptions {
        n: config.n,
        r: config.r,
        w: config.w,
        request_timeout_ms: config.request_timeout_ms,
        limits: config.version_limits.clone(),
        stand_in_after_ms: config.stand_in_after_ms,
        read_asks: match config.read_asks {
            ReadAsks::Needed => Asking::Needed,
            ReadAsks::All => Asking::Every,
        },
        read_retry_after_ms: config.read_retry_after_ms,
        object_bytes_max: config.object_bytes_max,
        contexts: context_key(config),
        dc: config.dc.clone(),
        dc_replication: config.dc_replication.clone(),
    }
}

/// The RESP front end's options.
pub(super) fn resp_options(
    config: &NodeConfig,
    accept: AcceptPolicy,
    metrics: Metrics,
) -> RespOptions {
    RespOptions {
        frame_bytes_max: config.max_frame_bytes,
        args_max: RESP_ARGS_MAX,
        limits: CommandLimits {
            max_key_bytes: config.max_key_bytes,
            max_value_bytes: config.max_value_bytes,
        },
        replicas: config.n,
        inflight_max: config.client_inflight_max,
        connections_max: config.client_connections_max,
        write_queue_replies_max: client_write_queue_frames_max(config.client_inflight_max),
        accept,
        tokens: config.client_tokens.clone(),
        siblings: match config.resp_siblings {
            RespSiblings::Error => SiblingsMode::Error,
            RespSiblings::Lww => SiblingsMode::Lww,
        },
        metrics,
    }
}

/// The client port's options.
pub(super) fn client_api_options(
    config: &NodeConfig,
    accept: AcceptPolicy,
    metrics: Metrics,
) -> ClientApiOptions {
    ClientApiOptions {
        max_frame_bytes: config.max_frame_bytes,
        limits: RequestLimits {
            max_key_bytes: config.max_key_bytes,
            max_value_bytes: config.max_value_bytes,
            replicas: config.n,
        },
        client_inflight_max: config.client_inflight_max,
        client_connections_max: config.client_connections_max,
        client_write_queue_frames_max: client_write_queue_frames_max(config.client_inflight_max),
        accept,
        tokens: config.client_tokens.clone(),
        metrics,
    }
}

/// The key that seals the causal contexts handed to clients: derived from
/// the cluster secret, or from the cluster's name when there is none.
fn context_key(config: &NodeConfig) -> ContextKey {
    match &config.cluster_secret {
        Some((_, secret)) => ContextKey::from_secret(secret),
        None => ContextKey::from_cluster_name(&config.cluster),
    }
}
