//! The node-to-node protocol: same framing as clients, bodies are
//! MessagePack maps produced by serde (`rmp_serde::to_vec_named`, so fields
//! are named and a newer peer's extra fields do not break an older reader).
//!
//! A connection opens with `Hello` from the dialling node; the listener checks
//! the protocol version and the cluster name and answers `Welcome` or
//! `Refused` (with the reason, which both sides log). After that the dialler
//! sends `Request`s, each with an id, the client request id it serves (for
//! logs) and its remaining time budget; the listener answers each with a
//! `Response` carrying the same id, in any order.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::NodeId;

/// Version of this protocol; peers with another version are refused.
///
/// History: 1, the first; 2, objects may carry version actors
/// (`<id>#<incarnation>`, see `NodeId::version_actor`), which version 1
/// nodes cannot decode, so the two refuse each other at the handshake
/// instead of failing on objects.
pub const PEER_PROTOCOL_VERSION: u32 = 2;

/// What a node says about itself in the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The node's id.
    pub id: NodeId,
    /// Where peers reach it.
    pub peer_addr: String,
    /// Where clients reach it.
    pub client_addr: String,
    /// Data center.
    pub dc: String,
    /// Rack.
    pub rack: String,
    /// Capacity weight: its number of virtual nodes is `vnodes * weight`.
    pub weight: u32,
}

/// One frame between peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// First frame from the dialling node.
    Hello {
        /// Must equal [`PEER_PROTOCOL_VERSION`].
        protocol: u32,
        /// Must equal the listener's cluster name.
        cluster: String,
        /// The dialler.
        member: MemberInfo,
    },
    /// The listener accepts; it describes itself in turn.
    Welcome {
        /// The listener.
        member: MemberInfo,
    },
    /// The listener refuses; the connection closes after this frame.
    Refused {
        /// Why, for both sides' logs.
        reason: String,
    },
    /// A request from the dialler.
    Request {
        /// Matches the response to the request on this connection.
        id: u64,
        /// The client request this serves, so logs follow it across nodes.
        trace: u64,
        /// Time left before the sender gives up, in milliseconds; the
        /// receiver does not start work whose budget is spent.
        timeout_ms: u64,
        /// What to do.
        body: PeerRequest,
    },
    /// The answer to request `id`.
    Response {
        /// The request's id.
        id: u64,
        /// The outcome.
        body: Result<PeerReply, PeerFailure>,
    },
}

/// What a node asks of a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Read the replica's stored object for `key`.
    Read {
        /// The key.
        key: ByteBuf,
    },
    /// Merge `object` (an encoded sibling set) into the replica's copy and
    /// answer once durable.
    Write {
        /// The key.
        key: ByteBuf,
        /// The encoded object.
        object: ByteBuf,
    },
    /// Sloppy quorum: store `object` for `owner`, a replica of the key that
    /// is unreachable now, and hand it over once `owner` is back (hinted
    /// handoff). Durable on this node before the answer.
    HintedWrite {
        /// The key.
        key: ByteBuf,
        /// The encoded object.
        object: ByteBuf,
        /// The replica the write was meant for.
        owner: NodeId,
    },
    /// Scan this replica's store: engine keys in `[start, end)`, at most
    /// `limit` entries (handoff streaming pages through a token range).
    Scan {
        /// First engine key, inclusive.
        start: ByteBuf,
        /// End, exclusive (`None`: to the end).
        end: Option<ByteBuf>,
        /// Most entries in the page.
        limit: u32,
    },
    /// Anti-entropy: this replica's Merkle leaves over the keys it shares
    /// with `with`.
    MerkleLeaves {
        /// The asking node (the other half of the pair).
        with: NodeId,
        /// Leaves wanted (a power of two).
        leaves: u32,
    },
    /// A gossip message for the failure detector (its own encoding).
    Gossip {
        /// The encoded gossip message.
        message: ByteBuf,
    },
    /// Coordinate a client write: sent by a node outside the key's
    /// preference list to one inside it, because new versions are minted by
    /// a replica that holds every version it minted before.
    Coordinate(ForwardedWrite),
}

/// A client write handed to a replica to coordinate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedWrite {
    /// The key.
    pub key: ByteBuf,
    /// The value, or `None` for a delete.
    pub value: Option<ByteBuf>,
    /// The client's context.
    pub context: Option<ByteBuf>,
    /// Acknowledgements to wait for.
    pub w: usize,
}

/// A successful peer answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerReply {
    /// The stored object for a `Read` (`None`: never written).
    Object(Option<ByteBuf>),
    /// A `Write` is durable (also the acknowledgement of `Gossip`).
    Stored,
    /// Merkle leaf hashes for `MerkleLeaves`.
    Leaves {
        /// One hash per leaf.
        hashes: Vec<u64>,
    },
    /// A `Scan` page: engine keys and their encoded objects, in order.
    Page {
        /// The entries.
        entries: Vec<(ByteBuf, ByteBuf)>,
    },
    /// A forwarded write succeeded; the new version's context.
    Coordinated {
        /// Encoded context.
        context: ByteBuf,
    },
}

/// A failed peer request; `code` is a client protocol error code, so a
/// forwarded write's failure reaches the client unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFailure {
    /// A PROTOCOL.md error code (`unavailable`, `timeout`, `internal`, ...).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// Why a peer frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable peer frame: {0}")]
pub struct PeerDecodeError(String);

impl PeerFrame {
    /// Encodes the frame body.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these plain types into a Vec cannot fail; an empty body
        // would be refused by the peer rather than crash us.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes a frame body; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, PeerDecodeError> {
        rmp_serde::from_slice(bytes).map_err(|e| PeerDecodeError(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn member() -> MemberInfo {
        MemberInfo {
            id: NodeId::new("n1").unwrap(),
            peer_addr: "127.0.0.1:7101".into(),
            client_addr: "127.0.0.1:7001".into(),
            dc: "dc1".into(),
            rack: "r1".into(),
            weight: 1,
        }
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            PeerFrame::Hello {
                protocol: PEER_PROTOCOL_VERSION,
                cluster: "c".into(),
                member: member(),
            },
            PeerFrame::Request {
                id: 1,
                trace: 2,
                timeout_ms: 3,
                body: PeerRequest::Write {
                    key: ByteBuf::from(b"k".to_vec()),
                    object: ByteBuf::from(vec![1, 2, 3]),
                },
            },
            PeerFrame::Response {
                id: 1,
                body: Err(PeerFailure {
                    code: "timeout".into(),
                    message: "m".into(),
                }),
            },
            PeerFrame::Response {
                id: 2,
                body: Ok(PeerReply::Object(None)),
            },
        ];
        for frame in frames {
            assert_eq!(PeerFrame::decode(&frame.encode()).unwrap(), frame);
        }
    }

    #[test]
    fn garbage_never_panics() {
        for body in [
            &[][..],
            &[0xc1],
            &[0x81, 0xa5, b'H'],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(PeerFrame::decode(body).is_err());
        }
    }
}
