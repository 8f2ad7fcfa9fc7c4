//! `PeerConnection`: one actor per peer, owning the outbound connection
//! this node sends its requests on.
//!
//! It dials and runs the dialler's side of the handshake (`handshake.rs`:
//! `Hello`, the listener's `Challenge`, our `Proof`, its `Welcome`). A
//! listener that cannot prove it holds the cluster secret, or that closes
//! the connection after our proof (it refused us), is redialled only after
//! the longest backoff: both are configuration errors. While up, callers
//! seal and queue their requests through its [`Outbound`] (each with an
//! id and a deadline; `outbound.rs`), and it matches each response by id;
//! its one timer, set for the earliest deadline pending, answers
//! `Timeout` to each request whose deadline passed, which is forgotten (a
//! late response is dropped). A response that
//! fails its MAC check closes the link.
//!
//! What it tells the Bridge about the link, which the coordinators use as
//! their own view of the peer (Dynamo §4.8.1, "A considers B failed if B
//! does not respond to A's messages"):
//! - **up**: the handshake completed;
//! - **degraded**: a request timed out and nothing has answered since. The
//!   link then sends a [`Probe`] every `peer_probe_interval_ms` and is up
//!   again at the first answer of any kind. After
//!   [`PEER_TIMEOUTS_BEFORE_REDIAL`] timeouts in a row it is torn down
//!   and redialled: a connection can be open yet dead (a dropped NAT
//!   entry, a partition that swallows segments);
//! - **down**: the connection failed or closed. Pending requests are
//!   answered `Disconnected` at once, and the actor redials with
//!   exponential backoff, or at once on [`RedialNow`] (gossip or an inbound
//!   connection says the peer is back).
//!
//! Requests made while a dial is in progress wait for it (until their own
//! deadline), so a node that just started can coordinate as soon as its
//! links come up; requests made while the link is down fail at once with
//! `Unreachable`, so the coordinator turns to a stand-in instead of waiting.

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn, Instrument};

use std::rc::Rc;

use super::handshake::{self, AwaitingChallenge, AwaitingWelcome, Credentials, Session};
use super::outbound::{Outbound, Reply, Sent};
use super::seal::FrameOpener;
use super::{fresh_nonce, Bridge, BridgeOptions, NonceRng, PeerDown, PeerError, PeerUp};
use crate::net::{BoxConnection, SharedNet};
use crate::wire::peer::{MemberInfo, PeerFrame, PeerReply, PeerRequest};
use crate::wire::FrameCodec;

mod handlers;
mod health;
mod writer;

use writer::Writer;

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

/// Stops the connection for good (the peer left, moved, or is a duplicate).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// News says the peer is back: if the link is down (or a dial is hanging),
/// dial now instead of waiting out the backoff.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RedialNow;

/// A coordinator could not use this peer for a request: dial now if the
/// link is down (at most every `DOWN_LINK_DIAL_GAP_MS`), or begin a dial
/// again that has hung past the shortest backoff, exactly as a call to the
/// peer would, without queueing one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poke;

/// A caller sent a request whose deadline comes before the timeout
/// timer (or none is set): set it for the earliest deadline.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct ArmTimer;

/// Requests in a row that may time out, with no response at all between
/// them, before the link is judged stuck and redialled.
pub const PEER_TIMEOUTS_BEFORE_REDIAL: u32 = 3;

/// A request to a down link dials at once unless a dial began less than
/// this long ago, in milliseconds: only gossip calls down links
/// (coordinators skip them), a few per round, so this only keeps a burst
/// from dialling once per call.
pub const DOWN_LINK_DIAL_GAP_MS: u64 = 10;

enum Link {
    /// Not connected; a redial is scheduled.
    Down,
    /// TCP connect in progress.
    Dialing,
    /// TCP is up, the handshake under way.
    Handshaking(Writer, Step),
    /// Authenticated: ready for requests, which callers send through
    /// [`Outbound`] (holding the sealer); this keeps the opener.
    Up(Writer, MemberInfo, Box<FrameOpener>),
}

/// Where the dialler's handshake is.
enum Step {
    /// `Hello` sent, waiting for the listener's `Challenge`.
    Challenge(AwaitingChallenge),
    /// `Proof` sent, waiting for the listener's `Welcome`.
    Welcome(Box<AwaitingWelcome>),
    /// The step's frame is being handled (or failed).
    Spent,
}

/// A request made while the link was being dialled.
struct Waiting {
    call: PeerCall,
    reply: oneshot::Sender<Result<PeerReply, PeerError>>,
    deadline: tokio::time::Instant,
}

/// The outbound connection actor.
pub struct PeerConnection {
    addr: SocketAddr,
    /// Who this node is in handshakes, and what it proves.
    credentials: Rc<Credentials>,
    nonces: NonceRng,
    net: SharedNet,
    bridge: Addr<Bridge>,
    options: BridgeOptions,
    link: Link,
    reader: Option<SpawnHandle>,
    /// The sending side, shared with callers (the requests pending, by id
    /// and by deadline).
    outbound: Outbound,
    /// The timer set for the earliest pending deadline.
    sweep: Option<SpawnHandle>,
    waiting: Vec<Waiting>,
    backoff_ms: u64,
    /// The scheduled redial while down.
    retry: Option<SpawnHandle>,
    /// The connect under way while dialling.
    connecting: Option<SpawnHandle>,
    /// Dial attempts so far: a timer of an older attempt finds another
    /// number and does nothing.
    attempt: u64,
    /// When the last dial began.
    last_dial: Option<tokio::time::Instant>,
    /// Timeouts since the last response on this link.
    timeouts_in_a_row: u32,
    /// A request timed out and nothing answered since.
    degraded: bool,
    span: tracing::Span,
}

impl PeerConnection {
    /// A connection to `addr`, dialled once started, sending through
    /// `outbound` once up.
    pub fn new(
        addr: SocketAddr,
        outbound: Outbound,
        credentials: Rc<Credentials>,
        nonces: NonceRng,
        net: SharedNet,
        bridge: Addr<Bridge>,
        options: BridgeOptions,
    ) -> Self {
        let span = tracing::info_span!("peer", node = %credentials.own.id, actor = "bridge", peer_addr = %addr);
        Self {
            addr,
            credentials,
            nonces,
            net,
            bridge,
            backoff_ms: options.reconnect_backoff_min_ms,
            options,
            link: Link::Down,
            reader: None,
            outbound,
            sweep: None,
            waiting: Vec::new(),
            retry: None,
            connecting: None,
            attempt: 0,
            last_dial: None,
            timeouts_in_a_row: 0,
            degraded: false,
            span,
        }
    }

    fn dial(&mut self, ctx: &mut Context<Self>) {
        if let Some(retry) = self.retry.take() {
            ctx.cancel_future(retry);
        }
        if let Some(connecting) = self.connecting.take() {
            ctx.cancel_future(connecting);
        }
        self.attempt += 1;
        self.last_dial = Some(tokio::time::Instant::now());
        self.link = Link::Dialing;
        let connect = self.net.connect(self.addr);
        let limit = Duration::from_millis(self.options.connect_timeout_ms);
        let fut =
            async move { tokio::time::timeout(limit, connect).await }.instrument(self.span.clone());
        self.connecting = Some(ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            act.connecting = None;
            match result {
                Ok(Ok(conn)) => act.start_handshake(conn, ctx),
                Ok(Err(e)) => act.lost(ctx, &format!("connect failed: {e}")),
                Err(_) => act.lost(ctx, "connect timed out"),
            }
        })));
    }

    fn start_handshake(&mut self, conn: BoxConnection, ctx: &mut Context<Self>) {
        let (read, write) = tokio::io::split(conn);
        let codec = FrameCodec::new(self.options.max_frame_bytes);
        self.reader = Some(ctx.add_stream(FramedRead::new(read, codec.clone())));
        let writer = Writer::start(write, codec, ctx.address(), self.attempt);
        let step = match handshake::hello(&self.credentials, fresh_nonce(&self.nonces)) {
            Ok((waiting, hello)) => {
                writer.write(Bytes::from(hello));
                Step::Challenge(waiting)
            }
            Err(e) => {
                warn!(error = %e, "cannot build our hello");
                Step::Spent
            }
        };
        self.link = Link::Handshaking(writer, step);
        let attempt = self.attempt;
        let limit = Duration::from_millis(self.options.connect_timeout_ms);
        ctx.run_later(limit, move |act, ctx| {
            if act.attempt == attempt && matches!(act.link, Link::Handshaking(..)) {
                act.lost(ctx, "handshake timed out");
            }
        });
    }

    /// Tears the link down, fails what was pending and schedules a redial.
    fn lost(&mut self, ctx: &mut Context<Self>, reason: &str) {
        self.timeouts_in_a_row = 0;
        self.degraded = false;
        let span = self.span.clone();
        let _span = span.enter();
        if let Some(reader) = self.reader.take() {
            ctx.cancel_future(reader);
        }
        let was = std::mem::replace(&mut self.link, Link::Down);
        let node = match was {
            Link::Up(writer, member, _) => {
                drop(writer);
                info!(peer = %member.id, %reason, "peer disconnected");
                Some(member.id)
            }
            Link::Handshaking(writer, _) => {
                drop(writer);
                debug!(%reason, "peer handshake failed");
                None
            }
            Link::Dialing | Link::Down => {
                debug!(%reason, backoff_ms = self.backoff_ms, "peer unreachable");
                None
            }
        };
        self.bridge.do_send(PeerDown {
            node,
            addr: self.addr,
            connection: ctx.address(),
        });
        if let Some(sweep) = self.sweep.take() {
            ctx.cancel_future(sweep);
        }
        for reply in self.outbound.down() {
            let _ = reply.send(Err(PeerError::Disconnected));
        }
        for waiting in self.waiting.drain(..) {
            let _ = waiting.reply.send(Err(PeerError::Unreachable));
        }
        let delay = Duration::from_millis(self.backoff_ms);
        self.backoff_ms = (self.backoff_ms * 2).min(self.options.reconnect_backoff_max_ms);
        self.retry = Some(ctx.run_later(delay, |act, ctx| {
            act.retry = None;
            if matches!(act.link, Link::Down) {
                act.dial(ctx);
            }
        }));
    }

    /// A frame from the listener: the next handshake step, or (once up) a
    /// sealed response.
    fn on_bytes(&mut self, bytes: &[u8], ctx: &mut Context<Self>) {
        match &mut self.link {
            Link::Handshaking(_, step) => {
                let step = std::mem::replace(step, Step::Spent);
                self.on_handshake(step, bytes, ctx);
            }
            Link::Up(_, member, opener) => {
                let opened = opener.open(bytes);
                let peer = member.id.clone();
                match opened.map(PeerFrame::decode) {
                    Ok(Ok(frame)) => self.on_frame(frame, ctx),
                    Ok(Err(e)) => self.lost(ctx, &e.to_string()),
                    Err(e) => {
                        let span = self.span.clone();
                        let _span = span.enter();
                        warn!(%peer, addr = %self.addr, error = %e,
                            "peer frame fails its MAC check (altered, injected, replayed or reordered on the way); closing the link");
                        self.lost(ctx, "a frame failed its MAC check");
                    }
                }
            }
            Link::Down | Link::Dialing => {}
        }
    }

    fn on_handshake(&mut self, step: Step, bytes: &[u8], ctx: &mut Context<Self>) {
        let credentials = self.credentials.clone();
        match step {
            Step::Challenge(waiting) => match waiting.on_challenge(&credentials, bytes) {
                Ok((welcoming, proof)) => {
                    if let Link::Handshaking(writer, step) = &mut self.link {
                        writer.write(Bytes::from(proof));
                        *step = Step::Welcome(Box::new(welcoming));
                    }
                }
                Err(e) => self.refused(ctx, &e.to_string()),
            },
            Step::Welcome(welcoming) => match welcoming.on_welcome(&credentials, bytes) {
                Ok((member, session)) => self.on_welcome(member, session, ctx),
                Err(e) => self.refused(ctx, &e.to_string()),
            },
            Step::Spent => self.lost(ctx, "frame after a failed handshake step"),
        }
    }

    /// The handshake failed in a way a redial will not fix soon (the
    /// listener holds another secret, or refused ours): logged, and
    /// retried slowly.
    fn refused(&mut self, ctx: &mut Context<Self>, reason: &str) {
        let span = self.span.clone();
        let _span = span.enter();
        warn!(addr = %self.addr, %reason, "peer handshake failed; retrying after the longest backoff");
        self.backoff_ms = self.options.reconnect_backoff_max_ms;
        self.lost(ctx, reason);
    }

    fn on_frame(&mut self, frame: PeerFrame, ctx: &mut Context<Self>) {
        match frame {
            PeerFrame::Response { id, body } => {
                self.timeouts_in_a_row = 0;
                if self.degraded {
                    self.set_degraded(false);
                }
                self.outbound.answer(id, body.map_err(PeerError::Remote));
            }
            other => {
                let reason = format!(
                    "peer sent a {} frame on our outbound connection",
                    other.name()
                );
                self.lost(ctx, &reason);
            }
        }
    }

    fn on_welcome(&mut self, member: MemberInfo, session: Session, ctx: &mut Context<Self>) {
        let writer = match std::mem::replace(&mut self.link, Link::Down) {
            Link::Handshaking(w, _) => w,
            other => {
                self.link = other;
                return;
            }
        };
        if member.id == self.credentials.own.id {
            // A seed list that names this node itself.
            debug!("peer address is this node itself; not dialling it again");
            drop(writer);
            ctx.stop();
            return;
        }
        let span = self.span.clone();
        let _span = span.enter();
        info!(peer = %member.id, "peer connected");
        self.backoff_ms = self.options.reconnect_backoff_min_ms;
        let (sealer, opener) = session.split();
        self.outbound.up(writer.queue(), sealer);
        self.bridge.do_send(PeerUp {
            member: member.clone(),
            addr: self.addr,
            connection: ctx.address(),
            outbound: self.outbound.clone(),
        });
        self.link = Link::Up(writer, member, Box::new(opener));
        let now = tokio::time::Instant::now();
        for waiting in std::mem::take(&mut self.waiting) {
            let left = waiting.deadline.saturating_duration_since(now).as_millis() as u64;
            if left == 0 {
                let timeout_ms = waiting.call.timeout_ms;
                let _ = waiting.reply.send(Err(PeerError::Timeout { timeout_ms }));
                continue;
            }
            let call = PeerCall {
                timeout_ms: left,
                ..waiting.call
            };
            self.send(call, waiting.reply, ctx);
        }
    }

    /// Writes `call` on the link (which is up), its answer to go to
    /// `reply`, and sets the timeout timer if it comes first.
    fn send(&mut self, call: PeerCall, reply: Reply, ctx: &mut Context<Self>) {
        match self.outbound.send(call, reply) {
            Ok(Sent { arm }) => {
                if arm {
                    self.arm(ctx);
                }
            }
            Err(refused) => {
                let _ = refused.1.send(Err(PeerError::Unreachable));
            }
        }
    }
}
