//! Tests of the paged walk of the key listing (`list_walk.rs`).
#![allow(clippy::unwrap_used)]

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
