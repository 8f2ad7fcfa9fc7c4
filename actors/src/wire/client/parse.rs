//! Request parsing: every rejection names the field at fault; `str` is
//! accepted where `bin` is expected; unknown keys are ignored.
//!
//! A request is read as a [`ValueRef`] borrowing the frame: a field's name
//! and a string's bytes are not copied, and a key, value or context is
//! copied once, into the request (a put's parse allocates the map's entries
//! and those three).

use rmpv::{Value, ValueRef};

use super::{
    AuthToken, ClientError, ClientOp, ClientRequest, Consistency, ErrorCode, RequestLimits,
    LIST_LIMIT_MAX, REQUEST_DEPTH_MAX, TTL_MS_MAX,
};

/// Parses one request frame. On failure returns the id to answer with (0
/// when it could not be read) and the error.
pub fn parse_request(
    frame: &[u8],
    limits: &RequestLimits,
) -> Result<ClientRequest, (u64, ClientError)> {
    let mut cursor = frame;
    let value = rmpv::decode::read_value_ref_with_max_depth(&mut cursor, REQUEST_DEPTH_MAX)
        .map_err(|e| (0, bad(format!("frame is not valid MessagePack: {e}"))))?;
    if !cursor.is_empty() {
        return Err((
            0,
            bad(format!(
                "frame holds {} bytes after the first MessagePack value",
                cursor.len()
            )),
        ));
    }
    let ValueRef::Map(entries) = value else {
        return Err((0, bad("request must be a MessagePack map")));
    };
    let fields = Fields(&entries);
    let id = match fields.get("id") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| (0, bad("field `id` must be an unsigned integer")))?,
        None => return Err((0, bad("field `id` is missing"))),
    };
    let op = parse_op(&fields, limits).map_err(|e| (id, e))?;
    let consistency = consistency(&fields, &op).map_err(|e| (id, e))?;
    // Already validated by parse_op; read again to keep parse_op small.
    let timeout_ms = fields.get("timeout_ms").and_then(ValueRef::as_u64);
    Ok(ClientRequest {
        id,
        op,
        timeout_ms,
        consistency,
    })
}

/// The `consistency` key of a get, put or delete (ignored on other ops):
/// a level name, never together with the op's `r` / `w`.
fn consistency(
    fields: &RequestFields<'_, '_>,
    op: &ClientOp,
) -> Result<Option<Consistency>, ClientError> {
    let count = match op {
        ClientOp::Get { .. } => "r",
        ClientOp::Put { .. } | ClientOp::Delete { .. } => "w",
        _ => return Ok(None),
    };
    let Some(value) = fields.get("consistency") else {
        return Ok(None);
    };
    let names = || {
        Consistency::LEVELS
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let level = match value {
        ValueRef::String(s) => s.as_str().and_then(Consistency::from_name),
        _ => None,
    }
    .ok_or_else(|| bad(format!("field `consistency` must be one of {}", names())))?;
    if fields.get(count).is_some() {
        return Err(bad(format!(
            "fields `consistency` and `{count}` exclude each other: give one"
        )));
    }
    Ok(Some(level))
}

fn parse_op(
    fields: &RequestFields<'_, '_>,
    limits: &RequestLimits,
) -> Result<ClientOp, ClientError> {
    let op = match fields.get("op") {
        Some(ValueRef::String(s)) => s.as_str().unwrap_or(""),
        Some(_) => return Err(bad("field `op` must be a string")),
        None => return Err(bad("field `op` is missing")),
    };
    if let Some(t) = fields.get("timeout_ms") {
        match t.as_u64() {
            Some(ms) if ms > 0 => {}
            _ => return Err(bad("field `timeout_ms` must be an unsigned integer > 0")),
        }
    }
    Ok(match op {
        "ping" => ClientOp::Ping,
        "status" => ClientOp::Status,
        "leave" => ClientOp::Leave,
        "list" => ClientOp::List {
            cursor: match fields.get("cursor") {
                None | Some(ValueRef::Nil) => None,
                Some(ValueRef::Binary(b)) => Some(b.to_vec()),
                Some(_) => return Err(bad("field `cursor` must be bin")),
            },
            limit: match fields.get("limit") {
                None => None,
                Some(v) => match v.as_u64() {
                    Some(l) if (1..=LIST_LIMIT_MAX as u64).contains(&l) => Some(l as usize),
                    _ => {
                        return Err(bad(format!(
                            "field `limit` must be an integer in 1..={LIST_LIMIT_MAX}"
                        )))
                    }
                },
            },
        },
        "members" => ClientOp::Members,
        "ring" => ClientOp::Ring,
        "repair" => ClientOp::Repair {
            peer: match fields.get("peer") {
                None | Some(ValueRef::Nil) => None,
                Some(ValueRef::String(s)) => Some(
                    s.as_str()
                        .ok_or_else(|| bad("field `peer` must be valid UTF-8"))?
                        .to_owned(),
                ),
                Some(_) => return Err(bad("field `peer` must be a string")),
            },
            key: match fields.get("key") {
                None | Some(ValueRef::Nil) => None,
                Some(_) => Some(fields.key(limits)?),
            },
        },
        "auth" => ClientOp::Auth {
            token: AuthToken(
                fields
                    .bytes("token")?
                    .ok_or_else(|| bad("field `token` is missing"))?,
            ),
        },
        "forget" => ClientOp::Forget {
            node: match fields.get("node") {
                Some(ValueRef::String(s)) => s
                    .as_str()
                    .ok_or_else(|| bad("field `node` must be valid UTF-8"))?
                    .to_owned(),
                Some(_) => return Err(bad("field `node` must be a string")),
                None => return Err(bad("field `node` is missing")),
            },
        },
        "get" => ClientOp::Get {
            key: fields.key(limits)?,
            r: fields.quorum("r", limits)?,
            pr: fields.primaries("pr", limits)?,
        },
        "put" => ClientOp::Put {
            key: fields.key(limits)?,
            value: fields.value(limits)?,
            context: fields.context()?,
            w: fields.quorum("w", limits)?,
            pw: fields.primaries("pw", limits)?,
            ttl_ms: fields.ttl_ms()?,
        },
        "delete" => ClientOp::Delete {
            key: fields.key(limits)?,
            context: fields.context()?,
            w: fields.quorum("w", limits)?,
            pw: fields.primaries("pw", limits)?,
        },
        other => {
            return Err(ClientError::new(
                ErrorCode::UnknownOp,
                format!(
                    "unknown op {other:?}; expected ping, get, put, delete, list, status, auth, leave, forget, members, ring or repair"
                ),
            ))
        }
    })
}

fn bad(message: impl Into<String>) -> ClientError {
    ClientError::new(ErrorCode::BadRequest, message)
}

/// A map, looked up by string key (later duplicates are ignored): a
/// request's ([`ValueRef`]) or a response's ([`Value`]).
pub(super) struct Fields<'a, V>(pub(super) &'a [(V, V)]);

/// A map key that may be a string.
pub(super) trait FieldName {
    fn field_name(&self) -> Option<&str>;
}

impl FieldName for Value {
    fn field_name(&self) -> Option<&str> {
        self.as_str()
    }
}

impl FieldName for ValueRef<'_> {
    fn field_name(&self) -> Option<&str> {
        match self {
            ValueRef::String(s) => s.as_str(),
            _ => None,
        }
    }
}

impl<'a, V: FieldName> Fields<'a, V> {
    pub(super) fn get(&self, name: &str) -> Option<&'a V> {
        self.0
            .iter()
            .find(|(k, _)| k.field_name() == Some(name))
            .map(|(_, v)| v)
    }
}

/// A request's map, borrowing the frame.
type RequestFields<'a, 'f> = Fields<'a, ValueRef<'f>>;

impl<'f> RequestFields<'_, 'f> {
    /// `bin`, or `str` taken as its UTF-8 bytes.
    fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, ClientError> {
        match self.get(name) {
            None => Ok(None),
            Some(ValueRef::Binary(b)) => Ok(Some(b.to_vec())),
            Some(ValueRef::String(s)) => Ok(Some((*s).into_bytes())),
            Some(_) => Err(bad(format!("field `{name}` must be bin or str"))),
        }
    }

    fn key(&self, limits: &RequestLimits) -> Result<Vec<u8>, ClientError> {
        let key = self
            .bytes("key")?
            .ok_or_else(|| bad("field `key` is missing"))?;
        if key.is_empty() {
            return Err(bad("field `key` must not be empty"));
        }
        if key.len() > limits.max_key_bytes {
            return Err(ClientError::new(
                ErrorCode::TooLarge,
                format!(
                    "key of {} bytes is over the limit of {} bytes (max_key_bytes)",
                    key.len(),
                    limits.max_key_bytes
                ),
            ));
        }
        Ok(key)
    }

    fn value(&self, limits: &RequestLimits) -> Result<Vec<u8>, ClientError> {
        let value = self
            .bytes("value")?
            .ok_or_else(|| bad("field `value` is missing"))?;
        if value.len() > limits.max_value_bytes {
            return Err(ClientError::new(
                ErrorCode::TooLarge,
                format!(
                    "value of {} bytes is over the limit of {} bytes (max_value_bytes)",
                    value.len(),
                    limits.max_value_bytes
                ),
            ));
        }
        Ok(value)
    }

    fn context(&self) -> Result<Option<Vec<u8>>, ClientError> {
        match self.get("context") {
            None | Some(ValueRef::Nil) => Ok(None),
            Some(ValueRef::Binary(b)) => Ok(Some(b.to_vec())),
            Some(_) => Err(bad("field `context` must be bin")),
        }
    }

    /// `pr` / `pw`: replies from primaries, 0..=N.
    fn primaries(&self, name: &str, limits: &RequestLimits) -> Result<Option<usize>, ClientError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.as_u64() {
            Some(q) if q <= limits.replicas as u64 => Ok(Some(q as usize)),
            _ => Err(bad(format!(
                "field `{name}` must be an integer in 0..={} (N)",
                limits.replicas
            ))),
        }
    }

    /// `ttl_ms`: 1..=[`TTL_MS_MAX`] milliseconds.
    fn ttl_ms(&self) -> Result<Option<u64>, ClientError> {
        let Some(v) = self.get("ttl_ms") else {
            return Ok(None);
        };
        match v.as_u64() {
            Some(ttl) if (1..=TTL_MS_MAX).contains(&ttl) => Ok(Some(ttl)),
            _ => Err(bad(format!(
                "field `ttl_ms` must be an integer in 1..={TTL_MS_MAX} (milliseconds)"
            ))),
        }
    }

    fn quorum(&self, name: &str, limits: &RequestLimits) -> Result<Option<usize>, ClientError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.as_u64() {
            Some(q) if q >= 1 && q <= limits.replicas as u64 => Ok(Some(q as usize)),
            _ => Err(bad(format!(
                "field `{name}` must be an integer in 1..={} (N)",
                limits.replicas
            ))),
        }
    }
}
