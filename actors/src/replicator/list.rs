//! Carries out the key listing (the client `list` op): one page per
//! request, walked by `list_walk` over this node's view of the ring; and
//! the replica side, `ListKeys` from a peer.
//!
//! Each span goes to one replica: this node's store when it is the one
//! chosen (a `LocalListKeys` on the storage readers, off the arbiter),
//! else a `ListKeys` peer request. A failed or timed-out replica is
//! replaced by the next read primary of the arc. When the page's deadline
//! comes after some progress, the page is answered as it stands, with its
//! cursor.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use fnv::FnvHashMap;
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn, Instrument};

use super::list_walk::{PageWalk, Position, SpanAnswer, SpanAsk, Step, LIST_RANGES_PER_PAGE_MAX};
use super::{placement, Reach, Replicator};
use crate::bridge::Incoming;
use crate::conflict_resolver::Object;
use crate::replicas::Replicas;
use crate::ring::{user_key, Ring, Token};
use crate::storage::{ListBounds, LiveFilter, LocalListKeys};
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::{KeyPage, ListKeys, PeerRefusal, RemoteError};
use crate::NodeId;

/// Most entries (live keys and tombstones) one replica examines for one
/// span request: a store full of tombstones still answers in bounded time.
pub const LIST_SCAN_ENTRIES_MAX: usize = 4096;
/// Bytes of keys and objects one replica reads for one span request at
/// most (one entry always counts).
pub const LIST_SCAN_BYTES_MAX: usize = 16 << 20;

/// Coordinate one page of a `list`.
#[derive(Message)]
#[rtype(result = "Result<ListPage, ClientError>")]
pub struct CoordinateList {
    /// The client's cursor (`None`: the first page).
    pub cursor: Option<Vec<u8>>,
    /// Keys wanted, 1..=`LIST_LIMIT_MAX`.
    pub limit: usize,
    /// Deadline override, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The client request id.
    pub trace: u64,
    /// Longest key a cursor may hold, in bytes (`max_key_bytes`).
    pub key_bytes_max: usize,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Live keys, in ring order.
    pub keys: Vec<Vec<u8>>,
    /// Where the next page starts (`None`: this was the last page).
    pub cursor: Option<Vec<u8>>,
}

/// Whether an encoded object holds a live value (for the storage scan):
/// one that is neither a tombstone nor expired at the wall time of the
/// filter's creation (the system clock: a listing is not part of the
/// simulated cluster's workload).
pub fn live_filter() -> LiveFilter {
    let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock::new());
    Arc::new(move |bytes: &[u8]| {
        Object::decode(bytes)
            .map(|object| !object.live_values_at(now_ms).is_empty())
            .map_err(|e| e.to_string())
    })
}

/// The bounds of one span request for `limit` keys.
fn bounds(limit: usize) -> ListBounds {
    ListBounds {
        keys_max: limit.clamp(1, super::list_walk::LIST_LIMIT_MAX),
        scanned_entries_max: LIST_SCAN_ENTRIES_MAX,
        scanned_bytes_max: LIST_SCAN_BYTES_MAX,
    }
}

/// The storage key range `[start, end)` of a span ending at `end_token`
/// (inclusive).
fn storage_end(end_token: Token) -> Option<Vec<u8>> {
    end_token.0.checked_add(1).map(|t| t.to_be_bytes().to_vec())
}

/// This node's view for one page: the rings, N, and how it sees each member.
struct View {
    own: NodeId,
    read_ring: Arc<Ring>,
    write_ring: Arc<Ring>,
    n: usize,
    reach: FnvHashMap<NodeId, Reach>,
}

impl View {
    /// The last token of the arc holding `t` in either ring (arcs of both
    /// rings, so the read primaries are the same over the whole arc).
    fn arc_end(&self, t: Token) -> Token {
        let end = |ring: &Ring| ring.token_at_or_after(t).unwrap_or(Token(u64::MAX));
        end(&self.read_ring).min(end(&self.write_ring))
    }

    /// The arc's read primaries: this node first when it is one, then the
    /// others as usable, doubtful, unusable (each in preference order).
    fn candidates(&self, t: Token) -> Vec<NodeId> {
        let primaries = placement::read_primaries_at(&self.read_ring, &self.write_ring, self.n, t);
        let rank = |node: &NodeId| match self.reach.get(node) {
            _ if *node == self.own => 0,
            Some(Reach::Usable) => 1,
            Some(Reach::Doubtful) => 2,
            _ => 3,
        };
        let mut ordered = primaries;
        // Stable: preference order within a rank.
        ordered.sort_by_key(rank);
        ordered
    }
}

impl Replicator {
    /// Starts one page of a listing.
    pub(super) fn start_list(
        &self,
        msg: CoordinateList,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ListPage, ClientError>>>> {
        let position = match msg.cursor.as_deref() {
            None => Position::Start,
            Some(cursor) => match Position::decode(cursor, msg.key_bytes_max) {
                Ok(position) => position,
                Err(why) => {
                    let error = ClientError::new(
                        ErrorCode::BadRequest,
                        format!("field `cursor` is not a cursor this cluster issued: {why}"),
                    );
                    return Box::pin(async move { Err(error) });
                }
            },
        };
        if !self.ready {
            let error = ClientError::new(
                ErrorCode::Unavailable,
                "this node is still starting: it has not heard from its seeds yet \
                 (see `status`: ready, waiting_for_seeds)",
            );
            return Box::pin(async move { Err(error) });
        }
        let members = self
            .read_ring
            .members()
            .iter()
            .chain(self.write_ring.members())
            .map(|m| (m.id.clone(), self.reach(&m.id)))
            .collect();
        let view = View {
            own: self.own.clone(),
            read_ring: self.read_ring.clone(),
            write_ring: self.write_ring.clone(),
            n: self.options.n,
            reach: members,
        };
        let timeout_ms = msg.timeout_ms.unwrap_or(self.options.request_timeout_ms);
        let span =
            tracing::info_span!(parent: &self.span, "list", req = %format_args!("{:x}", msg.trace));
        let walk = PageWalk::new(position, msg.limit);
        Box::pin(
            coordinate(self.replicas.clone(), view, walk, timeout_ms, msg.trace).instrument(span),
        )
    }
}

/// Walks one page to its end, its deadline, or an arc nobody can list.
async fn coordinate(
    replicas: Replicas,
    view: View,
    mut walk: PageWalk,
    timeout_ms: u64,
    trace: u64,
) -> Result<ListPage, ClientError> {
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_millis(timeout_ms);
    let from = walk.position().clone();
    let mut asks = 0usize;
    loop {
        let step = walk.next(|t| view.arc_end(t), |t| view.candidates(t));
        let ask = match step {
            Step::Ask(ask) => ask,
            Step::Done => break,
            Step::Unavailable { token, failed } => {
                warn!(
                    token = token.0,
                    ?failed,
                    "list: no read primary of an arc answered"
                );
                if walk.made_progress(&from) {
                    // Answer what was listed; the next page meets the arc
                    // again (and may find a replica back).
                    break;
                }
                return Err(ClientError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "no replica of the ring range at token {:#018x} could list it (failed: {}); \
                         retry with the same cursor",
                        token.0,
                        failed
                            .iter()
                            .map(NodeId::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            if walk.made_progress(&from) {
                debug!("list: deadline reached; answering the page so far");
                break;
            }
            return Err(ClientError::new(
                ErrorCode::Timeout,
                format!("no replica listed a range within {timeout_ms} ms"),
            ));
        }
        // Half of what is left, so a replica that hangs leaves time for
        // the next one.
        let ask_ms = u64::try_from(left.as_millis() / 2)
            .unwrap_or(u64::MAX)
            .max(1);
        asks += 1;
        let answer = ask_span(&replicas, &ask, trace, ask_ms).await;
        if let Err(why) = walk.on_answer(&ask, answer) {
            info!(peer = %ask.node, error = %why, "list: a replica failed its span; asking the next");
        }
    }
    let pass_over = from.next_token().is_none();
    if !walk.made_progress(&from) && !pass_over {
        // Only when every ask failed up to the request bound: the same
        // cursor again would help nobody.
        return Err(ClientError::new(
            ErrorCode::Unavailable,
            format!("no replica answered any of {asks} span requests; retry with the same cursor"),
        ));
    }
    let (keys, cursor) = walk.finish();
    debug!(
        keys = keys.len(),
        asks,
        last = cursor.is_none(),
        "list page done"
    );
    Ok(ListPage {
        keys,
        cursor: cursor.map(|c| c.encode()),
    })
}

/// Asks one replica (this node's store, or a peer) for a span.
async fn ask_span(
    replicas: &Replicas,
    ask: &SpanAsk,
    trace: u64,
    timeout_ms: u64,
) -> Result<SpanAnswer, String> {
    if ask.node == replicas.own {
        let listing = replicas
            .storage
            .send(LocalListKeys {
                start: ask.start.clone(),
                end: storage_end(ask.end_token),
                bounds: bounds(ask.limit),
                live: live_filter(),
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let user = |k: Vec<u8>| user_key(&k).map(<[u8]>::to_vec);
        return Ok(SpanAnswer {
            keys: listing.keys.into_iter().filter_map(user).collect(),
            stopped_after: listing.stopped_after.and_then(user),
        });
    }
    let request = ListKeys {
        start: ByteBuf::from(ask.start.clone()),
        end_token: ask.end_token.0,
        limit: u32::try_from(ask.limit).unwrap_or(u32::MAX),
    };
    let page = replicas
        .call(&ask.node, request, trace, timeout_ms)
        .await
        .map_err(|e| e.to_string())?;
    Ok(SpanAnswer {
        keys: page.keys.into_iter().map(ByteBuf::into_vec).collect(),
        stopped_after: page.stopped_after.map(ByteBuf::into_vec),
    })
}

impl Handler<Incoming<ListKeys>> for Replicator {
    type Result = ResponseFuture<Result<KeyPage, RemoteError>>;

    /// Serves a span of a peer's listing: only from a member, and only a
    /// span this node is a read primary of over every arc in its own view
    /// (else its answer could miss keys: refused untouched, so the lister
    /// asks another replica).
    fn handle(&mut self, msg: Incoming<ListKeys>, _ctx: &mut Self::Context) -> Self::Result {
        let ListKeys {
            start,
            end_token,
            limit,
        } = msg.request;
        if let Err(refused) = self.admit_span(&msg.from, &start, Token(end_token)) {
            return Box::pin(async move { Err(refused) });
        }
        let span = self.replica_span(&msg.from, msg.trace);
        let list = self.replicas.storage.send(LocalListKeys {
            start: start.into_vec(),
            end: storage_end(Token(end_token)),
            bounds: bounds(limit as usize),
            live: live_filter(),
        });
        Box::pin(
            async move {
                let internal = |e: String| RemoteError::new(ErrorCode::Internal, e);
                let listing = list
                    .await
                    .map_err(|e| internal(e.to_string()))?
                    .map_err(|e| internal(e.to_string()))?;
                let user = |k: Vec<u8>| user_key(&k).map(|u| ByteBuf::from(u.to_vec()));
                Ok(KeyPage {
                    keys: listing.keys.into_iter().filter_map(user).collect(),
                    stopped_after: listing.stopped_after.and_then(user),
                })
            }
            .instrument(span),
        )
    }
}

impl Replicator {
    /// The checks of a peer's span request: a member asks, the span is
    /// well formed and at most `LIST_RANGES_PER_PAGE_MAX` arcs wide, and
    /// this node is a read primary of each arc. Refusals are logged and
    /// answered untouched.
    fn admit_span(&self, from: &NodeId, start: &[u8], end: Token) -> Result<(), RemoteError> {
        let (read, write) = (&*self.read_ring, &*self.write_ring);
        let start_token = match start.len() {
            0 => Some(Token(0)),
            1..=7 => None,
            _ => start
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(|b| Token(u64::from_be_bytes(b))),
        };
        let refusal = match start_token {
            _ if !placement::is_placed(read, write, from) => {
                PeerRefusal::NotAMember { peer: from.clone() }
            }
            Some(start) if start <= end => {
                if self.holds_span(start, end) {
                    return Ok(());
                }
                PeerRefusal::NotShared
            }
            _ => {
                return Err(RemoteError::untouched(
                    ErrorCode::BadRequest,
                    "ListKeys: `start` is not a storage key at or before `end_token`",
                ))
            }
        };
        let _span = self.span.enter();
        warn!(peer = %from, request = "ListKeys", reason = %refusal, "refusing a peer request");
        Err(refusal.into())
    }

    /// Whether this node is a read primary of every arc from `start` to
    /// `end` (tokens, inclusive), at most `LIST_RANGES_PER_PAGE_MAX` arcs.
    fn holds_span(&self, start: Token, end: Token) -> bool {
        let (read, write, n) = (&*self.read_ring, &*self.write_ring, self.options.n);
        let mut t = start;
        for _ in 0..LIST_RANGES_PER_PAGE_MAX {
            if !placement::read_primaries_at(read, write, n, t).contains(&self.own) {
                return false;
            }
            let arc_end = |ring: &Ring| ring.token_at_or_after(t).unwrap_or(Token(u64::MAX));
            match arc_end(read).min(arc_end(write)) {
                last if last >= end => return true,
                last => t = Token(last.0 + 1),
            }
        }
        false
    }
}
