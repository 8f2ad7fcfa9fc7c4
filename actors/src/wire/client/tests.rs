//! Request parsing and response encoding, field by field.
use super::encode::{s, to_bytes};
use super::*;

const LIMITS: RequestLimits = RequestLimits {
    max_key_bytes: 8,
    max_value_bytes: 16,
    replicas: 3,
};

fn frame(entries: Vec<(&str, Value)>) -> Vec<u8> {
    let map = entries.into_iter().map(|(k, v)| (s(k), v)).collect();
    to_bytes(&Value::Map(map))
}

fn code_of(result: Result<ClientRequest, (u64, ClientError)>) -> (u64, ErrorCode, String) {
    let (id, e) = result.unwrap_err();
    (id, e.code, e.message)
}

#[test]
fn request_round_trip() {
    let req = ClientRequest {
        id: 7,
        op: ClientOp::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            context: Some(vec![1, 2]),
            w: Some(2),
            pw: Some(1),
            ttl_ms: Some(60_000),
        },
        timeout_ms: Some(50),
        consistency: None,
    };
    assert_eq!(parse_request(&encode_request(&req), &LIMITS).unwrap(), req);
    for op in [
        ClientOp::Get {
            key: b"k".to_vec(),
            r: Some(3),
            pr: Some(0),
        },
        ClientOp::Delete {
            key: b"k".to_vec(),
            context: None,
            w: None,
            pw: Some(3),
        },
        ClientOp::Forget { node: "n4".into() },
        ClientOp::Members,
        ClientOp::Ring,
        ClientOp::Repair {
            peer: Some("n2".into()),
            key: None,
        },
        ClientOp::Repair {
            peer: None,
            key: Some(b"k".to_vec()),
        },
        ClientOp::Auth {
            token: AuthToken(b"0123456789abcdef".to_vec()),
        },
    ] {
        let req = ClientRequest {
            id: 8,
            op,
            timeout_ms: None,
            consistency: None,
        };
        assert_eq!(parse_request(&encode_request(&req), &LIMITS).unwrap(), req);
    }
}

#[test]
fn auth_needs_a_token_and_never_shows_it() {
    let f = frame(vec![("id", Value::from(5)), ("op", s("auth"))]);
    let (id, code, message) = code_of(parse_request(&f, &LIMITS));
    assert_eq!((id, code), (5, ErrorCode::BadRequest));
    assert!(message.contains("token"), "{message}");
    let f = frame(vec![
        ("id", Value::from(6)),
        ("op", s("auth")),
        ("token", s("hunter2-hunter2-hunter2")),
    ]);
    let request = parse_request(&f, &LIMITS).unwrap();
    assert_eq!(
        request.op,
        ClientOp::Auth {
            token: AuthToken(b"hunter2-hunter2-hunter2".to_vec())
        }
    );
    let shown = format!("{request:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(
        ErrorCode::parse("unauthorized"),
        Some(ErrorCode::Unauthorized)
    );
}

#[test]
fn ttl_ms_lies_in_1_to_its_maximum() {
    for value in [Value::from(0), Value::from(TTL_MS_MAX + 1), s("5")] {
        let f = frame(vec![
            ("id", Value::from(3)),
            ("op", s("put")),
            ("key", s("k")),
            ("value", s("v")),
            ("ttl_ms", value),
        ]);
        let (id, code, message) = code_of(parse_request(&f, &LIMITS));
        assert_eq!((id, code), (3, ErrorCode::BadRequest));
        assert!(message.contains("`ttl_ms`"), "{message}");
    }
    let f = frame(vec![
        ("id", Value::from(3)),
        ("op", s("put")),
        ("key", s("k")),
        ("value", s("v")),
        ("ttl_ms", Value::from(TTL_MS_MAX)),
    ]);
    let request = parse_request(&f, &LIMITS).unwrap();
    assert!(matches!(
        request.op,
        ClientOp::Put {
            ttl_ms: Some(TTL_MS_MAX),
            ..
        }
    ));
}

#[test]
fn pr_and_pw_lie_in_0_to_n_and_forget_names_a_node() {
    for (op, field, value) in [
        ("get", "pr", Value::from(4)),
        ("put", "pw", Value::from(4)),
        ("get", "pr", s("x")),
    ] {
        let f = frame(vec![
            ("id", Value::from(3)),
            ("op", s(op)),
            ("key", s("k")),
            ("value", s("v")),
            (field, value),
        ]);
        let (id, code, message) = code_of(parse_request(&f, &LIMITS));
        assert_eq!((id, code), (3, ErrorCode::BadRequest));
        assert!(
            message.contains(field) && message.contains("0..=3"),
            "{message}"
        );
    }
    let f = frame(vec![("id", Value::from(4)), ("op", s("forget"))]);
    let (_, code, message) = code_of(parse_request(&f, &LIMITS));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("`node`"), "{message}");
}

#[test]
fn str_key_accepted_and_unknown_keys_ignored() {
    let f = frame(vec![
        ("id", Value::from(1)),
        ("op", s("get")),
        ("key", s("abc")),
        ("future_field", Value::from(99)),
    ]);
    let req = parse_request(&f, &LIMITS).unwrap();
    assert_eq!(
        req.op,
        ClientOp::Get {
            key: b"abc".to_vec(),
            r: None,
            pr: None
        }
    );
}

#[test]
fn garbage_and_non_maps_are_bad_requests_with_id_zero() {
    for body in [&[][..], &[0xc1], &[0x93, 1, 2, 3], &[0x81, 0xa2]] {
        let (id, code, _) = code_of(parse_request(body, &LIMITS));
        assert_eq!((id, code), (0, ErrorCode::BadRequest), "{body:?}");
    }
}

#[test]
fn each_field_error_names_the_field() {
    let cases = vec![
        (vec![("op", s("ping"))], 0, ErrorCode::BadRequest, "`id`"),
        (vec![("id", s("x"))], 0, ErrorCode::BadRequest, "`id`"),
        (
            vec![("id", Value::from(3))],
            3,
            ErrorCode::BadRequest,
            "`op`",
        ),
        (
            vec![("id", Value::from(4)), ("op", s("frobnicate"))],
            4,
            ErrorCode::UnknownOp,
            "frobnicate",
        ),
        (
            vec![("id", Value::from(5)), ("op", s("get"))],
            5,
            ErrorCode::BadRequest,
            "`key`",
        ),
        (
            vec![("id", Value::from(6)), ("op", s("get")), ("key", s(""))],
            6,
            ErrorCode::BadRequest,
            "`key`",
        ),
        (
            vec![
                ("id", Value::from(7)),
                ("op", s("get")),
                ("key", s("123456789")),
            ],
            7,
            ErrorCode::TooLarge,
            "max_key_bytes",
        ),
        (
            vec![("id", Value::from(8)), ("op", s("put")), ("key", s("k"))],
            8,
            ErrorCode::BadRequest,
            "`value`",
        ),
        (
            vec![
                ("id", Value::from(9)),
                ("op", s("put")),
                ("key", s("k")),
                ("value", Value::Binary(vec![0; 17])),
            ],
            9,
            ErrorCode::TooLarge,
            "max_value_bytes",
        ),
        (
            vec![
                ("id", Value::from(10)),
                ("op", s("get")),
                ("key", s("k")),
                ("r", Value::from(4)),
            ],
            10,
            ErrorCode::BadRequest,
            "`r`",
        ),
        (
            vec![
                ("id", Value::from(11)),
                ("op", s("delete")),
                ("key", s("k")),
                ("context", s("not-bin")),
            ],
            11,
            ErrorCode::BadRequest,
            "`context`",
        ),
        (
            vec![
                ("id", Value::from(12)),
                ("op", s("ping")),
                ("timeout_ms", Value::from(0)),
            ],
            12,
            ErrorCode::BadRequest,
            "`timeout_ms`",
        ),
    ];
    for (fields, id, code, needle) in cases {
        let (got_id, got_code, message) = code_of(parse_request(&frame(fields), &LIMITS));
        assert_eq!((got_id, got_code), (id, code), "{message}");
        assert!(message.contains(needle), "{message:?} should name {needle}");
    }
}

#[test]
fn responses_parse_back() {
    let ok = encode_response(
        9,
        &Ok(ClientReply::Values {
            values: vec![b"a".to_vec()],
            context: Some(vec![1]),
        }),
    );
    let (id, body) = parse_response(&ok).unwrap();
    assert_eq!(id, 9);
    let body = body.unwrap();
    assert_eq!(map_field(&body, "context"), Some(&Value::Binary(vec![1])));

    let err = encode_response(3, &Err(ClientError::new(ErrorCode::Timeout, "slow")));
    let (id, body) = parse_response(&err).unwrap();
    assert_eq!(id, 3);
    assert_eq!(
        body.unwrap_err(),
        ClientError::new(ErrorCode::Timeout, "slow")
    );
}

#[test]
fn list_takes_an_optional_cursor_and_a_limit_in_1_to_1000() {
    for op in [
        ClientOp::List {
            cursor: None,
            limit: None,
        },
        ClientOp::List {
            cursor: Some(vec![1, 2, 3]),
            limit: Some(LIST_LIMIT_MAX),
        },
        ClientOp::List {
            cursor: None,
            limit: Some(1),
        },
    ] {
        let req = ClientRequest {
            id: 9,
            op,
            timeout_ms: None,
            consistency: None,
        };
        assert_eq!(parse_request(&encode_request(&req), &LIMITS).unwrap(), req);
    }
    let list =
        |field: &str, v: Value| frame(vec![("id", Value::from(4)), ("op", s("list")), (field, v)]);
    for limit in [Value::from(0), Value::from(1001), s("10"), Value::from(-1)] {
        let (id, code, message) = code_of(parse_request(&list("limit", limit), &LIMITS));
        assert_eq!((id, code), (4, ErrorCode::BadRequest));
        assert!(
            message.contains("`limit`") && message.contains("1..=1000"),
            "{message}"
        );
    }
    let (_, code, message) = code_of(parse_request(&list("cursor", Value::from(5)), &LIMITS));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("`cursor`"), "{message}");
}

#[test]
fn a_list_page_encodes_keys_and_its_cursor_only_when_there_is_one() {
    let page = Ok(ClientReply::Keys {
        keys: vec![b"a".to_vec(), vec![0xff, 0]],
        cursor: Some(vec![1, 2]),
    });
    let (id, body) = parse_response(&encode_response(3, &page)).unwrap();
    let body = body.unwrap();
    assert_eq!(id, 3);
    assert_eq!(
        map_field(&body, "keys"),
        Some(&Value::Array(vec![
            Value::Binary(b"a".to_vec()),
            Value::Binary(vec![0xff, 0])
        ]))
    );
    assert_eq!(map_field(&body, "cursor"), Some(&Value::Binary(vec![1, 2])));
    let last = Ok(ClientReply::Keys {
        keys: Vec::new(),
        cursor: None,
    });
    let (_, body) = parse_response(&encode_response(4, &last)).unwrap();
    let body = body.unwrap();
    assert_eq!(map_field(&body, "keys"), Some(&Value::Array(Vec::new())));
    assert_eq!(map_field(&body, "cursor"), None, "absent on the last page");
}

#[test]
fn consistency_levels_parse_and_exclude_r_and_w() {
    for level in Consistency::LEVELS {
        let req = ClientRequest {
            id: 3,
            op: ClientOp::Get {
                key: b"k".to_vec(),
                r: None,
                pr: None,
            },
            timeout_ms: None,
            consistency: Some(level),
        };
        assert_eq!(parse_request(&encode_request(&req), &LIMITS).unwrap(), req);
    }
    let with = |op: &str, extra: Vec<(&str, Value)>| {
        let mut fields = vec![
            ("id", Value::from(5)),
            ("op", s(op)),
            ("key", s("k")),
            ("value", s("v")),
        ];
        fields.extend(extra);
        frame(fields)
    };
    let put = parse_request(
        &with("put", vec![("consistency", s("each_quorum"))]),
        &LIMITS,
    );
    assert_eq!(put.unwrap().consistency, Some(Consistency::EachQuorum));
    for (op, count) in [("get", "r"), ("put", "w"), ("delete", "w")] {
        let both = with(
            op,
            vec![("consistency", s("local_quorum")), (count, Value::from(1))],
        );
        let (id, code, message) = code_of(parse_request(&both, &LIMITS));
        assert_eq!((id, code), (5, ErrorCode::BadRequest), "{message}");
        assert!(message.contains("exclude each other"), "{message}");
    }
    for bad in [s("most"), Value::from(2)] {
        let (_, code, message) = code_of(parse_request(
            &with("get", vec![("consistency", bad)]),
            &LIMITS,
        ));
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(message.contains("local_quorum"), "{message}");
    }
    // Other ops ignore it, as they ignore every key they do not take.
    let ping = frame(vec![
        ("id", Value::from(1)),
        ("op", s("ping")),
        ("consistency", s("x")),
    ]);
    assert_eq!(parse_request(&ping, &LIMITS).unwrap().consistency, None);
}

/// A get's and a put's replies, written directly, are byte for byte what
/// the MessagePack value of the same response encodes to: every length
/// form of the id, of the values (none, empty, 31, 255, 256, 65,536 bytes)
/// and of the context, with and without one.
#[test]
fn data_replies_written_directly_match_the_value_encoding() {
    let ids = [
        0,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        u64::from(u32::MAX) + 1,
        u64::MAX,
    ];
    let sizes = [0usize, 1, 31, 32, 255, 256, 65_535, 65_536];
    let bytes = |n: usize| (0..n).map(|i| i as u8).collect::<Vec<u8>>();
    let mut replies = Vec::new();
    for &n in &sizes {
        replies.push(ClientReply::Written { context: bytes(n) });
        replies.push(ClientReply::Values {
            values: vec![bytes(n)],
            context: Some(bytes(n / 2 + 1)),
        });
    }
    replies.push(ClientReply::Values {
        values: vec![],
        context: None,
    });
    replies.push(ClientReply::Values {
        values: (0..20).map(bytes).collect(),
        context: None,
    });
    for id in ids {
        for reply in &replies {
            let result = Ok(reply.clone());
            assert_eq!(
                encode_response(id, &result),
                super::encode::encode_response_as_value(id, &result),
                "id {id}, {reply:?}"
            );
        }
    }
}

#[test]
fn str_fields_keep_their_bytes_even_when_not_utf8_and_the_first_duplicate_wins() {
    // {"id": 5, "op": "put", "key": str [ff fe], "value": str [c3 28],
    //  "key": "zz"}: strings that are not UTF-8, written by hand.
    let mut f = vec![
        0x85, 0xa2, b'i', b'd', 5, 0xa2, b'o', b'p', 0xa3, b'p', b'u', b't',
    ];
    f.extend([0xa3, b'k', b'e', b'y', 0xa2, 0xff, 0xfe]);
    f.extend([0xa5, b'v', b'a', b'l', b'u', b'e', 0xa2, 0xc3, 0x28]);
    f.extend([0xa3, b'k', b'e', b'y', 0xa2, b'z', b'z']);
    let req = parse_request(&f, &LIMITS).unwrap();
    match req.op {
        ClientOp::Put { key, value, .. } => {
            assert_eq!((key, value), (vec![0xff, 0xfe], vec![0xc3, 0x28]));
        }
        other => panic!("not a put: {other:?}"),
    }
    // The op's name must be UTF-8 to be known.
    let mut f = vec![
        0x82, 0xa2, b'i', b'd', 6, 0xa2, b'o', b'p', 0xa2, 0xff, 0xfe,
    ];
    let (id, code, _) = code_of(parse_request(&f, &LIMITS));
    assert_eq!((id, code), (6, ErrorCode::UnknownOp));
    // A bin that claims more bytes than the frame holds.
    f = vec![0x81, 0xa3, b'k', b'e', b'y', 0xc4, 100, 1, 2, 3];
    let (id, code, message) = code_of(parse_request(&f, &LIMITS));
    assert_eq!((id, code), (0, ErrorCode::BadRequest), "{message}");
}
