//! The peer handshake: mutual challenge-response over the cluster secret,
//! then a session whose frames are sealed (`seal.rs`). Pure: the actors
//! (`connection.rs` dials, `session.rs` listens) hand it the frames they
//! read and a fresh nonce, and write what it answers.
//!
//! ```text
//! dialler D                                              listener L
//!   Hello { protocol, cluster, node: D, nonce: Nd }   ->
//!                                                     <-  Challenge { node: L, nonce: Nl }
//!   Proof { proof: P(dialler), member: D's info }     ->  (sealed, frame 0 of D->L)
//!                                                     <-  Welcome { proof: P(listener), member: L's info }
//!                                                         (sealed, frame 0 of L->D)
//!   Request ... (sealed, frames 1, 2, ...)            ->
//!                                                     <-  Response ... (sealed, frames 1, 2, ...)
//!
//! K              = HMAC-SHA256(secret, "ringkv peer handshake v1")
//! transcript     = protocol (u32 BE) || cluster || D || L || Nd || Nl
//!                  (cluster and ids each preceded by their length, u64 BE)
//! P(role)        = HMAC-SHA256(K, "ringkv peer proof v1"   || transcript || role)
//! key(direction) = HMAC-SHA256(K, "ringkv peer session v1" || transcript || sender's role)
//! ```
//!
//! `K` is derived from the secret (`ClusterSecret::derive`), as every key
//! of the cluster is: the secret itself keys nothing but derivations.
//!
//! Each side draws a fresh 32-byte nonce per connection, so a proof or a
//! frame recorded from one connection verifies in no other: a replayed
//! handshake fails at its `Proof`. The role is part of every MAC, so a
//! listener's proof is never a dialler's, and each direction has its own
//! session key. The secret itself never crosses the wire. Proofs are
//! checked with `verify_slice` (constant time).
//!
//! **The dialler proves first.** Until it has, the listener has said
//! nothing but its id and a nonce: a caller without the secret learns
//! neither the cluster's name nor why it was refused. Every refusal is the
//! same closed connection at the same step (a wrong cluster name too, which
//! the listener learns from `Hello` but acts on only at `Proof`); the
//! reason goes to the listener's log only.
//!
//! **Protected mode** (a node without `--cluster-secret-file`) runs the same
//! handshake with a key everyone knows ([`PeerKey::ProtectedMode`]): it
//! proves nothing, which is why such a node takes peers from loopback only,
//! and why a node with a secret and one without refuse each other.

use hmac::Mac;
use serde_bytes::ByteBuf;

use super::seal::{split_tag, FrameOpener, FrameSealer, SealError, SESSION_KEY_BYTES};
use crate::secret::{ClusterSecret, HmacSha256};
use crate::wire::peer::{MemberInfo, PeerFrame, PEER_PROTOCOL_VERSION};
use crate::NodeId;

mod dialler;
mod listener;
pub use dialler::{hello, AwaitingChallenge, AwaitingWelcome};
pub use listener::{on_hello, Accepted, AwaitingProof};

/// Bytes of each side's nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a proof (a whole HMAC-SHA256 output).
pub const PROOF_BYTES: usize = 32;
/// Domain label of the proofs.
const PROOF_LABEL: &[u8] = b"ringkv peer proof v1";
/// Domain label of the session keys.
const SESSION_LABEL: &[u8] = b"ringkv peer session v1";
/// The key a node without a cluster secret runs the handshake with. It is
/// public (it is right here), so it authenticates nothing; it keeps one
/// code path for both modes and makes a node with a secret and one without
/// refuse each other.
const PROTECTED_MODE_KEY: &[u8] = b"ringkv protected mode: no cluster secret, loopback peers only";

/// A handshake nonce.
pub type Nonce = [u8; NONCE_BYTES];

/// The purpose label of the handshake key derived from the secret.
const HANDSHAKE_KEY_PURPOSE: &str = "ringkv peer handshake v1";

/// What a node's handshake proves it holds. `Debug` never shows the key.
#[derive(Clone)]
pub enum PeerKey {
    /// The handshake key derived from the cluster secret
    /// (`--cluster-secret-file`).
    Secret([u8; 32]),
    /// No secret: protected mode, loopback peers only.
    ProtectedMode,
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerKey::Secret(_) => f.write_str("PeerKey::Secret(..)"),
            PeerKey::ProtectedMode => f.write_str("PeerKey::ProtectedMode"),
        }
    }
}

impl PeerKey {
    /// The key for a node with `secret`, or in protected mode without one.
    pub fn new(secret: Option<&ClusterSecret>) -> Self {
        secret.map_or(PeerKey::ProtectedMode, |s| {
            PeerKey::Secret(s.derive(HANDSHAKE_KEY_PURPOSE))
        })
    }

    fn mac(&self) -> HmacSha256 {
        let key: &[u8] = match self {
            PeerKey::Secret(key) => key,
            PeerKey::ProtectedMode => PROTECTED_MODE_KEY,
        };
        // HMAC takes keys of any length; this never fails.
        <HmacSha256 as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }
}

/// A side of a connection: who dialled, who listened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The node that opened the connection (and sends requests on it).
    Dialler,
    /// The node that accepted it (and answers).
    Listener,
}

impl Role {
    /// The role's name inside every MAC.
    fn label(self) -> &'static [u8] {
        match self {
            Role::Dialler => b"dialler",
            Role::Listener => b"listener",
        }
    }

    fn other(self) -> Role {
        match self {
            Role::Dialler => Role::Listener,
            Role::Listener => Role::Dialler,
        }
    }
}

/// Who this node is in handshakes and what it proves: shared by every
/// connection of a node.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// This node, as told to peers once they proved themselves.
    pub own: MemberInfo,
    /// The cluster's name; part of every proof.
    pub cluster: String,
    /// The secret (or protected mode's public key).
    pub key: PeerKey,
}

/// Why a handshake failed: the reason logged (never sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A frame that is not MessagePack of a peer frame.
    #[error("undecodable handshake frame (a peer of another protocol version?): {0}")]
    Undecodable(String),
    /// A frame of another kind than the step expects.
    #[error("expected a {expected} frame, got {got}")]
    Unexpected {
        /// The frame the step waits for.
        expected: &'static str,
        /// The frame that came.
        got: &'static str,
    },
    /// Another peer protocol version.
    #[error("protocol version {theirs} is not ours ({PEER_PROTOCOL_VERSION})")]
    Protocol {
        /// The dialler's version.
        theirs: u32,
    },
    /// A nonce of the wrong size.
    #[error("nonce of {len} bytes, not {NONCE_BYTES}")]
    Nonce {
        /// Its length.
        len: usize,
    },
    /// A node id that is not a valid id.
    #[error("invalid node id: {0}")]
    NodeId(String),
    /// The dialler names another cluster.
    #[error("cluster {theirs:?} is not ours ({ours:?})")]
    Cluster {
        /// The dialler's cluster name.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The proof does not verify.
    #[error(
        "its proof does not verify: it holds another cluster secret (or none: protected mode), \
         or names another cluster"
    )]
    BadProof,
    /// The proof frame's tag does not verify (the proof did).
    #[error("its {frame} frame fails its MAC check (altered on the way?)")]
    BadTag {
        /// `Proof` or `Welcome`.
        frame: &'static str,
    },
    /// The member described is not the node that proved itself.
    #[error("it proved itself as {proved} but describes itself as {described}")]
    MemberMismatch {
        /// The id in the proof.
        proved: NodeId,
        /// The id in the member info.
        described: NodeId,
    },
    /// The dialler uses this node's own id from another address.
    #[error("node id {id} is already used by this node ({ours}); ids must be unique")]
    DuplicateId {
        /// The id.
        id: NodeId,
        /// This node's peer address.
        ours: String,
    },
    /// Our own frame could not be encoded or sealed.
    #[error("cannot build our handshake frame: {0}")]
    Local(String),
}

/// What both sides' proofs and session keys cover.
#[derive(Clone, Debug)]
struct Transcript {
    cluster: String,
    dialler: NodeId,
    listener: NodeId,
    dialler_nonce: Nonce,
    listener_nonce: Nonce,
}

impl Transcript {
    /// HMAC(key, label || transcript || role), not yet finalized.
    fn keyed(&self, key: &PeerKey, label: &[u8], role: Role) -> HmacSha256 {
        let mut mac = key.mac();
        mac.update(label);
        mac.update(&PEER_PROTOCOL_VERSION.to_be_bytes());
        for field in [
            self.cluster.as_bytes(),
            self.dialler.as_str().as_bytes(),
            self.listener.as_str().as_bytes(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.update(&self.dialler_nonce);
        mac.update(&self.listener_nonce);
        mac.update(role.label());
        mac
    }

    /// HMAC(key, label || transcript || role).
    fn mac(&self, key: &PeerKey, label: &[u8], role: Role) -> [u8; 32] {
        self.keyed(key, label, role).finalize().into_bytes().into()
    }

    fn proof(&self, key: &PeerKey, by: Role) -> [u8; PROOF_BYTES] {
        self.mac(key, PROOF_LABEL, by)
    }

    /// Checks `proof` as `by`'s, in constant time (`verify_slice`).
    fn verify(&self, key: &PeerKey, by: Role, proof: &[u8]) -> Result<(), HandshakeError> {
        self.keyed(key, PROOF_LABEL, by)
            .verify_slice(proof)
            .map_err(|_| HandshakeError::BadProof)
    }

    /// The session of the side playing `me`: it seals with its own
    /// direction's key and opens with the other's.
    fn session(&self, key: &PeerKey, me: Role) -> Session {
        let sending: [u8; SESSION_KEY_BYTES] = self.mac(key, SESSION_LABEL, me);
        let receiving: [u8; SESSION_KEY_BYTES] = self.mac(key, SESSION_LABEL, me.other());
        Session {
            sealer: FrameSealer::new(&sending),
            opener: FrameOpener::new(&receiving),
        }
    }
}

/// An authenticated connection's two directions.
pub struct Session {
    sealer: FrameSealer,
    opener: FrameOpener,
}

impl Session {
    /// Seals the next outgoing frame body (see `seal.rs`: only for a frame
    /// that will be written).
    pub fn seal(&mut self, body: Vec<u8>) -> Result<Vec<u8>, SealError> {
        self.sealer.seal(body)
    }

    /// Verifies the next incoming frame and answers its body.
    pub fn open<'a>(&mut self, frame: &'a [u8]) -> Result<&'a [u8], SealError> {
        self.opener.open(frame)
    }

    /// The two directions apart: the outbound link's callers seal, its
    /// reader opens.
    pub fn split(self) -> (FrameSealer, FrameOpener) {
        (self.sealer, self.opener)
    }
}

fn decode(bytes: &[u8]) -> Result<PeerFrame, HandshakeError> {
    PeerFrame::decode(bytes).map_err(|e| HandshakeError::Undecodable(e.to_string()))
}

fn encode(frame: &PeerFrame) -> Result<Vec<u8>, HandshakeError> {
    frame
        .encode()
        .map_err(|e| HandshakeError::Local(e.to_string()))
}

fn nonce_of(bytes: &ByteBuf) -> Result<Nonce, HandshakeError> {
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| HandshakeError::Nonce { len: bytes.len() })
}

/// Re-checks an id that came off the wire (serde does not validate them).
fn checked_id(id: NodeId) -> Result<NodeId, HandshakeError> {
    NodeId::new(id.as_str()).map_err(HandshakeError::NodeId)
}

/// The member a `Proof` or `Welcome` describes, its id checked, if it is
/// the node the transcript `proved`.
fn as_proven(member: MemberInfo, proved: &NodeId) -> Result<MemberInfo, HandshakeError> {
    let member = MemberInfo {
        id: checked_id(member.id)?,
        ..member
    };
    if member.id != *proved {
        return Err(HandshakeError::MemberMismatch {
            proved: proved.clone(),
            described: member.id,
        });
    }
    Ok(member)
}

/// Decodes a sealed `Proof` or `Welcome` without checking its tag yet
/// (the proof is checked first, so a wrong secret is reported as such).
fn read_proven(
    frame: &[u8],
    expected: &'static str,
    pick: impl FnOnce(PeerFrame) -> Result<(ByteBuf, MemberInfo), &'static str>,
) -> Result<(ByteBuf, MemberInfo), HandshakeError> {
    let (body, _tag) = split_tag(frame).map_err(|_| HandshakeError::BadTag { frame: expected })?;
    pick(decode(body)?).map_err(|got| HandshakeError::Unexpected { expected, got })
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
pub(super) mod tests;
