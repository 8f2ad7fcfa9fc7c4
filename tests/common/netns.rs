//! Network namespaces for process-level partition tests (root only).
//!
//! Topology, all of it inside namespaces this test process creates (named
//! `rkvp<pid>-*`): a "switch" namespace holding a Linux bridge `br0`; one
//! namespace per node and one for the test client, each with `lo` up and an
//! `eth0` whose veth peer is a port of `br0` in the switch namespace;
//! addresses in 10.77.0.0/24, only ever configured inside those namespaces.
//! Nothing is added to the root namespace (no interface, route or rule).
//!
//! Faults are iptables DROP rules inside the node namespaces
//! ([`Net::set_blocks`]); the client namespace is never filtered, so the
//! test client always reaches every node's client port.
//!
//! Everything is undone on drop (also while unwinding from a panic): the
//! nodes are killed first ([`NetCluster`] drops its `Cluster` before its
//! `Net`), then the namespaces are deleted, which removes their veths,
//! bridge and rules with them.

use std::future::Future;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringkv::Client;

use super::disk::Tmpfs;
use super::{log_excerpt, Cluster, NodeProc};

/// Node peer port (every node has its own address, so ports can be fixed).
pub const PEER_PORT: u16 = 7100;
/// Node client port.
pub const CLIENT_PORT: u16 = 7000;
/// How long a node gets to answer its first `ping`.
const READY_WAIT: Duration = Duration::from_secs(30);

/// Address of node `i` (0-based) inside its namespace.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 11 + u8::try_from(i).unwrap())
}

/// Address of the test client inside its namespace.
pub fn client_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 200)
}

/// Why these tests cannot run here, if they cannot: they need root (to
/// create namespaces and iptables rules).
pub fn unsupported() -> Option<String> {
    if rustix::process::geteuid().is_root() {
        None
    } else {
        Some("not running as root (network namespaces and iptables need it)".into())
    }
}

/// Runs `ip` with `args`; the error is its stderr (or why it did not start).
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// The namespaces of one test: a switch, one per node, one for the client.
pub struct Net {
    switch: String,
    nodes: Vec<String>,
    client: String,
    /// Every namespace created so far, deleted on drop.
    created: Vec<String>,
}

impl Net {
    /// Creates the topology for `nodes` nodes. `Err` only when the very first
    /// `ip netns add` fails (no permission, no `ip`): the caller skips. Any
    /// later failure panics, after deleting what was created.
    pub fn create(nodes: usize) -> Result<Net, String> {
        let prefix = format!("rkvp{}", std::process::id());
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch])?;
        let mut net = Net {
            switch: switch.clone(),
            nodes: Vec::new(),
            client: format!("{prefix}-cl"),
            created: vec![switch.clone()],
        };
        ip_ok(&["-n", &switch, "link", "set", "lo", "up"]);
        ip_ok(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip_ok(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..nodes {
            let ns = format!("{prefix}-n{}", i + 1);
            net.attach(&ns, &format!("p{}", i + 1), node_ip(i));
            net.nodes.push(ns);
        }
        let client = net.client.clone();
        net.attach(&client, "pc", client_ip());
        Ok(net)
    }

    /// Creates namespace `ns` with `lo` up and `eth0` (address `addr`/24)
    /// plugged into the bridge as port `port`. The veth pair is created
    /// inside `ns` with its peer end placed straight into the switch.
    fn attach(&mut self, ns: &str, port: &str, addr: Ipv4Addr) {
        ip_ok(&["netns", "add", ns]);
        self.created.push(ns.to_owned());
        let sw = self.switch.clone();
        ip_ok(&["-n", ns, "link", "set", "lo", "up"]);
        ip_ok(&[
            "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", &sw,
        ]);
        ip_ok(&["-n", &sw, "link", "set", port, "master", "br0"]);
        ip_ok(&["-n", &sw, "link", "set", port, "up"]);
        ip_ok(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip_ok(&["-n", ns, "link", "set", "eth0", "up"]);
    }

    /// Namespace of node `i` (0-based).
    pub fn node(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// Namespace of the test client.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// Replaces the filter table of every node namespace: node `i` drops
    /// packets from the nodes in `blocks[i].0` and to those in `blocks[i].1`
    /// (no rules for a node = a flushed table, i.e. healed). One
    /// `iptables-restore` per namespace, so each node's rules change at once,
    /// all started before any is waited for, so the namespaces change
    /// within a few milliseconds of each other.
    pub fn set_blocks(&self, blocks: &[(Vec<usize>, Vec<usize>)]) {
        assert_eq!(blocks.len(), self.nodes.len());
        let running: Vec<(&String, String, Child)> = self
            .nodes
            .iter()
            .zip(blocks)
            .map(|(ns, (from, to))| {
                let mut table = String::from(
                    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
                );
                for &n in from {
                    table.push_str(&format!("-A INPUT -s {}/32 -j DROP\n", node_ip(n)));
                }
                for &n in to {
                    table.push_str(&format!("-A OUTPUT -d {}/32 -j DROP\n", node_ip(n)));
                }
                table.push_str("COMMIT\n");
                let child = start_restore(ns, &table);
                (ns, table, child)
            })
            .collect();
        for (ns, table, child) in running {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "iptables-restore in {ns} failed ({}): {} (is iptables installed? .ci/run installs it)\n{table}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// Starts `iptables-restore` of `table` inside namespace `ns` (as root, a
/// missing iptables is a broken machine: `.ci/run` installs it).
fn start_restore(ns: &str, table: &str) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "iptables-restore", "-w", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ip netns exec {ns} iptables-restore: {e}"));
    // Dropping stdin after the write closes it: the table is complete.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
    child
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Runs the future `make` builds on a new thread that first moves itself
/// into network namespace `ns`, on its own current-thread tokio runtime:
/// every socket the future opens lives in `ns`.
pub fn run_in<T, F>(
    ns: &str,
    name: &str,
    make: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let ns = ns.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || block_on_in(&ns, make))
        .unwrap()
}

/// The scoped form of [`run_in`], for futures that borrow.
pub fn run_scoped_in<'scope, T, F>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    ns: &str,
    make: impl FnOnce() -> F + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T>
where
    T: Send + 'scope,
    F: Future<Output = T>,
{
    let ns = ns.to_owned();
    scope.spawn(move || block_on_in(&ns, make))
}

fn block_on_in<F: Future>(ns: &str, make: impl FnOnce() -> F) -> F::Output {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("setns({path}): {e}"));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(make())
}

/// A harness [`Cluster`] whose nodes each run in their own namespace.
/// Field order matters: the cluster (its processes) drops before the net,
/// and the net before the disks.
pub struct NetCluster {
    pub cluster: Cluster,
    pub net: Net,
    /// Per node, the tmpfs its data dir is on (empty: the real disk).
    pub disks: Vec<Tmpfs>,
}

impl NetCluster {
    /// Starts one node per node namespace of `net`, node `i` as `n{i+1}` on
    /// [`node_ip`], seeded with every other node, with the harness's flags
    /// plus `extra`. Does not wait: see [`NetCluster::wait_ready`].
    pub fn start(net: Net, extra: &[&str]) -> NetCluster {
        Self::start_with(net, extra, None)
    }

    /// [`NetCluster::start`], with each node's data dir on its own tmpfs of
    /// `disk_bytes` bytes if given (so that a test can fill it).
    pub fn start_with(net: Net, extra: &[&str], disk_bytes: Option<u64>) -> NetCluster {
        let dir = tempfile::tempdir().unwrap();
        // The nodes listen on namespace addresses, not loopback: without a
        // cluster secret they would refuse to start (protected mode).
        let secret = dir.path().join("cluster-secret");
        std::fs::write(&secret, "6e".repeat(32)).unwrap();
        let secret = secret.display().to_string();
        let extra: Vec<&str> = ["--cluster-secret-file", secret.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let extra = extra.as_slice();
        let count = net.nodes.len();
        let peer = |i: usize| SocketAddr::new(node_ip(i).into(), PEER_PORT);
        let mut nodes = Vec::new();
        for i in 0..count {
            let seeds: Vec<String> = (0..count)
                .filter(|&j| j != i)
                .map(|j| peer(j).to_string())
                .collect();
            let client = SocketAddr::new(node_ip(i).into(), CLIENT_PORT);
            let id = format!("n{}", i + 1);
            let mut node = NodeProc::planned(dir.path(), &id, client, peer(i), &seeds, extra);
            node.netns = Some(net.node(i).to_owned());
            nodes.push(node);
        }
        let mut disks = Vec::new();
        if let Some(bytes) = disk_bytes {
            for node in &mut nodes {
                let disk = Tmpfs::mount(bytes);
                node.move_data_dir(disk.path());
                disks.push(disk);
            }
        }
        let mut this = NetCluster {
            cluster: Cluster { nodes, _dir: dir },
            net,
            disks,
        };
        for node in &mut this.cluster.nodes {
            node.spawn();
        }
        this
    }

    /// Client addresses of the nodes, in order.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.cluster.nodes.iter().map(|n| n.client).collect()
    }

    /// From the client namespace: waits until every node answers `ping`,
    /// then until every node sees every other alive (the harness's
    /// `wait_all_alive`).
    pub fn wait_ready(&self) {
        let cluster = &self.cluster;
        std::thread::scope(|s| {
            run_scoped_in(s, self.net.client(), move || async move {
                for node in &cluster.nodes {
                    let deadline = Instant::now() + READY_WAIT;
                    loop {
                        if let Ok(c) = Client::connect(node.client).await {
                            if c.with_wait(Duration::from_secs(1)).ping().await.is_ok() {
                                break;
                            }
                        }
                        assert!(
                            Instant::now() < deadline,
                            "{} never answered ping; its log:\n{}",
                            node.id,
                            log_excerpt(node)
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                cluster.wait_all_alive().await;
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        });
    }

    /// Runs the future `make` builds from the client namespace (where every
    /// node's client port is reachable), on a thread of its own, and
    /// returns its output.
    pub fn in_client<'a, T, F>(&'a self, make: impl FnOnce(&'a Cluster) -> F + Send + 'a) -> T
    where
        T: Send + 'a,
        F: Future<Output = T>,
    {
        let cluster = &self.cluster;
        std::thread::scope(|s| {
            run_scoped_in(s, self.net.client(), move || make(cluster))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}
