//! The bench's workers: one request in flight each until the plan stops
//! them, and the per-key contexts they share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::SeedableRng as _;

use super::stats::{OpKind, RunStats};
use super::workload::{key_name, KeyRef, Step};
use crate::client::{Client, Context, RequestOptions};

use super::{pace, stats, Plan, Stop};

/// Shards of the per-key context cache (fewer lock collisions).
pub(super) const CONTEXT_SHARDS: usize = 64;

/// The latest context the bench holds per key of the key space, with a
/// generation that counts the times it was replaced.
pub(super) struct Contexts {
    shards: Vec<Mutex<HashMap<u64, (u64, Context)>>>,
}

impl Contexts {
    pub(super) fn new() -> Contexts {
        Contexts {
            shards: (0..CONTEXT_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    pub(super) fn shard(
        &self,
        key: u64,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, (u64, Context)>> {
        let shard = &self.shards[(key % CONTEXT_SHARDS as u64) as usize];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key's generation and context (generation 0: none yet).
    pub(super) fn get(&self, key: u64) -> (u64, Option<Context>) {
        match self.shard(key).get(&key) {
            Some((generation, context)) => (*generation, Some(context.clone())),
            None => (0, None),
        }
    }

    /// A put's or delete's answer: the newest version this bench wrote,
    /// always kept.
    pub(super) fn write_answered(&self, key: u64, context: Context) {
        let mut shard = self.shard(key);
        let generation = shard.get(&key).map_or(0, |(g, _)| *g);
        shard.insert(key, (generation + 1, context));
    }

    /// A get's answer, kept only if no write answered since the get was sent
    /// (`seen`: the generation then): an older read must not replace the
    /// context of a newer write, or the next put would make a sibling of it.
    pub(super) fn get_answered(&self, key: u64, seen: u64, context: Context) {
        let mut shard = self.shard(key);
        let generation = shard.get(&key).map_or(0, |(g, _)| *g);
        if generation == seen {
            shard.insert(key, (generation + 1, context));
        }
    }
}

/// What every worker shares.
pub(super) struct Shared {
    pub(super) run: u64,
    pub(super) plan: Plan,
    pub(super) value: Vec<u8>,
    pub(super) options: RequestOptions,
    pub(super) contexts: Contexts,
    /// Requests claimed so far: the next one's number.
    pub(super) issued: AtomicU64,
    pub(super) fresh: AtomicU64,
    /// `--rate` requests sent after they were due because every worker
    /// was busy (`pace::latency_start`: not a worker's first).
    pub(super) late: AtomicU64,
}

pub(super) fn lock(stats: &Mutex<RunStats>) -> std::sync::MutexGuard<'_, RunStats> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One worker: one request in flight at a time until the plan stops it.
pub(super) async fn worker(
    shared: Arc<Shared>,
    client: Client,
    stats: Arc<Mutex<RunStats>>,
    seed: u64,
    started: Instant,
) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut first = true;
    loop {
        let i = shared.issued.fetch_add(1, Ordering::Relaxed);
        if matches!(shared.plan.stop, Stop::Requests(n) if i >= n) {
            break;
        }
        let t = match shared.plan.rate {
            None => {
                if matches!(shared.plan.stop, Stop::After(d) if started.elapsed() >= d) {
                    break;
                }
                Instant::now()
            }
            Some(rate) => {
                let due_in = rate.due(i);
                if matches!(shared.plan.stop, Stop::After(d) if due_in >= d) {
                    break;
                }
                let due = started + due_in;
                let claimed = Instant::now();
                if claimed < due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let (start, late) = pace::latency_start(due, claimed, Instant::now(), first);
                first = false;
                if late {
                    shared.late.fetch_add(1, Ordering::Relaxed);
                }
                start
            }
        };
        let step = shared
            .plan
            .workload
            .next(&mut rng, || shared.fresh.fetch_add(1, Ordering::Relaxed));
        match step {
            Step::Get(i) => {
                let key = key_name(shared.run, KeyRef::Space(i));
                let (seen, _) = shared.contexts.get(i);
                let result = client.get_with(key.as_bytes(), shared.options).await;
                let us = t.elapsed().as_micros() as u64;
                match result {
                    Ok(found) => {
                        {
                            let mut s = lock(&stats);
                            s.ok(OpKind::Get, us);
                            match found.values.len() {
                                0 => s.get_misses += 1,
                                1 => s.get_hits += 1,
                                _ => {
                                    s.get_hits += 1;
                                    s.get_siblings += 1;
                                }
                            }
                        }
                        if let Some(context) = found.context {
                            shared.contexts.get_answered(i, seen, context);
                        }
                    }
                    Err(e) => lock(&stats).error(&stats::error_kind(&e)),
                }
            }
            Step::Delete(i) => {
                let (_, context) = shared.contexts.get(i);
                let key = key_name(shared.run, KeyRef::Space(i));
                let result = client
                    .delete_with(key.as_bytes(), context.as_ref(), shared.options)
                    .await;
                let us = t.elapsed().as_micros() as u64;
                match result {
                    Ok(context) => {
                        lock(&stats).ok(OpKind::Delete, us);
                        shared.contexts.write_answered(i, context);
                    }
                    Err(e) => lock(&stats).error(&stats::error_kind(&e)),
                }
            }
            Step::Put(key_ref) => {
                let context = match key_ref {
                    KeyRef::Space(i) => shared.contexts.get(i).1,
                    KeyRef::Fresh(_) => None,
                };
                let key = key_name(shared.run, key_ref);
                let result = client
                    .put_with(
                        key.as_bytes(),
                        &shared.value,
                        context.as_ref(),
                        shared.options,
                    )
                    .await;
                let us = t.elapsed().as_micros() as u64;
                match result {
                    Ok(context) => {
                        lock(&stats).ok(OpKind::Put, us);
                        if let KeyRef::Space(i) = key_ref {
                            shared.contexts.write_answered(i, context);
                        }
                    }
                    Err(e) => lock(&stats).error(&stats::error_kind(&e)),
                }
            }
        }
    }
}
