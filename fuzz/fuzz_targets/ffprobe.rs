//! ffprobe's JSON answer → `VideoInfo` (`video::parse_probe`), on arbitrary JSON.
//!
//! Invariants: nothing panics; an accepted video has a size, a positive finite frame rate, at least
//! one frame, a finite non-negative duration and a rotation in 0..360; its whole range is a valid
//! trim; and it survives the JSON round trip a job record puts it through.

#![no_main]

use ff_pipeline::video::{parse_probe, VideoInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(info) = parse_probe(&json) else { return };
    assert!(info.width > 0 && info.height > 0, "{info:?}");
    assert!(info.fps.is_finite() && info.fps > 0.0, "{info:?}");
    assert!(info.fps_rational.num > 0 && info.fps_rational.den > 0);
    assert!(info.frame_count >= 1, "{info:?}");
    assert!(info.duration.is_finite() && info.duration >= 0.0, "{info:?}");
    assert!(info.rotation < 360, "{info:?}");
    assert_eq!(info.trim_range(None, None).ok(), Some((0, info.frame_count)));
    let record = serde_json::to_string(&info).expect("a VideoInfo serialises");
    let back: VideoInfo = serde_json::from_str(&record).expect("a VideoInfo deserialises");
    assert_eq!(back, info, "{record}");
});
