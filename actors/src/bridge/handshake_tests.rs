//! The handshake between two in-memory sides: what it accepts, what it
//! refuses and why, and the bytes it pins.
#![allow(clippy::unwrap_used)]

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_bytes::ByteBuf;

use super::*;
use crate::bridge::seal::TAG_BYTES;
use crate::wire::peer::{PeerRpc, ReplicaRead};

pub(crate) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

pub(crate) fn member(id: &str, port: u16) -> MemberInfo {
    MemberInfo {
        id: NodeId::new(id).unwrap(),
        peer_addr: format!("127.0.0.1:{port}"),
        client_addr: format!("127.0.0.1:{}", port - 100),
        dc: "dc1".into(),
        rack: "r1".into(),
        weight: 1,
    }
}

pub(crate) fn key(secret: &[u8]) -> PeerKey {
    PeerKey::new(Some(&ClusterSecret::from_bytes(secret).unwrap()))
}

pub(crate) fn credentials(id: &str, port: u16, key: PeerKey) -> Credentials {
    Credentials {
        own: member(id, port),
        cluster: "ringkv".into(),
        key,
    }
}

fn dialler() -> Credentials {
    credentials("n1", 7101, key(SECRET))
}

fn listener() -> Credentials {
    credentials("n2", 7102, key(SECRET))
}

/// What the dialler sent in one handshake, as an eavesdropper records it.
struct Recorded {
    hello: Vec<u8>,
    proof: Vec<u8>,
}

/// A whole handshake; the sessions of both sides (or the first refusal)
/// and what the dialler sent.
fn handshake(
    d: &Credentials,
    l: &Credentials,
    nonces: (Nonce, Nonce),
) -> (Result<(Session, Session), HandshakeError>, Recorded) {
    let (waiting, hello_bytes) = hello(d, nonces.0).unwrap();
    let mut recorded = Recorded {
        hello: hello_bytes.clone(),
        proof: Vec::new(),
    };
    let result = (|| {
        let (proving, challenge) = on_hello(l, &hello_bytes, nonces.1)?;
        let (welcoming, proof) = waiting.on_challenge(d, &challenge)?;
        recorded.proof = proof.clone();
        let accepted = proving.on_proof(l, &proof)?;
        assert_eq!(accepted.member, d.own);
        let (listener_member, dialler_session) = welcoming.on_welcome(d, &accepted.welcome)?;
        assert_eq!(listener_member, l.own);
        Ok((dialler_session, accepted.session))
    })();
    (result, recorded)
}

fn fresh(rng: &mut SmallRng) -> Nonce {
    let mut nonce = [0u8; NONCE_BYTES];
    rng.fill_bytes(&mut nonce);
    nonce
}

#[test]
fn the_same_secret_authenticates_both_ways_and_frames_flow() {
    let (result, _) = handshake(&dialler(), &listener(), ([1; 32], [2; 32]));
    let (mut d, mut l) = result.unwrap();
    let request = d.seal(b"request".to_vec()).unwrap();
    assert_eq!(l.open(&request).unwrap(), b"request");
    let response = l.seal(b"response".to_vec()).unwrap();
    assert_eq!(d.open(&response).unwrap(), b"response");
    // A side cannot open its own frames: each direction has its own key.
    let mine = d.seal(b"x".to_vec()).unwrap();
    assert!(d.open(&mine).is_err());
}

#[test]
fn protected_mode_nodes_authenticate_each_other() {
    let d = credentials("n1", 7101, PeerKey::ProtectedMode);
    let l = credentials("n2", 7102, PeerKey::ProtectedMode);
    assert!(handshake(&d, &l, ([1; 32], [2; 32])).0.is_ok());
}

#[test]
fn a_wrong_secret_is_refused_at_the_proof() {
    let wrong = credentials("n1", 7101, key(b"another secret of at least 32 bytes!"));
    let (result, _) = handshake(&wrong, &listener(), ([1; 32], [2; 32]));
    assert_eq!(result.err(), Some(HandshakeError::BadProof));
}

#[test]
fn a_node_with_a_secret_and_one_without_refuse_each_other() {
    let open = credentials("n1", 7101, PeerKey::ProtectedMode);
    assert_eq!(
        handshake(&open, &listener(), ([1; 32], [2; 32])).0.err(),
        Some(HandshakeError::BadProof)
    );
    let open = credentials("n2", 7102, PeerKey::ProtectedMode);
    assert_eq!(
        handshake(&dialler(), &open, ([1; 32], [2; 32])).0.err(),
        Some(HandshakeError::BadProof)
    );
}

/// An impostor listener (it answers at a seed's address, without the
/// secret) gets no session: the dialler checks the listener's proof.
#[test]
fn the_dialler_refuses_a_listener_without_the_secret() {
    let d = dialler();
    let impostor = credentials("n2", 7102, key(b"the impostor's guess at the secret!!"));
    let (waiting, _) = hello(&d, [1; 32]).unwrap();
    let challenge = PeerFrame::Challenge {
        node: impostor.own.id.clone(),
        nonce: ByteBuf::from(vec![2; 32]),
    };
    let (welcoming, _proof) = waiting
        .on_challenge(&d, &challenge.encode().unwrap())
        .unwrap();
    // The impostor ignores the dialler's proof and answers a Welcome made
    // with its own key.
    let transcript = Transcript {
        cluster: "ringkv".into(),
        dialler: d.own.id.clone(),
        listener: impostor.own.id.clone(),
        dialler_nonce: [1; 32],
        listener_nonce: [2; 32],
    };
    let mut session = transcript.session(&impostor.key, Role::Listener);
    let welcome = PeerFrame::Welcome {
        proof: ByteBuf::from(transcript.proof(&impostor.key, Role::Listener).to_vec()),
        member: impostor.own.clone(),
    };
    let welcome = session.seal(welcome.encode().unwrap()).unwrap();
    assert_eq!(
        welcoming.on_welcome(&d, &welcome).err(),
        Some(HandshakeError::BadProof)
    );
}

#[test]
fn a_replayed_handshake_is_refused() {
    let (first, recorded) = handshake(&dialler(), &listener(), ([1; 32], [2; 32]));
    assert!(first.is_ok());
    // The eavesdropper replays the dialler's frames on a new connection:
    // the listener's nonce is fresh, so the recorded proof proves nothing.
    let l = listener();
    let (proving, _challenge) = on_hello(&l, &recorded.hello, [3; 32]).unwrap();
    assert_eq!(
        proving.on_proof(&l, &recorded.proof).err(),
        Some(HandshakeError::BadProof)
    );
    // Even if the listener drew the same nonce again, it answers the same
    // proof: a replay needs the listener to repeat a 256-bit nonce.
    let (proving, _) = on_hello(&l, &recorded.hello, [2; 32]).unwrap();
    assert!(proving.on_proof(&l, &recorded.proof).is_ok());
}

#[test]
fn a_listeners_proof_is_not_a_diallers() {
    let d = dialler();
    let l = listener();
    let (_, hello_bytes) = hello(&d, [1; 32]).unwrap();
    let (proving, _) = on_hello(&l, &hello_bytes, [2; 32]).unwrap();
    // The listener's proof for this very transcript, sent back as the
    // dialler's (a reflection), sealed with the right key even.
    let transcript = proving.transcript.clone();
    let mut session = transcript.session(&d.key, Role::Dialler);
    let reflected = PeerFrame::Proof {
        proof: ByteBuf::from(transcript.proof(&d.key, Role::Listener).to_vec()),
        member: d.own.clone(),
    };
    let reflected = session.seal(reflected.encode().unwrap()).unwrap();
    assert_eq!(
        proving.on_proof(&l, &reflected).err(),
        Some(HandshakeError::BadProof)
    );
}

/// A wrong cluster name is refused, but only at the `Proof`, where a
/// wrong secret is refused too: a caller cannot try names.
#[test]
fn another_cluster_is_refused_at_the_proof_not_at_the_hello() {
    let mut d = dialler();
    d.cluster = "other".into();
    let l = listener();
    let (waiting, hello_bytes) = hello(&d, [1; 32]).unwrap();
    let (proving, challenge) = on_hello(&l, &hello_bytes, [2; 32]).unwrap();
    let (_, proof) = waiting.on_challenge(&d, &challenge).unwrap();
    assert_eq!(
        proving.on_proof(&l, &proof).err(),
        Some(HandshakeError::Cluster {
            theirs: "other".into(),
            ours: "ringkv".into()
        })
    );
    // A dialler that lies about its cluster in `Hello` still fails: the
    // proofs cover the listener's own cluster name.
    let (waiting, _) = hello(&d, [1; 32]).unwrap();
    let (_, hello_bytes) = hello(&dialler(), [1; 32]).unwrap();
    let (proving, challenge) = on_hello(&l, &hello_bytes, [2; 32]).unwrap();
    let (_, proof) = waiting.on_challenge(&d, &challenge).unwrap();
    assert_eq!(
        proving.on_proof(&l, &proof).err(),
        Some(HandshakeError::BadProof)
    );
}

#[test]
fn another_protocol_version_is_refused_at_the_hello() {
    let hello = PeerFrame::Hello {
        protocol: PEER_PROTOCOL_VERSION - 1,
        cluster: "ringkv".into(),
        node: NodeId::new("n1").unwrap(),
        nonce: ByteBuf::from(vec![1; 32]),
    };
    assert_eq!(
        on_hello(&listener(), &hello.encode().unwrap(), [2; 32]).err(),
        Some(HandshakeError::Protocol {
            theirs: PEER_PROTOCOL_VERSION - 1
        })
    );
}

/// The member info a dialler sends is covered by the `Proof` frame's tag:
/// changed on the way, it is refused.
#[test]
fn an_altered_proof_frame_is_refused() {
    let d = dialler();
    let l = listener();
    let (waiting, hello_bytes) = hello(&d, [1; 32]).unwrap();
    let (proving, challenge) = on_hello(&l, &hello_bytes, [2; 32]).unwrap();
    let (_, proof) = waiting.on_challenge(&d, &challenge).unwrap();
    // Point the listener at another address for n1 (same length).
    let text = "127.0.0.1:7101".as_bytes();
    let at = proof.windows(text.len()).position(|w| w == text).unwrap();
    let mut altered = proof.clone();
    altered[at + text.len() - 1] = b'9';
    assert_eq!(
        proving.on_proof(&l, &altered).err(),
        Some(HandshakeError::BadTag { frame: "Proof" })
    );
}

#[test]
fn a_proof_for_another_node_id_is_refused() {
    let d = dialler();
    let l = listener();
    let (_, hello_bytes) = hello(&d, [1; 32]).unwrap();
    let (proving, _) = on_hello(&l, &hello_bytes, [2; 32]).unwrap();
    // A member of the cluster proves itself as n1 but describes n3.
    let transcript = proving.transcript.clone();
    let mut session = transcript.session(&d.key, Role::Dialler);
    let proof = PeerFrame::Proof {
        proof: ByteBuf::from(transcript.proof(&d.key, Role::Dialler).to_vec()),
        member: member("n3", 7103),
    };
    let proof = session.seal(proof.encode().unwrap()).unwrap();
    assert_eq!(
        proving.on_proof(&l, &proof).err(),
        Some(HandshakeError::MemberMismatch {
            proved: NodeId::new("n1").unwrap(),
            described: NodeId::new("n3").unwrap(),
        })
    );
}

#[test]
fn a_second_node_with_our_id_is_refused_and_a_self_dial_is_not() {
    let l = listener();
    let twin = credentials("n2", 7109, key(SECRET));
    assert_eq!(
        handshake(&twin, &l, ([1; 32], [2; 32])).0.err(),
        Some(HandshakeError::DuplicateId {
            id: NodeId::new("n2").unwrap(),
            ours: "127.0.0.1:7102".into(),
        })
    );
    // A seed list naming the node itself: accepted (the dialler then
    // sees its own id in the Welcome and stops).
    assert!(handshake(&l, &l, ([1; 32], [2; 32])).0.is_ok());
}

#[test]
fn malformed_handshake_frames_are_refused() {
    let l = listener();
    let short_nonce = PeerFrame::Hello {
        protocol: PEER_PROTOCOL_VERSION,
        cluster: "ringkv".into(),
        node: NodeId::new("n1").unwrap(),
        nonce: ByteBuf::from(vec![1; 31]),
    };
    assert_eq!(
        on_hello(&l, &short_nonce.encode().unwrap(), [2; 32]).err(),
        Some(HandshakeError::Nonce { len: 31 })
    );
    // Ids are not checked by serde: a Hello can carry anything.
    let bad_id: NodeId =
        rmp_serde::from_slice(&rmp_serde::to_vec("n1\nFAKE LOG LINE").unwrap()).unwrap();
    let bad_id_hello = PeerFrame::Hello {
        protocol: PEER_PROTOCOL_VERSION,
        cluster: "ringkv".into(),
        node: bad_id,
        nonce: ByteBuf::from(vec![1; 32]),
    };
    assert!(matches!(
        on_hello(&l, &bad_id_hello.encode().unwrap(), [2; 32]),
        Err(HandshakeError::NodeId(_))
    ));
    // A request before the handshake.
    let request = PeerFrame::Request {
        id: 1,
        trace: 0,
        timeout_ms: 10,
        body: ReplicaRead {
            key: ByteBuf::from(b"k".to_vec()),
        }
        .into_request(),
    };
    assert_eq!(
        on_hello(&l, &request.encode().unwrap(), [2; 32]).err(),
        Some(HandshakeError::Unexpected {
            expected: "Hello",
            got: "Request"
        })
    );
}

/// No input at any step panics; none is accepted by chance.
#[test]
fn random_bytes_never_panic_and_never_pass() {
    let d = dialler();
    let l = listener();
    let mut rng = SmallRng::seed_from_u64(12);
    for _ in 0..2000 {
        let len = rng.gen_range(0..120);
        let mut junk = vec![0u8; len];
        rng.fill_bytes(&mut junk);
        assert!(on_hello(&l, &junk, fresh(&mut rng)).is_err());
        let (waiting, hello_bytes) = hello(&d, fresh(&mut rng)).unwrap();
        assert!(waiting.on_challenge(&d, &junk).is_err());
        let (proving, challenge) = on_hello(&l, &hello_bytes, fresh(&mut rng)).unwrap();
        assert!(proving.on_proof(&l, &junk).is_err());
        let (waiting, _) = hello(&d, fresh(&mut rng)).unwrap();
        let (welcoming, _) = waiting.on_challenge(&d, &challenge).unwrap();
        assert!(welcoming.on_welcome(&d, &junk).is_err());
    }
}

/// Frames of one session do not open in another, even between the same
/// two nodes: an old connection's frames cannot be replayed into a new one.
#[test]
fn frames_from_another_session_are_refused() {
    let (old, _) = handshake(&dialler(), &listener(), ([1; 32], [2; 32]));
    let (new, _) = handshake(&dialler(), &listener(), ([1; 32], [5; 32]));
    let (mut old_d, _) = old.unwrap();
    let (_, mut new_l) = new.unwrap();
    let frame = old_d.seal(b"put".to_vec()).unwrap();
    assert!(new_l.open(&frame).is_err());
}

/// Pins the proofs and the session keys (through a sealed request): a
/// change here is a new `PEER_PROTOCOL_VERSION`. The expected bytes were
/// computed outside this code from the formulas in SECURITY.md: the proofs
/// and session keys with Python's `hmac`, the frame's GMAC tag with its
/// `cryptography` (`AESGCM(session key).encrypt(nonce, b"", frame)`).
#[test]
fn golden_proofs_and_sealed_request() {
    let d = dialler();
    let l = listener();
    let transcript = Transcript {
        cluster: "ringkv".into(),
        dialler: d.own.id.clone(),
        listener: l.own.id.clone(),
        dialler_nonce: [1; 32],
        listener_nonce: [2; 32],
    };
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    assert_eq!(
        hex(&transcript.proof(&d.key, Role::Dialler)),
        "bdbf6c3d79cda22321c772adef10b62ece6b9551095e09efacef890d7dcd816a"
    );
    assert_eq!(
        hex(&transcript.proof(&d.key, Role::Listener)),
        "917058f7355856888b2664f10cfe0f0289d84910f20736ca3b8deca19092a40f"
    );
    let (result, _) = handshake(&d, &l, ([1; 32], [2; 32]));
    let (mut session, _) = result.unwrap();
    let request = PeerFrame::Request {
        id: 7,
        trace: 9,
        timeout_ms: 100,
        body: ReplicaRead {
            key: ByteBuf::from(b"k".to_vec()),
        }
        .into_request(),
    };
    let body = request.encode().unwrap();
    let sealed = session.seal(body.clone()).unwrap();
    assert_eq!(&sealed[..body.len()], &body[..]);
    assert_eq!(sealed.len(), body.len() + TAG_BYTES);
    // Frame 1 of the dialler's direction (its Proof was frame 0).
    assert_eq!(
        hex(&sealed[body.len()..]),
        "0a378907555b8abec5d2247105cd4475"
    );
}
