//! `PeerConnection`'s actor start and message handlers.

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::bridge::PeerError;
use crate::wire::peer::PeerReply;
use crate::wire::FrameError;

use super::writer::WriteFailed;
use super::PeerConnection;
use super::{
    ArmTimer, Link, PeerCall, Poke, RedialNow, Shutdown, Step, Waiting, DOWN_LINK_DIAL_GAP_MS,
};

impl Actor for PeerConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.options.peer_mailbox_max);
        self.dial(ctx);
    }
}

impl StreamHandler<Result<Bytes, FrameError>> for PeerConnection {
    fn handle(&mut self, item: Result<Bytes, FrameError>, ctx: &mut Self::Context) {
        match item {
            Ok(bytes) => self.on_bytes(&bytes, ctx),
            Err(e) => self.lost(ctx, &e.to_string()),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // Not the default (stopping the actor): the link is lost, we redial.
        if matches!(self.link, Link::Handshaking(_, Step::Welcome(_))) {
            // It read our proof and hung up: a refusal, whose reason is in
            // its log only.
            self.refused(
                ctx,
                "the peer closed the connection after our proof: it refused us \
                 (another --cluster-secret-file or --cluster? its log says why)",
            );
        } else {
            self.lost(ctx, "connection closed by peer");
        }
    }
}

impl Handler<WriteFailed> for PeerConnection {
    type Result = ();

    fn handle(&mut self, msg: WriteFailed, ctx: &mut Self::Context) {
        // Unless the reader found the loss first, or it was another dial's.
        if msg.attempt == self.attempt && !matches!(self.link, Link::Down) {
            self.lost(ctx, &format!("write failed: {}", msg.error));
        }
    }
}

impl Handler<PeerCall> for PeerConnection {
    type Result = ResponseFuture<Result<PeerReply, PeerError>>;

    fn handle(&mut self, msg: PeerCall, ctx: &mut Self::Context) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        // A request to a down link (gossip's, in practice: coordinators
        // skip such peers) dials at once: that is how a healed partition
        // is found within a gossip round rather than after the backoff. A
        // dial still connecting after the shortest backoff most likely
        // lost its SYN to the partition (a LAN connect takes well under a
        // millisecond; the retransmit would come only after a second), so
        // it is begun again.
        self.redial_if_due(ctx);
        match self.link {
            Link::Up(..) => self.send(msg, reply, ctx),
            Link::Dialing | Link::Handshaking(..) => {
                // Wait for the dial, within the request's own deadline.
                let deadline = tokio::time::Instant::now() + Duration::from_millis(msg.timeout_ms);
                let timeout_ms = msg.timeout_ms;
                self.waiting.push(Waiting {
                    call: msg,
                    reply,
                    deadline,
                });
                ctx.run_later(Duration::from_millis(timeout_ms), move |act, _ctx| {
                    let now = tokio::time::Instant::now();
                    let (expired, kept) = std::mem::take(&mut act.waiting)
                        .into_iter()
                        .partition(|w| w.deadline <= now);
                    act.waiting = kept;
                    for w in expired {
                        let _ = w.reply.send(Err(PeerError::Timeout { timeout_ms }));
                    }
                });
            }
            Link::Down => {
                let _ = reply.send(Err(PeerError::Unreachable));
            }
        }
        Box::pin(async move { rx.await.unwrap_or(Err(PeerError::Disconnected)) })
    }
}

impl PeerConnection {
    /// Dials a down link (at most every `DOWN_LINK_DIAL_GAP_MS`), or begins
    /// again a dial still connecting after the shortest backoff.
    fn redial_if_due(&mut self, ctx: &mut Context<Self>) {
        let since_dial = self.last_dial.map(|at| at.elapsed());
        let redial = match self.link {
            Link::Down => since_dial.is_none_or(|d| d.as_millis() as u64 >= DOWN_LINK_DIAL_GAP_MS),
            Link::Dialing => since_dial
                .is_some_and(|d| d.as_millis() as u64 >= self.options.reconnect_backoff_min_ms),
            Link::Handshaking(..) | Link::Up(..) => false,
        };
        if redial {
            self.dial(ctx);
        }
    }
}

impl Handler<ArmTimer> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _: ArmTimer, ctx: &mut Self::Context) {
        self.arm(ctx);
    }
}

impl Handler<Poke> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _: Poke, ctx: &mut Self::Context) {
        self.redial_if_due(ctx);
    }
}

impl Handler<RedialNow> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _: RedialNow, ctx: &mut Self::Context) {
        // A connect begun while the peer was cut off may hang on a lost
        // SYN until its timeout; a fresh one goes through now.
        if matches!(self.link, Link::Down | Link::Dialing) {
            self.backoff_ms = self.options.reconnect_backoff_min_ms;
            self.dial(ctx);
        }
    }
}

impl Handler<Shutdown> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        for reply in self.outbound.down() {
            let _ = reply.send(Err(PeerError::Disconnected));
        }
        for waiting in self.waiting.drain(..) {
            let _ = waiting.reply.send(Err(PeerError::Unreachable));
        }
        ctx.stop();
    }
}
