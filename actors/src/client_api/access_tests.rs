//! Tests of the client port's access control (`access.rs`).
#![allow(clippy::unwrap_used)]

use super::*;

const CLIENT: &[u8] = b"client-token-0123456789";
const ADMIN: &[u8] = b"admin-token-0123456789";

fn tokens(admin: bool) -> ClientTokens {
    ClientTokens::new(&TokenFile {
        client: CLIENT.to_vec(),
        admin: admin.then(|| ADMIN.to_vec()),
    })
}

fn remote(ip: &str) -> IpAddr {
    ip.parse().unwrap()
}

fn code(result: Result<(), ClientError>) -> Option<ErrorCode> {
    result.err().map(|e| e.code)
}

const STATUS: ClientOp = ClientOp::Status;

#[test]
fn with_a_client_token_every_op_waits_for_auth() {
    let tokens = tokens(false);
    let mut access = Access::new(&tokens);
    assert_eq!(
        code(access.permit(&STATUS, remote("127.0.0.1"))),
        Some(ErrorCode::Unauthorized)
    );
    let list = ClientOp::List {
        cursor: None,
        limit: None,
    };
    assert_eq!(
        code(access.permit(&list, remote("127.0.0.1"))),
        Some(ErrorCode::Unauthorized),
        "list needs auth like get"
    );
    assert_eq!(access.authenticate(&tokens, CLIENT), Ok(Grant::Client));
    assert_eq!(access.permit(&STATUS, remote("127.0.0.1")), Ok(()));
    assert_eq!(access.permit(&STATUS, remote("10.1.2.3")), Ok(()));
    assert_eq!(
        access.permit(&list, remote("10.1.2.3")),
        Ok(()),
        "and is no admin op"
    );
}

#[test]
fn without_tokens_everything_but_remote_admin_ops_is_open() {
    let tokens = ClientTokens::default();
    let mut access = Access::new(&tokens);
    assert_eq!(access.permit(&STATUS, remote("10.1.2.3")), Ok(()));
    assert_eq!(access.permit(&ClientOp::Leave, remote("127.0.0.1")), Ok(()));
    assert_eq!(access.permit(&ClientOp::Leave, remote("::1")), Ok(()));
    assert_eq!(
        code(access.permit(&ClientOp::Leave, remote("10.1.2.3"))),
        Some(ErrorCode::Unauthorized)
    );
    // Any token is taken (a rollout may give clients tokens first).
    assert_eq!(
        access.authenticate(&tokens, b"anything at all"),
        Ok(Grant::Client)
    );
}

#[test]
fn with_an_admin_token_admin_ops_need_it_from_everywhere() {
    let tokens = tokens(true);
    let mut access = Access::new(&tokens);
    access.authenticate(&tokens, CLIENT).unwrap();
    let forget = ClientOp::Forget { node: "n3".into() };
    let repair = ClientOp::Repair {
        peer: None,
        key: None,
    };
    for op in [
        &ClientOp::Leave,
        &forget,
        &ClientOp::Members,
        &ClientOp::Ring,
        &repair,
    ] {
        for ip in [
            "10.77.0.200",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "127.0.0.1",
            "::1",
        ] {
            let refused = access.permit(op, remote(ip)).unwrap_err();
            assert_eq!(refused.code, ErrorCode::Unauthorized, "{ip}");
            assert!(refused.message.contains("admin token"), "{refused}");
        }
    }
    assert_eq!(access.permit(&STATUS, remote("10.77.0.200")), Ok(()));
    assert_eq!(access.authenticate(&tokens, ADMIN), Ok(Grant::Admin));
    for ip in ["10.77.0.200", "127.0.0.1"] {
        assert_eq!(access.permit(&ClientOp::Leave, remote(ip)), Ok(()));
        assert_eq!(access.permit(&forget, remote(ip)), Ok(()));
        assert_eq!(access.permit(&ClientOp::Members, remote(ip)), Ok(()));
        assert_eq!(access.permit(&repair, remote(ip)), Ok(()));
        assert_eq!(access.permit(&STATUS, remote(ip)), Ok(()));
    }
}

#[test]
fn without_an_admin_token_admin_ops_come_from_loopback_only() {
    let tokens = tokens(false);
    let mut access = Access::new(&tokens);
    access.authenticate(&tokens, CLIENT).unwrap();
    let forget = ClientOp::Forget { node: "n3".into() };
    for op in [&ClientOp::Leave, &forget] {
        for ip in ["10.77.0.200", "192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1"] {
            let refused = access.permit(op, remote(ip)).unwrap_err();
            assert_eq!(refused.code, ErrorCode::Unauthorized, "{ip}");
            assert!(refused.message.contains("loopback only"), "{refused}");
        }
        for ip in ["127.0.0.1", "127.0.0.5", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(access.permit(op, remote(ip)), Ok(()), "{ip}");
        }
    }
    // The client token is not an admin token.
    assert_eq!(access.authenticate(&tokens, CLIENT), Ok(Grant::Client));
}

#[test]
fn a_wrong_token_takes_the_grant_back_and_the_last_allowed_one_closes() {
    let tokens = tokens(true);
    let mut access = Access::new(&tokens);
    access.authenticate(&tokens, ADMIN).unwrap();
    for attempt in 1..=AUTH_FAILURES_MAX {
        let refused = access
            .authenticate(&tokens, b"client-token-0123456788")
            .unwrap_err();
        assert_eq!(refused.failures, attempt);
        assert_eq!(refused.close, attempt == AUTH_FAILURES_MAX);
        assert_eq!(refused.to_client().code, ErrorCode::Unauthorized);
        assert_eq!(access.grant(), Grant::Nothing);
        assert_eq!(
            code(access.permit(&STATUS, remote("127.0.0.1"))),
            Some(ErrorCode::Unauthorized)
        );
    }
    // A prefix or an extension of the token is wrong too.
    let mut access = Access::new(&tokens);
    assert!(access.authenticate(&tokens, &CLIENT[..10]).is_err());
    assert!(access
        .authenticate(&tokens, &[CLIENT, b"x"].concat())
        .is_err());
    assert!(access.authenticate(&tokens, b"").is_err());
}

#[test]
fn token_files_hold_one_or_two_distinct_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let one = TokenFile::read(&write("one", "client-token-0123456789\n")).unwrap();
    assert_eq!(one.admin_or_client(), CLIENT);
    assert_eq!((one.client.as_slice(), one.admin), (CLIENT, None));
    let two = TokenFile::read(&write(
        "two",
        "client-token-0123456789\r\nadmin-token-0123456789  \n\n",
    ))
    .unwrap();
    assert_eq!(two.admin.as_deref(), Some(ADMIN));
    assert_eq!(two.admin_or_client(), ADMIN);
    assert!(matches!(
        TokenFile::read(&write("short", "tooshort\n")),
        Err(TokenFileError::Length {
            line: 1,
            len: 8,
            ..
        })
    ));
    assert!(matches!(
        TokenFile::read(&write("empty", "\n")),
        Err(TokenFileError::Lines { lines: 0, .. })
    ));
    assert!(matches!(
        TokenFile::read(&write(
            "three",
            "aaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbb\ncccccccccccccccccc\n"
        )),
        Err(TokenFileError::Lines { lines: 3, .. })
    ));
    assert!(matches!(
        TokenFile::read(&write(
            "same",
            "client-token-0123456789\nclient-token-0123456789\n"
        )),
        Err(TokenFileError::SameTokens { .. })
    ));
    assert!(matches!(
        TokenFile::read(&dir.path().join("missing")),
        Err(TokenFileError::Read { .. })
    ));
}

#[test]
fn debug_never_shows_a_token() {
    let file = TokenFile {
        client: CLIENT.to_vec(),
        admin: Some(ADMIN.to_vec()),
    };
    let shown = format!("{file:?} {:?}", ClientTokens::new(&file));
    assert!(!shown.contains("token-0123"), "{shown}");
    assert_eq!(
        format!("{:?}", ClientTokens::new(&file)),
        "ClientTokens { client: set, admin: set }"
    );
}
