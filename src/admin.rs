//! `ringkv admin members | ring | repair`: the admin extensions of the
//! native protocol (docs/protocol.md), printed as aligned nodetool-like
//! tables. `members` asks the node given for the table, then every other
//! reachable member for its own load and the hints it holds.

use anyhow::Context as _;
use ringkv_actors::wire::client::{map_field, map_str, ClientOp};
use rmpv::Value;

use crate::client::{Client, TlsOptions};

/// `println!` that ends the command quietly when stdout is closed (the
/// table piped into `head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        if let Err(e) = std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)*))) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    };
}

/// How to reach a node (the same TLS and token for every member).
pub struct Connect {
    /// TLS, if the cluster speaks it.
    pub tls: Option<TlsOptions>,
    /// The token to `auth` with.
    pub token: Option<Vec<u8>>,
}

impl Connect {
    /// A connected, authenticated client for `addr`.
    pub async fn client(&self, addr: &str) -> anyhow::Result<Client> {
        let client = match &self.tls {
            Some(tls) => Client::connect_tls(addr, tls).await,
            None => Client::connect(addr).await,
        }
        .with_context(|| format!("cannot connect to {addr}"))?;
        if let Some(token) = &self.token {
            client.auth(token).await.context("auth")?;
        }
        Ok(client)
    }
}

fn rows(value: &Value, name: &str) -> Vec<Value> {
    match map_field(value, name) {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

fn u64_of(value: &Value, name: &str) -> Option<u64> {
    map_field(value, name).and_then(Value::as_u64)
}

fn text(value: &Value, name: &str) -> String {
    map_str(value, name).unwrap_or_else(|| "-".into())
}

/// Bytes as an operator reads them (B, KiB, MiB, GiB).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `members`: one row per member.
pub async fn members(connect: &Connect, addr: &str) -> anyhow::Result<()> {
    let client = connect.client(addr).await?;
    let answer = client.admin(ClientOp::Members).await?;
    let node = text(&answer, "node");
    let members = rows(&answer, "members");
    // Each member's own answer: its load, and the hints it holds for others.
    let mut load: Vec<(String, u64)> = Vec::new();
    let mut hints: Vec<(String, u64)> = Vec::new();
    let mut unreachable = Vec::new();
    for m in &members {
        let id = text(m, "id");
        let state = text(m, "state");
        let view = if id == node {
            Some(answer.clone())
        } else if state == "alive" || state == "joining" || state == "leaving" {
            let client_addr = text(m, "client_addr");
            match connect.client(&client_addr).await {
                Ok(c) => c.admin(ClientOp::Members).await.ok(),
                Err(_) => None,
            }
        } else {
            None
        };
        let Some(view) = view else {
            unreachable.push(id);
            continue;
        };
        for row in rows(&view, "members") {
            let target = text(&row, "id");
            if target == id {
                if let Some(bytes) = u64_of(&row, "load_bytes") {
                    load.push((id.clone(), bytes));
                }
            }
            let held = u64_of(&row, "hints_pending").unwrap_or(0);
            match hints.iter_mut().find(|(t, _)| *t == target) {
                Some((_, sum)) => *sum += held,
                None => hints.push((target, held)),
            }
        }
    }
    out!("cluster as seen by {node}");
    out!(
        "{:<10} {:<22} {:<8} {:<12} {:>12} {:>6} {:>7} {:>13}",
        "node",
        "address",
        "state",
        "dc/rack",
        "load",
        "tokens",
        "owns",
        "hints pending"
    );
    for m in &members {
        let id = text(m, "id");
        let load = load
            .iter()
            .find(|(n, _)| *n == id)
            .map_or("?".to_string(), |(_, b)| human_bytes(*b));
        let pending = hints.iter().find(|(n, _)| *n == id).map_or(0, |(_, h)| *h);
        let owns = map_field(m, "owns").and_then(Value::as_f64).unwrap_or(0.0);
        out!(
            "{:<10} {:<22} {:<8} {:<12} {:>12} {:>6} {:>6.1}% {:>13}",
            id,
            text(m, "addr"),
            text(m, "state"),
            format!("{}/{}", text(m, "dc"), text(m, "rack")),
            load,
            u64_of(m, "tokens").unwrap_or(0),
            owns * 100.0,
            pending
        );
    }
    if !unreachable.is_empty() {
        out!(
            "(not asked, down or unreachable: {}; their load is ?, and hints they hold are not counted)",
            unreachable.join(", ")
        );
    }
    Ok(())
}

/// `ring`: the token ranges, consecutive ranges with the same replicas
/// merged.
pub async fn ring(connect: &Connect, addr: &str) -> anyhow::Result<()> {
    let client = connect.client(addr).await?;
    let answer = client.admin(ClientOp::Ring).await?;
    let ranges = rows(&answer, "ranges");
    let per_dc = text(&answer, "dc_replication");
    out!(
        "ring as seen by {}: {} tokens, {} ranges (N={}{})",
        text(&answer, "node"),
        u64_of(&answer, "tokens").unwrap_or(0),
        ranges.len(),
        u64_of(&answer, "n").unwrap_or(0),
        if per_dc.is_empty() || per_dc == "-" {
            String::new()
        } else {
            format!(", per DC {per_dc}")
        }
    );
    out!(
        "{:>20} {:>20} {:<10} replicas",
        "after (excl.)",
        "upto (incl.)",
        "primary"
    );
    for r in &ranges {
        let dcs = rows(r, "dcs");
        // Each replica with its data center, when the ring spans several.
        let several_dcs = dcs.windows(2).any(|w| w[0] != w[1]);
        let replicas: Vec<String> = rows(r, "replicas")
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let id = v.as_str()?;
                Some(match dcs.get(i).and_then(|d| d.as_str()) {
                    Some(dc) if several_dcs => format!("{id}@{dc}"),
                    _ => id.to_owned(),
                })
            })
            .collect();
        out!(
            "{:>20} {:>20} {:<10} {}",
            u64_of(r, "after").unwrap_or(0),
            u64_of(r, "upto").unwrap_or(0),
            replicas.first().map_or("-", String::as_str),
            replicas.join(",")
        );
    }
    Ok(())
}

/// `repair`: an anti-entropy exchange with each peer, printed as each
/// ends; with `key`, that key's read repair.
pub async fn repair(connect: &Connect, addr: &str, key: Option<String>) -> anyhow::Result<()> {
    let client = connect.client(addr).await?;
    if let Some(key) = key {
        let answer = client
            .admin(ClientOp::Repair {
                peer: None,
                key: Some(key.clone().into_bytes()),
            })
            .await?;
        out!("read repair of {key:?} on {}", text(&answer, "node"));
        out!(
            "{:<10} {:<6} {:>8} {:>5} {:<9} {:<9} clock",
            "replica",
            "found",
            "siblings",
            "live",
            "tombstone",
            "repaired"
        );
        for r in rows(&answer, "replicas") {
            let flag = |name| {
                map_field(&r, name)
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            out!(
                "{:<10} {:<6} {:>8} {:>5} {:<9} {:<9} {}",
                text(&r, "node"),
                if flag("found") { "yes" } else { "no" },
                u64_of(&r, "siblings").unwrap_or(0),
                u64_of(&r, "live").unwrap_or(0),
                if flag("tombstone") { "yes" } else { "no" },
                if flag("repaired") { "yes" } else { "no" },
                map_str(&r, "error")
                    .map(|e| format!("error: {e}"))
                    .unwrap_or_else(|| text(&r, "clock"))
            );
        }
        return Ok(());
    }
    let status = client.status().await?;
    let peers: Vec<String> = status
        .members
        .iter()
        .filter(|m| m.id != status.node && m.state != "left")
        .map(|m| m.id.clone())
        .collect();
    out!("anti-entropy on {} with {} peers", status.node, peers.len());
    out!(
        "{:<10} {:>7} {:>9} {:>7} {:>9} {:>12}  result",
        "peer",
        "leaves",
        "differing",
        "keys",
        "repaired",
        "bytes"
    );
    let (mut keys, mut repaired, mut bytes) = (0u64, 0u64, 0u64);
    for peer in peers {
        let answer = client
            .admin(ClientOp::Repair {
                peer: Some(peer.clone()),
                key: None,
            })
            .await?;
        for e in rows(&answer, "exchanges") {
            let ok = map_field(&e, "ok")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let field = |name| u64_of(&e, name).unwrap_or(0);
            keys += field("keys");
            repaired += field("repaired");
            bytes += field("bytes");
            out!(
                "{:<10} {:>7} {:>9} {:>7} {:>9} {:>12}  {}",
                text(&e, "peer"),
                field("leaves"),
                field("differing"),
                field("keys"),
                field("repaired"),
                field("bytes"),
                if ok {
                    "ok".to_string()
                } else {
                    format!("failed: {}", text(&e, "error"))
                }
            );
        }
    }
    out!("total: {keys} keys pulled, {repaired} keys repaired, {bytes} bytes");
    Ok(())
}
