//! Recovery after a failed write: minting stops, the poisoned store is
//! reopened once the disk takes writes again, and a new incarnation
//! restarts minting (see the parent module's "Minting: a dot is never
//! reused").

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::{MintState, Writer};
use crate::storage::engine::Engine;
use crate::storage::keys;
use crate::storage::worker::{current, Closed};

/// Longest wait for the reader threads to let go of a poisoned engine
/// before it is closed, in milliseconds.
const CLOSE_WAIT_MS: u64 = 5_000;

impl Writer {
    pub(super) fn stop_minting(&mut self, reason: String) {
        error!(%reason, "this node stops minting new versions until it has a new incarnation; writes go to other replicas");
        self.mint.stopped = Some(reason);
        self.publish_mint();
    }

    /// After a failure: reopens a poisoned store when the disk takes writes
    /// again, then records a new incarnation and mints again. At most once
    /// per `storage_reopen_interval_ms` of `now_ms`, a monotonic reading
    /// in milliseconds (the writer thread's own; the inline actor's
    /// runtime clock, so a simulation's time counts).
    pub(crate) fn recover(&mut self, now_ms: u64) {
        if !self.recovery_due(now_ms) {
            return;
        }
        self.last_attempt_ms = Some(now_ms);
        // Read apart from the reopen: it waits for every other reference to
        // the engine to go.
        let poisoned = current(&self.slot).is_poisoned();
        if poisoned && !self.reopen() {
            return;
        }
        match (self.backend.renew_incarnation)() {
            Ok(incarnation) => {
                self.mint = MintState {
                    version_actor: self.node.version_actor(incarnation),
                    stopped: None,
                };
                self.mint_as.actor = self.mint.version_actor.clone();
                info!(version_actor = %self.mint.version_actor,
                    "new store incarnation after a failed write: minting again");
                self.publish_mint();
            }
            Err(e) => warn!(error = %e, "cannot record a new incarnation yet; still not minting"),
        }
    }

    /// Whether [`Writer::recover`] has something to try at `now_ms`:
    /// minting is stopped and the last attempt is a reopen interval old.
    pub(crate) fn recovery_due(&self, now_ms: u64) -> bool {
        self.mint.stopped.is_some()
            && self
                .last_attempt_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= self.limits.reopen_interval_ms)
    }

    /// Closes the poisoned engine and opens the store again; whether it
    /// worked.
    fn reopen(&mut self) -> bool {
        let Some(reopen) = self.backend.reopen.as_mut() else {
            return false;
        };
        if let Some(probe) = self.backend.probe.as_mut() {
            if let Err(e) = probe() {
                debug!(error = %e, "the disk does not take writes yet; not reopening the store");
                return false;
            }
        }
        let old = {
            let mut slot = match self.slot.write() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(
                &mut *slot,
                Arc::new(Closed("the store is being reopened".into())),
            )
        };
        // Readers hold the engine only for one call: wait until they let go.
        let deadline = Instant::now() + Duration::from_millis(CLOSE_WAIT_MS);
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if Arc::strong_count(&old) > 1 {
            warn!("the poisoned store is still in use; reopening it later");
            self.set_engine(old);
            return false;
        }
        drop(old);
        match reopen() {
            Ok(engine) => {
                self.set_engine(engine);
                self.tree.restart("the store was reopened");
                if let Err(e) = self.count_hints() {
                    warn!(error = %e, "cannot count the hints of the reopened store");
                }
                match keys::read_counter_floor(&*current(&self.slot)) {
                    Ok(floor) => self.mint_as.counter_floor = self.mint_as.counter_floor.max(floor),
                    Err(e) => {
                        warn!(error = %e, "cannot read the counter floor of the reopened store")
                    }
                }
                info!("store reopened after a failed write");
                true
            }
            Err(e) => {
                warn!(error = %e, "reopening the store failed; retrying later");
                self.set_engine(Arc::new(Closed(format!("reopening the store failed: {e}"))));
                false
            }
        }
    }

    fn set_engine(&self, engine: Arc<dyn Engine>) {
        match self.slot.write() {
            Ok(mut slot) => *slot = engine,
            Err(poisoned) => *poisoned.into_inner() = engine,
        }
    }
}
