//! RESP commands: an argument list (from `frame`) parsed into a typed
//! [`Command`], or the error Redis would answer (unknown command, wrong
//! number of arguments, a syntax error) or ringkv answers instead (a
//! command it does not support, and why). Pure: no I/O, no actor.

use super::frame::Reply;

/// The connection's consistency level (`RINGKV.CONSISTENCY`): the client
/// protocol's levels, except that `quorum` (the default) is the node's
/// configured R and W.
pub use crate::wire::client::Consistency;

/// A `CLIENT` subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// `CLIENT SETNAME name`.
    SetName(Vec<u8>),
    /// `CLIENT GETNAME`.
    GetName,
    /// `CLIENT ID`.
    Id,
    /// `CLIENT INFO`.
    Info,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (client libraries send it
    /// on connect; the value is kept for `CLIENT INFO`).
    SetInfo(Vec<u8>, Vec<u8>),
}

/// A `COMMAND` subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandQuery {
    /// `COMMAND`: every command's description.
    All,
    /// `COMMAND COUNT`.
    Count,
    /// `COMMAND INFO name...`.
    Info(Vec<Vec<u8>>),
    /// `COMMAND DOCS [name...]`.
    Docs(Vec<Vec<u8>>),
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `PING [message]`.
    Ping(Option<Vec<u8>>),
    /// `ECHO message`.
    Echo(Vec<u8>),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello {
        /// 2 or 3 (`None`: keep the current one).
        protover: Option<u8>,
        /// `AUTH username password`.
        auth: Option<(Vec<u8>, Vec<u8>)>,
        /// `SETNAME name`.
        setname: Option<Vec<u8>>,
    },
    /// `AUTH [username] password`.
    Auth {
        /// Only `default` is known.
        user: Option<Vec<u8>>,
        /// The client token.
        password: Vec<u8>,
    },
    /// `QUIT`.
    Quit,
    /// `SELECT 0` (only database 0 exists).
    Select,
    /// `GET key`.
    Get(Vec<u8>),
    /// `SET key value [EX s | PX ms]`, `SETEX key s value`, `PSETEX key
    /// ms value`: the value and its time to live in milliseconds.
    Set(Vec<u8>, Vec<u8>, Option<u64>),
    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: the `list`
    /// op's cursor (`None`: the first page), the glob, keys per page, and
    /// whether the type asked for is `string` (any other type has no keys).
    Scan {
        /// Where the previous page stopped.
        cursor: Option<Vec<u8>>,
        /// Only keys matching this glob are answered.
        pattern: Option<Vec<u8>>,
        /// Keys asked of the `list` op.
        count: usize,
        /// False for a `TYPE` other than `string`.
        strings: bool,
    },
    /// `KEYS pattern`.
    Keys(Vec<u8>),
    /// `DBSIZE`.
    DbSize,
    /// `DEL key...`.
    Del(Vec<Vec<u8>>),
    /// `EXISTS key...`.
    Exists(Vec<Vec<u8>>),
    /// `MGET key...`.
    MGet(Vec<Vec<u8>>),
    /// `MSET key value [key value ...]`.
    MSet(Vec<(Vec<u8>, Vec<u8>)>),
    /// `INFO [section...]` (lowercase; empty: the default sections).
    Info(Vec<String>),
    /// `COMMAND ...`.
    Command(CommandQuery),
    /// `CLIENT ...`.
    Client(ClientCommand),
    /// `CONFIG GET pattern...`: answered empty (redis-benchmark asks).
    ConfigGet,
    /// `RINGKV.CONSISTENCY one|quorum|all`.
    Consistency(Consistency),
    /// `RINGKV.SIBLINGS key`: every live sibling's value.
    Siblings(Vec<u8>),
    /// `RINGKV.RESOLVE key value`: `value` replaces every sibling read.
    Resolve(Vec<u8>, Vec<u8>),
}

/// Sizes a command's keys and values may have.
#[derive(Clone, Copy, Debug)]
pub struct CommandLimits {
    /// Largest key, in bytes (`max_key_bytes`).
    pub max_key_bytes: usize,
    /// Largest value, in bytes (`max_value_bytes`).
    pub max_value_bytes: usize,
}

/// The commands [`parse`] knows, with Redis's arity (negative: at least
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

/// Commands that need an atomic read-modify-write on one copy of a key;
/// answered with [`needs_one_copy`].
const ONE_COPY: &[&str] = &[
    "incr",
    "decr",
    "incrby",
    "decrby",
    "incrbyfloat",
    "append",
    "getset",
    "setnx",
    "setex",
    "psetex",
    "getdel",
    "getex",
    "setrange",
    "msetnx",
    "rename",
    "renamenx",
    "copy",
    "move",
    "lmove",
    "watch",
    "multi",
    "exec",
    "eval",
    "evalsha",
];

/// Commands that need the `list` op (not in this build yet).
const NEEDS_LIST: &[&str] = &["randomkey", "flushdb", "flushall"];

/// Commands whose data types ringkv does not have: a key holds bytes.
const OTHER_TYPES: &[&str] = &[
    "lpush", "rpush", "lpop", "rpop", "lrange", "llen", "sadd", "srem", "smembers", "spop",
    "scard", "hset", "hget", "hgetall", "hdel", "hmset", "hmget", "hincrby", "zadd", "zrange",
    "zrem", "zcard", "zscore", "xadd", "xrange", "pfadd", "pfcount", "setbit", "getbit",
    "bitcount",
];

/// Commands that need expiry, which ringkv does not have yet.
const NEEDS_TTL: &[&str] = &[
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "ttl",
    "pttl",
    "persist",
];

/// The client protocol op a command counts as in `ringkv_requests_total`
/// and `ringkv_request_duration_seconds` (`None`: not counted: commands
/// about the connection or the server, answered without a request).
pub fn metric_op(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::Get(_) | Command::MGet(_) | Command::Exists(_) | Command::Siblings(_) => "get",
        Command::Set(..) | Command::MSet(_) | Command::Resolve(..) => "put",
        Command::Del(_) => "delete",
        Command::Scan { .. } | Command::Keys(_) | Command::DbSize => "list",
        _ => return None,
    })
}

/// Why a command is refused before it runs.
fn needs_one_copy(name: &str) -> Reply {
    Reply::err(format!(
        "'{name}' needs an atomic read-modify-write on one copy of the key; ringkv keeps \
         several equal replicas and resolves concurrent writes as siblings, so it has no such \
         copy (read with GET and write with SET instead)"
    ))
}

/// Command names up to this many bytes are lower-cased on the stack; a
/// longer one (no command is) into a `String`.
const COMMAND_NAME_INLINE_BYTES: usize = 32;

/// Parses one command; `Err` is the reply that refuses it.
pub fn parse(args: &[Vec<u8>], limits: &CommandLimits) -> Result<Command, Reply> {
    let Some((raw, rest)) = args.split_first() else {
        return Err(Reply::err("empty command"));
    };
    // Lower-cased on the stack when it fits (every command name does):
    // no allocation per command.
    let mut inline = [0u8; COMMAND_NAME_INLINE_BYTES];
    let owned: String;
    let name: &str = match inline.get_mut(..raw.len()) {
        Some(folded) if raw.is_ascii() => {
            folded.copy_from_slice(raw);
            folded.make_ascii_lowercase();
            std::str::from_utf8(folded).unwrap_or_default()
        }
        _ => {
            owned = String::from_utf8_lossy(raw).to_ascii_lowercase();
            &owned
        }
    };
    let arity = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Reply::err(format!(
                "wrong number of arguments for '{name}' command"
            )))
        }
    };
    let key = |k: &Vec<u8>| check_key(k, limits);
    let value = |v: &Vec<u8>| check_value(v, limits);
    match name {
        "ping" => {
            arity(rest.len() <= 1)?;
            Ok(Command::Ping(rest.first().cloned()))
        }
        "echo" => {
            arity(rest.len() == 1)?;
            Ok(Command::Echo(rest[0].clone()))
        }
        "hello" => parse_hello(rest),
        "auth" => match rest {
            [password] => Ok(Command::Auth {
                user: None,
                password: password.clone(),
            }),
            [user, password] => Ok(Command::Auth {
                user: Some(user.clone()),
                password: password.clone(),
            }),
            _ => arity(false).and(Err(Reply::Nil)),
        },
        "quit" => Ok(Command::Quit),
        "select" => {
            arity(rest.len() == 1)?;
            if rest[0] == b"0" {
                Ok(Command::Select)
            } else {
                Err(Reply::err(
                    "DB index is out of range: ringkv has one database, 0",
                ))
            }
        }
        "get" => {
            arity(rest.len() == 1)?;
            Ok(Command::Get(key(&rest[0])?))
        }
        "set" => {
            arity(rest.len() >= 2)?;
            let (k, v) = (key(&rest[0])?, value(&rest[1])?);
            let mut ttl_ms = None;
            let mut options = rest[2..].iter();
            while let Some(option) = options.next() {
                let unit_ms = match option.to_ascii_lowercase().as_slice() {
                    b"ex" => 1_000,
                    b"px" => 1,
                    _ => return Err(set_option(option)),
                };
                let (Some(amount), None) = (options.next(), ttl_ms) else {
                    return Err(Reply::err("syntax error"));
                };
                ttl_ms = Some(expire_ms(amount, unit_ms, "set")?);
            }
            Ok(Command::Set(k, v, ttl_ms))
        }
        "setex" | "psetex" => {
            arity(rest.len() == 3)?;
            let unit_ms = if name == "setex" { 1_000 } else { 1 };
            let ttl_ms = expire_ms(&rest[1], unit_ms, name)?;
            Ok(Command::Set(key(&rest[0])?, value(&rest[2])?, Some(ttl_ms)))
        }
        "scan" => {
            arity(!rest.is_empty())?;
            let cursor = super::scan::scan_cursor(&rest[0]).map_err(Reply::err)?;
            let (mut pattern, mut count, mut strings) =
                (None, super::scan::SCAN_COUNT_DEFAULT, true);
            let mut options = rest[1..].iter();
            while let Some(option) = options.next() {
                let Some(arg) = options.next() else {
                    return Err(Reply::err("syntax error"));
                };
                match option.to_ascii_lowercase().as_slice() {
                    b"match" => pattern = Some(arg.clone()),
                    b"count" => {
                        count = std::str::from_utf8(arg)
                            .ok()
                            .and_then(|c| c.parse::<usize>().ok())
                            .filter(|c| *c >= 1)
                            .ok_or_else(|| Reply::err("value is not an integer or out of range"))?
                            .min(crate::wire::client::LIST_LIMIT_MAX);
                    }
                    b"type" => strings = arg.eq_ignore_ascii_case(b"string"),
                    _ => return Err(Reply::err("syntax error")),
                }
            }
            Ok(Command::Scan {
                cursor,
                pattern,
                count,
                strings,
            })
        }
        "keys" => {
            arity(rest.len() == 1)?;
            Ok(Command::Keys(rest[0].clone()))
        }
        "dbsize" => {
            arity(rest.is_empty())?;
            Ok(Command::DbSize)
        }
        "del" | "unlink" => {
            arity(!rest.is_empty())?;
            Ok(Command::Del(keys(rest, limits)?))
        }
        "exists" => {
            arity(!rest.is_empty())?;
            Ok(Command::Exists(keys(rest, limits)?))
        }
        "mget" => {
            arity(!rest.is_empty())?;
            Ok(Command::MGet(keys(rest, limits)?))
        }
        "mset" => {
            arity(!rest.is_empty() && rest.len() % 2 == 0)?;
            let pairs = rest
                .chunks(2)
                .map(|pair| Ok((key(&pair[0])?, value(&pair[1])?)))
                .collect::<Result<_, Reply>>()?;
            Ok(Command::MSet(pairs))
        }
        "info" => Ok(Command::Info(
            rest.iter()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .collect(),
        )),
        "command" => parse_command(rest),
        "client" => parse_client(rest),
        "config" => match rest.first().map(|s| s.to_ascii_lowercase()) {
            Some(sub) if sub == b"get" && rest.len() >= 2 => Ok(Command::ConfigGet),
            Some(sub) if sub == b"get" => Err(Reply::err(
                "wrong number of arguments for 'config|get' command",
            )),
            _ => Err(Reply::err(
                "ringkv answers only CONFIG GET (empty); its settings are the node's flags",
            )),
        },
        "ringkv.consistency" => {
            arity(rest.len() == 1)?;
            let name = String::from_utf8_lossy(&rest[0]).to_ascii_lowercase();
            let Some(level) = Consistency::from_name(&name) else {
                return Err(Reply::err(
                    "RINGKV.CONSISTENCY takes one, quorum, all, local_one, local_quorum or \
                     each_quorum",
                ));
            };
            Ok(Command::Consistency(level))
        }
        "ringkv.siblings" => {
            arity(rest.len() == 1)?;
            Ok(Command::Siblings(key(&rest[0])?))
        }
        "ringkv.resolve" => {
            arity(rest.len() == 2)?;
            Ok(Command::Resolve(key(&rest[0])?, value(&rest[1])?))
        }
        n if ONE_COPY.contains(&n) => Err(needs_one_copy(n)),
        n if NEEDS_LIST.contains(&n) => Err(Reply::err(format!(
            "'{n}' is not supported yet: it needs the node's key listing (the `list` op)"
        ))),
        n if NEEDS_TTL.contains(&n) => Err(Reply::err(format!(
            "'{n}' is not supported: a key's expiry is set with its value (SET EX/PX, SETEX, \
             PSETEX) and cannot be read or changed on its own"
        ))),
        n if OTHER_TYPES.contains(&n) => Err(Reply::Error(format!(
            "WRONGTYPE '{n}' is not supported: a ringkv key holds one byte string \
             (or siblings of them), no lists, sets, hashes or sorted sets"
        ))),
        _ => Err(unknown(name, rest)),
    }
}

/// Redis's text for a command it does not know.
fn unknown(name: &str, rest: &[Vec<u8>]) -> Reply {
    let args: String = rest
        .iter()
        .take(8)
        .map(|a| format!("'{}' ", String::from_utf8_lossy(a)))
        .collect();
    Reply::err(format!(
        "unknown command '{name}', with args beginning with: {args}"
    ))
}

/// A time to live of `amount` units of `unit_ms`, in milliseconds:
/// 1..=`TTL_MS_MAX`, else Redis's error.
fn expire_ms(amount: &[u8], unit_ms: u64, command: &str) -> Result<u64, Reply> {
    std::str::from_utf8(amount)
        .ok()
        .and_then(|a| a.parse::<u64>().ok())
        .and_then(|a| a.checked_mul(unit_ms))
        .filter(|ms| (1..=crate::wire::client::TTL_MS_MAX).contains(ms))
        .ok_or_else(|| Reply::err(format!("invalid expire time in '{command}' command")))
}

/// The answer to a SET option other than EX and PX.
fn set_option(option: &[u8]) -> Reply {
    match option.to_ascii_lowercase().as_slice() {
        b"exat" | b"pxat" => Reply::err(
            "SET with EXAT/PXAT is not supported: give the time to live with EX or PX \
             (the expiry is then set by the node that takes the write)",
        ),
        b"keepttl" => Reply::err(
            "SET with KEEPTTL needs the key's current expiry, an atomic read-modify-write on \
             one copy of the key; ringkv has no such copy",
        ),
        b"nx" | b"xx" | b"get" => Reply::err(
            "SET with NX/XX/GET needs an atomic read-modify-write on one copy of the key; \
             ringkv keeps several equal replicas and resolves concurrent writes as siblings, \
             so it has no such copy",
        ),
        _ => Reply::err("syntax error"),
    }
}

fn parse_hello(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let mut protover = None;
    let mut auth = None;
    let mut setname = None;
    let mut at = 0;
    if let Some(first) = rest.first() {
        protover = match first.as_slice() {
            b"2" => Some(2),
            b"3" => Some(3),
            _ => return Err(Reply::Error("NOPROTO unsupported protocol version".into())),
        };
        at = 1;
    }
    while at < rest.len() {
        match rest[at].to_ascii_lowercase().as_slice() {
            b"auth" if at + 2 < rest.len() => {
                auth = Some((rest[at + 1].clone(), rest[at + 2].clone()));
                at += 3;
            }
            b"setname" if at + 1 < rest.len() => {
                setname = Some(rest[at + 1].clone());
                at += 2;
            }
            _ => {
                return Err(Reply::err(format!(
                    "syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&rest[at])
                )))
            }
        }
    }
    Ok(Command::Hello {
        protover,
        auth,
        setname,
    })
}

fn parse_command(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let Some(sub) = rest.first() else {
        return Ok(Command::Command(CommandQuery::All));
    };
    let names = || rest[1..].to_vec();
    match sub.to_ascii_lowercase().as_slice() {
        b"count" => Ok(Command::Command(CommandQuery::Count)),
        b"info" => Ok(Command::Command(CommandQuery::Info(names()))),
        b"docs" => Ok(Command::Command(CommandQuery::Docs(names()))),
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND COUNT, COMMAND INFO, COMMAND DOCS",
            String::from_utf8_lossy(sub)
        ))),
    }
}

fn parse_client(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let Some(sub) = rest.first() else {
        return Err(Reply::err("wrong number of arguments for 'client' command"));
    };
    let sub = sub.to_ascii_lowercase();
    let arity = |ok: bool, name: &str| {
        if ok {
            Ok(())
        } else {
            Err(Reply::err(format!(
                "wrong number of arguments for 'client|{name}' command"
            )))
        }
    };
    match sub.as_slice() {
        b"setname" => {
            arity(rest.len() == 2, "setname")?;
            if rest[1].iter().any(|b| *b <= b' ' || *b > b'~') {
                return Err(Reply::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            Ok(Command::Client(ClientCommand::SetName(rest[1].clone())))
        }
        b"getname" => Ok(Command::Client(ClientCommand::GetName)),
        b"id" => Ok(Command::Client(ClientCommand::Id)),
        b"info" => Ok(Command::Client(ClientCommand::Info)),
        b"setinfo" => {
            arity(rest.len() == 3, "setinfo")?;
            Ok(Command::Client(ClientCommand::SetInfo(
                rest[1].to_ascii_lowercase(),
                rest[2].clone(),
            )))
        }
        _ => Err(Reply::err(format!(
            "CLIENT {} is not supported; ringkv answers CLIENT SETNAME, GETNAME, ID, INFO, SETINFO",
            String::from_utf8_lossy(&sub).to_ascii_uppercase()
        ))),
    }
}

fn check_key(key: &[u8], limits: &CommandLimits) -> Result<Vec<u8>, Reply> {
    if key.is_empty() {
        return Err(Reply::err("a ringkv key may not be empty"));
    }
    if key.len() > limits.max_key_bytes {
        return Err(Reply::err(format!(
            "key of {} bytes is over the limit of {} bytes (max_key_bytes)",
            key.len(),
            limits.max_key_bytes
        )));
    }
    Ok(key.to_vec())
}

fn check_value(value: &[u8], limits: &CommandLimits) -> Result<Vec<u8>, Reply> {
    if value.len() > limits.max_value_bytes {
        return Err(Reply::err(format!(
            "value of {} bytes is over the limit of {} bytes (max_value_bytes)",
            value.len(),
            limits.max_value_bytes
        )));
    }
    Ok(value.to_vec())
}

fn keys(keys: &[Vec<u8>], limits: &CommandLimits) -> Result<Vec<Vec<u8>>, Reply> {
    keys.iter().map(|k| check_key(k, limits)).collect()
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMITS: CommandLimits = CommandLimits {
        max_key_bytes: 8,
        max_value_bytes: 16,
    };

    fn parse_words(words: &[&str]) -> Result<Command, Reply> {
        let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        parse(&args, &LIMITS)
    }

    fn error_text(r: Result<Command, Reply>) -> String {
        match r {
            Err(Reply::Error(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(
            parse_words(&["gEt", "k"]).unwrap(),
            Command::Get(b"k".to_vec())
        );
        assert_eq!(
            parse_words(&["SET", "k", "v"]).unwrap(),
            Command::Set(b"k".to_vec(), b"v".to_vec(), None)
        );
        assert_eq!(parse_words(&["PING"]).unwrap(), Command::Ping(None));
        // Names past the inline buffer, and ones that are not ASCII, are
        // lower-cased as before (into a String; ASCII letters only).
        let long = "X".repeat(COMMAND_NAME_INLINE_BYTES + 1);
        let e = error_text(parse_words(&[long.as_str()]));
        assert!(
            e.contains(&"x".repeat(COMMAND_NAME_INLINE_BYTES + 1)),
            "{e}"
        );
        let e = error_text(parse_words(&["ÉTÉ"]));
        assert!(e.contains("unknown command 'ÉtÉ'"), "{e}");
    }

    #[test]
    fn wrong_arity_is_redis_s_error() {
        assert_eq!(
            error_text(parse_words(&["GET"])),
            "ERR wrong number of arguments for 'get' command"
        );
        assert!(error_text(parse_words(&["MSET", "a", "1", "b"])).contains("wrong number"));
        assert!(error_text(parse_words(&["ECHO"])).contains("wrong number"));
    }

    #[test]
    fn unknown_commands_get_the_standard_error() {
        let e = error_text(parse_words(&["FOO", "bar"]));
        assert!(
            e.starts_with("ERR unknown command 'foo', with args beginning with: 'bar'"),
            "{e}"
        );
    }

    #[test]
    fn read_modify_write_commands_say_why_not() {
        for name in ["INCR", "decr", "INCRBY", "APPEND", "GETSET", "SETNX"] {
            let e = error_text(parse_words(&[name, "k", "1"]));
            assert!(e.contains("atomic read-modify-write on one copy"), "{e}");
        }
        let e = error_text(parse_words(&["SET", "k", "v", "NX"]));
        assert!(e.contains("atomic read-modify-write"), "{e}");
        let e = error_text(parse_words(&["SET", "k", "v", "KEEPTTL"]));
        assert!(e.contains("atomic read-modify-write"), "{e}");
        let e = error_text(parse_words(&["SET", "k", "v", "bogus"]));
        assert_eq!(e, "ERR syntax error");
        let e = error_text(parse_words(&["TTL", "k"]));
        assert!(e.contains("SET EX/PX"), "{e}");
    }

    #[test]
    fn set_takes_a_time_to_live() {
        let set = |words: &[&str]| parse_words(words);
        let k = || b"k".to_vec();
        let v = || b"v".to_vec();
        assert_eq!(
            set(&["SET", "k", "v", "EX", "10"]).unwrap(),
            Command::Set(k(), v(), Some(10_000))
        );
        assert_eq!(
            set(&["set", "k", "v", "px", "250"]).unwrap(),
            Command::Set(k(), v(), Some(250))
        );
        assert_eq!(
            set(&["SETEX", "k", "2", "v"]).unwrap(),
            Command::Set(k(), v(), Some(2_000))
        );
        assert_eq!(
            set(&["PSETEX", "k", "7", "v"]).unwrap(),
            Command::Set(k(), v(), Some(7))
        );
        for bad in [
            &["SET", "k", "v", "EX", "0"][..],
            &["SET", "k", "v", "PX", "-5"],
            &["SET", "k", "v", "EX", "ten"],
            &["SETEX", "k", "99999999999999999", "v"],
        ] {
            assert!(
                error_text(set(bad)).contains("invalid expire time"),
                "{bad:?}"
            );
        }
        assert_eq!(
            error_text(set(&["SET", "k", "v", "EX"])),
            "ERR syntax error"
        );
        assert_eq!(
            error_text(set(&["SET", "k", "v", "EX", "1", "PX", "5"])),
            "ERR syntax error"
        );
        assert!(error_text(set(&["SET", "k", "v", "EXAT", "1"])).contains("EX or PX"));
    }

    #[test]
    fn scan_keys_and_dbsize_parse() {
        assert_eq!(
            parse_words(&["SCAN", "0"]).unwrap(),
            Command::Scan {
                cursor: None,
                pattern: None,
                count: crate::resp::scan::SCAN_COUNT_DEFAULT,
                strings: true
            }
        );
        assert_eq!(
            parse_words(&["scan", "01ff", "MATCH", "u:*", "COUNT", "5000", "TYPE", "hash"])
                .unwrap(),
            Command::Scan {
                cursor: Some(vec![1, 0xff]),
                pattern: Some(b"u:*".to_vec()),
                count: crate::wire::client::LIST_LIMIT_MAX,
                strings: false
            }
        );
        assert!(error_text(parse_words(&["SCAN", "zz"])).contains("invalid cursor"));
        assert!(error_text(parse_words(&["SCAN", "0", "COUNT", "0"])).contains("out of range"));
        assert_eq!(
            error_text(parse_words(&["SCAN", "0", "MATCH"])),
            "ERR syntax error"
        );
        assert_eq!(
            parse_words(&["KEYS", "*"]).unwrap(),
            Command::Keys(b"*".to_vec())
        );
        assert_eq!(parse_words(&["DBSIZE"]).unwrap(), Command::DbSize);
        assert!(error_text(parse_words(&["DBSIZE", "x"])).contains("wrong number"));
    }

    #[test]
    fn keys_and_values_are_bounded() {
        assert!(error_text(parse_words(&["GET", "123456789"])).contains("max_key_bytes"));
        assert!(error_text(parse_words(&["GET", ""])).contains("empty"));
        let big = "v".repeat(17);
        assert!(error_text(parse_words(&["SET", "k", &big])).contains("max_value_bytes"));
        assert!(error_text(parse_words(&["MSET", "k", "v", "k2", &big])).contains("max_value"));
    }

    #[test]
    fn multi_key_commands_keep_their_order() {
        assert_eq!(
            parse_words(&["MSET", "a", "1", "b", "2"]).unwrap(),
            Command::MSet(vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ])
        );
        assert_eq!(
            parse_words(&["DEL", "a", "b"]).unwrap(),
            Command::Del(vec![b"a".to_vec(), b"b".to_vec()])
        );
    }

    #[test]
    fn hello_takes_a_version_auth_and_a_name() {
        assert_eq!(
            parse_words(&["HELLO", "3", "AUTH", "default", "tok", "SETNAME", "app"]).unwrap(),
            Command::Hello {
                protover: Some(3),
                auth: Some((b"default".to_vec(), b"tok".to_vec())),
                setname: Some(b"app".to_vec()),
            }
        );
        assert_eq!(
            parse_words(&["HELLO"]).unwrap(),
            Command::Hello {
                protover: None,
                auth: None,
                setname: None
            }
        );
        assert!(error_text(parse_words(&["HELLO", "4"])).starts_with("NOPROTO"));
        assert!(error_text(parse_words(&["HELLO", "3", "AUTH", "x"])).contains("syntax"));
    }

    #[test]
    fn consistency_levels() {
        assert_eq!(
            parse_words(&["RINGKV.CONSISTENCY", "ALL"]).unwrap(),
            Command::Consistency(Consistency::All)
        );
        assert_eq!(
            parse_words(&["ringkv.consistency", "Each_Quorum"]).unwrap(),
            Command::Consistency(Consistency::EachQuorum)
        );
        assert!(parse_words(&["ringkv.consistency", "most"]).is_err());
    }

    #[test]
    fn select_knows_only_database_zero() {
        assert_eq!(parse_words(&["SELECT", "0"]).unwrap(), Command::Select);
        assert!(error_text(parse_words(&["SELECT", "1"])).contains("out of range"));
    }

    #[test]
    fn client_subcommands() {
        assert_eq!(
            parse_words(&["CLIENT", "setname", "app"]).unwrap(),
            Command::Client(ClientCommand::SetName(b"app".to_vec()))
        );
        assert!(parse_words(&["CLIENT", "SETNAME", "a b"]).is_err());
        assert_eq!(
            parse_words(&["client", "ID"]).unwrap(),
            Command::Client(ClientCommand::Id)
        );
        assert!(parse_words(&["CLIENT", "KILL", "x"]).is_err());
    }

    #[test]
    fn command_count_matches_command() {
        let Reply::Array(all) = command_reply(&CommandQuery::All) else {
            panic!()
        };
        assert_eq!(
            command_reply(&CommandQuery::Count),
            Reply::Int(all.len() as i64)
        );
        let info = command_reply(&CommandQuery::Info(vec![b"GET".to_vec(), b"nope".to_vec()]));
        let Reply::Array(info) = info else { panic!() };
        assert!(matches!(&info[0], Reply::Array(f) if f[0] == Reply::text("get")));
        assert_eq!(info[1], Reply::Nil);
    }
}
