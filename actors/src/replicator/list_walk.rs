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
#[path = "list_walk_tests.rs"]
mod tests;
