//! Creating and registering every metric of the node ([`Metrics::new`]):
//! the families, their help texts, and the handles cut from them once at
//! start-up so recording never looks a label up.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{
    doubling_histogram, latency_histogram, ActorLabel, DirectionLabel, EngineMetrics, Inner,
    Metrics, OnLabel, OpLabel, PeerLabels, RequestLabels, StateLabel, LAG_BUCKET_MIN_S,
    MEMBER_STATES, REQUEST_OPS, REQUEST_RESULTS,
};

impl Metrics {
    /// Every metric, registered; `engine`: the storage engine's, when it
    /// keeps them.
    pub fn new(engine: Option<&EngineMetrics>) -> Self {
        let mut registry = Registry::default();
        let request_family = Family::<RequestLabels, Counter>::default();
        registry.register(
            "ringkv_requests",
            "Client requests answered, by op and result (ok or the error code)",
            request_family.clone(),
        );
        let duration_family =
            Family::<OpLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "ringkv_request_duration_seconds",
            "Time from a client request's arrival to its answer, in seconds, by op",
            duration_family.clone(),
        );
        let requests = REQUEST_OPS
            .iter()
            .map(|op| {
                REQUEST_RESULTS
                    .map(|result| request_family.get_or_create_owned(&RequestLabels { op, result }))
            })
            .collect();
        let durations = REQUEST_OPS
            .iter()
            .map(|op| duration_family.get_or_create_owned(&OpLabel { op }))
            .collect();
        let replica_requests = Family::<PeerLabels, Counter>::default();
        registry.register(
            "ringkv_replica_requests",
            "Reads and writes this node sent to other replicas, by peer and result (ok, timeout, error)",
            replica_requests.clone(),
        );
        let mailbox = Family::<ActorLabel, Gauge>::default();
        registry.register(
            "ringkv_actor_mailbox_depth",
            "Messages sent to an actor and not yet handled: client requests for the replicator, reads and writes for storage",
            mailbox.clone(),
        );
        let members_family = Family::<StateLabel, Gauge>::default();
        registry.register(
            "ringkv_members",
            "Cluster members this node knows, by state (sampled at scrape time)",
            members_family.clone(),
        );
        let members =
            MEMBER_STATES.map(|state| members_family.get_or_create_owned(&StateLabel { state }));
        let hints_pending = Gauge::default();
        registry.register(
            "ringkv_hints_pending",
            "Writes this node holds as a stand-in for replicas that are away (sampled at scrape time)",
            hints_pending.clone(),
        );
        let hints_delivered = Counter::default();
        registry.register(
            "ringkv_hints_delivered",
            "Hinted writes delivered to the replica they were for (or its successors)",
            hints_delivered.clone(),
        );
        let ae_family = Family::<DirectionLabel, Counter>::default();
        registry.register(
            "ringkv_anti_entropy_bytes",
            "Anti-entropy traffic in bytes: in = Merkle leaf hashes and objects pulled by this node's exchanges, out = leaf hashes served to peers",
            ae_family.clone(),
        );
        let anti_entropy_keys_repaired = Counter::default();
        registry.register(
            "ringkv_anti_entropy_keys_repaired",
            "Keys whose local copy changed when anti-entropy merged a peer's version",
            anti_entropy_keys_repaired.clone(),
        );
        let read_repairs = Counter::default();
        registry.register(
            "ringkv_read_repairs",
            "Read-repair writes of a merged version to a stale replica that succeeded",
            read_repairs.clone(),
        );
        let read_retries = Counter::default();
        registry.register(
            "ringkv_read_retries",
            "Replicas a read asked in place of one that stayed silent past read_retry_after_ms (speculative reads)",
            read_retries.clone(),
        );
        let tombstones = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "ringkv_tombstones",
            "Tombstones (objects whose every sibling is a delete) this node stores: recounted by each full pass of the tombstone reaper over the store; in between, moved by deletes, overwrites and reaps",
            tombstones.clone(),
        );
        let tombstones_reaped = Counter::default();
        registry.register(
            "ringkv_tombstones_reaped",
            "Tombstones this node removed because every replica held them and no hint was pending (its own reaper's or another member's)",
            tombstones_reaped.clone(),
        );
        let minted = Family::<OnLabel, Counter>::default();
        registry.register(
            "ringkv_versions_minted",
            "New versions this node minted as a write's coordinator, by where: on=event_loop (from the stored object in memory; the replica writes leave at once) or on=writer (by the storage writer thread, which hands the version back: the key not in memory, an earlier mint of it not yet in the engine, or no other replica to send it to)",
            minted.clone(),
        );
        let groups = Family::<OnLabel, Counter>::default();
        registry.register(
            "ringkv_writer_groups",
            "Group commits of the storage writer on the event loop (--storage-writer loop), by where they ran: on=loop, or on=thread (the engine might stall, the Merkle leaves were being rebuilt, or the group before took longer than the slow-group limit); stays 0 with the writer on its own thread",
            groups.clone(),
        );
        let event_loop_lag = doubling_histogram(LAG_BUCKET_MIN_S);
        registry.register(
            "ringkv_event_loop_lag_seconds",
            "How late the event loop (every actor's thread) ran a timer that was due, in seconds, sampled every 50 ms (ringkv's event_loop module): a request that arrived then waited at least as long before any actor saw it",
            event_loop_lag.clone(),
        );
        if let Some(engine) = engine {
            registry.register(
                "ringkv_storage_fsync_duration_seconds",
                "Duration of each commit log fsync, in seconds",
                engine.fsync_seconds.clone(),
            );
            registry.register(
                "ringkv_storage_commit_writes",
                "Writes each group commit made durable with one commit log append and fsync (sync always): how many writes share a commit's cost",
                engine.commit_writes.clone(),
            );
            registry.register(
                "ringkv_storage_memtable_bytes",
                "Bytes in memtables: the active one and those waiting to be flushed",
                engine.memtable_bytes.clone(),
            );
            registry.register(
                "ringkv_storage_tables",
                "Live SSTables",
                engine.tables.clone(),
            );
            registry.register(
                "ringkv_storage_table_bytes",
                "Bytes of the live SSTables",
                engine.table_bytes.clone(),
            );
            registry.register(
                "ringkv_storage_compactions",
                "Compactions completed",
                engine.compactions.clone(),
            );
            registry.register(
                "ringkv_storage_write_stall_seconds",
                "Time writes spent stalled waiting for memtable flushes, in seconds",
                engine.write_stall_seconds.clone(),
            );
        }
        Self(Arc::new(Inner {
            registry,
            engine: engine.cloned(),
            requests,
            durations,
            replica_requests,
            peers: RwLock::default(),
            mailbox_replicator: mailbox.get_or_create_owned(&ActorLabel {
                actor: "replicator",
            }),
            mailbox_storage: mailbox.get_or_create_owned(&ActorLabel { actor: "storage" }),
            members,
            hints_pending,
            hints_delivered,
            anti_entropy_in: ae_family.get_or_create_owned(&DirectionLabel { direction: "in" }),
            anti_entropy_out: ae_family.get_or_create_owned(&DirectionLabel { direction: "out" }),
            anti_entropy_keys_repaired,
            read_repairs,
            read_retries,
            tombstones,
            tombstones_reaped,
            minted_here: minted.get_or_create_owned(&OnLabel { on: "event_loop" }),
            minted_by_writer: minted.get_or_create_owned(&OnLabel { on: "writer" }),
            groups_on_loop: groups.get_or_create_owned(&OnLabel { on: "loop" }),
            groups_on_thread: groups.get_or_create_owned(&OnLabel { on: "thread" }),
            event_loop_lag,
        }))
    }
}
