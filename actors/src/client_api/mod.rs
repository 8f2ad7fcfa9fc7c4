//! The client API: the client listener ([`ClientApi`]) and one
//! [`ClientSession`] per connection (session.rs), speaking PROTOCOL.md;
//! who may do what on a connection (tokens, admin ops) is `access`.
//!
//! In protected mode (no cluster secret) the listener serves clients from
//! loopback addresses only: any other connection is closed at accept,
//! before a byte is read, and logged.

pub mod access;
pub mod admin;
mod session;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use actix::prelude::*;
use tracing::{info, warn};

pub use session::ClientSession;

use crate::failure_detector::FailureDetector;
use crate::net::{accept_stream, AcceptPolicy, BoxConnection, Listener};
use crate::repair::Repair;
use crate::replicator::{LocalReads, Replicator};
use crate::storage::Storage;
use crate::wire::client::RequestLimits;
use crate::NodeId;

/// Default of [`ClientApiOptions::client_inflight_max`], in requests.
pub const CLIENT_INFLIGHT_MAX_DEFAULT: usize = 1024;
/// Default of [`ClientApiOptions::client_connections_max`], in connections.
pub const CLIENT_CONNECTIONS_MAX_DEFAULT: usize = 4096;

/// Response frames one client's socket may have queued, given its
/// in-flight limit: twice that, so a client that reads keeps its pipeline
/// full while one that does not is found out.
pub fn client_write_queue_frames_max(client_inflight_max: usize) -> usize {
    client_inflight_max.saturating_mul(2)
}

/// Limits of the client API; each named with its unit.
#[derive(Clone, Debug)]
pub struct ClientApiOptions {
    /// Largest request frame body, in bytes.
    pub max_frame_bytes: usize,
    /// Key, value and quorum limits checked while parsing.
    pub limits: RequestLimits,
    /// Requests one connection may have in flight; more are answered
    /// `unavailable` without being started.
    pub client_inflight_max: usize,
    /// Open client connections; more are closed at accept.
    pub client_connections_max: usize,
    /// Response frames queued for one client's socket; a client that lets
    /// this many pile up (it does not read) is disconnected.
    pub client_write_queue_frames_max: usize,
    /// Which remote addresses are served: loopback only in protected mode.
    pub accept: AcceptPolicy,
    /// The client and admin tokens (`--client-token-file`; none: every
    /// connection may run every op, admin ops from loopback only); the
    /// policy is `access`.
    pub tokens: access::ClientTokens,
    /// Requests by op and result, their latency, the replicator's mailbox.
    pub metrics: crate::metrics::Metrics,
}

/// The client listener actor.
pub struct ClientApi {
    node: NodeId,
    options: ClientApiOptions,
    listener: Option<Box<dyn Listener>>,
    replicator: Addr<Replicator>,
    /// Gets answered without asking the replicator (`LocalReads`).
    local_reads: Rc<LocalReads>,
    failure_detector: Addr<FailureDetector>,
    storage: Addr<Storage>,
    repair: Addr<Repair>,
    /// Source of request ids; shared with every session.
    next_trace: Rc<Cell<u64>>,
    /// Open sessions, shared with every session (they decrement on stop).
    open: Rc<Cell<usize>>,
    span: tracing::Span,
}

impl ClientApi {
    /// An API serving `listener`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: NodeId,
        options: ClientApiOptions,
        listener: Box<dyn Listener>,
        replicator: Addr<Replicator>,
        local_reads: Rc<LocalReads>,
        failure_detector: Addr<FailureDetector>,
        storage: Addr<Storage>,
        repair: Addr<Repair>,
    ) -> Self {
        // Request ids start at a per-node offset so that ids from different
        // coordinators rarely collide in a merged log.
        let first = crate::ring::hash_bytes(node.as_str().as_bytes()) & 0xffff_ff00_0000_0000;
        let span = tracing::info_span!("client_api", node = %node, actor = "client_api");
        Self {
            node,
            options,
            listener: Some(listener),
            replicator,
            local_reads,
            failure_detector,
            storage,
            repair,
            next_trace: Rc::new(Cell::new(first)),
            open: Rc::new(Cell::new(0)),
            span,
        }
    }
}

impl Actor for ClientApi {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(listener) = self.listener.take() {
            ctx.add_stream(accept_stream(listener));
        }
    }
}

impl StreamHandler<std::io::Result<(BoxConnection, SocketAddr)>> for ClientApi {
    fn handle(
        &mut self,
        item: std::io::Result<(BoxConnection, SocketAddr)>,
        _ctx: &mut Self::Context,
    ) {
        let span = self.span.clone();
        let _span = span.enter();
        match item {
            Ok((_conn, remote)) if !self.options.accept.admits(remote) => {
                warn!(%remote, "refusing client connection from a non-loopback address: \
                    protected mode (this node has no --cluster-secret-file)");
            }
            Ok((conn, remote)) => {
                if self.open.get() >= self.options.client_connections_max {
                    warn!(%remote, limit = self.options.client_connections_max,
                        "refusing client connection: client_connections_max reached");
                    return;
                }
                self.open.set(self.open.get() + 1);
                ClientSession::new(
                    conn,
                    remote,
                    self.node.clone(),
                    self.options.clone(),
                    self.replicator.clone(),
                    Rc::clone(&self.local_reads),
                    self.failure_detector.clone(),
                    self.storage.clone(),
                    self.repair.clone(),
                    self.next_trace.clone(),
                    self.open.clone(),
                )
                .start();
            }
            Err(e) => warn!(error = %e, "client accept failed"),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _span = span.enter();
        info!("client listener closed");
    }
}
