//! Media sniffing (`media::sniff`/`sniff_named`, which route every request) and image decoding
//! (`image_io::decode`) under a small pixel limit, on arbitrary bytes.
//!
//! Invariants: nothing panics; a file name never changes what kind of file bytes are, only which
//! video container; decoding agrees with sniffing; the pixel limit is respected before the pixels
//! are allocated, and a decoded image's planes match its size.

#![no_main]

use ff_pipeline::image_io;
use ff_pipeline::media::{sniff, sniff_named, MediaKind};
use ff_pipeline::PipelineError;
use libfuzzer_sys::fuzz_target;

/// Small, so the fuzzer spends its time in headers rather than in pixel loops, and the limit is
/// easy to exceed.
const MAX_PIXELS: u64 = 64 * 64;

/// Names an upload may carry: none, writable containers in any case, a non-writable one, none at all.
const NAMES: [Option<&str>; 6] = [None, Some("clip.mov"), Some("a.WEBM"), Some("b.mp4"), Some("noext"), Some("x.gif")];

fuzz_target!(|data: &[u8]| {
    check_sniffing(data);
    check_decoding(data);
});

fn check_sniffing(data: &[u8]) {
    let kind = sniff(data);
    let name = NAMES[data.len() % NAMES.len()];
    match (kind, sniff_named(data, name)) {
        (None, None) => {}
        (Some(MediaKind::Video(_)), Some(MediaKind::Video(_))) => {}
        (Some(sniffed), Some(named)) if sniffed == named => {}
        (sniffed, named) => panic!("the name {name:?} turned {sniffed:?} into {named:?}"),
    }
    assert_eq!(image_io::sniff(data).map(MediaKind::Image), kind.filter(|k| k.is_image()));
}

fn check_decoding(data: &[u8]) {
    match image_io::decode(data, MAX_PIXELS) {
        Ok(image) => {
            let frame = &image.frame;
            assert_eq!(Some(image.format), image_io::sniff(data));
            assert!((frame.width * frame.height) as u64 <= MAX_PIXELS, "{}x{}", frame.width, frame.height);
            assert_eq!(frame.data.len(), frame.width * frame.height * 3);
            if let Some(alpha) = &image.alpha {
                assert_eq!(
                    (alpha.width, alpha.height, alpha.data.len()),
                    (frame.width, frame.height, frame.data.len() / 3)
                );
            }
        }
        Err(PipelineError::ImageTooLarge { width, height, limit }) => {
            assert_eq!(limit, MAX_PIXELS);
            assert!(width as u64 * height as u64 > limit);
        }
        Err(_) => {}
    }
}
