//! What the bridge is started with: its limits ([`BridgeOptions`]), the
//! peer frame bound, and how it authenticates peers ([`PeerAuth`]).

use std::cell::RefCell;
use std::rc::Rc;

use super::handshake;
use crate::net::AcceptPolicy;

/// Where handshake nonces come from: the OS-seeded generator in a node
/// (`rand::thread_rng`), a seeded one in a simulation, so that a run
/// replays. Shared by the bridge's connections (one arbiter, no locking).
pub type NonceRng = Rc<RefCell<dyn rand::RngCore>>;

/// How the bridge authenticates its peers.
#[derive(Clone)]
pub struct PeerAuth {
    /// The cluster secret (or protected mode's public key) the handshake
    /// proves.
    pub key: handshake::PeerKey,
    /// Where nonces come from.
    pub nonces: NonceRng,
    /// Which remote addresses may connect at all: loopback only in
    /// protected mode.
    pub accept: AcceptPolicy,
}

/// Default of [`BridgeOptions::reconnect_backoff_max_ms`], in milliseconds.
pub const RECONNECT_BACKOFF_MAX_MS_DEFAULT: u64 = 5000;

/// The largest peer frame body a node accepts, in bytes, given its
/// `max_frame_bytes` for clients: twice that, because a peer frame carries
/// a whole object (at most `object_bytes_max`, itself below the client
/// frame) plus the request around it, and stream pages of several objects
/// up to their own byte bound. One rule, used by the node and the defaults.
pub fn peer_max_frame_bytes(client_max_frame_bytes: usize) -> usize {
    client_max_frame_bytes.saturating_mul(2)
}

/// Limits of the bridge; each named with its unit.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// Largest peer frame body, in bytes.
    pub max_frame_bytes: usize,
    /// Time allowed for TCP connect and for the handshake, in milliseconds.
    pub connect_timeout_ms: u64,
    /// First redial delay after a lost link, in milliseconds (doubles).
    pub reconnect_backoff_min_ms: u64,
    /// Cap on the redial delay, in milliseconds.
    pub reconnect_backoff_max_ms: u64,
    /// Requests one peer may have in flight here before the rest are refused.
    pub peer_inflight_max: usize,
    /// Mailbox capacity of each connection actor, in messages.
    pub peer_mailbox_max: usize,
    /// Response bytes queued for one inbound peer's socket. A peer that
    /// lets more pile up (it sends requests but does not read the answers)
    /// has its session closed; it redials like after any lost link. One
    /// response is always accepted into an empty queue, however large.
    pub peer_write_queue_bytes_max: usize,
    /// While requests to a peer time out, how often the link asks it
    /// whether it is there (a `Probe`), in milliseconds; the link is used
    /// again at the first answer.
    pub peer_probe_interval_ms: u64,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        Self {
            max_frame_bytes: peer_max_frame_bytes(crate::wire::MAX_FRAME_BYTES_DEFAULT),
            connect_timeout_ms: 1000,
            reconnect_backoff_min_ms: 100,
            reconnect_backoff_max_ms: RECONNECT_BACKOFF_MAX_MS_DEFAULT,
            peer_inflight_max: 4096,
            peer_mailbox_max: 4096,
            peer_write_queue_bytes_max: 64 << 20,
            peer_probe_interval_ms: 200,
        }
    }
}
