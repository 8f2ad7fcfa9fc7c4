//! The sending side of an outbound link, shared by its [`PeerConnection`]
//! and every caller: while the link is up, a caller seals, queues and
//! registers its request here itself, without a message to the connection.
//!
//! A peer call through the connection's mailbox cost an actix envelope,
//! a task to wait for the handler's reply future, a second reply channel,
//! and a timer of its own (an actix-spawned tokio sleep, set and then
//! cancelled). On a replicated put those were two calls per put at the
//! coordinator. Here a call is one reply channel and two map entries:
//! the request by id, and its deadline in instant order. The connection
//! keeps one timer, at the earliest deadline ([`Sent::arm`] tells a
//! caller whose request comes earlier than that timer to ask for it),
//! and answers `Timeout` for what is due when it fires, as before.
//!
//! The connection still owns the link's life: dialling, the handshake,
//! reading responses, timeouts and the health they imply. It makes the
//! link usable here once the handshake is done ([`Outbound::up`]) and
//! unusable when it is lost ([`Outbound::down`]); a caller that finds it
//! unusable sends its request to the connection as before (which waits
//! for a dial in progress, or answers `Unreachable`).
//!
//! [`PeerConnection`]: super::PeerConnection

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::connection::PeerCall;
use super::deadlines::Deadlines;
use super::seal::{FrameSealer, TAG_BYTES};
use super::PeerError;
use crate::wire::peer::{PeerFrame, PeerReply};

/// Where a request's answer goes.
pub type Reply = oneshot::Sender<Result<PeerReply, PeerError>>;

/// The shared sending state of one outbound link (cheap to clone).
#[derive(Clone)]
pub struct Outbound(Arc<Mutex<Sending>>);

struct Sending {
    /// Set while the link is up: where sealed frames are queued for the
    /// connection's writing task, and the sealer of this direction.
    up: Option<(mpsc::UnboundedSender<Bytes>, FrameSealer)>,
    /// Requests sent and not yet answered, by id, with their deadlines
    /// (the connection's one timer is set for the earliest).
    pending: Deadlines<Pending>,
    /// The next request's id.
    next_id: u64,
    /// Frames longer than this (tag included) are refused before sealing.
    max_frame_bytes: usize,
}

struct Pending {
    reply: Reply,
    timeout_ms: u64,
}

/// A request queued on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Its deadline comes before the connection's timer (or no timer is
    /// set): the connection must set its timer again ([`Outbound::earliest`]).
    pub arm: bool,
}

impl Outbound {
    /// The sending state of a link that is not up yet; frames longer than
    /// `max_frame_bytes` are refused.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self(Arc::new(Mutex::new(Sending {
            up: None,
            pending: Deadlines::default(),
            next_id: 1,
            max_frame_bytes,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Sending> {
        // Every update below leaves the state whole before it can panic,
        // so a poisoned lock is still good.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The handshake is done: requests go to `frames`, sealed by `sealer`.
    pub fn up(&self, frames: mpsc::UnboundedSender<Bytes>, sealer: FrameSealer) {
        self.lock().up = Some((frames, sealer));
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.lock().up.is_some()
    }

    /// The link is lost: nothing more is sent, and the requests still
    /// pending are handed back (to be answered `Disconnected`).
    pub fn down(&self) -> Vec<Reply> {
        let mut sending = self.lock();
        sending.up = None;
        sending
            .pending
            .drain()
            .into_iter()
            .map(|p| p.reply)
            .collect()
    }

    /// Seals and queues `call` if the link is up, its answer to go to
    /// `reply`. A request that cannot be sent (too large for a frame, not
    /// encodable, the session's counter exhausted) is answered on `reply`
    /// at once. `Err` gives both back when the link is not up (boxed: the
    /// rare case, and a large one).
    pub fn send(&self, call: PeerCall, reply: Reply) -> Result<Sent, Box<(PeerCall, Reply)>> {
        let mut guard = self.lock();
        let sending = &mut *guard;
        let Some((frames, sealer)) = &mut sending.up else {
            return Err(Box::new((call, reply)));
        };
        let id = sending.next_id;
        let timeout_ms = call.timeout_ms;
        let frame = PeerFrame::Request {
            id,
            trace: call.trace,
            timeout_ms,
            body: call.body,
        };
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = reply.send(Err(PeerError::Local(e.to_string())));
                return Ok(Sent { arm: false });
            }
        };
        // A frame the peer would refuse would also make the writer fail and
        // tear the link down for every other request: refuse it here. (Its
        // tag counts; refused before sealing, it takes no sequence number.)
        let limit = sending.max_frame_bytes;
        if bytes.len() + TAG_BYTES > limit {
            let bytes = bytes.len() + TAG_BYTES;
            let _ = reply.send(Err(PeerError::TooLarge { bytes, limit }));
            return Ok(Sent { arm: false });
        }
        match sealer.seal(bytes) {
            // A closed queue means the writing task stopped on a write
            // error, which it reported: the link is being torn down, and
            // the request is answered `Disconnected` with the others.
            Ok(sealed) => drop(frames.send(Bytes::from(sealed))),
            Err(e) => {
                let _ = reply.send(Err(PeerError::Local(e.to_string())));
                return Ok(Sent { arm: false });
            }
        }
        sending.next_id += 1;
        let deadline = Instant::now() + std::time::Duration::from_millis(timeout_ms);
        let arm = sending
            .pending
            .insert(id, deadline, Pending { reply, timeout_ms });
        Ok(Sent { arm })
    }

    /// The response to request `id`, handed to its caller; `false` if no
    /// such request is pending (it timed out, or the link was lost since).
    pub fn answer(&self, id: u64, body: Result<PeerReply, PeerError>) -> bool {
        let Some(pending) = self.lock().pending.remove(id) else {
            return false;
        };
        let _ = pending.reply.send(body);
        true
    }

    /// Takes out the requests whose deadline is `now` or earlier, each with
    /// its timeout in milliseconds, and forgets the timer (it fired).
    pub fn expire(&self, now: Instant) -> Vec<(Reply, u64)> {
        let due = self.lock().pending.due(now);
        due.into_iter().map(|p| (p.reply, p.timeout_ms)).collect()
    }

    /// The earliest deadline pending, which the connection sets its timer
    /// for (recorded as the timer's instant); `None` when nothing is
    /// pending (and no timer is needed).
    pub fn earliest(&self) -> Option<Instant> {
        self.lock().pending.next_timer()
    }

    /// Requests pending on the link.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bridge::seal::{FrameOpener, SESSION_KEY_BYTES};
    use crate::wire::peer::{PeerRpc, ReplicaRead};
    use serde_bytes::ByteBuf;
    use std::time::Duration;

    fn call(timeout_ms: u64) -> PeerCall {
        PeerCall {
            body: ReplicaRead {
                key: ByteBuf::from(b"k".to_vec()),
            }
            .into_request(),
            trace: 7,
            timeout_ms,
        }
    }

    fn up_link(max_frame_bytes: usize) -> (Outbound, mpsc::UnboundedReceiver<Bytes>, FrameOpener) {
        let key = [3u8; SESSION_KEY_BYTES];
        let outbound = Outbound::new(max_frame_bytes);
        let (frames, queue) = mpsc::unbounded_channel();
        outbound.up(frames, FrameSealer::new(&key));
        (outbound, queue, FrameOpener::new(&key))
    }

    fn reply() -> (Reply, oneshot::Receiver<Result<PeerReply, PeerError>>) {
        oneshot::channel()
    }

    fn sent(outbound: &Outbound, call: PeerCall, reply: Reply) -> Sent {
        match outbound.send(call, reply) {
            Ok(sent) => sent,
            Err(_) => panic!("the link is up"),
        }
    }

    /// A link not up gives the call back untouched; once up, calls are
    /// sealed in order with ids of their own, and each answer reaches its
    /// own caller.
    #[actix_rt::test]
    async fn calls_are_sealed_in_order_and_answered_by_id() {
        let outbound = Outbound::new(1 << 20);
        let (tx, _rx) = reply();
        let (back, _) = *outbound.send(call(100), tx).err().unwrap();
        assert_eq!(back.trace, 7);
        assert!(!outbound.is_up());

        let (outbound, mut queue, mut opener) = up_link(1 << 20);
        let (tx1, rx1) = reply();
        let (tx2, mut rx2) = reply();
        assert_eq!(sent(&outbound, call(100), tx1), Sent { arm: true });
        // Later deadline than the timer just claimed: no new timer.
        assert_eq!(sent(&outbound, call(100), tx2), Sent { arm: false });
        let mut ids = Vec::new();
        for _ in 0..2 {
            let sealed = queue.try_recv().unwrap();
            match PeerFrame::decode(opener.open(&sealed).unwrap()).unwrap() {
                PeerFrame::Request {
                    id,
                    trace,
                    timeout_ms,
                    ..
                } => {
                    assert_eq!((trace, timeout_ms), (7, 100));
                    ids.push(id);
                }
                other => panic!("a {} frame", other.name()),
            }
        }
        assert_eq!(ids, [1, 2]);
        assert_eq!(outbound.pending(), 2);
        assert!(outbound.answer(1, Err(PeerError::Unreachable)));
        assert!(!outbound.answer(1, Err(PeerError::Unreachable)));
        assert!(matches!(rx1.await.unwrap(), Err(PeerError::Unreachable)));
        assert!(rx2.try_recv().is_err());
        assert_eq!(outbound.pending(), 1);
    }

    /// An earlier deadline than the timer's asks for the timer again; what
    /// is due expires in deadline order, answered or not, and the rest stays.
    #[actix_rt::test]
    async fn deadlines_expire_in_order_and_an_earlier_one_rearms() {
        let (outbound, _queue, _opener) = up_link(1 << 20);
        let (slow, _slow_rx) = reply();
        let (fast, _fast_rx) = reply();
        let (answered, _answered_rx) = reply();
        assert!(sent(&outbound, call(1_000), slow).arm);
        assert!(sent(&outbound, call(10), fast).arm);
        assert!(!sent(&outbound, call(50), answered).arm);
        let start = Instant::now();
        let earliest = outbound.earliest().unwrap();
        assert!(earliest <= start + Duration::from_millis(10));
        assert!(earliest + Duration::from_millis(900) < start + Duration::from_millis(1_000));
        assert!(outbound.answer(3, Err(PeerError::Unreachable)));

        let due = outbound.expire(start + Duration::from_millis(60));
        assert_eq!(due.iter().map(|(_, ms)| *ms).collect::<Vec<_>>(), [10]);
        assert_eq!(outbound.pending(), 1);
        // The sweep forgot its timer: the next request asks for one.
        let (next, _next_rx) = reply();
        assert!(sent(&outbound, call(2_000), next).arm);
        let earliest = outbound.earliest().unwrap();
        assert!(earliest <= start + Duration::from_millis(1_000));
        assert!(outbound
            .expire(earliest - Duration::from_millis(1))
            .is_empty());
        assert_eq!(outbound.expire(earliest).len(), 1);
        assert_eq!(outbound.expire(start + Duration::from_secs(3)).len(), 1);
        assert_eq!(outbound.earliest(), None);
    }

    /// A lost link hands back what was pending and sends nothing more; a
    /// frame over the limit is refused without taking a sequence number.
    #[actix_rt::test]
    async fn a_lost_link_returns_its_pending_and_oversized_frames_are_refused() {
        let (outbound, mut queue, mut opener) = up_link(128);
        let (big, big_rx) = reply();
        let mut large = call(100);
        large.body = ReplicaRead {
            key: ByteBuf::from(vec![0; 200]),
        }
        .into_request();
        assert_eq!(sent(&outbound, large, big), Sent { arm: false });
        assert!(matches!(
            big_rx.await.unwrap(),
            Err(PeerError::TooLarge { limit: 128, .. })
        ));
        let (small, _small_rx) = reply();
        sent(&outbound, call(100), small);
        // Frame 0 of the direction: the refused one took no number.
        assert!(opener.open(&queue.try_recv().unwrap()).is_ok());

        assert_eq!(outbound.down().len(), 1);
        assert!(!outbound.is_up());
        let (after, _after_rx) = reply();
        assert!(outbound.send(call(100), after).is_err());
        assert!(queue.try_recv().is_err());
    }
}
