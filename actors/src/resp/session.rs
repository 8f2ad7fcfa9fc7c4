//! `RespSession`: one actor per RESP connection.
//!
//! Commands are read as they come (pipelining) and each starts at once,
//! unless an earlier command of the connection on one of its keys is still
//! running: then it waits for that one, so a pipelined GET sees the SET
//! before it. RESP has no request ids, so every command takes the next
//! reply slot and replies leave in command order, a finished one waiting
//! for those before it. At most `client_inflight_max` commands are read
//! and not done; past that the session stops reading (the client waits on
//! TCP) rather than refusing. Commands that change the connection (`AUTH`, `HELLO`, `SELECT`,
//! `CLIENT SETNAME`, `RINGKV.CONSISTENCY`) are applied when read, so the
//! commands pipelined behind them see the change.
//!
//! A frame that is not a command is answered with an error and the
//! connection goes on; one that cannot be framed is answered and the
//! connection closed once the replies before it are out (`frame`).

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use fnv::FnvHashMap;
use futures_util::future::join_all;
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::command::{self, ClientCommand, Command, Consistency};
use super::frame::{FrameLimits, Protocol, Reply};
use super::info::{self, ClientFacts, InfoFacts};
use super::io::{write_replies, Input, RespDecoder};
use super::local::{self, reply_queue, Replies};
use super::permits::{Permit, Permits};
use super::scan;
use super::{RespOptions, Shared, SiblingsMode};
use crate::client_api::access::{Access, AUTH_FAILURES_MAX};
use crate::failure_detector::{FailureDetector, StatusQuery};
use crate::net::BoxConnection;
use crate::replicator::{
    CoordinateGet, CoordinateList, CoordinateWrite, GetAnswer, ListPage, LocalRead, Replicator,
};
use crate::wire::client::LIST_LIMIT_MAX;
use crate::wire::client::{ClientError, ClientOp, ClientReply, ErrorCode};
use crate::NodeId;

/// A reply still being computed.
type Pending = Pin<Box<dyn Future<Output = Reply>>>;

/// A read still running: the live values and the context.
type PendingRead = Pin<Box<dyn Future<Output = Result<GetAnswer, ClientError>>>>;

/// What a command reads a key for, which decides what the read answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadFor {
    /// GET, MGET, EXISTS: the value (only the last writer's under
    /// `resp_siblings = lww`); no context.
    Value,
    /// RINGKV.SIBLINGS: every live sibling; no context.
    Siblings,
    /// RINGKV.RESOLVE: every live sibling and the context the write
    /// replaces.
    Resolve,
}

/// A walk of the `list` op: the keys, and where it stopped (`None`: the
/// pass ended).
type WalkResult = Result<(Vec<Vec<u8>>, Option<Vec<u8>>), ClientError>;

/// The session actor.
pub struct RespSession {
    conn: Option<BoxConnection>,
    remote: SocketAddr,
    access: Access,
    node: NodeId,
    options: RespOptions,
    /// Shared by every command's future: cloning an actix `Addr`
    /// allocates, and each command takes the replicator with it.
    replicator: Rc<Addr<Replicator>>,
    failure_detector: Addr<FailureDetector>,
    shared: Shared,
    /// `CLIENT ID`.
    id: u64,
    opened: Instant,
    name: Vec<u8>,
    lib_name: Vec<u8>,
    lib_ver: Vec<u8>,
    protocol: Protocol,
    consistency: Consistency,
    writer: Option<Replies>,
    /// Reply slots in command order; the front is the oldest unanswered.
    slots: VecDeque<Option<Bytes>>,
    /// The sequence number of `slots[0]`.
    first_slot: u64,
    in_flight: usize,
    /// Per key, the last command of this connection on it still running
    /// (its reply slot).
    key_tails: FnvHashMap<Vec<u8>, u64>,
    /// Per running command (its reply slot), the commands waiting for it to
    /// be done: made only when a command on one of its keys comes while it
    /// runs, so a command nobody waits for costs a map entry per key and
    /// no channel.
    key_waiters: FnvHashMap<u64, Vec<oneshot::Sender<()>>>,
    /// Commands read but not done: the read stream takes a permit per command
    /// and waits when there is none (`client_inflight_max`), so a client
    /// that pipelines more waits on TCP instead of being refused.
    permits: Permits,
    /// The permit of the command being handled (taken by `run`).
    permit: Option<Permit>,
    /// The metrics op of the command being handled and when it was read
    /// (taken by `run`, which counts it when answered).
    counting: Option<(&'static str, Instant)>,
    /// No more commands are taken (QUIT, a fatal frame, the client closed
    /// its side): close once every reply is out.
    closing: bool,
    span: tracing::Span,
}

impl RespSession {
    /// A session over an accepted connection.
    pub fn new(
        conn: BoxConnection,
        remote: SocketAddr,
        node: NodeId,
        options: RespOptions,
        replicator: Addr<Replicator>,
        failure_detector: Addr<FailureDetector>,
        shared: Shared,
    ) -> Self {
        let id = shared.next_client_id.get();
        shared.next_client_id.set(id.wrapping_add(1));
        let span = tracing::info_span!("resp_session", node = %node, actor = "resp_session", client = %remote, client_id = id);
        let permits = Permits::new(options.inflight_max);
        Self {
            conn: Some(conn),
            remote,
            access: Access::new(&options.tokens),
            node,
            options,
            replicator: Rc::new(replicator),
            failure_detector,
            shared,
            id,
            opened: Instant::now(),
            name: Vec::new(),
            lib_name: Vec::new(),
            lib_ver: Vec::new(),
            protocol: Protocol::Resp2,
            consistency: Consistency::Quorum,
            writer: None,
            slots: VecDeque::new(),
            first_slot: 0,
            in_flight: 0,
            counting: None,
            key_tails: FnvHashMap::default(),
            key_waiters: FnvHashMap::default(),
            permits,
            permit: None,
            closing: false,
            span,
        }
    }

    fn close(&mut self, ctx: &mut Context<Self>) {
        self.writer = None;
        ctx.stop();
    }

    /// Takes the next reply slot.
    fn reserve(&mut self) -> u64 {
        let seq = self.first_slot + self.slots.len() as u64;
        self.slots.push_back(None);
        seq
    }

    /// Fills slot `seq` with `reply` encoded in `protocol`, and sends every
    /// reply at the front that is ready.
    fn fill(&mut self, seq: u64, reply: Reply, protocol: Protocol, ctx: &mut Context<Self>) {
        let bytes = self.encode(reply, protocol);
        let Some(slot) = usize::try_from(seq - self.first_slot)
            .ok()
            .and_then(|at| self.slots.get_mut(at))
        else {
            return;
        };
        *slot = Some(bytes);
        while let Some(Some(_)) = self.slots.front() {
            let Some(Some(bytes)) = self.slots.pop_front() else {
                break;
            };
            self.first_slot += 1;
            let Some(w) = self.writer.as_ref() else {
                continue;
            };
            if w.try_send(bytes).is_err() {
                let span = self.span.clone();
                let _span = span.enter();
                warn!(
                    limit = self.options.write_queue_replies_max,
                    "RESP client does not read its replies (write queue full); disconnecting"
                );
                self.close(ctx);
                return;
            }
        }
        if self.closing && self.slots.is_empty() {
            self.close(ctx);
        }
    }

    /// The reply's bytes; one over the frame limit is replaced by an error
    /// that says why (never a silent drop: the client would wait forever).
    fn encode(&self, reply: Reply, protocol: Protocol) -> Bytes {
        let encoded = reply.encode(protocol).and_then(|bytes| {
            if bytes.len() > self.options.frame_bytes_max {
                Err(format!(
                    "the reply of {} bytes is over the limit of {} bytes (max_frame_bytes); \
                     ask for fewer keys at once",
                    bytes.len(),
                    self.options.frame_bytes_max
                ))
            } else {
                Ok(bytes)
            }
        });
        match encoded {
            Ok(bytes) => Bytes::from(bytes),
            Err(why) => {
                let _span = self.span.enter();
                warn!(reason = %why, "RESP reply not sent; answering an error");
                let fallback = Reply::err(why).encode(protocol).unwrap_or_default();
                Bytes::from(fallback)
            }
        }
    }

    /// Answers at once (in order).
    fn answer(&mut self, reply: Reply, ctx: &mut Context<Self>) {
        let seq = self.reserve();
        let protocol = self.protocol;
        self.fill(seq, reply, protocol, ctx);
    }

    fn on_input(&mut self, input: Input, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        match input {
            Input::Command(args) => self.on_command(&args, ctx),
            Input::NotACommand(e) => {
                let _span = self.span.enter();
                info!(error = %e, "RESP frame is not a command; answered, connection kept");
                drop(_span);
                self.answer(Reply::err(e), ctx);
            }
            Input::Fatal(e) => {
                let span = self.span.clone();
                let _span = span.enter();
                info!(error = %e, "RESP stream cannot be framed; answering and closing");
                self.closing = true;
                self.answer(Reply::err(e), ctx);
            }
        }
    }

    fn on_command(&mut self, args: &[Vec<u8>], ctx: &mut Context<Self>) {
        self.dispatch_command(args, ctx);
        // A command answered without `run` (refused, or about the
        // connection) is not counted.
        self.counting = None;
    }

    fn dispatch_command(&mut self, args: &[Vec<u8>], ctx: &mut Context<Self>) {
        let parsed = command::parse(args, &self.options.limits);
        let command = match parsed {
            Ok(c) => c,
            Err(reply) => {
                let span = self.span.clone();
                let _span = span.enter();
                debug!(command = %String::from_utf8_lossy(&args[0]), "RESP command refused");
                return self.answer(reply, ctx);
            }
        };
        self.counting = command::metric_op(&command).map(|op| (op, Instant::now()));
        // Before authentication only AUTH, HELLO (its AUTH) and QUIT run.
        let pre_auth = matches!(
            command,
            Command::Auth { .. } | Command::Hello { .. } | Command::Quit
        );
        if !pre_auth
            && self
                .access
                .permit(&ClientOp::Ping, self.remote.ip())
                .is_err()
        {
            return self.answer(Reply::Error("NOAUTH Authentication required.".into()), ctx);
        }
        match command {
            Command::Ping(None) => self.answer(Reply::Simple("PONG".into()), ctx),
            Command::Ping(Some(message)) | Command::Echo(message) => {
                self.answer(Reply::Bulk(message), ctx)
            }
            Command::Hello {
                protover,
                auth,
                setname,
            } => self.on_hello(protover, auth, setname, ctx),
            Command::Auth { user, password } => {
                let reply = self.authenticate(user.as_deref(), &password);
                self.answer(reply, ctx);
            }
            Command::Quit => {
                self.closing = true;
                self.answer(Reply::ok(), ctx);
            }
            Command::Select => self.answer(Reply::ok(), ctx),
            Command::Consistency(level) => {
                self.consistency = level;
                self.answer(Reply::ok(), ctx);
            }
            Command::Client(sub) => {
                let reply = self.on_client(sub);
                self.answer(reply, ctx);
            }
            Command::Command(query) => self.answer(command::command_reply(&query), ctx),
            Command::ConfigGet => self.answer(Reply::Map(Vec::new()), ctx),
            Command::Info(sections) => {
                let fut = self.info(sections);
                self.run(Vec::new(), fut, ctx);
            }
            Command::Get(key) => {
                if let Some(reply) = self.get_in_place(&key) {
                    let counting = self.counting.take();
                    self.count(counting, &reply);
                    return self.answer(reply, ctx);
                }
                let fut = self.get_one(key.clone());
                self.run(vec![key], fut, ctx);
            }
            Command::MGet(keys) => {
                // Every key answered in place, or the whole MGET is sent
                // on (its replies stay in one array, in order).
                let in_place: Option<Vec<Reply>> =
                    keys.iter().map(|k| self.get_in_place(k)).collect();
                if let Some(values) = in_place {
                    let reply = Reply::Array(values);
                    let counting = self.counting.take();
                    self.count(counting, &reply);
                    return self.answer(reply, ctx);
                }
                let gets: Vec<Pending> = keys.iter().map(|k| self.get_one(k.clone())).collect();
                self.run(
                    keys,
                    Box::pin(async move { Reply::Array(join_all(gets).await) }),
                    ctx,
                );
            }
            Command::Exists(keys) => {
                let reads: Vec<_> = keys
                    .iter()
                    .map(|k| self.read(k.clone(), ReadFor::Value))
                    .collect();
                self.run(
                    keys,
                    Box::pin(async move {
                        let mut count = 0;
                        for result in join_all(reads).await {
                            match result {
                                Ok((values, _)) => count += i64::from(!values.is_empty()),
                                Err(e) => return client_error(e),
                            }
                        }
                        Reply::Int(count)
                    }),
                    ctx,
                );
            }
            Command::Siblings(key) => {
                let read = self.read(key.clone(), ReadFor::Siblings);
                self.run(
                    vec![key],
                    Box::pin(async move {
                        match read.await {
                            Ok((values, _)) => {
                                Reply::Array(values.into_iter().map(Reply::Bulk).collect())
                            }
                            Err(e) => client_error(e),
                        }
                    }),
                    ctx,
                );
            }
            Command::Set(key, value, ttl_ms) => {
                let write = self.write(key.clone(), Some(value), None, ttl_ms);
                self.run(
                    vec![key],
                    Box::pin(async move {
                        match write.await {
                            Ok(_) => Reply::ok(),
                            Err(e) => client_error(e),
                        }
                    }),
                    ctx,
                );
            }
            Command::Scan {
                cursor,
                pattern,
                count,
                strings,
            } => {
                let page = self.list_page(cursor, count);
                self.run(
                    Vec::new(),
                    Box::pin(async move {
                        match page.await {
                            Ok(page) => {
                                let keys = page
                                    .keys
                                    .into_iter()
                                    .filter(|_| strings)
                                    .filter(|k| {
                                        pattern.as_ref().is_none_or(|p| scan::glob_match(p, k))
                                    })
                                    .map(Reply::Bulk)
                                    .collect();
                                Reply::Array(vec![
                                    Reply::Bulk(scan::scan_reply_cursor(page.cursor.as_deref())),
                                    Reply::Array(keys),
                                ])
                            }
                            Err(e) => client_error(e),
                        }
                    }),
                    ctx,
                );
            }
            Command::Keys(pattern) => {
                let walk = self.walk_keys(scan::RESP_KEYS_MAX);
                self.run(
                    Vec::new(),
                    Box::pin(async move {
                        match walk.await {
                            Ok((keys, None)) => Reply::Array(
                                keys.into_iter()
                                    .filter(|k| scan::glob_match(&pattern, k))
                                    .map(Reply::Bulk)
                                    .collect(),
                            ),
                            Ok((_, Some(_))) => Reply::err(format!(
                                "KEYS stops at {} keys (RESP_KEYS_MAX); page through them with SCAN",
                                scan::RESP_KEYS_MAX
                            )),
                            Err(e) => client_error(e),
                        }
                    }),
                    ctx,
                );
            }
            Command::DbSize => {
                let walk = self.walk_keys(scan::DBSIZE_EXACT_KEYS_MAX);
                let key_bytes_max = self.options.limits.max_key_bytes;
                self.run(
                    Vec::new(),
                    Box::pin(async move {
                        match walk.await {
                            Ok((keys, stopped)) => {
                                let estimate = scan::dbsize_estimate(
                                    keys.len(),
                                    stopped.as_deref(),
                                    key_bytes_max,
                                );
                                Reply::Int(i64::try_from(estimate).unwrap_or(i64::MAX))
                            }
                            Err(e) => client_error(e),
                        }
                    }),
                    ctx,
                );
            }
            Command::MSet(pairs) => {
                let keys = pairs.iter().map(|(k, _)| k.clone()).collect();
                let writes: Vec<_> = pairs
                    .into_iter()
                    .map(|(k, v)| self.write(k, Some(v), None, None))
                    .collect();
                self.run(
                    keys,
                    Box::pin(async move {
                        let results = join_all(writes).await;
                        let failed = results.iter().filter(|r| r.is_err()).count();
                        match results.into_iter().find_map(Result::err) {
                            None => Reply::ok(),
                            Some(e) => Reply::err(format!(
                                "{failed} of the MSET's keys were not written (MSET is not \
                                 atomic in ringkv; the others were): {}",
                                e.message
                            )),
                        }
                    }),
                    ctx,
                );
            }
            Command::Del(keys) => {
                let count = keys.len() as i64;
                let writes: Vec<_> = keys
                    .iter()
                    .map(|k| self.write(k.clone(), None, None, None))
                    .collect();
                self.run(
                    keys,
                    Box::pin(async move {
                        for result in join_all(writes).await {
                            if let Err(e) = result {
                                return client_error(e);
                            }
                        }
                        Reply::Int(count)
                    }),
                    ctx,
                );
            }
            Command::Resolve(key, value) => {
                let read = self.read(key.clone(), ReadFor::Resolve);
                let (replicator, write_for) = (Rc::clone(&self.replicator), self.level());
                let trace = self.trace();
                self.run(
                    vec![key.clone()],
                    Box::pin(async move {
                        let context = match read.await {
                            Ok((_, context)) => context,
                            Err(e) => return client_error(e),
                        };
                        let write = replicator.send(CoordinateWrite {
                            key,
                            value: Some(value),
                            context,
                            supersede_local: true,
                            ttl_ms: None,
                            w: None,
                            pw: None,
                            consistency: write_for,
                            dc_quorums: Vec::new(),
                            timeout_ms: None,
                            trace,
                            with_context: false,
                        });
                        match write.await {
                            Ok(Ok(_)) => Reply::ok(),
                            Ok(Err(e)) => client_error(e),
                            Err(e) => Reply::err(format!("replicator unavailable: {e}")),
                        }
                    }),
                    ctx,
                );
            }
        }
    }

    /// Runs a command that needs the cluster on `keys`; its reply takes the
    /// next slot. It starts once every earlier command of this connection
    /// on one of its keys is done, so a GET pipelined behind a SET of the
    /// same key sees it (commands on other keys run side by side). It
    /// holds its in-flight permit until it is done.
    fn run(&mut self, keys: Vec<Vec<u8>>, work: Pending, ctx: &mut Context<Self>) {
        let seq = self.reserve();
        let protocol = self.protocol;
        let permit = self.permit.take();
        let counting = self.counting.take();
        // The last earlier command on each key that is still running.
        let mut before = Vec::new();
        for key in &keys {
            if let Some(&tail) = self.key_tails.get(key) {
                let (done, wait) = oneshot::channel::<()>();
                self.key_waiters.entry(tail).or_default().push(done);
                before.push(wait);
            }
        }
        for key in &keys {
            self.key_tails.insert(key.clone(), seq);
        }
        self.in_flight += 1;
        let fut = async move {
            // Sent when that command is done; dropped (also an answer
            // here) only when the session stops.
            for wait in before {
                let _ = wait.await;
            }
            work.await
        };
        ctx.spawn(fut.into_actor(self).map(move |reply, act, ctx| {
            drop(permit);
            act.count(counting, &reply);
            act.in_flight -= 1;
            for key in keys {
                if act.key_tails.get(&key) == Some(&seq) {
                    act.key_tails.remove(&key);
                }
            }
            for done in act.key_waiters.remove(&seq).into_iter().flatten() {
                let _ = done.send(());
            }
            act.fill(seq, reply, protocol, ctx);
        }));
    }

    /// Counts a command's answer for the request metrics (`counting`: its
    /// op and when it was read; `None`, a command not counted).
    fn count(&self, counting: Option<(&'static str, Instant)>, reply: &Reply) {
        if let Some((op, started)) = counting {
            let error = match reply {
                Reply::Error(text) => Some(error_code_of(text)),
                _ => None,
            };
            self.options
                .metrics
                .request(op, error, started.elapsed().as_secs_f64());
        }
    }

    fn trace(&self) -> u64 {
        let trace = self.shared.next_trace.get();
        self.shared.next_trace.set(trace.wrapping_add(1));
        trace
    }

    /// The level sent with each read and write: none for `quorum`, which
    /// on this port means the node's configured R and W.
    fn level(&self) -> Option<Consistency> {
        (self.consistency != Consistency::Quorum).then_some(self.consistency)
    }

    /// A read of `key`: its live values (only the last writer's for a
    /// value under `resp_siblings = lww`) and, to resolve, its context.
    fn read(&self, key: Vec<u8>, reading_for: ReadFor) -> PendingRead {
        let replicator = Rc::clone(&self.replicator);
        let message = CoordinateGet {
            key,
            r: None,
            pr: None,
            consistency: self.level(),
            timeout_ms: None,
            trace: self.trace(),
            last_writer_wins: reading_for == ReadFor::Value
                && self.options.siblings == SiblingsMode::Lww,
            with_context: reading_for == ReadFor::Resolve,
        };
        // Sent when first polled: after the commands it waits for.
        Box::pin(async move {
            replicator.send(message).await.map_err(|e| {
                ClientError::new(ErrorCode::Internal, format!("replicator unavailable: {e}"))
            })?
        })
    }

    /// GET of one key: its value, nil, or (siblings, `resp_siblings =
    /// error`) an error that says how to resolve them.
    fn get_one(&self, key: Vec<u8>) -> Pending {
        let read = self.read(key, ReadFor::Value);
        Box::pin(async move { value_reply(read.await) })
    }

    /// GET (or an MGET's key) of a key that this node alone holds, with R =
    /// 1 and its copy in memory, answered now (`replicator::LocalReads`);
    /// `None`: the GET goes to the replicator. Only when no earlier command of this
    /// connection on the key is still running: it must see that one's
    /// effect.
    fn get_in_place(&self, key: &[u8]) -> Option<Reply> {
        if self.key_tails.contains_key(key) {
            return None;
        }
        let answer = self.shared.local_reads.answer(&LocalRead {
            key,
            r: None,
            pr: None,
            consistency: self.level(),
            last_writer_wins: self.options.siblings == SiblingsMode::Lww,
            with_context: false,
            trace: self.trace(),
        })?;
        Some(value_reply(answer))
    }

    /// One page of the `list` op.
    fn list_page(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> Pin<Box<dyn Future<Output = Result<ListPage, ClientError>>>> {
        let message = CoordinateList {
            cursor,
            limit,
            timeout_ms: None,
            trace: self.trace(),
            key_bytes_max: self.options.limits.max_key_bytes,
        };
        let replicator = Rc::clone(&self.replicator);
        Box::pin(async move {
            replicator.send(message).await.map_err(|e| {
                ClientError::new(ErrorCode::Internal, format!("replicator unavailable: {e}"))
            })?
        })
    }

    /// Walks the `list` op from the start until the pass ends or `max`
    /// keys are gathered: the keys, and the cursor where it stopped
    /// (`None`: every key was listed).
    fn walk_keys(&self, max: usize) -> Pin<Box<dyn Future<Output = WalkResult>>> {
        let replicator = Rc::clone(&self.replicator);
        let key_bytes_max = self.options.limits.max_key_bytes;
        let first_trace = self.trace();
        Box::pin(async move {
            let mut keys = Vec::new();
            let mut cursor = None;
            let mut trace = first_trace;
            loop {
                let limit = LIST_LIMIT_MAX.min(max.saturating_sub(keys.len())).max(1);
                let page = replicator
                    .send(CoordinateList {
                        cursor: cursor.take(),
                        limit,
                        timeout_ms: None,
                        trace,
                        key_bytes_max,
                    })
                    .await
                    .map_err(|e| {
                        ClientError::new(
                            ErrorCode::Internal,
                            format!("replicator unavailable: {e}"),
                        )
                    })??;
                keys.extend(page.keys);
                match page.cursor {
                    None => return Ok((keys, None)),
                    Some(next) if keys.len() >= max => return Ok((keys, Some(next))),
                    Some(next) => cursor = Some(next),
                }
                trace = trace.wrapping_add(1);
            }
        })
    }

    /// A SET (`value`, expiring after `ttl_ms`) or DEL (`None`)
    /// superseding what the coordinating replica holds for the key.
    fn write(
        &self,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        context: Option<Vec<u8>>,
        ttl_ms: Option<u64>,
    ) -> impl Future<Output = Result<Vec<u8>, ClientError>> + 'static {
        let replicator = Rc::clone(&self.replicator);
        let message = CoordinateWrite {
            key,
            value,
            context,
            supersede_local: true,
            ttl_ms,
            w: None,
            pw: None,
            consistency: self.level(),
            dc_quorums: Vec::new(),
            timeout_ms: None,
            trace: self.trace(),
            // No RESP reply carries a context.
            with_context: false,
        };
        async move {
            replicator.send(message).await.map_err(|e| {
                ClientError::new(ErrorCode::Internal, format!("replicator unavailable: {e}"))
            })?
        }
    }

    /// `AUTH`: the client token as the password (username `default` or
    /// none). The token is never logged.
    fn authenticate(&mut self, user: Option<&[u8]>, password: &[u8]) -> Reply {
        let span = self.span.clone();
        let _span = span.enter();
        if user.is_some_and(|u| u != b"default") {
            info!("RESP AUTH with a username other than `default`; refused");
            return Reply::Error(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            );
        }
        match self.access.authenticate(&self.options.tokens, password) {
            Ok(grant) => {
                debug!(?grant, "RESP client authenticated");
                Reply::ok()
            }
            Err(refused) => {
                warn!(
                    failures = refused.failures,
                    limit = AUTH_FAILURES_MAX,
                    "RESP client sent a wrong token"
                );
                if refused.close {
                    warn!(
                        limit = AUTH_FAILURES_MAX,
                        "closing the RESP connection: too many wrong tokens (AUTH_FAILURES_MAX)"
                    );
                    self.closing = true;
                }
                Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
            }
        }
    }

    fn on_hello(
        &mut self,
        protover: Option<u8>,
        auth: Option<(Vec<u8>, Vec<u8>)>,
        setname: Option<Vec<u8>>,
        ctx: &mut Context<Self>,
    ) {
        if let Some((user, password)) = auth {
            let reply = self.authenticate(Some(&user), &password);
            if matches!(reply, Reply::Error(_)) {
                return self.answer(reply, ctx);
            }
        }
        if self
            .access
            .permit(&ClientOp::Ping, self.remote.ip())
            .is_err()
        {
            return self.answer(
                Reply::Error(
                    "NOAUTH HELLO must be called with the client already authenticated, \
                     otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                     authenticate the client and select the RESP protocol version at the \
                     same time"
                        .into(),
                ),
                ctx,
            );
        }
        match protover {
            Some(3) => self.protocol = Protocol::Resp3,
            Some(_) => self.protocol = Protocol::Resp2,
            None => {}
        }
        if let Some(name) = setname {
            self.name = name;
        }
        let proto = if self.protocol == Protocol::Resp3 {
            3
        } else {
            2
        };
        let reply = Reply::Map(vec![
            (Reply::text("server"), Reply::text("ringkv")),
            (Reply::text("version"), Reply::text(info::REDIS_VERSION)),
            (Reply::text("proto"), Reply::Int(proto)),
            (Reply::text("id"), Reply::Int(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
            (Reply::text("ringkv_node"), Reply::text(self.node.as_str())),
        ]);
        self.answer(reply, ctx);
    }

    fn on_client(&mut self, sub: ClientCommand) -> Reply {
        match sub {
            ClientCommand::SetName(name) => {
                self.name = name;
                Reply::ok()
            }
            ClientCommand::GetName if self.name.is_empty() => Reply::Nil,
            ClientCommand::GetName => Reply::Bulk(self.name.clone()),
            ClientCommand::Id => Reply::Int(self.id as i64),
            ClientCommand::SetInfo(attr, value) => match attr.as_slice() {
                b"lib-name" => {
                    self.lib_name = value;
                    Reply::ok()
                }
                b"lib-ver" => {
                    self.lib_ver = value;
                    Reply::ok()
                }
                _ => Reply::err("Unrecognized option for CLIENT SETINFO"),
            },
            ClientCommand::Info => {
                let consistency = self.consistency.as_str();
                Reply::text(info::client_line(&ClientFacts {
                    id: self.id,
                    addr: self.remote.to_string(),
                    laddr: self
                        .shared
                        .local_addr
                        .map_or_else(String::new, |a| a.to_string()),
                    name: &self.name,
                    resp: if self.protocol == Protocol::Resp3 {
                        3
                    } else {
                        2
                    },
                    lib_name: &self.lib_name,
                    lib_ver: &self.lib_ver,
                    consistency,
                    age_s: self.opened.elapsed().as_secs(),
                }))
            }
        }
    }

    fn info(&self, sections: Vec<String>) -> Pending {
        let status = self.failure_detector.send(StatusQuery);
        let sections = info::sections(&sections);
        let walk = sections
            .contains(&"keyspace")
            .then(|| self.walk_keys(scan::DBSIZE_EXACT_KEYS_MAX));
        let key_bytes_max = self.options.limits.max_key_bytes;
        let mut facts = InfoFacts {
            node: self.node.to_string(),
            tcp_port: self.shared.local_addr.map_or(0, |a| a.port()),
            uptime_s: self.shared.started.elapsed().as_secs(),
            connected_clients: self.shared.open.get(),
            n: self.options.replicas,
            ..InfoFacts::default()
        };
        Box::pin(async move {
            if let Ok(ClientReply::Status { members, extra, .. }) = status.await {
                let number = |name: &str| {
                    extra
                        .iter()
                        .find(|(k, _)| k == name)
                        .and_then(|(_, v)| v.as_u64())
                        .map_or(0, |v| v as usize)
                };
                facts.r = number("r");
                facts.w = number("w");
                facts.members = Some(members);
            }
            if let Some(walk) = walk {
                if let Ok((keys, stopped)) = walk.await {
                    facts.keys = Some(scan::dbsize_estimate(
                        keys.len(),
                        stopped.as_deref(),
                        key_bytes_max,
                    ));
                }
            }
            Reply::text(info::render(&facts, &sections))
        })
    }
}

/// The native error code a RESP error came from: the `(code)` that
/// [`client_error`] appends, else `bad_request` (a refusal of the RESP
/// layer itself).
fn error_code_of(text: &str) -> ErrorCode {
    text.strip_suffix(')')
        .and_then(|t| t.rsplit_once(" ("))
        .and_then(|(_, code)| ErrorCode::parse(code))
        .unwrap_or(ErrorCode::BadRequest)
}

/// A GET's reply: the value, nil, or (siblings, `resp_siblings = error`)
/// an error that says how to resolve them.
fn value_reply(read: Result<GetAnswer, ClientError>) -> Reply {
    match read {
        Ok((mut values, _)) => match values.len() {
            0 => Reply::Nil,
            1 => Reply::Bulk(values.remove(0)),
            n => Reply::err(format!(
                "key has {n} siblings (concurrent writes); read them with \
                 RINGKV.SIBLINGS key and write the one to keep with RINGKV.RESOLVE key \
                 value (or run the node with resp_siblings = lww)"
            )),
        },
        Err(e) => client_error(e),
    }
}

/// A ringkv error as a RESP error: the native code first, Redis style.
fn client_error(e: ClientError) -> Reply {
    let code = match e.code {
        ErrorCode::Unauthorized => "NOAUTH",
        ErrorCode::Unavailable => "CLUSTERDOWN",
        ErrorCode::Timeout => "TIMEOUT",
        ErrorCode::TooLarge => "TOOLARGE",
        _ => "ERR",
    };
    Reply::Error(format!("{code} {} ({})", e.message, e.code.as_str()))
}

impl Actor for RespSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(conn) = self.conn.take() else {
            ctx.stop();
            return;
        };
        let (read, write) = local::split(conn);
        let decoder = RespDecoder {
            limits: FrameLimits {
                frame_bytes_max: self.options.frame_bytes_max,
                args_max: self.options.args_max,
            },
            failed: false,
        };
        // The read half on the session's own task, one permit per command
        // taken before it is handed over: at most `client_inflight_max`
        // commands are read and not done (then the stream waits, and the
        // client on TCP). No message and no wake-up of another task per
        // command; the stream ends with the session.
        let frames = FramedRead::new(read, decoder);
        let input = futures_util::stream::unfold(
            (frames, self.permits.clone()),
            |(mut frames, permits)| async move {
                let item = frames.next().await?;
                // Closed: the session stopped.
                let permit = permits.acquire().await?;
                Some((Incoming(item, permit), (frames, permits)))
            },
        );
        ctx.add_stream(input);
        let (writer, replies) = reply_queue(self.options.write_queue_replies_max);
        self.writer = Some(writer);
        actix::spawn(write_replies(write, replies));
        let span = self.span.clone();
        let _span = span.enter();
        debug!("RESP client connected");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.permits.close();
        let open = &self.shared.open;
        open.set(open.get().saturating_sub(1));
        let span = self.span.clone();
        let _span = span.enter();
        debug!("RESP client disconnected");
    }
}

/// What the session reads: one input, with its permit.
struct Incoming(Result<Input, std::io::Error>, Permit);

impl StreamHandler<Incoming> for RespSession {
    fn handle(&mut self, Incoming(item, permit): Incoming, ctx: &mut Self::Context) {
        match item {
            Ok(input) => {
                self.permit = Some(permit);
                self.on_input(input, ctx);
                // A command answered at once gives its permit back here.
                self.permit = None;
            }
            Err(e) => {
                let span = self.span.clone();
                let _span = span.enter();
                debug!(error = %e, "RESP connection failed");
                ctx.stop();
            }
        }
    }

    /// The client closed its side (or the read failed): let the pending
    /// replies go out, then stop.
    fn finished(&mut self, ctx: &mut Self::Context) {
        self.closing = true;
        if self.slots.is_empty() {
            self.close(ctx);
        }
    }
}
