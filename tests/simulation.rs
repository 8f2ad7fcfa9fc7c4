//! Deterministic simulation (turmoil, seeded): three real nodes — every
//! actor, the bridge, the client API — in one process over a simulated
//! network with simulated time. One node is partitioned away; writes and
//! reads at W=R=2 go on, W=3 times out, and after the partition heals a
//! read brings the lagging replica back in line. Five nodes detect a
//! partitioned node, and wall-clock steps neither make members flap nor
//! hide a dead one.
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringkv::config::NodeArgs;
use ringkv::node::{self, NodeEnv};
use ringkv_actors::clock::{SharedClock, TokioClock};
use ringkv_actors::storage::{MemoryEngine, StorageThreading};
use ringkv_actors::wire::client::{map_field, ClientOp, ErrorCode};
use rmpv::Value;

use common::sim::{any, SimClient, SteppedClock, TurmoilNet, CLIENT_PORT, PEER_PORT};

const NODES: [&str; 3] = ["n1", "n2", "n3"];
const FIVE: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];
/// Gossip timing of the simulated nodes (simulated milliseconds).
const GOSSIP_INTERVAL_MS: u64 = 100;
const SUSPECT_AFTER_MS: u64 = 600;

async fn run_node(id: &'static str) -> turmoil::Result {
    run_node_of(id, &NODES).await
}

/// The wall-clock reading every simulated node starts from.
const SIM_EPOCH_MS: u64 = 1_700_000_000_000;

async fn run_node_of(id: &'static str, cluster: &[&'static str]) -> turmoil::Result {
    run_node_with_clock(id, cluster, Rc::new(TokioClock::new(SIM_EPOCH_MS))).await
}

/// Runs node `id` of `cluster` on `clock` (the wall-clock tests step its
/// wall reading).
async fn run_node_with_clock(
    id: &'static str,
    cluster: &[&'static str],
    clock: SharedClock,
) -> turmoil::Result {
    let me = turmoil::lookup(id);
    let seeds = cluster
        .iter()
        .filter(|n| **n != id)
        .map(|n| SocketAddr::new(turmoil::lookup(*n), PEER_PORT))
        .collect();
    let config = NodeArgs {
        id: Some(id.into()),
        listen: Some(any(PEER_PORT)),
        advertise_addr: Some(SocketAddr::new(me, PEER_PORT)),
        client_listen: Some(any(CLIENT_PORT)),
        data_dir: Some(format!("/sim/{id}").into()),
        seeds: Some(seeds),
        request_timeout_ms: Some(500),
        reconnect_backoff_max_ms: Some(200),
        gossip_interval_ms: Some(GOSSIP_INTERVAL_MS),
        suspect_after_ms: Some(SUSPECT_AFTER_MS),
        cluster_secret_file: Some(common::sim::secret_file()),
        ..NodeArgs::default()
    }
    .validate()
    .unwrap();
    let env = NodeEnv {
        net: Rc::new(TurmoilNet),
        clock,
        engine: Arc::new(MemoryEngine::default()),
        members_file: None,
        storage_threading: StorageThreading::Inline,
        // Deterministic, and distinct per node as random ones would be.
        incarnation: ringkv_actors::ring::hash_bytes(config.id.as_str().as_bytes()) as u32,
        backend: ringkv_actors::storage::Backend::in_memory(),
        nonces: common::sim::nonces(id, 0),
    };
    let _node = node::start(&config, env, None).await.unwrap();
    std::future::pending::<()>().await;
    Ok(())
}

fn simulation(seed: u64) -> turmoil::Sim<'static> {
    // RUST_LOG=info shows every node's log lines (simulated time).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(60))
        .build();
    for id in NODES {
        sim.host(id, move || run_node(id));
    }
    sim
}

#[test]
fn put_and_get_with_one_node_partitioned_away() {
    for seed in [1, 7, 42] {
        let mut sim = simulation(seed);
        sim.client("client", async move {
            // Wait until n1 sees all three members.
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(stream) = turmoil::net::TcpStream::connect(("n1", CLIENT_PORT)).await {
                    drop(stream);
                    let mut c = SimClient::connect("n1").await;
                    if c.alive().await == 3 {
                        break;
                    }
                }
            }
            let mut n1 = SimClient::connect("n1").await;
            n1.put("before", "v0", 3).await.unwrap();

            turmoil::partition("n3", "n1");
            turmoil::partition("n3", "n2");
            // W=2 and R=2 are still met by n1 and n2.
            n1.put("during", "v1", 2).await.unwrap();
            let mut n2 = SimClient::connect("n2").await;
            assert_eq!(n2.get("during", 2).await.unwrap(), vec![b"v1".to_vec()]);
            assert_eq!(n2.get("before", 2).await.unwrap(), vec![b"v0".to_vec()]);
            // W=3 cannot be met: refused, not a hang. Once n1's own view
            // has n3 cut off (a request to it timed out) the refusal comes
            // up front (`unavailable`, nothing written); before, the write
            // waits for n3 and times out.
            let err = n1.put("during", "v2", 3).await.unwrap_err();
            assert!(
                matches!(err.code, ErrorCode::Timeout | ErrorCode::Unavailable),
                "{err}"
            );

            turmoil::repair("n3", "n1");
            turmoil::repair("n3", "n2");
            // Once n3 answers again, R=3 sees it (read repair brings it up
            // to date; its answer alone would lack "v1").
            let mut n3 = SimClient::connect("n3").await;
            loop {
                match n3.get("during", 3).await {
                    Ok(values) => {
                        assert!(values.contains(&b"v1".to_vec()), "{values:?}");
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            Ok(())
        });
        sim.run().unwrap();
    }
}

/// Waits (simulated time) until every node but `except` reports `node` in
/// `state`; returns how long that took.
async fn until_everyone_sees(nodes: &[&str], except: &str, node: &str, state: &str) -> Duration {
    let started = tokio::time::Instant::now();
    for observer in nodes.iter().filter(|n| **n != except) {
        let mut c = SimClient::connect(observer).await;
        while c.state_of(node).await != state {
            tokio::time::sleep(Duration::from_millis(GOSSIP_INTERVAL_MS / 2)).await;
        }
    }
    started.elapsed()
}

fn five_node_simulation(seed: u64) -> turmoil::Sim<'static> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .build();
    for id in FIVE {
        sim.host(id, move || run_node_of(id, &FIVE));
    }
    sim
}

async fn wait_five_alive() {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if turmoil::net::TcpStream::connect(("n1", CLIENT_PORT))
            .await
            .is_ok()
        {
            let mut c = SimClient::connect("n1").await;
            if c.alive().await == FIVE.len() {
                break;
            }
        }
    }
}

#[test]
fn five_nodes_mark_a_partitioned_node_down_and_alive_when_healed() {
    for seed in [3, 11] {
        let mut sim = five_node_simulation(seed);
        sim.client("client", async move {
            wait_five_alive().await;
            for other in &FIVE[..4] {
                turmoil::partition("n5", *other);
            }
            let took = until_everyone_sees(&FIVE, "n5", "n5", "down").await;
            // Suspicion after SUSPECT_AFTER_MS, then a few gossip rounds
            // for a second opinion to arrive.
            let bound = Duration::from_millis(SUSPECT_AFTER_MS + 10 * GOSSIP_INTERVAL_MS);
            eprintln!("seed {seed}: every node saw n5 down after {took:?} (simulated)");
            assert!(
                took <= bound,
                "seed {seed}: took {took:?} to mark n5 down (bound {bound:?})"
            );
            // n5, alone, cannot corroborate: it never marks anyone down.
            for other in &FIVE[..4] {
                turmoil::repair("n5", *other);
            }
            until_everyone_sees(&FIVE, "n5", "n5", "alive").await;
            let mut c5 = SimClient::connect("n5").await;
            assert!(c5.states().await.iter().all(|(_, s)| s == "alive"));
            Ok(())
        });
        sim.run().unwrap();
    }
}

#[test]
fn one_node_that_cannot_hear_a_peer_does_not_take_it_down() {
    let mut sim = five_node_simulation(5);
    sim.client("client", async move {
        wait_five_alive().await;
        // n1 no longer hears n5 directly; everyone else does.
        turmoil::partition_oneway("n5", "n1");
        tokio::time::sleep(Duration::from_millis(10 * SUSPECT_AFTER_MS)).await;
        for observer in FIVE {
            let mut c = SimClient::connect(observer).await;
            let state = c.state_of("n5").await;
            assert_ne!(
                state, "down",
                "{observer} took n5 down on one node's say-so"
            );
        }
        Ok(())
    });
    sim.run().unwrap();
}

/// The simulated cluster's ring (every node weight 1, default vnodes).
fn five_ring() -> ringkv_actors::ring::Ring {
    let members: Vec<_> = FIVE
        .iter()
        .map(|id| ringkv_actors::ring::RingMember {
            id: ringkv_actors::NodeId::new(*id).unwrap(),
            dc: "dc1".into(),
            rack: "r1".into(),
            weight: 1,
        })
        .collect();
    ringkv_actors::ring::Ring::new(&members, ringkv_actors::ring::VNODES_PER_WEIGHT_DEFAULT)
}

#[test]
fn a_bridge_partition_uses_stand_ins_while_gossip_sees_everyone_alive() {
    // A key that n1, n4 and n5 replicate: cut {n1,n3} from {n4,n5} (both
    // still reach n2), and n1 can reach only itself among its replicas.
    let ring = five_ring();
    let key = (0..10_000)
        .map(|i| format!("bridge-{i}"))
        .find(|k| {
            let mut list: Vec<String> = ring
                .preference_list(k.as_bytes(), 3)
                .iter()
                .map(|n| n.to_string())
                .collect();
            list.sort();
            list == ["n1", "n4", "n5"]
        })
        .unwrap();
    for seed in [2, 9] {
        let key = key.clone();
        let mut sim = five_node_simulation(seed);
        sim.client("client", async move {
            wait_five_alive().await;
            for (a, b) in [("n1", "n4"), ("n1", "n5"), ("n3", "n4"), ("n3", "n5")] {
                turmoil::partition(a, b);
            }
            let mut n1 = SimClient::connect("n1").await;
            // W=3 and R=3 need three copies: only n1 itself and the
            // stand-ins n2 and n3 can give them from here.
            n1.put(&key, "v", 3).await.unwrap();
            assert_eq!(n1.get(&key, 3).await.unwrap(), vec![b"v".to_vec()]);
            // Gossip through n2 keeps every heartbeat fresh: nobody is
            // suspected, so the stand-ins came from n1's own view.
            let states = n1.states().await;
            assert!(
                states.iter().all(|(_, s)| s == "alive"),
                "seed {seed}: {states:?}"
            );
            // Healed, the hints reach n4 and n5.
            for (a, b) in [("n1", "n4"), ("n1", "n5"), ("n3", "n4"), ("n3", "n5")] {
                turmoil::repair(a, b);
            }
            let mut n4 = SimClient::connect("n4").await;
            loop {
                let values = n4.get(&key, 3).await;
                if values.as_deref() == Ok(&[b"v".to_vec()][..]) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(GOSSIP_INTERVAL_MS)).await;
            }
            Ok(())
        });
        sim.run().unwrap();
    }
}

/// A wall-clock step of one hour, in ms: an NTP correction after a long
/// drift, or an operator's `date -s`.
const HOUR_MS: i64 = 3_600_000;

/// Five nodes whose wall clocks the test steps through the returned
/// handles (one per node, in ms).
fn five_node_simulation_with_wall_steps(
    seed: u64,
) -> (turmoil::Sim<'static>, HashMap<&'static str, Arc<AtomicI64>>) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .build();
    let mut steps = HashMap::new();
    for id in FIVE {
        let wall_step_ms = Arc::new(AtomicI64::new(0));
        steps.insert(id, wall_step_ms.clone());
        sim.host(id, move || {
            let clock = Rc::new(SteppedClock {
                simulated: TokioClock::new(SIM_EPOCH_MS),
                wall_step_ms: wall_step_ms.clone(),
            });
            run_node_with_clock(id, &FIVE, clock)
        });
    }
    (sim, steps)
}

/// Waits until every node sees all five members alive.
async fn wait_everyone_sees_five_alive() {
    wait_five_alive().await;
    for observer in FIVE {
        let mut c = SimClient::connect(observer).await;
        while c.alive().await != FIVE.len() {
            tokio::time::sleep(Duration::from_millis(GOSSIP_INTERVAL_MS / 2)).await;
        }
    }
}

/// Every member's state and heartbeat age (ms) as `observer` reports them.
async fn rows(c: &mut SimClient) -> Vec<(String, String, u64)> {
    let body = c.call(ClientOp::Status).await.unwrap();
    let Some(Value::Array(members)) = map_field(&body, "members") else {
        return Vec::new();
    };
    members
        .iter()
        .map(|m| {
            let text = |k| {
                map_field(m, k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let age = map_field(m, "heartbeat_age_ms").and_then(Value::as_u64);
            (text("id"), text("state"), age.unwrap_or(0))
        })
        .collect()
}

/// Polls every node's `status` for `watch` (simulated time), all nodes at
/// once, and returns each sighting of a member `suspect` or `down`, or
/// with a heartbeat age of `SUSPECT_AFTER_MS` or more (about to be).
async fn flapping_seen(watch: Duration) -> Vec<String> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let started = tokio::time::Instant::now();
    let pollers: Vec<_> = FIVE
        .iter()
        .map(|observer| {
            let seen = seen.clone();
            tokio::task::spawn_local(async move {
                let mut c = SimClient::connect(observer).await;
                while started.elapsed() < watch {
                    for (member, state, age_ms) in rows(&mut c).await {
                        if member != *observer
                            && (state == "suspect" || state == "down" || age_ms >= SUSPECT_AFTER_MS)
                        {
                            seen.borrow_mut().push(format!(
                                "{:?}: {observer} sees {member} {state}, heartbeat age {age_ms} ms",
                                started.elapsed()
                            ));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for poller in pollers {
        poller.await.unwrap();
    }
    seen.take()
}

#[test]
fn wall_clock_steps_make_no_member_flap() {
    for seed in [4, 21] {
        let (mut sim, steps) = five_node_simulation_with_wall_steps(seed);
        sim.client("client", async move {
            wait_everyone_sees_five_alive().await;
            let mut n1 = SimClient::connect("n1").await;
            n1.put("before", "v0", 3).await.unwrap();
            steps["n2"].store(-HOUR_MS, Ordering::Relaxed);
            steps["n3"].store(HOUR_MS, Ordering::Relaxed);
            // Ten suspicion timeouts: any age the steps distort shows.
            let seen = flapping_seen(Duration::from_millis(10 * SUSPECT_AFTER_MS)).await;
            assert!(
                seen.is_empty(),
                "seed {seed}: after the wall-clock steps ({} sightings):\n{}",
                seen.len(),
                seen.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
            );
            // Writes and reads through the stepped nodes, at every replica.
            for (node, key) in [("n2", "behind"), ("n3", "ahead")] {
                let mut c = SimClient::connect(node).await;
                c.put(key, node, 3).await.unwrap();
                assert_eq!(c.get(key, 3).await.unwrap(), vec![node.as_bytes().to_vec()]);
                assert_eq!(c.get("before", 3).await.unwrap(), vec![b"v0".to_vec()]);
            }
            Ok(())
        });
        sim.run().unwrap();
    }
}

#[test]
fn a_node_whose_wall_clock_stepped_back_still_sees_a_dead_member() {
    for seed in [6, 17] {
        let (mut sim, steps) = five_node_simulation_with_wall_steps(seed);
        sim.client("client", async move {
            wait_everyone_sees_five_alive().await;
            steps["n2"].store(-HOUR_MS, Ordering::Relaxed);
            for other in &FIVE[..4] {
                turmoil::partition("n5", *other);
            }
            // The bound of the five-node partition test, twice over.
            let bound = Duration::from_millis(2 * (SUSPECT_AFTER_MS + 10 * GOSSIP_INTERVAL_MS));
            let took = tokio::time::timeout(bound, until_everyone_sees(&FIVE, "n5", "n5", "down"))
                .await;
            let mut n2 = SimClient::connect("n2").await;
            let n2_sees = n2.state_of("n5").await;
            assert!(
                took.is_ok(),
                "seed {seed}: n5 not down everywhere within {bound:?}; n2 (wall clock an hour back) sees it {n2_sees}"
            );
            Ok(())
        });
        sim.run().unwrap();
    }
}
