//! The cluster secret (`--cluster-secret-file`): the one thing every member
//! of a cluster shares and nobody else has. Peers prove they hold it in the
//! handshake; keys for other purposes (context MACs) are derived from it
//! with HMAC-SHA256, so the secret itself is used for one thing only.
//!
//! It is never logged, printed or sent: `Debug` shows only its length.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest secret accepted, in bytes (after trimming the file's trailing
/// whitespace): 32 bytes, as 256 bits of key for HMAC-SHA256. Generate one
/// with `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > secret`.
pub const CLUSTER_SECRET_BYTES_MIN: usize = 32;
/// Longest secret accepted, in bytes: a file larger than this is not a
/// secret but a mistake (a wrong path).
pub const CLUSTER_SECRET_BYTES_MAX: usize = 4096;

/// HMAC-SHA256.
pub type HmacSha256 = Hmac<Sha256>;

/// Why a secret file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read the cluster secret file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is too short or too long.
    #[error(
        "the cluster secret in {path} is {len} bytes; it must be {CLUSTER_SECRET_BYTES_MIN} to \
         {CLUSTER_SECRET_BYTES_MAX} bytes (e.g. 64 hex digits from /dev/urandom)"
    )]
    Length {
        /// The file.
        path: String,
        /// Its length after trimming, in bytes.
        len: usize,
    },
}

/// The cluster secret. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Arc<[u8]>);

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret({} bytes)", self.0.len())
    }
}

impl ClusterSecret {
    /// Reads the secret from `path`: the file's bytes without trailing
    /// whitespace (a final newline from an editor does not count).
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|len| SecretError::Length {
            path: path.display().to_string(),
            len,
        })
    }

    /// A secret from `bytes` (trailing whitespace trimmed); the trimmed
    /// length when it is out of bounds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, usize> {
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let trimmed = bytes.get(..end).unwrap_or_default();
        if !(CLUSTER_SECRET_BYTES_MIN..=CLUSTER_SECRET_BYTES_MAX).contains(&trimmed.len()) {
            return Err(trimmed.len());
        }
        Ok(Self(Arc::from(trimmed)))
    }

    /// A key for one `purpose` (a fixed label such as
    /// `"ringkv context mac v1"`): HMAC-SHA256(secret, purpose). Keys for
    /// different purposes are independent.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// An HMAC-SHA256 keyed with the secret itself: for [`Self::derive`]
    /// (every key of the cluster is derived, the peer handshake's too).
    pub fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this never fails.
        <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trailing_whitespace_is_not_part_of_the_secret() {
        let a = ClusterSecret::from_bytes(&[b'a'; 40]).unwrap();
        let mut with_newline = vec![b'a'; 40];
        with_newline.extend_from_slice(b" \n");
        assert_eq!(a, ClusterSecret::from_bytes(&with_newline).unwrap());
    }

    #[test]
    fn short_and_long_secrets_are_refused() {
        assert_eq!(ClusterSecret::from_bytes(&[b'a'; 31]).unwrap_err(), 31);
        assert_eq!(ClusterSecret::from_bytes(b"   \n").unwrap_err(), 0);
        assert!(ClusterSecret::from_bytes(&[b'a'; CLUSTER_SECRET_BYTES_MAX + 1]).is_err());
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_secret() {
        let a = ClusterSecret::from_bytes(&[b'a'; 32]).unwrap();
        let b = ClusterSecret::from_bytes(&[b'b'; 32]).unwrap();
        assert_ne!(a.derive("one"), a.derive("two"));
        assert_ne!(a.derive("one"), b.derive("one"));
        assert_eq!(a.derive("one"), a.derive("one"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let a = ClusterSecret::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{a:?}"), "ClusterSecret(32 bytes)");
    }
}
