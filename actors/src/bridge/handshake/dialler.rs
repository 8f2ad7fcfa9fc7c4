//! The dialler's side of the handshake: `Hello` out ([`hello`]), the
//! `Challenge` in and the sealed `Proof` out ([`AwaitingChallenge`]), the
//! `Welcome` in ([`AwaitingWelcome`]).

use serde_bytes::ByteBuf;

use super::{
    as_proven, checked_id, decode, encode, nonce_of, read_proven, Credentials, HandshakeError,
    Nonce, Role, Session, Transcript,
};
use crate::wire::peer::{MemberInfo, PeerFrame, PEER_PROTOCOL_VERSION};

/// The dialler, `Hello` sent, waiting for the `Challenge`.
pub struct AwaitingChallenge {
    nonce: Nonce,
}

/// Opens a handshake as the dialler: the state to keep and the `Hello` to
/// send (plain).
pub fn hello(
    credentials: &Credentials,
    nonce: Nonce,
) -> Result<(AwaitingChallenge, Vec<u8>), HandshakeError> {
    let frame = PeerFrame::Hello {
        protocol: PEER_PROTOCOL_VERSION,
        cluster: credentials.cluster.clone(),
        node: credentials.own.id.clone(),
        nonce: ByteBuf::from(nonce.to_vec()),
    };
    Ok((AwaitingChallenge { nonce }, encode(&frame)?))
}

impl AwaitingChallenge {
    /// Reads the listener's `Challenge`; answers the sealed `Proof` to send.
    pub fn on_challenge(
        self,
        credentials: &Credentials,
        frame: &[u8],
    ) -> Result<(AwaitingWelcome, Vec<u8>), HandshakeError> {
        let (node, nonce) = match decode(frame)? {
            PeerFrame::Challenge { node, nonce } => (node, nonce),
            other => {
                return Err(HandshakeError::Unexpected {
                    expected: "Challenge",
                    got: other.name(),
                })
            }
        };
        let transcript = Transcript {
            cluster: credentials.cluster.clone(),
            dialler: credentials.own.id.clone(),
            listener: checked_id(node)?,
            dialler_nonce: self.nonce,
            listener_nonce: nonce_of(&nonce)?,
        };
        let mut session = transcript.session(&credentials.key, Role::Dialler);
        let proof = PeerFrame::Proof {
            proof: ByteBuf::from(transcript.proof(&credentials.key, Role::Dialler).to_vec()),
            member: credentials.own.clone(),
        };
        let sealed = session
            .seal(encode(&proof)?)
            .map_err(|e| HandshakeError::Local(e.to_string()))?;
        Ok((
            AwaitingWelcome {
                transcript,
                session,
            },
            sealed,
        ))
    }
}

/// The dialler, `Proof` sent, waiting for the `Welcome`.
pub struct AwaitingWelcome {
    transcript: Transcript,
    session: Session,
}

impl AwaitingWelcome {
    /// Reads the listener's `Welcome`: the listener, proven, and the
    /// session to send requests on.
    pub fn on_welcome(
        mut self,
        credentials: &Credentials,
        frame: &[u8],
    ) -> Result<(MemberInfo, Session), HandshakeError> {
        let (proof, member) = read_proven(frame, "Welcome", |f| match f {
            PeerFrame::Welcome { proof, member } => Ok((proof, member)),
            other => Err(other.name()),
        })?;
        self.transcript
            .verify(&credentials.key, Role::Listener, &proof)?;
        self.session
            .open(frame)
            .map_err(|_| HandshakeError::BadTag { frame: "Welcome" })?;
        let member = as_proven(member, &self.transcript.listener)?;
        Ok((member, self.session))
    }
}
