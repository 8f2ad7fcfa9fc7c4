//! Tests of write coordination (`write.rs`).
#![allow(clippy::unwrap_used)]

use super::super::test_support::{node, replicas};
use super::*;
use crate::conflict_resolver::ContextKey;
use crate::replicas::{store_minted, TombstoneChange};
use crate::storage::LocalApply;

/// Primaries by name, each with its reachability.
type Primaries<'a> = &'a [(&'a str, Reach)];

fn plan(
    key: &[u8],
    value: &[u8],
    context: VersionVector,
    primaries: &[(&str, Reach)],
    object_bytes_max: usize,
) -> WritePlan {
    WritePlan {
        key: key.to_vec(),
        timers: TimerHub::default(),
        value: Some(value.to_vec()),
        context,
        supersede_local: false,
        w: 1,
        pw: 0,
        primaries: primaries.iter().map(|(n, r)| (node(n), *r)).collect(),
        spare: Vec::new(),
        scope: DcScope::default(),
        policy: SloppyPolicy {
            replace_failed: true,
            replace_silent: true,
        },
        stand_in_after_ms: 250,
        timeout_ms: 2_000,
        trace: 1,
        now_ms: 1_000,
        expires_ms: None,
        limits: VersionLimits::default(),
        object_bytes_max,
        contexts: ContextKey::from_cluster_name("write-tests"),
        with_context: true,
    }
}

/// A write whose version has nowhere else to go (N = 1, or the other
/// primary unusable with no stand-in) does not ask for the minted
/// version and waits for its own copy only; one with a replica to
/// send to (n2, whose link never answers, W = 1) waits for the minted
/// version first. Both answer the same: a context that supersedes the
/// write, and the same refusal of an object over `object_bytes_max`.
#[actix_rt::test]
async fn a_write_answers_alike_with_and_without_replicas_to_send_to() {
    let replicas = replicas();
    let contexts = ContextKey::from_cluster_name("write-tests");
    let n1 = node("n1").version_actor(1);
    let cases: [(&[u8], Primaries); 3] = [
        (b"alone", &[("n1", Reach::Usable)]),
        (
            b"other-unusable",
            &[("n1", Reach::Usable), ("n2", Reach::Unusable)],
        ),
        (b"sent", &[("n1", Reach::Usable), ("n2", Reach::Usable)]),
    ];
    for (key, primaries) in cases {
        let stored = || {
            let bytes = replicas.read_in_memory(key).unwrap().unwrap().unwrap();
            Object::decode(&bytes).unwrap()
        };
        let write = |value: &[u8], context, max| {
            coordinate(replicas.clone(), plan(key, value, context, primaries, max))
        };
        let first = write(b"a", VersionVector::new(), 1 << 20).await.unwrap();
        let clock = contexts.open(key, &first).unwrap();
        assert_eq!(clock.counter(&n1), 1, "{key:?}");
        let second = write(b"b", clock, 1 << 20).await.unwrap();
        assert_eq!(stored().live_values(), vec![&b"b"[..]], "{key:?}");
        let clock = contexts.open(key, &second).unwrap();
        assert_eq!(clock.counter(&n1), 2, "{key:?}");
        let refused = write(b"c", clock.clone(), 8).await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooLarge, "{key:?}");
        assert_eq!(stored().live_values(), vec![&b"b"[..]], "{key:?}");
        // A caller that does not use the context (RESP) gets none; the
        // write is made all the same.
        let unsealed = WritePlan {
            with_context: false,
            ..plan(key, b"d", clock, primaries, 1 << 20)
        };
        let answer = coordinate(replicas.clone(), unsealed).await.unwrap();
        assert!(answer.is_empty(), "{key:?}");
        assert_eq!(stored().live_values(), vec![&b"d"[..]], "{key:?}");
    }
}

/// What a write of `key` would be minted here from, and how; `None`:
/// by the writer. Nothing is minted.
fn mintable(replicas: &Replicas, key: &[u8]) -> Option<(Option<Vec<u8>>, MintAs)> {
    let permit = replicas.mint_here(key)?;
    Some((permit.stored.clone(), permit.minting_as.clone()))
}

/// A job that holds the writer thread in its mutation until released.
struct Hold {
    entered: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

impl Hold {
    /// Waits (without blocking this thread) until the writer is in it.
    async fn entered(&self) {
        while self.entered.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Lets the writer go on (now, or once it gets to the job).
    fn release(self) {
        self.release.send(()).unwrap();
    }
}

/// The answer of a [`Hold`] job, once released.
type Held = tokio::task::JoinHandle<
    Result<Result<Option<Vec<u8>>, crate::storage::ApplyError>, actix::MailboxError>,
>;

/// Queues a [`Hold`] job (of a key of its own) with the writer.
fn hold(replicas: &Replicas) -> (Hold, Held) {
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let job = replicas.apply_local(LocalApply {
        key: b"held".to_vec(),
        mutation: Box::new(move |_, _| {
            let _ = entered_tx.send(());
            let _ = released.recv();
            Ok(None)
        }),
        trace: 0,
        bytes: 0,
        minted: None,
        handed_out: false,
        hint_for: None,
    });
    (Hold { entered, release }, tokio::task::spawn_local(job))
}

/// A version minted here that the writer's queue refuses (full, or
/// closed as here) is not handed out: no later mint of the key would
/// see it. The write answers the refusal before any replica write
/// leaves, and counts no mint.
#[actix_rt::test]
async fn a_version_minted_here_that_the_queue_refuses_is_not_handed_out() {
    let replicas = replicas();
    let sent: Primaries = &[("n1", Reach::Usable), ("n2", Reach::Usable)];
    let write = |value: &[u8]| {
        coordinate(
            replicas.clone(),
            plan(b"k", value, VersionVector::new(), sent, 1 << 20),
        )
    };
    let minted_here = |count: u32| {
        let line = format!("ringkv_versions_minted_total{{on=\"event_loop\"}} {count}");
        replicas.metrics.encode().lines().any(|l| l == line)
    };
    write(b"a").await.unwrap();
    assert!(minted_here(1));
    replicas
        .storage
        .send(crate::storage::CloseWrites)
        .await
        .unwrap()
        .unwrap();
    assert!(
        mintable(&replicas, b"k").is_some(),
        "leave to mint is given"
    );
    let refused = write(b"b").await.unwrap_err();
    assert!(refused.message.contains("stopped"), "{refused:?}");
    assert!(minted_here(1), "{}", replicas.metrics.encode());
}

/// A write is minted here, on this thread, when the store holds its
/// key in memory and no minting job of the key is pending; while one
/// is, the writer mints it after that job. Either way every version
/// gets a dot of its own: blind writes piled up behind a held writer
/// all stay siblings, with distinct dots.
#[actix_rt::test]
async fn a_version_is_minted_here_only_when_no_mint_of_its_key_is_pending() {
    let replicas = replicas();
    let sent: Primaries = &[("n1", Reach::Usable), ("n2", Reach::Usable)];
    let n1 = node("n1").version_actor(1);
    let blind = |value: &[u8]| {
        coordinate(
            replicas.clone(),
            plan(b"k", value, VersionVector::new(), sent, 1 << 20),
        )
    };
    let (from, minting_as) = mintable(&replicas, b"k").unwrap();
    assert_eq!((from, &minting_as.actor), (None, &n1), "nothing stored yet");
    blind(b"a").await.unwrap();
    let (from, _) = mintable(&replicas, b"k").unwrap();
    let from = Object::decode(&from.unwrap()).unwrap();
    assert_eq!(from.live_values(), vec![&b"a"[..]], "the stored version");

    // The writer held in a job of another key; the writes of `k` and a
    // second held job queue behind it, so they make one group. While
    // that group runs (held in its second job, before its batch is in
    // the store), the jobs of `k` are pending. The writer must be in
    // the first job before the writes queue: a writer thread slow to
    // wake would otherwise take them into the first job's group, and
    // the second job would run alone after them.
    let (first, first_held) = hold(&replicas);
    first.entered().await;
    let writes: Vec<_> = [b"b", b"c", b"d", b"e"]
        .into_iter()
        .map(|value| tokio::task::spawn_local(blind(value)))
        .collect();
    // Each write queues its job on its first poll.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    let (second, second_held) = hold(&replicas);

    assert!(
        mintable(&replicas, b"k").is_none(),
        "the writes of k are queued, not done"
    );
    assert!(mintable(&replicas, b"other-key").is_some());
    first.release();
    second.entered().await;
    assert!(
        mintable(&replicas, b"k").is_none(),
        "the group holding the writes of k is not in the store yet"
    );

    second.release();
    first_held.await.unwrap().unwrap().unwrap();
    second_held.await.unwrap().unwrap().unwrap();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let bytes = replicas.read_in_memory(b"k").unwrap().unwrap().unwrap();
    let stored = Object::decode(&bytes).unwrap();
    let mut values = stored.live_values();
    values.sort();
    assert_eq!(values, vec![&b"a"[..], b"b", b"c", b"d", b"e"]);
    let dots: std::collections::HashSet<_> =
        stored.siblings().iter().map(|s| s.dot.clone()).collect();
    assert_eq!(dots.len(), 5, "every version has a dot of its own");
    assert_eq!(stored.context().counter(&n1), 5);
    assert!(mintable(&replicas, b"k").is_some(), "nothing pending again");
}

/// The writer stores a version minted here as it was made when the
/// store still holds what it was made from, and joins it with what the
/// store holds otherwise (a replica write that landed meanwhile).
#[test]
fn a_version_minted_here_is_joined_with_what_landed_meanwhile() {
    let minting_as = MintAs {
        actor: node("n1").version_actor(1),
        counter_floor: 0,
    };
    let from = write(None, b"a", "n1", false);
    let made = write(Some(&from), b"b", "n1", true);
    let store = |current: Option<&Object>| {
        let change = Arc::new(TombstoneChange::new());
        let mutation = store_minted(
            Some(from.encode()),
            made.encode(),
            (false, false),
            change.clone(),
        );
        let stored = mutation(current.map(Object::encode).as_deref(), &minting_as)
            .unwrap()
            .unwrap();
        (Object::decode(&stored).unwrap(), *change.get().unwrap())
    };
    assert_eq!(store(Some(&from)), (made.clone(), (false, false)));
    let landed = write(Some(&from), b"c", "n2", false);
    let (joined, _) = store(Some(&landed));
    let mut values = joined.live_values();
    values.sort();
    assert_eq!(values, vec![&b"b"[..], b"c"]);
}

fn write(local: Option<&Object>, value: &[u8], actor: &str, supersede_local: bool) -> Object {
    let context = superseding(VersionVector::new(), local, supersede_local);
    Object::update(
        local,
        &context,
        Some(value.to_vec()),
        &NodeId::new(actor).unwrap(),
        1,
        &VersionLimits::default(),
    )
    .unwrap()
}

#[test]
fn a_blind_write_keeps_what_the_replica_holds_as_siblings() {
    let first = write(None, b"a", "n1", false);
    let second = write(Some(&first), b"b", "n1", false);
    assert_eq!(second.live_values(), vec![&b"a"[..], &b"b"[..]]);
}

#[test]
fn a_superseding_write_replaces_what_the_replica_holds() {
    let first = write(None, b"a", "n1", true);
    let second = write(Some(&first), b"b", "n1", true);
    assert_eq!(second.live_values(), vec![&b"b"[..]]);
    // Two concurrent versions minted elsewhere: both replaced too.
    let other = write(None, b"x", "n2", false);
    let both = second.merge(&other);
    assert_eq!(both.live_values().len(), 2);
    let third = write(Some(&both), b"c", "n1", true);
    assert_eq!(third.live_values(), vec![&b"c"[..]]);
}

#[test]
fn a_version_the_replica_has_not_seen_stays_a_sibling() {
    // The superseding write is minted on n1 before n2's write reaches
    // it; the merge at any replica keeps both.
    let local = write(None, b"a", "n1", true);
    let superseding = write(Some(&local), b"b", "n1", true);
    let unseen = write(None, b"x", "n2", false);
    let merged = superseding.merge(&unseen);
    assert_eq!(merged.live_values(), vec![&b"b"[..], &b"x"[..]]);
}
