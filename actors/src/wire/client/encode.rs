//! Encoding responses (the node) and requests (the client), and reading
//! responses back (the client).

use rmpv::Value;

use super::parse::Fields;
use super::{
    ClientError, ClientOp, ClientReply, ClientRequest, ErrorCode, MemberStatus, REQUEST_DEPTH_MAX,
};
use crate::wire::msgpack::{put_array_len, put_bin, put_map_len, put_str, put_uint, TRUE};

/// Bytes a response's fields take besides their values' bytes, at most:
/// the map header, `id` and `ok` with their values, the field names and
/// the headers of `values` and `context` (to size the buffer once).
const RESPONSE_OVERHEAD_BYTES_MAX: usize = 48;

/// Bytes each value of a `values` array takes besides its own, at most
/// (a `bin32` header).
const VALUE_OVERHEAD_BYTES_MAX: usize = 5;

/// Encodes a response frame body. The replies of every get and put are
/// written straight into one buffer sized up front; the rest are built as
/// a MessagePack value first. Both give the same bytes (the shortest form
/// of each value, fields in the same order; `tests.rs` compares them).
pub fn encode_response(id: u64, result: &Result<ClientReply, ClientError>) -> Vec<u8> {
    match result {
        Ok(ClientReply::Written { context }) => encode_data_reply(id, None, Some(context)),
        Ok(ClientReply::Values { values, context }) => {
            encode_data_reply(id, Some(values), context.as_deref())
        }
        _ => encode_response_as_value(id, result),
    }
}

/// `{id, ok: true, [values], [context]}`, written directly.
fn encode_data_reply(id: u64, values: Option<&[Vec<u8>]>, context: Option<&[u8]>) -> Vec<u8> {
    let values_bytes = values.map_or(0, |values| {
        values
            .iter()
            .map(|v| v.len() + VALUE_OVERHEAD_BYTES_MAX)
            .sum()
    });
    let context_bytes = context.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(RESPONSE_OVERHEAD_BYTES_MAX + values_bytes + context_bytes);
    put_map_len(
        &mut out,
        2 + usize::from(values.is_some()) + usize::from(context.is_some()),
    );
    put_str(&mut out, "id");
    put_uint(&mut out, id);
    put_str(&mut out, "ok");
    out.push(TRUE);
    if let Some(values) = values {
        put_str(&mut out, "values");
        put_array_len(&mut out, values.len());
        for value in values {
            put_bin(&mut out, value);
        }
    }
    if let Some(context) = context {
        put_str(&mut out, "context");
        put_bin(&mut out, context);
    }
    out
}

/// Encodes a response frame body as a MessagePack value first (every
/// reply but a get's and a put's).
pub(super) fn encode_response_as_value(
    id: u64,
    result: &Result<ClientReply, ClientError>,
) -> Vec<u8> {
    let mut map: Vec<(Value, Value)> = vec![(s("id"), Value::from(id))];
    match result {
        Ok(reply) => {
            map.push((s("ok"), Value::Boolean(true)));
            encode_reply(reply, &mut map);
        }
        Err(err) => {
            map.push((s("ok"), Value::Boolean(false)));
            map.push((
                s("error"),
                Value::Map(vec![
                    (s("code"), s(err.code.as_str())),
                    (s("message"), s(&err.message)),
                ]),
            ));
        }
    }
    to_bytes(&Value::Map(map))
}

fn encode_reply(reply: &ClientReply, map: &mut Vec<(Value, Value)>) {
    match reply {
        ClientReply::Pong { node } => map.push((s("node"), s(node))),
        ClientReply::Authenticated => {}
        ClientReply::Values { values, context } => {
            let values = values.iter().map(|v| Value::Binary(v.clone())).collect();
            map.push((s("values"), Value::Array(values)));
            if let Some(ctx) = context {
                map.push((s("context"), Value::Binary(ctx.clone())));
            }
        }
        ClientReply::Written { context } => {
            map.push((s("context"), Value::Binary(context.clone())));
        }
        ClientReply::Keys { keys, cursor } => {
            let keys = keys.iter().map(|k| Value::Binary(k.clone())).collect();
            map.push((s("keys"), Value::Array(keys)));
            if let Some(cursor) = cursor {
                map.push((s("cursor"), Value::Binary(cursor.clone())));
            }
        }
        ClientReply::Status {
            node,
            members,
            extra,
        } => {
            map.push((s("node"), s(node)));
            let members = members.iter().map(member_value).collect();
            map.push((s("members"), Value::Array(members)));
            for (k, v) in extra {
                map.push((s(k), v.clone()));
            }
        }
        ClientReply::Admin { fields } => {
            for (k, v) in fields {
                map.push((s(k), v.clone()));
            }
        }
    }
}

fn member_value(m: &MemberStatus) -> Value {
    Value::Map(vec![
        (s("id"), s(&m.id)),
        (s("addr"), s(&m.addr)),
        (s("client_addr"), s(&m.client_addr)),
        (s("dc"), s(&m.dc)),
        (s("rack"), s(&m.rack)),
        (s("state"), s(&m.state)),
        (s("ring_share"), Value::F64(m.ring_share)),
        (s("heartbeat_age_ms"), Value::from(m.heartbeat_age_ms)),
    ])
}

pub(super) fn s(text: &str) -> Value {
    Value::String(text.into())
}

pub(super) fn to_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

/// Encodes a request (used by the Rust client and the tests).
pub fn encode_request(request: &ClientRequest) -> Vec<u8> {
    let mut map = vec![
        (s("id"), Value::from(request.id)),
        (s("op"), s(request.op.name())),
    ];
    let bin = |b: &[u8]| Value::Binary(b.to_vec());
    match &request.op {
        ClientOp::Ping
        | ClientOp::Status
        | ClientOp::Leave
        | ClientOp::Members
        | ClientOp::Ring => {}
        ClientOp::Repair { peer, key } => {
            if let Some(peer) = peer {
                map.push((s("peer"), s(peer)));
            }
            if let Some(key) = key {
                map.push((s("key"), bin(key)));
            }
        }
        ClientOp::Forget { node } => map.push((s("node"), s(node))),
        ClientOp::List { cursor, limit } => {
            if let Some(cursor) = cursor {
                map.push((s("cursor"), bin(cursor)));
            }
            push_count(&mut map, "limit", limit);
        }
        ClientOp::Auth { token } => map.push((s("token"), bin(&token.0))),
        ClientOp::Get { key, r, pr } => {
            map.push((s("key"), bin(key)));
            push_count(&mut map, "r", r);
            push_count(&mut map, "pr", pr);
        }
        ClientOp::Put {
            key,
            value,
            context,
            w,
            pw,
            ttl_ms,
        } => {
            map.push((s("key"), bin(key)));
            map.push((s("value"), bin(value)));
            push_write_options(&mut map, context, w, pw);
            if let Some(ttl) = ttl_ms {
                map.push((s("ttl_ms"), Value::from(*ttl)));
            }
        }
        ClientOp::Delete {
            key,
            context,
            w,
            pw,
        } => {
            map.push((s("key"), bin(key)));
            push_write_options(&mut map, context, w, pw);
        }
    }
    if let Some(t) = request.timeout_ms {
        map.push((s("timeout_ms"), Value::from(t)));
    }
    if let Some(level) = request.consistency {
        map.push((s("consistency"), s(level.as_str())));
    }
    to_bytes(&Value::Map(map))
}

fn push_write_options(
    map: &mut Vec<(Value, Value)>,
    context: &Option<Vec<u8>>,
    w: &Option<usize>,
    pw: &Option<usize>,
) {
    if let Some(ctx) = context {
        map.push((s("context"), Value::Binary(ctx.clone())));
    }
    push_count(map, "w", w);
    push_count(map, "pw", pw);
}

fn push_count(map: &mut Vec<(Value, Value)>, name: &str, count: &Option<usize>) {
    if let Some(count) = count {
        map.push((s(name), Value::from(*count as u64)));
    }
}

/// A decoded response: its id and the raw map, for the client to interpret
/// according to the op it sent.
pub fn parse_response(frame: &[u8]) -> Result<(u64, Result<Value, ClientError>), String> {
    let mut cursor = frame;
    let value = rmpv::decode::read_value_with_max_depth(&mut cursor, REQUEST_DEPTH_MAX)
        .map_err(|e| format!("response is not valid MessagePack: {e}"))?;
    let Value::Map(entries) = &value else {
        return Err("response is not a map".into());
    };
    let fields = Fields(entries);
    let id = fields
        .get("id")
        .and_then(Value::as_u64)
        .ok_or("response has no `id`")?;
    match fields.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok((id, Ok(value))),
        Some(false) => {
            let err = fields.get("error").ok_or("error response has no `error`")?;
            let code = map_str(err, "code").ok_or("error has no `code`")?;
            let message = map_str(err, "message").unwrap_or_default();
            let code = ErrorCode::parse(&code).ok_or(format!("unknown error code {code:?}"))?;
            Ok((id, Err(ClientError::new(code, message))))
        }
        None => Err("response has no boolean `ok`".into()),
    }
}

/// Reads a string field of a map value.
pub fn map_str(map: &Value, name: &str) -> Option<String> {
    map_field(map, name).and_then(|v| v.as_str().map(str::to_owned))
}

/// Looks a field up in a map value.
pub fn map_field<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    match map {
        Value::Map(entries) => Fields(entries).get(name),
        _ => None,
    }
}
