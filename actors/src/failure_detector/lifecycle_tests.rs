//! The life cycle as a plain state machine: ticks, transfer outcomes and
//! `leave`, without actors. The law: a node serves only after a pull
//! succeeded, is gone only after a push succeeded, and never has two
//! transfers under way.

use proptest::prelude::*;

use super::{ClusterFacts, Lifecycle, LifecycleStep};
use crate::failure_detector::MemberState;
use crate::repair::Direction;

const SETTLE_MS: u64 = 1_000;

#[derive(Clone, Copy, Debug, Default)]
struct Facts {
    bootstrapped: bool,
    nobody_serves: bool,
    knows_others: bool,
}

impl ClusterFacts for Facts {
    fn bootstrapped(&self) -> bool {
        self.bootstrapped
    }
    fn nobody_serves(&self) -> bool {
        self.nobody_serves
    }
    fn knows_others(&self) -> bool {
        self.knows_others
    }
}

const KNOWN: Facts = Facts {
    bootstrapped: true,
    nobody_serves: false,
    knows_others: true,
};

fn joining_at(since_ms: u64) -> Lifecycle {
    Lifecycle::Joining {
        since_ms,
        streaming: false,
    }
}

#[test]
fn a_joiner_waits_the_settle_time_then_pulls_once() {
    let mut life = joining_at(100);
    assert_eq!(life.tick(100 + SETTLE_MS - 1, SETTLE_MS, &KNOWN), None);
    assert_eq!(
        life.tick(100 + SETTLE_MS, SETTLE_MS, &KNOWN),
        Some(LifecycleStep::PullReplaced)
    );
    assert_eq!(life.as_str(), "joining: streaming");
    // No second pull while the first runs.
    assert_eq!(life.tick(100 + 5 * SETTLE_MS, SETTLE_MS, &KNOWN), None);
    assert_eq!(
        life.on_transfers_done(Direction::Pull, true),
        Some(MemberState::Alive)
    );
    assert_eq!(life, Lifecycle::Serving);
}

#[test]
fn a_joiner_that_knows_nobody_does_not_plan() {
    let mut life = joining_at(0);
    let alone = Facts {
        knows_others: false,
        ..KNOWN
    };
    assert_eq!(life.tick(10 * SETTLE_MS, SETTLE_MS, &alone), None);
    assert_eq!(life, joining_at(0));
}

#[test]
fn nodes_starting_together_pull_from_every_owner_without_waiting() {
    let mut life = joining_at(0);
    let together = Facts {
        nobody_serves: true,
        ..KNOWN
    };
    assert_eq!(
        life.tick(1, SETTLE_MS, &together),
        Some(LifecycleStep::PullFromEveryOwner)
    );
    // Not before the node has heard from its seeds.
    let mut early = joining_at(0);
    let unbooted = Facts {
        bootstrapped: false,
        ..together
    };
    assert_eq!(early.tick(1, SETTLE_MS, &unbooted), None);
}

#[test]
fn a_failed_pull_is_retried_on_a_later_tick() {
    let mut life = joining_at(0);
    assert!(life.tick(SETTLE_MS, SETTLE_MS, &KNOWN).is_some());
    assert_eq!(life.on_transfers_done(Direction::Pull, false), None);
    assert_eq!(life, joining_at(0));
    assert_eq!(
        life.tick(SETTLE_MS + 1, SETTLE_MS, &KNOWN),
        Some(LifecycleStep::PullReplaced)
    );
}

#[test]
fn leave_is_refused_while_joining_and_idempotent_once_leaving() {
    let mut life = joining_at(0);
    assert!(life.on_leave(5).is_err());
    assert_eq!(life, joining_at(0));

    let mut life = Lifecycle::Serving;
    assert_eq!(life.on_leave(7), Ok(Some(MemberState::Leaving)));
    assert_eq!(life.on_leave(8), Ok(None));
    assert_eq!(life.tick(7 + SETTLE_MS - 1, SETTLE_MS, &KNOWN), None);
    assert_eq!(
        life.tick(7 + SETTLE_MS, SETTLE_MS, &KNOWN),
        Some(LifecycleStep::Push)
    );
    assert_eq!(
        life.on_transfers_done(Direction::Push, true),
        Some(MemberState::Left)
    );
    assert_eq!(life, Lifecycle::Left);
    assert_eq!(life.on_leave(9), Ok(None));
    assert_eq!(life.tick(u64::MAX, SETTLE_MS, &KNOWN), None);
}

#[test]
fn a_settle_time_near_the_clock_end_does_not_overflow() {
    let mut life = joining_at(u64::MAX - 1);
    assert_eq!(life.tick(u64::MAX - 1, u64::MAX, &KNOWN), None);
}

#[derive(Clone, Debug)]
enum Event {
    Tick { advance_ms: u64, facts: Facts },
    Done { ok: bool },
    Leave,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0u64..2 * SETTLE_MS, any::<(bool, bool, bool)>()).prop_map(|(advance_ms, (b, n, k))| {
            Event::Tick {
                advance_ms,
                facts: Facts {
                    bootstrapped: b,
                    nobody_serves: n,
                    knows_others: k,
                },
            }
        }),
        any::<bool>().prop_map(|ok| Event::Done { ok }),
        Just(Event::Leave),
    ]
}

proptest! {
    /// Whatever happens, in any order: serving only after a successful
    /// pull, left only after a successful push, at most one transfer under
    /// way, and the states only move forward.
    #[test]
    fn the_life_cycle_only_moves_forward_through_successful_transfers(
        start_joining in any::<bool>(),
        events in proptest::collection::vec(event(), 0..60),
    ) {
        fn rank(l: Lifecycle) -> u8 {
            match l {
                Lifecycle::Joining { .. } => 0,
                Lifecycle::Serving => 1,
                Lifecycle::Leaving { .. } => 2,
                Lifecycle::Left => 3,
            }
        }
        let mut now = 0u64;
        let mut life = if start_joining { joining_at(0) } else { Lifecycle::Serving };
        let mut under_way: Option<Direction> = None;
        for e in events {
            let before = life;
            match e {
                Event::Tick { advance_ms, facts } => {
                    now += advance_ms;
                    let step = life.tick(now, SETTLE_MS, &facts);
                    if let Some(step) = step {
                        prop_assert!(under_way.is_none(), "a second transfer started");
                        under_way = Some(match step {
                            LifecycleStep::Push => Direction::Push,
                            _ => Direction::Pull,
                        });
                    }
                }
                Event::Done { ok } => {
                    let Some(direction) = under_way.take() else { continue };
                    let status = life.on_transfers_done(direction, ok);
                    match (before, life) {
                        (Lifecycle::Joining { .. }, Lifecycle::Serving) => {
                            prop_assert!(ok && direction == Direction::Pull);
                            prop_assert_eq!(status, Some(MemberState::Alive));
                        }
                        (Lifecycle::Leaving { .. }, Lifecycle::Left) => {
                            prop_assert!(ok && direction == Direction::Push);
                            prop_assert_eq!(status, Some(MemberState::Left));
                        }
                        _ => prop_assert_eq!(status, None),
                    }
                }
                Event::Leave => {
                    let answer = life.on_leave(now);
                    if under_way.is_some() {
                        // A leave during a join's pull is refused; during a
                        // push it changes nothing.
                        prop_assert_eq!(rank(life), rank(before));
                    }
                    if let Ok(Some(status)) = answer {
                        prop_assert_eq!(status, MemberState::Leaving);
                        prop_assert_eq!(before, Lifecycle::Serving);
                    }
                }
            }
            prop_assert!(rank(life) >= rank(before), "{:?} -> {:?}", before, life);
            prop_assert!(rank(life) <= rank(before) + 1, "{:?} -> {:?}", before, life);
        }
    }
}

/// The pushes owed for lost ranges: one target at a time, a failed batch
/// retried after the others, a target that left the ring dropped, nothing
/// sent twice at once.
#[test]
#[allow(clippy::unwrap_used)]
fn lost_ranges_are_pushed_one_target_at_a_time_until_done() {
    use super::LostRanges;
    use crate::repair::handoff::Transfer;
    use crate::ring::{Token, TokenRange};
    use crate::NodeId;
    let id = |s: &str| NodeId::new(s).unwrap();
    let t = |after: u64, target: &str| Transfer {
        range: TokenRange {
            after: Token(after),
            upto: Token(after + 10),
        },
        source: id("me"),
        target: id(target),
    };
    let mut lost = LostRanges::default();
    assert_eq!(lost.add(vec![t(0, "a"), t(20, "b"), t(40, "a")]), 3);
    assert_eq!(lost.add(vec![t(0, "a")]), 0, "already pending");
    let all = |_: &NodeId| true;
    // "a" is down: "b" goes first.
    let batch = lost.next_batch(all, |n| n.as_str() != "a").unwrap();
    assert_eq!(batch, vec![t(20, "b")]);
    assert!(lost.next_batch(all, all).is_none(), "one batch at a time");
    lost.finish(&batch, false);
    // Both up: "a"'s two ranges, then "b" again after its failure.
    let batch = lost.next_batch(all, all).unwrap();
    assert_eq!(batch, vec![t(0, "a"), t(40, "a")]);
    lost.finish(&batch, true);
    let batch = lost.next_batch(all, all).unwrap();
    assert_eq!(batch, vec![t(20, "b")]);
    lost.finish(&batch, true);
    assert!(lost.next_batch(all, all).is_none(), "all done");
    // A target that left the ring is dropped.
    lost.add(vec![t(60, "c")]);
    assert!(lost.next_batch(|n| n.as_str() != "c", all).is_none());
    assert_eq!(lost.pending(), 0);
}
