//! What kind of file a request carries, from its first bytes: the service and the CLI route a
//! request by it (image in, image out; video or image + speech in, video out) before anything is
//! decoded.

use crate::image_io::{self, ImageFormat};
use crate::options::ProcessOptions;
use crate::processor::Processor;

/// The three kinds of input FaceFusion takes: images (sources and targets), videos (targets) and
/// audio (the lip syncer's source), each with the format its bytes are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Image(ImageFormat),
    Video(Container),
    Audio(AudioFormat),
}

impl MediaKind {
    pub fn is_image(self) -> bool {
        matches!(self, Self::Image(_))
    }

    pub fn is_audio(self) -> bool {
        matches!(self, Self::Audio(_))
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Audio(_) => "audio",
        }
    }

    /// The extension a file of this kind is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Image(format) => format.extension(),
            Self::Video(container) => container.extension(),
            Self::Audio(format) => format.extension(),
        }
    }
}

/// A video container: FaceFusion 3.5.3's output formats, plus FLV, which ffmpeg reads but
/// FaceFusion does not write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    Avi,
    M4v,
    Mkv,
    Mov,
    Mp4,
    Mpeg,
    Mxf,
    Webm,
    Wmv,
    Flv,
}

impl Container {
    /// The containers a result can be written in (FaceFusion's `video` output formats).
    pub const WRITABLE: [Container; 9] =
        [Self::Avi, Self::M4v, Self::Mkv, Self::Mov, Self::Mp4, Self::Mpeg, Self::Mxf, Self::Webm, Self::Wmv];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Avi => "avi",
            Self::M4v => "m4v",
            Self::Mkv => "mkv",
            Self::Mov => "mov",
            Self::Mp4 => "mp4",
            Self::Mpeg => "mpeg",
            Self::Mxf => "mxf",
            Self::Webm => "webm",
            Self::Wmv => "wmv",
            Self::Flv => "flv",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Mp4 | Self::M4v => "video/mp4",
            Self::Mov => "video/quicktime",
            Self::Mkv => "video/x-matroska",
            Self::Webm => "video/webm",
            Self::Avi => "video/x-msvideo",
            Self::Mpeg => "video/mpeg",
            Self::Mxf => "application/mxf",
            Self::Wmv => "video/x-ms-wmv",
            Self::Flv => "video/x-flv",
        }
    }

    /// A writable container from its extension or a file name ending in it, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        let extension = name.rsplit('.').next()?.to_ascii_lowercase();
        Self::WRITABLE.into_iter().find(|container| container.extension() == extension)
    }

    /// Whether FaceFusion writes results in it.
    pub fn is_writable(self) -> bool {
        Self::WRITABLE.contains(&self)
    }

    /// The container a result is written in when nobody asked for one: the target's own, if it is
    /// writable, else MP4.
    pub fn for_output(self) -> Self {
        if self.is_writable() {
            self
        } else {
            Self::Mp4
        }
    }
}

/// An audio file's format, from its magic numbers; the extension its temp copy gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    Wav,
    Mp3,
    Flac,
    Ogg,
    M4a,
    Aiff,
}

impl AudioFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Mp3 => "mp3",
            Self::Flac => "flac",
            Self::Ogg => "ogg",
            Self::M4a => "m4a",
            Self::Aiff => "aiff",
        }
    }
}

/// The kind of `bytes` from its magic numbers; `None` for anything we cannot read.
pub fn sniff(bytes: &[u8]) -> Option<MediaKind> {
    if let Some(format) = image_io::sniff(bytes) {
        return Some(MediaKind::Image(format));
    }
    sniff_audio(bytes).map(MediaKind::Audio).or_else(|| sniff_video(bytes).map(MediaKind::Video))
}

/// [`sniff`], where a video file's name may say which of a family of containers it is (an ISO
/// media file named `.mov` is a QuickTime movie): the name is believed only for a video whose
/// bytes already are one, and only when it names a container FaceFusion writes.
pub fn sniff_named(bytes: &[u8], file_name: Option<&str>) -> Option<MediaKind> {
    match sniff(bytes)? {
        MediaKind::Video(sniffed) => {
            let named = file_name.filter(|name| name.contains('.')).and_then(Container::from_name);
            Some(MediaKind::Video(named.unwrap_or(sniffed)))
        }
        other => Some(other),
    }
}

fn sniff_audio(bytes: &[u8]) -> Option<AudioFormat> {
    let mp3_frame = bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0;
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
        Some(AudioFormat::Wav)
    } else if mp3_frame || bytes.starts_with(b"ID3") {
        Some(AudioFormat::Mp3)
    } else if bytes.get(4..8) == Some(b"ftyp") && matches!(bytes.get(8..12), Some(b"M4A ") | Some(b"M4B ")) {
        Some(AudioFormat::M4a)
    } else if bytes.starts_with(b"fLaC") {
        Some(AudioFormat::Flac)
    } else if bytes.starts_with(b"OggS") {
        Some(AudioFormat::Ogg)
    } else if bytes.starts_with(b"FORM") {
        Some(AudioFormat::Aiff)
    } else {
        None
    }
}

fn sniff_video(bytes: &[u8]) -> Option<Container> {
    const EBML: &[u8] = &[0x1A, 0x45, 0xDF, 0xA3];
    const ASF: &[u8] = &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11];
    const MPEG_PS: &[u8] = &[0x00, 0x00, 0x01, 0xBA];
    const MXF: &[u8] = &[0x06, 0x0E, 0x2B, 0x34];
    let head = &bytes[..bytes.len().min(64)];
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|window| window == needle);
    if is_still_image_in_iso_media(bytes) {
        // HEIC and AVIF photos share MP4's box structure; ffmpeg cannot read them as video, so
        // they are an unsupported kind (415), not a damaged video (422).
        None
    } else if matches!(bytes.get(4..8), Some(b"ftyp") | Some(b"moov") | Some(b"mdat") | Some(b"wide")) {
        Some(if bytes.get(8..12) == Some(b"qt  ") { Container::Mov } else { Container::Mp4 })
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"AVI ") {
        Some(Container::Avi)
    } else if bytes.starts_with(EBML) {
        Some(if contains(b"webm") { Container::Webm } else { Container::Mkv })
    } else if bytes.starts_with(ASF) {
        Some(Container::Wmv)
    } else if bytes.starts_with(MPEG_PS) {
        Some(Container::Mpeg)
    } else if bytes.starts_with(MXF) {
        Some(Container::Mxf)
    } else if bytes.starts_with(b"FLV") {
        Some(Container::Flv)
    } else {
        None
    }
}

/// Whether `bytes` are an HEIF/HEIC or AVIF image: an ISO media file whose major brand is one of
/// the still-image (or image-sequence) brands.
fn is_still_image_in_iso_media(bytes: &[u8]) -> bool {
    const IMAGE_BRANDS: [&[u8]; 10] =
        [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"];
    bytes.get(4..8) == Some(b"ftyp") && bytes.get(8..12).is_some_and(|brand| IMAGE_BRANDS.contains(&brand))
}

/// Whether a run produces a video: a video target always does; an image target does when the lip
/// syncer is asked to speak an audio source and no image output format was asked for (a still
/// photo with speech becomes a talking video of the audio's length).
pub fn produces_video(target: MediaKind, sources: &[MediaKind], options: &ProcessOptions, image_output: bool) -> bool {
    match target {
        MediaKind::Video(_) => true,
        MediaKind::Audio(_) => false,
        MediaKind::Image(_) => {
            !image_output && options.uses(Processor::LipSyncer) && sources.iter().any(|kind| kind.is_audio())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::padded;

    #[test]
    fn sniffs_audio_containers() {
        for head in [&b"RIFF\0\0\0\0WAVEfmt "[..], b"ID3\x04", b"\xFF\xFB\x90", b"fLaC", b"OggS", b"\0\0\0\x20ftypM4A "]
        {
            assert!(sniff(&padded(head)).is_some_and(MediaKind::is_audio), "{head:?}");
        }
    }

    #[test]
    fn sniffs_video_containers() {
        for head in [&b"\0\0\0\x20ftypisom"[..], b"\0\0\0\x14ftypqt  ", b"\x1A\x45\xDF\xA3", b"RIFF\0\0\0\0AVI LIST"] {
            assert!(matches!(sniff(&padded(head)), Some(MediaKind::Video(_))), "{head:?}");
        }
    }

    #[test]
    fn containers_come_from_names_then_magic() {
        let mp4 = padded(b"\0\0\0\x20ftypisom");
        assert_eq!(sniff_named(&mp4, Some("a.webm")), Some(MediaKind::Video(Container::Webm)));
        assert_eq!(sniff_named(&mp4, Some("clip.MOV")), Some(MediaKind::Video(Container::Mov)));
        assert_eq!(sniff(&padded(b"\0\0\0\x14ftypqt  ")), Some(MediaKind::Video(Container::Mov)));
        assert_eq!(sniff(&padded(b"\x1A\x45\xDF\xA3\x42\x82\x84webm")), Some(MediaKind::Video(Container::Webm)));
        assert_eq!(sniff(&padded(b"\x1A\x45\xDF\xA3")), Some(MediaKind::Video(Container::Mkv)));
        assert_eq!(sniff_named(b"FLV\x01", Some("x.flv")), Some(MediaKind::Video(Container::Flv)));
        assert_eq!(Container::Flv.for_output(), Container::Mp4);
        assert_eq!(sniff(&padded(b"RIFF\0\0\0\0WAVEfmt ")).map(MediaKind::extension), Some("wav"));
        assert_eq!(sniff(&mp4).map(MediaKind::extension), Some("mp4"));
    }

    #[test]
    fn photo_formats_we_do_not_read_are_not_videos() {
        for head in [
            &b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"[..],
            b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic",
            b"\0\0\0\x1cftypavif\0\0\0\0avifmif1",
            b"\0\0\0\x1cftypavis\0\0\0\0avismsf1",
            b"GIF89a\x01\0\x01\0",
            b"GIF87a\x01\0\x01\0",
            b"II*\0\x08\0\0\0",
            b"MM\0*\0\0\0\x08",
        ] {
            assert_eq!(sniff(&padded(head)), None, "{head:?}");
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
        let (video, audio) = (MediaKind::Video(Container::Mp4), MediaKind::Audio(AudioFormat::Wav));
        let mut options = ProcessOptions::default();
        assert!(produces_video(video, &[image], &options, false));
        assert!(!produces_video(image, &[audio], &options, false));
        options.processors = vec![Processor::LipSyncer];
        assert!(produces_video(image, &[audio], &options, false));
        assert!(!produces_video(image, &[audio], &options, true));
        assert!(!produces_video(image, &[image], &options, false));
    }
}
