//! What kind of file a request carries, from its first bytes: the service and the CLI route a
//! request by it (image in, image out; video or image + speech in, video out) before anything is
//! decoded.

use crate::image_io::{self, ImageFormat};
use crate::options::ProcessOptions;

/// The three kinds of input FaceFusion takes: images (sources and targets), videos (targets) and
/// audio (the lip syncer's source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Image(ImageFormat),
    Video,
    Audio,
}

impl MediaKind {
    pub fn is_image(self) -> bool {
        matches!(self, Self::Image(_))
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Image(_) => "image",
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }
}

/// The kind of `bytes` from its magic numbers; `None` for anything we cannot read.
pub fn sniff(bytes: &[u8]) -> Option<MediaKind> {
    if let Some(format) = image_io::sniff(bytes) {
        return Some(MediaKind::Image(format));
    }
    sniff_audio(bytes).or_else(|| sniff_video(bytes))
}

fn sniff_audio(bytes: &[u8]) -> Option<MediaKind> {
    let riff_wave = bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE");
    let mp3_frame = bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0;
    let mp4_audio = bytes.get(4..8) == Some(b"ftyp") && matches!(bytes.get(8..12), Some(b"M4A ") | Some(b"M4B "));
    let known = riff_wave
        || mp3_frame
        || mp4_audio
        || bytes.starts_with(b"ID3")
        || bytes.starts_with(b"fLaC")
        || bytes.starts_with(b"OggS")
        || bytes.starts_with(b"FORM");
    known.then_some(MediaKind::Audio)
}

fn sniff_video(bytes: &[u8]) -> Option<MediaKind> {
    const EBML: &[u8] = &[0x1A, 0x45, 0xDF, 0xA3];
    const ASF: &[u8] = &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11];
    const MPEG_PS: &[u8] = &[0x00, 0x00, 0x01, 0xBA];
    const MXF: &[u8] = &[0x06, 0x0E, 0x2B, 0x34];
    let quicktime = matches!(bytes.get(4..8), Some(b"ftyp") | Some(b"moov") | Some(b"mdat") | Some(b"wide"));
    let avi = bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"AVI ");
    let known = quicktime
        || avi
        || bytes.starts_with(EBML)
        || bytes.starts_with(ASF)
        || bytes.starts_with(MPEG_PS)
        || bytes.starts_with(MXF)
        || bytes.starts_with(b"FLV");
    known.then_some(MediaKind::Video)
}

/// Whether a run produces a video: a video target always does; an image target does when the lip
/// syncer is asked to speak an audio source and no image output format was asked for (a still
/// photo with speech becomes a talking video of the audio's length).
pub fn produces_video(target: MediaKind, sources: &[MediaKind], options: &ProcessOptions, image_output: bool) -> bool {
    match target {
        MediaKind::Video => true,
        MediaKind::Audio => false,
        MediaKind::Image(_) => {
            !image_output && options.processors.iter().any(|p| p == "lip_syncer") && sources.contains(&MediaKind::Audio)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(head: &[u8]) -> Vec<u8> {
        let mut bytes = head.to_vec();
        bytes.resize(64, 0);
        bytes
    }

    #[test]
    fn sniffs_audio_containers() {
        for head in [&b"RIFF\0\0\0\0WAVEfmt "[..], b"ID3\x04", b"\xFF\xFB\x90", b"fLaC", b"OggS", b"\0\0\0\x20ftypM4A "]
        {
            assert_eq!(sniff(&padded(head)), Some(MediaKind::Audio), "{head:?}");
        }
    }

    #[test]
    fn sniffs_video_containers() {
        for head in [&b"\0\0\0\x20ftypisom"[..], b"\0\0\0\x14ftypqt  ", b"\x1A\x45\xDF\xA3", b"RIFF\0\0\0\0AVI LIST"] {
            assert_eq!(sniff(&padded(head)), Some(MediaKind::Video), "{head:?}");
        }
    }

    #[test]
    fn rejects_unknown_bytes() {
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"hello world, not media"), None);
    }

    #[test]
    fn only_lip_sync_with_audio_turns_an_image_into_a_video() {
        let image = MediaKind::Image(ImageFormat::Png);
        let mut options = ProcessOptions::default();
        assert!(produces_video(MediaKind::Video, &[image], &options, false));
        assert!(!produces_video(image, &[MediaKind::Audio], &options, false));
        options.processors = vec!["lip_syncer".into()];
        assert!(produces_video(image, &[MediaKind::Audio], &options, false));
        assert!(!produces_video(image, &[MediaKind::Audio], &options, true));
        assert!(!produces_video(image, &[image], &options, false));
    }
}
