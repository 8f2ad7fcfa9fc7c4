//! The key listing's walk (the client `list` op), pure: the cursor, and
//! how one page walks the ring.
//!
//! A pass lists keys in ring order: by token (the key's hash position)
//! from 0 to `u64::MAX`, then by key bytes, which is the order replicas
//! store them in (`storage/keys.rs`). A page starts where the cursor
//! says, asks ONE replica for the live keys of the arc holding that
//! position (this node first when it is a replica, then the other read
//! primaries, usable ones first), and goes on with the next arcs while the
//! page has room. Consecutive arcs whose chosen replica is the same node
//! are one request (a "span"). A replica that fails or answers out of
//! bounds is not asked again in this page: the next primary of the arc is.
//! Stand-ins are never asked: they hold only the writes they took for an
//! absent replica, not the arc.
//!
//! Exactly once: every answer is checked to hold only keys after the
//! position and within the span, in order, so the position only moves
//! forward and never past a key it did not see; a key live for the whole
//! pass is held by every read primary of its arc (once the store is
//! stable) and is listed when the walk crosses its position.
//!
//! Bounds: a page asks at most [`LIST_REQUESTS_PER_PAGE_MAX`] times and
//! covers at most [`LIST_RANGES_PER_PAGE_MAX`] arcs; each ask is bounded
//! on the replica (`list::LIST_SCAN_ENTRIES_MAX`). A page may hold fewer
//! keys than its limit, even none, and still carry a cursor.

use crate::ring::{Ring, Token};
pub use crate::wire::client::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use crate::NodeId;

/// Most ring arcs one page covers: a ring of 3 nodes at the default 128
/// virtual nodes has 384, so a pass over an empty store takes 2 pages.
pub const LIST_RANGES_PER_PAGE_MAX: usize = 256;
/// Most requests to replicas one page makes, failed ones included.
pub const LIST_REQUESTS_PER_PAGE_MAX: usize = 64;
/// The first byte of every cursor this build issues.
pub const CURSOR_VERSION: u8 = 1;

/// A cursor's kind byte: everything up to a token was listed.
const AFTER_TOKEN: u8 = 1;
/// A cursor's kind byte: everything up to a key was listed.
const AFTER_KEY: u8 = 2;

/// Where a pass stands: everything before it was listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// Nothing listed yet (the first page; no cursor).
    Start,
    /// Every key whose token is at most this one was listed.
    AfterToken(Token),
    /// Every key up to this one (its token, then the key) was listed.
    AfterKey(Token, Vec<u8>),
}

impl Position {
    /// The position just after `key`.
    pub fn after_key(key: &[u8]) -> Self {
        Position::AfterKey(Ring::key_token(key), key.to_vec())
    }

    /// The token the rest of the pass starts at (`None`: the pass is done).
    pub fn next_token(&self) -> Option<Token> {
        match self {
            Position::Start => Some(Token(0)),
            Position::AfterToken(t) => t.0.checked_add(1).map(Token),
            Position::AfterKey(t, _) => Some(*t),
        }
    }

    /// The first storage key (token, then user key) still to list
    /// (`None`: the pass is done).
    pub fn scan_start(&self) -> Option<Vec<u8>> {
        match self {
            Position::Start => Some(Vec::new()),
            Position::AfterToken(t) => t.0.checked_add(1).map(|t| t.to_be_bytes().to_vec()),
            Position::AfterKey(t, key) => {
                let mut start = Vec::with_capacity(9 + key.len());
                start.extend_from_slice(&t.0.to_be_bytes());
                start.extend_from_slice(key);
                start.push(0);
                Some(start)
            }
        }
    }

    /// Whether `key` (at `token`) comes after this position.
    fn precedes(&self, token: Token, key: &[u8]) -> bool {
        match self {
            Position::Start => true,
            Position::AfterToken(t) => token > *t,
            Position::AfterKey(t, k) => (token, key) > (*t, k.as_slice()),
        }
    }

    /// The opaque cursor a client gets: [`CURSOR_VERSION`], a kind byte,
    /// the token (8 bytes, big-endian), and the key for a key position.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, token, key): (u8, Token, &[u8]) = match self {
            // Never handed out (a first page needs no cursor); encoded as
            // "after nothing" for completeness.
            Position::Start => return Vec::new(),
            Position::AfterToken(t) => (AFTER_TOKEN, *t, &[]),
            Position::AfterKey(t, key) => (AFTER_KEY, *t, key),
        };
        let mut out = Vec::with_capacity(10 + key.len());
        out.push(CURSOR_VERSION);
        out.push(kind);
        out.extend_from_slice(&token.0.to_be_bytes());
        out.extend_from_slice(key);
        out
    }

    /// Reads a cursor a client sent back; anything this build would not
    /// have issued is refused with the reason (never a panic): another
    /// version, an unknown kind, a short token, a key that is empty, longer
    /// than `key_bytes_max` or not at the token it claims.
    pub fn decode(cursor: &[u8], key_bytes_max: usize) -> Result<Position, String> {
        let (&version, rest) = cursor.split_first().ok_or("the cursor is empty")?;
        if version != CURSOR_VERSION {
            return Err(format!(
                "cursor version {version} is not {CURSOR_VERSION} (a cursor of another build?)"
            ));
        }
        let (&kind, rest) = rest.split_first().ok_or("the cursor has no kind")?;
        let token = rest
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(|b| Token(u64::from_be_bytes(b)))
            .ok_or("the cursor's token is cut short")?;
        let key = &rest[8..];
        match kind {
            AFTER_TOKEN if key.is_empty() => Ok(Position::AfterToken(token)),
            AFTER_TOKEN => Err("the cursor has bytes after its token".into()),
            AFTER_KEY if key.is_empty() => Err("the cursor's key is empty".into()),
            AFTER_KEY if key.len() > key_bytes_max => Err(format!(
                "the cursor's key of {} bytes is over max_key_bytes ({key_bytes_max})",
                key.len()
            )),
            AFTER_KEY if Ring::key_token(key) != token => {
                Err("the cursor's key is not at the cursor's token".into())
            }
            AFTER_KEY => Ok(Position::AfterKey(token, key.to_vec())),
            other => Err(format!("unknown cursor kind {other}")),
        }
    }
}

/// One request of a page: the live keys of a span, from one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanAsk {
    /// The replica asked.
    pub node: NodeId,
    /// The first storage key of the span (inclusive).
    pub start: Vec<u8>,
    /// The first token of the span.
    pub start_token: Token,
    /// The last token of the span (inclusive).
    pub end_token: Token,
    /// Most keys wanted.
    pub limit: usize,
    /// Ring arcs the span covers (part of the first one, maybe).
    pub arcs: usize,
}

/// A replica's answer to a [`SpanAsk`]: live user keys in ring order, and
/// the key it stopped after when the span holds more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanAnswer {
    /// Live user keys.
    pub keys: Vec<Vec<u8>>,
    /// Where the replica stopped (`None`: the span is done).
    pub stopped_after: Option<Vec<u8>>,
}

/// What a page does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask this replica.
    Ask(SpanAsk),
    /// The page is complete: answer it ([`PageWalk::finish`]).
    Done,
    /// No read primary of the arc at this token is left to ask.
    Unavailable {
        /// The arc's first token still to list.
        token: Token,
        /// The primaries that failed in this page.
        failed: Vec<NodeId>,
    },
}

/// One page of a pass, as a state machine: [`PageWalk::next`] says whom to
/// ask, [`PageWalk::on_answer`] takes the answer (or the failure).
#[derive(Clone, Debug)]
pub struct PageWalk {
    position: Position,
    limit: usize,
    keys: Vec<Vec<u8>>,
    arcs_left: usize,
    asks_left: usize,
    failed: Vec<NodeId>,
}

impl PageWalk {
    /// A page of at most `limit` keys (clamped to `1..=LIST_LIMIT_MAX`)
    /// from `position`.
    pub fn new(position: Position, limit: usize) -> Self {
        Self {
            position,
            limit: limit.clamp(1, LIST_LIMIT_MAX),
            keys: Vec::new(),
            arcs_left: LIST_RANGES_PER_PAGE_MAX,
            asks_left: LIST_REQUESTS_PER_PAGE_MAX,
            failed: Vec::new(),
        }
    }

    /// The next step. `arc_end(t)` is the last token of the arc holding
    /// `t` (on the walk from 0 to `u64::MAX`), `candidates(t)` the arc's
    /// read primaries in the order to ask them.
    pub fn next(
        &self,
        arc_end: impl Fn(Token) -> Token,
        candidates: impl Fn(Token) -> Vec<NodeId>,
    ) -> Step {
        let full = self.keys.len() >= self.limit || self.arcs_left == 0 || self.asks_left == 0;
        let (Some(start_token), Some(start)) =
            (self.position.next_token(), self.position.scan_start())
        else {
            return Step::Done;
        };
        if full {
            return Step::Done;
        }
        let choose = |t: Token| {
            candidates(t)
                .into_iter()
                .find(|node| !self.failed.contains(node))
        };
        let Some(node) = choose(start_token) else {
            return Step::Unavailable {
                token: start_token,
                failed: self.failed.clone(),
            };
        };
        let mut end_token = arc_end(start_token).max(start_token);
        let mut arcs = 1;
        while arcs < self.arcs_left {
            let Some(next) = end_token.0.checked_add(1).map(Token) else {
                break;
            };
            if choose(next).as_ref() != Some(&node) {
                break;
            }
            end_token = arc_end(next).max(next);
            arcs += 1;
        }
        Step::Ask(SpanAsk {
            node,
            start,
            start_token,
            end_token,
            limit: self.limit - self.keys.len(),
            arcs,
        })
    }

    /// Takes the answer to `ask` (or why it failed). An answer that breaks
    /// the request's bounds (a key outside the span or not after the
    /// position, out of order, too many) counts as that replica failing:
    /// nothing of it is kept. Returns why the replica counts as failed.
    pub fn on_answer(
        &mut self,
        ask: &SpanAsk,
        answer: Result<SpanAnswer, String>,
    ) -> Result<(), String> {
        self.asks_left = self.asks_left.saturating_sub(1);
        let checked = answer.and_then(|a| self.check(ask, a));
        match checked {
            Ok(answer) => {
                self.arcs_left = self.arcs_left.saturating_sub(ask.arcs);
                self.keys.extend(answer.keys);
                self.position = match answer.stopped_after {
                    Some(key) => Position::after_key(&key),
                    None => Position::AfterToken(ask.end_token),
                };
                Ok(())
            }
            Err(why) => {
                self.failed.push(ask.node.clone());
                Err(why)
            }
        }
    }

    fn check(&self, ask: &SpanAsk, answer: SpanAnswer) -> Result<SpanAnswer, String> {
        if answer.keys.len() > ask.limit {
            return Err(format!(
                "answered {} keys for a limit of {}",
                answer.keys.len(),
                ask.limit
            ));
        }
        let in_span = |token: Token| ask.start_token <= token && token <= ask.end_token;
        let mut after = self.position.clone();
        for key in &answer.keys {
            let token = Ring::key_token(key);
            if !in_span(token) {
                return Err("answered a key outside the span asked".into());
            }
            if !after.precedes(token, key) {
                return Err("answered keys out of ring order".into());
            }
            after = Position::AfterKey(token, key.clone());
        }
        if let Some(stopped) = &answer.stopped_after {
            let token = Ring::key_token(stopped);
            let at_last = answer.keys.last() == Some(stopped);
            if !in_span(token) || !(at_last || after.precedes(token, stopped)) {
                return Err("stopped at a key outside the span or before its last key".into());
            }
        }
        Ok(answer)
    }

    /// Whether a replica was asked and answered in this page (a partial
    /// page can be answered when the deadline comes).
    pub fn made_progress(&self, from: &Position) -> bool {
        self.position != *from
    }

    /// The page's position now.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// The page's keys, and the cursor of the next page (`None`: the pass
    /// is done).
    pub fn finish(self) -> (Vec<Vec<u8>>, Option<Position>) {
        let cursor = self.position.next_token().map(|_| self.position);
        (self.keys, cursor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::RingMember;
    use std::collections::{BTreeMap, BTreeSet};

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn ring(nodes: usize, vnodes: u32) -> Ring {
        let members: Vec<RingMember> = (1..=nodes)
            .map(|i| RingMember {
                id: id(&format!("n{i}")),
                dc: "dc1".into(),
                rack: "r1".into(),
                weight: 1,
            })
            .collect();
        Ring::new(&members, vnodes)
    }

    fn arc_end(ring: &Ring) -> impl Fn(Token) -> Token + '_ {
        |t| ring.token_at_or_after(t).unwrap_or(Token(u64::MAX))
    }

    fn order(key: &[u8]) -> (Token, Vec<u8>) {
        (Ring::key_token(key), key.to_vec())
    }

    type Cursor = Vec<u8>;

    /// A cluster in memory: each node's store (ring order -> live?) holds
    /// the keys it is a read primary of; `down` nodes fail every ask.
    struct Sim {
        ring: Ring,
        n: usize,
        stores: BTreeMap<NodeId, BTreeMap<(Token, Vec<u8>), bool>>,
        down: BTreeSet<NodeId>,
        /// Entries a replica examines per ask at most (the scan bound).
        scan_max: usize,
        asks: usize,
    }

    impl Sim {
        fn new(nodes: usize, n: usize, keys: usize, deleted_every: usize) -> Self {
            let ring = ring(nodes, 8);
            let mut stores: BTreeMap<NodeId, BTreeMap<_, _>> = BTreeMap::new();
            for i in 0..keys {
                let key = format!("key{i}").into_bytes();
                let live = deleted_every == 0 || i % deleted_every != 0;
                for node in ring.preference_list(&key, n) {
                    stores.entry(node).or_default().insert(order(&key), live);
                }
            }
            Self {
                ring,
                n,
                stores,
                down: BTreeSet::new(),
                scan_max: 5,
                asks: 0,
            }
        }

        fn live_keys(&self) -> Vec<Vec<u8>> {
            let all: BTreeSet<(Token, Vec<u8>)> = self
                .stores
                .values()
                .flat_map(|s| s.iter().filter(|(_, live)| **live).map(|(k, _)| k.clone()))
                .collect();
            all.into_iter().map(|(_, k)| k).collect()
        }

        fn serve(&mut self, ask: &SpanAsk) -> Result<SpanAnswer, String> {
            self.asks += 1;
            if self.down.contains(&ask.node) {
                return Err("down".into());
            }
            let empty = BTreeMap::new();
            let store = self.stores.get(&ask.node).unwrap_or(&empty);
            let start_key = ask.start.get(8..).unwrap_or_default().to_vec();
            let start = (ask.start_token, start_key);
            let mut answer = SpanAnswer::default();
            for (examined, ((token, key), live)) in store.range(start..).enumerate() {
                if *token > ask.end_token {
                    break;
                }
                if answer.keys.len() == ask.limit || examined == self.scan_max {
                    return Ok(answer);
                }
                if *live {
                    answer.keys.push(key.clone());
                }
                answer.stopped_after = Some(key.clone());
            }
            answer.stopped_after = None;
            Ok(answer)
        }

        fn candidates(&self) -> impl Fn(Token) -> Vec<NodeId> + '_ {
            |t| self.ring.preference_list_at(t, self.n)
        }

        /// One page, through the cursor's wire form.
        fn page(
            &mut self,
            cursor: Option<&[u8]>,
            limit: usize,
        ) -> Result<(Vec<Vec<u8>>, Option<Cursor>), Step> {
            let position = match cursor {
                None => Position::Start,
                Some(c) => Position::decode(c, 1024).unwrap(),
            };
            let mut walk = PageWalk::new(position, limit);
            let mut asks = 0;
            loop {
                let step = walk.next(arc_end(&self.ring), self.candidates());
                match step {
                    Step::Ask(ask) => {
                        asks += 1;
                        let answer = self.serve(&ask);
                        let _ = walk.on_answer(&ask, answer);
                    }
                    Step::Done => break,
                    other => return Err(other),
                }
            }
            assert!(asks <= LIST_REQUESTS_PER_PAGE_MAX);
            let (keys, cursor) = walk.finish();
            assert!(keys.len() <= limit);
            Ok((keys, cursor.map(|c| c.encode())))
        }

        fn pass(&mut self, limit: usize) -> Vec<Vec<u8>> {
            let (mut all, mut cursor) = (Vec::new(), None);
            for _ in 0..100_000 {
                let (keys, next) = self.page(cursor.as_deref(), limit).unwrap();
                all.extend(keys);
                match next {
                    Some(c) => cursor = Some(c),
                    None => return all,
                }
            }
            panic!("the pass did not end");
        }
    }

    #[test]
    fn cursors_round_trip() {
        for position in [
            Position::AfterToken(Token(0)),
            Position::AfterToken(Token(u64::MAX - 1)),
            Position::after_key(b"k"),
            Position::after_key(&[0xff; 1024]),
        ] {
            let cursor = position.encode();
            assert_eq!(cursor[0], CURSOR_VERSION);
            assert_eq!(Position::decode(&cursor, 1024).unwrap(), position);
        }
    }

    #[test]
    fn garbage_cursors_are_refused_with_a_reason() {
        let good = Position::after_key(b"key").encode();
        let mut wrong_token = good.clone();
        wrong_token[5] ^= 1;
        let mut trailing = Position::AfterToken(Token(9)).encode();
        trailing.push(0);
        let mut other_version = good.clone();
        other_version[0] = 2;
        let mut other_kind = good.clone();
        other_kind[1] = 7;
        let long = Position::after_key(&[7; 1025]).encode();
        let cases: Vec<(&[u8], &str)> = vec![
            (&[], "empty"),
            (&[CURSOR_VERSION], "kind"),
            (&[CURSOR_VERSION, AFTER_TOKEN, 1, 2], "cut short"),
            (&good[..10], "key is empty"),
            (&wrong_token, "not at the cursor's token"),
            (&trailing, "after its token"),
            (&other_version, "version 2"),
            (&other_kind, "unknown cursor kind"),
            (&long, "max_key_bytes"),
        ];
        for (cursor, why) in cases {
            let error = Position::decode(cursor, 1024).unwrap_err();
            assert!(error.contains(why), "{cursor:?}: {error}");
        }
    }

    #[test]
    fn positions_order_keys_and_say_where_to_scan() {
        let p = Position::after_key(b"k");
        let (t, _) = order(b"k");
        assert!(!p.precedes(t, b"k"));
        assert!(p.precedes(t, b"k\0"));
        assert_eq!(p.scan_start().unwrap()[8..], *b"k\0");
        assert_eq!(
            Position::AfterToken(Token(5)).scan_start().unwrap(),
            6u64.to_be_bytes()
        );
        assert_eq!(Position::AfterToken(Token(u64::MAX)).scan_start(), None);
        assert_eq!(Position::AfterToken(Token(u64::MAX)).next_token(), None);
        assert_eq!(Position::Start.scan_start(), Some(Vec::new()));
    }

    #[test]
    fn every_live_key_is_listed_once_in_ring_order_whatever_the_limit() {
        for (nodes, n) in [(3, 3), (3, 2), (5, 2), (4, 1)] {
            let mut sim = Sim::new(nodes, n, 700, 7);
            let expected = sim.live_keys();
            assert_eq!(expected.len(), 600);
            for limit in [1, 7, 100, 1000] {
                let listed = sim.pass(limit);
                assert_eq!(listed, expected, "{nodes} nodes, N={n}, limit {limit}");
            }
        }
    }

    #[test]
    fn a_page_covers_a_bounded_number_of_arcs() {
        // 40 nodes x 8 vnodes = 320 arcs, no keys: more than one page.
        let mut sim = Sim::new(40, 3, 0, 0);
        assert!(sim.ring.ranges().len() > LIST_RANGES_PER_PAGE_MAX);
        let (keys, cursor) = sim.page(None, 1000).unwrap();
        assert!(keys.is_empty());
        let cursor = Position::decode(&cursor.unwrap(), 1024).unwrap();
        assert!(
            matches!(cursor, Position::AfterToken(_)),
            "an empty page stops after an arc: {cursor:?}"
        );
        // Each arc has another first primary here: the request bound ends
        // pages too; the pass still ends.
        assert!(sim.pass(1000).is_empty());
    }

    #[test]
    fn a_replica_that_is_down_is_replaced_by_the_next_primary() {
        let mut sim = Sim::new(3, 2, 500, 0);
        let expected = sim.live_keys();
        sim.down.insert(id("n2"));
        for limit in [1, 7, 100, 1000] {
            assert_eq!(sim.pass(limit), expected, "limit {limit}");
        }
    }

    #[test]
    fn an_arc_without_a_live_primary_is_unavailable() {
        let mut sim = Sim::new(3, 1, 300, 0);
        sim.down.insert(id("n1"));
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            match sim.page(cursor.as_deref(), 1000) {
                Ok((_, Some(next))) => cursor = Some(next),
                Ok((_, None)) => panic!("n1's arcs cannot be listed"),
                Err(Step::Unavailable { failed, .. }) => {
                    assert_eq!(failed, vec![id("n1")]);
                    return;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn an_answer_out_of_bounds_counts_as_a_failure_and_keeps_nothing() {
        let ring = ring(3, 8);
        let mut walk = PageWalk::new(Position::Start, 10);
        let Step::Ask(ask) = walk.next(arc_end(&ring), |t| ring.preference_list_at(t, 2)) else {
            panic!("a first ask");
        };
        let outside = (0..)
            .map(|i| format!("x{i}").into_bytes())
            .find(|k| Ring::key_token(k) > ask.end_token)
            .unwrap();
        let answer = SpanAnswer {
            keys: vec![outside],
            stopped_after: None,
        };
        assert!(walk.on_answer(&ask, Ok(answer)).is_err());
        assert!(walk.keys.is_empty());
        assert_eq!(walk.position, Position::Start);
        let too_many = SpanAnswer {
            keys: vec![b"a".to_vec(); 11],
            stopped_after: None,
        };
        let Step::Ask(second) = walk.next(arc_end(&ring), |t| ring.preference_list_at(t, 2)) else {
            panic!("the next primary is asked");
        };
        assert_ne!(second.node, ask.node);
        assert!(walk.on_answer(&second, Ok(too_many)).is_err());
        assert!(matches!(
            walk.next(arc_end(&ring), |t| ring.preference_list_at(t, 2)),
            Step::Unavailable { .. }
        ));
    }
}
