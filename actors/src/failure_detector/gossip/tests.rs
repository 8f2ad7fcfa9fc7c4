//! Unit tests and laws of the gossip membership.
#![allow(clippy::unwrap_used)]

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;

pub(super) fn info(id: &str) -> MemberInfo {
    MemberInfo {
        id: id_of(id),
        peer_addr: format!("{id}:1"),
        client_addr: format!("{id}:2"),
        dc: "dc1".into(),
        rack: "r1".into(),
        weight: 1,
    }
}

pub(super) fn id_of(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

/// The options these tests count in: 1 s rounds and suspicion after 5 s
/// (5 rounds; the product default is longer, and these tests are about
/// the rules, not the default).
pub(super) fn options() -> GossipOptions {
    GossipOptions {
        suspect_after_ms: 5_000,
        ..GossipOptions::default()
    }
}

/// A node whose wall and monotonic clocks both read `now_ms` at its start.
pub(super) fn node(id: &str, now_ms: u64) -> Gossip {
    Gossip::new(info(id), Vec::new(), now_ms, now_ms, options())
}

pub(super) fn record(
    generation: u64,
    heartbeat: u64,
    status: MemberState,
    status_version: u64,
) -> MemberRecord {
    MemberRecord {
        generation,
        heartbeat,
        status,
        status_version,
    }
}

/// A message from `sender` holding one entry about `about`.
pub(super) fn entry_message(about: &str, record: MemberRecord, stale: bool) -> GossipMessage {
    GossipMessage {
        version: GOSSIP_MESSAGE_VERSION,
        members: vec![GossipEntry {
            info: info(about),
            record,
            stale,
        }],
    }
}

pub(super) fn record_of(gossip: &Gossip, id: &str) -> MemberRecord {
    let snapshot = gossip.snapshot();
    let found = snapshot.into_iter().find(|p| p.info.id == id_of(id));
    found.unwrap().record
}

/// `a` has heard `b` (heartbeat 1) at time 0 and knows `c` is alive too.
fn a_hears_b_and_c() -> Gossip {
    let mut a = node("a", 0);
    for peer in ["b", "c"] {
        let alive = record(7, 1, MemberState::Alive, 0);
        a.receive(&id_of(peer), entry_message(peer, alive, false), 0);
    }
    a
}

#[test]
fn merge_takes_the_higher_heartbeat_and_status_version() {
    let mut a = node("a", 0);
    let from = id_of("c");
    a.receive(
        &from,
        entry_message("c", record(5, 3, MemberState::Alive, 0), false),
        0,
    );
    a.receive(
        &from,
        entry_message("c", record(5, 2, MemberState::Leaving, 1), false),
        0,
    );
    assert_eq!(record_of(&a, "c"), record(5, 3, MemberState::Leaving, 1));
    a.receive(
        &from,
        entry_message("c", record(5, 9, MemberState::Alive, 0), false),
        0,
    );
    assert_eq!(record_of(&a, "c"), record(5, 9, MemberState::Leaving, 1));
    assert_eq!(a.state_of(&id_of("c")), Some(MemberState::Leaving));
}

#[test]
fn suspects_after_the_timeout() {
    let mut a = a_hears_b_and_c();
    let mut rng = SmallRng::seed_from_u64(1);
    assert!(a.tick(4_999, &mut rng).changes.is_empty());
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Alive));
    let changes = a.tick(5_000, &mut rng).changes;
    assert!(changes.contains(&StateChange {
        node: id_of("b"),
        from: Some(MemberState::Alive),
        to: MemberState::Suspect,
        reported_by: id_of("a"),
    }));
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Suspect));
}

#[test]
fn not_down_on_its_own_suspicion_alone() {
    let mut a = a_hears_b_and_c();
    let mut rng = SmallRng::seed_from_u64(1);
    a.tick(5_000, &mut rng);
    // The suspect itself (with an old heartbeat) is no second source, nor
    // is a third node that does not find it stale, nor time passing.
    let old = record(7, 1, MemberState::Alive, 0);
    a.receive(&id_of("b"), entry_message("b", old.clone(), true), 6_000);
    a.receive(&id_of("c"), entry_message("b", old.clone(), false), 6_000);
    for now_ms in [7_000, 60_000, 600_000] {
        a.tick(now_ms, &mut rng);
    }
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Suspect));
    // Our own name on a report is no second source either.
    a.receive(&id_of("a"), entry_message("b", old, true), 600_000);
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Suspect));
}

#[test]
fn a_report_before_our_own_timeout_is_not_enough() {
    let mut a = a_hears_b_and_c();
    let old = record(7, 1, MemberState::Alive, 0);
    let changes = a.receive(&id_of("c"), entry_message("b", old, true), 4_000);
    assert!(changes.is_empty());
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Alive));
}

#[test]
fn down_once_a_second_source_agrees() {
    let mut a = a_hears_b_and_c();
    let mut rng = SmallRng::seed_from_u64(1);
    a.tick(5_000, &mut rng);
    let old = record(7, 1, MemberState::Alive, 0);
    let changes = a.receive(&id_of("c"), entry_message("b", old, true), 5_500);
    assert_eq!(
        changes,
        vec![StateChange {
            node: id_of("b"),
            from: Some(MemberState::Suspect),
            to: MemberState::Down,
            reported_by: id_of("c"),
        }]
    );
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Down));
}

#[test]
fn alive_again_when_the_heartbeat_advances() {
    let mut a = a_hears_b_and_c();
    let mut rng = SmallRng::seed_from_u64(1);
    a.tick(5_000, &mut rng);
    a.receive(
        &id_of("c"),
        entry_message("b", record(7, 1, MemberState::Alive, 0), true),
        5_000,
    );
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Down));
    // News from a sender that still finds it stale is old news.
    let newer = record(7, 2, MemberState::Alive, 0);
    a.receive(&id_of("c"), entry_message("b", newer, true), 5_100);
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Down));
    let changes = a.receive(
        &id_of("c"),
        entry_message("b", record(7, 3, MemberState::Alive, 0), false),
        5_200,
    );
    assert_eq!(
        changes,
        vec![StateChange {
            node: id_of("b"),
            from: Some(MemberState::Down),
            to: MemberState::Alive,
            reported_by: id_of("c"),
        }]
    );
    // The timer restarted at the advance.
    assert!(a.tick(10_199, &mut rng).changes.is_empty());
}

#[test]
fn restart_with_a_new_generation_wins_over_a_stale_heartbeat() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut a = node("a", 0);
    let mut b = node("b", 1_000);
    let mut message = b.tick(1_000, &mut rng).message;
    for round in 1..50 {
        message = b.tick(1_000 + round * 1_000, &mut rng).message;
    }
    a.receive(&id_of("b"), message, 50_000);
    assert_eq!(record_of(&a, "b").version(), (1_000, 50));
    // b restarts from its snapshot while its clock reads earlier than before.
    let mut b = Gossip::new(info("b"), b.snapshot(), 500, 500, options());
    assert_eq!(b.generation(), 1_001);
    let message = b.tick(500, &mut rng).message;
    a.receive(&id_of("b"), message, 51_000);
    assert_eq!(record_of(&a, "b").version(), (1_001, 1));
    assert_eq!(a.state_of(&id_of("b")), Some(MemberState::Alive));
}

#[test]
fn restart_without_a_snapshot_outruns_its_old_incarnation() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut a = node("a", 0);
    a.receive(
        &id_of("b"),
        entry_message("b", record(1_000, 50, MemberState::Alive, 0), false),
        0,
    );
    // Snapshot lost and clock stepped back: generation 500 loses at first...
    let mut b = node("b", 500);
    a.receive(&id_of("b"), b.tick(500, &mut rng).message, 1_000);
    assert_eq!(record_of(&a, "b").version(), (1_000, 50));
    // ...until b hears of its old incarnation and starts a newer one.
    b.receive(&id_of("a"), a.tick(1_000, &mut rng).message, 600);
    assert_eq!(b.generation(), 1_001);
    a.receive(&id_of("b"), b.tick(1_600, &mut rng).message, 2_000);
    assert_eq!(record_of(&a, "b").version(), (1_001, 1));
}

/// Every change and every member's view, per node and round, of three
/// nodes that start with monotonic clocks at 0 and the wall clocks
/// `wall_ms`, exchange lists every round until `c` goes silent after
/// `SILENT_FROM_MS`; rounds every 1 000 ms up to 20 000.
fn detection_history(wall_ms: [u64; 3]) -> Vec<(u64, String, String)> {
    const SILENT_FROM_MS: u64 = 8_000;
    let options = options();
    let ids = ["a", "b", "c"];
    let mut nodes: Vec<Gossip> = ids
        .iter()
        .zip(wall_ms)
        .map(|(id, wall)| Gossip::new(info(id), Vec::new(), wall, 0, options.clone()))
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        for (j, peer) in ids.iter().enumerate() {
            if i != j {
                node.introduce(info(peer), 0);
            }
        }
    }
    let mut rng = SmallRng::seed_from_u64(5);
    let mut history = Vec::new();
    for now_ms in (1_000..=20_000).step_by(1_000) {
        let messages: Vec<GossipMessage> = nodes
            .iter_mut()
            .map(|n| n.tick(now_ms, &mut rng).message)
            .collect();
        for (to, node) in nodes.iter_mut().enumerate() {
            for (from, message) in messages.iter().enumerate() {
                let silent = ids[from] == "c" && now_ms > SILENT_FROM_MS;
                if from != to && !silent {
                    let changes = node.receive(&id_of(ids[from]), message.clone(), now_ms);
                    history.push((now_ms, ids[to].to_string(), format!("{changes:?}")));
                }
            }
        }
        for (i, node) in nodes.iter().enumerate() {
            let views: Vec<_> = node
                .members(now_ms)
                .iter()
                .map(|v| (v.info.id.to_string(), v.state, v.heartbeat_age_ms))
                .collect();
            history.push((now_ms, ids[i].to_string(), format!("{views:?}")));
        }
    }
    history
}

#[test]
fn a_wall_clock_jump_before_start_moves_only_the_generation() {
    const WALL_MS: u64 = 1_700_000_000_000;
    const HOUR_MS: u64 = 3_600_000;
    let steady = detection_history([WALL_MS; 3]);
    // b's wall clock jumped an hour ahead just before it started: its
    // generation is an hour later, and nothing else changes.
    let jumped = detection_history([WALL_MS, WALL_MS + HOUR_MS, WALL_MS]);
    assert_eq!(steady, jumped);
    // And detection works in it: c, silent after 8 000 ms, is suspected at
    // 13 000 (suspect_after_ms later) and down once a and b agree.
    let views_at = |now_ms: u64, node: &str| {
        let (_, _, views) = jumped
            .iter()
            .rfind(|(t, n, _)| *t == now_ms && n == node)
            .unwrap();
        views.clone()
    };
    assert!(views_at(12_000, "a").contains(r#"("c", Alive, 4000)"#));
    assert!(views_at(13_000, "a").contains(r#"("c", Down, 5000)"#));
    assert!(views_at(20_000, "b").contains(r#"("a", Alive, 0)"#));
}

#[test]
fn left_members_are_not_gossiped_to() {
    let mut a = a_hears_b_and_c();
    let left = record(7, 2, MemberState::Left, 1);
    a.receive(&id_of("c"), entry_message("c", left, false), 0);
    assert_eq!(a.state_of(&id_of("c")), Some(MemberState::Left));
    let mut rng = SmallRng::seed_from_u64(3);
    for round in 0..50 {
        let targets = a.tick(round * 100, &mut rng).targets;
        let ids: Vec<NodeId> = targets.into_iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![id_of("b")], "round {round}");
    }
}

#[test]
fn a_members_own_status_is_changed_only_by_itself() {
    let mut a = node("a", 0);
    let forged = record(a.generation(), 99, MemberState::Left, 99);
    a.receive(&id_of("b"), entry_message("a", forged, true), 0);
    assert_eq!(a.state_of(&id_of("a")), Some(MemberState::Alive));
    assert_eq!(record_of(&a, "a").status_version, 0);
    assert!(a.set_own_status(MemberState::Down, 0).is_empty());
    assert!(a.set_own_status(MemberState::Suspect, 0).is_empty());
    assert_eq!(a.state_of(&id_of("a")), Some(MemberState::Alive));
    // Its own change spreads and wins.
    let mut rng = SmallRng::seed_from_u64(1);
    let mut b = node("b", 0);
    b.receive(&id_of("a"), a.tick(1_000, &mut rng).message, 1_000);
    let changes = a.set_own_status(MemberState::Leaving, 1_500);
    assert_eq!(changes[0].to, MemberState::Leaving);
    b.receive(&id_of("a"), a.tick(2_000, &mut rng).message, 2_000);
    assert_eq!(b.state_of(&id_of("a")), Some(MemberState::Leaving));
}

#[test]
fn introduced_members_are_suspect_until_heard_and_contacted() {
    let mut a = node("a", 0);
    let changes = a.introduce(info("seed"), 0);
    assert_eq!(changes[0].to, MemberState::Suspect);
    assert!(a.introduce(info("seed"), 0).is_empty());
    let mut rng = SmallRng::seed_from_u64(1);
    // Nothing else is live, so the unreachable seed is contacted every tick.
    for round in 1..20 {
        let targets = a.tick(round * 1_000, &mut rng).targets;
        assert_eq!(targets, vec![info("seed")]);
    }
}

#[test]
fn members_beyond_the_limit_are_dropped() {
    let options = GossipOptions {
        gossip_members_max: 3,
        ..GossipOptions::default()
    };
    let mut a = Gossip::new(info("a"), Vec::new(), 0, 0, options.clone());
    for peer in ["b", "c", "d"] {
        a.introduce(info(peer), 0);
    }
    a.receive(
        &id_of("b"),
        entry_message("e", record(1, 1, MemberState::Alive, 0), false),
        0,
    );
    assert_eq!(a.members(0).len(), 3);
    assert_eq!(a.members_dropped(), 2);
    assert_eq!(a.state_of(&id_of("e")), None);
    // A snapshot larger than the limit is cut to it too, ourselves kept.
    let mut snapshot = a.snapshot();
    snapshot.push(PersistedMember {
        info: info("e"),
        record: record(1, 1, MemberState::Alive, 0),
    });
    let restored = Gossip::new(info("z"), snapshot, 0, 0, options);
    assert_eq!(restored.members(0).len(), 3);
    assert_eq!(restored.state_of(&id_of("z")), Some(MemberState::Alive));
    assert_eq!(restored.members_dropped(), 2);
}

#[test]
fn snapshot_restores_members_and_views_are_sorted() {
    let mut a = a_hears_b_and_c();
    a.receive(
        &id_of("c"),
        entry_message("c", record(7, 2, MemberState::Left, 1), false),
        0,
    );
    let restored = Gossip::new(
        info("a"),
        a.snapshot(),
        9_000,
        9_000,
        GossipOptions::default(),
    );
    let views = restored.members(9_500);
    let ids: Vec<&str> = views.iter().map(|v| v.info.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b", "c"]);
    let states: Vec<MemberState> = views.iter().map(|v| v.state).collect();
    assert_eq!(
        states,
        vec![MemberState::Alive, MemberState::Suspect, MemberState::Left]
    );
    assert_eq!(views[1].heartbeat_age_ms, 500);
    assert_eq!(restored.generation(), 9_000);
}

#[test]
fn messages_of_another_version_are_ignored() {
    let mut a = node("a", 0);
    let mut message = entry_message("b", record(1, 1, MemberState::Alive, 0), false);
    message.version += 1;
    assert!(a.receive(&id_of("b"), message, 0).is_empty());
    assert_eq!(a.state_of(&id_of("b")), None);
}

/// Backs the module doc's size claim (about 185 bytes per member).
#[test]
fn a_message_costs_under_200_bytes_per_member() {
    const MEMBERS: usize = 100;
    let mut a = node("node-000", 1_764_000_000_000);
    for i in 1..MEMBERS {
        let peer = MemberInfo {
            id: id_of(&format!("node-{i:03}")),
            peer_addr: format!("10.0.{}.{}:7100", i / 256, i % 256),
            client_addr: format!("10.0.{}.{}:7000", i / 256, i % 256),
            dc: "eu-west-1".into(),
            rack: "rack-07".into(),
            weight: 1,
        };
        let alive = record(1_764_000_000_000 + i as u64, 86_400, MemberState::Alive, 2);
        let message = GossipMessage {
            version: GOSSIP_MESSAGE_VERSION,
            members: vec![GossipEntry {
                info: peer,
                record: alive,
                stale: false,
            }],
        };
        a.receive(&id_of("node-001"), message, 1_764_000_000_000);
    }
    let mut rng = SmallRng::seed_from_u64(1);
    let message = a.tick(1_764_000_001_000, &mut rng).message;
    assert_eq!(message.members.len(), MEMBERS);
    let bytes = rmp_serde::to_vec_named(&message).unwrap().len();
    println!(
        "gossip message: {MEMBERS} members, {bytes} bytes, {} bytes per member",
        bytes / MEMBERS
    );
    assert!(bytes / MEMBERS <= 200, "{bytes} bytes");
}

/// Pins the wire layout of a gossip message (named MessagePack fields), so
/// a change to it is deliberate and comes with a new `GOSSIP_MESSAGE_VERSION`.
#[test]
fn gossip_message_bytes_are_pinned_and_snapshots_round_trip() {
    let message = entry_message("b", record(7, 3, MemberState::Leaving, 2), true);
    let bytes = rmp_serde::to_vec_named(&message).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, GOLDEN_MESSAGE_HEX);
    assert_eq!(
        rmp_serde::from_slice::<GossipMessage>(&bytes).unwrap(),
        message
    );
    let snapshot = a_hears_b_and_c().snapshot();
    let bytes = rmp_serde::to_vec_named(&snapshot).unwrap();
    let back: Vec<PersistedMember> = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, snapshot);
}

/// `{version: 1, members: [{info: {id: "b", ..}, record: {generation: 7,
/// heartbeat: 3, status: "Leaving", status_version: 2}, stale: true}]}`.
const GOLDEN_MESSAGE_HEX: &str = concat!(
    "82a776657273696f6e01a76d656d626572739183a4696e666f86a26964a162a9",
    "706565725f61646472a3623a31ab636c69656e745f61646472a3623a32a26463",
    "a3646331a47261636ba27231a677656967687401a67265636f726484aa67656e",
    "65726174696f6e07a968656172746265617403a6737461747573a74c65617669",
    "6e67ae7374617475735f76657273696f6e02a57374616c65c3",
);
