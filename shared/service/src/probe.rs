//! A video target is probed once, early: before a `/process` request waits for a slot, when a job is
//! created from an upload, or when a worker first has the file. The probe checks the part to process
//! against the route's limit and is then carried to the engine, which does not probe again.

use std::path::Path;
use std::time::Duration;

use ff_pipeline::options::ProcessOptions;
use ff_pipeline::video::{Toolchain, VideoInfo};
use ff_pipeline::PipelineError;

use crate::error::ApiError;

/// The longest video a route processes, counted over the trim range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationLimit {
    /// POST /api/v1/process: FF_MAX_SYNC_VIDEO_SECS.
    Sync(u64),
    /// Jobs and batch inputs: FF_MAX_JOB_VIDEO_SECS.
    Job(u64),
    /// `ff process`: the user's own machine and time.
    Unbounded,
}

impl DurationLimit {
    /// The limit, also the longest video a photo may become while speaking its audio.
    pub fn max_duration(self) -> Option<Duration> {
        match self {
            Self::Sync(seconds) | Self::Job(seconds) => Some(Duration::from_secs(seconds)),
            Self::Unbounded => None,
        }
    }
}

/// Probes the target video and refuses it when the part to process (the trim range) is longer than
/// the limit, before any frame is decoded. Blocking (ffprobe): call it on the blocking pool.
///
/// A file ffprobe cannot read, or without a video stream, is `invalid_media` (422): its bytes looked
/// like a video container, so it is damaged rather than of an unsupported kind.
pub fn probe_video(path: &Path, options: &ProcessOptions, limit: DurationLimit) -> Result<VideoInfo, ApiError> {
    let info = Toolchain::from_env().probe(path).map_err(|error| match error {
        PipelineError::UnsupportedMedia(message) => ApiError::InvalidMedia(message),
        other => ApiError::from(other),
    })?;
    check_duration(&info, options, limit)?;
    Ok(info)
}

/// Frames a run over `info` with `options` decodes and processes: the trim range at the decoding
/// fps, with the frames the decoder fills into timestamp gaps (see [`VideoInfo::decoded_frames`]).
pub fn planned_frames(info: &VideoInfo, options: &ProcessOptions) -> Result<u64, ApiError> {
    let video = &options.output.video;
    let trim = info.trim_range(video.trim_frame_start, video.trim_frame_end)?;
    Ok(info.decoded_frames(trim, info.decode_fps(video.video_fps)))
}

/// Refuses a video whose part to process (the trim range) is longer than `limit`, measured on the
/// frames the decoder will really produce, not on the frame count the header states.
pub fn check_duration(info: &VideoInfo, options: &ProcessOptions, limit: DurationLimit) -> Result<(), ApiError> {
    let frames = planned_frames(info, options)?;
    let fps = info.decode_fps(options.output.video.video_fps).max(f64::MIN_POSITIVE);
    let seconds = frames as f64 / fps;
    let (max, place, advice) = match limit {
        DurationLimit::Unbounded => return Ok(()),
        DurationLimit::Sync(max) => (
            max,
            "POST /api/v1/process takes",
            "send it to POST /api/v1/jobs, or trim it with trim_frame_start/trim_frame_end",
        ),
        DurationLimit::Job(max) => (max, "a job takes", "trim it with trim_frame_start/trim_frame_end or split it"),
    };
    if seconds > max as f64 {
        return Err(ApiError::VideoTooLong(format!(
            "the video to process is {seconds:.1} s long ({frames} frames at {fps:.2} fps); {place} at most {max} s: {advice}"
        )));
    }
    Ok(())
}
