//! The `ringkv` binary: `node` runs one node, `dev` a local cluster,
//! `admin` talks to a running node, `bench` generates load.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ringkv::bench::{self, BenchArgs};
use ringkv::client::Client;
use ringkv::config::{LogFormat, NodeArgs};
use ringkv::dev::{self, DevArgs};
use ringkv::node::{self, NodeEnv};

/// mimalloc instead of the system allocator: see the note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ringkv: a Dynamo-style distributed key-value store.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node.
    ///
    /// Example: ringkv node --id n1 --listen 127.0.0.1:7101 --client-listen 127.0.0.1:7001
    /// --data-dir ./data/n1 --seeds 127.0.0.1:7102,127.0.0.1:7103
    Node(Box<NodeArgs>),
    /// Start a local cluster (default 3 nodes, N=3 R=2 W=2, data under
    /// ./ringkv-data); Ctrl-C stops it.
    Dev(DevArgs),
    /// Ask a running node about the cluster.
    Admin(AdminArgs),
    /// Generate load through the client: throughput, latency quantiles per
    /// op, errors, and the nodes' CPU per op.
    ///
    /// Example (50/50 gets and puts over 100,000 zipfian keys, 30 s, a chart):
    /// ringkv bench --addrs 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
    /// --read-ratio 0.5 --keys 100000 --distribution zipfian --preload
    /// --duration-s 30 --concurrency 64 --plot run.svg
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
struct AdminArgs {
    /// A node's client address.
    #[arg(long, default_value = "127.0.0.1:7001")]
    addr: String,
    /// Send `auth` first with a token from this file: its second line (the
    /// admin token) if it has one, else its first (the client token). The
    /// node's `--client-token-file` works as is.
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// Talk TLS: the CA (PEM) the node's certificate must chain to.
    #[arg(long, value_name = "PATH")]
    tls_ca: Option<std::path::PathBuf>,
    /// The name the node's certificate must carry (default: the host part
    /// of --addr).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
    #[command(subcommand)]
    action: AdminAction,
}

#[derive(Subcommand, Debug)]
enum AdminAction {
    /// Membership, states, ring shares and the node's settings.
    Status,
    /// Make the node hand its ranges to their new owners and leave the
    /// cluster; waits until it reports itself `left`.
    Leave {
        /// Give up waiting after this many seconds (the node keeps going).
        #[arg(long, default_value_t = 600)]
        wait_s: u64,
    },
    /// Remove NODE, a member that is down for good (its disk is gone, it
    /// will not come back), from the cluster: it leaves the ring, and the
    /// nodes that take over its ranges copy them from the other replicas.
    /// Refused for a member that is not down; a running node leaves with
    /// `leave`. A forgotten node that starts again joins as a new member.
    Forget {
        /// The member's id.
        node: String,
    },
    /// Print every live key of the cluster, one per line, in ring order
    /// (as text when printable, else as 0x hex), paging with `list`.
    Keys {
        /// Keys per page (1..=1000).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Every member: state, dc/rack, load in bytes, tokens, ring share,
    /// hints pending for it (summed over the members that answer).
    Members,
    /// The ring's token ranges with their replicas (consecutive ranges
    /// with the same replicas merged).
    Ring,
    /// Runs an anti-entropy exchange with every peer now and prints what
    /// each compared and fixed; with --key, read-repairs that key across
    /// its replicas and prints each replica's version.
    Repair {
        /// One key to read-repair instead (its bytes as UTF-8).
        #[arg(long)]
        key: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    // First, before the allocator maps much: see `ringkv::huge_pages`.
    let huge_pages = ringkv::huge_pages::turn_off();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(args) => run_node(*args, huge_pages),
        Command::Dev(args) => run_dev(args),
        Command::Admin(args) => run_admin(args),
        Command::Bench(args) => run_bench(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line (with its causes), no backtrace: these are
            // operator errors such as a bad flag or a busy port.
            eprintln!("ringkv: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_node(args: NodeArgs, huge_pages: std::io::Result<()>) -> anyhow::Result<()> {
    let config = args
        .with_file()
        .and_then(|a| a.validate())
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    ringkv::logging::init(config.log_format);
    ringkv::huge_pages::log_outcome(&config.id, &huge_pages);
    let system = actix_rt::System::new();
    system.block_on(async move {
        let (parts, lock) = node::open_storage(&config)?;
        let running = node::start(&config, NodeEnv::of_process(parts), lock).await?;
        // On the arbiter every actor runs on (ends with it).
        actix_rt::spawn(ringkv::event_loop::probe(
            running.metrics.clone(),
            config.id.to_string(),
            std::time::Duration::from_millis(ringkv::event_loop::EVENT_LOOP_PROBE_INTERVAL_MS),
            std::time::Duration::from_millis(ringkv::event_loop::EVENT_LOOP_LAG_WARN_MS),
        ));
        wait_for_shutdown().await;
        tracing::info!(node = %config.id, actor = "node", "shutting down");
        // Every acknowledged write is already durable; a clean stop also
        // lets the next start keep the store's incarnation.
        match running.stop_cleanly(&config).await {
            Ok(()) => tracing::info!(node = %config.id, actor = "node", "clean shutdown"),
            Err(reason) => tracing::warn!(
                node = %config.id, actor = "node", %reason,
                "unclean shutdown; the next start gets a new store incarnation"
            ),
        }
        drop(running);
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

async fn wait_for_shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    ringkv::logging::init(LogFormat::Pretty);
    let nodes = dev::plan(&args).map_err(anyhow::Error::msg)?;
    dev::check_ports_free(&nodes).map_err(anyhow::Error::msg)?;
    let secret = dev::ensure_secret(&args.data_dir).map_err(anyhow::Error::msg)?;
    let mut children = dev::spawn(&args, &nodes, &secret).map_err(anyhow::Error::msg)?;
    if let Err(e) = dev::wait_ready(&mut children, &nodes) {
        dev::stop(&mut children);
        anyhow::bail!(e);
    }
    println!(
        "ringkv dev cluster: {} nodes, N={} R={} W={}",
        nodes.len(),
        args.n,
        args.r,
        args.w
    );
    for n in &nodes {
        let metrics = n
            .metrics
            .map_or(String::new(), |m| format!("  metrics http://{m}/metrics"));
        println!(
            "  {}  client {}  peer {}  resp {}{metrics}  data {}",
            n.id,
            n.client,
            n.peer,
            n.resp,
            n.data_dir.display()
        );
    }
    if let Some(first) = nodes.first() {
        println!("try:");
        println!(
            "  cargo run --example client -- --addr {} put hello world",
            first.client
        );
        println!(
            "  cargo run --example client -- --addr {} get hello",
            nodes.last().map_or(first.client, |n| n.client)
        );
        println!(
            "  cargo run --release -- admin --addr {} status",
            first.client
        );
        println!("  redis-cli -p {} set hello world", first.resp.port());
    }
    println!(
        "cluster secret: {} (give it to a node that joins: --cluster-secret-file)",
        secret.display()
    );
    println!("Ctrl-C stops the cluster.");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(wait_for_shutdown());
    println!("stopping {} nodes", children.len());
    dev::stop(&mut children);
    Ok(())
}

fn run_admin(args: AdminArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if matches!(
        args.action,
        AdminAction::Members | AdminAction::Ring | AdminAction::Repair { .. }
    ) {
        let connect = ringkv::admin::Connect {
            tls: args.tls_ca.as_ref().map(|ca| ringkv::client::TlsOptions {
                ca: ca.clone(),
                server_name: args.tls_server_name.clone(),
            }),
            token: match &args.token_file {
                Some(path) => Some(
                    ringkv::client::token_from_file(path, true)
                        .with_context(|| "--token-file".to_string())?,
                ),
                None => None,
            },
        };
        return runtime.block_on(async {
            match args.action {
                AdminAction::Members => ringkv::admin::members(&connect, &args.addr).await,
                AdminAction::Ring => ringkv::admin::ring(&connect, &args.addr).await,
                AdminAction::Repair { key } => {
                    ringkv::admin::repair(&connect, &args.addr, key).await
                }
                _ => Ok(()),
            }
        });
    }
    runtime.block_on(async {
        let client = match &args.tls_ca {
            Some(ca) => {
                let tls = ringkv::client::TlsOptions {
                    ca: ca.clone(),
                    server_name: args.tls_server_name.clone(),
                };
                Client::connect_tls(&args.addr, &tls).await
            }
            None => Client::connect(&args.addr).await,
        }
        .with_context(|| format!("cannot connect to {}", args.addr))?;
        if let Some(path) = &args.token_file {
            let token = ringkv::client::token_from_file(path, true)
                .with_context(|| "--token-file".to_string())?;
            client.auth(&token).await.context("auth")?;
        }
        match args.action {
            AdminAction::Leave { wait_s } => {
                let node = client.leave().await?;
                println!("{node} is leaving: handing off its ranges");
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_s);
                loop {
                    let status = client.status().await?;
                    let state = status
                        .members
                        .iter()
                        .find(|m| m.id == node)
                        .map(|m| m.state.clone());
                    if state.as_deref() == Some("left") {
                        println!("{node} has left the cluster; it can be stopped");
                        break;
                    }
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "{node} is still {} after {wait_s} s",
                        state.unwrap_or_default()
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
            AdminAction::Forget { node } => {
                let via = client.forget(&node).await?;
                println!("{node} is forgotten (via {via}); its ranges are being copied to their new replicas");
            }
            AdminAction::Keys { limit } => {
                use std::io::Write as _;
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let mut failed = None;
                let count = client
                    .list_all(Some(limit), |key| {
                        if failed.is_none() {
                            let line = ringkv::client::printable_key(&key);
                            failed = writeln!(out, "{line}").err();
                        }
                    })
                    .await?;
                if let Some(e) = failed {
                    return Err(anyhow::Error::new(e).context("writing the keys"));
                }
                out.flush()?;
                eprintln!("{count} keys");
            }
            AdminAction::Members | AdminAction::Ring | AdminAction::Repair { .. } => {}
            AdminAction::Status => {
                let status = client.status().await?;
                let field = |name: &str| {
                    ringkv_actors::wire::client::map_field(&status.raw, name).map(|v| match v {
                        rmpv::Value::String(s) => s.as_str().unwrap_or("").to_string(),
                        other => other.to_string(),
                    })
                };
                println!(
                    "node {} (ready: {}, {})",
                    status.node,
                    field("ready").unwrap_or_else(|| "?".into()),
                    field("lifecycle").unwrap_or_else(|| "?".into())
                );
                if let Some(waiting) = field("waiting_for_seeds") {
                    println!("waiting for seeds: {waiting}");
                }
                if let Some(per_dc) = field("dc_replication") {
                    println!("replicas per data center: {per_dc}");
                }
                println!(
                    "{:<10} {:<8} {:>9} {:<22} {:<22} {:<6} {:<6} {:>7}",
                    "member",
                    "state",
                    "heartbeat",
                    "peer addr",
                    "client addr",
                    "dc",
                    "rack",
                    "ring"
                );
                for m in &status.members {
                    let age = m
                        .heartbeat_age_ms
                        .map_or("-".to_string(), |ms| format!("{ms}ms"));
                    println!(
                        "{:<10} {:<8} {:>9} {:<22} {:<22} {:<6} {:<6} {:>6.1}%",
                        m.id,
                        m.state,
                        age,
                        m.addr,
                        m.client_addr.as_deref().unwrap_or("-"),
                        m.dc,
                        m.rack.as_deref().unwrap_or("-"),
                        m.ring_share.unwrap_or(0.0) * 100.0
                    );
                }
            }
        }
        Ok(())
    })
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    // One thread: the load generator shares the machine with the nodes it
    // measures, and a second worker thread costs it a futex wake-up per
    // handful of requests (3-5 µs of CPU per op against 4-10 µs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime
        .block_on(bench::run(&args))
        .map_err(anyhow::Error::msg)?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        bench::report::render_text(&report)
    };
    // A closed pipe (`| head`) is an error, not a panic.
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
        .context("writing the report to stdout")?;
    anyhow::ensure!(
        report.totals.ok > 0 || report.totals.errors == 0,
        "every request failed: {:?}",
        report.errors
    );
    Ok(())
}
