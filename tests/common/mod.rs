//! Test harness: real `ringkv node` processes on free loopback ports, each
//! with its own data dir, logs in files beside it; stopped on drop.
//! `netns` runs them in network namespaces instead; `faults`, `workload`
//! and `report` are the partition and nemesis suites' shared machinery.
#![allow(dead_code, clippy::unwrap_used)]

pub mod disk;
pub mod faults;
pub mod netns;
pub mod peer;
pub mod report;
pub mod sim;
pub mod workload;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringkv::Client;
use ringkv_actors::failure_detector::{FailureDetector, MemberState};
use ringkv_actors::ring::{Ring, RingMember, VNODES_PER_WEIGHT_DEFAULT};
use ringkv_actors::NodeId;

/// Per-request deadline given to the nodes: short, so failure paths are quick.
pub const REQUEST_TIMEOUT_MS: u64 = 1000;
/// Gossip round interval given to the nodes.
pub const GOSSIP_INTERVAL_MS: u64 = 100;
/// How long a test waits for a cluster to come up.
const READY_WAIT: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1 (bound and released), never one this test
/// process handed out before: the kernel may give a port just released
/// to the next `bind(0)`, and two nodes of one cluster must not share one.
pub fn free_addr() -> SocketAddr {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&addr.port()) {
            handed_out.push(addr.port());
            return addr;
        }
    }
}

/// One node process.
pub struct NodeProc {
    pub id: String,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
    /// `RUST_LOG` for the process (default `info`).
    pub log_filter: String,
    /// Network namespace to run in (`ip netns exec`, which execs: the
    /// child is still the node); `None` runs it here, on loopback.
    pub netns: Option<String>,
}

impl NodeProc {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_ringkv")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_ringkv")),
        };
        let child = command
            .args(&self.args)
            .env("RUST_LOG", &self.log_filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit (a clean shutdown).
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            let deadline = Instant::now() + READY_WAIT;
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("{} did not stop after SIGTERM", self.id);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGSTOP / SIGCONT.
    pub fn pause(&self, paused: bool) {
        if let Some(c) = &self.child {
            let sig = if paused { "-STOP" } else { "-CONT" };
            Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap();
        }
    }

    /// Starts the process again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts the process again on the same data dir with another peer
    /// port (`--listen`), as an operator moving a node would.
    pub fn restart_on(&mut self, peer: SocketAddr) {
        self.kill();
        let at = self.args.iter().position(|a| a == "--listen").unwrap();
        self.args[at + 1] = peer.to_string();
        self.peer = peer;
        self.spawn();
    }

    /// Waits until the node answers `ping` (a cluster is usable then).
    pub async fn wait_ping(&self) {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if let Ok(client) = Client::connect(self.client).await {
                if client.ping().await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} never answered ping; its log:\n{}",
                self.id,
                log_excerpt(self)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A key of the node's `status` answer (the extra keys: `hints_pending`,
    /// `minting`, `version_actor`, ...).
    pub async fn status_field(&self, name: &str) -> Option<rmpv::Value> {
        let status = self.client().await.status().await.ok()?;
        ringkv_actors::wire::client::map_field(&status.raw, name).cloned()
    }

    /// Points the node at another data dir (before it is started).
    pub fn move_data_dir(&mut self, dir: PathBuf) {
        let at = self.args.iter().position(|a| a == "--data-dir").unwrap();
        self.args[at + 1] = dir.display().to_string();
        self.data_dir = dir;
    }

    /// Whether the node's log holds `text`.
    pub fn log_contains(&self, text: &str) -> bool {
        std::fs::read_to_string(self.data_dir.with_extension("log"))
            .is_ok_and(|log| log.contains(text))
    }

    /// Whether one line of the node's log holds every one of `texts`.
    pub fn log_has_line(&self, texts: &[&str]) -> bool {
        std::fs::read_to_string(self.data_dir.with_extension("log"))
            .is_ok_and(|log| log.lines().any(|l| texts.iter().all(|t| l.contains(t))))
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.client)
            .await
            .unwrap()
            .with_wait(Duration::from_secs(10))
    }
}

/// What to show of a node's log in a failure: from its first panic on (a
/// node that panicked), else its last 40 lines.
pub fn log_excerpt(node: &NodeProc) -> String {
    let log = std::fs::read_to_string(node.data_dir.with_extension("log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let from = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .map_or(lines.len().saturating_sub(40), |p| p.saturating_sub(5));
    lines[from..]
        .iter()
        .take(80)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// A cluster of node processes.
pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    _dir: tempfile::TempDir,
}

impl NodeProc {
    fn planned(
        dir: &std::path::Path,
        id: &str,
        client: SocketAddr,
        peer: SocketAddr,
        seeds: &[String],
        extra: &[&str],
    ) -> NodeProc {
        let data_dir = dir.join(id);
        let mut args: Vec<String> = vec![
            "node".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            peer.to_string(),
            "--client-listen".into(),
            client.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--request-timeout-ms".into(),
            REQUEST_TIMEOUT_MS.to_string(),
            "--reconnect-backoff-max-ms".into(),
            "300".into(),
            // Fast gossip, so failure detection and joins take fractions
            // of a second.
            "--gossip-interval-ms".into(),
            GOSSIP_INTERVAL_MS.to_string(),
            "--suspect-after-ms".into(),
            // Twelve rounds: a loaded 2-core CI machine delays heartbeats, and a
            // falsely suspected node would stall `wait_all_alive`.
            (12 * GOSSIP_INTERVAL_MS).to_string(),
            "--join-settle-ms".into(),
            (3 * GOSSIP_INTERVAL_MS).to_string(),
        ];
        // A flag in `extra` replaces the harness's default for it (the
        // defaults, from the request timeout on, are flag-value pairs).
        let defaults_from = args
            .iter()
            .position(|a| a == "--request-timeout-ms")
            .unwrap_or(args.len());
        let mut kept = args.split_off(defaults_from);
        let mut i = 0;
        while i + 1 < kept.len() {
            if extra.contains(&kept[i].as_str()) {
                kept.drain(i..i + 2);
            } else {
                i += 2;
            }
        }
        args.extend(kept);
        if !seeds.is_empty() {
            args.push("--seeds".into());
            args.push(seeds.join(","));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        NodeProc {
            id: id.to_string(),
            client,
            peer,
            data_dir,
            args,
            child: None,
            log_filter: "info".to_owned(),
            netns: None,
        }
    }
}

impl Cluster {
    /// Starts `count` nodes (N=3 R=2 W=2 unless `extra` says otherwise) and
    /// waits until every node sees every other alive.
    pub async fn start(count: usize, extra: &[&str]) -> Cluster {
        let cluster = Self::spawn(count, extra);
        cluster.wait_all_alive().await;
        cluster
    }

    /// Starts `count` nodes, each seeded with the others, and returns at
    /// once (nothing waited for).
    pub fn spawn(count: usize, extra: &[&str]) -> Cluster {
        let mut cluster = Self::plan(count, extra);
        cluster.spawn_all();
        cluster
    }

    /// Starts every planned node that is not running.
    pub fn spawn_all(&mut self) {
        for node in self.nodes.iter_mut().filter(|n| n.child.is_none()) {
            node.spawn();
        }
    }

    /// Plans `count` nodes, each seeded with the others, without starting
    /// them (a test can change a node's flags or data dir first).
    pub fn plan(count: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let plan: Vec<(String, SocketAddr, SocketAddr)> = (1..=count)
            .map(|i| (format!("n{i}"), free_addr(), free_addr()))
            .collect();
        let mut nodes = Vec::new();
        for (id, client, peer) in &plan {
            let seeds: Vec<String> = plan
                .iter()
                .filter(|p| p.0 != *id)
                .map(|p| p.2.to_string())
                .collect();
            nodes.push(NodeProc::planned(
                dir.path(),
                id,
                *client,
                *peer,
                &seeds,
                extra,
            ));
        }
        Cluster { nodes, _dir: dir }
    }

    /// Gives every planned node a metrics endpoint on a free port; their
    /// addresses, in node order.
    pub fn add_metrics_listeners(&mut self) -> Vec<SocketAddr> {
        let mut addrs = Vec::new();
        for node in &mut self.nodes {
            let addr = free_addr();
            node.args
                .extend(["--metrics-listen".to_string(), addr.to_string()]);
            addrs.push(addr);
        }
        addrs
    }

    /// Waits until every running node answers `ping`.
    pub async fn wait_ping(&self) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            node.wait_ping().await;
        }
    }

    /// Starts one more node, fresh and seeded with node `seed`: it joins the
    /// running cluster. Does not wait for the join to finish.
    pub fn add_node(&mut self, seed: usize, extra: &[&str]) -> usize {
        let id = format!("n{}", self.nodes.len() + 1);
        let seeds = vec![self.nodes[seed].peer.to_string()];
        let mut node = NodeProc::planned(
            self._dir.path(),
            &id,
            free_addr(),
            free_addr(),
            &seeds,
            extra,
        );
        node.spawn();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Whether node `node` has persisted itself as alive (its membership
    /// file, written in the background after each change). A node killed
    /// before that restarts as joining and streams its ranges again.
    fn persisted_alive(node: &NodeProc) -> bool {
        if node.args.iter().any(|a| a.contains("memory")) {
            return true; // nothing is persisted
        }
        let path = node.data_dir.join("members.mpk");
        FailureDetector::load_members(&path).is_ok_and(|members| {
            members
                .iter()
                .any(|m| m.info.id.as_str() == node.id && m.record.status == MemberState::Alive)
        })
    }

    /// Waits until every running node reports every running node alive,
    /// and has persisted itself so (a kill from then on restarts it alive).
    pub async fn wait_all_alive(&self) {
        let running: Vec<&NodeProc> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
        let deadline = Instant::now() + READY_WAIT;
        // What the last pass waited for, for the failure message.
        let mut waiting_for = String::from("nothing yet");
        'outer: loop {
            if Instant::now() > deadline {
                let excerpt = running
                    .iter()
                    .find(|n| waiting_for.starts_with(&n.id))
                    .map(|n| log_excerpt(n))
                    .unwrap_or_default();
                panic!(
                    "cluster did not come up (waiting for {waiting_for}); logs in {:?}; its log:\n{excerpt}",
                    self._dir.path(),
                );
            }
            for node in &running {
                let Ok(client) = Client::connect(node.client).await else {
                    waiting_for = format!("{}: client port", node.id);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'outer;
                };
                let Ok(status) = client.status().await else {
                    waiting_for = format!("{}: status answer", node.id);
                    continue 'outer;
                };
                let alive: Vec<&str> = status
                    .members
                    .iter()
                    .filter(|m| m.state == "alive" && running.iter().any(|r| r.id == m.id))
                    .map(|m| m.id.as_str())
                    .collect();
                if alive.len() < running.len() {
                    waiting_for = format!("{}: sees only {alive:?} alive", node.id);
                } else if !Self::persisted_alive(node) {
                    waiting_for = format!("{}: members.mpk to show it alive", node.id);
                } else {
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue 'outer;
            }
            return;
        }
    }

    /// Waits until `observer` reports `node` in `state`.
    pub async fn wait_state(&self, observer: usize, node: &str, state: &str) {
        let deadline = Instant::now() + READY_WAIT;
        let client = self.nodes[observer].client().await;
        loop {
            let status = client.status().await.unwrap();
            if status
                .members
                .iter()
                .any(|m| m.id == node && m.state == state)
            {
                return;
            }
            assert!(Instant::now() < deadline, "{node} never became {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The directory holding data dirs and logs.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.pause(false);
            node.kill();
        }
    }
}

/// The ring the harness's nodes `n1..=count` build (weight 1, default
/// vnodes, one rack), to know which keys a node is a replica of.
pub fn ring_of(count: usize) -> Ring {
    let members: Vec<RingMember> = (1..=count)
        .map(|i| RingMember {
            id: NodeId::new(format!("n{i}")).unwrap(),
            dc: "dc1".into(),
            rack: "r1".into(),
            weight: 1,
        })
        .collect();
    Ring::new(&members, VNODES_PER_WEIGHT_DEFAULT)
}

impl Cluster {
    /// Stops every node but `alone`, then checks that `alone` by itself
    /// (R=1, so no other replica can answer) holds each key with its value.
    /// The other nodes stay stopped; restart them if the test goes on.
    pub async fn assert_holds_alone<'a>(
        &mut self,
        alone: usize,
        pairs: impl IntoIterator<Item = &'a (String, String)>,
    ) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if i != alone {
                node.kill();
            }
        }
        let client = self.nodes[alone].client().await;
        let one = ringkv::client::RequestOptions {
            r: Some(1),
            ..Default::default()
        };
        let id = self.nodes[alone].id.clone();
        for (k, v) in pairs {
            let found = match client.get_with(k.as_bytes(), one).await {
                Ok(found) => found,
                Err(e) => {
                    panic!(
                        "reading {k} from {id} alone failed: {e}; its log:\n{}",
                        log_excerpt(&self.nodes[alone])
                    );
                }
            };
            assert_eq!(
                found.values,
                vec![v.clone().into_bytes()],
                "{k} missing on {id}"
            );
        }
    }
}

/// Runs `ringkv admin --addr <addr> <args>`; its stdout (it must succeed).
pub fn admin(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["admin", "--addr", &addr.to_string()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "admin {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `GET path` from the HTTP endpoint at `addr` (the metrics endpoint)
/// over a fresh connection: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}
