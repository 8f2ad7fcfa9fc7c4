//! The limits `NodeArgs::validate` checks: the request deadline, frame,
//! key, value and object sizes, failure detection and the
//! coordinator's waits, tombstone reaping and the storage engine's
//! options.

use ringkv_actors::conflict_resolver::{
    VersionLimits, SIBLINGS_MAX_DEFAULT, VCLOCK_ENTRIES_MAX_DEFAULT, VCLOCK_PRUNE_AGE_S_DEFAULT,
};
use ringkv_actors::failure_detector::gossip::{
    GOSSIP_INTERVAL_MS_DEFAULT, SUSPECT_AFTER_GOSSIP_ROUNDS_DEFAULT,
};
use ringkv_actors::repair::reap::{
    ReapOptions, TOMBSTONE_REAP_AGE_MS_MIN_DEFAULT, TOMBSTONE_REAP_BATCH_KEYS_DEFAULT,
    TOMBSTONE_REAP_BATCH_KEYS_MAX, TOMBSTONE_REAP_INTERVAL_MS_DEFAULT,
};
use ringkv_actors::repair::stream_timeout_ms;
use ringkv_actors::replicator::{
    READ_RETRY_AFTER_MS_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT, STAND_IN_AFTER_MS_DEFAULT,
};
use ringkv_actors::wire::client::{MAX_KEY_BYTES_DEFAULT, MAX_VALUE_BYTES_DEFAULT};
use ringkv_actors::wire::MAX_FRAME_BYTES_DEFAULT;

use super::{positive, ConfigError, NodeArgs, OBJECT_FRAME_HEADROOM_BYTES, REQUEST_TIMEOUT_MS_MAX};

/// The request deadline and the sizes a frame must hold.
pub(super) struct Frames {
    pub(super) request_timeout_ms: u64,
    pub(super) max_frame_bytes: usize,
    pub(super) max_key_bytes: usize,
    pub(super) max_value_bytes: usize,
}

/// Failure detection and the coordinator's waits.
pub(super) struct Timings {
    pub(super) gossip_interval_ms: u64,
    pub(super) suspect_after_ms: u64,
    pub(super) stand_in_after_ms: u64,
    pub(super) read_retry_after_ms: u64,
}

impl NodeArgs {
    /// The request deadline, and frame, key and value sizes that fit
    /// together.
    pub(super) fn frames(&self) -> Result<Frames, ConfigError> {
        let request_timeout_ms = positive(
            "--request-timeout-ms",
            self.request_timeout_ms,
            REQUEST_TIMEOUT_MS_DEFAULT,
        )?;
        if request_timeout_ms > REQUEST_TIMEOUT_MS_MAX {
            return Err(
                format!("--request-timeout-ms must be at most {REQUEST_TIMEOUT_MS_MAX}").into(),
            );
        }
        let max_frame_bytes = positive(
            "--max-frame-bytes",
            self.max_frame_bytes,
            MAX_FRAME_BYTES_DEFAULT,
        )?;
        if max_frame_bytes > u32::MAX as usize {
            return Err("--max-frame-bytes must fit the 4-byte length prefix".into());
        }
        let max_key_bytes = positive("--max-key-bytes", self.max_key_bytes, MAX_KEY_BYTES_DEFAULT)?;
        let max_value_bytes = positive(
            "--max-value-bytes",
            self.max_value_bytes,
            MAX_VALUE_BYTES_DEFAULT,
        )?;
        if max_key_bytes + max_value_bytes + 1024 > max_frame_bytes {
            return Err(format!(
                "--max-frame-bytes ({max_frame_bytes}) must leave room for a key ({max_key_bytes}) \
                 and a value ({max_value_bytes}) plus 1 KiB of request fields"
            )
            .into());
        }
        Ok(Frames {
            request_timeout_ms,
            max_frame_bytes,
            max_key_bytes,
            max_value_bytes,
        })
    }

    /// Gossip and failure detection, and the coordinator's waits before a
    /// stand-in or another replica, each within the request deadline.
    pub(super) fn timings(&self, request_timeout_ms: u64) -> Result<Timings, ConfigError> {
        let gossip_interval_ms = positive(
            "--gossip-interval-ms",
            self.gossip_interval_ms,
            GOSSIP_INTERVAL_MS_DEFAULT,
        )?;
        let suspect_after_ms = positive(
            "--suspect-after-ms",
            self.suspect_after_ms,
            SUSPECT_AFTER_GOSSIP_ROUNDS_DEFAULT * gossip_interval_ms,
        )?;
        if suspect_after_ms < 2 * gossip_interval_ms {
            return Err(format!(
                "--suspect-after-ms ({suspect_after_ms}) must be at least two gossip intervals \
                 ({gossip_interval_ms} ms each), or healthy nodes would look silent"
            )
            .into());
        }
        let stand_in_after_ms = positive(
            "--stand-in-after-ms",
            self.stand_in_after_ms,
            STAND_IN_AFTER_MS_DEFAULT.min(request_timeout_ms / 2),
        )?;
        if stand_in_after_ms >= request_timeout_ms {
            return Err(format!(
                "--stand-in-after-ms ({stand_in_after_ms}) must be less than \
                 --request-timeout-ms ({request_timeout_ms}), or no request would wait for a stand-in"
            ).into());
        }
        let read_retry_after_ms = positive(
            "--read-retry-after-ms",
            self.read_retry_after_ms,
            READ_RETRY_AFTER_MS_DEFAULT.min(stand_in_after_ms),
        )?;
        if read_retry_after_ms > stand_in_after_ms {
            return Err(format!(
                "--read-retry-after-ms ({read_retry_after_ms}) must not exceed \
                 --stand-in-after-ms ({stand_in_after_ms}): a read asks another replica \
                 before it asks a stand-in"
            )
            .into());
        }
        Ok(Timings {
            gossip_interval_ms,
            suspect_after_ms,
            stand_in_after_ms,
            read_retry_after_ms,
        })
    }

    /// The largest object (within a response frame, holding at least one
    /// value) and the version limits.
    pub(super) fn objects(
        &self,
        max_frame_bytes: usize,
        max_key_bytes: usize,
        max_value_bytes: usize,
    ) -> Result<(usize, VersionLimits), ConfigError> {
        // A get answers a key's whole object in one frame, beside the
        // response's other fields.
        let object_bytes_bound = max_frame_bytes.saturating_sub(OBJECT_FRAME_HEADROOM_BYTES);
        let object_bytes_max = positive(
            "--object-bytes-max",
            self.object_bytes_max,
            object_bytes_bound,
        )?;
        if object_bytes_max > object_bytes_bound {
            return Err(format!(
                "--object-bytes-max ({object_bytes_max}) must leave {OBJECT_FRAME_HEADROOM_BYTES} \
                 bytes of --max-frame-bytes ({max_frame_bytes}) for the rest of a response"
            )
            .into());
        }
        if object_bytes_max < max_value_bytes + max_key_bytes {
            return Err(format!(
                "--object-bytes-max ({object_bytes_max}) must hold at least one value \
                 (--max-value-bytes {max_value_bytes}) and its key"
            )
            .into());
        }
        let version_limits = VersionLimits {
            siblings_max: positive("--siblings-max", self.siblings_max, SIBLINGS_MAX_DEFAULT)?,
            vclock_entries_max: positive(
                "--vclock-entries-max",
                self.vclock_entries_max,
                VCLOCK_ENTRIES_MAX_DEFAULT,
            )?,
            vclock_prune_age_s: self
                .vclock_prune_age_s
                .unwrap_or(VCLOCK_PRUNE_AGE_S_DEFAULT),
        };
        Ok((object_bytes_max, version_limits))
    }

    /// Tombstone reaping, never before a streaming deadline has passed.
    pub(super) fn tombstone_reap(
        &self,
        request_timeout_ms: u64,
    ) -> Result<ReapOptions, ConfigError> {
        let age_ms_min = self
            .tombstone_reap_age_ms_min
            .unwrap_or(TOMBSTONE_REAP_AGE_MS_MIN_DEFAULT);
        let settle_ms = stream_timeout_ms(request_timeout_ms);
        if age_ms_min < settle_ms {
            return Err(format!(
                "--tombstone-reap-age-ms-min must be at least the streaming deadline \
                 ({settle_ms} ms: the larger of --request-timeout-ms and 5000), got {age_ms_min}"
            )
            .into());
        }
        let batch_keys = positive(
            "--tombstone-reap-batch-keys",
            self.tombstone_reap_batch_keys,
            TOMBSTONE_REAP_BATCH_KEYS_DEFAULT,
        )?;
        if batch_keys > TOMBSTONE_REAP_BATCH_KEYS_MAX {
            return Err(format!(
                "--tombstone-reap-batch-keys must be at most {TOMBSTONE_REAP_BATCH_KEYS_MAX}, got {batch_keys}"
            )
            .into());
        }
        Ok(ReapOptions {
            interval_ms: self
                .tombstone_reap_interval_ms
                .unwrap_or(TOMBSTONE_REAP_INTERVAL_MS_DEFAULT),
            age_ms_min,
            batch_keys,
        })
    }

    /// The storage engine's options given as flags.
    pub(super) fn lsm(&self) -> Result<ringkv_actors::storage::LsmOptions, ConfigError> {
        let defaults = ringkv_actors::storage::LsmOptions::default();
        Ok(ringkv_actors::storage::LsmOptions {
            memtable_bytes_max: positive(
                "--lsm-memtable-bytes-max",
                self.lsm_memtable_bytes_max,
                defaults.memtable_bytes_max,
            )?,
            log_preallocate_bytes: self
                .lsm_log_preallocate_bytes
                .unwrap_or(defaults.log_preallocate_bytes),
            log_segment_bytes_max: positive(
                "--lsm-log-segment-bytes-max",
                self.lsm_log_segment_bytes_max,
                defaults.log_segment_bytes_max,
            )?,
            ..defaults
        })
    }
}
