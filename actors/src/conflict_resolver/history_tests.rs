//! Random concurrent histories against a model.
//!
//! Several replicas (each also a coordinator) and clients. A client reads the
//! merge of a random subset of replicas (or sends no context), then puts or
//! deletes through a random coordinator: `update` on that replica's object,
//! the result stored there and merged into a random subset of the others.
//! Anti-entropy merges one replica into another at random. After every step,
//! the merge of all replicas must hold exactly the acknowledged writes whose
//! dot no acknowledged write's context covered, with their values: nothing
//! else disappears, nothing replaced comes back (in particular no value a
//! delete covered), and no dot is handed out twice.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::test_support::node;
use super::{Dot, Object, VersionLimits, VersionVector};

/// Replicas in a history; each one is also a coordinator.
const REPLICAS: usize = 3;
/// Wall time that one step of a history takes.
const STEP_MS: u64 = 1_000;

/// One step of a history.
#[derive(Clone, Debug)]
enum Step {
    /// A client reads the replicas in `read_from` (a bit mask; none = a blind
    /// write) and writes through `coordinator`, which then replicates to the
    /// replicas in `replicate_to`.
    Write {
        read_from: u8,
        coordinator: usize,
        delete: bool,
        replicate_to: u8,
    },
    /// Anti-entropy: `from`'s object is merged into `to`'s.
    AntiEntropy { from: usize, to: usize },
    /// The replica prunes its stored copy (keeping its own entry).
    Prune { replica: usize },
}

/// A write the coordinator acknowledged.
#[derive(Debug)]
struct Acknowledged {
    dot: Dot,
    value: Option<Vec<u8>>,
    context: VersionVector,
}

fn arb_step(with_pruning: bool) -> impl Strategy<Value = Step> {
    let mask = 0u8..(1 << REPLICAS);
    let write = (mask.clone(), 0..REPLICAS, prop::bool::weighted(0.25), mask).prop_map(
        |(read_from, coordinator, delete, replicate_to)| Step::Write {
            read_from,
            coordinator,
            delete,
            replicate_to,
        },
    );
    let anti_entropy =
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::AntiEntropy { from, to });
    let prune = (0..REPLICAS).prop_map(|replica| Step::Prune { replica });
    let prune_weight = if with_pruning { 1 } else { 0 };
    prop_oneof![4 => write, 2 => anti_entropy, prune_weight => prune]
}

fn replica_id(index: usize) -> crate::NodeId {
    node(&format!("r{index}"))
}

fn merge_into(slot: &mut Option<Object>, incoming: &Object) {
    *slot = Some(
        slot.as_ref()
            .map_or_else(|| incoming.clone(), |held| held.merge(incoming)),
    );
}

fn merge_of(replicas: &[Option<Object>], mask: u8) -> Object {
    replicas
        .iter()
        .enumerate()
        .filter(|(index, _)| mask & (1 << index) != 0)
        .filter_map(|(_, object)| object.as_ref())
        .fold(Object::default(), |acc, object| acc.merge(object))
}

/// Runs a history; `exact` (no pruning) also demands that every covered
/// write is gone, while with pruning covered writes may come back as false
/// siblings.
fn run(steps: &[Step], limits: &VersionLimits, exact: bool) -> Result<(), TestCaseError> {
    let mut replicas: Vec<Option<Object>> = vec![None; REPLICAS];
    let mut acknowledged: Vec<Acknowledged> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let now_ms = (index as u64 + 1) * STEP_MS;
        match *step {
            Step::Write {
                read_from,
                coordinator,
                delete,
                replicate_to,
            } => {
                let context = merge_of(&replicas, read_from).context().clone();
                let value = (!delete).then(|| (index as u32).to_be_bytes().to_vec());
                let id = replica_id(coordinator);
                let local = replicas[coordinator].as_ref();
                let written =
                    Object::update(local, &context, value.clone(), &id, now_ms, limits).unwrap();
                let dot = Dot {
                    node: id,
                    counter: written.context().counter(&replica_id(coordinator)),
                };
                prop_assert!(
                    acknowledged.iter().all(|earlier| earlier.dot != dot),
                    "dot {:?} handed out twice",
                    dot
                );
                acknowledged.push(Acknowledged {
                    dot,
                    value,
                    context,
                });
                replicas[coordinator] = Some(written.clone());
                for (target, slot) in replicas.iter_mut().enumerate() {
                    if replicate_to & (1 << target) != 0 && target != coordinator {
                        merge_into(slot, &written);
                    }
                }
            }
            Step::AntiEntropy { from, to } => {
                if let Some(source) = replicas[from].clone() {
                    merge_into(&mut replicas[to], &source);
                }
            }
            Step::Prune { replica } => {
                if let Some(object) = replicas[replica].as_mut() {
                    object.prune_keeping(&replica_id(replica), now_ms, limits);
                }
            }
        }
        check(&replicas, &acknowledged, exact)?;
    }
    Ok(())
}

fn check(
    replicas: &[Option<Object>],
    acknowledged: &[Acknowledged],
    exact: bool,
) -> Result<(), TestCaseError> {
    let all = merge_of(replicas, u8::MAX);
    for sibling in all.siblings() {
        let write = acknowledged.iter().find(|write| write.dot == sibling.dot);
        prop_assert!(
            write.is_some_and(|write| write.value == sibling.value),
            "phantom sibling {:?}",
            sibling
        );
    }
    for write in acknowledged {
        let replaced = acknowledged
            .iter()
            .any(|later| later.context.covers(&write.dot));
        let present = all
            .siblings()
            .iter()
            .any(|sibling| sibling.dot == write.dot);
        if !replaced {
            prop_assert!(present, "lost write {:?}", write.dot);
        } else if exact {
            prop_assert!(!present, "replaced write {:?} came back", write.dot);
        }
    }
    if exact {
        for delete in acknowledged.iter().filter(|write| write.value.is_none()) {
            for covered in acknowledged
                .iter()
                .filter(|write| delete.context.covers(&write.dot))
            {
                prop_assert!(
                    all.siblings()
                        .iter()
                        .all(|sibling| sibling.dot != covered.dot),
                    "delete {:?} undone: {:?} resurrected",
                    delete.dot,
                    covered.dot
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn histories_keep_exactly_the_unreplaced_writes(
        steps in prop::collection::vec(arb_step(false), 1..40),
    ) {
        let limits = VersionLimits { siblings_max: usize::MAX, ..VersionLimits::default() };
        run(&steps, &limits, true)?;
    }

    /// Aggressive pruning (one entry, no age) may bring replaced writes back
    /// as false siblings, but never loses an unreplaced write, never invents
    /// a value and never hands out a dot twice.
    #[test]
    fn histories_with_pruning_lose_no_write(
        steps in prop::collection::vec(arb_step(true), 1..40),
    ) {
        let limits = VersionLimits { vclock_entries_max: 1, vclock_prune_age_s: 0, siblings_max: usize::MAX };
        run(&steps, &limits, false)?;
    }
}
