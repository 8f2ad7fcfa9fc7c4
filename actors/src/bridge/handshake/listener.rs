//! The listener's side of the handshake: the `Hello` in and the
//! `Challenge` out ([`on_hello`]), the sealed `Proof` in and the `Welcome`
//! out ([`AwaitingProof`]).

use serde_bytes::ByteBuf;

use super::{
    as_proven, checked_id, decode, encode, nonce_of, read_proven, Credentials, HandshakeError,
    Nonce, Role, Session, Transcript,
};
use crate::wire::peer::{MemberInfo, PeerFrame, PEER_PROTOCOL_VERSION};

/// The listener, `Challenge` sent, waiting for the `Proof`.
pub struct AwaitingProof {
    /// (Read by the handshake's tests.)
    pub(super) transcript: Transcript,
    session: Session,
    /// The cluster the dialler named: refused at `Proof`, not at `Hello`,
    /// so a caller cannot try names until one gets a `Challenge`.
    claimed_cluster: String,
}

/// The listener reads the dialler's `Hello`: the state to keep and the
/// `Challenge` to send (plain), with our fresh `nonce`.
pub fn on_hello(
    credentials: &Credentials,
    frame: &[u8],
    nonce: Nonce,
) -> Result<(AwaitingProof, Vec<u8>), HandshakeError> {
    let (protocol, cluster, node, their_nonce) = match decode(frame)? {
        PeerFrame::Hello {
            protocol,
            cluster,
            node,
            nonce,
        } => (protocol, cluster, node, nonce),
        other => {
            return Err(HandshakeError::Unexpected {
                expected: "Hello",
                got: other.name(),
            })
        }
    };
    if protocol != PEER_PROTOCOL_VERSION {
        return Err(HandshakeError::Protocol { theirs: protocol });
    }
    let transcript = Transcript {
        // Ours, not theirs: a dialler of another cluster fails its proof.
        cluster: credentials.cluster.clone(),
        dialler: checked_id(node)?,
        listener: credentials.own.id.clone(),
        dialler_nonce: nonce_of(&their_nonce)?,
        listener_nonce: nonce,
    };
    let challenge = PeerFrame::Challenge {
        node: credentials.own.id.clone(),
        nonce: ByteBuf::from(nonce.to_vec()),
    };
    let session = transcript.session(&credentials.key, Role::Listener);
    Ok((
        AwaitingProof {
            transcript,
            session,
            claimed_cluster: cluster,
        },
        encode(&challenge)?,
    ))
}

/// A dialler that proved itself.
pub struct Accepted {
    /// The dialler.
    pub member: MemberInfo,
    /// The session to read its requests on and answer them.
    pub session: Session,
    /// The sealed `Welcome` to send.
    pub welcome: Vec<u8>,
}

impl AwaitingProof {
    /// Reads the dialler's `Proof`: the dialler, proven, and the sealed
    /// `Welcome` to send.
    pub fn on_proof(
        mut self,
        credentials: &Credentials,
        frame: &[u8],
    ) -> Result<Accepted, HandshakeError> {
        let (proof, member) = read_proven(frame, "Proof", |f| match f {
            PeerFrame::Proof { proof, member } => Ok((proof, member)),
            other => Err(other.name()),
        })?;
        if self.claimed_cluster != credentials.cluster {
            return Err(HandshakeError::Cluster {
                theirs: self.claimed_cluster,
                ours: credentials.cluster.clone(),
            });
        }
        self.transcript
            .verify(&credentials.key, Role::Dialler, &proof)?;
        self.session
            .open(frame)
            .map_err(|_| HandshakeError::BadTag { frame: "Proof" })?;
        let member = as_proven(member, &self.transcript.dialler)?;
        let own = &credentials.own;
        if member.id == own.id && member.peer_addr != own.peer_addr {
            return Err(HandshakeError::DuplicateId {
                id: member.id,
                ours: own.peer_addr.clone(),
            });
        }
        let welcome = PeerFrame::Welcome {
            proof: ByteBuf::from(
                self.transcript
                    .proof(&credentials.key, Role::Listener)
                    .to_vec(),
            ),
            member: own.clone(),
        };
        let welcome = self
            .session
            .seal(encode(&welcome)?)
            .map_err(|e| HandshakeError::Local(e.to_string()))?;
        Ok(Accepted {
            member,
            session: self.session,
            welcome,
        })
    }
}
