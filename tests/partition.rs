//! Partition suite: five real `ringkv node` processes (N=3, R=W=2), each in
//! its own network namespace, read-modify-write clients through every node,
//! and a schedule of network faults made with iptables rules inside the node
//! namespaces (`common::netns`). Always checked: no acknowledged write is
//! lost, no element appears that was never written, every node is still
//! running at the end. Measured and printed (a markdown table): availability
//! per fault phase, per operation and per side, and the time from each heal
//! to the first successful request that needs a link the fault had cut.
//! The availability targets (the constants `TARGET_*`) are asserted too.
//!
//! Needs root, `ip` (iproute2) and `iptables` (`.ci/run` installs them);
//! without root it prints why and passes (skips). Environment:
//! - `RINGKV_PARTITION_SEED`: which nodes play which role in the faults,
//!   and the clients' key choices (default [`DEFAULT_SEED`]). The timing of
//!   real processes is not replayed, only these choices.
//! - `RINGKV_PARTITION_SECONDS`: total workload time (default
//!   [`DEFAULT_SECONDS`]), shared by the phases in proportion to their weight.
//! - `RINGKV_PARTITION_ASSERT_AVAILABILITY=0`: report the targets missed
//!   without failing (for exploring a change).
//! - `RINGKV_PARTITION_KEEP_LOGS=1`: keep the node logs (they are kept
//!   anyway when a check fails) under `target/tmp/partition-<pid>/`.
//!
//! `cargo test --test partition -- --nocapture`
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{self, Net, NetCluster};
use common::{log_excerpt, ring_of, GOSSIP_INTERVAL_MS, REQUEST_TIMEOUT_MS};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use ringkv::client::{Error, RequestOptions};
use ringkv::Client;
use ringkv_actors::NodeId;
use tokio::sync::mpsc;

const NODES: usize = 5;
/// N=3, R=W=2 (the harness adds its fast gossip and timeout flags).
const NODE_FLAGS: &[&str] = &["--n", "3", "--r", "2", "--w", "2"];
const REPLICAS: usize = 3;
const KEYS: usize = 16;
/// Read-modify-write clients per node (each with its own connection).
const CLIENTS_PER_NODE: usize = 2;
/// A client's pause between two operations (and after a failed get), so the
/// clients do not saturate the 2-core machine.
const THINK: Duration = Duration::from_millis(20);
/// Client-side wait per request: a hung request becomes a failure.
const CLIENT_WAIT: Duration = Duration::from_millis(2 * REQUEST_TIMEOUT_MS + 500);
/// Element `e` was written by client `e / ELEMENT_STRIDE - 1`.
const ELEMENT_STRIDE: u64 = 1_000_000;
/// After a heal: one probe request every this long.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// How long the final convergence may take.
const CONVERGE_WAIT: Duration = Duration::from_secs(60);

const DEFAULT_SEED: u64 = 20_250_301;
/// 60 s: a fault phase then lasts about 9 s, long enough that the few
/// requests in flight on a link when it is cut (which fail, "peer
/// disconnected") weigh less than the targets' margin.
const DEFAULT_SECONDS: u64 = 60;

// Availability targets (the product issue). Percent of requests answered
// with success, per phase, for the side named.
/// Healthy phases (the first one and every heal), requests through any node.
const TARGET_HEALTHY_PCT: f64 = 100.0;
/// One node isolated: requests through the other nodes.
const TARGET_ISOLATE_REST_PCT: f64 = 99.5;
/// 3|2 split: requests through the majority side, gets and puts.
const TARGET_SPLIT_MAJORITY_PCT: f64 = 99.0;
/// Bridge partition: requests through any node.
const TARGET_BRIDGE_PCT: f64 = 99.0;
/// After a heal, the first request that needs a healed link succeeds
/// within one gossip interval.
const TARGET_HEAL_FIRST_OK: Duration = Duration::from_millis(GOSSIP_INTERVAL_MS);
/// Requests that start this soon after a heal are its recovery window:
/// reported on a `recovering` row, judged by `TARGET_HEAL_FIRST_OK`
/// rather than by `TARGET_HEALTHY_PCT` (a node cut off until then learns
/// that the others are back at its next gossip round).
const HEAL_RECOVERY: Duration = TARGET_HEAL_FIRST_OK;

/// A fault the schedule can inject. Applying one is [`Fault::apply`]; adding
/// process faults (kill -9, SIGSTOP, disk full) for a long nemesis mode means
/// a variant here, a case in `apply` (which holds the processes) and its
/// sides and target.
#[derive(Clone, Debug)]
enum Fault {
    /// No fault: the first phase and every heal.
    Healthy,
    /// One node cut off from every other node, both directions.
    Isolate(usize),
    /// Two sides that cannot reach each other, both directions.
    Split {
        majority: Vec<usize>,
        minority: Vec<usize>,
    },
    /// `left` and `right` cannot reach each other; both reach `middle`.
    Bridge {
        left: Vec<usize>,
        middle: usize,
        right: Vec<usize>,
    },
    /// `deaf` drops every packet from `unheard`; the other way works.
    OneWay { deaf: usize, unheard: usize },
}

fn names(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|n| format!("n{}", n + 1))
        .collect::<Vec<_>>()
        .join(",")
}

impl Fault {
    fn name(&self) -> String {
        match self {
            Fault::Healthy => "healthy".into(),
            Fault::Isolate(n) => format!("isolate n{}", n + 1),
            Fault::Split { majority, minority } => {
                format!("split {} / {}", names(majority), names(minority))
            }
            Fault::Bridge {
                left,
                middle,
                right,
            } => format!(
                "bridge {} / n{} / {}",
                names(left),
                middle + 1,
                names(right)
            ),
            Fault::OneWay { deaf, unheard } => {
                format!("one-way n{} deaf to n{}", deaf + 1, unheard + 1)
            }
        }
    }

    /// Pairs of nodes whose link the fault cuts (in either direction).
    fn cut_pairs(&self) -> Vec<(usize, usize)> {
        let across = |a: &[usize], b: &[usize]| -> Vec<(usize, usize)> {
            a.iter()
                .flat_map(|&x| b.iter().map(move |&y| (x, y)))
                .collect()
        };
        match self {
            Fault::Healthy => Vec::new(),
            Fault::Isolate(n) => (0..NODES).filter(|m| m != n).map(|m| (*n, m)).collect(),
            Fault::Split { majority, minority } => across(majority, minority),
            Fault::Bridge { left, right, .. } => across(left, right),
            Fault::OneWay { deaf, unheard } => vec![(*deaf, *unheard)],
        }
    }

    /// Per node: the nodes it drops packets from, and those it drops
    /// packets to. Symmetric faults block both directions on both ends.
    fn blocks(&self) -> Vec<(Vec<usize>, Vec<usize>)> {
        let mut blocks = vec![(Vec::new(), Vec::new()); NODES];
        if let Fault::OneWay { deaf, unheard } = self {
            blocks[*deaf].0.push(*unheard);
            return blocks;
        }
        for (a, b) in self.cut_pairs() {
            for (x, y) in [(a, b), (b, a)] {
                blocks[x].0.push(y);
                blocks[x].1.push(y);
            }
        }
        blocks
    }

    /// Makes this the network's state (replacing the previous fault's rules;
    /// `Healthy` flushes them all).
    fn apply(&self, cluster: &NetCluster) {
        cluster.net.set_blocks(&self.blocks());
    }

    /// Which side of the fault requests through `node` are on.
    fn side(&self, node: usize) -> &'static str {
        match self {
            Fault::Healthy => "all",
            Fault::Isolate(n) if *n == node => "isolated",
            Fault::Isolate(_) => "rest",
            Fault::Split { majority, .. } if majority.contains(&node) => "majority",
            Fault::Split { .. } => "minority",
            Fault::Bridge { middle, .. } if *middle == node => "middle",
            Fault::Bridge { .. } => "ends",
            Fault::OneWay { deaf, unheard } if node == *deaf || node == *unheard => "ends",
            Fault::OneWay { .. } => "rest",
        }
    }

    /// The sides in table order (each has a row; "all" rows are added).
    fn sides(&self) -> &'static [&'static str] {
        match self {
            Fault::Healthy => &["all"],
            Fault::Isolate(_) => &["rest", "isolated"],
            Fault::Split { .. } => &["majority", "minority"],
            Fault::Bridge { .. } => &["middle", "ends"],
            Fault::OneWay { .. } => &["rest", "ends"],
        }
    }

    /// The availability target: which side ("all" = every node) must reach
    /// which percentage, for gets and puts alike.
    fn target(&self) -> Option<(&'static str, f64)> {
        match self {
            Fault::Healthy => Some(("all", TARGET_HEALTHY_PCT)),
            Fault::Isolate(_) => Some(("rest", TARGET_ISOLATE_REST_PCT)),
            Fault::Split { .. } => Some(("majority", TARGET_SPLIT_MAJORITY_PCT)),
            Fault::Bridge { .. } => Some(("all", TARGET_BRIDGE_PCT)),
            Fault::OneWay { .. } => None,
        }
    }
}

struct Phase {
    fault: Fault,
    duration: Duration,
}

/// healthy, isolate, heal, 3|2 split, heal, bridge, heal, one-way, heal;
/// fault phases twice as long as healthy ones. `rng` picks which node plays
/// which role.
fn schedule(rng: &mut SmallRng, total: Duration) -> Vec<Phase> {
    let mut p: Vec<usize> = (0..NODES).collect();
    p.shuffle(rng);
    let sorted = |mut v: Vec<usize>| {
        v.sort_unstable();
        v
    };
    let faults = [
        (Fault::Healthy, 1),
        (Fault::Isolate(p[0]), 2),
        (Fault::Healthy, 1),
        (
            Fault::Split {
                majority: sorted(vec![p[1], p[2], p[3]]),
                minority: sorted(vec![p[4], p[0]]),
            },
            2,
        ),
        (Fault::Healthy, 1),
        (
            Fault::Bridge {
                left: sorted(vec![p[0], p[2]]),
                middle: p[1],
                right: sorted(vec![p[3], p[4]]),
            },
            2,
        ),
        (Fault::Healthy, 1),
        (
            Fault::OneWay {
                deaf: p[2],
                unheard: p[3],
            },
            2,
        ),
        (Fault::Healthy, 1),
    ];
    let weights: u32 = faults.iter().map(|f| f.1).sum();
    faults
        .into_iter()
        .map(|(fault, w)| Phase {
            fault,
            duration: total * w / weights,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Get,
    Put,
}

/// One request of the workload.
struct OpRecord {
    op: Op,
    /// The node it went through.
    node: usize,
    /// The phase it counts for: the one active when it started, or the
    /// fault that began while it was in flight (a request cut off by a
    /// fault's start is the fault's, not the healthy phase's).
    phase: usize,
    /// When it started.
    at: Instant,
    /// `None` = success; else the error, short.
    error: Option<String>,
    /// The error in full (the node's message).
    detail: Option<String>,
}

/// One put: the element it added and whether the put was acknowledged.
struct WriteRecord {
    key: usize,
    element: u64,
    acked: bool,
}

/// State the nemesis (the test thread) shares with the client thread.
struct Shared {
    phase: AtomicUsize,
    stop: AtomicBool,
    /// Per phase, whether it is a healthy one (no fault).
    phases: Vec<bool>,
}

/// The phase a request counts for: the one it started in, unless that was
/// healthy and a fault began while it was in flight (it is the fault's).
fn counted_phase(started: usize, ended: usize, healthy: &[bool]) -> usize {
    if !healthy.get(started).copied().unwrap_or(false) {
        return started;
    }
    (started + 1..=ended)
        .find(|p| !healthy.get(*p).copied().unwrap_or(true))
        .unwrap_or(started)
}

/// Tells the clients to stop when dropped (also while unwinding).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// Sent when a heal phase starts: probe the requests that need a cut link.
struct HealEvent {
    /// The heal phase.
    phase: usize,
    /// The fault it heals.
    fault: String,
    /// When the last namespace's rules were flushed.
    at: Instant,
    /// (node to ask, key) pairs: the node is one end of a cut link and the
    /// other end is a replica of the key, so an R=N get of the key through
    /// the node needs that link.
    probes: Vec<(usize, usize)>,
}

struct HealResult {
    fault: String,
    probes: usize,
    /// Heal to the end of the first successful probe.
    first_ok: Option<Duration>,
    /// Heal to the moment every probe had succeeded once (within the heal
    /// phase).
    all_ok: Option<Duration>,
}

struct Convergence {
    /// Per key, the final value: the union of what the last round's reads
    /// saw (every sibling of every node's answer).
    values: Vec<BTreeSet<u64>>,
    /// Per key, elements an earlier round saw that the last one did not.
    vanished: Vec<BTreeSet<u64>>,
    /// Whether the last round had every read answer, every node agree on
    /// every key, and nothing change since the round before.
    converged: bool,
    rounds: usize,
    took: Duration,
    /// Unparsable sibling parts seen (never written by the clients).
    garbage: Vec<String>,
    /// Errors of the last round, if it did not converge.
    last_errors: Vec<String>,
}

struct Outcome {
    ops: Vec<OpRecord>,
    writes: Vec<WriteRecord>,
    garbage: Vec<String>,
    heals: Vec<HealResult>,
    convergence: Convergence,
}

fn key_name(key: usize) -> Vec<u8> {
    format!("pk{key:02}").into_bytes()
}

/// A sibling is a comma-separated set of elements.
fn parse_into(value: &[u8], into: &mut BTreeSet<u64>, garbage: &mut Vec<String>) {
    let text = String::from_utf8_lossy(value);
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.parse() {
            Ok(e) => {
                into.insert(e);
            }
            Err(_) => garbage.push(part.to_owned()),
        }
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::Server { code, .. } => code.as_str().to_owned(),
        Error::TimedOut(_) => "client-wait".into(),
        Error::Closed => "closed".into(),
        Error::Io(_) => "io".into(),
        Error::Protocol(_) => "protocol".into(),
    }
}

/// The connection is gone: connect again.
fn broken(e: &Error) -> bool {
    matches!(e, Error::Closed | Error::Io(_))
}

async fn connect(addr: SocketAddr) -> Option<Client> {
    Client::connect(addr)
        .await
        .ok()
        .map(|c| c.with_wait(CLIENT_WAIT))
}

/// One read-modify-write client through one node, until told to stop.
async fn client_loop(
    index: usize,
    node: usize,
    addr: SocketAddr,
    shared: Arc<Shared>,
    seed: u64,
) -> (Vec<OpRecord>, Vec<WriteRecord>, Vec<String>) {
    let mut rng = SmallRng::seed_from_u64(seed ^ ((index as u64 + 1) << 32));
    let (mut ops, mut writes, mut garbage) = (Vec::new(), Vec::new(), Vec::new());
    let mut client: Option<Client> = None;
    let mut seq = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(c) = (match &client {
            Some(c) => Some(c.clone()),
            None => connect(addr).await,
        }) else {
            tokio::time::sleep(THINK).await;
            continue;
        };
        client = Some(c.clone());
        let key = rng.gen_range(0..KEYS);
        let (phase, at) = (shared.phase.load(Ordering::SeqCst), Instant::now());
        let found = c.get(&key_name(key)).await;
        ops.push(OpRecord {
            op: Op::Get,
            node,
            phase: counted_phase(phase, shared.phase.load(Ordering::SeqCst), &shared.phases),
            at,
            error: found.as_ref().err().map(describe),
            detail: found.as_ref().err().map(ToString::to_string),
        });
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                if broken(&e) {
                    client = None;
                }
                tokio::time::sleep(THINK).await;
                continue;
            }
        };
        let mut set = BTreeSet::new();
        for v in &found.values {
            parse_into(v, &mut set, &mut garbage);
        }
        seq += 1;
        let element = (index as u64 + 1) * ELEMENT_STRIDE + seq;
        set.insert(element);
        let value = set.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let (phase, at) = (shared.phase.load(Ordering::SeqCst), Instant::now());
        let put = c
            .put(&key_name(key), value.as_bytes(), found.context.as_ref())
            .await;
        ops.push(OpRecord {
            op: Op::Put,
            node,
            phase: counted_phase(phase, shared.phase.load(Ordering::SeqCst), &shared.phases),
            at,
            error: put.as_ref().err().map(describe),
            detail: put.as_ref().err().map(ToString::to_string),
        });
        writes.push(WriteRecord {
            key,
            element,
            acked: put.is_ok(),
        });
        if put.as_ref().is_err_and(broken) {
            client = None;
        }
        tokio::time::sleep(THINK).await;
    }
    (ops, writes, garbage)
}

/// After each heal, fires one R=N get every [`PROBE_EVERY`], round robin
/// over the heal's probes that have not succeeded yet, for as long as the
/// heal phase lasts.
async fn probe_heals(
    mut heals: mpsc::UnboundedReceiver<HealEvent>,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
) -> Vec<HealResult> {
    let all = RequestOptions {
        r: Some(REPLICAS),
        ..Default::default()
    };
    let mut clients: Vec<Option<Client>> = vec![None; addrs.len()];
    let mut results = Vec::new();
    while let Some(heal) = heals.recv().await {
        let done: Arc<Mutex<Vec<Option<Duration>>>> =
            Arc::new(Mutex::new(vec![None; heal.probes.len()]));
        let mut inflight = tokio::task::JoinSet::new();
        let mut next = 0;
        while shared.phase.load(Ordering::SeqCst) == heal.phase
            && !shared.stop.load(Ordering::SeqCst)
        {
            let pending: Vec<usize> = {
                let done = done.lock().unwrap();
                (0..heal.probes.len())
                    .filter(|&i| done[i].is_none())
                    .collect()
            };
            let Some(&i) = pending.iter().find(|&&i| i >= next).or(pending.first()) else {
                break;
            };
            next = i + 1;
            let (node, key) = heal.probes[i];
            if clients[node].is_none() {
                clients[node] = connect(addrs[node]).await;
            }
            if let Some(c) = clients[node].clone() {
                let (done, at) = (done.clone(), heal.at);
                inflight.spawn(async move {
                    let ok = c.get_with(&key_name(key), all).await.is_ok();
                    if ok {
                        let mut done = done.lock().unwrap();
                        done[i].get_or_insert(at.elapsed());
                    }
                });
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        inflight.abort_all();
        let done = done.lock().unwrap();
        results.push(HealResult {
            fault: heal.fault,
            probes: heal.probes.len(),
            first_ok: done.iter().flatten().min().copied(),
            all_ok: if done.iter().all(Option::is_some) {
                done.iter().flatten().max().copied()
            } else {
                None
            },
        });
    }
    results
}

/// Reads every key through every node with R=N, in rounds, until a round
/// where every read answered, all nodes agree on every key and nothing
/// changed since the round before (read repair, hinted handoff and
/// anti-entropy may need a few rounds), or [`CONVERGE_WAIT`] passes.
async fn converge(addrs: &[SocketAddr]) -> Convergence {
    let all = RequestOptions {
        r: Some(REPLICAS),
        ..Default::default()
    };
    let started = Instant::now();
    let mut clients: Vec<Option<Client>> = vec![None; addrs.len()];
    let mut ever = vec![BTreeSet::new(); KEYS];
    let mut previous: Option<Vec<BTreeSet<u64>>> = None;
    let mut garbage = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut errors = Vec::new();
        let mut agree = true;
        let mut values = vec![BTreeSet::new(); KEYS];
        for (key, union) in values.iter_mut().enumerate() {
            let mut first: Option<BTreeSet<u64>> = None;
            for (node, addr) in addrs.iter().enumerate() {
                if clients[node].is_none() {
                    clients[node] = connect(*addr).await;
                }
                let Some(c) = clients[node].clone() else {
                    errors.push(format!("n{}: cannot connect", node + 1));
                    continue;
                };
                match c.get_with(&key_name(key), all).await {
                    Ok(found) => {
                        let mut set = BTreeSet::new();
                        for v in &found.values {
                            parse_into(v, &mut set, &mut garbage);
                        }
                        agree &= first.as_ref().is_none_or(|f| *f == set);
                        union.extend(set.iter().copied());
                        first.get_or_insert(set);
                    }
                    Err(e) => {
                        if broken(&e) {
                            clients[node] = None;
                        }
                        errors.push(format!("pk{key:02} via n{}: {e}", node + 1));
                    }
                }
            }
            ever[key].extend(union.iter().copied());
        }
        let stable = previous.as_ref() == Some(&values);
        let converged = agree && stable && errors.is_empty();
        if converged || started.elapsed() > CONVERGE_WAIT {
            let vanished = ever
                .iter()
                .zip(&values)
                .map(|(e, v)| e.difference(v).copied().collect())
                .collect();
            return Convergence {
                values,
                vanished,
                converged,
                rounds,
                took: started.elapsed(),
                garbage,
                last_errors: errors,
            };
        }
        previous = Some(values);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The client thread's whole job: the clients and the heal probes until the
/// nemesis says stop, then the final convergence.
async fn workload(
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    heals: mpsc::UnboundedReceiver<HealEvent>,
    seed: u64,
) -> Outcome {
    let probes = tokio::spawn(probe_heals(heals, addrs.clone(), shared.clone()));
    let mut clients = tokio::task::JoinSet::new();
    for (node, addr) in addrs.iter().enumerate() {
        for k in 0..CLIENTS_PER_NODE {
            let index = node * CLIENTS_PER_NODE + k;
            clients.spawn(client_loop(index, node, *addr, shared.clone(), seed));
        }
    }
    let (mut ops, mut writes, mut garbage) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(done) = clients.join_next().await {
        let (o, w, g) = done.unwrap();
        ops.extend(o);
        writes.extend(w);
        garbage.extend(g);
    }
    let heals = probes.await.unwrap();
    let convergence = converge(&addrs).await;
    Outcome {
        ops,
        writes,
        garbage,
        heals,
        convergence,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Copies the node logs out of the cluster's temporary directory.
fn keep_logs(cluster: &NetCluster) -> PathBuf {
    let to = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("partition-{}", std::process::id()));
    std::fs::create_dir_all(&to).unwrap();
    for node in &cluster.cluster.nodes {
        let log = node.data_dir.with_extension("log");
        let _ = std::fs::copy(&log, to.join(format!("{}.log", node.id)));
    }
    to
}

/// Wall-clock time of day, UTC, as the node logs print it (to find a
/// phase's start in them).
fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let day_ms = now.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

fn pct(ok: usize, tries: usize) -> Option<f64> {
    (tries > 0).then(|| 100.0 * ok as f64 / tries as f64)
}

fn show_pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:.1}%"))
}

fn show_ms(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| format!("{} ms", d.as_millis()))
}

/// Counts per (phase, side, op): (successes, attempts, error counts).
type Tally = BTreeMap<(usize, &'static str, Op), (usize, usize, BTreeMap<String, usize>)>;

fn tally(ops: &[OpRecord], phases: &[Phase], starts: &[Instant]) -> Tally {
    let mut t: Tally = BTreeMap::new();
    for r in ops {
        let fault = &phases[r.phase].fault;
        let recovering = matches!(fault, Fault::Healthy)
            && r.phase > 0
            && starts
                .get(r.phase)
                .is_some_and(|s| r.at < *s + HEAL_RECOVERY);
        let side = if recovering {
            "recovering"
        } else {
            fault.side(r.node)
        };
        for side in if side == "all" || side == "recovering" {
            vec![side]
        } else {
            vec![side, "all"]
        } {
            let e = t.entry((r.phase, side, r.op)).or_default();
            e.1 += 1;
            match &r.error {
                None => e.0 += 1,
                Some(code) => *e.2.entry(code.clone()).or_default() += 1,
            }
        }
    }
    t
}

fn ratio(t: &Tally, phase: usize, side: &'static str, op: Op) -> (usize, usize) {
    t.get(&(phase, side, op)).map_or((0, 0), |e| (e.0, e.1))
}

/// The markdown-ish availability table.
fn availability_table(t: &Tally, phases: &[Phase]) -> String {
    let mut out = String::new();
    out.push_str("| # | phase | s | side | get ok/tries | get | put ok/tries | put | errors |\n");
    out.push_str("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |\n");
    for (i, phase) in phases.iter().enumerate() {
        let mut sides: Vec<&'static str> = phase.fault.sides().to_vec();
        if sides != ["all"] {
            sides.push("all");
        } else if i > 0 {
            sides.insert(0, "recovering");
        }
        for side in sides {
            let (gok, gtries) = ratio(t, i, side, Op::Get);
            let (pok, ptries) = ratio(t, i, side, Op::Put);
            let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
            for op in [Op::Get, Op::Put] {
                if let Some(e) = t.get(&(i, side, op)) {
                    for (code, n) in &e.2 {
                        *errors.entry(code).or_default() += n;
                    }
                }
            }
            let errors = errors
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(
                out,
                "| {i} | {} | {:.1} | {side} | {gok}/{gtries} | {} | {pok}/{ptries} | {} | {errors} |",
                label(phases, i),
                phase.duration.as_secs_f64(),
                show_pct(pct(gok, gtries)),
                show_pct(pct(pok, ptries)),
            )
            .unwrap();
        }
    }
    out
}

/// Per phase, side, op and error code: how many, when (seconds since the
/// phase started, by the request's start) and the first message.
fn error_samples(ops: &[OpRecord], phases: &[Phase], starts: &[Instant]) -> String {
    type Seen<'a> = (usize, f64, f64, &'a str);
    let mut seen: BTreeMap<(usize, &'static str, Op, &str), Seen> = BTreeMap::new();
    for r in ops {
        if let (Some(code), Some(detail)) = (&r.error, &r.detail) {
            let side = phases[r.phase].fault.side(r.node);
            let t =
                r.at.saturating_duration_since(starts[r.phase])
                    .as_secs_f64();
            let e = seen
                .entry((r.phase, side, r.op, code))
                .or_insert((0, t, t, detail));
            e.0 += 1;
            e.1 = e.1.min(t);
            e.2 = e.2.max(t);
        }
    }
    let mut out = String::new();
    for ((phase, side, op, _), (n, from, to, detail)) in seen {
        writeln!(
            out,
            "  phase {phase} {side} {op:?}: {n} from +{from:.2} s to +{to:.2} s; first: {detail}"
        )
        .unwrap();
    }
    out
}

/// A phase's name in the tables: a healthy phase after a fault is a heal.
fn label(phases: &[Phase], i: usize) -> String {
    match phases[i].fault {
        Fault::Healthy if i > 0 => "heal".into(),
        ref fault => fault.name(),
    }
}

fn heal_table(heals: &[HealResult]) -> String {
    let mut out = String::new();
    out.push_str("| heal of | probes | first ok | all ok |\n| --- | ---: | ---: | ---: |\n");
    for h in heals {
        writeln!(
            out,
            "| {} | {} | {} | {} |",
            h.fault,
            h.probes,
            show_ms(h.first_ok),
            show_ms(h.all_ok)
        )
        .unwrap();
    }
    out
}

/// The availability targets missed, one line each.
fn availability_misses(t: &Tally, phases: &[Phase], heals: &[HealResult]) -> Vec<String> {
    let mut misses = Vec::new();
    for (i, phase) in phases.iter().enumerate() {
        let Some((side, target)) = phase.fault.target() else {
            continue;
        };
        for op in [Op::Get, Op::Put] {
            let (ok, tries) = ratio(t, i, side, op);
            if let Some(p) = pct(ok, tries) {
                if p < target {
                    misses.push(format!(
                        "phase {i} ({}), {side}, {op:?}: {p:.2}% < {target}% ({ok}/{tries})",
                        label(phases, i)
                    ));
                }
            }
        }
    }
    for h in heals {
        if h.first_ok.is_none_or(|d| d > TARGET_HEAL_FIRST_OK) {
            misses.push(format!(
                "heal of {}: first ok after {} > {} ms",
                h.fault,
                show_ms(h.first_ok),
                TARGET_HEAL_FIRST_OK.as_millis()
            ));
        }
    }
    misses
}

#[test]
fn partitions_lose_no_acknowledged_write() {
    if let Some(why) = netns::unsupported() {
        eprintln!("\n!!!!! SKIPPED partition suite: {why}. Run it as root (CI does). !!!!!\n");
        return;
    }
    let seed = env_u64("RINGKV_PARTITION_SEED", DEFAULT_SEED);
    let seconds = env_u64("RINGKV_PARTITION_SECONDS", DEFAULT_SECONDS);
    let assert_availability =
        std::env::var("RINGKV_PARTITION_ASSERT_AVAILABILITY").as_deref() != Ok("0");
    println!("partition suite: seed {seed}, {seconds} s of workload");
    println!(
        "replay: RINGKV_PARTITION_SEED={seed} RINGKV_PARTITION_SECONDS={seconds} \
         cargo test --test partition -- --nocapture"
    );
    let net = match Net::create(NODES) {
        Ok(net) => net,
        Err(e) => {
            eprintln!(
                "\n!!!!! SKIPPED partition suite: cannot create network namespaces: {e} !!!!!\n"
            );
            return;
        }
    };
    let started = Instant::now();
    let mut cluster = NetCluster::start(net, NODE_FLAGS);
    cluster.wait_ready();
    println!("cluster ready in {:.1} s", started.elapsed().as_secs_f64());

    let mut rng = SmallRng::seed_from_u64(seed);
    let phases = schedule(&mut rng, Duration::from_secs(seconds));
    let ring = ring_of(NODES);
    let replicas: Vec<Vec<usize>> = (0..KEYS)
        .map(|k| {
            ring.preference_list(&key_name(k), REPLICAS)
                .iter()
                .map(|id: &NodeId| id.as_str()[1..].parse::<usize>().unwrap() - 1)
                .collect()
        })
        .collect();

    let shared = Arc::new(Shared {
        phase: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        phases: phases
            .iter()
            .map(|p| matches!(p.fault, Fault::Healthy))
            .collect(),
    });
    let stop_guard = StopOnDrop(shared.clone());
    let (heal_tx, heal_rx) = mpsc::unbounded_channel();
    let client = {
        let (addrs, shared) = (cluster.client_addrs(), shared.clone());
        netns::run_in(cluster.net.client(), "partition-client", move || {
            workload(addrs, shared, heal_rx, seed.wrapping_add(1))
        })
    };

    // The nemesis: this thread walks the schedule.
    let mut starts = Vec::new();
    for (i, phase) in phases.iter().enumerate() {
        // Requests that start while the rules change count for the new phase.
        let applying = Instant::now();
        starts.push(applying);
        shared.phase.store(i, Ordering::SeqCst);
        phase.fault.apply(&cluster);
        let at = Instant::now();
        println!(
            "[{:6.2} s, {}] phase {i}: {} for {:.1} s (rules changed in {} ms)",
            started.elapsed().as_secs_f64(),
            utc_now(),
            label(&phases, i),
            phase.duration.as_secs_f64(),
            (at - applying).as_millis()
        );
        let healed = &phases[i.saturating_sub(1)].fault;
        if i > 0 && matches!(phase.fault, Fault::Healthy) && !healed.cut_pairs().is_empty() {
            let mut probes = BTreeSet::new();
            for (a, b) in healed.cut_pairs() {
                for (x, y) in [(a, b), (b, a)] {
                    for (k, r) in replicas.iter().enumerate() {
                        if r.contains(&y) {
                            probes.insert((x, k));
                        }
                    }
                }
            }
            heal_tx
                .send(HealEvent {
                    phase: i,
                    fault: healed.name(),
                    at,
                    probes: probes.into_iter().collect(),
                })
                .unwrap();
        }
        std::thread::sleep(phase.duration.saturating_sub(at - applying));
    }
    Fault::Healthy.apply(&cluster);
    drop(stop_guard);
    drop(heal_tx);
    let outcome = client
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));

    // Report.
    let t = tally(&outcome.ops, &phases, &starts);
    println!("\n## Partition suite (seed {seed}, {seconds} s)\n");
    println!("{}", availability_table(&t, &phases));
    println!(
        "errors by phase, side, op and code (when: since the phase began):\n{}",
        error_samples(&outcome.ops, &phases, &starts)
    );
    println!("Time from a heal to a successful R={REPLICAS} get through one end of a cut link of a key replicated at the other end:\n");
    println!("{}", heal_table(&outcome.heals));
    let acked = outcome.writes.iter().filter(|w| w.acked).count();
    let c = &outcome.convergence;
    println!(
        "writes: {} attempted, {acked} acknowledged; convergence: {} after {} rounds, {:.1} s; whole run {:.1} s",
        outcome.writes.len(),
        if c.converged { "reached" } else { "NOT reached" },
        c.rounds,
        c.took.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );

    // Checks.
    let mut failures = Vec::new();
    let written: HashMap<u64, usize> = outcome.writes.iter().map(|w| (w.element, w.key)).collect();
    let mut lost: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for w in outcome.writes.iter().filter(|w| w.acked) {
        if !c.values[w.key].contains(&w.element) {
            lost.entry(w.key).or_default().push(w.element);
        }
    }
    let lost_count: usize = lost.values().map(Vec::len).sum();
    println!("acknowledged writes lost: {lost_count}");
    if lost_count > 0 {
        failures.push(format!("{lost_count} acknowledged writes lost: {lost:?}"));
    }
    let mut phantom: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for (key, values) in c.values.iter().enumerate() {
        for e in values {
            if written.get(e) != Some(&key) {
                phantom.entry(key).or_default().push(*e);
            }
        }
    }
    if !phantom.is_empty() {
        failures.push(format!("elements never written to their key: {phantom:?}"));
    }
    if !outcome.garbage.is_empty() || !c.garbage.is_empty() {
        failures.push(format!(
            "unparsable values read: {:?} {:?}",
            &outcome.garbage[..outcome.garbage.len().min(10)],
            &c.garbage[..c.garbage.len().min(10)]
        ));
    }
    if !c.converged {
        println!("convergence: last round's errors: {:?}", c.last_errors);
    }
    let vanished: usize = c.vanished.iter().map(BTreeSet::len).sum();
    if vanished > 0 {
        println!(
            "elements seen during convergence that the final round no longer saw: {vanished} {:?}",
            c.vanished
        );
    }
    for node in &mut cluster.cluster.nodes {
        let status = node.child.as_mut().map(|c| c.try_wait().unwrap());
        if !matches!(status, Some(None)) {
            failures.push(format!(
                "{} is not running ({status:?}); its log:\n{}",
                node.id,
                log_excerpt(node)
            ));
        }
    }
    let misses = availability_misses(&t, &phases, &outcome.heals);
    println!("\navailability targets missed: {}", misses.len());
    for m in &misses {
        println!("  {m}");
    }
    if assert_availability && !misses.is_empty() {
        failures.push(format!(
            "availability targets missed:\n{}",
            misses.join("\n")
        ));
    }
    if !failures.is_empty() || env_flag("RINGKV_PARTITION_KEEP_LOGS") {
        println!("node logs kept in {}", keep_logs(&cluster).display());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
