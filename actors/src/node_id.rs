//! `NodeId`: the name a node is known by on the ring, in clocks and in logs.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Upper bound on a node id's length in bytes: ids travel in every clock entry,
/// so they are kept short.
pub const NODE_ID_BYTES_MAX: usize = 64;

/// Largest capacity weight a node may have or a member may announce
/// (`--weight`): a weight asks for `vnodes x weight` ring tokens, so an
/// unbounded one would make every node build a ring of billions of tokens.
/// Here, the lowest layer, because the ring and the peer protocol both
/// check it.
pub const NODE_WEIGHT_MAX: u32 = 1000;

/// Version actors a thread keeps parsed ([`NodeId::parse_version_actor`]),
/// at most: a cluster's clocks name a few per node (one per incarnation), so
/// 256 holds every name of a large cluster; past it the thread forgets them
/// all and starts again (names are only shared, never needed).
pub const VERSION_ACTORS_INTERNED_MAX: usize = 256;

thread_local! {
    /// The version actors this thread has parsed, by their text.
    static INTERNED: std::cell::RefCell<fnv::FnvHashMap<Box<str>, NodeId>> =
        std::cell::RefCell::default();
}

/// A node's stable identity (`--id`). A node that restarts with the same id
/// takes its old place on the ring and keeps its clock entries.
///
/// Shared text (`Arc<str>`): every request copies ids around (preference
/// lists, the replicas it asks, their answers), and a clone is a count
/// increment, not an allocation and a copy. On the wire and on disk it is
/// the plain string, as before.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    /// Any string, unchecked (as the plain `String` it replaced): the
    /// callers that take ids from peers validate them.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = NodeId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node id")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<NodeId, E> {
                Ok(NodeId(Arc::from(text)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl NodeId {
    /// Builds an id, refusing empty, over-long or non-printable names so that
    /// ids are safe to print in logs and to use as file names.
    pub fn new(id: impl Into<String>) -> Result<Self, String> {
        let id = id.into();
        check_id(&id)?;
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name this node versions its writes under (the node in its dots
    /// and clock entries) during one incarnation of its store:
    /// `<id>#<incarnation as 8 hex digits>`. `#` is not allowed in node
    /// ids, so a version actor never collides with another node's id.
    ///
    /// Why not the bare id: a node picks a key's next counter from its own
    /// stored copy. After its store is lost it would hand out counters the
    /// other replicas remember for older writes, and a write carrying a
    /// remembered dot is taken as already seen: silently lost. A fresh
    /// store starts a fresh incarnation, so its dots are new names.
    pub fn version_actor(&self, incarnation: u32) -> NodeId {
        NodeId(Arc::from(format!("{}#{incarnation:08x}", self.0)))
    }

    /// Parses a node as found in a dot or clock entry: a node id, or a
    /// version actor made by [`NodeId::version_actor`].
    ///
    /// A name parsed before on this thread is shared, not allocated again
    /// (see [`VERSION_ACTORS_INTERNED_MAX`]): every object decoded names
    /// the same few version actors in its clock.
    pub fn parse_version_actor(text: &str) -> Result<Self, String> {
        if let Some(known) = INTERNED.with(|interned| interned.borrow().get(text).cloned()) {
            return Ok(known);
        }
        let parsed = Self::check_version_actor(text)?;
        INTERNED.with(|interned| {
            let mut interned = interned.borrow_mut();
            if interned.len() >= VERSION_ACTORS_INTERNED_MAX {
                interned.clear();
            }
            interned.insert(Box::from(text), parsed.clone());
        });
        Ok(parsed)
    }

    /// [`NodeId::parse_version_actor`] without the names already parsed.
    fn check_version_actor(text: &str) -> Result<Self, String> {
        let Some((id, incarnation)) = text.split_once('#') else {
            check_id(text)?;
            return Ok(Self(Arc::from(text)));
        };
        check_id(id)?;
        if incarnation.len() != 8
            || !incarnation
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(format!(
                "version actor {text:?} must end in '#' and 8 lowercase hex digits"
            ));
        }
        Ok(Self(Arc::from(text)))
    }
}

/// Refuses empty, over-long or non-printable ids (see [`NodeId::new`]),
/// without allocating.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > NODE_ID_BYTES_MAX {
        return Err(format!(
            "node id must be 1..={NODE_ID_BYTES_MAX} bytes, got {}",
            id.len()
        ));
    }
    if !id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "node id {id:?} may only hold ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn version_actors_round_trip_and_never_equal_a_node_id() {
        let id = NodeId::new("n1").unwrap();
        let actor = id.version_actor(0x1a2b_3c4d);
        assert_eq!(actor.as_str(), "n1#1a2b3c4d");
        assert_eq!(NodeId::parse_version_actor("n1#1a2b3c4d").unwrap(), actor);
        assert!(NodeId::new("n1#1a2b3c4d").is_err(), "not a valid node id");
        assert_eq!(NodeId::parse_version_actor("n1").unwrap(), id);
        for bad in [
            "n1#",
            "n1#1A2B3C4D",
            "n1#123",
            "#1a2b3c4d",
            "n 1#1a2b3c4d",
            "n1#1a2b3c4d#0",
        ] {
            assert!(NodeId::parse_version_actor(bad).is_err(), "{bad}");
        }
        let longest = NodeId::new("a".repeat(NODE_ID_BYTES_MAX)).unwrap();
        let actor = longest.version_actor(u32::MAX);
        assert_eq!(NodeId::parse_version_actor(actor.as_str()).unwrap(), actor);
    }

    /// A name parsed again on the same thread is the same shared text; a
    /// bad name is refused every time (it is never kept); past the limit
    /// the thread starts again and still parses every name right.
    #[test]
    fn version_actors_parsed_again_are_shared() {
        let first = NodeId::parse_version_actor("n7#0000000a").unwrap();
        let again = NodeId::parse_version_actor("n7#0000000a").unwrap();
        assert!(Arc::ptr_eq(&first.0, &again.0));
        for _ in 0..2 {
            assert!(NodeId::parse_version_actor("n7#0000000A").is_err());
        }
        let many: Vec<NodeId> = (0..VERSION_ACTORS_INTERNED_MAX + 10)
            .map(|i| NodeId::parse_version_actor(&format!("m{i}#00000001")).unwrap())
            .collect();
        for (i, id) in many.iter().enumerate() {
            let parsed = NodeId::parse_version_actor(&format!("m{i}#00000001")).unwrap();
            assert_eq!(&parsed, id);
        }
        let held = INTERNED.with(|interned| interned.borrow().len());
        assert!(held <= VERSION_ACTORS_INTERNED_MAX, "{held} names kept");
    }

    #[test]
    fn rejects_empty_long_and_odd_ids() {
        assert!(NodeId::new("n1").is_ok());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("a".repeat(NODE_ID_BYTES_MAX + 1)).is_err());
        assert!(NodeId::new("n 1").is_err());
        assert!(NodeId::new("n/1").is_err());
    }
}
