//! The versioning rules: dotted version vectors, sibling sets and causal
//! contexts (Riak 2.0's dotted causal container), as plain Rust without actix,
//! I/O or clocks of their own (time comes in as `now_ms`).
//!
//! # Layout
//! - `clock`: [`VersionVector`], [`ClockEntry`], [`Dot`]: what a replica or a
//!   client has seen.
//! - `object`: [`Object`] (siblings + clock), the coordinator's write
//!   [`Object::update`], the replica join [`Object::merge`], read repair's
//!   [`is_stale`], [`VersionLimits`] and [`VersionError`].
//! - `prune`: [`Object::prune`] / [`Object::prune_keeping`], bounding clock
//!   size, and what it costs (false siblings, never a lost write).
//! - `actor`: the ConflictResolver actor, which reconciles replicas'
//!   answers for a read ([`reconcile`]).
//! - `encoding`: the versioned byte forms of an object (disk and replica wire)
//!   and of a clock.
//! - `context`: the client context, a clock sealed to its key with a MAC
//!   ([`ContextKey`]), so that clients cannot forge one.
//! - tests: `laws_tests` (proptest laws), `history_tests` (random concurrent
//!   histories against a model), `scenario_tests` (Figure 9 and friends),
//!   `encoding_tests` (golden bytes), `codec_tests` (the codec against
//!   the serde form), `expiry_tests` (TTL), `test_support` (strategies).
//!
//! # The model
//! Every write gets a unique [`Dot`] from its coordinator. A put carries the
//! context the client read; it replaces exactly the siblings that context
//! covers and keeps the rest, so two writes from the same context both
//! survive as siblings. A delete is a put of a tombstone. Replicas converge by
//! [`Object::merge`], a join (commutative, associative, idempotent), under
//! which a sibling some replica knows to be replaced never comes back.
//!
//! A put with `ttl_ms` gives its sibling an expiry ([`Sibling::expires_ms`],
//! wall time), minted with the dot and the same on every replica. From then
//! on reads ([`Object::live_values_at`]) do not see the value, but its dot
//! and the clock stay: an older version on a stale replica is still
//! covered, so it never comes back. Compaction drops the expired bytes
//! ([`Object::without_expired`]: the sibling becomes a tombstone of the
//! same dot, and merge prefers that form, so replicas converge on it).

mod actor;
mod clock;
mod context;
mod encoding;
mod object;
mod prune;

pub use actor::{answer_agreed, reconcile, ConflictResolver, Reconcile, Reconciled};
pub use clock::{ClockEntry, Dot, VersionVector};
pub use context::{ContextKey, CONTEXT_FORMAT_VERSION, CONTEXT_KEY_PURPOSE, CONTEXT_TAG_BYTES};
pub use encoding::{FORMAT_VERSION, FORMAT_VERSION_EXPIRY};
pub use object::{
    is_stale, Object, Sibling, VersionError, VersionLimits, SIBLINGS_MAX_DEFAULT,
    VCLOCK_ENTRIES_MAX_DEFAULT, VCLOCK_PRUNE_AGE_S_DEFAULT,
};

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod codec_tests;

#[cfg(test)]
mod encoding_tests;

#[cfg(test)]
mod laws_tests;

#[cfg(test)]
mod history_tests;

#[cfg(test)]
mod scenario_tests;

#[cfg(test)]
mod expiry_tests;
