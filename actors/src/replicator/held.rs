//! Requests held while the node bootstraps, answered or refused once it
//! is ready or their deadline passes.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::read::GetAnswer;
use super::{CoordinateGet, CoordinateWrite, Replicator, Reply, BOOTSTRAP_HELD_REQUESTS_MAX};
use crate::wire::client::{ClientError, ErrorCode};

/// A request held while the node bootstraps.
pub(super) enum Held {
    Get(
        CoordinateGet,
        oneshot::Sender<Result<GetAnswer, ClientError>>,
    ),
    Write(
        CoordinateWrite,
        bool,
        oneshot::Sender<Result<Vec<u8>, ClientError>>,
    ),
}

impl Replicator {
    /// Holds a request until the node is ready, within its deadline.
    pub(super) fn hold<T: 'static>(
        &mut self,
        timeout_ms: Option<u64>,
        held: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Held,
    ) -> Reply<T> {
        if self.held.len() >= BOOTSTRAP_HELD_REQUESTS_MAX {
            let error = ClientError::new(
                ErrorCode::Unavailable,
                format!(
                    "this node is still starting (waiting for its seeds) and holds \
                     {BOOTSTRAP_HELD_REQUESTS_MAX} requests already"
                ),
            );
            return Box::pin(async move { Err(error) });
        }
        let (tx, rx) = oneshot::channel();
        self.held.push(held(tx));
        let wait = Duration::from_millis(timeout_ms.unwrap_or(self.options.request_timeout_ms));
        Box::pin(async move {
            match tokio::time::timeout(wait, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ClientError::new(
                    ErrorCode::Internal,
                    "request dropped while the node was starting",
                )),
                Err(_) => Err(ClientError::new(
                    ErrorCode::Unavailable,
                    "this node is still starting: it has not heard from its seeds yet \
                     (see `status`: ready, waiting_for_seeds); nothing was written",
                )),
            }
        })
    }

    /// The node became ready: runs the requests it held.
    pub(super) fn release_held(&mut self, ctx: &mut Context<Self>) {
        for held in std::mem::take(&mut self.held) {
            match held {
                Held::Get(msg, tx) if !tx.is_closed() => {
                    let work = self.start_get(msg, ctx);
                    ctx.spawn(
                        async move {
                            let _ = tx.send(work.await);
                        }
                        .into_actor(self),
                    );
                }
                Held::Write(msg, may_forward, tx) if !tx.is_closed() => {
                    let work = self.start_write(msg, may_forward);
                    ctx.spawn(
                        async move {
                            let _ = tx.send(work.await);
                        }
                        .into_actor(self),
                    );
                }
                // Its client gave up already.
                _ => {}
            }
        }
    }
}
