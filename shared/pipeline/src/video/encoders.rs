//! FaceFusion's encoder choices, their ffmpeg arguments (quality and preset mapping, §11.3), the fixes
//! it applies per container, and the encoders the local ffmpeg offers.

use std::str::FromStr;
use std::time::Duration;

use super::command::{media_error, run_capture, Toolchain};
use crate::error::{MediaFailure, PipelineError, Result};

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $option:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in FaceFusion's order (its choice list, which is also its preference order).
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = PipelineError;

            fn from_str(text: &str) -> Result<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == text).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
                    PipelineError::invalid_option($option, format!("`{text}` is not one of {}", names.join(", ")))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum!(
    /// `--output-video-encoder`.
    VideoEncoder, "output_video_encoder", {
        Libx264 => "libx264", Libx264rgb => "libx264rgb", Libx265 => "libx265", LibvpxVp9 => "libvpx-vp9",
        H264Nvenc => "h264_nvenc", HevcNvenc => "hevc_nvenc", H264Amf => "h264_amf", HevcAmf => "hevc_amf",
        H264Qsv => "h264_qsv", HevcQsv => "hevc_qsv", H264Videotoolbox => "h264_videotoolbox",
        HevcVideotoolbox => "hevc_videotoolbox", Rawvideo => "rawvideo",
    }
);

named_enum!(
    /// `--output-audio-encoder`.
    AudioEncoder, "output_audio_encoder", {
        Flac => "flac", Aac => "aac", Libmp3lame => "libmp3lame", Libopus => "libopus",
        Libvorbis => "libvorbis", PcmS16le => "pcm_s16le", PcmS32le => "pcm_s32le",
    }
);

named_enum!(
    /// `--output-video-preset`: x264's names, mapped per encoder family.
    VideoPreset, "output_video_preset", {
        Ultrafast => "ultrafast", Superfast => "superfast", Veryfast => "veryfast", Faster => "faster",
        Fast => "fast", Medium => "medium", Slow => "slow", Slower => "slower", Veryslow => "veryslow",
    }
);

/// FaceFusion's output video formats (file extensions).
pub const VIDEO_FORMATS: &[&str] = &["avi", "m4v", "mkv", "mov", "mp4", "mpeg", "mxf", "webm", "wmv"];

/// numpy.interp on a single segment: numpy computes slope·(x − x0) + y0 and returns y1 exactly at x1.
fn interp(x: f64, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> f64 {
    if x <= x0 {
        y0
    } else if x >= x1 {
        y1
    } else {
        (y1 - y0) / (x1 - x0) * (x - x0) + y0
    }
}

/// numpy.round(x): half to even.
fn round_int(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// numpy.round(x, 1): scale, round half to even, unscale; then Python's str().
fn round_1_decimal_text(x: f64) -> String {
    super::command::py_float((x * 10.0).round_ties_even() / 10.0)
}

/// The rate-control arguments for `quality` 0..100 (FaceFusion's set_video_quality).
pub fn video_quality_args(encoder: VideoEncoder, quality: u8) -> Vec<String> {
    use VideoEncoder::*;
    let q = quality as f64;
    let x264 = || round_int(interp(q, (0.0, 100.0), (51.0, 0.0))).to_string();
    match encoder {
        Libx264 | Libx264rgb | Libx265 => vec!["-crf".into(), x264()],
        LibvpxVp9 => vec!["-crf".into(), round_int(interp(q, (0.0, 100.0), (63.0, 0.0))).to_string()],
        H264Nvenc | HevcNvenc => vec!["-cq".into(), x264()],
        H264Amf | HevcAmf => {
            let v = x264();
            vec!["-qp_i".into(), v.clone(), "-qp_p".into(), v.clone(), "-qp_b".into(), v]
        }
        H264Qsv | HevcQsv => vec!["-qp".into(), x264()],
        H264Videotoolbox | HevcVideotoolbox => {
            vec!["-b:v".into(), format!("{}k", round_int(interp(q, (0.0, 100.0), (1024.0, 50512.0))))]
        }
        Rawvideo => vec![],
    }
}

/// The preset arguments (FaceFusion's set_video_preset and its nvenc/amf/qsv maps).
pub fn video_preset_args(encoder: VideoEncoder, preset: VideoPreset) -> Vec<String> {
    use VideoEncoder::*;
    use VideoPreset::*;
    let (flag, value) = match encoder {
        Libx264 | Libx264rgb | Libx265 => ("-preset", preset.name()),
        H264Nvenc | HevcNvenc => (
            "-preset",
            match preset {
                Ultrafast | Superfast | Veryfast | Faster | Fast => "fast",
                Medium => "medium",
                Slow | Slower | Veryslow => "slow",
            },
        ),
        H264Amf | HevcAmf => (
            "-quality",
            match preset {
                Ultrafast | Superfast | Veryfast => "speed",
                Faster | Fast | Medium => "balanced",
                Slow | Slower | Veryslow => "quality",
            },
        ),
        H264Qsv | HevcQsv => (
            "-preset",
            match preset {
                Ultrafast | Superfast | Veryfast => "veryfast",
                other => other.name(),
            },
        ),
        LibvpxVp9 | H264Videotoolbox | HevcVideotoolbox | Rawvideo => return vec![],
    };
    vec![flag.into(), value.into()]
}

/// The audio quality arguments for `quality` 0..100 (FaceFusion's set_audio_quality).
pub fn audio_quality_args(encoder: AudioEncoder, quality: u8) -> Vec<String> {
    let q = quality as f64;
    match encoder {
        AudioEncoder::Aac => vec!["-q:a".into(), round_1_decimal_text(interp(q, (0.0, 100.0), (0.1, 2.0)))],
        AudioEncoder::Libmp3lame => vec!["-q:a".into(), round_int(interp(q, (0.0, 100.0), (9.0, 0.0))).to_string()],
        AudioEncoder::Libopus => {
            vec!["-b:a".into(), format!("{}k", round_int(interp(q, (0.0, 100.0), (64.0, 256.0))))]
        }
        AudioEncoder::Libvorbis => vec!["-q:a".into(), round_1_decimal_text(interp(q, (0.0, 100.0), (-1.0, 10.0)))],
        AudioEncoder::Flac | AudioEncoder::PcmS16le | AudioEncoder::PcmS32le => vec![],
    }
}

/// rgb24 for rawvideo, yuva420p for vp9 (alpha kept), yuv420p otherwise.
pub fn pixel_format(encoder: VideoEncoder) -> &'static str {
    match encoder {
        VideoEncoder::Rawvideo => "rgb24",
        VideoEncoder::LibvpxVp9 => "yuva420p",
        _ => "yuv420p",
    }
}

/// The video encoder FaceFusion actually uses for a container (fix_video_encoder).
pub fn fix_video_encoder(format: &str, encoder: VideoEncoder) -> VideoEncoder {
    match format {
        "m4v" | "mpeg" | "mxf" | "wmv" => VideoEncoder::Libx264,
        "mkv" | "mp4" if encoder == VideoEncoder::Rawvideo => VideoEncoder::Libx264,
        "mov" if encoder == VideoEncoder::LibvpxVp9 => VideoEncoder::Libx264,
        "webm" => VideoEncoder::LibvpxVp9,
        _ => encoder,
    }
}

/// The audio encoder FaceFusion actually uses for a container (fix_audio_encoder).
pub fn fix_audio_encoder(format: &str, encoder: AudioEncoder) -> AudioEncoder {
    match format {
        "avi" if encoder == AudioEncoder::Libopus => AudioEncoder::Aac,
        "m4v" | "mpeg" | "wmv" => AudioEncoder::Aac,
        "mov" if matches!(encoder, AudioEncoder::Flac | AudioEncoder::Libopus) => AudioEncoder::Aac,
        "mxf" => AudioEncoder::PcmS16le,
        "webm" => AudioEncoder::Libopus,
        _ => encoder,
    }
}

/// The encoders of FaceFusion's lists that the local ffmpeg has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AvailableEncoders {
    pub video: Vec<VideoEncoder>,
    pub audio: Vec<AudioEncoder>,
}

impl AvailableEncoders {
    /// FaceFusion's default `--output-video-encoder`: the first of the list.
    pub fn default_video(&self) -> Option<VideoEncoder> {
        self.video.first().copied()
    }

    /// FaceFusion's default `--output-audio-encoder` (usually flac, which ffmpeg 5 refuses in MP4:
    /// FaceFusion then writes the video without audio).
    pub fn default_audio(&self) -> Option<AudioEncoder> {
        self.audio.first().copied()
    }

    /// Parses `ffmpeg -encoders`. FaceFusion inserts each match at its index in the choice list (Python
    /// `list.insert`, which appends past the end), so the order follows its code, not just the list.
    pub fn parse(listing: &str) -> Self {
        let mut available = Self::default();
        for line in listing.lines() {
            let line = line.to_lowercase();
            let Some(name) = line.split_whitespace().nth(1) else { continue };
            if line.starts_with(" a") {
                if let Some(index) = AudioEncoder::ALL.iter().position(|e| e.name() == name) {
                    let at = index.min(available.audio.len());
                    available.audio.insert(at, AudioEncoder::ALL[index]);
                }
            } else if line.starts_with(" v") {
                if let Some(index) = VideoEncoder::ALL.iter().position(|e| e.name() == name) {
                    let at = index.min(available.video.len());
                    available.video.insert(at, VideoEncoder::ALL[index]);
                }
            }
        }
        available
    }
}

/// `ffmpeg -encoders`, parsed; see [`AvailableEncoders::parse`].
pub fn available_encoders() -> Result<AvailableEncoders> {
    Toolchain::from_env().available_encoders()
}

impl Toolchain {
    pub fn available_encoders(&self) -> Result<AvailableEncoders> {
        let args: Vec<String> = ["-loglevel", "error", "-encoders"].map(String::from).to_vec();
        let (status, stdout, stderr) =
            run_capture("ffmpeg -encoders", &self.ffmpeg, &args, Duration::from_secs(30), 1024 * 1024)?;
        if !status.success() {
            return Err(media_error(
                MediaFailure::FfmpegFailed,
                format!("ffmpeg -encoders exited with {status}: {stderr}"),
            ));
        }
        Ok(AvailableEncoders::parse(&String::from_utf8_lossy(&stdout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_mapping_matches_the_spec_table() {
        assert_eq!(video_quality_args(VideoEncoder::Libx264, 80), ["-crf", "10"]);
        assert_eq!(video_quality_args(VideoEncoder::LibvpxVp9, 80), ["-crf", "13"]);
        assert_eq!(video_quality_args(VideoEncoder::H264Nvenc, 80), ["-cq", "10"]);
        assert_eq!(video_quality_args(VideoEncoder::HevcAmf, 80), ["-qp_i", "10", "-qp_p", "10", "-qp_b", "10"]);
        assert_eq!(video_quality_args(VideoEncoder::H264Qsv, 80), ["-qp", "10"]);
        assert_eq!(video_quality_args(VideoEncoder::H264Videotoolbox, 80), ["-b:v", "40614k"]);
        assert!(video_quality_args(VideoEncoder::Rawvideo, 80).is_empty());
        assert_eq!(video_quality_args(VideoEncoder::Libx264, 0), ["-crf", "51"]);
        assert_eq!(video_quality_args(VideoEncoder::Libx264, 100), ["-crf", "0"]);
        // 51 − 0.51·50 = 25.5 → 26 (half to even), and 63 − 0.63·50 = 31.5 → 32.
        assert_eq!(video_quality_args(VideoEncoder::Libx264, 50), ["-crf", "26"]);
        assert_eq!(video_quality_args(VideoEncoder::LibvpxVp9, 50), ["-crf", "32"]);
        assert_eq!(audio_quality_args(AudioEncoder::Aac, 80), ["-q:a", "1.6"]);
        assert_eq!(audio_quality_args(AudioEncoder::Aac, 100), ["-q:a", "2.0"]);
        assert_eq!(audio_quality_args(AudioEncoder::Libmp3lame, 80), ["-q:a", "2"]);
        assert_eq!(audio_quality_args(AudioEncoder::Libopus, 80), ["-b:a", "218k"]);
        assert_eq!(audio_quality_args(AudioEncoder::Libvorbis, 80), ["-q:a", "7.8"]);
        assert!(audio_quality_args(AudioEncoder::Flac, 80).is_empty());
    }

    #[test]
    fn presets_and_container_fixes() {
        assert_eq!(video_preset_args(VideoEncoder::Libx265, VideoPreset::Veryfast), ["-preset", "veryfast"]);
        assert_eq!(video_preset_args(VideoEncoder::HevcNvenc, VideoPreset::Faster), ["-preset", "fast"]);
        assert_eq!(video_preset_args(VideoEncoder::H264Amf, VideoPreset::Medium), ["-quality", "balanced"]);
        assert_eq!(video_preset_args(VideoEncoder::H264Qsv, VideoPreset::Superfast), ["-preset", "veryfast"]);
        assert_eq!(video_preset_args(VideoEncoder::H264Qsv, VideoPreset::Slow), ["-preset", "slow"]);
        assert!(video_preset_args(VideoEncoder::LibvpxVp9, VideoPreset::Slow).is_empty());
        assert_eq!(fix_video_encoder("mp4", VideoEncoder::Rawvideo), VideoEncoder::Libx264);
        assert_eq!(fix_video_encoder("webm", VideoEncoder::Libx264), VideoEncoder::LibvpxVp9);
        assert_eq!(fix_video_encoder("mov", VideoEncoder::LibvpxVp9), VideoEncoder::Libx264);
        assert_eq!(fix_video_encoder("avi", VideoEncoder::Rawvideo), VideoEncoder::Rawvideo);
        assert_eq!(fix_audio_encoder("mov", AudioEncoder::Flac), AudioEncoder::Aac);
        assert_eq!(fix_audio_encoder("mxf", AudioEncoder::Aac), AudioEncoder::PcmS16le);
        assert_eq!(fix_audio_encoder("webm", AudioEncoder::Aac), AudioEncoder::Libopus);
        assert_eq!(fix_audio_encoder("mp4", AudioEncoder::Flac), AudioEncoder::Flac);
        assert_eq!(pixel_format(VideoEncoder::LibvpxVp9), "yuva420p");
        assert!("x264".parse::<VideoEncoder>().is_err());
        assert_eq!("libvpx-vp9".parse::<VideoEncoder>().unwrap(), VideoEncoder::LibvpxVp9);
    }

    #[test]
    fn encoder_listing_is_ordered_like_facefusion() {
        let listing = " V..... = Video\n ------\n V....D libx264              H.264\n \
            V....D h264_nvenc           NVENC\n V....D h264_qsv  QSV\n V....D hevc_nvenc  NVENC\n \
            V....D libvpx-vp9  VP9\n A....D aac  AAC\n A....D flac  FLAC\n";
        let available = AvailableEncoders::parse(listing);
        assert_eq!(
            available.video,
            [
                VideoEncoder::Libx264,
                VideoEncoder::H264Nvenc,
                VideoEncoder::H264Qsv,
                VideoEncoder::LibvpxVp9,
                VideoEncoder::HevcNvenc
            ]
        );
        assert_eq!(available.audio, [AudioEncoder::Flac, AudioEncoder::Aac]);
    }
}
