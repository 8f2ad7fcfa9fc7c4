//! `ClientSession`: one actor per client connection.
//!
//! Frames are read as they come (pipelining); each request runs on its own
//! and its response is written when it completes, so responses may leave in
//! any order, matched by id. A frame that is not a valid request is answered
//! `bad_request` (id 0 when the id is unreadable) and the connection stays
//! usable; a length over `max_frame_bytes` is answered `too_large` and the
//! connection is closed, because the rest of the stream cannot be framed.
//!
//! Each request is checked against the connection's [`Access`] before it
//! starts; an `auth` is answered at once, in frame order, so a client may
//! pipeline its first requests right behind it.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::access::{Access, AUTH_FAILURES_MAX};
use super::ClientApiOptions;
use crate::failure_detector::FailureDetector;
use crate::net::BoxConnection;
use crate::repair::Repair;
use crate::replicator::{LocalRead, LocalReads, Replicator};
use crate::storage::Storage;
use crate::wire::client::{
    encode_response, parse_request, ClientError, ClientOp, ClientReply, ClientRequest, ErrorCode,
};
use crate::wire::writer::write_queued_frames;
use crate::wire::{FrameCodec, FrameError};
use crate::NodeId;

/// Response frames queued for the socket; see [`ClientApiOptions`]'s
/// `client_write_queue_frames_max`.
type Writer = mpsc::Sender<Bytes>;

mod dispatch;

/// The session actor.
pub struct ClientSession {
    conn: Option<BoxConnection>,
    /// Where the client connects from (admin ops from afar need the admin
    /// token).
    remote: SocketAddr,
    /// What this connection may do (its `auth` so far).
    access: Access,
    node: NodeId,
    options: ClientApiOptions,
    replicator: Addr<Replicator>,
    /// Gets answered without asking the replicator (a key only this node
    /// holds, at R = 1, in memory: `replicator::LocalReads`).
    local_reads: Rc<LocalReads>,
    failure_detector: Addr<FailureDetector>,
    storage: Addr<Storage>,
    repair: Addr<Repair>,
    next_trace: Rc<Cell<u64>>,
    open: Rc<Cell<usize>>,
    writer: Option<Writer>,
    in_flight: usize,
    /// The client closed its side; stop once the last answer is written.
    client_done: bool,
    span: tracing::Span,
}

impl ClientSession {
    /// A session over an accepted connection.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conn: BoxConnection,
        remote: SocketAddr,
        node: NodeId,
        options: ClientApiOptions,
        replicator: Addr<Replicator>,
        local_reads: Rc<LocalReads>,
        failure_detector: Addr<FailureDetector>,
        storage: Addr<Storage>,
        repair: Addr<Repair>,
        next_trace: Rc<Cell<u64>>,
        open: Rc<Cell<usize>>,
    ) -> Self {
        let span = tracing::info_span!("client_session", node = %node, actor = "client_session", client = %remote);
        Self {
            conn: Some(conn),
            remote,
            access: Access::new(&options.tokens),
            node,
            options,
            replicator,
            local_reads,
            failure_detector,
            storage,
            repair,
            next_trace,
            open,
            writer: None,
            in_flight: 0,
            client_done: false,
            span,
        }
    }

    /// Stops the session: the writer task sends what is queued, then
    /// closes the socket.
    fn close(&mut self, ctx: &mut Context<Self>) {
        self.writer = None;
        ctx.stop();
    }

    /// Queues a response. A client that does not read its responses fills
    /// the queue; it is disconnected rather than allowed to grow the node's
    /// memory without bound.
    fn respond(
        &mut self,
        id: u64,
        result: &Result<ClientReply, ClientError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(w) = self.writer.as_ref() else {
            return;
        };
        let mut frame = encode_response(id, result);
        if frame.len() > self.options.max_frame_bytes {
            // Never a silent drop (the client would wait forever): the
            // answer it cannot get is replaced by one that says why.
            let error = ClientError::new(
                ErrorCode::TooLarge,
                format!(
                    "the response of {} bytes is over the limit of {} bytes (max_frame_bytes); \
                     for a key with large siblings, write it back with its context to resolve them",
                    frame.len(),
                    self.options.max_frame_bytes
                ),
            );
            let _span = self.span.enter();
            warn!(
                id,
                bytes = frame.len(),
                "response too large for a frame; answering too_large"
            );
            frame = encode_response(id, &Err(error));
        }
        if w.try_send(Bytes::from(frame)).is_err() {
            let span = self.span.clone();
            let _span = span.enter();
            warn!(
                limit = self.options.client_write_queue_frames_max,
                "client does not read its responses (client_write_queue_frames_max reached); disconnecting"
            );
            self.close(ctx);
        }
    }

    /// Counts one answered request (`ringkv_requests_total`,
    /// `ringkv_request_duration_seconds`).
    fn count(&self, op: &str, error: Option<ErrorCode>, started: Instant) {
        self.options
            .metrics
            .request(op, error, started.elapsed().as_secs_f64());
    }

    fn on_frame(&mut self, frame: Bytes, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let request = match parse_request(&frame, &self.options.limits) {
            Ok(r) => r,
            Err((id, error)) => {
                let span = self.span.clone();
                let _span = span.enter();
                info!(id, code = error.code.as_str(), message = %error.message, "request failed");
                self.count("invalid", Some(error.code), started);
                return self.respond(id, &Err(error), ctx);
            }
        };
        if let ClientOp::Auth { token } = &request.op {
            return self.on_auth(request.id, &token.0, started, ctx);
        }
        if let Err(error) = self.access.permit(&request.op, self.remote.ip()) {
            let span = self.span.clone();
            let _span = span.enter();
            info!(id = request.id, op = request.op.name(), grant = ?self.access.grant(),
                message = %error.message, "request refused: unauthorized");
            self.count(request.op.name(), Some(error.code), started);
            return self.respond(request.id, &Err(error), ctx);
        }
        if self.in_flight >= self.options.client_inflight_max {
            let error = ClientError::new(
                ErrorCode::Unavailable,
                format!(
                    "{} requests in flight on this connection (client_inflight_max); not started",
                    self.in_flight
                ),
            );
            self.count(request.op.name(), Some(error.code), started);
            return self.respond(request.id, &Err(error), ctx);
        }
        let trace = self.next_trace.get();
        self.next_trace.set(trace.wrapping_add(1));
        let (id, op_name) = (request.id, request.op.name());
        if let Some(result) = self.get_in_place(&request, trace) {
            return self.finish(id, op_name, trace, started, result, ctx);
        }
        self.in_flight += 1;
        let fut = self.dispatch(request, trace);
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.in_flight -= 1;
            act.finish(id, op_name, trace, started, result, ctx);
        }));
    }

    /// A `get` of a key only this node holds, at R = 1, with its copy in
    /// memory, answered now (`replicator::LocalReads`: what the replicator
    /// would answer); `None`: dispatched as any request. Requests on a
    /// connection may be answered in any order (the protocol's), so an
    /// earlier one still running does not hold it.
    fn get_in_place(
        &self,
        request: &ClientRequest,
        trace: u64,
    ) -> Option<Result<ClientReply, ClientError>> {
        let ClientOp::Get { key, r, pr } = &request.op else {
            return None;
        };
        let answer = self.local_reads.answer(&LocalRead {
            key,
            r: *r,
            pr: *pr,
            consistency: request.consistency,
            last_writer_wins: false,
            with_context: true,
            trace,
        })?;
        Some(answer.map(|(values, context)| ClientReply::Values { values, context }))
    }

    /// Counts, logs and answers a request that finished.
    fn finish(
        &mut self,
        id: u64,
        op_name: &'static str,
        trace: u64,
        started: Instant,
        result: Result<ClientReply, ClientError>,
        ctx: &mut Context<Self>,
    ) {
        self.count(op_name, result.as_ref().err().map(|e| e.code), started);
        let span = self.span.clone();
        let _span = span.enter();
        match &result {
            Ok(_) => debug!(req = %format_args!("{trace:x}"), op = op_name, "request done"),
            Err(e) => info!(
                req = %format_args!("{trace:x}"), op = op_name, code = e.code.as_str(),
                message = %e.message, "request failed"
            ),
        }
        self.respond(id, &result, ctx);
        if self.client_done && self.in_flight == 0 {
            self.close(ctx);
        }
    }

    /// An `auth`: answered at once. The token itself is never logged.
    fn on_auth(&mut self, id: u64, token: &[u8], started: Instant, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _span = span.enter();
        let outcome = self.access.authenticate(&self.options.tokens, token);
        self.count(
            "auth",
            outcome.as_ref().err().map(|_| ErrorCode::Unauthorized),
            started,
        );
        match outcome {
            Ok(grant) => {
                debug!(?grant, "client authenticated");
                self.respond(id, &Ok(ClientReply::Authenticated), ctx);
            }
            Err(refused) => {
                warn!(
                    failures = refused.failures,
                    limit = AUTH_FAILURES_MAX,
                    "client sent a wrong token"
                );
                self.respond(id, &Err(refused.to_client()), ctx);
                if refused.close {
                    warn!(
                        limit = AUTH_FAILURES_MAX,
                        "closing the client connection: too many wrong tokens (AUTH_FAILURES_MAX)"
                    );
                    self.close(ctx);
                }
            }
        }
    }
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(conn) = self.conn.take() else {
            ctx.stop();
            return;
        };
        let (read, write) = tokio::io::split(conn);
        let codec = FrameCodec::new(self.options.max_frame_bytes);
        ctx.add_stream(FramedRead::new(read, codec.clone()));
        let (writer, frames) =
            mpsc::channel::<Bytes>(self.options.client_write_queue_frames_max.max(1));
        self.writer = Some(writer);
        // The socket's write half lives in its own task: it drains the queue
        // and closes the socket once the session drops its sender.
        actix::spawn(write_queued_frames(write, codec, frames, |_| {}));
        let span = self.span.clone();
        let _span = span.enter();
        debug!("client connected");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.open.set(self.open.get().saturating_sub(1));
        let span = self.span.clone();
        let _span = span.enter();
        debug!("client disconnected");
    }
}

impl StreamHandler<Result<Bytes, FrameError>> for ClientSession {
    fn handle(&mut self, item: Result<Bytes, FrameError>, ctx: &mut Self::Context) {
        match item {
            Ok(frame) => self.on_frame(frame, ctx),
            Err(FrameError::TooLarge { len, limit }) => {
                let span = self.span.clone();
                let _span = span.enter();
                info!(
                    len,
                    limit, "frame over max_frame_bytes; answering too_large and closing"
                );
                let error = ClientError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "frame of {len} bytes is over the limit of {limit} bytes (max_frame_bytes)"
                    ),
                );
                self.respond(0, &Err(error), ctx);
                self.close(ctx);
            }
            Err(FrameError::Io(e)) => {
                let span = self.span.clone();
                let _span = span.enter();
                debug!(error = %e, "client connection failed");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The client closed its side: let in-flight answers go out, then stop.
        self.client_done = true;
        if self.in_flight == 0 {
            self.close(ctx);
        }
    }
}
