//! S3 object events: the Lambda worker's `S3Event` (aws_lambda_events, as shared/lambda reads it)
//! and the routing every record goes through (`events::route_object_event`: key decoding, the
//! FF_S3_PREFIX, job records and batch inputs).
//!
//! Input: an S3 event JSON; anything that is not one is routed as a raw key. Invariants: nothing
//! panics; a job route names a canonical job id and its record key, a batch route an `inbox/` input;
//! and any key, percent-encoded as S3 does, decodes back to itself.

#![no_main]

use aws_lambda_events::event::s3::S3Event;
use ff_service::batch::{decode_s3_key, inbox_name};
use ff_service::events::{route_object_event, Route};
use ff_service::jobs::is_job_id;
use ff_service::jobs::segments::{record_key, MAX_SEGMENTS};
use libfuzzer_sys::fuzz_target;

const PREFIXES: [&str; 2] = ["", "ff"];

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<S3Event>(data) {
        Ok(event) => {
            for record in &event.records {
                let key = record.s3.object.key.as_deref().unwrap_or_default();
                let name = record.event_name.as_deref().unwrap_or_default();
                let bucket = record.s3.bucket.name.as_deref().unwrap_or_default();
                route(name, bucket, key);
            }
        }
        Err(_) => {
            let key = String::from_utf8_lossy(data);
            route("ObjectCreated:Put", "ff", &key);
            check_encoding_round_trip(&key);
        }
    }
});

fn route(event_name: &str, bucket: &str, raw_key: &str) {
    for prefix in PREFIXES {
        for our_bucket in [None, Some("ff")] {
            match route_object_event(event_name, bucket, raw_key, our_bucket, prefix) {
                Route::Job { key, id } => {
                    assert!(is_job_id(&id), "{id:?}");
                    assert_eq!(key, format!("jobs/{id}.json"));
                }
                Route::Segment { key, job, index } => {
                    assert!(is_job_id(&job), "{job:?}");
                    assert!(index < MAX_SEGMENTS, "{index}");
                    assert_eq!(key, record_key(&job, index));
                }
                Route::Batch { key } => assert!(inbox_name(&key).is_some(), "{key:?}"),
                Route::Ignored { .. } => {}
            }
        }
    }
}

/// S3 sends keys URL-encoded (`+` for a space); the decoder must undo exactly that.
fn check_encoding_round_trip(key: &str) {
    let encoded = encode_like_s3(key);
    assert_eq!(decode_s3_key(&encoded).as_deref(), Some(key), "{encoded:?}");
    // And only that: a `%` not followed by two hex digits is not an encoding of anything.
    if let Some(decoded) = decode_s3_key(key) {
        let bytes = key.as_bytes();
        for (at, _) in key.match_indices('%') {
            let hex = bytes.get(at + 1..at + 3);
            assert!(hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)), "{key:?} decoded to {decoded:?}");
        }
    }
}

fn encode_like_s3(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
