//! A client request turned into a coordination: a write's plan (or its
//! forward to a replica) and a get's plan, each started on the actor.

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::fanout::Reach;
use super::read::GetAnswer;
use super::{placement, read, write, CoordinateGet, CoordinateWrite, Replicator, Reply, SLOPPY};
use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

impl Replicator {
    /// Starts a write; `may_forward` is false for writes that were already
    /// forwarded to us (no second hop).
    pub(super) fn start_write(&self, msg: CoordinateWrite, may_forward: bool) -> Reply<Vec<u8>> {
        let need = match self.need(
            msg.consistency,
            msg.w.unwrap_or(self.options.w),
            msg.dc_quorums.clone(),
        ) {
            Ok(need) => need,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let w = need.needed;
        let pw = msg.pw.unwrap_or(0);
        if pw > w {
            let error = ClientError::new(
                ErrorCode::BadRequest,
                format!("field `pw` ({pw}) must not exceed `w` ({w})"),
            );
            return Box::pin(async move { Err(error) });
        }
        // A context some member sealed for this very key, or nothing: it is
        // checked here, before the write is forwarded or anything minted.
        let context = match msg
            .context
            .as_deref()
            .map(|bytes| self.options.contexts.open(&msg.key, bytes))
            .transpose()
        {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                let error = ClientError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "field `context` is not a context this cluster issued for this key: {e}"
                    ),
                );
                return Box::pin(async move { Err(error) });
            }
        };
        let timeout_ms = msg.timeout_ms.unwrap_or(self.options.request_timeout_ms);
        let placement =
            placement::for_write(&self.read_ring, &self.write_ring, self.options.n, &msg.key);
        let primaries = self.classify(&placement.primaries);
        let span = self.request_span(
            tracing::debug_span!(parent: &self.span, "write", req = %format_args!("{:x}", msg.trace)),
        );
        let replica = placement.primaries.contains(&self.own);
        if !replica || self.not_minting.is_some() {
            if !may_forward {
                let why = self.forwarded_refusal(replica);
                let error = ClientError::new(ErrorCode::Unavailable, why);
                return Box::pin(async move { Err(error) });
            }
            // New versions are minted by a replica of the key that can
            // mint: hand the write to the other replicas this node can
            // reach, best first; one that cannot mint now refuses and the
            // next is tried (this node's own data center first).
            let others = || primaries.iter().filter(|(n, _)| *n != self.own);
            let mut targets: Vec<NodeId> = others()
                .filter(|(_, reach)| *reach == Reach::Usable)
                .chain(others().filter(|(_, reach)| *reach == Reach::Doubtful))
                .map(|(n, _)| n.clone())
                .collect();
            targets.sort_by_key(|n| self.write_ring.dc_of(n) != Some(self.options.dc.as_str()));
            if targets.is_empty() {
                let error = self.unavailable(0, w, "the write");
                return Box::pin(async move { Err(error) });
            }
            let mut forwarded = write::forwarded(msg.key, msg.value, msg.context, w, pw);
            forwarded.supersede_local = msg.supersede_local;
            forwarded.ttl_ms = msg.ttl_ms;
            forwarded.dc_quorums = need.dcs.into_iter().map(|q| (q.dc, q.needed)).collect();
            return Box::pin(
                write::forward(
                    self.replicas.clone(),
                    targets,
                    forwarded,
                    msg.trace,
                    timeout_ms,
                )
                .instrument(span),
            );
        }
        let (scope, spare) =
            match self.quorum_or_refusal("the write", placement, &primaries, need.dcs, w, pw) {
                Ok(admitted) => admitted,
                Err(error) => return Box::pin(async move { Err(error) }),
            };
        let now_ms = self.clock.now_ms();
        let plan = write::WritePlan {
            key: msg.key,
            timers: self.timers.clone(),
            value: msg.value,
            context,
            supersede_local: msg.supersede_local,
            w,
            pw,
            primaries,
            spare,
            scope,
            policy: SLOPPY,
            stand_in_after_ms: self.options.stand_in_after_ms,
            timeout_ms,
            trace: msg.trace,
            now_ms,
            expires_ms: msg.ttl_ms.map(|ttl| now_ms.saturating_add(ttl)),
            limits: self.options.limits.clone(),
            object_bytes_max: self.options.object_bytes_max,
            contexts: self.options.contexts.clone(),
            with_context: msg.with_context,
        };
        Box::pin(write::coordinate(self.replicas.clone(), plan).instrument(span))
    }

    /// Starts a read: its answer comes through the returned future as soon
    /// as it is known; the read goes on in the actor's context for read
    /// repair.
    pub(super) fn start_get(
        &self,
        msg: CoordinateGet,
        ctx: &mut Context<Self>,
    ) -> Reply<GetAnswer> {
        match self.plan_get(msg) {
            Ok(plan) => self.spawn_read(plan, ctx),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    /// A read's plan, or why it cannot be made.
    pub(super) fn plan_get(&self, msg: CoordinateGet) -> Result<read::ReadPlan, ClientError> {
        let need = self.need(msg.consistency, msg.r.unwrap_or(self.options.r), Vec::new())?;
        let r = need.needed;
        let pr = msg.pr.unwrap_or(0);
        if pr > r {
            return Err(ClientError::new(
                ErrorCode::BadRequest,
                format!("field `pr` ({pr}) must not exceed `r` ({r})"),
            ));
        }
        let placement =
            placement::for_read(&self.read_ring, &self.write_ring, self.options.n, &msg.key);
        let mut primaries = self.classify(&placement.primaries);
        // This node's own copy first: asking only R replicas, the local
        // read is one of them.
        primaries.sort_by_key(|(node, _)| *node != self.own);
        let (scope, spare) =
            self.quorum_or_refusal("the read", placement, &primaries, need.dcs, r, pr)?;
        let timeout_ms = msg.timeout_ms.unwrap_or(self.options.request_timeout_ms);
        Ok(read::ReadPlan {
            key: msg.key,
            timers: self.timers.clone(),
            r,
            pr,
            primaries,
            asking: self.options.read_asks,
            spare,
            scope,
            policy: SLOPPY,
            retry_after_ms: self.options.read_retry_after_ms,
            stand_in_after_ms: self.options.stand_in_after_ms,
            timeout_ms,
            trace: msg.trace,
            contexts: self.options.contexts.clone(),
            last_writer_wins: msg.last_writer_wins,
            with_context: msg.with_context,
            now_ms: self.clock.now_ms(),
        })
    }

    /// Runs a read's coordination in the actor's context; its answer
    /// comes through the returned future.
    pub(super) fn spawn_read(
        &self,
        plan: read::ReadPlan,
        ctx: &mut Context<Self>,
    ) -> Reply<GetAnswer> {
        let (tx, rx) = oneshot::channel();
        let span = self.request_span(
            tracing::debug_span!(parent: &self.span, "read", req = %format_args!("{:x}", plan.trace)),
        );
        let work = read::coordinate(self.replicas.clone(), self.read_helpers.clone(), plan, tx);
        ctx.spawn(work.instrument(span).into_actor(self));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::new(
                    ErrorCode::Internal,
                    "read coordination stopped",
                ))
            })
        })
    }
}
