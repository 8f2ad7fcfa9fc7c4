//! The RESP front end (`--resp-listen`): Redis clients (redis-cli,
//! redis-benchmark, client libraries) talk to the node in RESP2 or RESP3.
//! The listener ([`RespApi`]) accepts like the client listener (protected
//! mode: loopback only; `client_connections_max`; TLS when the node has
//! it); one [`RespSession`] per connection turns commands into the same
//! typed Replicator messages the native `ClientSession` sends.
//!
//! - `frame`: RESP framing (the `redis-protocol` crate) and reply encoding;
//! - `command`: argument list -> typed [`command::Command`] (pure);
//! - `info`: the text of `INFO` and `CLIENT INFO` (pure);
//! - `scan`: `SCAN` cursors, `MATCH` globs, the `DBSIZE` estimate (pure);
//! - `session`: the connection actor.
//!
//! The write rule: SET and DEL supersede what the coordinating replica
//! holds for the key (`CoordinateWrite::supersede_local`), so a client's
//! repeated SETs replace each other; a write the coordinator has not seen
//! stays a sibling. A GET of a key with siblings answers an error
//! ([`SiblingsMode::Error`]) or the last writer ([`SiblingsMode::Lww`]).

pub mod command;
pub mod frame;
pub mod info;
mod io;
mod local;
mod permits;
pub mod scan;
mod session;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use tracing::{info, warn};

pub use session::RespSession;

use crate::client_api::access::ClientTokens;
use crate::failure_detector::FailureDetector;
use crate::net::{accept_stream, AcceptPolicy, BoxConnection, Listener};
use crate::replicator::{LocalReads, Replicator};
use crate::NodeId;

/// What a GET answers for a key with siblings (`resp_siblings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiblingsMode {
    /// An error naming how many there are and how to resolve them.
    Error,
    /// The last writer's value (latest coordinator wall time, then the
    /// larger dot): concurrent writes silently lose on this port.
    Lww,
}

/// Limits and settings of the RESP front end; each limit named with its
/// unit.
#[derive(Clone, Debug)]
pub struct RespOptions {
    /// Largest command frame and largest reply, in bytes (the node's
    /// `max_frame_bytes`).
    pub frame_bytes_max: usize,
    /// Most arguments in one command.
    pub args_max: usize,
    /// Largest key and value (`max_key_bytes`, `max_value_bytes`).
    pub limits: command::CommandLimits,
    /// Replicas per key (N): `RINGKV.CONSISTENCY all` reads and writes N.
    pub replicas: usize,
    /// Commands one connection may have read and not answered; past it
    /// the session stops reading until one is done (`client_inflight_max`).
    pub inflight_max: usize,
    /// Open RESP connections; more are closed at accept
    /// (`client_connections_max`, counted apart from the client port's).
    pub connections_max: usize,
    /// Replies queued for one socket; a client that lets this many pile up
    /// (it does not read) is disconnected.
    pub write_queue_replies_max: usize,
    /// Which remote addresses are served: loopback only in protected mode.
    pub accept: AcceptPolicy,
    /// The client token (`AUTH`, `HELLO ... AUTH`), as on the client port.
    pub tokens: ClientTokens,
    /// What a GET of a key with siblings answers.
    pub siblings: SiblingsMode,
    /// Where data commands are counted (`command::metric_op`), as the
    /// client port counts its requests.
    pub metrics: crate::metrics::Metrics,
}

/// State every session of one node shares.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Source of request ids (for the logs).
    pub next_trace: Rc<Cell<u64>>,
    /// Source of connection ids (`CLIENT ID`).
    pub next_client_id: Rc<Cell<u64>>,
    /// Open connections.
    pub open: Rc<Cell<usize>>,
    /// When the listener started (`INFO` uptime).
    pub started: Instant,
    /// The address the listener is bound to.
    pub local_addr: Option<SocketAddr>,
    /// Reads a session answers without asking the replicator (a GET of a
    /// key only this node holds, with R = 1: `replicator::LocalReads`).
    pub local_reads: Rc<LocalReads>,
}

/// The RESP listener actor.
pub struct RespApi {
    node: NodeId,
    options: RespOptions,
    listener: Option<Box<dyn Listener>>,
    replicator: Addr<Replicator>,
    failure_detector: Addr<FailureDetector>,
    shared: Shared,
    span: tracing::Span,
}

impl RespApi {
    /// A front end serving `listener`.
    pub fn new(
        node: NodeId,
        options: RespOptions,
        listener: Box<dyn Listener>,
        replicator: Addr<Replicator>,
        local_reads: Rc<LocalReads>,
        failure_detector: Addr<FailureDetector>,
    ) -> Self {
        // Request ids at a per-node offset apart from the client port's.
        let first = crate::ring::hash_bytes(node.as_str().as_bytes()) & 0xffff_ff00_0000_0000
            | 0x0000_0080_0000_0000;
        let local_addr = listener.local_addr().ok();
        let span = tracing::info_span!("resp_api", node = %node, actor = "resp_api");
        Self {
            node,
            options,
            listener: Some(listener),
            replicator,
            failure_detector,
            shared: Shared {
                next_trace: Rc::new(Cell::new(first)),
                next_client_id: Rc::new(Cell::new(1)),
                open: Rc::new(Cell::new(0)),
                started: Instant::now(),
                local_addr,
                local_reads,
            },
            span,
        }
    }
}

impl Actor for RespApi {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(listener) = self.listener.take() {
            ctx.add_stream(accept_stream(listener));
        }
    }
}

impl StreamHandler<std::io::Result<(BoxConnection, SocketAddr)>> for RespApi {
    fn handle(
        &mut self,
        item: std::io::Result<(BoxConnection, SocketAddr)>,
        _ctx: &mut Self::Context,
    ) {
        let span = self.span.clone();
        let _span = span.enter();
        match item {
            Ok((_conn, remote)) if !self.options.accept.admits(remote) => {
                warn!(%remote, "refusing RESP connection from a non-loopback address: \
                    protected mode (this node has no --cluster-secret-file)");
            }
            Ok((conn, remote)) => {
                let open = &self.shared.open;
                if open.get() >= self.options.connections_max {
                    warn!(%remote, limit = self.options.connections_max,
                        "refusing RESP connection: client_connections_max reached");
                    return;
                }
                open.set(open.get() + 1);
                RespSession::new(
                    conn,
                    remote,
                    self.node.clone(),
                    self.options.clone(),
                    self.replicator.clone(),
                    self.failure_detector.clone(),
                    self.shared.clone(),
                )
                .start();
            }
            Err(e) => warn!(error = %e, "RESP accept failed"),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        info!("RESP listener closed");
    }
}
