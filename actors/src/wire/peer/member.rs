//! What a node says about itself in the handshake and in gossip
//! ([`MemberInfo`]), and the bounds it is checked against.

use serde::{Deserialize, Serialize};

use crate::node_id::NODE_ID_BYTES_MAX;
use crate::NodeId;

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

pub use crate::node_id::NODE_WEIGHT_MAX;

/// Longest address (`peer_addr`, `client_addr`) a member may announce, in
/// bytes: a host name (253 bytes at most) and a port.
pub const ADDRESS_BYTES_MAX: usize = 260;

/// Longest data center or rack label a member may announce, in bytes.
pub const LABEL_BYTES_MAX: usize = 64;

/// Why a peer's description of a member is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMember {
    /// The id is not a valid node id (empty, over `NODE_ID_BYTES_MAX`
    /// bytes, or holding characters outside `[A-Za-z0-9._-]`).
    #[error("invalid node id: {0}")]
    Id(String),
    /// The weight is 0 or over [`NODE_WEIGHT_MAX`].
    #[error("weight {0} is not in 1..={NODE_WEIGHT_MAX}")]
    Weight(u32),
    /// An address or label is empty, too long, or not printable ASCII.
    #[error("{field} is empty, over {max} bytes or not printable ASCII")]
    Field {
        /// The field's name.
        field: &'static str,
        /// Its limit in bytes.
        max: usize,
    },
}

impl MemberInfo {
    /// Checks what a peer says about a member (in a handshake or in
    /// gossip) against the named limits; a member that fails is never
    /// listed, so it never reaches the ring or the bridge.
    ///
    /// `NodeId` deserializes without its checks (it is a transparent
    /// string on the wire), so the id is checked again here.
    pub fn validate(&self) -> Result<(), InvalidMember> {
        let id = self.id.as_str();
        if id.len() > NODE_ID_BYTES_MAX {
            return Err(InvalidMember::Id(format!(
                "{} bytes, over {NODE_ID_BYTES_MAX}",
                id.len()
            )));
        }
        crate::node_id::check_id(id).map_err(InvalidMember::Id)?;
        if !(1..=NODE_WEIGHT_MAX).contains(&self.weight) {
            return Err(InvalidMember::Weight(self.weight));
        }
        let fields = [
            ("peer_addr", &self.peer_addr, ADDRESS_BYTES_MAX, false),
            ("client_addr", &self.client_addr, ADDRESS_BYTES_MAX, false),
            ("dc", &self.dc, LABEL_BYTES_MAX, true),
            ("rack", &self.rack, LABEL_BYTES_MAX, true),
        ];
        for (field, value, max, may_be_empty) in fields {
            let printable = value.bytes().all(|b| b.is_ascii_graphic());
            if (value.is_empty() && !may_be_empty) || value.len() > max || !printable {
                return Err(InvalidMember::Field { field, max });
            }
        }
        Ok(())
    }
}
