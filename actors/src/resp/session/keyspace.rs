//! The key-space commands of a RESP session (GET, SET, MGET, MSET, DEL,
//! EXISTS, SCAN, KEYS, DBSIZE, RINGKV.SIBLINGS, RINGKV.RESOLVE): each is
//! turned into replicator requests and run with `RespSession::run`, which
//! orders it after earlier commands on its keys.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use actix::prelude::*;
use futures_util::future::join_all;

use super::{KeyOrder, Pending, RespSession};
use crate::replicator::{
    CoordinateGet, CoordinateList, CoordinateWrite, GetAnswer, ListPage, LocalRead,
};
use crate::resp::frame::Reply;
use crate::resp::scan;
use crate::resp::SiblingsMode;
use crate::wire::client::LIST_LIMIT_MAX;
use crate::wire::client::{ClientError, ErrorCode};

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
pub(super) type WalkResult = Result<(Vec<Vec<u8>>, Option<Vec<u8>>), ClientError>;

impl RespSession {
    /// GET: answered in place when it can be (`get_in_place`), else
    /// through the replicator.
    pub(super) fn get(&mut self, key: Vec<u8>, ctx: &mut Context<Self>) {
        if let Some(reply) = self.get_in_place(&key) {
            let counting = self.counting.take();
            self.count(counting, &reply);
            return self.answer(reply, ctx);
        }
        let order = KeyOrder::of(&key);
        let fut = self.get_one(key);
        self.run(order, fut, ctx);
    }

    /// MGET: every key answered in place, or the whole MGET sent on (its
    /// replies stay in one array, in order).
    pub(super) fn mget(&mut self, keys: Vec<Vec<u8>>, ctx: &mut Context<Self>) {
        let in_place: Option<Vec<Reply>> = keys.iter().map(|k| self.get_in_place(k)).collect();
        if let Some(values) = in_place {
            let reply = Reply::Array(values);
            let counting = self.counting.take();
            self.count(counting, &reply);
            return self.answer(reply, ctx);
        }
        let order = KeyOrder::of_all(&keys);
        let gets: Vec<Pending> = keys.into_iter().map(|k| self.get_one(k)).collect();
        self.run(
            order,
            Box::pin(async move { Reply::Array(join_all(gets).await) }),
            ctx,
        );
    }

    /// EXISTS: how many of `keys` (counted with repeats) hold a value.
    pub(super) fn exists(&mut self, keys: Vec<Vec<u8>>, ctx: &mut Context<Self>) {
        let order = KeyOrder::of_all(&keys);
        let reads: Vec<_> = keys
            .into_iter()
            .map(|k| self.read(k, ReadFor::Value))
            .collect();
        self.run(
            order,
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

    /// RINGKV.SIBLINGS: every live value of `key`.
    pub(super) fn siblings(&mut self, key: Vec<u8>, ctx: &mut Context<Self>) {
        let order = KeyOrder::of(&key);
        let read = self.read(key, ReadFor::Siblings);
        self.run(
            order,
            Box::pin(async move {
                match read.await {
                    Ok((values, _)) => Reply::Array(values.into_iter().map(Reply::Bulk).collect()),
                    Err(e) => client_error(e),
                }
            }),
            ctx,
        );
    }

    /// SET, expiring after `ttl_ms` if given.
    pub(super) fn set(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let order = KeyOrder::of(&key);
        let write = self.write(key, Some(value), None, ttl_ms);
        self.run(
            order,
            Box::pin(async move {
                match write.await {
                    Ok(_) => Reply::ok(),
                    Err(e) => client_error(e),
                }
            }),
            ctx,
        );
    }

    /// SCAN: one page of the `list` op, filtered by `pattern`.
    pub(super) fn scan(
        &mut self,
        cursor: Option<Vec<u8>>,
        pattern: Option<Vec<u8>>,
        count: usize,
        strings: bool,
        ctx: &mut Context<Self>,
    ) {
        let page = self.list_page(cursor, count);
        self.run(
            KeyOrder::None,
            Box::pin(async move {
                match page.await {
                    Ok(page) => {
                        let keys = page
                            .keys
                            .into_iter()
                            .filter(|_| strings)
                            .filter(|k| pattern.as_ref().is_none_or(|p| scan::glob_match(p, k)))
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

    /// KEYS: every key matching `pattern`, up to `RESP_KEYS_MAX`.
    pub(super) fn keys(&mut self, pattern: Vec<u8>, ctx: &mut Context<Self>) {
        let walk = self.walk_keys(scan::RESP_KEYS_MAX);
        self.run(
            KeyOrder::None,
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

    /// DBSIZE: exact up to `DBSIZE_EXACT_KEYS_MAX` keys, estimated past it.
    pub(super) fn dbsize(&mut self, ctx: &mut Context<Self>) {
        let walk = self.walk_keys(scan::DBSIZE_EXACT_KEYS_MAX);
        let key_bytes_max = self.options.limits.max_key_bytes;
        self.run(
            KeyOrder::None,
            Box::pin(async move {
                match walk.await {
                    Ok((keys, stopped)) => {
                        let estimate =
                            scan::dbsize_estimate(keys.len(), stopped.as_deref(), key_bytes_max);
                        Reply::Int(i64::try_from(estimate).unwrap_or(i64::MAX))
                    }
                    Err(e) => client_error(e),
                }
            }),
            ctx,
        );
    }

    /// MSET: one write per key, side by side (not atomic).
    pub(super) fn mset(&mut self, pairs: Vec<(Vec<u8>, Vec<u8>)>, ctx: &mut Context<Self>) {
        let order = KeyOrder::of_all(pairs.iter().map(|(k, _)| k));
        let writes: Vec<_> = pairs
            .into_iter()
            .map(|(k, v)| self.write(k, Some(v), None, None))
            .collect();
        self.run(
            order,
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

    /// DEL: a tombstone per key; answers how many keys were named.
    pub(super) fn del(&mut self, keys: Vec<Vec<u8>>, ctx: &mut Context<Self>) {
        let count = keys.len() as i64;
        let order = KeyOrder::of_all(&keys);
        let writes: Vec<_> = keys
            .into_iter()
            .map(|k| self.write(k, None, None, None))
            .collect();
        self.run(
            order,
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

    /// RINGKV.RESOLVE: `value` written with the context of every sibling
    /// read, replacing them all.
    pub(super) fn resolve(&mut self, key: Vec<u8>, value: Vec<u8>, ctx: &mut Context<Self>) {
        let read = self.read(key.clone(), ReadFor::Resolve);
        let (replicator, write_for) = (Rc::clone(&self.replicator), self.level());
        let trace = self.trace();
        self.run(
            KeyOrder::of(&key),
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
        if self.key_tails.running(key) {
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
    pub(super) fn walk_keys(&self, max: usize) -> Pin<Box<dyn Future<Output = WalkResult>>> {
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
pub(super) fn client_error(e: ClientError) -> Reply {
    let code = match e.code {
        ErrorCode::Unauthorized => "NOAUTH",
        ErrorCode::Unavailable => "CLUSTERDOWN",
        ErrorCode::Timeout => "TIMEOUT",
        ErrorCode::TooLarge => "TOOLARGE",
        _ => "ERR",
    };
    Reply::Error(format!("{code} {} ({})", e.message, e.code.as_str()))
}
