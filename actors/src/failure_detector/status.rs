//! The `status` reply ([`StatusQuery`]): every member's row, and this
//! node's own state (its ring, whether it is ready and minting, the seeds
//! it waits for, where it is in its life cycle).

use actix::prelude::*;

use super::{view, FailureDetector};
use crate::wire::client::ClientReply;

/// Asks for the `status` reply.
#[derive(Message)]
#[rtype(result = "ClientReply")]
pub struct StatusQuery;

impl Handler<StatusQuery> for FailureDetector {
    type Result = MessageResult<StatusQuery>;

    fn handle(&mut self, _: StatusQuery, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.monotonic_ms();
        let members = self.gossip.members(now);
        let rows = view::status_rows(&members, &self.view.write_ring);
        let mut extra = self.options.status_extra.clone();
        extra.push((
            "ring_tokens".into(),
            rmpv::Value::from(self.view.read_ring.token_count() as u64),
        ));
        extra.push(("ready".into(), rmpv::Value::from(self.bootstrap.is_ready())));
        if let Some(mint) = &self.mint {
            extra.push((
                "version_actor".into(),
                rmpv::Value::from(mint.version_actor.as_str()),
            ));
            extra.push(("minting".into(), rmpv::Value::from(mint.stopped.is_none())));
            if let Some(why) = &mint.stopped {
                extra.push((
                    "not_minting_because".into(),
                    rmpv::Value::from(why.as_str()),
                ));
            }
        }
        let waiting: Vec<rmpv::Value> = self
            .bootstrap
            .waiting_for()
            .iter()
            .map(|a| rmpv::Value::from(a.to_string()))
            .collect();
        if !waiting.is_empty() {
            extra.push(("waiting_for_seeds".into(), rmpv::Value::Array(waiting)));
        }
        extra.push((
            "lifecycle".into(),
            rmpv::Value::from(self.lifecycle.as_str()),
        ));
        extra.push((
            "lost_range_pushes_pending".into(),
            rmpv::Value::from(self.lost.pending() as u64),
        ));
        MessageResult(ClientReply::Status {
            node: self.own.id.to_string(),
            members: rows,
            extra,
        })
    }
}
