//! The link's health: the timeout timer for the earliest deadline, a
//! degraded link's probes, and the redial after timeouts in a row.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::info;

use crate::bridge::{PeerError, PeerHealth};
use crate::wire::peer::{PeerRpc, Probe};

use super::{Link, PeerCall, PeerConnection, PEER_TIMEOUTS_BEFORE_REDIAL};

impl PeerConnection {
    /// Sets the timeout timer for the earliest deadline pending (none if
    /// nothing is pending).
    pub(super) fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(sweep) = self.sweep.take() {
            ctx.cancel_future(sweep);
        }
        if let Some(at) = self.outbound.earliest() {
            let after = at.saturating_duration_since(tokio::time::Instant::now());
            self.sweep = Some(ctx.run_later(after, |act, ctx| {
                act.sweep = None;
                act.expire(ctx);
            }));
        }
    }

    /// The timer fired: answers `Timeout` to each request now due, counts
    /// them against the link, and sets the timer for the next deadline.
    pub(super) fn expire(&mut self, ctx: &mut Context<Self>) {
        let due = self.outbound.expire(tokio::time::Instant::now());
        for (reply, timeout_ms) in due {
            let _ = reply.send(Err(PeerError::Timeout { timeout_ms }));
            // Counted while the link is up (a redial after the third
            // fails the rest `Timeout` all the same).
            if matches!(self.link, Link::Up(..)) {
                self.timed_out(ctx);
            }
        }
        if matches!(self.link, Link::Up(..)) {
            self.arm(ctx);
        }
    }

    /// A request got no answer in time: the link is degraded until
    /// anything answers, and torn down after a few in a row.
    pub(super) fn timed_out(&mut self, ctx: &mut Context<Self>) {
        self.timeouts_in_a_row += 1;
        if self.timeouts_in_a_row >= PEER_TIMEOUTS_BEFORE_REDIAL {
            self.lost(ctx, "requests keep timing out; redialling");
        } else if !self.degraded {
            self.set_degraded(true);
            self.probe(ctx);
        }
    }

    pub(super) fn set_degraded(&mut self, degraded: bool) {
        self.degraded = degraded;
        let Link::Up(_, member, _) = &self.link else {
            return;
        };
        let span = self.span.clone();
        let _span = span.enter();
        if degraded {
            info!(peer = %member.id, "a request to the peer timed out; using stand-ins for it until it answers");
        } else {
            info!(peer = %member.id, "peer answers again");
        }
        self.bridge.do_send(PeerHealth {
            node: member.id.clone(),
            degraded,
        });
    }

    /// While degraded, asks the peer whether it is there, every
    /// `peer_probe_interval_ms`.
    pub(super) fn probe(&mut self, ctx: &mut Context<Self>) {
        if !self.degraded || !matches!(self.link, Link::Up(..)) {
            return;
        }
        let interval = self.options.peer_probe_interval_ms.max(1);
        let (reply, _answer) = oneshot::channel();
        let call = PeerCall {
            body: Probe.into_request(),
            trace: 0,
            timeout_ms: interval,
        };
        self.send(call, reply, ctx);
        ctx.run_later(Duration::from_millis(interval), |act, ctx| act.probe(ctx));
    }
}
