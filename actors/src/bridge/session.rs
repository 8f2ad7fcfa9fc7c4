//! `PeerSession`: one actor per inbound peer connection. It checks the
//! handshake, then hands each of the dialler's requests, as an
//! [`Incoming`] of its type, to the actor that owns that type
//! ([`PeerHandlers`]) and writes each response back with the request's id,
//! in completion order.
//!
//! Responses go through a queue to a writer task that owns the socket's
//! write half. The queue is bounded in bytes (`peer_write_queue_bytes_max`):
//! a peer that keeps asking but does not read is cut off instead of growing
//! this node's memory.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::{Bridge, BridgeOptions, Incoming, PeerHandlers, PeerIntroduced};
use crate::net::{BoxConnection, LocalBoxFuture};
use crate::wire::client::ErrorCode;
use crate::wire::peer::{
    MemberInfo, PeerFrame, PeerRefusal, PeerReply, PeerRequest, PeerRpc, Probe, Probed,
    RemoteError, PEER_PROTOCOL_VERSION,
};
use crate::wire::writer::write_queued_frames;
use crate::wire::{FrameCodec, FrameError};
use crate::NodeId;

/// The queue to the writer task; dropping it lets the task send what is
/// queued and close the socket.
type Writer = mpsc::UnboundedSender<Bytes>;

/// The inbound session actor.
pub struct PeerSession {
    own: MemberInfo,
    cluster: String,
    handlers: PeerHandlers,
    bridge: Addr<Bridge>,
    options: BridgeOptions,
    writer: Option<Writer>,
    /// Bytes handed to the writer task and not yet written to the socket.
    queued_bytes: Rc<Cell<usize>>,
    conn: Option<BoxConnection>,
    /// The dialler, once its `Hello` was accepted.
    peer: Option<MemberInfo>,
    in_flight: usize,
    span: tracing::Span,
}

impl PeerSession {
    /// A session over `conn`, accepted by the bridge.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conn: BoxConnection,
        own: MemberInfo,
        cluster: String,
        handlers: PeerHandlers,
        bridge: Addr<Bridge>,
        options: BridgeOptions,
        remote: std::net::SocketAddr,
    ) -> Self {
        let span =
            tracing::info_span!("peer_session", node = %own.id, actor = "bridge", remote = %remote);
        Self {
            own,
            cluster,
            handlers,
            bridge,
            options,
            writer: None,
            queued_bytes: Rc::new(Cell::new(0)),
            conn: Some(conn),
            peer: None,
            in_flight: 0,
            span,
        }
    }

    /// Queues `frame` for the socket; closes the session when the peer has
    /// let `peer_write_queue_bytes_max` pile up unread. A response too
    /// large for a peer frame is replaced by an error that says so (never
    /// dropped: the caller would wait out its deadline, and the writer
    /// would fail the link).
    fn send(&mut self, frame: &PeerFrame, ctx: &mut Context<Self>) {
        if self.writer.is_none() {
            return;
        }
        let mut encoded = frame.encode();
        let limit = self.options.max_frame_bytes;
        if let (Ok(bytes), PeerFrame::Response { id, .. }) = (&encoded, frame) {
            if bytes.len() > limit {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(
                    id,
                    bytes = bytes.len(),
                    limit,
                    "peer reply too large for a frame; answering too_large"
                );
                let error = RemoteError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the reply of {} bytes is over the peer frame limit of {limit} bytes",
                        bytes.len()
                    ),
                );
                encoded = PeerFrame::Response {
                    id: *id,
                    body: Err(error),
                }
                .encode();
            }
        }
        let bytes = match encoded {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                let _span = self.span.enter();
                warn!(error = %e, "cannot encode a peer frame; closing the session");
                self.writer = None;
                ctx.stop();
                return;
            }
        };
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
            self.writer = None;
            ctx.stop();
            return;
        }
        self.queued_bytes.set(queued + bytes.len());
        // Fails only once the writer task ended (the socket is gone).
        let _ = writer.send(bytes);
    }

    fn refuse(&mut self, reason: String, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _span = span.enter();
        warn!(%reason, "refusing peer handshake");
        self.send(&PeerFrame::Refused { reason }, ctx);
        // The writer task sends the refusal, then closes the socket.
        self.writer = None;
        ctx.stop();
    }

    fn on_hello(
        &mut self,
        protocol: u32,
        cluster: String,
        member: MemberInfo,
        ctx: &mut Context<Self>,
    ) {
        if protocol != PEER_PROTOCOL_VERSION {
            return self.refuse(
                format!("protocol version {protocol} is not ours ({PEER_PROTOCOL_VERSION})"),
                ctx,
            );
        }
        if cluster != self.cluster {
            return self.refuse(
                format!("cluster {cluster:?} is not ours ({:?})", self.cluster),
                ctx,
            );
        }
        if member.id == self.own.id && member.peer_addr != self.own.peer_addr {
            return self.refuse(
                format!(
                    "node id {} is already used by this node ({}); ids must be unique",
                    member.id, self.own.peer_addr
                ),
                ctx,
            );
        }
        let welcome = PeerFrame::Welcome {
            member: self.own.clone(),
        };
        self.send(&welcome, ctx);
        if member.id != self.own.id {
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
            return self.refuse("request before handshake".into(), ctx);
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
            let body = Err(refusal.into());
            return self.send(&PeerFrame::Response { id, body }, ctx);
        }
        if self.in_flight >= self.options.peer_inflight_max {
            let failure = RemoteError::new(
                ErrorCode::Unavailable,
                format!(
                    "{} requests in flight from this peer (peer_inflight_max)",
                    self.in_flight
                ),
            );
            return self.send(
                &PeerFrame::Response {
                    id,
                    body: Err(failure),
                },
                ctx,
            );
        }
        self.in_flight += 1;
        let from = peer.id.clone();
        let handlers = &self.handlers;
        let served = match body {
            PeerRequest::Read(r) => serve(&handlers.read, from, trace, timeout_ms, r),
            PeerRequest::Write(r) => serve(&handlers.write, from, trace, timeout_ms, r),
            PeerRequest::HintedWrite(r) => {
                serve(&handlers.hinted_write, from, trace, timeout_ms, r)
            }
            PeerRequest::Coordinate(r) => serve(&handlers.coordinate, from, trace, timeout_ms, r),
            PeerRequest::Scan(r) => serve(&handlers.scan, from, trace, timeout_ms, r),
            PeerRequest::MerkleLeaves(r) => {
                serve(&handlers.merkle_leaves, from, trace, timeout_ms, r)
            }
            PeerRequest::Gossip(r) => serve(&handlers.gossip, from, trace, timeout_ms, r),
            PeerRequest::Probe(Probe) => Box::pin(async { Ok(Probe::reply_into(Probed)) }),
        };
        ctx.spawn(served.into_actor(self).map(move |body, act, ctx| {
            act.in_flight -= 1;
            act.send(&PeerFrame::Response { id, body }, ctx);
        }));
    }
}

/// Hands `request` to the actor serving its type, within its time budget,
/// and wraps the answer for the wire.
fn serve<T: PeerRpc>(
    to: &Recipient<Incoming<T>>,
    from: NodeId,
    trace: u64,
    timeout_ms: u64,
    request: T,
) -> LocalBoxFuture<'static, Result<PeerReply, RemoteError>> {
    let call = to.send(Incoming {
        from,
        trace,
        timeout_ms,
        request,
    });
    let limit = Duration::from_millis(timeout_ms);
    Box::pin(async move {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(result)) => result.map(T::reply_into),
            Ok(Err(e)) => Err(RemoteError::new(
                ErrorCode::Internal,
                format!("local handler unavailable: {e}"),
            )),
            Err(_) => Err(RemoteError::new(
                ErrorCode::Timeout,
                format!("replica did not finish within {timeout_ms} ms"),
            )),
        }
    })
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
            if act.peer.is_none() {
                act.refuse("no handshake in time".into(), ctx);
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
        let frame = match item {
            Ok(bytes) => PeerFrame::decode(&bytes),
            Err(e) => {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(error = %e, "peer stream failed; closing");
                ctx.stop();
                return;
            }
        };
        match frame {
            Ok(PeerFrame::Hello {
                protocol,
                cluster,
                member,
            }) if self.peer.is_none() => self.on_hello(protocol, cluster, member, ctx),
            Ok(PeerFrame::Request {
                id,
                trace,
                timeout_ms,
                body,
            }) => self.on_request(id, trace, timeout_ms, body, ctx),
            Ok(other) => self.refuse(format!("unexpected frame {}", frame_name(&other)), ctx),
            Err(e) => self.refuse(e.to_string(), ctx),
        }
    }
}

fn frame_name(frame: &PeerFrame) -> &'static str {
    match frame {
        PeerFrame::Hello { .. } => "Hello",
        PeerFrame::Welcome { .. } => "Welcome",
        PeerFrame::Refused { .. } => "Refused",
        PeerFrame::Request { .. } => "Request",
        PeerFrame::Response { .. } => "Response",
    }
}
