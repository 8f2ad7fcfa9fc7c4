//! The suites' workload: read-modify-write set-add clients through every
//! node, heal probes, the final convergence reads, and the checker (no
//! acknowledged write lost, nothing never written, every node running).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringkv::client::{Error, RequestOptions};
use ringkv::Client;
use tokio::sync::mpsc;

use super::netns::NetCluster;
use super::{log_excerpt, REQUEST_TIMEOUT_MS};

/// N of the suites' clusters (N=3, R=W=2).
pub const REPLICAS: usize = 3;
/// Read-modify-write clients per node (each with its own connection).
pub const CLIENTS_PER_NODE: usize = 2;
/// Client-side wait per request: a hung request becomes a failure.
const CLIENT_WAIT: Duration = Duration::from_millis(2 * REQUEST_TIMEOUT_MS + 500);
/// Element `e` was written by client `e / ELEMENT_STRIDE - 1`.
const ELEMENT_STRIDE: u64 = 1_000_000;
/// After a heal: one probe request every this long.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// How long the final convergence may take.
const CONVERGE_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Get,
    Put,
}

/// One request of the workload.
pub struct OpRecord {
    pub op: Op,
    /// The node it went through.
    pub node: usize,
    /// The phase it counts for: the one active when it started, or the
    /// fault that began while it was in flight (a request cut off by a
    /// fault's start is the fault's, not the healthy phase's).
    pub phase: usize,
    /// When it started.
    pub at: Instant,
    /// `None` = success; else the error, short (`connect`: the node's
    /// client port refused the connection, counted as a failed get).
    pub error: Option<String>,
    /// The error in full (the node's message).
    pub detail: Option<String>,
}

/// One put: the element it added and whether the put was acknowledged.
pub struct WriteRecord {
    pub key: usize,
    pub element: u64,
    pub acked: bool,
}

/// State the nemesis (the test thread) shares with the client thread.
pub struct Shared {
    pub phase: AtomicUsize,
    pub stop: AtomicBool,
    /// Per phase, whether it is a healthy one (no fault).
    pub phases: Vec<bool>,
    /// How many keys the clients write.
    pub keys: usize,
    /// A client's pause between two operations (and after a failed get or
    /// connect).
    pub think: Duration,
}

impl Shared {
    pub fn new(healthy: Vec<bool>, keys: usize, think: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            phases: healthy,
            keys,
            think,
        })
    }
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
pub struct StopOnDrop(pub Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// Sent when a heal phase starts: probe the requests that need a cut link.
pub struct HealEvent {
    /// The heal phase.
    pub phase: usize,
    /// The fault it heals.
    pub fault: String,
    /// When the last namespace's rules were flushed.
    pub at: Instant,
    /// (node to ask, key) pairs: the node is one end of a cut link and the
    /// other end is a replica of the key, so an R=N get of the key through
    /// the node needs that link.
    pub probes: Vec<(usize, usize)>,
}

pub struct HealResult {
    pub fault: String,
    pub probes: usize,
    /// Heal to the end of the first successful probe.
    pub first_ok: Option<Duration>,
    /// Heal to the moment every probe had succeeded once (within the heal
    /// phase).
    pub all_ok: Option<Duration>,
}

pub struct Convergence {
    /// Per key, the final value: the union of what the last round's reads
    /// saw (every sibling of every node's answer).
    pub values: Vec<BTreeSet<u64>>,
    /// Per key, elements an earlier round saw that the last one did not.
    pub vanished: Vec<BTreeSet<u64>>,
    /// Whether the last round had every read answer, every node agree on
    /// every key, and nothing change since the round before.
    pub converged: bool,
    pub rounds: usize,
    pub took: Duration,
    /// Unparsable sibling parts seen (never written by the clients).
    pub garbage: Vec<String>,
    /// Errors of the last round, if it did not converge.
    pub last_errors: Vec<String>,
}

pub struct Outcome {
    pub ops: Vec<OpRecord>,
    pub writes: Vec<WriteRecord>,
    pub garbage: Vec<String>,
    pub heals: Vec<HealResult>,
    pub convergence: Convergence,
}

pub fn key_name(key: usize) -> Vec<u8> {
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
        Error::Tls(_) => "tls".into(),
    }
}

/// The connection is gone: connect again.
fn broken(e: &Error) -> bool {
    matches!(e, Error::Closed | Error::Io(_))
}

async fn connect(addr: SocketAddr) -> Result<Client, Error> {
    Client::connect(addr)
        .await
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
    let record = |op, started: usize, at, result: Result<(), &Error>| OpRecord {
        op,
        node,
        phase: counted_phase(started, shared.phase.load(Ordering::SeqCst), &shared.phases),
        at,
        error: result.err().map(describe),
        detail: result.err().map(ToString::to_string),
    };
    while !shared.stop.load(Ordering::SeqCst) {
        let c = match &client {
            Some(c) => c.clone(),
            None => {
                let (phase, at) = (shared.phase.load(Ordering::SeqCst), Instant::now());
                match connect(addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        let mut r = record(Op::Get, phase, at, Err(&e));
                        r.error = Some("connect".into());
                        ops.push(r);
                        tokio::time::sleep(shared.think).await;
                        continue;
                    }
                }
            }
        };
        client = Some(c.clone());
        let key = rng.gen_range(0..shared.keys);
        let (phase, at) = (shared.phase.load(Ordering::SeqCst), Instant::now());
        let found = c.get(&key_name(key)).await;
        ops.push(record(Op::Get, phase, at, found.as_ref().map(|_| ())));
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                if broken(&e) {
                    client = None;
                }
                tokio::time::sleep(shared.think).await;
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
        ops.push(record(Op::Put, phase, at, put.as_ref().map(|_| ())));
        writes.push(WriteRecord {
            key,
            element,
            acked: put.is_ok(),
        });
        if put.as_ref().is_err_and(broken) {
            client = None;
        }
        tokio::time::sleep(shared.think).await;
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
                clients[node] = connect(addrs[node]).await.ok();
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
async fn converge(addrs: &[SocketAddr], keys: usize) -> Convergence {
    let all = RequestOptions {
        r: Some(REPLICAS),
        ..Default::default()
    };
    let started = Instant::now();
    let mut clients: Vec<Option<Client>> = vec![None; addrs.len()];
    let mut ever = vec![BTreeSet::new(); keys];
    let mut previous: Option<Vec<BTreeSet<u64>>> = None;
    let mut garbage = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut errors = Vec::new();
        let mut agree = true;
        let mut values = vec![BTreeSet::new(); keys];
        for (key, union) in values.iter_mut().enumerate() {
            let mut first: Option<BTreeSet<u64>> = None;
            for (node, addr) in addrs.iter().enumerate() {
                if clients[node].is_none() {
                    clients[node] = connect(*addr).await.ok();
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
pub async fn workload(
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
    let convergence = converge(&addrs, shared.keys).await;
    Outcome {
        ops,
        writes,
        garbage,
        heals,
        convergence,
    }
}

/// The checks every suite makes once the workload is done: prints the
/// writes and convergence line and `acknowledged writes lost: L of A`,
/// returns what failed (empty: every acknowledged element is in its key's
/// final value, nothing never written or unparsable was read, every node
/// process is running).
pub fn check(outcome: &Outcome, cluster: &mut NetCluster) -> Vec<String> {
    let acked = outcome.writes.iter().filter(|w| w.acked).count();
    let c = &outcome.convergence;
    println!(
        "writes: {} attempted, {acked} acknowledged; convergence: {} after {} rounds, {:.1} s",
        outcome.writes.len(),
        if c.converged {
            "reached"
        } else {
            "NOT reached"
        },
        c.rounds,
        c.took.as_secs_f64(),
    );
    let mut failures = Vec::new();
    let written: HashMap<u64, usize> = outcome.writes.iter().map(|w| (w.element, w.key)).collect();
    let mut lost: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for w in outcome.writes.iter().filter(|w| w.acked) {
        if !c.values[w.key].contains(&w.element) {
            lost.entry(w.key).or_default().push(w.element);
        }
    }
    let lost_count: usize = lost.values().map(Vec::len).sum();
    println!("acknowledged writes lost: {lost_count} of {acked}");
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
    failures
}
