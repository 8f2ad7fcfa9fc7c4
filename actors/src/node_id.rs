//! `NodeId`: the name a node is known by on the ring, in clocks and in logs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Upper bound on a node id's length in bytes: ids travel in every clock entry,
/// so they are kept short.
pub const NODE_ID_BYTES_MAX: usize = 64;

/// A node's stable identity (`--id`). A node that restarts with the same id
/// takes its old place on the ring and keeps its clock entries.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// Builds an id, refusing empty, over-long or non-printable names so that
    /// ids are safe to print in logs and to use as file names.
    pub fn new(id: impl Into<String>) -> Result<Self, String> {
        let id = id.into();
        if id.is_empty() || id.len() > NODE_ID_BYTES_MAX {
            return Err(format!(
                "node id must be 1..={NODE_ID_BYTES_MAX} bytes, got {}",
                id.len()
            ));
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "node id {id:?} may only hold ASCII letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_long_and_odd_ids() {
        assert!(NodeId::new("n1").is_ok());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("a".repeat(NODE_ID_BYTES_MAX + 1)).is_err());
        assert!(NodeId::new("n 1").is_err());
        assert!(NodeId::new("n/1").is_err());
    }
}
