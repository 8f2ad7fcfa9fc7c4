//! Why a peer call failed ([`PeerError`]).

use crate::wire::client::ErrorCode;
use crate::wire::peer::RemoteError;

/// Why a peer call failed: the typed error of every call through the
/// bridge. [`PeerError::is_timeout`] tells the quorum logic whether the
/// peer may still act on the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No live connection to that node: the request was not sent.
    #[error("peer unreachable")]
    Unreachable,
    /// The link dropped while the request was pending.
    #[error("peer disconnected")]
    Disconnected,
    /// No answer before the deadline.
    #[error("peer did not answer within {timeout_ms} ms")]
    Timeout {
        /// The deadline that passed.
        timeout_ms: u64,
    },
    /// The peer answered with the reply of another request type (a bug on
    /// one side; the link itself is fine).
    #[error("peer answered a {asked} request with a {got} reply")]
    UnexpectedReply {
        /// The request sent.
        asked: &'static str,
        /// The reply's request type.
        got: &'static str,
    },
    /// The peer served the request and it failed there.
    #[error("peer failed: {0}")]
    Remote(RemoteError),
    /// The request does not fit one peer frame (`max_frame_bytes` of the
    /// peer protocol); it was not sent.
    #[error("request of {bytes} bytes is over the peer frame limit of {limit} bytes")]
    TooLarge {
        /// The encoded request's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An actor on this node is gone (shutting down).
    #[error("bridge unavailable: {0}")]
    Local(String),
}

impl PeerError {
    /// Whether the peer may still act on the request (it timed out here
    /// or there), as opposed to a failure that ruled the request out.
    pub fn is_timeout(&self) -> bool {
        match self {
            PeerError::Timeout { .. } => true,
            PeerError::Remote(e) => e.code == ErrorCode::Timeout,
            _ => false,
        }
    }

    /// The client error code this failure maps to when a client's request
    /// depended on it alone (a forwarded write).
    pub fn client_code(&self) -> ErrorCode {
        match self {
            PeerError::Unreachable => ErrorCode::Unavailable,
            PeerError::Remote(e) => e.code,
            PeerError::TooLarge { .. } => ErrorCode::TooLarge,
            PeerError::UnexpectedReply { .. } | PeerError::Local(_) => ErrorCode::Internal,
            PeerError::Disconnected | PeerError::Timeout { .. } => ErrorCode::Timeout,
        }
    }
}
