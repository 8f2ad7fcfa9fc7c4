//! RESP commands: an argument list (from `frame`) parsed into a typed
//! [`Command`], or the error Redis would answer (unknown command, wrong
//! number of arguments, a syntax error) or ringkv answers instead (a
//! command it does not support, and why). Pure: no I/O, no actor.

mod connection;
mod table;

pub use table::{command_info, command_reply, COMMANDS};

use super::frame::Reply;
use connection::{parse_client, parse_command, parse_hello};

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

/// Parses one command; `Err` is the reply that refuses it. The keys and
/// values the command keeps are moved out of `args` (left empty), not
/// copied.
pub fn parse(args: &mut [Vec<u8>], limits: &CommandLimits) -> Result<Command, Reply> {
    let Some((raw, rest)) = args.split_first_mut() else {
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
    let key = |k: &mut Vec<u8>| check_key(k, limits);
    let value = |v: &mut Vec<u8>| check_value(v, limits);
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
            Ok(Command::Get(key(&mut rest[0])?))
        }
        "set" => {
            arity(rest.len() >= 2)?;
            let (k, v) = (key(&mut rest[0])?, value(&mut rest[1])?);
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
            Ok(Command::Set(
                key(&mut rest[0])?,
                value(&mut rest[2])?,
                Some(ttl_ms),
            ))
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
                .chunks_mut(2)
                .map(|pair| Ok((key(&mut pair[0])?, value(&mut pair[1])?)))
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
            Ok(Command::Siblings(key(&mut rest[0])?))
        }
        "ringkv.resolve" => {
            arity(rest.len() == 2)?;
            Ok(Command::Resolve(key(&mut rest[0])?, value(&mut rest[1])?))
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

/// `key`, moved out of the command's arguments, if it is a valid key.
fn check_key(key: &mut Vec<u8>, limits: &CommandLimits) -> Result<Vec<u8>, Reply> {
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
    Ok(std::mem::take(key))
}

/// `value`, moved out of the command's arguments, if it is within the
/// limit.
fn check_value(value: &mut Vec<u8>, limits: &CommandLimits) -> Result<Vec<u8>, Reply> {
    if value.len() > limits.max_value_bytes {
        return Err(Reply::err(format!(
            "value of {} bytes is over the limit of {} bytes (max_value_bytes)",
            value.len(),
            limits.max_value_bytes
        )));
    }
    Ok(std::mem::take(value))
}

fn keys(keys: &mut [Vec<u8>], limits: &CommandLimits) -> Result<Vec<Vec<u8>>, Reply> {
    keys.iter_mut().map(|k| check_key(k, limits)).collect()
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
