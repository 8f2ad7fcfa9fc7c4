//! The faults the partition and nemesis suites inject into a
//! [`NetCluster`]: network partitions (iptables rules inside the node
//! namespaces) and process faults (kill -9, SIGSTOP, a full disk).

use std::time::{Duration, Instant};

use super::log_excerpt;
use super::netns::NetCluster;

/// The suites' cluster size.
pub const NODES: usize = 5;
/// How long a node gets to come back after a process fault ends (answer
/// `ping` after a restart, mint again after its disk was freed).
const BACK_WAIT: Duration = Duration::from_secs(30);
/// What a full disk keeps free: two pages. The nemesis workload adds
/// some KiB a second to a node's log, and its nodes' small LSM files
/// (256 KiB memtables) flush seconds apart, so a few hundred KiB free
/// would outlast a fault phase of a few seconds; this much fails the
/// node's log appends within a second or so (often one halfway through).
pub const DISK_FULL_LEAVE_BYTES: u64 = 8 << 10;

/// A fault the schedule can inject.
#[derive(Clone, Debug)]
pub enum Fault {
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
    /// SIGKILL; restarted on its data dir when the fault ends.
    Kill(usize),
    /// SIGSTOP; SIGCONT when the fault ends.
    Pause(usize),
    /// The node's data dir (its own tmpfs) filled but for
    /// [`DISK_FULL_LEAVE_BYTES`]; freed when the fault ends.
    DiskFull(usize),
}

pub fn names(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|n| format!("n{}", n + 1))
        .collect::<Vec<_>>()
        .join(",")
}

impl Fault {
    pub fn name(&self) -> String {
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
            Fault::Kill(n) => format!("kill -9 n{}", n + 1),
            Fault::Pause(n) => format!("pause n{}", n + 1),
            Fault::DiskFull(n) => format!("disk full n{}", n + 1),
        }
    }

    /// The kind of fault, whoever plays which role.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Healthy => "healthy",
            Fault::Isolate(_) => "isolate",
            Fault::Split { .. } => "split",
            Fault::Bridge { .. } => "bridge",
            Fault::OneWay { .. } => "one-way",
            Fault::Kill(_) => "kill -9",
            Fault::Pause(_) => "pause",
            Fault::DiskFull(_) => "disk full",
        }
    }

    /// Whether it is a network partition.
    pub fn is_partition(&self) -> bool {
        !self.cut_pairs().is_empty()
    }

    /// The node a process fault hits.
    pub fn process_node(&self) -> Option<usize> {
        match self {
            Fault::Kill(n) | Fault::Pause(n) | Fault::DiskFull(n) => Some(*n),
            _ => None,
        }
    }

    /// Pairs of nodes whose link the fault cuts (in either direction).
    pub fn cut_pairs(&self) -> Vec<(usize, usize)> {
        let across = |a: &[usize], b: &[usize]| -> Vec<(usize, usize)> {
            a.iter()
                .flat_map(|&x| b.iter().map(move |&y| (x, y)))
                .collect()
        };
        match self {
            Fault::Healthy | Fault::Kill(_) | Fault::Pause(_) | Fault::DiskFull(_) => Vec::new(),
            Fault::Isolate(n) => (0..NODES).filter(|m| m != n).map(|m| (*n, m)).collect(),
            Fault::Split { majority, minority } => across(majority, minority),
            Fault::Bridge { left, right, .. } => across(left, right),
            Fault::OneWay { deaf, unheard } => vec![(*deaf, *unheard)],
        }
    }

    /// Per node: the nodes it drops packets from, and those it drops
    /// packets to. Symmetric faults block both directions on both ends.
    pub fn blocks(&self) -> Vec<(Vec<usize>, Vec<usize>)> {
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

    /// Makes this the cluster's state: the network's rules replace the
    /// previous fault's (`Healthy` and the process faults flush them all),
    /// then a process fault hits its node. The previous process fault must
    /// have been ended first ([`Fault::end`]).
    pub fn apply(&self, cluster: &mut NetCluster) {
        cluster.net.set_blocks(&self.blocks());
        match *self {
            Fault::Kill(n) => cluster.cluster.nodes[n].kill(),
            Fault::Pause(n) => cluster.cluster.nodes[n].pause(true),
            Fault::DiskFull(n) => {
                let disk = cluster
                    .disks
                    .get(n)
                    .expect("a disk-full fault needs the nodes on tmpfs");
                disk.fill(DISK_FULL_LEAVE_BYTES);
            }
            _ => {}
        }
    }

    /// Ends a process fault: restarts a killed node and waits until it
    /// answers `ping`; resumes a paused one; frees a full disk and waits
    /// until the node mints again. Returns how long the node took to be
    /// back, or why it is not. Network faults end with the next
    /// [`Fault::apply`] (nothing to do here).
    pub fn end(&self, cluster: &mut NetCluster) -> Result<Duration, String> {
        let started = Instant::now();
        match *self {
            Fault::Kill(n) => {
                cluster.cluster.nodes[n].restart();
                let back = cluster.in_client(move |c| async move {
                    let node = &c.nodes[n];
                    let deadline = Instant::now() + BACK_WAIT;
                    while Instant::now() < deadline {
                        if let Ok(client) = ringkv::Client::connect(node.client).await {
                            let client = client.with_wait(Duration::from_secs(1));
                            if client.ping().await.is_ok() {
                                return true;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    false
                });
                if !back {
                    return Err(format!(
                        "n{} did not answer ping within {BACK_WAIT:?} of its restart; its log:\n{}",
                        n + 1,
                        log_excerpt(&cluster.cluster.nodes[n])
                    ));
                }
            }
            Fault::Pause(n) => cluster.cluster.nodes[n].pause(false),
            Fault::DiskFull(n) => {
                cluster.disks[n].free();
                let back = cluster.in_client(move |c| async move {
                    let deadline = Instant::now() + BACK_WAIT;
                    while Instant::now() < deadline {
                        if minting(&c.nodes[n]).await == Some(true) {
                            return true;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    false
                });
                if !back {
                    return Err(format!(
                        "n{} did not mint again within {BACK_WAIT:?} of its disk being freed; its log:\n{}",
                        n + 1,
                        log_excerpt(&cluster.cluster.nodes[n])
                    ));
                }
            }
            _ => {}
        }
        Ok(started.elapsed())
    }

    /// Which side of the fault requests through `node` are on.
    pub fn side(&self, node: usize) -> &'static str {
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
            Fault::Kill(n) if *n == node => "killed",
            Fault::Pause(n) if *n == node => "paused",
            Fault::DiskFull(n) if *n == node => "full",
            Fault::Kill(_) | Fault::Pause(_) | Fault::DiskFull(_) => "rest",
        }
    }

    /// The sides in table order (each has a row; "all" rows are added).
    pub fn sides(&self) -> &'static [&'static str] {
        match self {
            Fault::Healthy => &["all"],
            Fault::Isolate(_) => &["rest", "isolated"],
            Fault::Split { .. } => &["majority", "minority"],
            Fault::Bridge { .. } => &["middle", "ends"],
            Fault::OneWay { .. } => &["rest", "ends"],
            Fault::Kill(_) => &["rest", "killed"],
            Fault::Pause(_) => &["rest", "paused"],
            Fault::DiskFull(_) => &["rest", "full"],
        }
    }
}

/// The node's `minting` status key (`None`: no answer).
pub async fn minting(node: &super::NodeProc) -> Option<bool> {
    let client = ringkv::Client::connect(node.client)
        .await
        .ok()?
        .with_wait(Duration::from_secs(1));
    let status = client.status().await.ok()?;
    ringkv_actors::wire::client::map_field(&status.raw, "minting").and_then(|v| v.as_bool())
}

/// One phase of a schedule.
pub struct Phase {
    pub fault: Fault,
    pub duration: Duration,
}
