//! CPU per operation for `ringkv bench`: the user + system time of the
//! node processes (and of the bench itself) from `/proc/PID/stat`, sampled
//! before and after the measured phase. The node processes are the ones
//! given (`--node-pids`, `--pid-file`) or, by default, the local processes
//! listening on the target addresses, found through `/proc/net/tcp{,6}`
//! and the `socket:[INODE]` links in `/proc/*/fd`.
//!
//! Parsing is pure and unit-tested; the functions that read `/proc` are
//! thin. The resolution is one clock tick (10 ms at the usual 100 Hz) per
//! process and sample, so short runs read coarse.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use serde::Serialize;

/// The user + system CPU ticks in one `/proc/PID/stat` line (fields 14
/// and 15; they cover every thread of the process). The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from
/// its last `)`.
pub fn parse_stat_ticks(stat: &str) -> Result<u64, String> {
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| "no `)` after the command name".to_owned())?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime 15.
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .ok_or_else(|| format!("only {} fields", fields.len() + 2))?
            .parse::<u64>()
            .map_err(|e| format!("field {n}: {e}"))
    };
    Ok(field(14)? + field(15)?)
}

/// CPU ticks of process `pid` so far.
pub fn read_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_stat_ticks(&text).map_err(|e| format!("{path}: {e}"))
}

/// CPU ticks of this process so far.
pub fn own_ticks() -> Result<u64, String> {
    let text =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    parse_stat_ticks(&text)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_s() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// The process id in a pid file (its first line; surrounding space ignored).
pub fn parse_pid_file(text: &str) -> Result<u32, String> {
    let line = text.lines().next().unwrap_or("").trim();
    line.parse::<u32>()
        .map_err(|_| format!("not a process id: {line:?}"))
}

/// One listening socket in `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Local address.
    pub addr: SocketAddr,
    /// The socket's inode (what `/proc/PID/fd/N -> socket:[INODE]` names).
    pub inode: u64,
}

/// The listening sockets (state `0A`) in the text of `/proc/net/tcp` or
/// `/proc/net/tcp6`. Addresses are hex words in the kernel's byte order
/// (native), ports hex in host order. Lines that do not parse are skipped.
pub fn parse_proc_net_tcp(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != "0A" {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = parse_hex_ip(ip)?;
            Some(Listener {
                addr: SocketAddr::new(ip, port),
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The inodes of the sockets listening where `target` can be reached: same
/// port, and the same address or a wildcard one.
pub fn listening_inodes(listeners: &[Listener], target: SocketAddr) -> BTreeSet<u64> {
    listeners
        .iter()
        .filter(|l| {
            l.addr.port() == target.port()
                && (l.addr.ip() == target.ip() || l.addr.ip().is_unspecified())
        })
        .map(|l| l.inode)
        .collect()
}

/// The inode in a `/proc/PID/fd/N` link target `socket:[INODE]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The local processes listening on `target` (usually one), found in
/// `/proc`; empty when the address is not local or not readable.
pub fn discover(target: SocketAddr) -> Vec<u32> {
    let mut listeners = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            listeners.extend(parse_proc_net_tcp(&text));
        }
    }
    let inodes = listening_inodes(&listeners, target);
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if holds_socket(&entry.path().join("fd"), &inodes) {
            pids.push(pid);
        }
    }
    pids
}

fn holds_socket(fd_dir: &Path, inodes: &BTreeSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(fd_dir) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|l| l.to_str().and_then(socket_inode))
            .is_some_and(|i| inodes.contains(&i))
    })
}

/// A node process to account for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeProcess {
    /// Process id.
    pub pid: u32,
    /// The target address it was found listening on, if discovered.
    pub addr: Option<SocketAddr>,
}

/// One node's CPU over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeCpu {
    /// Process id.
    pub pid: u32,
    /// Where it was found listening (discovered processes only).
    pub addr: Option<String>,
    /// User + system CPU over the measured phase, in microseconds
    /// (`None` when the second sample failed, e.g. the process exited).
    pub cpu_us: Option<u64>,
    /// `cpu_us` divided by the requests measured.
    pub cpu_us_per_op: Option<f64>,
    /// Why there is no figure, when there is none.
    pub error: Option<String>,
}

/// CPU over the measured phase, with per-operation figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuReport {
    /// How the node processes were found: `given` or `discovered`, or
    /// `none` (no local process listens on the targets).
    pub node_source: String,
    /// Clock ticks per second (the resolution of every figure).
    pub ticks_per_s: u64,
    /// Every node's CPU, summed, per request measured (`None` without
    /// nodes, or when one could not be read).
    pub node_cpu_us_per_op: Option<f64>,
    /// Every node's CPU, summed, in microseconds.
    pub node_cpu_us: Option<u64>,
    /// Per node.
    pub nodes: Vec<NodeCpu>,
    /// The bench process's own CPU, in microseconds.
    pub bench_cpu_us: Option<u64>,
    /// The bench's own CPU per request measured.
    pub bench_cpu_us_per_op: Option<f64>,
}

/// Microseconds of `ticks` clock ticks.
pub fn ticks_to_us(ticks: u64, ticks_per_s: u64) -> u64 {
    ticks.saturating_mul(1_000_000) / ticks_per_s.max(1)
}

/// Per-op division that leaves `None` for zero operations.
fn per_op(us: u64, ops: u64) -> Option<f64> {
    (ops > 0).then(|| us as f64 / ops as f64)
}

/// The report from the samples before and after: `nodes[i]` was sampled
/// as `before[i]` and `after[i]` (`Err`: the read failed).
pub fn account(
    node_source: &str,
    nodes: &[NodeProcess],
    before: &[Result<u64, String>],
    after: &[Result<u64, String>],
    bench: (Result<u64, String>, Result<u64, String>),
    ops: u64,
    ticks_per_s: u64,
) -> CpuReport {
    let delta = |b: &Result<u64, String>, a: &Result<u64, String>| match (b, a) {
        (Ok(b), Ok(a)) => Ok(ticks_to_us(a.saturating_sub(*b), ticks_per_s)),
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    };
    let per_node: Vec<NodeCpu> = nodes
        .iter()
        .zip(before.iter().zip(after))
        .map(|(node, (b, a))| {
            let d = delta(b, a);
            NodeCpu {
                pid: node.pid,
                addr: node.addr.map(|a| a.to_string()),
                cpu_us: d.as_ref().ok().copied(),
                cpu_us_per_op: d.as_ref().ok().and_then(|us| per_op(*us, ops)),
                error: d.err(),
            }
        })
        .collect();
    let node_cpu_us = if per_node.is_empty() || per_node.iter().any(|n| n.cpu_us.is_none()) {
        None
    } else {
        Some(per_node.iter().filter_map(|n| n.cpu_us).sum())
    };
    let bench_cpu_us = delta(&bench.0, &bench.1).ok();
    CpuReport {
        node_source: node_source.to_owned(),
        ticks_per_s,
        node_cpu_us_per_op: node_cpu_us.and_then(|us| per_op(us, ops)),
        node_cpu_us,
        nodes: per_node,
        bench_cpu_us,
        bench_cpu_us_per_op: bench_cpu_us.and_then(|us| per_op(us, ops)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A real line (kernel 6.x), command name with a space and a `)`.
    const STAT: &str = "4242 (ringkv (node) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                        250 75 0 0 20 0 9 0 123456 1000000 2000 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_ticks_are_utime_plus_stime() {
        assert_eq!(parse_stat_ticks(STAT).unwrap(), 325);
    }

    #[test]
    fn stat_parse_errors_are_clear() {
        assert!(parse_stat_ticks("4242 no parenthesis").is_err());
        assert!(parse_stat_ticks("4242 (x) S 1 2")
            .unwrap_err()
            .contains("fields"));
        let bad = STAT.replace(" 250 ", " x ");
        assert!(parse_stat_ticks(&bad).unwrap_err().contains("field 14"));
    }

    #[test]
    fn this_process_stat_parses() {
        let pid = std::process::id();
        assert!(read_ticks(pid).is_ok());
        assert!(own_ticks().is_ok());
        assert!(ticks_per_s() > 0);
    }

    #[test]
    fn pid_files() {
        assert_eq!(parse_pid_file(" 123 \n").unwrap(), 123);
        assert!(parse_pid_file("abc").is_err());
        assert!(parse_pid_file("").is_err());
    }

    #[test]
    fn proc_net_tcp_listeners() {
        // 127.0.0.1:7001 listening, 0.0.0.0:8080 listening, one established.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1B59 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0\n\
   2: 0100007F:1B59 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1\n";
        let l = parse_proc_net_tcp(v4);
        if cfg!(target_endian = "little") {
            assert_eq!(
                l,
                vec![
                    Listener {
                        addr: "127.0.0.1:7001".parse().unwrap(),
                        inode: 111
                    },
                    Listener {
                        addr: "0.0.0.0:8080".parse().unwrap(),
                        inode: 222
                    },
                ]
            );
            let at = |a: &str| listening_inodes(&l, a.parse().unwrap());
            assert_eq!(at("127.0.0.1:7001"), BTreeSet::from([111]));
            assert_eq!(at("127.0.0.2:7001"), BTreeSet::new());
            // A wildcard listener answers on every address.
            assert_eq!(at("127.0.0.9:8080"), BTreeSet::from([222]));
        }
        // ::1 port 7002 (tcp6: four native-order words).
        let v6 = "header\n   0: 00000000000000000000000001000000:1B5A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_proc_net_tcp(v6),
                vec![Listener {
                    addr: "[::1]:7002".parse().unwrap(),
                    inode: 444
                }]
            );
        }
        assert!(parse_proc_net_tcp("header\ngarbage line\n").is_empty());
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[98765]"), Some(98765));
        assert_eq!(socket_inode("pipe:[98765]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn discovery_finds_this_process_listening() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(discover(addr), vec![std::process::id()]);
        drop(listener);
        assert!(discover(addr).is_empty());
    }

    #[test]
    fn accounting_sums_nodes_and_divides_by_ops() {
        let nodes = vec![
            NodeProcess {
                pid: 1,
                addr: Some("127.0.0.1:7001".parse().unwrap()),
            },
            NodeProcess { pid: 2, addr: None },
        ];
        let r = account(
            "given",
            &nodes,
            &[Ok(100), Ok(50)],
            &[Ok(150), Ok(75)],
            (Ok(10), Ok(20)),
            1000,
            100,
        );
        // 50 and 25 ticks at 100 Hz: 500 ms and 250 ms.
        assert_eq!(r.nodes[0].cpu_us, Some(500_000));
        assert_eq!(r.nodes[0].cpu_us_per_op, Some(500.0));
        assert_eq!(r.nodes[0].addr.as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(r.node_cpu_us, Some(750_000));
        assert_eq!(r.node_cpu_us_per_op, Some(750.0));
        assert_eq!(r.bench_cpu_us_per_op, Some(100.0));

        // A node that exited: its own error, and no sum (it would lie).
        let r = account(
            "given",
            &nodes,
            &[Ok(100), Ok(50)],
            &[Ok(150), Err("/proc/2/stat: gone".into())],
            (Ok(10), Ok(20)),
            1000,
            100,
        );
        assert_eq!(r.nodes[1].error.as_deref(), Some("/proc/2/stat: gone"));
        assert_eq!(r.node_cpu_us_per_op, None);

        // No nodes, no requests: no per-op figures, no division by zero.
        let r = account("none", &[], &[], &[], (Ok(0), Ok(5)), 0, 100);
        assert_eq!((r.node_cpu_us, r.bench_cpu_us_per_op), (None, None));
        assert_eq!(r.bench_cpu_us, Some(50_000));
    }
}
