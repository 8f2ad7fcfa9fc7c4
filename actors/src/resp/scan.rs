//! Key listing on the RESP port, pure: `SCAN`'s cursor (the `list` op's
//! cursor in hex, `0` at both ends, as Redis spells them), the `MATCH`
//! glob, and `DBSIZE`'s estimate from a partial walk.

use crate::replicator::list_walk::Position;

/// `COUNT` when `SCAN` names none: keys asked of the `list` op per call
/// (Redis's own default is 10; a hint either way).
pub const SCAN_COUNT_DEFAULT: usize = 100;
/// Most keys `KEYS` gathers before it answers an error that says to use
/// `SCAN` (Redis's `KEYS` blocks the server for the whole keyspace;
/// ringkv's would hold the connection and the memory instead).
pub const RESP_KEYS_MAX: usize = 100_000;
/// Keys `DBSIZE` walks before it extrapolates from the share of the ring
/// it covered.
pub const DBSIZE_EXACT_KEYS_MAX: usize = 10_000;

/// The `list` cursor a `SCAN` cursor names (`None`: the first page).
pub fn scan_cursor(arg: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if arg == b"0" {
        return Ok(None);
    }
    let text = std::str::from_utf8(arg).map_err(|_| "invalid cursor".to_string())?;
    if text.len() % 2 != 0 || text.is_empty() {
        return Err("invalid cursor".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| "invalid cursor".to_string()))
        .collect::<Result<Vec<u8>, String>>()
        .map(Some)
}

/// The `SCAN` cursor to answer for the `list` op's next cursor (`0`: the
/// pass is over).
pub fn scan_reply_cursor(next: Option<&[u8]>) -> Vec<u8> {
    match next {
        None => b"0".to_vec(),
        Some(cursor) => cursor
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    }
}

/// Redis's glob: `*`, `?`, `[abc]`, `[a-z]`, `[^x]`, and `\` quoting the
/// next byte.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some((&c, tail)) = text.split_first() else {
                return false;
            };
            let (negate, mut class) = match rest.split_first() {
                Some((b'^', r)) => (true, r),
                _ => (false, rest),
            };
            let mut hit = false;
            loop {
                match class {
                    [] => return false,
                    [b']', after @ ..] => {
                        class = after;
                        break;
                    }
                    [b'\\', x, after @ ..] => {
                        hit |= *x == c;
                        class = after;
                    }
                    [lo, b'-', hi, after @ ..] if *hi != b']' => {
                        let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                        hit |= (lo..=hi).contains(&c);
                        class = after;
                    }
                    [x, after @ ..] => {
                        hit |= *x == c;
                        class = after;
                    }
                }
            }
            hit != negate && glob_match(class, tail)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first() == rest.first() && glob_match(&rest[1..], &text[1..])
        }
        Some((&p, rest)) => text.first() == Some(&p) && glob_match(rest, &text[1..]),
    }
}

/// `DBSIZE` from a walk that saw `seen` keys and stopped at `cursor`
/// (`None`: it listed everything, so `seen` is exact): keys spread evenly
/// over the ring (their tokens are hashes), so the count scales by the
/// share of the ring the walk covered.
pub fn dbsize_estimate(seen: usize, cursor: Option<&[u8]>, key_bytes_max: usize) -> u64 {
    let Some(cursor) = cursor else {
        return seen as u64;
    };
    let covered = match Position::decode(cursor, key_bytes_max) {
        Ok(Position::AfterToken(t)) | Ok(Position::AfterKey(t, _)) => t.0,
        _ => return seen as u64,
    };
    if covered == 0 {
        return seen as u64;
    }
    let share = covered as f64 / u64::MAX as f64;
    (seen as f64 / share).round() as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ring::Token;

    #[test]
    fn cursors_round_trip_through_hex_and_zero_is_both_ends() {
        assert_eq!(scan_cursor(b"0").unwrap(), None);
        assert_eq!(scan_reply_cursor(None), b"0");
        let raw = vec![1u8, 0xab, 0, 0xff];
        let text = scan_reply_cursor(Some(&raw));
        assert_eq!(text, b"01ab00ff");
        assert_eq!(scan_cursor(&text).unwrap(), Some(raw));
        for bad in [&b"xyz"[..], b"1", b"", b"0g", &[0xff, 0xfe]] {
            assert!(scan_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn globs_match_as_redis_does() {
        let yes: &[(&str, &str)] = &[
            ("*", ""),
            ("*", "anything"),
            ("user:*", "user:42"),
            ("h?llo", "hello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h\\*llo", "h*llo"),
            ("*:*:end", "a:b:c:end"),
        ];
        for (p, t) in yes {
            assert!(glob_match(p.as_bytes(), t.as_bytes()), "{p} {t}");
        }
        let no: &[(&str, &str)] = &[
            ("user:*", "usr:42"),
            ("h?llo", "hllo"),
            ("h[ae]llo", "hillo"),
            ("h[^e]llo", "hello"),
            ("h\\*llo", "hello"),
            ("abc", "abcd"),
            ("[abc", "a"),
        ];
        for (p, t) in no {
            assert!(!glob_match(p.as_bytes(), t.as_bytes()), "{p} {t}");
        }
    }

    #[test]
    fn dbsize_scales_a_partial_walk_by_the_ring_share_covered() {
        assert_eq!(dbsize_estimate(42, None, 64), 42);
        let half = Position::AfterToken(Token(u64::MAX / 2)).encode();
        assert_eq!(dbsize_estimate(500, Some(&half), 64), 1_000);
        let quarter = Position::AfterToken(Token(u64::MAX / 4)).encode();
        assert_eq!(dbsize_estimate(250, Some(&quarter), 64), 1_000);
        // After a key: the key's own token is the share covered.
        let after = Position::after_key(b"k").encode();
        let share = crate::ring::Ring::key_token(b"k").0 as f64 / u64::MAX as f64;
        let expected = (100.0 / share).round() as u64;
        assert_eq!(dbsize_estimate(100, Some(&after), 64), expected);
        assert_eq!(dbsize_estimate(7, Some(b"garbage"), 64), 7);
    }
}
