//! The client context: a key's clock, sealed to that key with a MAC so
//! that a client cannot forge one.
//!
//! A context says "I have seen these versions"; a write with it replaces
//! every sibling it covers. A forged clock (a counter of `u64::MAX`, a node
//! that never wrote) would make a write drop siblings its client never
//! saw, or exhaust a counter. So every context the cluster hands out
//! carries a MAC over the key it was issued for and its clock, and a
//! context whose MAC does not match is refused before anything is minted.
//!
//! ## Format (version 2)
//!
//! | bytes | what |
//! |---|---|
//! | 1 | [`CONTEXT_FORMAT_VERSION`] (2) |
//! | n | the clock: MessagePack `[[node, counter, updated_ms], ...]`, sorted by node (`encoding.rs`) |
//! | 16 | the tag: HMAC-SHA256(context key, `len(key)` as u64 BE ‖ key ‖ the 1 + n bytes above), its first [`CONTEXT_TAG_BYTES`] bytes |
//!
//! The tag is checked (in constant time) before the clock is parsed.
//! Format 1 (the clock without a tag, before this change) is refused with
//! [`VersionError::UnsignedContext`]: its client reads the key again.
//!
//! ## The key
//!
//! With a cluster secret, the context key is
//! `secret.derive("ringkv context mac v1")`: only members can mint a
//! context, and any member accepts one another member issued. Without a
//! secret there is nothing private to key it with; a per-node random key
//! would break contexts across coordinators, so the key is derived from the
//! cluster name, which is no secret. Contexts are then integrity-checked
//! (a truncated, bit-flipped or mistyped context, or one from another key,
//! is refused) but not authenticated: whoever knows the cluster name can
//! compute a valid one. [`ContextKey::is_authenticated`] tells which.

use std::fmt;

use hmac::Mac;

use super::clock::VersionVector;
use super::encoding::bad;
use super::object::VersionError;
use crate::secret::{ClusterSecret, HmacSha256};

/// First byte of a context: format 2, a clock plus a tag.
pub const CONTEXT_FORMAT_VERSION: u8 = 2;
/// The format before contexts were sealed (refused).
const UNSIGNED_CONTEXT_FORMAT_VERSION: u8 = 1;
/// Bytes of the tag: HMAC-SHA256 truncated to 128 bits, which keeps
/// forgery out of reach (2^-128 per guess) and the context small.
pub const CONTEXT_TAG_BYTES: usize = 16;
/// The purpose the context key is derived for from the cluster secret.
pub const CONTEXT_KEY_PURPOSE: &str = "ringkv context mac v1";
/// The HMAC key under which the cluster name is hashed into the context key
/// of a cluster without a secret (a fixed, public label).
const UNAUTHENTICATED_CONTEXT_LABEL: &[u8] = b"ringkv context mac v1, no cluster secret";

/// The key contexts are sealed and checked with; the same on every member.
/// Cheap to clone (the HMAC's padded key state is computed once).
#[derive(Clone)]
pub struct ContextKey {
    /// HMAC-SHA256 keyed with the context key, cloned for each use.
    mac: HmacSha256,
    /// Whether the key comes from the cluster secret.
    authenticated: bool,
}

impl fmt::Debug for ContextKey {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.authenticated {
            "from the cluster secret"
        } else {
            "from the cluster name: integrity only"
        };
        write!(f, "ContextKey({kind})")
    }
}

impl ContextKey {
    /// The key of a cluster with a secret: contexts are authenticated.
    pub fn from_secret(secret: &ClusterSecret) -> Self {
        Self::new(&secret.derive(CONTEXT_KEY_PURPOSE), true)
    }

    /// The key of a cluster without a secret, derived from its name:
    /// contexts are integrity-checked only (see the module doc).
    pub fn from_cluster_name(cluster: &str) -> Self {
        let mut mac = keyed(UNAUTHENTICATED_CONTEXT_LABEL);
        mac.update(cluster.as_bytes());
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Self::new(&key, false)
    }

    fn new(key: &[u8; 32], authenticated: bool) -> Self {
        Self {
            mac: keyed(key),
            authenticated,
        }
    }

    /// True when the key comes from the cluster secret (nobody outside the
    /// cluster can mint a context); false when from the cluster name.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The context for `clock` as read or written under `key`.
    pub fn seal(&self, key: &[u8], clock: &VersionVector) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + clock.encoded_len_max() + CONTEXT_TAG_BYTES);
        out.push(CONTEXT_FORMAT_VERSION);
        clock.encode_clock(&mut out);
        let tag = self.tag(key, &out).finalize().into_bytes();
        out.extend_from_slice(tag.get(..CONTEXT_TAG_BYTES).unwrap_or_default());
        out
    }

    /// The clock of a context a client sent with a write to `key`; refused
    /// unless some member sealed exactly these bytes for exactly this key.
    pub fn open(&self, key: &[u8], context: &[u8]) -> Result<VersionVector, VersionError> {
        match context.first() {
            None => return Err(bad("empty context")),
            Some(&CONTEXT_FORMAT_VERSION) => {}
            Some(&UNSIGNED_CONTEXT_FORMAT_VERSION) => return Err(VersionError::UnsignedContext),
            Some(&got) => return Err(VersionError::UnsupportedVersion { got }),
        }
        let Some(split) = context.len().checked_sub(CONTEXT_TAG_BYTES) else {
            return Err(VersionError::ContextMacMismatch);
        };
        let (sealed, tag) = context.split_at(split);
        if sealed.len() < 2 {
            // The format byte and at least one byte of clock.
            return Err(VersionError::ContextMacMismatch);
        }
        self.tag(key, sealed)
            .verify_truncated_left(tag)
            .map_err(|_| VersionError::ContextMacMismatch)?;
        VersionVector::decode_clock(sealed.get(1..).unwrap_or_default())
    }

    /// The MAC state over `key` and the sealed bytes, before finalizing.
    fn tag(&self, key: &[u8], sealed: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(&(key.len() as u64).to_be_bytes());
        mac.update(key);
        mac.update(sealed);
        mac
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this never fails.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
}
