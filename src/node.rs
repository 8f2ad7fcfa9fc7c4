//! Builds one node: opens its listeners and storage, starts every actor and
//! hands each its collaborators. Nothing here reaches for a global
//! (`System::current()` and the like): the network, the clock and the
//! storage engine come in through [`NodeEnv`], so the same code runs over
//! real sockets and inside the turmoil simulation (randomness too: the
//! handshake's nonces, so that a simulation replays).

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use ringkv_actors::bridge::handshake::PeerKey;
use ringkv_actors::bridge::{
    peer_max_frame_bytes, Bridge, BridgeOptions, Dial, LinkDirectory, NonceRng, PeerAuth,
    PeerHandlers,
};
use ringkv_actors::client_api::ClientApi;
use ringkv_actors::clock::SharedClock;
use ringkv_actors::conflict_resolver::ConflictResolver;
use ringkv_actors::failure_detector::{FailureDetector, MemberState, PersistedMember, Subscribe};
use ringkv_actors::metrics::Metrics;
use ringkv_actors::net::{AcceptPolicy, SharedNet};
use ringkv_actors::repair::Repair;
use ringkv_actors::replicas::{ReplicaHandles, Replicas};
use ringkv_actors::replicator::Replicator;
use ringkv_actors::resp::RespApi;
use ringkv_actors::storage::{
    CloseWrites, Engine, Storage, StorageOptions, StorageThreading, SubscribeStorage,
};
use ringkv_actors::wire::peer::MemberInfo;
use tracing::info;

use crate::config::NodeConfig;

mod options;
pub use crate::data_dir::{open_storage, record_clean_shutdown, NodeEnvParts};
use options::{
    client_api_options, failure_detector_options, repair_options, replication_options, resp_options,
};

/// File in the data dir holding the known members.
pub(crate) const MEMBERS_FILE: &str = "members.mpk";
/// What a node needs from the world.
pub struct NodeEnv {
    /// Sockets.
    pub net: SharedNet,
    /// Wall time.
    pub clock: SharedClock,
    /// The storage engine.
    pub engine: Arc<dyn Engine>,
    /// Where membership is kept across restarts (`None`: not kept).
    pub members_file: Option<PathBuf>,
    /// Where storage work runs (`--storage-writer`: the writer on the
    /// event loop or a thread; in simulations inline, on the clock or in
    /// place on the loop).
    pub storage_threading: StorageThreading,
    /// The incarnation of the store: new whenever the store starts empty.
    /// Writes are versioned as `NodeId::version_actor(incarnation)`.
    pub incarnation: u32,
    /// How the storage writer reopens the store and renews the
    /// incarnation after a failed write.
    pub backend: ringkv_actors::storage::Backend,
    /// Where the peer handshake's nonces come from: [`os_nonces`] in a
    /// node, a seeded generator in a simulation.
    pub nonces: NonceRng,
}

impl NodeEnv {
    /// The world of a `ringkv node` process: real sockets and wall time,
    /// the store opened from its data dir (`open_storage`), storage work
    /// where `--storage-writer` says, nonces from the OS.
    pub fn of_process(parts: NodeEnvParts) -> Self {
        Self {
            net: std::rc::Rc::new(ringkv_actors::net::TokioNet),
            clock: std::rc::Rc::new(ringkv_actors::clock::SystemClock::new()),
            engine: parts.engine,
            members_file: parts.members_file,
            storage_threading: parts.storage_threading,
            incarnation: parts.incarnation,
            backend: parts.backend,
            nonces: os_nonces(),
        }
    }
}

/// The nonce source of a real node: rand's thread-local generator,
/// seeded from the OS and reseeded as it goes.
pub fn os_nonces() -> NonceRng {
    std::rc::Rc::new(std::cell::RefCell::new(rand::thread_rng()))
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not be bound.
    // The cause is chained (printed by `{:#}`), not repeated here.
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The data dir could not be used.
    #[error("data dir {dir}: {reason}")]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The storage engine failed to open.
    #[error(transparent)]
    Storage(#[from] ringkv_actors::storage::StorageError),
}

/// A started node.
pub struct RunningNode {
    /// Where clients connect (the bound address: useful with port 0).
    pub client_addr: SocketAddr,
    /// Where peers connect.
    pub peer_addr: SocketAddr,
    /// Where Redis clients connect (`--resp-listen`; `None`: off).
    pub resp_addr: Option<SocketAddr>,
    /// Where Prometheus scrapes (`None`: no `--metrics-listen`).
    pub metrics_addr: Option<SocketAddr>,
    /// The node's metrics (what `--metrics-listen` serves).
    pub metrics: Metrics,
    /// The Storage actor, closed for writes at shutdown.
    storage: Addr<Storage>,
    /// Held for the node's lifetime: the data dir lock (released on drop).
    _lock: Option<File>,
}

/// How long a shutdown waits for the writes already taken to finish before
/// it gives up on a clean stop.
pub const SHUTDOWN_WRITES_WAIT_MS: u64 = 30_000;

impl RunningNode {
    /// A clean stop: take no more writes, let those taken finish (at most
    /// `SHUTDOWN_WRITES_WAIT_MS`), flush the engine (the storage writer
    /// does, as it stops; it refuses if a write failed and was not
    /// recovered), then leave the `CLEAN_SHUTDOWN` mark, so the next start
    /// keeps the store's incarnation (see `data_dir::store_incarnation`).
    /// `Err` says why the stop is not clean; the next start then gets a
    /// new incarnation.
    pub async fn stop_cleanly(&self, config: &NodeConfig) -> Result<(), String> {
        let wait = std::time::Duration::from_millis(SHUTDOWN_WRITES_WAIT_MS);
        tokio::time::timeout(wait, self.storage.send(CloseWrites))
            .await
            .map_err(|_| format!("writes still running after {SHUTDOWN_WRITES_WAIT_MS} ms"))?
            .map_err(|e| format!("storage actor gone: {e}"))?
            .map_err(|e| format!("closing the store: {e}"))?;
        record_clean_shutdown(config)
    }
}

/// Whether this start is a join (stream the ranges this node will own
/// before serving reads). A node that never finished joining (it crashed
/// mid-stream) or that left the cluster joins again; a node that was
/// serving comes back serving; a node with no memory of a cluster joins
/// when it is given seeds (a new member) and not otherwise (the first node).
fn should_join(own: &ringkv_actors::NodeId, known: &[PersistedMember], has_seeds: bool) -> bool {
    match known
        .iter()
        .find(|m| m.info.id == *own)
        .map(|m| m.record.status)
    {
        Some(MemberState::Joining | MemberState::Left) => true,
        Some(_) => false,
        None => has_seeds,
    }
}

/// The key this node seals client contexts with: from the cluster secret,
/// or (integrity only, see `conflict_resolver::context`) from the cluster
/// name when there is none.
/// Starts every actor of a node on the current arbiter.
pub async fn start(
    config: &NodeConfig,
    env: NodeEnv,
    lock: Option<File>,
) -> Result<RunningNode, NodeError> {
    // With TLS, both ports (and the bridge's dials) speak it; the layers
    // above see plain streams either way.
    let (peer_net, client_net) = match &config.tls {
        Some(tls) => (
            tls.peer_net(env.net.clone()),
            tls.client_net(env.net.clone()),
        ),
        None => (env.net.clone(), env.net.clone()),
    };
    let peer_listener = peer_net
        .bind(config.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: config.listen,
            what: "--listen",
            source,
        })?;
    let client_listener = client_net
        .bind(config.client_listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: config.client_listen,
            what: "--client-listen",
            source,
        })?;
    let resp_listener = match config.resp_listen {
        Some(addr) => Some(
            client_net
                .bind(addr)
                .await
                .map_err(|source| NodeError::Bind {
                    addr,
                    what: "--resp-listen",
                    source,
                })?,
        ),
        None => None,
    };
    let resp_addr = resp_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok().or(config.resp_listen));
    let peer_addr = peer_listener.local_addr().unwrap_or(config.listen);
    let client_addr = client_listener.local_addr().unwrap_or(config.client_listen);
    // With an ephemeral --listen port (0), advertise the port actually bound.
    let advertised = if config.advertise_addr == config.listen {
        peer_addr
    } else {
        config.advertise_addr
    };
    let own = MemberInfo {
        id: config.id.clone(),
        peer_addr: advertised.to_string(),
        client_addr: client_addr.to_string(),
        dc: config.dc.clone(),
        rack: config.rack.clone(),
        weight: config.weight,
    };
    let known = match &env.members_file {
        Some(path) => FailureDetector::load_members(path).map_err(|reason| NodeError::DataDir {
            dir: config.data_dir.clone(),
            reason,
        })?,
        None => Vec::new(),
    };
    let mut dial: Vec<SocketAddr> = config.seeds.clone();
    dial.extend(
        known
            .iter()
            .filter_map(|m| m.info.peer_addr.parse::<SocketAddr>().ok()),
    );
    dial.retain(|a| *a != peer_addr && *a != advertised);
    dial.sort();
    dial.dedup();
    let join = should_join(&config.id, &known, !config.seeds.is_empty());

    // One registry for the node; the engine keeps its own handles (it
    // runs on its own threads), registered here.
    let metrics = Metrics::new(env.engine.metrics().as_ref());
    let storage_options = StorageOptions {
        metrics: metrics.clone(),
        threading: env.storage_threading,
        storage_queue_max: config.storage_queue_max,
        hints_bytes_max_per_target: config.hints_bytes_max_per_target,
        merkle_digest: ringkv_actors::repair::merkle::tree_digest(),
        ..StorageOptions::default()
    };
    let storage = Storage::new(
        &config.id,
        env.engine,
        storage_options,
        env.backend,
        env.incarnation,
    )
    .map_err(|e| NodeError::DataDir {
        dir: config.data_dir.clone(),
        reason: format!("cannot start storage: {e}"),
    })?;
    let memory_reads = storage.memory_reads();
    let writer_queue = storage.writer_queue();
    let storage = storage.start();
    let storage_for_shutdown = storage.clone();

    // Requests leave through the Bridge and come back in through it, so
    // the actors that call peers need its address and it needs theirs (to
    // deliver incoming requests): its context is created first, so its
    // address exists before it runs. The modules themselves form a DAG.
    let bridge_context = Context::<Bridge>::new();
    let bridge_addr = bridge_context.address();
    let links = LinkDirectory::default();
    let replicas = Replicas::from(ReplicaHandles {
        own: config.id.clone(),
        storage: storage.clone(),
        memory: memory_reads,
        writer: writer_queue,
        bridge: bridge_addr.clone(),
        links: links.clone(),
        metrics: metrics.clone(),
    });
    let resolver = ConflictResolver::new(&config.id).start();
    let repair = Repair::new(replicas.clone(), repair_options(config))
        .with_clock(env.clock.clone())
        .start();
    let failure_detector = FailureDetector::new(
        own.clone(),
        known.clone(),
        failure_detector_options(config, env.members_file.clone(), join, dial.clone()),
        bridge_addr.clone(),
        repair.clone().recipient(),
        env.clock.clone(),
    )
    .start();
    let replicator = Replicator::new(
        replication_options(config),
        replicas,
        resolver.recipient(),
        repair.clone().recipient(),
        env.clock.clone(),
    );
    // Taken before the actor starts: RESP sessions answer some reads
    // themselves (`replicator::LocalReads`).
    let local_reads = replicator.local_reads();
    let replicator = replicator.start();
    let bridge_options = BridgeOptions {
        max_frame_bytes: peer_max_frame_bytes(config.max_frame_bytes),
        reconnect_backoff_max_ms: config.reconnect_backoff_max_ms,
        ..BridgeOptions::default()
    };
    let secret = config.cluster_secret.as_ref().map(|(_, secret)| secret);
    // Protected mode: without a secret the handshake proves nothing, so
    // only this machine may connect (config.rs refused non-loopback
    // listen addresses already).
    let accept = match secret {
        Some(_) => AcceptPolicy::Any,
        None => AcceptPolicy::LoopbackOnly,
    };
    bridge_context.run(
        Bridge::new(
            own.clone(),
            config.cluster.clone(),
            PeerAuth {
                key: PeerKey::new(secret),
                nonces: env.nonces.clone(),
                accept,
            },
            peer_net,
            bridge_options,
            peer_listener,
            PeerHandlers {
                read: replicator.clone().recipient(),
                direct: local_reads.clone(),
                write: replicator.clone().recipient(),
                hinted_write: replicator.clone().recipient(),
                coordinate: replicator.clone().recipient(),
                scan: repair.clone().recipient(),
                merkle_leaves: repair.clone().recipient(),
                merkle_nodes: repair.clone().recipient(),
                reap_check: repair.clone().recipient(),
                reap_drop: repair.clone().recipient(),
                gossip: failure_detector.clone().recipient(),
                list_keys: replicator.clone().recipient(),
            },
            failure_detector.clone().recipient(),
            vec![replicator.clone().recipient(), repair.clone().recipient()],
        )
        .with_directory(links),
    );
    storage_for_shutdown.do_send(SubscribeStorage(replicator.clone().recipient()));
    storage_for_shutdown.do_send(SubscribeStorage(failure_detector.clone().recipient()));
    failure_detector.do_send(Subscribe(replicator.clone().recipient()));
    failure_detector.do_send(Subscribe(repair.clone().recipient()));
    failure_detector.do_send(Subscribe(bridge_addr.clone().recipient()));
    // Known members are followed by id from the failure detector's view
    // (it names them); seeds are dialled by address until they say who
    // they are.
    for addr in &config.seeds {
        if *addr != peer_addr && *addr != advertised {
            bridge_addr.do_send(Dial { addr: *addr });
        }
    }
    if let Some(listener) = resp_listener {
        RespApi::new(
            config.id.clone(),
            resp_options(config, accept, metrics.clone()),
            listener,
            replicator.clone(),
            local_reads.clone(),
            failure_detector.clone(),
        )
        .start();
    }
    ClientApi::new(
        config.id.clone(),
        client_api_options(config, accept, metrics.clone()),
        client_listener,
        replicator,
        local_reads,
        failure_detector.clone(),
        storage_for_shutdown.clone(),
        repair.clone(),
    )
    .start();
    let metrics_addr = match config.metrics_listen {
        Some(addr) => Some(
            crate::metrics_http::start(
                addr,
                accept,
                metrics.clone(),
                crate::metrics_http::Sources {
                    failure_detector,
                    storage: storage_for_shutdown.clone(),
                },
            )
            .await
            .map_err(|source| NodeError::Bind {
                addr,
                what: "--metrics-listen",
                source,
            })?,
        ),
        None => None,
    };
    let span = tracing::info_span!("node", node = %config.id, actor = "node");
    let _span = span.enter();
    info!(
        id = %config.id,
        cluster = %config.cluster,
        peer_addr = %peer_addr,
        client_addr = %client_addr,
        resp_addr = %resp_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        metrics_addr = ?metrics_addr,
        data_dir = %config.data_dir.display(),
        storage = ?config.storage,
        n = config.n, r = config.r, w = config.w,
        dc_replication = %config.dc_replication,
        known_members = known.len(),
        joining = join,
        seeds = dial.len(),
        protected_mode = secret.is_none(),
        "node started"
    );
    Ok(RunningNode {
        client_addr,
        peer_addr,
        resp_addr,
        metrics_addr,
        metrics,
        storage: storage_for_shutdown,
        _lock: lock,
    })
}

#[cfg(test)]
mod tests;
