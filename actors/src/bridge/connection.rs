//! `PeerConnection`: one actor per peer address, owning the outbound
//! connection this node sends its requests on.
//!
//! It dials, sends `Hello`, and waits for `Welcome`. While up it assigns each
//! request an id, starts its deadline timer and matches the response by id;
//! a request whose deadline passes is answered `Timeout` and forgotten (a
//! late response is dropped). When the link drops, every pending request is
//! answered `Disconnected` at once and the actor redials with exponential
//! backoff. While down, requests fail immediately with `Unreachable`: the
//! coordinator never waits on a peer it cannot reach.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use bytes::Bytes;
use tokio::io::WriteHalf;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn, Instrument};

use super::{Bridge, BridgeOptions, PeerDown, PeerError, PeerUp};
use crate::net::{BoxConnection, SharedNet};
use crate::wire::peer::{MemberInfo, PeerFrame, PeerReply, PeerRequest, PEER_PROTOCOL_VERSION};
use crate::wire::{FrameCodec, FrameError};

/// Sends one request to this peer.
#[derive(Message)]
#[rtype(result = "Result<PeerReply, PeerError>")]
pub struct PeerCall {
    /// What to ask.
    pub body: PeerRequest,
    /// The client request it serves.
    pub trace: u64,
    /// Deadline from now, in milliseconds.
    pub timeout_ms: u64,
}

/// Stops the connection for good (the peer left, or is a duplicate).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

type Writer = FramedWrite<Bytes, WriteHalf<BoxConnection>, FrameCodec>;

/// Requests in a row that may time out, with no response at all between
/// them, before the link is judged stuck and redialled. A connection can be
/// open yet dead (a peer behind a dropped NAT entry, a simulated partition
/// that lost segments); a fresh one recovers as soon as the peer answers.
pub const PEER_TIMEOUTS_BEFORE_REDIAL: u32 = 3;

enum Link {
    /// Not connected; a redial is scheduled.
    Down,
    /// TCP is up, `Hello` sent, waiting for `Welcome`.
    Handshaking(Writer),
    /// Ready for requests.
    Up(Writer, MemberInfo),
}

struct Pending {
    reply: oneshot::Sender<Result<PeerReply, PeerError>>,
    timer: SpawnHandle,
}

/// The outbound connection actor.
pub struct PeerConnection {
    addr: SocketAddr,
    own: MemberInfo,
    cluster: String,
    net: SharedNet,
    bridge: Addr<Bridge>,
    options: BridgeOptions,
    link: Link,
    reader: Option<SpawnHandle>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    backoff_ms: u64,
    /// Timeouts since the last response on this link.
    timeouts_in_a_row: u32,
    span: tracing::Span,
}

impl PeerConnection {
    /// A connection to `addr`, dialled once started.
    pub fn new(
        addr: SocketAddr,
        own: MemberInfo,
        cluster: String,
        net: SharedNet,
        bridge: Addr<Bridge>,
        options: BridgeOptions,
    ) -> Self {
        let span = tracing::info_span!("peer", node = %own.id, actor = "bridge", peer_addr = %addr);
        Self {
            addr,
            own,
            cluster,
            net,
            bridge,
            backoff_ms: options.reconnect_backoff_min_ms,
            options,
            link: Link::Down,
            reader: None,
            pending: HashMap::new(),
            next_id: 1,
            timeouts_in_a_row: 0,
            span,
        }
    }

    fn dial(&mut self, ctx: &mut Context<Self>) {
        let connect = self.net.connect(self.addr);
        let limit = Duration::from_millis(self.options.connect_timeout_ms);
        let fut =
            async move { tokio::time::timeout(limit, connect).await }.instrument(self.span.clone());
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(conn)) => act.start_handshake(conn, ctx),
            Ok(Err(e)) => act.lost(ctx, &format!("connect failed: {e}")),
            Err(_) => act.lost(ctx, "connect timed out"),
        }));
    }

    fn start_handshake(&mut self, conn: BoxConnection, ctx: &mut Context<Self>) {
        let (read, write) = tokio::io::split(conn);
        let codec = FrameCodec::new(self.options.max_frame_bytes);
        self.reader = Some(ctx.add_stream(FramedRead::new(read, codec.clone())));
        let mut writer = FramedWrite::new(write, codec, ctx);
        let hello = PeerFrame::Hello {
            protocol: PEER_PROTOCOL_VERSION,
            cluster: self.cluster.clone(),
            member: self.own.clone(),
        };
        match hello.encode() {
            Ok(bytes) => writer.write(Bytes::from(bytes)),
            Err(e) => warn!(error = %e, "cannot encode our own hello"),
        }
        self.link = Link::Handshaking(writer);
        let limit = Duration::from_millis(self.options.connect_timeout_ms);
        ctx.run_later(limit, |act, ctx| {
            if matches!(act.link, Link::Handshaking(_)) {
                act.lost(ctx, "handshake timed out");
            }
        });
    }

    /// Tears the link down, fails what was pending and schedules a redial.
    fn lost(&mut self, ctx: &mut Context<Self>, reason: &str) {
        self.timeouts_in_a_row = 0;
        let span = self.span.clone();
        let _span = span.enter();
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
        }
        let was = std::mem::replace(&mut self.link, Link::Down);
        match was {
            Link::Up(writer, member) => {
                ctx.cancel_future(writer.handle());
                info!(peer = %member.id, %reason, "peer disconnected");
                self.bridge.do_send(PeerDown {
                    node: member.id,
                    addr: self.addr,
                });
            }
            Link::Handshaking(writer) => {
                ctx.cancel_future(writer.handle());
                debug!(%reason, "peer handshake failed");
            }
            Link::Down => debug!(%reason, backoff_ms = self.backoff_ms, "peer unreachable"),
        }
        for (_, pending) in self.pending.drain() {
            ctx.cancel_future(pending.timer);
            let _ = pending.reply.send(Err(PeerError::Disconnected));
        }
        let delay = Duration::from_millis(self.backoff_ms);
        self.backoff_ms = (self.backoff_ms * 2).min(self.options.reconnect_backoff_max_ms);
        ctx.run_later(delay, |act, ctx| {
            if matches!(act.link, Link::Down) {
                act.dial(ctx);
            }
        });
    }

    fn on_frame(&mut self, frame: PeerFrame, ctx: &mut Context<Self>) {
        match frame {
            PeerFrame::Welcome { member } => {
                let writer = match std::mem::replace(&mut self.link, Link::Down) {
                    Link::Handshaking(w) => w,
                    other => {
                        self.link = other;
                        return;
                    }
                };
                if member.id == self.own.id {
                    // A seed list that names this node itself.
                    debug!("peer address is this node itself; not dialling it again");
                    ctx.cancel_future(writer.handle());
                    ctx.stop();
                    return;
                }
                let span = self.span.clone();
                let _span = span.enter();
                info!(peer = %member.id, "peer connected");
                self.backoff_ms = self.options.reconnect_backoff_min_ms;
                self.bridge.do_send(PeerUp {
                    member: member.clone(),
                    addr: self.addr,
                    connection: ctx.address(),
                });
                self.link = Link::Up(writer, member);
            }
            PeerFrame::Refused { reason } => {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(%reason, "peer refused our handshake");
                // Refusals are configuration errors: retry slowly.
                self.backoff_ms = self.options.reconnect_backoff_max_ms;
                self.lost(ctx, &format!("refused: {reason}"));
            }
            PeerFrame::Response { id, body } => {
                self.timeouts_in_a_row = 0;
                if let Some(pending) = self.pending.remove(&id) {
                    ctx.cancel_future(pending.timer);
                    let _ = pending.reply.send(body.map_err(PeerError::Remote));
                }
            }
            PeerFrame::Hello { .. } | PeerFrame::Request { .. } => {
                self.lost(ctx, "peer sent a request frame on our outbound connection");
            }
        }
    }
}

impl Actor for PeerConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.options.peer_mailbox_max);
        self.dial(ctx);
    }
}

impl StreamHandler<Result<Bytes, FrameError>> for PeerConnection {
    fn handle(&mut self, item: Result<Bytes, FrameError>, ctx: &mut Self::Context) {
        match item
            .map_err(|e| e.to_string())
            .and_then(|b| PeerFrame::decode(&b).map_err(|e| e.to_string()))
        {
            Ok(frame) => self.on_frame(frame, ctx),
            Err(e) => self.lost(ctx, &e),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // Not the default (stopping the actor): the link is lost, we redial.
        self.lost(ctx, "connection closed by peer");
    }
}

impl WriteHandler<FrameError> for PeerConnection {
    fn error(&mut self, err: FrameError, ctx: &mut Self::Context) -> Running {
        // Called from inside the writer's own poll, which holds the writer's
        // state borrowed: tearing the link down here (asking the writer for
        // its handle, dropping it) panicked in actix ("RefCell already
        // mutably borrowed") and then again in the writer's destructor,
        // which aborted the whole node when a peer died mid-write. The link
        // is torn down on the next turn instead, unless the reader found the
        // loss first.
        let reason = format!("write failed: {err}");
        ctx.run_later(Duration::ZERO, move |act, ctx| {
            if !matches!(act.link, Link::Down) {
                act.lost(ctx, &reason);
            }
        });
        Running::Continue
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<PeerCall> for PeerConnection {
    type Result = ResponseFuture<Result<PeerReply, PeerError>>;

    fn handle(&mut self, msg: PeerCall, ctx: &mut Self::Context) -> Self::Result {
        let Link::Up(writer, _) = &mut self.link else {
            return Box::pin(async { Err(PeerError::Unreachable) });
        };
        let id = self.next_id;
        self.next_id += 1;
        let frame = PeerFrame::Request {
            id,
            trace: msg.trace,
            timeout_ms: msg.timeout_ms,
            body: msg.body,
        };
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(e) => return Box::pin(async move { Err(PeerError::Local(e.to_string())) }),
        };
        // A frame the peer would refuse would also make the writer fail and
        // tear the link down for every other request: refuse it here.
        let limit = self.options.max_frame_bytes;
        if bytes.len() > limit {
            let bytes = bytes.len();
            return Box::pin(async move { Err(PeerError::TooLarge { bytes, limit }) });
        }
        writer.write(Bytes::from(bytes));
        let (reply, rx) = oneshot::channel();
        let timeout_ms = msg.timeout_ms;
        let timer = ctx.run_later(Duration::from_millis(timeout_ms), move |act, ctx| {
            if let Some(pending) = act.pending.remove(&id) {
                let _ = pending.reply.send(Err(PeerError::Timeout { timeout_ms }));
                act.timeouts_in_a_row += 1;
                if act.timeouts_in_a_row >= PEER_TIMEOUTS_BEFORE_REDIAL {
                    act.lost(ctx, "requests keep timing out; redialling");
                }
            }
        });
        self.pending.insert(id, Pending { reply, timer });
        Box::pin(async move { rx.await.unwrap_or(Err(PeerError::Disconnected)) })
    }
}

impl Handler<Shutdown> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(PeerError::Disconnected));
        }
        ctx.stop();
    }
}
