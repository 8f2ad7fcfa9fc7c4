//! A write handed on by a node outside the key's preference list: to the
//! first replica that coordinates it (`forward`), in its peer form
//! (`forwarded`).

use std::time::Duration;

use serde_bytes::ByteBuf;
use tracing::debug;

use crate::bridge::PeerError;
use crate::replicas::Replicas;
use crate::wire::client::{ClientError, ErrorCode};
use crate::wire::peer::ForwardedWrite;
use crate::NodeId;

/// Hands a write to the first of `targets` (replicas of the key, in
/// order of preference) that coordinates it. A target that refuses before
/// doing anything (it cannot mint now, or is no longer a replica) or that
/// cannot be reached is skipped for the next; any other failure is the
/// write's, as the target reported it. All tries share `timeout_ms`.
pub async fn forward(
    replicas: Replicas,
    targets: Vec<NodeId>,
    write: ForwardedWrite,
    trace: u64,
    timeout_ms: u64,
) -> Result<Vec<u8>, ClientError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let mut skipped = Vec::new();
    for target in targets {
        let left_ms = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_millis();
        let left_ms = u64::try_from(left_ms).unwrap_or(u64::MAX);
        if left_ms == 0 {
            break;
        }
        match replicas.call(&target, write.clone(), trace, left_ms).await {
            Ok(coordinated) => return Ok(coordinated.context.into_vec()),
            Err(PeerError::Remote(e)) if e.untouched => {
                debug!(req = %format_args!("{trace:x}"), %target, reason = %e.message, "forwarded write refused; trying the next replica");
                skipped.push(format!("{target}: {}", e.message));
            }
            Err(PeerError::Unreachable) => skipped.push(format!("{target}: unreachable")),
            Err(PeerError::Remote(e)) => {
                return Err(ClientError::new(
                    e.code,
                    format!("via {target}: {}", e.message),
                ))
            }
            Err(e) => {
                return Err(ClientError::new(
                    e.client_code(),
                    format!("via {target}: {e}"),
                ))
            }
        }
    }
    Err(ClientError::new(
        ErrorCode::Unavailable,
        format!(
            "no replica of the key took the write; nothing was written ({})",
            if skipped.is_empty() {
                "out of time".to_string()
            } else {
                skipped.join("; ")
            }
        ),
    ))
}

/// Builds the peer form of a write (`supersede_local` off).
pub fn forwarded(
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    context: Option<Vec<u8>>,
    w: usize,
    pw: usize,
) -> ForwardedWrite {
    ForwardedWrite {
        key: ByteBuf::from(key),
        value: value.map(ByteBuf::from),
        context: context.map(ByteBuf::from),
        supersede_local: false,
        ttl_ms: None,
        w,
        pw,
        dc_quorums: Vec::new(),
    }
}
