//! The coordinators under random orders of answers, failures and timers:
//! a node is asked at most once, and each answers once, only with its
//! quorum.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::tests::{id, needed, nodes, unreachable, SLOPPY};
use super::*;

/// One event of a random run.
#[derive(Clone, Debug)]
enum Event {
    /// The `i`-th outstanding replica answers (ok or failed).
    Answer(usize, bool),
    StandInTimer,
    /// A read's retry timer (writes have none).
    RetryTimer,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        prop_oneof![
            8 => (0usize..8, any::<bool>()).prop_map(|(i, ok)| Event::Answer(i, ok)),
            1 => Just(Event::StandInTimer),
            1 => Just(Event::RetryTimer),
        ],
        0..40,
    )
}

/// Primaries `p0`, `p1`, ... seen as `reaches` says.
fn numbered(reaches: &[Reach]) -> Vec<(NodeId, Reach)> {
    reaches
        .iter()
        .enumerate()
        .map(|(i, r)| (id(&format!("p{i}")), *r))
        .collect()
}

fn reach() -> impl Strategy<Value = Reach> {
    prop_oneof![
        Just(Reach::Usable),
        Just(Reach::Doubtful),
        Just(Reach::Unusable)
    ]
}

proptest! {
    /// Whatever the order of answers and timers: a node is asked at most
    /// once, a write answers at most once, and only `Ok` once W copies (PW
    /// on primaries) are durable by the coordinator's own count.
    #[test]
    fn a_write_answers_once_and_only_with_its_quorum(
        reaches in prop::collection::vec(reach(), 1..5),
        spare in 0usize..4,
        w in 1usize..4,
        pw in 0usize..3,
        replace_failed in any::<bool>(),
        replace_silent in any::<bool>(),
        events in events(),
    ) {
        let primaries = numbered(&reaches);
        let spare: Vec<NodeId> = (0..spare).map(|i| id(&format!("s{i}"))).collect();
        let policy = SloppyPolicy { replace_failed, replace_silent };
        let (mut write, step) = WriteCoordinator::start(w, pw, &primaries, None, spare, policy);
        let mut asked: HashSet<NodeId> = HashSet::new();
        let mut outstanding: Vec<NodeId> = Vec::new();
        let mut answers = usize::from(step.answer.is_some());
        let (mut ok, mut ok_primaries) = (0usize, 0usize);
        let mut take = |asks: Vec<Ask>, outstanding: &mut Vec<NodeId>| {
            for ask in asks {
                prop_assert!(asked.insert(ask.node.clone()), "{} asked twice", ask.node);
                outstanding.push(ask.node);
            }
            Ok(())
        };
        take(step.asks, &mut outstanding)?;
        let is_primary: HashMap<NodeId, bool> =
            primaries.iter().map(|(n, _)| (n.clone(), true)).collect();
        for event in events {
            let step = match event {
                Event::Answer(i, success) if !outstanding.is_empty() => {
                    let node = outstanding.remove(i % outstanding.len());
                    if success {
                        ok += 1;
                        ok_primaries += usize::from(is_primary.contains_key(&node));
                        write.on_ack(&node, Ok(()))
                    } else {
                        write.on_ack(&node, Err(unreachable()))
                    }
                }
                Event::Answer(..) => continue,
                Event::StandInTimer => write.on_stand_in_timer(),
                Event::RetryTimer => continue,
            };
            if let Some(answer) = &step.answer {
                answers += 1;
                if answer.is_ok() {
                    prop_assert!(ok >= w && ok_primaries >= pw, "ok {ok}/{w}, primaries {ok_primaries}/{pw}");
                }
            }
            take(step.asks, &mut outstanding)?;
        }
        prop_assert!(answers <= 1, "answered {answers} times");
        if outstanding.is_empty() && answers == 0 {
            prop_assert!(!write.is_finished() || answers == 1);
        }
    }

    /// A read whose replicas all answer `Ok` (in any order) answers `Ok`
    /// exactly once and finishes exactly once, when R (PR) are reachable.
    #[test]
    fn a_read_of_live_replicas_answers_and_finishes_once(
        n in 1usize..5,
        r in 1usize..5,
        order in prop::collection::vec(0usize..8, 0..8),
    ) {
        let primaries = numbered(&vec![Reach::Usable; n]);
        let (mut read, step) = ReadCoordinator::start(r, 0, &primaries, vec![], SLOPPY);
        let mut outstanding: Vec<NodeId> = step.asks.into_iter().map(|a| a.node).collect();
        let mut answers: Vec<bool> = step.answer.iter().map(|a| a.is_ok()).collect();
        let mut finished = usize::from(step.finished.is_some());
        let mut picks = order.into_iter();
        while !outstanding.is_empty() {
            let i = picks.next().unwrap_or(0) % outstanding.len();
            let node = outstanding.remove(i);
            let step = read.on_reply(&node, Ok(None));
            answers.extend(step.answer.iter().map(|a| a.is_ok()));
            finished += usize::from(step.finished.is_some());
        }
        prop_assert_eq!(answers, vec![r <= n]);
        prop_assert_eq!(finished, 1);
    }

    /// A read asking only what R needs, whatever the answers and timers: a
    /// node is asked at most once, the client is answered at most once,
    /// and only `Ok` with R replies (PR from primaries).
    #[test]
    fn a_needed_read_answers_once_and_only_with_its_quorum(
        reaches in prop::collection::vec(reach(), 1..5),
        spare in 0usize..4,
        r in 1usize..4,
        pr in 0usize..3,
        replace_failed in any::<bool>(),
        replace_silent in any::<bool>(),
        events in events(),
    ) {
        let primaries = numbered(&reaches);
        let spare: Vec<String> = (0..spare).map(|i| format!("s{i}")).collect();
        let spare: Vec<&str> = spare.iter().map(String::as_str).collect();
        let policy = SloppyPolicy { replace_failed, replace_silent };
        let (mut read, step) = needed(r, pr.min(r), &primaries, &spare, policy);
        let mut asked: HashSet<NodeId> = HashSet::new();
        let mut outstanding: Vec<NodeId> = Vec::new();
        let mut answers = usize::from(step.answer.is_some());
        let (mut ok, mut ok_primaries) = (0usize, 0usize);
        let mut take = |asks: Vec<Ask>, outstanding: &mut Vec<NodeId>| {
            for ask in asks {
                prop_assert!(asked.insert(ask.node.clone()), "{} asked twice", ask.node);
                outstanding.push(ask.node);
            }
            Ok(())
        };
        take(step.asks, &mut outstanding)?;
        for event in events {
            let step = match event {
                Event::Answer(i, success) if !outstanding.is_empty() => {
                    let node = outstanding.remove(i % outstanding.len());
                    if success {
                        ok += 1;
                        ok_primaries += usize::from(primaries.iter().any(|(p, _)| *p == node));
                        read.on_reply(&node, Ok(None))
                    } else {
                        read.on_reply(&node, Err(unreachable()))
                    }
                }
                Event::Answer(..) => continue,
                Event::StandInTimer => read.on_stand_in_timer(),
                Event::RetryTimer => {
                    let step = read.on_retry_timer();
                    prop_assert!(
                        step.asks.iter().all(|a| a.stand_in_for.is_none()),
                        "the retry timer asked a stand-in"
                    );
                    step
                }
            };
            if let Some(answer) = &step.answer {
                answers += 1;
                if answer.is_ok() {
                    prop_assert!(ok >= r && ok_primaries >= pr.min(r), "ok {ok}/{r}, primaries {ok_primaries}/{pr}");
                }
            }
            take(step.asks, &mut outstanding)?;
        }
        prop_assert!(answers <= 1, "answered {answers} times");
    }

    /// With every primary usable and at most N - R of them failing, a read
    /// asking only what R needs still answers `Ok`: each failure brings a
    /// reserve primary in, without a timer, and no more are asked than R
    /// plus the failures.
    #[test]
    fn a_needed_read_survives_n_minus_r_failures(
        n in 1usize..6,
        r in 1usize..6,
        failing in prop::collection::vec(any::<bool>(), 6),
        order in prop::collection::vec(0usize..8, 0..12),
    ) {
        prop_assume!(r <= n);
        let primaries = numbered(&vec![Reach::Usable; n]);
        let fails: HashSet<NodeId> = (0..n)
            .filter(|i| failing[*i])
            .take(n - r)
            .map(|i| primaries[i].0.clone())
            .collect();
        let (mut read, step) = needed(r, 0, &primaries, &[], SloppyPolicy::default());
        let mut outstanding: Vec<NodeId> = nodes(&step.asks);
        let mut asked = outstanding.len();
        let mut answers: Vec<bool> = Vec::new();
        let mut finished = 0;
        let mut picks = order.into_iter();
        while !outstanding.is_empty() {
            let i = picks.next().unwrap_or(0) % outstanding.len();
            let node = outstanding.remove(i);
            let result = if fails.contains(&node) { Err(unreachable()) } else { Ok(None) };
            let step = read.on_reply(&node, result);
            asked += step.asks.len();
            outstanding.extend(nodes(&step.asks));
            answers.extend(step.answer.iter().map(|a| a.is_ok()));
            finished += usize::from(step.finished.is_some());
        }
        prop_assert_eq!(answers, vec![true]);
        prop_assert_eq!(finished, 1);
        prop_assert!(asked <= r + fails.len(), "asked {asked}, r {r}, failures {}", fails.len());
    }
}
