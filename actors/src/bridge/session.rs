//! `PeerSession`: one actor per inbound peer connection. It runs the
//! listener's side of the handshake (`handshake.rs`), then opens each of
//! the dialler's sealed requests and hands it, as an [`Incoming`] of its
//! type, to the actor that owns that type ([`PeerHandlers`]), and writes
//! each response back, sealed, with the request's id, in completion order.
//!
//! A refused handshake (no proof of the cluster secret, another cluster, a
//! second node with our id, no handshake within `connect_timeout_ms`) is
//! logged here with the caller's address and the reason, and the
//! connection is closed without a word: the caller learns nothing. A frame
//! that fails its MAC check after the handshake closes the link the same
//! way.
//!
//! Each request is served within its own `timeout_ms`: the session keeps
//! the requests it serves under one timer (`deadlines.rs`), and at a
//! deadline drops the unfinished future and answers `Timeout`. The
//! requests being served are what `peer_inflight_max` bounds.
//!
//! Responses go through a queue to a writer task that owns the socket's
//! write half. The queue is bounded in bytes (`peer_write_queue_bytes_max`):
//! a peer that keeps asking but does not read is cut off instead of growing
//! this node's memory.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use futures_util::future::Either;
use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::deadlines::Deadlines;
use super::handshake::{self, AwaitingProof, Credentials, Session};
use super::seal::TAG_BYTES;
use super::{fresh_nonce, Bridge, BridgeOptions, NonceRng, PeerHandlers, PeerIntroduced};
use crate::net::BoxConnection;
use crate::wire::client::ErrorCode;
use crate::wire::peer::{
    Durable, MemberInfo, PeerFrame, PeerRefusal, PeerReply, PeerRequest, PeerRpc, RemoteError,
    ReplicaRead, ReplicaWrite,
};
use crate::wire::writer::write_queued_frames;
use crate::wire::{FrameCodec, FrameError};

mod route;

/// The queue to the writer task; dropping it lets the task send what is
/// queued and close the socket.
type Writer = mpsc::UnboundedSender<Bytes>;

/// Where the listener's handshake is.
enum Stage {
    /// Waiting for the dialler's `Hello`.
    Hello,
    /// `Challenge` sent, waiting for the dialler's `Proof`.
    Proof(AwaitingProof),
    /// Authenticated: requests in, responses out, all sealed.
    Up(Session),
    /// Refused or failed: closing.
    Closed,
}

/// The inbound session actor.
pub struct PeerSession {
    /// Who this node is in handshakes, and what it proves.
    credentials: Rc<Credentials>,
    nonces: NonceRng,
    /// The caller's address, for the log lines of refusals.
    remote: SocketAddr,
    stage: Stage,
    handlers: PeerHandlers,
    bridge: Addr<Bridge>,
    options: BridgeOptions,
    writer: Option<Writer>,
    /// Bytes handed to the writer task and not yet written to the socket.
    queued_bytes: Rc<Cell<usize>>,
    conn: Option<BoxConnection>,
    /// The dialler, once it proved itself.
    peer: Option<MemberInfo>,
    /// Requests being served, by a number of this session's own (the
    /// peer's ids are its business), with their deadlines. Their count is
    /// what `peer_inflight_max` bounds.
    serving: Deadlines<Serving>,
    next_serving: u64,
    /// The one timer for the deadlines.
    sweep: Option<SpawnHandle>,
    span: tracing::Span,
}

/// A request being served: its future's handle, its id, its timeout in
/// milliseconds.
struct Serving {
    handle: SpawnHandle,
    id: u64,
    timeout_ms: u64,
}

impl PeerSession {
    /// A session over `conn`, accepted by the bridge.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conn: BoxConnection,
        credentials: Rc<Credentials>,
        nonces: NonceRng,
        handlers: PeerHandlers,
        bridge: Addr<Bridge>,
        options: BridgeOptions,
        remote: SocketAddr,
    ) -> Self {
        let span = tracing::info_span!("peer_session", node = %credentials.own.id, actor = "bridge", remote = %remote);
        Self {
            credentials,
            nonces,
            remote,
            stage: Stage::Hello,
            handlers,
            bridge,
            options,
            writer: None,
            queued_bytes: Rc::new(Cell::new(0)),
            conn: Some(conn),
            peer: None,
            serving: Deadlines::default(),
            next_serving: 0,
            sweep: None,
            span,
        }
    }

    /// Seals and queues a response. One too large for a peer frame is
    /// replaced by an error that says so (never dropped: the caller would
    /// wait out its deadline, and the writer would fail the link).
    fn respond(&mut self, id: u64, body: Result<PeerReply, RemoteError>, ctx: &mut Context<Self>) {
        let limit = self.options.max_frame_bytes;
        let mut encoded = PeerFrame::Response { id, body }.encode();
        if let Ok(bytes) = &encoded {
            let len = bytes.len() + TAG_BYTES;
            if len > limit {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(
                    id,
                    bytes = len,
                    limit,
                    "peer reply too large for a frame; answering too_large"
                );
                let error = RemoteError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the reply of {len} bytes is over the peer frame limit of {limit} bytes"
                    ),
                );
                encoded = PeerFrame::Response {
                    id,
                    body: Err(error),
                }
                .encode();
            }
        }
        let Stage::Up(session) = &mut self.stage else {
            return;
        };
        match encoded
            .map_err(|e| e.to_string())
            .and_then(|bytes| session.seal(bytes).map_err(|e| e.to_string()))
        {
            Ok(sealed) => self.queue(sealed, ctx),
            Err(e) => {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(error = %e, "cannot build a peer response; closing the session");
                self.close(ctx);
            }
        }
    }

    /// Queues `bytes` (a whole frame body) for the socket; closes the
    /// session when the peer has let `peer_write_queue_bytes_max` pile up
    /// unread.
    fn queue(&mut self, bytes: Vec<u8>, ctx: &mut Context<Self>) {
        let Some(writer) = self.writer.as_ref() else {
            return;
        };
        let queued = self.queued_bytes.get();
        if queued > 0 && queued + bytes.len() > self.options.peer_write_queue_bytes_max {
            let span = self.span.clone();
            let _span = span.enter();
            warn!(
                queued_bytes = queued,
                limit = self.options.peer_write_queue_bytes_max,
                "peer does not read its responses (peer_write_queue_bytes_max reached); closing the session"
            );
            self.close(ctx);
            return;
        }
        self.queued_bytes.set(queued + bytes.len());
        // Fails only once the writer task ended (the socket is gone).
        let _ = writer.send(Bytes::from(bytes));
    }

    /// Closes the session: the writer task sends what is queued, then
    /// closes the socket.
    fn close(&mut self, ctx: &mut Context<Self>) {
        self.stage = Stage::Closed;
        self.writer = None;
        ctx.stop();
    }

    /// Refuses the caller: the reason goes to our log with its address,
    /// nothing goes to the caller but the closed connection.
    fn refuse(&mut self, reason: &dyn std::fmt::Display, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _span = span.enter();
        warn!(remote = %self.remote, %reason, "refusing peer");
        self.close(ctx);
    }

    /// A frame from the dialler: the next handshake step, or (once
    /// authenticated) a sealed request.
    fn on_bytes(&mut self, bytes: &[u8], ctx: &mut Context<Self>) {
        let credentials = self.credentials.clone();
        match std::mem::replace(&mut self.stage, Stage::Closed) {
            Stage::Hello => {
                let nonce = fresh_nonce(&self.nonces);
                match handshake::on_hello(&credentials, bytes, nonce) {
                    Ok((proving, challenge)) => {
                        self.stage = Stage::Proof(proving);
                        self.queue(challenge, ctx);
                    }
                    Err(e) => self.refuse(&e, ctx),
                }
            }
            Stage::Proof(proving) => match proving.on_proof(&credentials, bytes) {
                Ok(accepted) => {
                    self.stage = Stage::Up(accepted.session);
                    self.queue(accepted.welcome, ctx);
                    self.on_accepted(accepted.member);
                }
                Err(e) => self.refuse(&e, ctx),
            },
            Stage::Up(mut session) => {
                let frame = match session.open(bytes) {
                    Ok(body) => PeerFrame::decode(body),
                    Err(e) => {
                        let span = self.span.clone();
                        let _span = span.enter();
                        warn!(remote = %self.remote, peer = ?self.peer.as_ref().map(|p| &p.id), error = %e,
                            "peer frame fails its MAC check (altered, injected, replayed or reordered on the way); closing the link");
                        return self.close(ctx);
                    }
                };
                self.stage = Stage::Up(session);
                match frame {
                    Ok(PeerFrame::Request {
                        id,
                        trace,
                        timeout_ms,
                        body,
                    }) => self.on_request(id, trace, timeout_ms, body, ctx),
                    Ok(other) => {
                        let reason = format!("unexpected {} frame", other.name());
                        self.refuse(&reason, ctx);
                    }
                    Err(e) => self.refuse(&e, ctx),
                }
            }
            Stage::Closed => {}
        }
    }

    fn on_accepted(&mut self, member: MemberInfo) {
        if member.id != self.credentials.own.id {
            let span = self.span.clone();
            let _span = span.enter();
            debug!(peer = %member.id, "peer session accepted");
            self.bridge.do_send(PeerIntroduced {
                member: member.clone(),
            });
        }
        self.peer = Some(member);
    }

    fn on_request(
        &mut self,
        id: u64,
        trace: u64,
        timeout_ms: u64,
        body: PeerRequest,
        ctx: &mut Context<Self>,
    ) {
        let Some(peer) = self.peer.as_ref() else {
            return self.refuse(&"request before the handshake", ctx);
        };
        // What the dialler announced must be within bounds before it is
        // served anything (its gossip included): a weight of 2^32-1 or a
        // forged id never gets past here (issue 12).
        if let Err(why) = peer.validate() {
            let refusal = PeerRefusal::InvalidMember {
                peer: peer.id.clone(),
                why,
            };
            let span = self.span.clone();
            let _span = span.enter();
            warn!(reason = %refusal, request = body.name(), "refusing a peer request");
            return self.respond(id, Err(refusal.into()), ctx);
        }
        if self.serving.len() >= self.options.peer_inflight_max {
            let failure = RemoteError::new(
                ErrorCode::Unavailable,
                format!(
                    "{} requests in flight from this peer (peer_inflight_max)",
                    self.serving.len()
                ),
            );
            return self.respond(id, Err(failure), ctx);
        }
        if let PeerRequest::Read(read) = &body {
            // A copy held in memory: answered now, without the replicator's
            // mailbox, a timer and a task (`PeerDirect`).
            if let Some(answer) = self.handlers.direct.replica_read(&peer.id, read) {
                return self.respond(id, answer.map(ReplicaRead::reply_into), ctx);
            }
        }
        let from = peer.id.clone();
        let handlers = &self.handlers;
        let served = match body {
            // Straight to the store when the replicator would take it
            // (`PeerDirect`): no message to its mailbox.
            PeerRequest::Write(r) => match handlers.direct.replica_write(&from, trace, r) {
                Ok(write) => Either::Left(write.map(durable as fn(_) -> _)),
                Err(r) => Either::Right(self.to_handler(from, trace, timeout_ms, r.into_request())),
            },
            body => Either::Right(self.to_handler(from, trace, timeout_ms, body)),
        };
        let seq = self.next_serving;
        self.next_serving += 1;
        let handle = ctx.spawn(served.into_actor(self).map(move |body, act, ctx| {
            act.serving.remove(seq);
            act.respond(id, body, ctx);
        }));
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let serving = Serving {
            handle,
            id,
            timeout_ms,
        };
        if self.serving.insert(seq, deadline, serving) {
            self.arm(ctx);
        }
    }

    /// Sets the deadline timer for the earliest request being served (none
    /// when nothing is).
    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(sweep) = self.sweep.take() {
            ctx.cancel_future(sweep);
        }
        if let Some(at) = self.serving.next_timer() {
            let after = at.saturating_duration_since(Instant::now());
            self.sweep = Some(ctx.run_later(after, |act, ctx| {
                act.sweep = None;
                act.expire(ctx);
            }));
        }
    }

    /// The timer fired: each request whose deadline passed is dropped
    /// unfinished and answered `Timeout`; the timer is set for the next.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        for served in self.serving.due(Instant::now()) {
            ctx.cancel_future(served.handle);
            let timeout_ms = served.timeout_ms;
            let failure = RemoteError::new(
                ErrorCode::Timeout,
                format!("replica did not finish within {timeout_ms} ms"),
            );
            self.respond(served.id, Err(failure), ctx);
        }
        self.arm(ctx);
    }
}

/// A replica write's answer for the wire.
fn durable(result: Result<Durable, RemoteError>) -> Result<PeerReply, RemoteError> {
    result.map(ReplicaWrite::reply_into)
}

impl Actor for PeerSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.options.peer_mailbox_max);
        let Some(conn) = self.conn.take() else {
            ctx.stop();
            return;
        };
        let (read, write) = tokio::io::split(conn);
        let codec = FrameCodec::new(self.options.max_frame_bytes);
        ctx.add_stream(FramedRead::new(read, codec.clone()));
        let (writer, frames) = mpsc::unbounded_channel::<Bytes>();
        self.writer = Some(writer);
        let queued_bytes = self.queued_bytes.clone();
        // The write half lives in its own task: it drains the queue and
        // closes the socket once the session drops its sender.
        actix::spawn(write_queued_frames(write, codec, frames, move |len| {
            queued_bytes.set(queued_bytes.get().saturating_sub(len));
        }));
        let limit = Duration::from_millis(self.options.connect_timeout_ms);
        ctx.run_later(limit, |act, ctx| {
            if matches!(act.stage, Stage::Hello | Stage::Proof(_)) {
                act.refuse(&"no handshake within connect_timeout_ms", ctx);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(peer) = &self.peer {
            let span = self.span.clone();
            let _span = span.enter();
            info!(peer = %peer.id, "peer session closed");
        }
    }
}

impl StreamHandler<Result<Bytes, FrameError>> for PeerSession {
    fn handle(&mut self, item: Result<Bytes, FrameError>, ctx: &mut Self::Context) {
        match item {
            Ok(bytes) => self.on_bytes(&bytes, ctx),
            Err(e) => {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(remote = %self.remote, error = %e, "peer stream failed; closing");
                self.close(ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        if matches!(self.stage, Stage::Hello | Stage::Proof(_)) {
            let span = self.span.clone();
            let _span = span.enter();
            debug!(remote = %self.remote, "connection closed before the peer handshake completed");
        }
        ctx.stop();
    }
}
