//! The client protocol (PROTOCOL.md): request parsing with precise errors, and
//! response encoding. Both directions live here so the node and the Rust
//! client share one definition.
//!
//! Parsing goes through `rmpv::Value` rather than serde derive so that every
//! rejection can name the field at fault, `str` is accepted where `bin` is
//! expected, and unknown keys are ignored (forward compatibility).

use rmpv::Value;

/// Default limit on a key, from PROTOCOL.md (1 KiB).
pub const MAX_KEY_BYTES_DEFAULT: usize = 1024;
/// Default limit on a value, from PROTOCOL.md (1 MiB).
pub const MAX_VALUE_BYTES_DEFAULT: usize = 1024 * 1024;
/// Deepest MessagePack nesting a request may have; requests are flat maps, so
/// anything deeper is garbage and is refused before it costs stack.
const REQUEST_DEPTH_MAX: usize = 16;

/// The error codes of PROTOCOL.md; the wire spelling is [`ErrorCode::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// A field is missing, of the wrong type, or out of range.
    BadRequest,
    /// Key, value, frame or sibling set over its limit.
    TooLarge,
    /// `op` is not one the node knows.
    UnknownOp,
    /// Fewer live replicas than R or W needs; nothing was promised.
    Unavailable,
    /// The replicas did not answer in time; a write may or may not have happened.
    Timeout,
    /// A bug or an I/O failure on the node.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "bad_request" => ErrorCode::BadRequest,
            "too_large" => ErrorCode::TooLarge,
            "unknown_op" => ErrorCode::UnknownOp,
            "unavailable" => ErrorCode::Unavailable,
            "timeout" => ErrorCode::Timeout,
            "internal" => ErrorCode::Internal,
            _ => return None,
        })
    }
}

/// A protocol-level failure: what goes in a response's `error` map.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ClientError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// What happened, for a person.
    pub message: String,
}

impl ClientError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The limits a request is checked against while it is parsed.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Largest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Replication factor: `r` and `w` must lie in 1..=N.
    pub replicas: usize,
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// Chosen by the client, echoed in the response.
    pub id: u64,
    /// What to do.
    pub op: ClientOp,
    /// Overrides the node's `request_timeout_ms`.
    pub timeout_ms: Option<u64>,
}

/// The operations of the protocol, with their fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Liveness check.
    Ping,
    /// Read every live sibling of `key`.
    Get {
        /// The key.
        key: Vec<u8>,
        /// Replies to wait for (default from config).
        r: Option<usize>,
    },
    /// Write `value` under `key`, replacing what `context` covers.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Opaque context from an earlier get (absent: concurrent with all).
        context: Option<Vec<u8>>,
        /// Durable acknowledgements to wait for (default from config).
        w: Option<usize>,
    },
    /// Write a tombstone under `key`, replacing what `context` covers.
    Delete {
        /// The key.
        key: Vec<u8>,
        /// Opaque context from an earlier get.
        context: Option<Vec<u8>>,
        /// Durable acknowledgements to wait for.
        w: Option<usize>,
    },
    /// Membership and health.
    Status,
    /// Admin (an extension beyond PROTOCOL.md, see docs/protocol.md): the
    /// answering node hands its ranges off and leaves the cluster.
    Leave,
}

impl ClientOp {
    /// The op's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            ClientOp::Ping => "ping",
            ClientOp::Get { .. } => "get",
            ClientOp::Put { .. } => "put",
            ClientOp::Delete { .. } => "delete",
            ClientOp::Status => "status",
            ClientOp::Leave => "leave",
        }
    }
}

/// One member as `status` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberStatus {
    /// Node id.
    pub id: String,
    /// Peer (node-to-node) address.
    pub addr: String,
    /// Client address.
    pub client_addr: String,
    /// Data center.
    pub dc: String,
    /// Rack.
    pub rack: String,
    /// `alive`, `suspect`, `down` or `left`.
    pub state: String,
    /// Fraction of the ring this member owns as primary, 0.0..=1.0.
    pub ring_share: f64,
    /// How long ago this node last saw the member's heartbeat advance, in
    /// milliseconds (0 for itself).
    pub heartbeat_age_ms: u64,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientReply {
    /// `ping`: the answering node.
    Pong {
        /// The node's id.
        node: String,
    },
    /// `get`: live siblings and the context covering every version seen.
    Values {
        /// Live sibling values (empty: absent or deleted).
        values: Vec<Vec<u8>>,
        /// Absent when nothing was ever written.
        context: Option<Vec<u8>>,
    },
    /// `put` / `delete`: the context of the version just written.
    Written {
        /// The new version's causal context.
        context: Vec<u8>,
    },
    /// `status`.
    Status {
        /// The answering node.
        node: String,
        /// Every member known.
        members: Vec<MemberStatus>,
        /// Extra top-level keys (`n`, `r`, `w`, `ring_vnodes`, ...).
        extra: Vec<(String, Value)>,
    },
}

/// Parses one request frame. On failure returns the id to answer with (0
/// when it could not be read) and the error.
pub fn parse_request(
    frame: &[u8],
    limits: &RequestLimits,
) -> Result<ClientRequest, (u64, ClientError)> {
    let mut cursor = frame;
    let value = rmpv::decode::read_value_with_max_depth(&mut cursor, REQUEST_DEPTH_MAX)
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
    let Value::Map(entries) = value else {
        return Err((0, bad("request must be a MessagePack map")));
    };
    let fields = Fields(&entries);
    let id = match fields.get("id") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| (0, bad("field `id` must be an unsigned integer")))?,
        None => return Err((0, bad("field `id` is missing"))),
    };
    parse_op(&fields, limits).map_err(|e| (id, e)).map(|op| {
        // Already validated by parse_op; read again to keep parse_op small.
        let timeout_ms = fields.get("timeout_ms").and_then(Value::as_u64);
        ClientRequest { id, op, timeout_ms }
    })
}

fn parse_op(fields: &Fields<'_>, limits: &RequestLimits) -> Result<ClientOp, ClientError> {
    let op = match fields.get("op") {
        Some(Value::String(s)) => s.as_str().unwrap_or("").to_owned(),
        Some(_) => return Err(bad("field `op` must be a string")),
        None => return Err(bad("field `op` is missing")),
    };
    if let Some(t) = fields.get("timeout_ms") {
        match t.as_u64() {
            Some(ms) if ms > 0 => {}
            _ => return Err(bad("field `timeout_ms` must be an unsigned integer > 0")),
        }
    }
    Ok(match op.as_str() {
        "ping" => ClientOp::Ping,
        "status" => ClientOp::Status,
        "leave" => ClientOp::Leave,
        "get" => ClientOp::Get {
            key: fields.key(limits)?,
            r: fields.quorum("r", limits)?,
        },
        "put" => ClientOp::Put {
            key: fields.key(limits)?,
            value: fields.value(limits)?,
            context: fields.context()?,
            w: fields.quorum("w", limits)?,
        },
        "delete" => ClientOp::Delete {
            key: fields.key(limits)?,
            context: fields.context()?,
            w: fields.quorum("w", limits)?,
        },
        other => {
            return Err(ClientError::new(
                ErrorCode::UnknownOp,
                format!("unknown op {other:?}; expected ping, get, put, delete or status"),
            ))
        }
    })
}

fn bad(message: impl Into<String>) -> ClientError {
    ClientError::new(ErrorCode::BadRequest, message)
}

/// The request map, looked up by string key (later duplicates are ignored).
struct Fields<'a>(&'a [(Value, Value)]);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
    }

    /// `bin`, or `str` taken as its UTF-8 bytes.
    fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, ClientError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Binary(b)) => Ok(Some(b.clone())),
            Some(Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
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
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Binary(b)) => Ok(Some(b.clone())),
            Some(_) => Err(bad("field `context` must be bin")),
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

/// Encodes a response frame body.
pub fn encode_response(id: u64, result: &Result<ClientReply, ClientError>) -> Vec<u8> {
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

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn to_bytes(value: &Value) -> Vec<u8> {
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
        ClientOp::Ping | ClientOp::Status | ClientOp::Leave => {}
        ClientOp::Get { key, r } => {
            map.push((s("key"), bin(key)));
            if let Some(r) = r {
                map.push((s("r"), Value::from(*r as u64)));
            }
        }
        ClientOp::Put {
            key,
            value,
            context,
            w,
        } => {
            map.push((s("key"), bin(key)));
            map.push((s("value"), bin(value)));
            push_write_options(&mut map, context, w);
        }
        ClientOp::Delete { key, context, w } => {
            map.push((s("key"), bin(key)));
            push_write_options(&mut map, context, w);
        }
    }
    if let Some(t) = request.timeout_ms {
        map.push((s("timeout_ms"), Value::from(t)));
    }
    to_bytes(&Value::Map(map))
}

fn push_write_options(map: &mut Vec<(Value, Value)>, context: &Option<Vec<u8>>, w: &Option<usize>) {
    if let Some(ctx) = context {
        map.push((s("context"), Value::Binary(ctx.clone())));
    }
    if let Some(w) = w {
        map.push((s("w"), Value::from(*w as u64)));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits {
        max_key_bytes: 8,
        max_value_bytes: 16,
        replicas: 3,
    };

    fn frame(entries: Vec<(&str, Value)>) -> Vec<u8> {
        let map = entries.into_iter().map(|(k, v)| (s(k), v)).collect();
        to_bytes(&Value::Map(map))
    }

    fn code_of(result: Result<ClientRequest, (u64, ClientError)>) -> (u64, ErrorCode, String) {
        let (id, e) = result.unwrap_err();
        (id, e.code, e.message)
    }

    #[test]
    fn request_round_trip() {
        let req = ClientRequest {
            id: 7,
            op: ClientOp::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                context: Some(vec![1, 2]),
                w: Some(2),
            },
            timeout_ms: Some(50),
        };
        assert_eq!(parse_request(&encode_request(&req), &LIMITS).unwrap(), req);
    }

    #[test]
    fn str_key_accepted_and_unknown_keys_ignored() {
        let f = frame(vec![
            ("id", Value::from(1)),
            ("op", s("get")),
            ("key", s("abc")),
            ("future_field", Value::from(99)),
        ]);
        let req = parse_request(&f, &LIMITS).unwrap();
        assert_eq!(
            req.op,
            ClientOp::Get {
                key: b"abc".to_vec(),
                r: None
            }
        );
    }

    #[test]
    fn garbage_and_non_maps_are_bad_requests_with_id_zero() {
        for body in [&[][..], &[0xc1], &[0x93, 1, 2, 3], &[0x81, 0xa2]] {
            let (id, code, _) = code_of(parse_request(body, &LIMITS));
            assert_eq!((id, code), (0, ErrorCode::BadRequest), "{body:?}");
        }
    }

    #[test]
    fn each_field_error_names_the_field() {
        let cases = vec![
            (vec![("op", s("ping"))], 0, ErrorCode::BadRequest, "`id`"),
            (vec![("id", s("x"))], 0, ErrorCode::BadRequest, "`id`"),
            (
                vec![("id", Value::from(3))],
                3,
                ErrorCode::BadRequest,
                "`op`",
            ),
            (
                vec![("id", Value::from(4)), ("op", s("frobnicate"))],
                4,
                ErrorCode::UnknownOp,
                "frobnicate",
            ),
            (
                vec![("id", Value::from(5)), ("op", s("get"))],
                5,
                ErrorCode::BadRequest,
                "`key`",
            ),
            (
                vec![("id", Value::from(6)), ("op", s("get")), ("key", s(""))],
                6,
                ErrorCode::BadRequest,
                "`key`",
            ),
            (
                vec![
                    ("id", Value::from(7)),
                    ("op", s("get")),
                    ("key", s("123456789")),
                ],
                7,
                ErrorCode::TooLarge,
                "max_key_bytes",
            ),
            (
                vec![("id", Value::from(8)), ("op", s("put")), ("key", s("k"))],
                8,
                ErrorCode::BadRequest,
                "`value`",
            ),
            (
                vec![
                    ("id", Value::from(9)),
                    ("op", s("put")),
                    ("key", s("k")),
                    ("value", Value::Binary(vec![0; 17])),
                ],
                9,
                ErrorCode::TooLarge,
                "max_value_bytes",
            ),
            (
                vec![
                    ("id", Value::from(10)),
                    ("op", s("get")),
                    ("key", s("k")),
                    ("r", Value::from(4)),
                ],
                10,
                ErrorCode::BadRequest,
                "`r`",
            ),
            (
                vec![
                    ("id", Value::from(11)),
                    ("op", s("delete")),
                    ("key", s("k")),
                    ("context", s("not-bin")),
                ],
                11,
                ErrorCode::BadRequest,
                "`context`",
            ),
            (
                vec![
                    ("id", Value::from(12)),
                    ("op", s("ping")),
                    ("timeout_ms", Value::from(0)),
                ],
                12,
                ErrorCode::BadRequest,
                "`timeout_ms`",
            ),
        ];
        for (fields, id, code, needle) in cases {
            let (got_id, got_code, message) = code_of(parse_request(&frame(fields), &LIMITS));
            assert_eq!((got_id, got_code), (id, code), "{message}");
            assert!(message.contains(needle), "{message:?} should name {needle}");
        }
    }

    #[test]
    fn responses_parse_back() {
        let ok = encode_response(
            9,
            &Ok(ClientReply::Values {
                values: vec![b"a".to_vec()],
                context: Some(vec![1]),
            }),
        );
        let (id, body) = parse_response(&ok).unwrap();
        assert_eq!(id, 9);
        let body = body.unwrap();
        assert_eq!(map_field(&body, "context"), Some(&Value::Binary(vec![1])));

        let err = encode_response(3, &Err(ClientError::new(ErrorCode::Timeout, "slow")));
        let (id, body) = parse_response(&err).unwrap();
        assert_eq!(id, 3);
        assert_eq!(
            body.unwrap_err(),
            ClientError::new(ErrorCode::Timeout, "slow")
        );
    }
}
