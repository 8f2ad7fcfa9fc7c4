//! RESP framing: splitting the byte stream into commands and encoding the
//! replies, RESP2 or RESP3 (the connection's `HELLO`). The frames are
//! decoded and encoded by the `redis-protocol` crate; this module bounds
//! them before the crate sees them and turns them into argument lists and
//! back. An array of bulk strings, every client's command, is read straight
//! from the bytes [`delimit`] has checked (a test holds it to the crate's
//! decoding); any other array goes to the crate.
//!
//! What the stream may hold, as Redis takes it:
//! - an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`): a
//!   command, what every client library and redis-cli send;
//! - an inline command: a line of words separated by spaces (`PING\r\n`;
//!   redis-benchmark's `PING_INLINE`, telnet), no quoting;
//! - anything else that frames (an integer, a bulk string, an array holding
//!   an integer) is not a command: it is answered with a protocol error and
//!   the connection goes on after it.
//!
//! Frames that cannot be delimited (a bad length, a nested array, a type
//! byte RESP2 does not know, over the size limits) are answered with a
//! protocol error and the connection is closed, as Redis does: the rest of
//! the stream cannot be trusted to start at a frame boundary.
//!
//! Before the crate parses an array, [`delimit`] walks its header lines:
//! the crate's parser recurses into nested arrays (a few bytes per level
//! would exhaust the stack) and would wait for any announced length, so
//! nesting, the argument count and every length are bounded first.

use std::borrow::Cow;

use redis_protocol::resp2::decode::decode as decode_resp2;
use redis_protocol::resp2::encode::encode as encode_resp2;
use redis_protocol::resp2::types::{OwnedFrame as Frame2, Resp2Frame};
use redis_protocol::resp3::encode::complete::encode as encode_resp3;
use redis_protocol::resp3::types::{FrameMap, OwnedFrame as Frame3, Resp3Frame};

/// Longest inline command line (without its `\r\n`), in bytes (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
pub const RESP_INLINE_BYTES_MAX: usize = 64 * 1024;
/// Most arguments in one command (the name included).
pub const RESP_ARGS_MAX: usize = 4096;
/// Longest header line (`*<count>` or `$<length>`), in bytes.
const HEADER_LINE_BYTES_MAX: usize = 32;

/// The bounds of one connection's frames.
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    /// Largest command frame (every argument with its framing), in bytes.
    pub frame_bytes_max: usize,
    /// Most arguments in one command.
    pub args_max: usize,
}

/// What the front of a read buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    /// Not a whole frame yet: read more.
    Incomplete,
    /// A command (its arguments, the name first) and the bytes it took.
    Command(Vec<Vec<u8>>, usize),
    /// An empty inline line, or a null array: nothing to answer (Redis
    /// skips them too).
    Nothing(usize),
    /// A frame that is not a command: answer the error, skip the bytes,
    /// go on.
    NotACommand(String, usize),
    /// The stream cannot be framed from here: answer the error and close.
    Fatal(String),
}

/// Takes the first frame off `buf` (nothing is removed; the caller drops
/// the bytes the answer names).
pub fn next_frame(buf: &[u8], limits: &FrameLimits) -> Framed {
    let Some(&first) = buf.first() else {
        return Framed::Incomplete;
    };
    match first {
        b'*' => match delimit(buf, limits) {
            Ok(None) => Framed::Incomplete,
            Ok(Some(len)) => decode_array(&buf[..len], len),
            Err(e) => Framed::Fatal(e),
        },
        // A RESP2 frame that is not an array: it frames, but is no command.
        b'$' | b':' | b'+' | b'-' => match delimit_single(buf, 0, limits) {
            Ok(None) => Framed::Incomplete,
            Ok(Some(len)) => Framed::NotACommand(
                "Protocol error: expected an array of bulk strings (a command)".into(),
                len,
            ),
            Err(e) => Framed::Fatal(e),
        },
        _ => inline(buf),
    }
}

/// An inline command: one line, split on spaces and tabs.
fn inline(buf: &[u8]) -> Framed {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > RESP_INLINE_BYTES_MAX {
            return Framed::Fatal(format!(
                "Protocol error: inline command over {RESP_INLINE_BYTES_MAX} bytes \
                 (RESP_INLINE_BYTES_MAX)"
            ));
        }
        return Framed::Incomplete;
    };
    if end > RESP_INLINE_BYTES_MAX {
        return Framed::Fatal(format!(
            "Protocol error: inline command over {RESP_INLINE_BYTES_MAX} bytes \
             (RESP_INLINE_BYTES_MAX)"
        ));
    }
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let args: Vec<Vec<u8>> = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|word| !word.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if args.is_empty() {
        Framed::Nothing(end + 1)
    } else {
        Framed::Command(args, end + 1)
    }
}

/// The delimited array's arguments: read straight from the bytes when
/// every element is a bulk string (what clients send), else decoded by the
/// crate; its elements must be bulk strings.
fn decode_array(frame: &[u8], len: usize) -> Framed {
    if let Some(args) = bulk_strings(frame) {
        return if args.is_empty() {
            Framed::Nothing(len)
        } else {
            Framed::Command(args, len)
        };
    }
    decode_array_by_crate(frame, len)
}

/// The elements of an array [`delimit`] has checked, when all of them are
/// bulk strings that are not null; `None` for any other shape.
fn bulk_strings(frame: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (count, mut at) = header(frame, 0).ok()??;
    let mut args = Vec::with_capacity(usize::try_from(count).ok()?);
    for _ in 0..count {
        if frame.get(at) != Some(&b'$') {
            return None;
        }
        let (len, body) = header(frame, at).ok()??;
        let end = body.checked_add(usize::try_from(len).ok()?)?;
        args.push(frame.get(body..end)?.to_vec());
        at = end + 2;
    }
    (at == frame.len()).then_some(args)
}

/// The crate decodes the delimited array.
fn decode_array_by_crate(frame: &[u8], len: usize) -> Framed {
    match decode_resp2(frame) {
        Ok(Some((Frame2::Array(items), used))) if used == len => {
            let mut args = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Frame2::BulkString(bytes) => args.push(bytes),
                    _ => {
                        return Framed::NotACommand(
                            "Protocol error: a command is an array of bulk strings".into(),
                            len,
                        )
                    }
                }
            }
            if args.is_empty() {
                Framed::Nothing(len)
            } else {
                Framed::Command(args, len)
            }
        }
        Ok(Some((Frame2::Null, used))) if used == len => Framed::Nothing(len),
        Ok(_) => Framed::Fatal("Protocol error: the array does not frame as announced".into()),
        Err(e) => Framed::Fatal(format!("Protocol error: {}", e.details())),
    }
}

/// The length of the array at the front of `buf` once it is all there
/// (`None`: not yet), checking its shape on the way: a count within
/// `args_max`, elements that are not aggregates, lengths within
/// `frame_bytes_max`.
pub fn delimit(buf: &[u8], limits: &FrameLimits) -> Result<Option<usize>, String> {
    let Some((count, mut at)) = header(buf, 0)? else {
        return Ok(None);
    };
    if count < 0 {
        // A null array (`*-1`).
        return Ok(Some(at));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > limits.args_max {
        return Err(format!(
            "Protocol error: {count} arguments in one command, over {} (RESP_ARGS_MAX)",
            limits.args_max
        ));
    }
    for _ in 0..count {
        match delimit_single(buf, at, limits)? {
            Some(next) => at = next,
            None => return Ok(None),
        }
        if at > limits.frame_bytes_max {
            return Err(too_large(limits));
        }
    }
    Ok(Some(at))
}

/// The end of the non-aggregate RESP2 frame at `at` (`None`: not all
/// there yet).
fn delimit_single(buf: &[u8], at: usize, limits: &FrameLimits) -> Result<Option<usize>, String> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    match kind {
        b'$' => {
            let Some((len, body)) = header(buf, at)? else {
                return Ok(None);
            };
            if len < 0 {
                return Ok(Some(body));
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > limits.frame_bytes_max {
                return Err(too_large(limits));
            }
            let end = body + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            // The crate takes any two bytes as the terminator.
            if &buf[end - 2..end] != b"\r\n" {
                return Err("Protocol error: a bulk string does not end with CRLF".into());
            }
            Ok(Some(end))
        }
        b':' | b'+' | b'-' => match line_end(buf, at, limits.frame_bytes_max)? {
            Some(end) => Ok(Some(end)),
            None => Ok(None),
        },
        b'*' => Err("Protocol error: nested arrays are not commands".into()),
        other => Err(format!(
            "Protocol error: expected '$', got '{}'",
            char::from(other).escape_default()
        )),
    }
}

/// A `*<n>` or `$<n>` line at `at`: the number and where the line ends.
fn header(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, String> {
    let Some(end) = line_end(buf, at, HEADER_LINE_BYTES_MAX)? else {
        return Ok(None);
    };
    let digits = &buf[at + 1..end - 2];
    let value = plain_length(digits)
        .or_else(|| {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
        })
        .filter(|n| *n >= -1)
        .ok_or_else(|| {
            format!(
                "Protocol error: invalid {} length",
                if buf[at] == b'*' { "multibulk" } else { "bulk" }
            )
        })?;
    Ok(Some((value, end)))
}

/// Up to 18 decimal digits, nothing else (every length a client sends):
/// their value, read without `str::parse`; `None` sends anything else
/// (signs, longer numbers, junk) to the parse, which decides as before.
fn plain_length(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0i64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

/// The end (past `\r\n`) of the line starting at `at`, within `max` bytes.
fn line_end(buf: &[u8], at: usize, max: usize) -> Result<Option<usize>, String> {
    let rest = &buf[at..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(pos) if pos <= max => Ok(Some(at + pos + 2)),
        Some(_) => Err("Protocol error: header line too long".into()),
        None if rest.len() > max + 1 => Err("Protocol error: header line too long".into()),
        None => Ok(None),
    }
}

fn too_large(limits: &FrameLimits) -> String {
    format!(
        "Protocol error: command over {} bytes (max_frame_bytes)",
        limits.frame_bytes_max
    )
}

/// The protocol a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2 (the default).
    Resp2,
    /// RESP3.
    Resp3,
}

/// A reply, before it is encoded for the connection's protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A simple string (`+OK`): one line, no CR or LF. Borrowed for the
    /// constant ones, so `+OK` allocates nothing.
    Simple(Cow<'static, str>),
    /// An error (`-ERR ...`): the text starts with its code.
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// Nil (RESP2: the null bulk string).
    Nil,
    /// An array.
    Array(Vec<Reply>),
    /// A map (RESP2: a flat array of keys and values).
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    /// An error with the generic `ERR` code.
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// A bulk string from text.
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(s.into().into_bytes())
    }

    fn resp2(self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(s.into_owned().into_bytes()),
            Reply::Error(e) => Frame2::Error(one_line(e)),
            Reply::Int(i) => Frame2::Integer(i),
            Reply::Bulk(b) => Frame2::BulkString(b),
            Reply::Nil => Frame2::Null,
            Reply::Array(items) => Frame2::Array(items.into_iter().map(Reply::resp2).collect()),
            Reply::Map(pairs) => Frame2::Array(
                pairs
                    .into_iter()
                    .flat_map(|(k, v)| [k.resp2(), v.resp2()])
                    .collect(),
            ),
        }
    }

    fn resp3(self) -> Frame3 {
        match self {
            Reply::Simple(s) => Frame3::SimpleString {
                data: s.into_owned().into_bytes(),
                attributes: None,
            },
            Reply::Error(e) => Frame3::SimpleError {
                data: one_line(e),
                attributes: None,
            },
            Reply::Int(i) => Frame3::Number {
                data: i,
                attributes: None,
            },
            Reply::Bulk(b) => Frame3::BlobString {
                data: b,
                attributes: None,
            },
            Reply::Nil => Frame3::Null,
            Reply::Array(items) => Frame3::Array {
                data: items.into_iter().map(Reply::resp3).collect(),
                attributes: None,
            },
            Reply::Map(pairs) => {
                let mut data = FrameMap::default();
                for (k, v) in pairs {
                    data.insert(k.resp3(), v.resp3());
                }
                Frame3::Map {
                    data,
                    attributes: None,
                }
            }
        }
    }

    /// The reply's bytes in `protocol`.
    pub fn encode(self, protocol: Protocol) -> Result<Vec<u8>, String> {
        // The replies of GET, SET and the counters, written here: the
        // crate sizes a frame first, with a floating-point log10 per
        // length, and wants an owned frame tree (about 1.8% of a GET's
        // CPU). The same bytes in both protocols but for nil.
        match (self, protocol) {
            (Reply::Bulk(bytes), _) => Ok(bulk_string(&bytes)),
            (Reply::Simple(s), _) if !s.contains(['\r', '\n']) => {
                let mut out = Vec::with_capacity(s.len() + 3);
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
                Ok(out)
            }
            (Reply::Nil, Protocol::Resp2) => Ok(b"$-1\r\n".to_vec()),
            (Reply::Nil, Protocol::Resp3) => Ok(b"_\r\n".to_vec()),
            (Reply::Int(n), _) => {
                let mut out = Vec::with_capacity(24);
                out.push(b':');
                if n < 0 {
                    out.push(b'-');
                }
                put_decimal(&mut out, n.unsigned_abs());
                out.extend_from_slice(b"\r\n");
                Ok(out)
            }
            (reply, protocol) => reply.encode_frame(protocol),
        }
    }

    /// Encodes through redis-protocol's frame types (every kind of reply).
    fn encode_frame(self, protocol: Protocol) -> Result<Vec<u8>, String> {
        match protocol {
            Protocol::Resp2 => {
                let frame = self.resp2();
                let mut buf = vec![0; Resp2Frame::encode_len(&frame, false)];
                encode_resp2(&mut buf, &frame, false).map_err(|e| e.details().to_owned())?;
                Ok(buf)
            }
            Protocol::Resp3 => {
                let frame = self.resp3();
                let mut buf = vec![0; Resp3Frame::encode_len(&frame, false)];
                encode_resp3(&mut buf, &frame, false).map_err(|e| e.details().to_owned())?;
                Ok(buf)
            }
        }
    }
}

/// `$<length>\r\n<bytes>\r\n`.
fn bulk_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + BULK_HEADER_BYTES_MAX);
    out.push(b'$');
    put_decimal(&mut out, bytes.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// `$`, at most 20 digits, and the two line ends of a bulk string.
const BULK_HEADER_BYTES_MAX: usize = 1 + 20 + 4;

/// Appends `n` in decimal.
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// An error line may not hold a line break (it would end the frame).
fn one_line(text: String) -> String {
    if text.contains(['\r', '\n']) {
        text.replace(['\r', '\n'], " ")
    } else {
        text
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
