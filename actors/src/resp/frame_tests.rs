//! Tests of RESP framing and replies (`frame.rs`).

#![allow(clippy::unwrap_used)]

use super::*;

const LIMITS: FrameLimits = FrameLimits {
    frame_bytes_max: 1024,
    args_max: 8,
};

fn frame(buf: &[u8]) -> Framed {
    next_frame(buf, &LIMITS)
}

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn an_array_of_bulk_strings_is_a_command() {
    let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
    assert_eq!(frame(buf), Framed::Command(args(&["GET", "k"]), 20));
    assert_eq!(frame(&buf[20..]), Framed::Command(args(&["PING"]), 14));
}

/// One element of a generated array: a bulk string (any bytes), a
/// null bulk string, an integer or a simple string.
fn element() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        6 => proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), any::<u8>()],
            0..12,
        )
        .prop_map(|bytes| [format!("${}\r\n", bytes.len()).into_bytes(), bytes, b"\r\n".to_vec()].concat()),
        1 => Just(b"$-1\r\n".to_vec()),
        1 => any::<i32>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        1 => Just(b"+OK\r\n".to_vec()),
    ]
}

proptest::proptest! {
    /// A header's length reads as `str::parse` reads it, whatever the
    /// line holds: digits, signs, leading zeros, 19-digit overflows.
    #[test]
    fn lengths_read_as_the_parse_reads_them(
        digits in proptest::collection::vec(
            proptest::prop_oneof![
                8 => proptest::char::range('0', '9'),
                1 => proptest::prelude::Just('-'),
                1 => proptest::prelude::Just('+'),
                1 => proptest::prelude::Just('x'),
            ],
            0..22,
        ),
    ) {
        let digits: String = digits.into_iter().collect();
        let parsed = digits.parse::<i64>().ok().filter(|n| *n >= -1);
        let line = format!("${digits}\r\n");
        let read = header(line.as_bytes(), 0).ok().flatten().map(|(n, _)| n);
        proptest::prop_assert_eq!(read, parsed);
    }

    /// Arrays read straight from the bytes frame exactly as the crate
    /// decodes them, whatever their elements.
    #[test]
    fn arrays_read_directly_match_the_crate(
        elements in proptest::collection::vec(element(), 0..6),
    ) {
        let buf = [format!("*{}\r\n", elements.len()).into_bytes(), elements.concat()].concat();
        let len = delimit(&buf, &LIMITS).unwrap().unwrap();
        proptest::prop_assert_eq!(len, buf.len());
        proptest::prop_assert_eq!(decode_array(&buf, len), decode_array_by_crate(&buf, len));
    }

    /// Bulk strings, nil and integers written directly are the bytes
    /// the crate writes for them, in both protocols.
    #[test]
    fn replies_written_directly_match_the_crate(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        n in proptest::prelude::any::<i64>(),
    ) {
        let edges = [0, 9, 10, -1, -10, i64::MAX, i64::MIN];
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let replies = [Reply::Bulk(bytes.clone()), Reply::Nil, Reply::Int(n)]
                .into_iter()
                .chain(edges.map(Reply::Int));
            for reply in replies {
                proptest::prop_assert_eq!(
                    reply.clone().encode(protocol),
                    reply.encode_frame(protocol)
                );
            }
        }
    }
}

/// The edges the generated lines rarely reach: the largest length, one
/// past it, many leading zeros, a sign, nothing.
#[test]
fn lengths_at_the_edges_read_as_the_parse_reads_them() {
    for digits in [
        "9223372036854775807",
        "9223372036854775808",
        "99999999999999999999",
        "999999999999999999",
        "000000000000000000005",
        "+5",
        "-1",
        "-2",
        "",
        "0",
    ] {
        let parsed = digits.parse::<i64>().ok().filter(|n| *n >= -1);
        let line = format!("${digits}\r\n");
        let read = header(line.as_bytes(), 0).ok().flatten().map(|(n, _)| n);
        assert_eq!(read, parsed, "{digits:?}");
    }
}

#[test]
fn a_partial_frame_waits_for_more_at_every_cut() {
    let buf = b"*2\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
    for cut in 0..buf.len() {
        assert_eq!(frame(&buf[..cut]), Framed::Incomplete, "cut at {cut}");
    }
    assert_eq!(
        frame(buf),
        Framed::Command(args(&["SET", "hello"]), buf.len())
    );
}

#[test]
fn binary_values_pass_unchanged() {
    let buf = b"*2\r\n$3\r\nGET\r\n$4\r\n\r\n\x00\xff\r\n";
    assert_eq!(
        frame(buf),
        Framed::Command(vec![b"GET".to_vec(), b"\r\n\x00\xff".to_vec()], buf.len())
    );
}

#[test]
fn inline_commands_split_on_spaces() {
    assert_eq!(frame(b"PING\r\n"), Framed::Command(args(&["PING"]), 6));
    assert_eq!(
        frame(b"set  k\tv\n"),
        Framed::Command(args(&["set", "k", "v"]), 9)
    );
    assert_eq!(frame(b"\r\n"), Framed::Nothing(2));
    assert_eq!(frame(b"PIN"), Framed::Incomplete);
}

#[test]
fn a_frame_that_is_no_command_is_skipped() {
    assert!(matches!(
        frame(b":5\r\nPING\r\n"),
        Framed::NotACommand(_, 4)
    ));
    let buf = b"*2\r\n$3\r\nGET\r\n:1\r\n";
    assert!(matches!(frame(buf), Framed::NotACommand(_, n) if n == buf.len()));
    assert_eq!(frame(b"*0\r\n"), Framed::Nothing(4));
    assert_eq!(frame(b"*-1\r\n"), Framed::Nothing(5));
}

#[test]
fn unframeable_input_is_fatal() {
    for bad in [
        &b"*x\r\n"[..],
        b"*1\r\n$abc\r\n",
        b"*1\r\n*1\r\n$1\r\na\r\n",
        b"*1\r\n%1\r\n",
        b"*9\r\n",
        b"*1\r\n$2000\r\n",
        b"*-2\r\n",
        b"*1\r\n$1\r\nabc\r\n",
    ] {
        assert!(
            matches!(frame(bad), Framed::Fatal(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn deep_nesting_is_refused_before_the_parser_recurses() {
    let deep = b"*1\r\n".repeat(100_000);
    assert!(matches!(frame(&deep), Framed::Fatal(_)));
}

#[test]
fn an_endless_header_or_inline_line_is_fatal() {
    assert!(matches!(frame(&[b'*'; 64]), Framed::Fatal(_)));
    let long = vec![b'a'; RESP_INLINE_BYTES_MAX + 2];
    assert!(matches!(frame(&long), Framed::Fatal(_)));
}

#[test]
fn replies_encode_in_both_protocols() {
    let enc = |r: Reply, p| String::from_utf8(r.encode(p).unwrap()).unwrap();
    assert_eq!(enc(Reply::ok(), Protocol::Resp2), "+OK\r\n");
    assert_eq!(enc(Reply::ok(), Protocol::Resp3), "+OK\r\n");
    assert_eq!(enc(Reply::Nil, Protocol::Resp2), "$-1\r\n");
    assert_eq!(enc(Reply::Nil, Protocol::Resp3), "_\r\n");
    assert_eq!(enc(Reply::Int(3), Protocol::Resp3), ":3\r\n");
    assert_eq!(
        enc(Reply::err("bad\r\nthing"), Protocol::Resp2),
        "-ERR bad  thing\r\n"
    );
    let map = Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]);
    assert_eq!(enc(map.clone(), Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
    assert_eq!(enc(map, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
    assert_eq!(
        enc(
            Reply::Array(vec![Reply::text("x"), Reply::Nil]),
            Protocol::Resp2
        ),
        "*2\r\n$1\r\nx\r\n$-1\r\n"
    );
}

/// The simple strings written by hand (`Reply::encode`) are the bytes the
/// crate writes for them, in both protocols.
#[test]
fn simple_strings_encode_as_the_crate_does() {
    for text in ["OK", "PONG", "readonly", ""] {
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let reply = || Reply::Simple(text.to_owned().into());
            assert_eq!(
                reply().encode(protocol).unwrap(),
                reply().encode_frame(protocol).unwrap(),
                "{text:?} in {protocol:?}"
            );
        }
    }
}
