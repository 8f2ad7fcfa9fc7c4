//! The admin extensions' answers (`members`, `ring`, `repair`; see
//! docs/protocol.md, "ringkv extensions"): pure functions from what the
//! actors reported to the answer's top-level keys.

use rmpv::Value;

use crate::repair::admin::{Exchange, KeyReplica};
use crate::ring::Ring;
use crate::storage::HintCounts;
use crate::wire::client::{ClientReply, MemberStatus};
use crate::NodeId;

fn s(text: &str) -> Value {
    Value::String(text.into())
}

/// `members`: every member of `status` with its tokens on `ring` (the
/// write ring, as `status`'s shares: a joining member's tokens count), the
/// hints this node holds for it, and `load_bytes` for `own` when known.
pub fn members(
    own: &NodeId,
    status: &[MemberStatus],
    ring: &Ring,
    hints: &HintCounts,
    own_load_bytes: Option<u64>,
) -> ClientReply {
    let tokens = ring.tokens_per_member();
    let rows = status
        .iter()
        .map(|m| {
            let tokens = tokens
                .iter()
                .find(|(id, _)| id.as_str() == m.id)
                .map_or(0, |(_, c)| *c as u64);
            let (hint_count, hint_bytes) = hints
                .iter()
                .find(|(id, _, _)| id.as_str() == m.id)
                .map_or((0, 0), |(_, c, b)| (*c, *b));
            let mut row = vec![
                (s("id"), s(&m.id)),
                (s("addr"), s(&m.addr)),
                (s("client_addr"), s(&m.client_addr)),
                (s("state"), s(&m.state)),
                (s("dc"), s(&m.dc)),
                (s("rack"), s(&m.rack)),
                (s("tokens"), Value::from(tokens)),
                (s("owns"), Value::F64(m.ring_share)),
                (s("hints_pending"), Value::from(hint_count)),
                (s("hints_pending_bytes"), Value::from(hint_bytes)),
            ];
            if m.id == own.as_str() {
                if let Some(load) = own_load_bytes {
                    row.push((s("load_bytes"), Value::from(load)));
                }
            }
            Value::Map(row)
        })
        .collect();
    ClientReply::Admin {
        fields: vec![
            (String::from("node"), s(own.as_str())),
            (String::from("members"), Value::Array(rows)),
        ],
    }
}

/// `ring`: the merged token ranges with their `n` replicas and each
/// replica's data center (`dcs`, in the same order), and the per-DC
/// replication when there is one.
pub fn ring(own: &NodeId, ring: &Ring, n: usize) -> ClientReply {
    let ranges = ring
        .replica_ranges(n)
        .into_iter()
        .map(|(range, replicas)| {
            Value::Map(vec![
                (s("after"), Value::from(range.after.0)),
                (s("upto"), Value::from(range.upto.0)),
                (
                    s("replicas"),
                    Value::Array(replicas.iter().map(|r| s(r.as_str())).collect()),
                ),
                (
                    s("dcs"),
                    Value::Array(
                        replicas
                            .iter()
                            .map(|r| s(ring.dc_of(r).unwrap_or("")))
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    ClientReply::Admin {
        fields: vec![
            (String::from("node"), s(own.as_str())),
            (String::from("n"), Value::from(n as u64)),
            (
                String::from("dc_replication"),
                s(&ring.dc_replication().to_string()),
            ),
            (
                String::from("tokens"),
                Value::from(ring.token_count() as u64),
            ),
            (String::from("ranges"), Value::Array(ranges)),
        ],
    }
}

/// `repair` without a key: one entry per exchange.
pub fn exchanges(own: &NodeId, done: &[Exchange]) -> ClientReply {
    let rows = done
        .iter()
        .map(|e| {
            let mut row = vec![(s("peer"), s(e.peer.as_str()))];
            match &e.result {
                Ok(stats) => row.extend([
                    (s("ok"), Value::Boolean(true)),
                    (s("leaves"), Value::from(stats.leaves as u64)),
                    (s("differing"), Value::from(stats.differing as u64)),
                    (s("keys"), Value::from(stats.pulled.keys)),
                    (s("repaired"), Value::from(stats.pulled.changed)),
                    (s("bytes"), Value::from(stats.pulled.bytes)),
                ]),
                Err(error) => {
                    row.extend([(s("ok"), Value::Boolean(false)), (s("error"), s(error))])
                }
            }
            Value::Map(row)
        })
        .collect();
    ClientReply::Admin {
        fields: vec![
            (String::from("node"), s(own.as_str())),
            (String::from("exchanges"), Value::Array(rows)),
        ],
    }
}

/// `repair` with a key: one entry per replica.
pub fn key_replicas(own: &NodeId, replicas: &[KeyReplica]) -> ClientReply {
    let rows = replicas
        .iter()
        .map(|r| {
            let mut row = vec![
                (s("node"), s(r.node.as_str())),
                (s("found"), Value::Boolean(r.version.is_some())),
                (s("repaired"), Value::Boolean(r.repaired)),
            ];
            if let Some(v) = &r.version {
                row.extend([
                    (s("siblings"), Value::from(v.siblings as u64)),
                    (s("live"), Value::from(v.live as u64)),
                    (s("tombstone"), Value::Boolean(v.tombstone)),
                    (s("clock"), s(&v.clock)),
                ]);
            }
            if let Some(error) = &r.error {
                row.push((s("error"), s(error)));
            }
            Value::Map(row)
        })
        .collect();
    ClientReply::Admin {
        fields: vec![
            (String::from("node"), s(own.as_str())),
            (String::from("replicas"), Value::Array(rows)),
        ],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::RingMember;
    use crate::wire::client::map_field;

    fn status(id: &str, state: &str) -> MemberStatus {
        MemberStatus {
            id: id.into(),
            addr: format!("{id}:1"),
            client_addr: format!("{id}:2"),
            dc: "dc1".into(),
            rack: "r1".into(),
            state: state.into(),
            ring_share: 0.5,
            heartbeat_age_ms: 0,
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn members_join_tokens_hints_and_the_own_load() {
        let ring = Ring::new(
            &[
                RingMember {
                    id: id("a"),
                    dc: "dc1".into(),
                    rack: "r1".into(),
                    weight: 1,
                },
                RingMember {
                    id: id("b"),
                    dc: "dc1".into(),
                    rack: "r1".into(),
                    weight: 2,
                },
            ],
            4,
        );
        let hints = vec![(id("b"), 3, 300)];
        let ClientReply::Admin { fields } = members(
            &id("a"),
            &[status("a", "alive"), status("b", "down")],
            &ring,
            &hints,
            Some(1234),
        ) else {
            panic!("not an admin reply");
        };
        let Value::Array(rows) = &fields[1].1 else {
            panic!("no rows")
        };
        let field = |row: &Value, name: &str| map_field(row, name).cloned();
        assert_eq!(field(&rows[0], "tokens"), Some(Value::from(4u64)));
        assert_eq!(field(&rows[1], "tokens"), Some(Value::from(8u64)));
        assert_eq!(field(&rows[0], "load_bytes"), Some(Value::from(1234u64)));
        assert_eq!(field(&rows[1], "load_bytes"), None, "only its own load");
        assert_eq!(field(&rows[0], "hints_pending"), Some(Value::from(0u64)));
        assert_eq!(field(&rows[1], "hints_pending"), Some(Value::from(3u64)));
        assert_eq!(field(&rows[1], "state"), Some(Value::from("down")));
    }
}
