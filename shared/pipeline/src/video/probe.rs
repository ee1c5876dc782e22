//! `ffprobe` → [`VideoInfo`], with OpenCV's reading of fps and frame count, which is what FaceFusion
//! uses (`detect_video_fps`, `count_video_frame_total`).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::command::{run_capture, Toolchain};
use crate::error::{PipelineError, Result};

/// ffprobe reads headers only; anything slower than this is a stuck or hostile input.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

/// A frame rate as ffprobe states it (`2997/100`), plus its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    fn parse(text: &str) -> Option<Self> {
        let (num, den) = text.split_once('/').unwrap_or((text, "1"));
        let rational = Self { num: num.trim().parse().ok()?, den: den.trim().parse().ok()? };
        (rational.num > 0 && rational.den > 0).then_some(rational)
    }
}

/// What the pipeline needs to know about a video before decoding it. Serialisable, so a probe
/// made once can travel with the work (a job record) instead of being made again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Displayed size: ffmpeg applies the rotation metadata when decoding, so a 90°-rotated stream's
    /// sides are swapped here too.
    pub width: u32,
    pub height: u32,
    /// The frame rate ffmpeg guesses (`av_guess_frame_rate`), as OpenCV's `CAP_PROP_FPS` reports it.
    pub fps_rational: Rational,
    pub fps: f64,
    /// The container's frame count, else round(duration · fps), as OpenCV's `CAP_PROP_FRAME_COUNT`.
    pub frame_count: u64,
    /// Seconds: the video stream's duration, else the container's.
    pub duration: f64,
    pub has_audio: bool,
    /// The video codec, e.g. `h264`.
    pub codec: String,
    /// Clockwise display rotation in degrees (0, 90, 180, 270).
    pub rotation: u32,
    /// Whether the stream says its frames come at one steady rate (ffprobe's `r_frame_rate` equals
    /// its `avg_frame_rate`): frame numbers then follow from timestamps, which cutting a run into
    /// segments relies on. `false` for probes recorded before it was read.
    #[serde(default)]
    pub constant_rate: bool,
}

impl VideoInfo {
    /// FaceFusion's trim range: missing ends mean 0 and the frame count, both clamped to
    /// [0, frame count]. An empty range is an error, since there would be nothing to process.
    pub fn trim_range(&self, start: Option<u64>, end: Option<u64>) -> Result<(u64, u64)> {
        let start = start.unwrap_or(0).min(self.frame_count);
        let end = end.unwrap_or(self.frame_count).min(self.frame_count);
        if start >= end {
            return Err(PipelineError::invalid_option(
                "trim_frame_start",
                format!("the trim range {start}..{end} holds no frame of this {}-frame video", self.frame_count),
            ));
        }
        Ok((start, end))
    }

    /// The rate frames are decoded at for processing: FaceFusion's temp fps, min(target fps, output
    /// fps), the output fps (`--output-video-fps`) clamped to 1..60 as FaceFusion does.
    pub fn decode_fps(&self, output_video_fps: Option<f64>) -> f64 {
        let output_fps = output_video_fps.map_or(self.fps, |fps| fps.clamp(1.0, 60.0));
        self.fps.min(output_fps)
    }

    /// Whether the stream lasts clearly longer than its frames at its frame rate: its timestamps
    /// leave gaps, which the decoder's fps filter fills with repeated frames. A 51-frame MP4 whose
    /// last frame is at 60 s decodes to 1,501 frames at 25 fps, not 51. A few percent of slack keeps
    /// ordinary variable-rate phone videos on the exact count.
    pub fn has_timestamp_gaps(&self) -> bool {
        let timeline_frames = (self.duration * self.fps + 0.5).floor();
        timeline_frames > (self.frame_count + self.frame_count / 50 + 2) as f64
    }

    /// How many frames the decoder produces for `(start, end)` (a [`VideoInfo::trim_range`]) at
    /// `fps`: what a run really processes, and so what its length limit is measured on.
    ///
    /// Without gaps, FaceFusion's `predict_video_frame_total` (the range rescaled by the fps change;
    /// the epsilon keeps 60·29.97/29.97 from flooring to 59). With gaps, where in the range they fall
    /// is unknown before decoding, so the whole timeline at `fps` is counted: an upper bound, exact
    /// for an untrimmed video.
    pub fn decoded_frames(&self, (start, end): (u64, u64), fps: f64) -> u64 {
        let frames = end - start;
        let predicted = if fps == self.fps { frames } else { ((frames as f64) * fps / self.fps + 1e-9).floor() as u64 };
        if !self.has_timestamp_gaps() {
            return predicted;
        }
        predicted.max((self.duration * fps + 0.5).floor() as u64)
    }
}

/// Probes `path` with the toolchain from the environment.
pub fn probe(path: &Path) -> Result<VideoInfo> {
    Toolchain::from_env().probe(path)
}

impl Toolchain {
    pub fn probe(&self, path: &Path) -> Result<VideoInfo> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !path.is_file() {
            // The file name only: the directory is the server's business (a run directory).
            return Err(PipelineError::MissingInput(format!("video `{name}` does not exist")));
        }
        let args: Vec<String> = ["-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
            .iter()
            .map(|s| s.to_string())
            .chain([path.to_string_lossy().into_owned()])
            .collect();
        let (status, stdout, stderr) = run_capture("ffprobe", &self.ffprobe, &args, PROBE_TIMEOUT, PROBE_OUTPUT_LIMIT)?;
        if !status.success() {
            return Err(PipelineError::UnsupportedMedia(format!(
                "`{name}` is not a readable video (corrupt or truncated?): {}",
                last_line(&stderr)
            )));
        }
        let json: Value = serde_json::from_slice(&stdout)
            .map_err(|e| PipelineError::UnsupportedMedia(format!("`{name}`: unreadable ffprobe answer: {e}")))?;
        parse_probe(&json).map_err(|reason| PipelineError::UnsupportedMedia(format!("`{name}` {reason}")))
    }
}

fn last_line(text: &str) -> &str {
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no detail");
    line.trim()
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// The pure part of probing, over ffprobe's JSON (kept apart so recorded answers can be tested).
pub fn parse_probe(json: &Value) -> std::result::Result<VideoInfo, String> {
    let streams = json.get("streams").and_then(Value::as_array).cloned().unwrap_or_default();
    let is_type = |s: &Value, kind: &str| s.get("codec_type").and_then(Value::as_str) == Some(kind);
    // Cover art is stored as a one-frame video stream with the attached_pic disposition; ffmpeg's
    // default stream choice skips it, and so do we.
    let attached = |s: &Value| s.pointer("/disposition/attached_pic").and_then(Value::as_i64) == Some(1);
    let video = streams
        .iter()
        .find(|s| is_type(s, "video") && !attached(s))
        .ok_or_else(|| "has no video stream".to_string())?;
    let has_audio = streams.iter().any(|s| is_type(s, "audio"));

    let coded_width = video.get("width").and_then(Value::as_u64).unwrap_or(0) as u32;
    let coded_height = video.get("height").and_then(Value::as_u64).unwrap_or(0) as u32;
    if coded_width == 0 || coded_height == 0 {
        return Err("has a video stream without a frame size".into());
    }
    let rotation = rotation_of(video);
    let (width, height) = if rotation % 180 == 90 { (coded_height, coded_width) } else { (coded_width, coded_height) };

    let rate = |key: &str| video.get(key).and_then(Value::as_str).and_then(Rational::parse);
    let fps_rational = match (rate("r_frame_rate"), rate("avg_frame_rate")) {
        // av_guess_frame_rate: a field-rate r_frame_rate far above a plausible average is replaced.
        (Some(r), Some(avg)) if avg.as_f64() < 70.0 && r.as_f64() > 210.0 => avg,
        (Some(r), _) => r,
        (None, Some(avg)) => avg,
        (None, None) => return Err("has a video stream without a frame rate".into()),
    };
    let fps = fps_rational.as_f64();
    let constant_rate = match (rate("r_frame_rate"), rate("avg_frame_rate")) {
        (Some(r), Some(avg)) => u64::from(r.num) * u64::from(avg.den) == u64::from(avg.num) * u64::from(r.den),
        _ => false,
    };

    let duration = video
        .get("duration")
        .and_then(number)
        .or_else(|| json.pointer("/format/duration").and_then(number))
        .filter(|d| d.is_finite() && *d >= 0.0)
        .unwrap_or(0.0);
    let frame_count = match video.get("nb_frames").and_then(number) {
        Some(n) if n >= 1.0 => n as u64,
        _ => (duration * fps + 0.5).floor() as u64,
    };
    if frame_count == 0 {
        return Err("has a video stream without frames".into());
    }
    let codec = video.get("codec_name").and_then(Value::as_str).unwrap_or("unknown").to_string();
    Ok(VideoInfo { width, height, fps_rational, fps, frame_count, duration, has_audio, codec, rotation, constant_rate })
}

/// The display rotation, from the display-matrix side data (ffmpeg ≥ 5) or the legacy `rotate` tag.
fn rotation_of(video: &Value) -> u32 {
    let side = video
        .get("side_data_list")
        .and_then(Value::as_array)
        .and_then(|list| list.iter().find_map(|d| d.get("rotation").and_then(number)));
    let tag = video.pointer("/tags/rotate").and_then(number);
    let degrees = side.or(tag).unwrap_or(0.0).round() as i64;
    degrees.rem_euclid(360) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job record keeps the probe; its worker must read back the very frame rate (found by the
    /// ffprobe fuzz target: serde_json's default float parser was an ulp off for 2997/101).
    #[test]
    fn a_probe_survives_the_job_records_json_round_trip() {
        let info = VideoInfo {
            width: 36,
            height: 64,
            fps_rational: Rational { num: 2997, den: 101 },
            fps: 2997.0 / 101.0,
            frame_count: 6,
            duration: 0.2002,
            has_audio: false,
            codec: "h264".into(),
            rotation: 270,
            constant_rate: true,
        };
        let back: VideoInfo = serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn recorded_answer_of_the_hamilton_clip() {
        let json = serde_json::json!({
            "streams": [
                {"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360,
                 "r_frame_rate": "2997/100", "avg_frame_rate": "2997/100", "nb_frames": "275",
                 "duration": "9.175843", "disposition": {"attached_pic": 0}},
                {"codec_type": "audio", "codec_name": "aac"}
            ],
            "format": {"duration": "10.008000"}
        });
        let info = parse_probe(&json).unwrap();
        assert_eq!((info.width, info.height, info.frame_count), (640, 360, 275));
        assert_eq!(info.fps_rational, Rational { num: 2997, den: 100 });
        assert!(info.has_audio);
        assert_eq!(info.trim_range(Some(120), Some(180)).unwrap(), (120, 180));
        assert_eq!(info.trim_range(None, Some(9999)).unwrap(), (0, 275));
        assert!(info.trim_range(Some(300), None).is_err());
    }

    #[test]
    fn rotation_swaps_sides_and_missing_count_comes_from_duration() {
        let json = serde_json::json!({
            "streams": [{"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
                "r_frame_rate": "30/1", "avg_frame_rate": "30/1", "duration": "2.0",
                "side_data_list": [{"rotation": -90}]}]
        });
        let info = parse_probe(&json).unwrap();
        assert_eq!((info.width, info.height, info.rotation, info.frame_count), (1080, 1920, 270, 60));
        assert!(!info.has_audio);
    }

    #[test]
    fn sparse_timestamps_count_the_frames_the_decoder_fills_in() {
        // ffprobe's answer for 51 frames at 25 fps whose last frame has its pts at 60 s.
        let json = serde_json::json!({
            "streams": [{"codec_type": "video", "codec_name": "h264", "width": 64, "height": 64,
                "r_frame_rate": "25/1", "avg_frame_rate": "1275/1501", "duration": "60.040000",
                "nb_frames": "51"}],
            "format": {"duration": "60.040000"}
        });
        let info = parse_probe(&json).unwrap();
        assert!(info.has_timestamp_gaps());
        assert_eq!(info.decoded_frames((0, 51), 25.0), 1501);
        assert_eq!(info.decoded_frames((0, 10), 25.0), 1501, "the gap may lie in any part of the range");
        assert_eq!(info.decoded_frames((0, 51), 10.0), 600);
    }

    #[test]
    fn regular_timestamps_keep_facefusions_prediction() {
        let json = serde_json::json!({
            "streams": [{"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360,
                "r_frame_rate": "2997/100", "avg_frame_rate": "2997/100", "nb_frames": "275",
                "duration": "9.175843"}],
            "format": {"duration": "10.008000"}
        });
        let info = parse_probe(&json).unwrap();
        assert!(!info.has_timestamp_gaps());
        assert_eq!(info.decoded_frames((0, 275), info.fps), 275);
        assert_eq!(info.decoded_frames((120, 180), info.fps), 60);
        assert_eq!(info.decoded_frames((0, 60), 29.97), 60);
        assert_eq!(info.decoded_frames((0, 275), 10.0), 91);
        assert_eq!(info.decode_fps(Some(120.0)), 29.97);
        assert_eq!(info.decode_fps(Some(10.0)), 10.0);
        assert_eq!(info.decode_fps(Some(0.1)), 1.0);
    }

    #[test]
    fn audio_only_is_refused() {
        let json = serde_json::json!({"streams": [{"codec_type": "audio", "codec_name": "pcm_s16le"}]});
        assert_eq!(parse_probe(&json).unwrap_err(), "has no video stream");
    }
}
