//! The operator's requests of the life cycle: [`Leave`] (this node hands
//! its ranges off, then goes) and [`Forget`] (a member gone for good is
//! removed).

use actix::prelude::*;
use tracing::info;

use super::super::{refused, FailureDetector};
use crate::wire::client::ClientError;
use crate::NodeId;

/// Asks this node to leave the cluster: hand off its ranges, then go.
/// Answers at once; `status` shows `leaving`, then `left`.
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Leave;

/// Admin: removes a dead member for good; its ranges are re-replicated
/// from the remaining replicas.
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Forget {
    /// The member to remove.
    pub node: NodeId,
}

impl Handler<Leave> for FailureDetector {
    type Result = Result<(), ClientError>;

    fn handle(&mut self, _: Leave, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.monotonic_ms();
        let Some(status) = self.lifecycle.on_leave(now).map_err(refused)? else {
            return Ok(());
        };
        let span = self.span.clone();
        let _span = span.enter();
        info!("leaving the cluster: handing off every range first");
        let changes = self.gossip.set_own_status(status, now);
        self.apply(changes);
        Ok(())
    }
}

impl Handler<Forget> for FailureDetector {
    type Result = Result<(), ClientError>;

    fn handle(&mut self, msg: Forget, _ctx: &mut Self::Context) -> Self::Result {
        if msg.node == self.own.id {
            return Err(refused(
                "a node cannot forget itself; ask it to leave instead",
            ));
        }
        let now = self.clock.monotonic_ms();
        let changes = self.gossip.forget(&msg.node, now).map_err(refused)?;
        let span = self.span.clone();
        let _span = span.enter();
        info!(peer = %msg.node, "forgetting a dead member for good (admin forget)");
        self.apply(changes);
        Ok(())
    }
}
