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
//!
//! The key-space commands are in `keyspace`; AUTH, HELLO, CLIENT and
//! INFO in `connection`.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::command::{self, Command, Consistency};
use super::frame::{FrameLimits, Protocol, Reply};
use super::io::{write_replies, Input, RespDecoder};
use super::local::{self, reply_queue, Replies};
use super::permits::{Permit, Permits};
use super::{RespOptions, Shared};
use crate::client_api::access::Access;
use crate::failure_detector::FailureDetector;
use crate::net::BoxConnection;
use crate::replicator::Replicator;
use crate::wire::client::{ClientOp, ErrorCode};
use crate::NodeId;

mod connection;
mod keyspace;
mod order;

use order::{KeyOrder, KeyTails};

/// A reply still being computed.
type Pending = Pin<Box<dyn Future<Output = Reply>>>;

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
    /// The running commands by key (`order.rs`).
    key_tails: KeyTails,
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
            key_tails: KeyTails::default(),
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
        // SET's answer, the most common one, without an allocation.
        if matches!(&reply, Reply::Simple(s) if s == "OK") {
            return Bytes::from_static(b"+OK\r\n");
        }
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
            Input::Command(mut args) => self.on_command(&mut args, ctx),
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

    fn on_command(&mut self, args: &mut [Vec<u8>], ctx: &mut Context<Self>) {
        self.dispatch_command(args, ctx);
        // A command answered without `run` (refused, or about the
        // connection) is not counted.
        self.counting = None;
    }

    fn dispatch_command(&mut self, args: &mut [Vec<u8>], ctx: &mut Context<Self>) {
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
                self.run(KeyOrder::None, fut, ctx);
            }
            Command::Get(key) => self.get(key, ctx),
            Command::MGet(keys) => self.mget(keys, ctx),
            Command::Exists(keys) => self.exists(keys, ctx),
            Command::Siblings(key) => self.siblings(key, ctx),
            Command::Set(key, value, ttl_ms) => self.set(key, value, ttl_ms, ctx),
            Command::Scan {
                cursor,
                pattern,
                count,
                strings,
            } => self.scan(cursor, pattern, count, strings, ctx),
            Command::Keys(pattern) => self.keys(pattern, ctx),
            Command::DbSize => self.dbsize(ctx),
            Command::MSet(pairs) => self.mset(pairs, ctx),
            Command::Del(keys) => self.del(keys, ctx),
            Command::Resolve(key, value) => self.resolve(key, value, ctx),
        }
    }

    /// Runs a command that needs the cluster on `keys`; its reply takes the
    /// next slot. It starts once every earlier command of this connection
    /// on one of its keys is done, so a GET pipelined behind a SET of the
    /// same key sees it (commands on other keys run side by side). It
    /// holds its in-flight permit until it is done.
    fn run(&mut self, keys: KeyOrder, work: Pending, ctx: &mut Context<Self>) {
        let seq = self.reserve();
        let protocol = self.protocol;
        let permit = self.permit.take();
        let counting = self.counting.take();
        // The last earlier command on each key that is still running.
        let before = self.key_tails.enter(&keys, seq);
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
            act.key_tails.leave(&keys, seq);
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
}

/// The native error code a RESP error came from: the `(code)` that
/// [`keyspace::client_error`] appends, else `bad_request` (a refusal of the RESP
/// layer itself).
fn error_code_of(text: &str) -> ErrorCode {
    text.strip_suffix(')')
        .and_then(|t| t.rsplit_once(" ("))
        .and_then(|(_, code)| ErrorCode::parse(code))
        .unwrap_or(ErrorCode::BadRequest)
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
