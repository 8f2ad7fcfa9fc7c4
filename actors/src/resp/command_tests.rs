//! Tests of RESP command parsing (`command.rs`).
#![allow(clippy::unwrap_used)]

use super::*;

const LIMITS: CommandLimits = CommandLimits {
    max_key_bytes: 8,
    max_value_bytes: 16,
};

fn parse_words(words: &[&str]) -> Result<Command, Reply> {
    let mut args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    parse(&mut args, &LIMITS)
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
        parse_words(&["scan", "01ff", "MATCH", "u:*", "COUNT", "5000", "TYPE", "hash"]).unwrap(),
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
