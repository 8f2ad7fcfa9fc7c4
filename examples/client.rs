//! The bundled client: put / get / delete / status / list from the shell.
//!
//! ```text
//! cargo run --example client -- --addr 127.0.0.1:7001 put KEY VALUE [--context HEX]
//! cargo run --example client -- --addr 127.0.0.1:7001 get KEY
//! cargo run --example client -- --addr 127.0.0.1:7001 delete KEY [--context HEX]
//! cargo run --example client -- --addr 127.0.0.1:7001 status
//! cargo run --example client -- --addr 127.0.0.1:7001 list [--limit 100]
//! ```
//!
//! With `--token-file PATH` it sends `auth` first, with the token on the
//! file's first line (the client token; a node's `--client-token-file`
//! works as is).
//!
//! `get` prints every sibling, numbered, and the context as hex; pass that
//! hex back with `--context` to overwrite (or delete) exactly what you saw.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ringkv::client::{Consistency, Context, RequestOptions, TlsOptions};

fn parse_consistency(name: &str) -> Result<Consistency, String> {
    Consistency::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Consistency::LEVELS.iter().map(|c| c.as_str()).collect();
        format!("expected one of {}", names.join(", "))
    })
}
use ringkv::Client;

#[derive(Parser, Debug)]
#[command(about = "Talk to a ringkv node")]
struct Args {
    /// A node's client address.
    #[arg(long, default_value = "127.0.0.1:7001")]
    addr: String,
    /// Read quorum for get.
    #[arg(long)]
    r: Option<usize>,
    /// Write quorum for put and delete.
    #[arg(long)]
    w: Option<usize>,
    /// Of the R replies, how many must come from the key's own replicas
    /// (not sloppy-quorum stand-ins).
    #[arg(long)]
    pr: Option<usize>,
    /// Of the W acknowledgements, how many must come from the key's own
    /// replicas.
    #[arg(long)]
    pw: Option<usize>,
    /// Consistency level instead of --r / --w: one, quorum, all, local_one,
    /// local_quorum or each_quorum.
    #[arg(long, value_parser = parse_consistency)]
    consistency: Option<Consistency>,
    /// Server-side deadline, in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Send `auth` first with the client token on this file's first line
    /// (for a node started with `--client-token-file`).
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// Talk TLS (a node started with --tls-cert): the CA (PEM) the node's
    /// certificate must chain to.
    #[arg(long, value_name = "PATH")]
    tls_ca: Option<std::path::PathBuf>,
    /// The name the node's certificate must carry (default: the host part
    /// of --addr).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write VALUE under KEY.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Context (hex, from an earlier get) whose versions this replaces.
        #[arg(long)]
        context: Option<Context>,
        /// The value expires this many milliseconds after the node accepts
        /// it (reads then find KEY absent).
        #[arg(long, value_name = "MS")]
        ttl_ms: Option<u64>,
    },
    /// Print every live sibling of KEY and its context.
    Get {
        /// The key.
        key: String,
    },
    /// Delete KEY (a tombstone covering --context).
    Delete {
        /// The key.
        key: String,
        /// Context (hex, from an earlier get) whose versions this deletes.
        #[arg(long)]
        context: Option<Context>,
    },
    /// Membership as the node sees it.
    Status,
    /// Dump every live key of the cluster, one per line (text when
    /// printable, else 0x hex), paging with `list`.
    List {
        /// Keys per page (1..=1000).
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = match &args.tls_ca {
        Some(ca) => {
            let tls = TlsOptions {
                ca: ca.clone(),
                server_name: args.tls_server_name.clone(),
            };
            Client::connect_tls(&args.addr, &tls).await
        }
        None => Client::connect(&args.addr).await,
    }
    .with_context(|| format!("cannot connect to {}", args.addr))?;
    if let Some(path) = &args.token_file {
        let token = ringkv::client::token_from_file(path, false).context("--token-file")?;
        client.auth(&token).await.context("auth")?;
    }
    let options = RequestOptions {
        r: args.r,
        w: args.w,
        pr: args.pr,
        pw: args.pw,
        timeout_ms: args.timeout_ms,
        ttl_ms: None,
        consistency: args.consistency,
    };
    match args.command {
        Cmd::Put {
            key,
            value,
            context,
            ttl_ms,
        } => {
            let options = RequestOptions { ttl_ms, ..options };
            let ctx = client
                .put_with(key.as_bytes(), value.as_bytes(), context.as_ref(), options)
                .await?;
            println!("ok");
            println!("context: {ctx}");
        }
        Cmd::Get { key } => {
            let found = client.get_with(key.as_bytes(), options).await?;
            if found.values.is_empty() {
                println!("(not found)");
            }
            for (i, v) in found.values.iter().enumerate() {
                println!("{}: {}", i + 1, String::from_utf8_lossy(v));
            }
            match found.context {
                Some(ctx) => println!("context: {ctx}"),
                None => println!("context: (none: never written)"),
            }
        }
        Cmd::Delete { key, context } => {
            let ctx = client
                .delete_with(key.as_bytes(), context.as_ref(), options)
                .await?;
            println!("deleted");
            println!("context: {ctx}");
        }
        Cmd::List { limit } => {
            let count = client
                .list_all(limit, |key| {
                    println!("{}", ringkv::client::printable_key(&key))
                })
                .await?;
            eprintln!("{count} keys");
        }
        Cmd::Status => {
            let status = client.status().await?;
            println!("node {}", status.node);
            for m in status.members {
                println!(
                    "  {} {} peer={} client={} dc={} rack={} ring={:.1}%",
                    m.id,
                    m.state,
                    m.addr,
                    m.client_addr.unwrap_or_default(),
                    m.dc,
                    m.rack.unwrap_or_default(),
                    m.ring_share.unwrap_or(0.0) * 100.0
                );
            }
        }
    }
    Ok(())
}
