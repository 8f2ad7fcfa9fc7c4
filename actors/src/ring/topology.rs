//! Where a ring's walk prefers to place replicas when members sit in
//! several data centers or racks (see the ring's module doc).

use super::RingMember;

/// Picks `wanted` of `candidates` (distinct members in clockwise order),
/// preferring at each step the first candidate in a new data center, then
/// the first in a new rack, then simply the next one.
pub(super) fn spread_across_topology(
    candidates: &[usize],
    members: &[RingMember],
    wanted: usize,
) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(wanted);
    let mut remaining: Vec<usize> = candidates.to_vec();
    while chosen.len() < wanted && !remaining.is_empty() {
        let new_dc = |m: &usize| chosen.iter().all(|c| members[*c].dc != members[*m].dc);
        let new_rack = |m: &usize| {
            chosen.iter().all(|c| {
                (&members[*c].dc, &members[*c].rack) != (&members[*m].dc, &members[*m].rack)
            })
        };
        let pick = remaining
            .iter()
            .position(new_dc)
            .or_else(|| remaining.iter().position(new_rack))
            .unwrap_or(0);
        chosen.push(remaining.remove(pick));
    }
    chosen
}
