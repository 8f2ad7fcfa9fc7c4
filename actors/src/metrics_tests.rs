//! Tests of the node's metrics (`metrics.rs`).
#![allow(clippy::unwrap_used)]

use super::*;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn requests_count_by_op_and_result_and_time_by_op() {
    let m = Metrics::default();
    m.request("get", None, 0.001);
    m.request("get", None, 0.002);
    m.request("put", Some(ErrorCode::Timeout), 0.5);
    m.request("nonsense", Some(ErrorCode::BadRequest), 0.0);
    let text = m.encode();
    assert_eq!(
        line(&text, "ringkv_requests_total{op=\"get\",result=\"ok\"}"),
        Some("ringkv_requests_total{op=\"get\",result=\"ok\"} 2")
    );
    assert!(text.contains("ringkv_requests_total{op=\"put\",result=\"timeout\"} 1"));
    assert!(text.contains("ringkv_requests_total{op=\"invalid\",result=\"bad_request\"} 1"));
    assert!(text.contains("ringkv_request_duration_seconds_count{op=\"get\"} 2"));
    assert!(text.contains("ringkv_request_duration_seconds_count{op=\"put\"} 1"));
}

#[test]
fn replica_requests_count_per_peer_and_mailboxes_go_up_and_down() {
    let m = Metrics::default();
    m.replica_request("n2", true, false);
    m.replica_request("n2", false, true);
    m.replica_request("n3", false, false);
    m.replica_request("n2", true, false);
    m.mailbox_sent(Mailbox::Storage);
    m.mailbox_sent(Mailbox::Storage);
    m.mailbox_handled(Mailbox::Storage);
    let text = m.encode();
    assert!(text.contains("ringkv_replica_requests_total{peer=\"n2\",result=\"ok\"} 2"));
    assert!(text.contains("ringkv_replica_requests_total{peer=\"n2\",result=\"timeout\"} 1"));
    assert!(text.contains("ringkv_replica_requests_total{peer=\"n3\",result=\"error\"} 1"));
    assert!(text.contains("ringkv_actor_mailbox_depth{actor=\"storage\"} 1"));
    assert!(text.contains("ringkv_actor_mailbox_depth{actor=\"replicator\"} 0"));
}

#[test]
fn members_are_counted_by_state_and_absent_states_read_zero() {
    let m = Metrics::default();
    m.set_members(["alive", "alive", "down"]);
    m.set_members(["alive", "alive", "alive"]);
    let text = m.encode();
    assert!(text.contains("ringkv_members{state=\"alive\"} 3"));
    assert!(text.contains("ringkv_members{state=\"down\"} 0"));
    m.tombstone_transition(false, true);
    m.tombstone_transition(false, true);
    m.tombstone_transition(true, false);
    m.tombstone_transition(true, true);
    assert!(m.encode().contains("ringkv_tombstones 1"));
}

#[test]
fn storage_metrics_appear_only_with_an_engine() {
    assert!(!Metrics::default().encode().contains("ringkv_storage_"));
    let engine = EngineMetrics::default();
    engine.compactions.inc();
    engine.write_stall_seconds.inc_by(0.5);
    let text = Metrics::new(Some(&engine)).encode();
    assert!(text.contains("ringkv_storage_compactions_total 1"));
    assert!(text.contains("ringkv_storage_write_stall_seconds_total 0.5"));
    assert!(text.contains("ringkv_storage_fsync_duration_seconds_count 0"));
}
