//! The ConflictResolver actor: reconciles the versions replicas answered for
//! a read. It merges them (the join of `Object::merge`: what one version
//! descends from is dropped, concurrent siblings are kept), extracts the live
//! values and the context covering every version seen, and names the
//! replicas whose answer lacks something (read repair's targets).
//!
//! New versions are minted inside the Storage writer's read-modify-write
//! (`Object::update` in the replicator's write mutation), because minting
//! must be atomic with the local read; the rules are the same pure functions.

use actix::prelude::*;
use tracing::error;

use super::{is_stale, Object, VersionVector};
use crate::wire::client::{ClientError, ErrorCode};
use crate::NodeId;

/// Merge the replicas' answers for one key.
#[derive(Message)]
#[rtype(result = "Result<Reconciled, ClientError>")]
pub struct Reconcile {
    /// Each replica and the bytes it stores (`None`: nothing).
    pub answers: Vec<(NodeId, Option<Vec<u8>>)>,
    /// The client request.
    pub trace: u64,
    /// Wall time of the read, in ms: values expired by then are absent.
    pub now_ms: u64,
}

/// The merged view of a key.
#[derive(Debug)]
pub struct Reconciled {
    /// Live sibling values (empty: absent or only tombstones).
    pub values: Vec<Vec<u8>>,
    /// The last writer's value (`Object::last_writer`; `None`: a delete
    /// won, or never written).
    pub last_writer: Option<Vec<u8>>,
    /// The clock covering every version seen (absent: never written); the
    /// coordinator seals it to the key as the client's context.
    pub context: Option<VersionVector>,
    /// The merged object, encoded (absent: never written).
    pub object: Option<Vec<u8>>,
    /// Replicas whose answer lacks part of the merged object.
    pub stale: Vec<NodeId>,
}

/// Merges answers as a read at wall time `now_ms` sees them (expired
/// values absent); pure, so it is tested without the actor.
pub fn reconcile(
    answers: &[(NodeId, Option<Vec<u8>>)],
    now_ms: u64,
) -> Result<Reconciled, ClientError> {
    let mut decoded: Vec<(NodeId, Option<Object>)> = Vec::with_capacity(answers.len());
    for (node, bytes) in answers {
        let object = bytes
            .as_deref()
            .map(Object::decode)
            .transpose()
            .map_err(|e| {
                ClientError::new(
                    ErrorCode::Internal,
                    format!("replica {node} returned an object that does not decode: {e}"),
                )
            })?;
        decoded.push((node.clone(), object));
    }
    let merged = decoded
        .iter()
        .filter_map(|(_, o)| o.as_ref())
        .fold(None::<Object>, |acc, o| {
            Some(match acc {
                None => o.clone(),
                Some(m) => m.merge(o),
            })
        });
    let Some(merged) = merged else {
        return Ok(Reconciled {
            values: Vec::new(),
            last_writer: None,
            context: None,
            object: None,
            stale: Vec::new(),
        });
    };
    let stale = decoded
        .iter()
        .filter(|(_, o)| is_stale(o.as_ref(), &merged))
        .map(|(n, _)| n.clone())
        .collect();
    Ok(Reconciled {
        values: merged
            .live_values_at(now_ms)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect(),
        last_writer: merged
            .last_writer()
            .and_then(|s| s.value_at(now_ms))
            .map(<[u8]>::to_vec),
        context: Some(merged.context().clone()),
        object: Some(merged.encode()),
        stale,
    })
}

/// What a read answers when every replica sent the same bytes (`bytes`,
/// from `node`; `None`: none holds the key). Nothing is merged and nobody
/// is stale, so this is [`reconcile`]'s answer without its work: the object
/// is decoded once, its values are moved out rather than copied, and it is
/// not encoded again for a read repair that cannot happen. `last_writer_only`
/// takes only the last writer's value (what `Reconciled::last_writer`
/// holds), else every live value (`Reconciled::values`); the context is the
/// object's clock (`Reconciled::context`).
pub fn answer_agreed(
    node: &NodeId,
    bytes: Option<&[u8]>,
    now_ms: u64,
    last_writer_only: bool,
) -> Result<(Vec<Vec<u8>>, Option<VersionVector>), ClientError> {
    let Some(bytes) = bytes else {
        return Ok((Vec::new(), None));
    };
    let object = Object::decode(bytes).map_err(|e| {
        ClientError::new(
            ErrorCode::Internal,
            format!("replica {node} returned an object that does not decode: {e}"),
        )
    })?;
    let last_writer = if last_writer_only {
        object.last_writer().map(|s| s.dot.clone())
    } else {
        None
    };
    let Object { clock, siblings } = object;
    let values = siblings
        .into_iter()
        .filter(|sibling| {
            sibling.value_at(now_ms).is_some()
                && (!last_writer_only || last_writer.as_ref() == Some(&sibling.dot))
        })
        .filter_map(|sibling| sibling.value)
        .collect();
    Ok((values, Some(clock)))
}

/// The actor (stateless: the rules are pure).
pub struct ConflictResolver {
    span: tracing::Span,
}

impl ConflictResolver {
    /// A resolver for node `node`.
    pub fn new(node: &NodeId) -> Self {
        Self {
            span: tracing::info_span!("conflict_resolver", node = %node, actor = "conflict_resolver"),
        }
    }
}

impl Actor for ConflictResolver {
    type Context = Context<Self>;
}

impl Handler<Reconcile> for ConflictResolver {
    type Result = Result<Reconciled, ClientError>;

    fn handle(&mut self, msg: Reconcile, _ctx: &mut Self::Context) -> Self::Result {
        let result = reconcile(&msg.answers, msg.now_ms);
        if let Err(e) = &result {
            let span = self.span.clone();
            let _span = span.enter();
            error!(req = %format_args!("{:x}", msg.trace), error = %e, "replica answers do not reconcile");
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conflict_resolver::{VersionLimits, VersionVector};

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn write(local: Option<&Object>, ctx: &VersionVector, v: &str, node: &str) -> Object {
        Object::update(
            local,
            ctx,
            Some(v.as_bytes().to_vec()),
            &id(node),
            1,
            &VersionLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn nothing_anywhere_is_absent_without_context() {
        let r = reconcile(&[(id("a"), None), (id("b"), None)], 0).unwrap();
        assert!(r.values.is_empty() && r.context.is_none() && r.stale.is_empty());
    }

    #[test]
    fn newer_version_wins_and_the_old_replica_is_stale() {
        let v1 = write(None, &VersionVector::new(), "v1", "a");
        let v2 = write(Some(&v1), v1.context(), "v2", "a");
        let r = reconcile(
            &[
                (id("a"), Some(v2.encode())),
                (id("b"), Some(v1.encode())),
                (id("c"), None),
            ],
            0,
        )
        .unwrap();
        assert_eq!(r.values, vec![b"v2".to_vec()]);
        assert_eq!(r.stale, vec![id("b"), id("c")]);
    }

    #[test]
    fn concurrent_versions_become_siblings_and_both_replicas_are_stale() {
        let x = write(None, &VersionVector::new(), "x", "a");
        let y = write(None, &VersionVector::new(), "y", "b");
        let r = reconcile(
            &[(id("a"), Some(x.encode())), (id("b"), Some(y.encode()))],
            0,
        )
        .unwrap();
        let mut values = r.values.clone();
        values.sort();
        assert_eq!(values, vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(r.stale.len(), 2);
    }

    #[test]
    fn the_last_writer_is_the_latest_write_then_the_larger_dot() {
        let at = |v: &str, node: &str, ms: u64, value: Option<&str>| {
            Object::update(
                None,
                &VersionVector::new(),
                value.map(|v| v.as_bytes().to_vec()),
                &id(node),
                ms,
                &VersionLimits::default(),
            )
            .map(|o| (v.to_owned(), o))
            .unwrap()
        };
        let (_, early) = at("early", "z", 5, Some("early"));
        let (_, late) = at("late", "a", 9, Some("late"));
        let answers = [
            (id("z"), Some(early.encode())),
            (id("a"), Some(late.encode())),
        ];
        let r = reconcile(&answers, 0).unwrap();
        assert_eq!(r.values.len(), 2);
        assert_eq!(r.last_writer, Some(b"late".to_vec()));
        // Same time: the larger dot (node "z" > "a") wins, on every node.
        let (_, tie) = at("tie", "a", 5, Some("tie"));
        let r = reconcile(
            &[
                (id("z"), Some(early.encode())),
                (id("a"), Some(tie.encode())),
            ],
            0,
        )
        .unwrap();
        assert_eq!(r.last_writer, Some(b"early".to_vec()));
        // A later delete wins: nothing to answer.
        let (_, gone) = at("gone", "b", 10, None);
        let r = reconcile(
            &[
                (id("a"), Some(late.encode())),
                (id("b"), Some(gone.encode())),
            ],
            0,
        )
        .unwrap();
        assert_eq!(r.values, vec![b"late".to_vec()]);
        assert_eq!(r.last_writer, None);
    }

    /// `answer_agreed` answers what `reconcile` answers for agreeing replicas.
    #[test]
    fn an_agreed_answer_is_what_reconcile_answers() {
        let x = write(None, &VersionVector::new(), "x", "a");
        let y = write(None, &VersionVector::new(), "y", "b");
        let siblings = x.merge(&y);
        let deleted = Object::update(
            Some(&x),
            x.context(),
            None,
            &id("a"),
            2,
            &VersionLimits::default(),
        )
        .unwrap();
        for object in [None, Some(x), Some(siblings), Some(deleted)] {
            let bytes = object.as_ref().map(Object::encode);
            let answers = vec![(id("a"), bytes.clone()), (id("b"), bytes.clone())];
            let full = reconcile(&answers, 0).unwrap();
            let all = answer_agreed(&id("a"), bytes.as_deref(), 0, false).unwrap();
            let mut expected = full.values.clone();
            let mut got = all.0.clone();
            expected.sort();
            got.sort();
            assert_eq!(got, expected);
            assert_eq!(all.1, full.context);
            let last = answer_agreed(&id("a"), bytes.as_deref(), 0, true).unwrap();
            assert_eq!(last.0, full.last_writer.into_iter().collect::<Vec<_>>());
            assert_eq!(last.1, full.context);
        }
        let e = answer_agreed(&id("a"), Some(&[0xff, 0x00]), 0, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
    }

    #[test]
    fn garbage_from_a_replica_is_an_internal_error() {
        let e = reconcile(&[(id("a"), Some(vec![0xff, 0x00]))], 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
    }
}
