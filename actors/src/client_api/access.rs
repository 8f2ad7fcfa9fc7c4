//! Who may do what on the client port (PROTOCOL.md version 2: the `auth`
//! op, the `unauthorized` code). A pure policy: tokens, the connection's
//! grant and its remote address in, a verdict out, so that unit tests can
//! try any remote address while the process tests only ever use loopback.
//!
//! - A node with a client token (`--client-token-file`, line 1) answers
//!   every op but `auth` with `unauthorized` until the connection has
//!   presented that token or the admin token.
//! - The admin ops (`leave`, `forget`, and the extensions `members`, `ring`,
//!   `repair`) need the admin token (the file's
//!   line 2) when the node has one, from every address, loopback
//!   included: an operator who set an admin token means it, and on a
//!   shared host any local user reaches the loopback port. A node without
//!   an admin token takes admin ops from loopback only (after `auth` with
//!   the client token, if it has one), never from afar.
//! - A wrong token answers `unauthorized` and takes back what the
//!   connection was granted; the [`AUTH_FAILURES_MAX`]-th wrong token on
//!   one connection also closes it, so guessing costs a reconnect (and a
//!   warning in the log) every few tries.
//! - Tokens are kept and compared as SHA-256 digests, in constant time:
//!   neither timing nor length tells a guesser how close it came. No token
//!   is ever logged (`AuthToken`'s and [`ClientTokens`]' `Debug` show none).
//! - A node without a client token answers `ok` to every `auth`: the admin
//!   token grants the admin ops, any other token leaves the connection
//!   with the client grant it had. So clients can be given their token
//!   before the nodes require it, and a rollout works in either order.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wire::client::{ClientError, ClientOp, ErrorCode};

/// Wrong tokens one connection may send; the last of them closes it.
pub const AUTH_FAILURES_MAX: u32 = 3;
/// Shortest token accepted in a token file, in bytes: 16 random bytes'
/// worth of hex or base64 is the least that makes guessing hopeless.
/// Generate one with `head -c 24 /dev/urandom | base64`.
pub const CLIENT_TOKEN_BYTES_MIN: usize = 16;
/// Longest token accepted in a token file, in bytes: more is a wrong file.
pub const CLIENT_TOKEN_BYTES_MAX: usize = 1024;

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold one or two tokens, one a line.
    #[error(
        "the token file {path} has {lines} non-empty lines; it must hold the client token on \
         line 1 and, optionally, the admin token on line 2"
    )]
    Lines {
        /// The file.
        path: String,
        /// How many non-empty lines it has.
        lines: usize,
    },
    /// A token is too short or too long.
    #[error(
        "the token on line {line} of {path} is {len} bytes; tokens must be \
         {CLIENT_TOKEN_BYTES_MIN} to {CLIENT_TOKEN_BYTES_MAX} bytes (e.g. `head -c 24 \
         /dev/urandom | base64`)"
    )]
    Length {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// The token's length, in bytes.
        len: usize,
    },
    /// The admin token is the client token: it would grant nothing more.
    #[error("the admin token (line 2) of {path} is the client token (line 1); make them differ")]
    SameTokens {
        /// The file.
        path: String,
    },
}

/// The tokens of a token file, as read: the client token (line 1) and the
/// admin token (line 2, if any). `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenFile {
    /// Line 1.
    pub client: Vec<u8>,
    /// Line 2.
    pub admin: Option<Vec<u8>>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenFile(client token, {})",
            if self.admin.is_some() {
                "admin token"
            } else {
                "no admin token"
            }
        )
    }
}

impl TokenFile {
    /// Reads `path`: the client token on line 1 and, optionally, the admin
    /// token on line 2; trailing whitespace (`\r` too) is not part of a
    /// token, and empty lines do not count.
    pub fn read(path: &Path) -> Result<TokenFile, TokenFileError> {
        let shown = || path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TokenFileError::Read {
            path: shown(),
            source,
        })?;
        let lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .map(trim_end)
            .filter(|line| !line.is_empty())
            .collect();
        let (client, admin) = match lines.as_slice() {
            [client] => (*client, None),
            [client, admin] => (*client, Some(*admin)),
            other => {
                return Err(TokenFileError::Lines {
                    path: shown(),
                    lines: other.len(),
                })
            }
        };
        for (line, token) in [(1, Some(client)), (2, admin)] {
            let Some(token) = token else { continue };
            if !(CLIENT_TOKEN_BYTES_MIN..=CLIENT_TOKEN_BYTES_MAX).contains(&token.len()) {
                return Err(TokenFileError::Length {
                    path: shown(),
                    line,
                    len: token.len(),
                });
            }
        }
        if admin == Some(client) {
            return Err(TokenFileError::SameTokens { path: shown() });
        }
        Ok(TokenFile {
            client: client.to_vec(),
            admin: admin.map(<[u8]>::to_vec),
        })
    }

    /// The token an admin tool presents: the admin token if the file has
    /// one, else the client token.
    pub fn admin_or_client(&self) -> &[u8] {
        self.admin.as_deref().unwrap_or(&self.client)
    }
}

fn trim_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    line.get(..end).unwrap_or_default()
}

/// A token's SHA-256 digest: what the node keeps and compares.
#[derive(Clone, Copy)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    /// Constant-time equality (the digests hide the lengths).
    fn matches(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// The node's tokens (from `--client-token-file`); none by default.
/// `Debug` says which are set, never what they are.
#[derive(Clone, Default)]
pub struct ClientTokens {
    client: Option<TokenDigest>,
    admin: Option<TokenDigest>,
}

impl fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |t: &Option<TokenDigest>| if t.is_some() { "set" } else { "none" };
        write!(
            f,
            "ClientTokens {{ client: {}, admin: {} }}",
            set(&self.client),
            set(&self.admin)
        )
    }
}

impl ClientTokens {
    /// The tokens of a token file.
    pub fn new(file: &TokenFile) -> Self {
        Self {
            client: Some(TokenDigest::of(&file.client)),
            admin: file.admin.as_deref().map(TokenDigest::of),
        }
    }

    /// True when connections must `auth` before any other op.
    pub fn requires_auth(&self) -> bool {
        self.client.is_some()
    }

    /// True when admin ops can be granted to connections from afar.
    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }
}

/// What a connection may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// Only `auth`.
    Nothing,
    /// Every op but the admin ops (those from loopback only, and only on
    /// a node without an admin token).
    Client,
    /// Every op from anywhere.
    Admin,
}

/// A refused `auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthRefused {
    /// Wrong tokens on this connection so far, this one included.
    pub failures: u32,
    /// This was the [`AUTH_FAILURES_MAX`]-th: close the connection.
    pub close: bool,
}

impl AuthRefused {
    /// The answer for the client.
    pub fn to_client(self) -> ClientError {
        let message = if self.close {
            format!(
                "wrong token; {} failed attempts on this connection (AUTH_FAILURES_MAX): closing it",
                self.failures
            )
        } else {
            format!(
                "wrong token (attempt {} of {AUTH_FAILURES_MAX} on this connection)",
                self.failures
            )
        };
        ClientError::new(ErrorCode::Unauthorized, message)
    }
}

/// One connection's standing: what it was granted, and how many wrong
/// tokens it sent.
#[derive(Clone, Debug)]
pub struct Access {
    grant: Grant,
    failures: u32,
    /// The node has an admin token: admin ops need it from everywhere.
    admin_token: bool,
}

impl Access {
    /// A new connection: granted the client ops when the node has no
    /// client token, nothing otherwise.
    pub fn new(tokens: &ClientTokens) -> Self {
        let grant = if tokens.requires_auth() {
            Grant::Nothing
        } else {
            Grant::Client
        };
        Self {
            grant,
            failures: 0,
            admin_token: tokens.has_admin(),
        }
    }

    /// What the connection is granted now.
    pub fn grant(&self) -> Grant {
        self.grant
    }

    /// An `auth` with `token`.
    pub fn authenticate(
        &mut self,
        tokens: &ClientTokens,
        token: &[u8],
    ) -> Result<Grant, AuthRefused> {
        let presented = TokenDigest::of(token);
        let is = |t: &Option<TokenDigest>| t.as_ref().is_some_and(|t| t.matches(&presented));
        if is(&tokens.admin) {
            self.grant = Grant::Admin;
        } else if is(&tokens.client) {
            self.grant = Grant::Client;
        } else if tokens.requires_auth() {
            self.grant = Grant::Nothing;
            self.failures = self.failures.saturating_add(1);
            return Err(AuthRefused {
                failures: self.failures,
                close: self.failures >= AUTH_FAILURES_MAX,
            });
        }
        // Without a client token nothing is checked: the grant stays.
        Ok(self.grant)
    }

    /// Whether `op` may run on this connection from `remote`.
    pub fn permit(&self, op: &ClientOp, remote: IpAddr) -> Result<(), ClientError> {
        if self.grant == Grant::Nothing {
            return Err(ClientError::new(
                ErrorCode::Unauthorized,
                "this node requires a client token: send `auth` with `token` first",
            ));
        }
        let admin_op = matches!(
            op,
            ClientOp::Leave
                | ClientOp::Forget { .. }
                | ClientOp::Members
                | ClientOp::Ring
                | ClientOp::Repair { .. }
        );
        if !admin_op || self.grant == Grant::Admin {
            return Ok(());
        }
        let why = if self.admin_token {
            "it needs the admin token (line 2 of the node's --client-token-file), sent with \
             `auth` first on this connection"
        } else if crate::net::is_loopback(remote) {
            return Ok(());
        } else {
            "this node has no admin token (line 2 of its --client-token-file), so it takes \
             admin ops from loopback only"
        };
        Err(ClientError::new(
            ErrorCode::Unauthorized,
            format!("`{}` is an admin op: {why}", op.name()),
        ))
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
