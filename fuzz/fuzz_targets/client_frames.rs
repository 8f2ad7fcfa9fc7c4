//! The client listener's input: a byte stream cut into frames by
//! `FrameCodec`, each frame parsed by `parse_request` and, failing that,
//! answered with `encode_response`; the client's side, `parse_response`,
//! reads the same frames.
//!
//! Laws: framing does not depend on how the bytes arrive; a request that
//! parses, encoded again by `encode_request`, parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_actors::wire::client::{
    encode_request, encode_response, parse_request, parse_response, RequestLimits,
    MAX_KEY_BYTES_DEFAULT, MAX_VALUE_BYTES_DEFAULT,
};
use ringkv_actors::wire::MAX_FRAME_BYTES_DEFAULT;

const LIMITS: RequestLimits = RequestLimits {
    max_key_bytes: MAX_KEY_BYTES_DEFAULT,
    max_value_bytes: MAX_VALUE_BYTES_DEFAULT,
    replicas: 3,
};

fuzz_target!(|data: &[u8]| {
    for frame in ringkv_fuzz::frames_any_split(data, MAX_FRAME_BYTES_DEFAULT) {
        match parse_request(&frame, &LIMITS) {
            Ok(request) => {
                let again = parse_request(&encode_request(&request), &LIMITS);
                assert_eq!(again, Ok(request), "a request does not round-trip");
            }
            Err((id, error)) => {
                encode_response(id, &Err(error));
            }
        }
        let _ = parse_response(&frame);
    }
});
