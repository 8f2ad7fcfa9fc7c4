//! `ringkv dev`: a local cluster in one command. Starts `--nodes` node
//! processes (this same binary) on loopback, each seeded with all the others,
//! prints where to reach them, and stops them all on Ctrl-C.
//!
//! The nodes share a cluster secret: [`SECRET_FILE`] in `--data-dir`,
//! created on the first run (32 random bytes as 64 hex digits, mode 0600)
//! and reused after, so a restarted dev cluster keeps its members.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use clap::Args;
use rand::RngCore as _;

/// The dev cluster's secret file, in `--data-dir`.
pub const SECRET_FILE: &str = "cluster-secret";
/// Random bytes in a new dev secret (written as twice as many hex digits).
const DEV_SECRET_BYTES: usize = 32;

/// Flags of `ringkv dev`.
#[derive(Args, Debug, Clone)]
pub struct DevArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Parent directory of the nodes' data dirs (one sub-directory each).
    #[arg(long, default_value = "./ringkv-data")]
    pub data_dir: PathBuf,
    /// First client port; node i listens for clients on base+i-1.
    #[arg(long, default_value_t = 7001)]
    pub client_port: u16,
    /// First peer port; node i listens for peers on base+i-1.
    #[arg(long, default_value_t = 7101)]
    pub peer_port: u16,
    /// First RESP (Redis protocol) port; node i serves Redis clients on
    /// base+i-1 (`redis-cli -p 6401`).
    #[arg(long, default_value_t = 6401)]
    pub resp_port: u16,
    /// First metrics port (`GET /metrics`); node i serves on base+i-1. 0
    /// turns the metrics endpoints off.
    #[arg(long, default_value_t = 9101)]
    pub metrics_port: u16,
    /// Loopback address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Replicas per key.
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    /// Default read quorum.
    #[arg(long, default_value_t = 2)]
    pub r: usize,
    /// Default write quorum.
    #[arg(long, default_value_t = 2)]
    pub w: usize,
    /// Extra flags passed to every node (e.g. `--extra=--storage=memory`).
    #[arg(long, allow_hyphen_values = true)]
    pub extra: Vec<String>,
}

/// One planned node.
pub struct DevNode {
    /// Node id.
    pub id: String,
    /// Client address.
    pub client: SocketAddr,
    /// Peer address.
    pub peer: SocketAddr,
    /// RESP (Redis protocol) address.
    pub resp: SocketAddr,
    /// Metrics address (`None`: `--metrics-port 0`).
    pub metrics: Option<SocketAddr>,
    /// Data dir.
    pub data_dir: PathBuf,
}

/// The nodes `args` describes.
pub fn plan(args: &DevArgs) -> Result<Vec<DevNode>, String> {
    if args.nodes == 0 || args.nodes > 64 {
        return Err(format!("--nodes must be in 1..=64, got {}", args.nodes));
    }
    if args.n > args.nodes as usize {
        return Err(format!(
            "--n ({}) cannot exceed --nodes ({})",
            args.n, args.nodes
        ));
    }
    Ok((0..args.nodes)
        .map(|i| DevNode {
            id: format!("n{}", i + 1),
            client: SocketAddr::new(args.host, args.client_port + i),
            peer: SocketAddr::new(args.host, args.peer_port + i),
            resp: SocketAddr::new(args.host, args.resp_port + i),
            metrics: (args.metrics_port != 0)
                .then(|| SocketAddr::new(args.host, args.metrics_port + i)),
            data_dir: args.data_dir.join(format!("n{}", i + 1)),
        })
        .collect())
}

/// Checks that every port the nodes will listen on is free, by binding
/// each for a moment; the first taken one is an error that names it and
/// its flag. Without this check a second `ringkv dev` on the same ports
/// looked ready (the first cluster's nodes accepted its connections)
/// while its own nodes were exiting, and clients reached the old cluster.
pub fn check_ports_free(nodes: &[DevNode]) -> Result<(), String> {
    for node in nodes {
        let ports = [
            (Some(node.client), "--client-port"),
            (Some(node.peer), "--peer-port"),
            (Some(node.resp), "--resp-port"),
            (node.metrics, "--metrics-port"),
        ];
        for (addr, flag) in ports {
            let Some(addr) = addr else { continue };
            if let Err(e) = std::net::TcpListener::bind(addr) {
                return Err(format!(
                    "{addr} (node {}, from {flag}) cannot be listened on: {e}; is another \
                     `ringkv dev` or node running there? Stop it, or choose other ports \
                     with {flag}",
                    node.id
                ));
            }
        }
    }
    Ok(())
}

/// The cluster secret file in `data_dir`: created (with the directory)
/// if missing, readable by its owner only; an existing one is kept.
pub fn ensure_secret(data_dir: &Path) -> Result<PathBuf, String> {
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let mut bytes = [0u8; DEV_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&path).and_then(|mut file| {
        file.write_all(hex.as_bytes())
            .and_then(|()| file.sync_all())
    });
    written.map_err(|e| format!("cannot write the cluster secret {}: {e}", path.display()))?;
    Ok(path)
}

/// Starts every node process, all with the secret in `secret`.
pub fn spawn(args: &DevArgs, nodes: &[DevNode], secret: &Path) -> Result<Vec<Child>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the ringkv binary: {e}"))?;
    let mut children = Vec::new();
    for node in nodes {
        let seeds: Vec<String> = nodes
            .iter()
            .filter(|o| o.id != node.id)
            .map(|o| o.peer.to_string())
            .collect();
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .args(["--id", &node.id])
            .args(["--listen", &node.peer.to_string()])
            .args(["--client-listen", &node.client.to_string()])
            .args(["--resp-listen", &node.resp.to_string()])
            .args(["--data-dir", &node.data_dir.display().to_string()])
            .args(["--cluster-secret-file", &secret.display().to_string()])
            .args([
                "--n",
                &args.n.to_string(),
                "--r",
                &args.r.to_string(),
                "--w",
                &args.w.to_string(),
            ])
            .args(&args.extra);
        if !seeds.is_empty() {
            cmd.args(["--seeds", &seeds.join(",")]);
        }
        if let Some(metrics) = node.metrics {
            cmd.args(["--metrics-listen", &metrics.to_string()]);
        }
        match cmd.spawn() {
            Ok(child) => children.push(child),
            Err(e) => {
                stop(&mut children);
                return Err(format!("cannot start node {}: {e}", node.id));
            }
        }
    }
    Ok(children)
}

/// How long `ringkv dev` waits for every node to accept clients.
const NODES_READY_WAIT_MS: u64 = 10_000;

/// Waits until every node accepts client connections; fails (naming the
/// node and how it exited) as soon as one process dies.
pub fn wait_ready(children: &mut [Child], nodes: &[DevNode]) -> Result<(), String> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(NODES_READY_WAIT_MS);
    for (child, node) in children.iter_mut().zip(nodes) {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "node {} exited ({status}) before it was ready; its log is above (port {}, {} or {} in use?)",
                    node.id, node.client, node.peer, node.resp
                ));
            }
            let timeout = std::time::Duration::from_millis(100);
            if std::net::TcpStream::connect_timeout(&node.client, timeout).is_ok() {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "node {} did not accept clients within {NODES_READY_WAIT_MS} ms",
                    node.id
                ));
            }
            std::thread::sleep(timeout);
        }
    }
    Ok(())
}

/// Stops every child (SIGTERM, then waits).
pub fn stop(children: &mut [Child]) {
    for child in children.iter_mut() {
        // SIGTERM lets the node stop cleanly; kill() would be SIGKILL.
        let _ = Command::new("kill")
            .arg(child.id().to_string())
            .stderr(std::process::Stdio::null())
            .status();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_port_already_listened_on_is_refused_with_its_flag_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let node = |peer: SocketAddr| DevNode {
            id: "n2".into(),
            client: free(),
            peer,
            resp: free(),
            metrics: None,
            data_dir: PathBuf::from("unused"),
        };
        let e = check_ports_free(&[node(taken.local_addr().unwrap())]).unwrap_err();
        assert!(
            e.contains(&format!("127.0.0.1:{port}"))
                && e.contains("--peer-port")
                && e.contains("n2"),
            "{e}"
        );
        drop(taken);
        assert_eq!(check_ports_free(&[node(free())]), Ok(()));
    }

    #[test]
    fn the_dev_secret_is_created_once_owner_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("ringkv-data");
        let path = ensure_secret(&data_dir).unwrap();
        let secret = std::fs::read(&path).unwrap();
        // A secret a node accepts.
        assert!(ringkv_actors::secret::ClusterSecret::from_file(&path).is_ok());
        assert_eq!(secret.len(), 2 * DEV_SECRET_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Kept: a restarted dev cluster keeps its secret.
        assert_eq!(ensure_secret(&data_dir).unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), secret);
        // Another dev cluster gets another secret.
        let other = ensure_secret(&dir.path().join("other")).unwrap();
        assert_ne!(std::fs::read(other).unwrap(), secret);
    }
}
