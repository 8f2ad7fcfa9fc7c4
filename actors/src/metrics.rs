//! The node's Prometheus metrics: one [`Metrics`] handle (an `Arc` of
//! pre-created counters, gauges and histograms from `prometheus-client`,
//! all atomics) that node.rs creates and hands to the actors that own each
//! event. Recording is an index into a table built at start-up: no lock,
//! no allocation per request (labels that cannot be known up front, a
//! peer's id, are created once per peer and cached).
//!
//! Who records what:
//! - client sessions: `ringkv_requests_total{op,result}`,
//!   `ringkv_request_duration_seconds{op}`, and the replicator's mailbox
//!   depth (they count a request in when they send it; the replicator counts
//!   it out when its handler starts);
//! - `Replicas` (replicator and repair): `ringkv_replica_requests_total{peer,result}`,
//!   the storage mailbox depth (reads and writes sent to the Storage actor,
//!   counted out when its handler starts), `ringkv_tombstones`;
//! - repair: hints delivered, anti-entropy bytes and keys, read repairs,
//!   tombstones reaped (and the tombstone reaper's recount of
//!   `ringkv_tombstones` at the end of each pass over the store);
//! - the LSM engine ([`EngineMetrics`], its own threads): fsync latency,
//!   memtable bytes, tables, compactions, write stalls;
//! - the metrics endpoint, at scrape time: `ringkv_members{state}` and
//!   `ringkv_hints_pending` (asked of the failure detector and storage, which
//!   already keep them; see [`Metrics::set_members`]);
//! - the node process's event-loop probe (the binary's `event_loop`
//!   module): `ringkv_event_loop_lag_seconds`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::wire::client::ErrorCode;

mod register;

/// The ops `ringkv_requests_total` and `ringkv_request_duration_seconds`
/// are labelled with: the client protocol's op names, plus `invalid` for a
/// frame that did not parse into a request.
pub const REQUEST_OPS: [&str; 13] = [
    "ping", "get", "put", "delete", "list", "status", "auth", "leave", "forget", "members", "ring",
    "repair", "invalid",
];
/// Results of a request: `ok` or an error code's wire name.
const REQUEST_RESULTS: [&str; 8] = [
    "ok",
    "bad_request",
    "too_large",
    "unknown_op",
    "unavailable",
    "timeout",
    "internal",
    "unauthorized",
];
/// Results of a replica request.
const REPLICA_RESULTS: [&str; 3] = ["ok", "timeout", "error"];
/// Member states `ringkv_members` always reports (0 when none).
pub const MEMBER_STATES: [&str; 6] = ["alive", "suspect", "down", "joining", "leaving", "left"];
/// Smallest bucket of the request latency histogram, in seconds (100 us);
/// each next one doubles, over [`LATENCY_BUCKETS`] buckets (to ~3.3 s).
const LATENCY_BUCKET_MIN_S: f64 = 0.000_1;
/// Buckets of the latency histograms.
const LATENCY_BUCKETS: u16 = 16;
/// Smallest bucket of the fsync histogram, in seconds (20 us; doubling).
const FSYNC_BUCKET_MIN_S: f64 = 0.000_02;
/// Buckets of the writes-per-commit histogram: 1, 2, 4, ..., 512 writes.
const COMMIT_WRITES_BUCKETS: u16 = 10;
/// Smallest bucket of the event-loop lag histogram, in seconds (50 us;
/// doubling, over [`LATENCY_BUCKETS`] buckets, to ~1.6 s).
const LAG_BUCKET_MIN_S: f64 = 0.000_05;

/// The actors whose mailbox depth is measured (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mailbox {
    /// Client requests sent to the replicator and not yet handled.
    Replicator,
    /// Reads and writes sent to the Storage actor and not yet handled.
    Storage,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
    result: &'static str,
}

/// Where something was done (`on=...`): a version minted, a writer group
/// committed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnLabel {
    on: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabel {
    actor: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// A histogram whose first bucket ends at `min_s` seconds, each next one
/// doubling, over [`LATENCY_BUCKETS`] buckets.
fn doubling_histogram(min_s: f64) -> Histogram {
    Histogram::new(exponential_buckets(min_s, 2.0, LATENCY_BUCKETS))
}

fn latency_histogram() -> Histogram {
    doubling_histogram(LATENCY_BUCKET_MIN_S)
}

/// What the storage engine records, from its own threads. The engine
/// creates these (unregistered) when it opens; node.rs registers them.
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    /// Duration of each commit-log fsync, in seconds.
    pub fsync_seconds: Histogram,
    /// Writes each group commit made durable with one log append and
    /// fsync (`SyncPolicy::Always`): the jobs that share a commit's cost.
    pub commit_writes: Histogram,
    /// Bytes in memtables (the active one and those waiting for a flush).
    pub memtable_bytes: Gauge,
    /// Live SSTables.
    pub tables: Gauge,
    /// Bytes of the live SSTables.
    pub table_bytes: Gauge,
    /// Compactions completed.
    pub compactions: Counter,
    /// Time writers spent stalled waiting for memtable flushes, in seconds.
    pub write_stall_seconds: Counter<f64, AtomicU64>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            fsync_seconds: doubling_histogram(FSYNC_BUCKET_MIN_S),
            commit_writes: Histogram::new(exponential_buckets(1.0, 2.0, COMMIT_WRITES_BUCKETS)),
            memtable_bytes: Gauge::default(),
            tables: Gauge::default(),
            table_bytes: Gauge::default(),
            compactions: Counter::default(),
            write_stall_seconds: Counter::default(),
        }
    }
}

/// The node's metrics (cheap to clone: one `Arc`).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    /// The engine's handles (for the load an admin `members` reports).
    engine: Option<EngineMetrics>,
    /// `[op][result]`, indexed as [`REQUEST_OPS`] x `REQUEST_RESULTS`.
    requests: Vec<[Counter; REQUEST_RESULTS.len()]>,
    durations: Vec<Histogram>,
    replica_requests: Family<PeerLabels, Counter>,
    /// Per peer, its three result counters (created once per peer).
    peers: RwLock<HashMap<String, Arc<[Counter; REPLICA_RESULTS.len()]>>>,
    mailbox_replicator: Gauge,
    mailbox_storage: Gauge,
    members: [Gauge; MEMBER_STATES.len()],
    hints_pending: Gauge,
    hints_delivered: Counter,
    anti_entropy_in: Counter,
    anti_entropy_out: Counter,
    anti_entropy_keys_repaired: Counter,
    read_repairs: Counter,
    read_retries: Counter,
    tombstones: Gauge<i64, AtomicI64>,
    tombstones_reaped: Counter,
    /// Versions minted as a write's coordinator: on the event loop, by
    /// the writer thread.
    minted_here: Counter,
    minted_by_writer: Counter,
    /// Group commits of the writer on the event loop: on the loop, on
    /// the blocking thread.
    groups_on_loop: Counter,
    groups_on_thread: Counter,
    event_loop_lag: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    /// A registry of its own, without storage metrics (tests, simulations).
    fn default() -> Self {
        Self::new(None)
    }
}

impl Metrics {
    /// One sample of the event loop's lag: how long after it was due a
    /// timer ran.
    pub fn event_loop_lag(&self, lag: std::time::Duration) {
        self.0.event_loop_lag.observe(lag.as_secs_f64());
    }

    /// One client request answered: `op` is its wire name (an op not in
    /// [`REQUEST_OPS`] counts as `invalid`), `error` its error code if it
    /// failed, `seconds` how long it took.
    pub fn request(&self, op: &str, error: Option<ErrorCode>, seconds: f64) {
        let op = REQUEST_OPS
            .iter()
            .position(|o| *o == op)
            .unwrap_or(REQUEST_OPS.len() - 1);
        let result = match error {
            None => 0,
            Some(code) => ErrorCode::ALL
                .iter()
                .position(|c| *c == code)
                .map_or(REQUEST_RESULTS.len() - 2, |i| i + 1),
        };
        if let (Some(counters), Some(histogram)) =
            (self.0.requests.get(op), self.0.durations.get(op))
        {
            if let Some(counter) = counters.get(result) {
                counter.inc();
            }
            histogram.observe(seconds);
        }
    }

    /// One read or write sent to the replica `peer`: `Ok`, a timeout, or
    /// another failure.
    pub fn replica_request(&self, peer: &str, ok: bool, timeout: bool) {
        let index = match (ok, timeout) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        };
        let cached = self
            .0
            .peers
            .read()
            .ok()
            .and_then(|peers| peers.get(peer).cloned());
        let counters = match cached {
            Some(counters) => counters,
            None => {
                let counters = Arc::new(REPLICA_RESULTS.map(|result| {
                    self.0.replica_requests.get_or_create_owned(&PeerLabels {
                        peer: peer.to_owned(),
                        result,
                    })
                }));
                if let Ok(mut peers) = self.0.peers.write() {
                    peers.insert(peer.to_owned(), counters.clone());
                }
                counters
            }
        };
        counters[index].inc();
    }

    /// A message for `mailbox` was sent.
    pub fn mailbox_sent(&self, mailbox: Mailbox) {
        self.mailbox(mailbox).inc();
    }

    /// A message for `mailbox` reached its handler.
    pub fn mailbox_handled(&self, mailbox: Mailbox) {
        self.mailbox(mailbox).dec();
    }

    fn mailbox(&self, mailbox: Mailbox) -> &Gauge {
        match mailbox {
            Mailbox::Replicator => &self.0.mailbox_replicator,
            Mailbox::Storage => &self.0.mailbox_storage,
        }
    }

    /// The member count of each state (states not in [`MEMBER_STATES`]
    /// are ignored); states not named are set to 0.
    pub fn set_members<'a>(&self, states: impl IntoIterator<Item = &'a str>) {
        let mut counts = [0i64; MEMBER_STATES.len()];
        for state in states {
            if let Some(i) = MEMBER_STATES.iter().position(|s| *s == state) {
                counts[i] += 1;
            }
        }
        for (gauge, count) in self.0.members.iter().zip(counts) {
            gauge.set(count);
        }
    }

    /// Hints held right now.
    pub fn set_hints_pending(&self, hints: u64) {
        self.0
            .hints_pending
            .set(i64::try_from(hints).unwrap_or(i64::MAX));
    }

    /// Hints delivered.
    pub fn hints_delivered(&self, hints: u64) {
        self.0.hints_delivered.inc_by(hints);
    }

    /// Anti-entropy bytes received (`incoming`) or sent.
    pub fn anti_entropy_bytes(&self, incoming: bool, bytes: u64) {
        let counter = if incoming {
            &self.0.anti_entropy_in
        } else {
            &self.0.anti_entropy_out
        };
        counter.inc_by(bytes);
    }

    /// Keys anti-entropy changed locally.
    pub fn anti_entropy_keys_repaired(&self, keys: u64) {
        self.0.anti_entropy_keys_repaired.inc_by(keys);
    }

    /// One read-repair write succeeded.
    pub fn read_repair(&self) {
        self.0.read_repairs.inc();
    }

    /// A read asked `replicas` in place of silent ones (its retry timer).
    pub fn read_retries(&self, replicas: u64) {
        self.0.read_retries.inc_by(replicas);
    }

    /// A stored object went from `was` tombstone to `is` tombstone.
    pub fn tombstone_transition(&self, was: bool, is: bool) {
        match (was, is) {
            (false, true) => {
                self.0.tombstones.inc();
            }
            (true, false) => {
                self.0.tombstones.dec();
            }
            _ => {}
        }
    }

    /// This node minted a write's new version as its coordinator: on its
    /// event loop (`here`) or by its writer thread.
    pub fn version_minted(&self, here: bool) {
        if here {
            self.0.minted_here.inc();
        } else {
            self.0.minted_by_writer.inc();
        }
    }

    /// The writer on the event loop committed a group: on the loop
    /// (`on_loop`) or on its blocking thread.
    pub fn writer_group(&self, on_loop: bool) {
        if on_loop {
            self.0.groups_on_loop.inc();
        } else {
            self.0.groups_on_thread.inc();
        }
    }

    /// `count` tombstones were removed from this node's store (reaped).
    pub fn tombstones_removed(&self, count: u64) {
        self.0.tombstones_reaped.inc_by(count);
        self.0
            .tombstones
            .dec_by(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A full pass over the store counted `count` tombstones.
    pub fn tombstones_counted(&self, count: u64) {
        self.0
            .tombstones
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The store's size on this node (tables and memtables), in bytes;
    /// `None` for an engine that keeps no metrics.
    pub fn load_bytes(&self) -> Option<u64> {
        self.0.engine.as_ref().map(|e| {
            let bytes = e.table_bytes.get().max(0) + e.memtable_bytes.get().max(0);
            u64::try_from(bytes).unwrap_or(0)
        })
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.0.registry);
        text
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
