//! The `COMMAND` command: the commands ringkv knows, with Redis's arity
//! and flags, and its replies (`COMMAND`, `COUNT`, `INFO`, `DOCS`).

use super::CommandQuery;
use crate::resp::frame::Reply;

/// The commands [`parse`](super::parse) knows, with Redis's arity (negative: at least
/// that many arguments) and flags, for `COMMAND`.
pub const COMMANDS: &[(&str, i64, &[&str])] = &[
    ("ping", -1, &["fast", "stale"]),
    ("echo", 2, &["fast", "stale"]),
    (
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
    ),
    (
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no_auth"],
    ),
    (
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
    ),
    ("select", 2, &["loading", "stale", "fast"]),
    ("get", 2, &["readonly", "fast"]),
    ("set", -3, &["write", "denyoom"]),
    ("setex", 4, &["write", "denyoom"]),
    ("psetex", 4, &["write", "denyoom"]),
    ("scan", -2, &["readonly"]),
    ("keys", 2, &["readonly"]),
    ("dbsize", 1, &["readonly", "fast"]),
    ("del", -2, &["write"]),
    ("exists", -2, &["readonly", "fast"]),
    ("mget", -2, &["readonly", "fast"]),
    ("mset", -3, &["write", "denyoom"]),
    ("info", -1, &["loading", "stale"]),
    ("command", -1, &["loading", "stale"]),
    ("client", -2, &["loading", "stale"]),
    ("config", -2, &["loading", "stale"]),
    ("ringkv.consistency", 2, &["fast"]),
    ("ringkv.siblings", 2, &["readonly"]),
    ("ringkv.resolve", 3, &["write", "denyoom"]),
];

/// `COMMAND INFO` for one known command (Redis 7's ten fields).
pub fn command_info(name: &str) -> Option<Reply> {
    let (name, arity, flags) = COMMANDS.iter().find(|(n, _, _)| *n == name)?;
    let (first, last, step) = match *name {
        "get" | "set" | "ringkv.siblings" | "ringkv.resolve" => (1, 1, 1),
        "del" | "exists" | "mget" => (1, -1, 1),
        "mset" => (1, -1, 2),
        _ => (0, 0, 0),
    };
    Some(Reply::Array(vec![
        Reply::text(*name),
        Reply::Int(*arity),
        Reply::Array(flags.iter().map(|f| Reply::Simple((*f).into())).collect()),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ]))
}

/// The answer to a `COMMAND` query.
pub fn command_reply(query: &CommandQuery) -> Reply {
    let lower = |n: &Vec<u8>| String::from_utf8_lossy(n).to_ascii_lowercase();
    match query {
        CommandQuery::All => Reply::Array(
            COMMANDS
                .iter()
                .filter_map(|(n, _, _)| command_info(n))
                .collect(),
        ),
        CommandQuery::Count => Reply::Int(COMMANDS.len() as i64),
        CommandQuery::Info(names) => Reply::Array(
            names
                .iter()
                .map(|n| command_info(&lower(n)).unwrap_or(Reply::Nil))
                .collect(),
        ),
        // Docs are optional for clients (redis-cli uses them for hints):
        // a short summary per known command.
        CommandQuery::Docs(names) => {
            let known: Vec<&str> = if names.is_empty() {
                COMMANDS.iter().map(|(n, _, _)| *n).collect()
            } else {
                COMMANDS
                    .iter()
                    .map(|(n, _, _)| *n)
                    .filter(|n| names.iter().any(|m| lower(m) == *n))
                    .collect()
            };
            Reply::Map(
                known
                    .into_iter()
                    .map(|n| {
                        (
                            Reply::text(n),
                            Reply::Map(vec![
                                (Reply::text("summary"), Reply::text(summary(n))),
                                (Reply::text("group"), Reply::text("string")),
                            ]),
                        )
                    })
                    .collect(),
            )
        }
    }
}

fn summary(name: &str) -> &'static str {
    match name {
        "get" => "Get the value of a key (an error if it has siblings, unless resp_siblings = lww)",
        "set" => "Set a key (EX/PX: with a time to live), superseding what the coordinating replica holds",
        "setex" => "Set a key with a time to live in seconds",
        "psetex" => "Set a key with a time to live in milliseconds",
        "scan" => "Page through the keys in ring order (the list op; MATCH filters each page)",
        "keys" => "Every key matching a pattern (refused past RESP_KEYS_MAX keys: use SCAN)",
        "dbsize" => "The number of keys: exact up to DBSIZE_EXACT_KEYS_MAX, else estimated",
        "del" => "Delete keys",
        "exists" => "Count the keys that exist",
        "mget" => "Get the values of several keys",
        "mset" => "Set several keys (not atomically)",
        "ringkv.consistency" => "Set this connection's reads and writes to one, quorum, all, local_one, local_quorum or each_quorum",
        "ringkv.siblings" => "Every sibling value of a key",
        "ringkv.resolve" => "Write a value that replaces every sibling of a key",
        _ => "See ringkv's README, \"Redis protocol\"",
    }
}
