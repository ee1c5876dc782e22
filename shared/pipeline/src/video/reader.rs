//! Decoding: ffmpeg writes raw bgr24 frames to a pipe and [`FrameReader`] hands them out one at a time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ChildStdout;
use std::time::Duration;

use super::command::{py_float, Supervised, Toolchain};
use super::probe::VideoInfo;
use crate::error::{MediaFailure, PipelineError, Result};
use crate::raster::Frame;

/// What to decode. Field names follow FaceFusion's options.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOptions {
    /// `--trim-frame-start` / `--trim-frame-end`; clamped as FaceFusion does (see [`VideoInfo::trim_range`]).
    pub trim_frame_start: Option<u64>,
    pub trim_frame_end: Option<u64>,
    /// FaceFusion's temp resolution (min of original and scaled, sides even); `None` keeps the video's.
    pub resolution: Option<(u32, u32)>,
    /// FaceFusion's temp fps, min(target fps, output fps); `None` keeps the video's.
    pub fps: Option<f64>,
    /// Only the frames whose number (in the target's numbering) is a multiple of this: the NSFW gate's
    /// one frame a second. ffmpeg still decodes every frame, but converts and pipes only these.
    pub sample_every: Option<u64>,
    /// The whole decode's time limit, including time spent waiting for the consumer: it must cover the
    /// processing of every frame, so it is set from the job's or request's budget.
    pub timeout: Duration,
    /// A keyframe at or before `trim_frame_start` to start decoding at instead of the video's first
    /// frame (a segment late in a long video). Only for videos whose frames map one to one onto
    /// their timestamps (no timestamp gaps): frame numbers then count from the keyframe.
    pub seek: Option<Keyframe>,
}

/// A keyframe of a video: its frame number and its presentation time as ffprobe reads it
/// (absolute, the stream's start included).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Keyframe {
    pub frame: u64,
    pub seconds: f64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            trim_frame_start: None,
            trim_frame_end: None,
            resolution: None,
            fps: None,
            sample_every: None,
            timeout: Duration::from_secs(6 * 3600),
            seek: None,
        }
    }
}

/// Streams the frames of a video as BGR [`Frame`]s, holding one frame's bytes at a time.
/// Dropping it kills ffmpeg.
pub struct FrameReader {
    child: Supervised,
    stdout: ChildStdout,
    name: String,
    width: usize,
    height: usize,
    fps: f64,
    trim: (u64, u64),
    expected_frames: u64,
    /// The most frames read before the stream is taken to lie about its length: what the length
    /// limit was checked on, plus the slack of [`VideoInfo::has_timestamp_gaps`].
    max_frames: u64,
    frames_read: u64,
    finished: bool,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("name", &self.name)
            .field("size", &(self.width, self.height))
            .field("fps", &self.fps)
            .field("trim", &self.trim)
            .field("frames_read", &self.frames_read)
            .finish()
    }
}

impl FrameReader {
    /// Starts decoding `path`, which `info` describes (from [`Toolchain::probe`]).
    pub fn open(toolchain: &Toolchain, path: &Path, info: &VideoInfo, options: &ReadOptions) -> Result<Self> {
        let (start, end) = info.trim_range(options.trim_frame_start, options.trim_frame_end)?;
        let fps = options.fps.unwrap_or(info.fps);
        if !(fps.is_finite() && fps > 0.0) {
            return Err(PipelineError::invalid_option("output_video_fps", format!("{fps} is not a frame rate")));
        }
        let (width, height) = options.resolution.unwrap_or((info.width, info.height));
        if width == 0 || height == 0 {
            return Err(PipelineError::invalid_option("output_video_scale", format!("{width}x{height} is empty")));
        }
        let sample_every = options.sample_every.filter(|&every| every > 1);
        // Seeking is only worth it past the first keyframe, and only right before the range.
        let seek = options.seek.filter(|keyframe| keyframe.frame > 0 && keyframe.frame <= start);
        let seek = seek.map(|keyframe| Seek { keyframe, frame_seconds: 1.0 / info.fps });
        let args = decode_args(path, options.resolution, (start, end), fps, sample_every, seek);
        let mut child = Supervised::spawn("ffmpeg decoding", &toolchain.ffmpeg, &args, false, true, options.timeout)?;
        let stdout = child.take_stdout().ok_or_else(|| {
            super::command::media_error(MediaFailure::FfmpegFailed, "ffmpeg decoding: no stdout pipe")
        })?;
        let expected_frames = match sample_every {
            // `select` counts the frames leaving the fps filter, which fills timestamp gaps.
            Some(every) if info.has_timestamp_gaps() => info.decoded_frames((start, end), fps).div_ceil(every) + 1,
            // The multiples of `every` in [start, end).
            Some(every) => end.div_ceil(every) - start.div_ceil(every),
            None => info.decoded_frames((start, end), fps),
        };
        Ok(Self {
            child,
            stdout,
            name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            width: width as usize,
            height: height as usize,
            fps,
            trim: (start, end),
            expected_frames,
            max_frames: expected_frames + expected_frames / 50 + 3,
            frames_read: 0,
            finished: false,
        })
    }

    /// Frame `index` of the video (its own numbering, size and rate) alone; `None` past its end.
    pub fn read_one(
        toolchain: &Toolchain,
        path: &Path,
        info: &VideoInfo,
        index: u64,
        timeout: Duration,
    ) -> Result<Option<Frame>> {
        let options = ReadOptions {
            trim_frame_start: Some(index),
            trim_frame_end: Some(index + 1),
            timeout,
            ..ReadOptions::default()
        };
        let mut reader = Self::open(toolchain, path, info, &options)?;
        let frame = reader.next_frame()?;
        reader.abort();
        Ok(frame)
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// The rate frames come out at (the fps filter's).
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// The clamped trim range, in source frames.
    pub fn trim(&self) -> (u64, u64) {
        self.trim
    }

    /// How many frames FaceFusion predicts for this range; the progress total.
    pub fn expected_frames(&self) -> u64 {
        self.expected_frames
    }

    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// Kills ffmpeg now (cancellation); later reads return `Ok(None)`.
    pub fn abort(&mut self) {
        self.finished = true;
        self.child.kill();
    }

    /// The next frame, `None` at the end of the range.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.finished {
            return Ok(None);
        }
        let mut data = vec![0u8; self.width * self.height * 3];
        let mut filled = 0;
        while filled < data.len() {
            match self.stdout.read(&mut data[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.finished = true;
                    self.child.kill();
                    return Err(self.child.failure(&format!("could not be read: {e}")));
                }
            }
        }
        if filled == data.len() {
            if self.frames_read == self.max_frames {
                self.abort();
                return Err(PipelineError::media(
                    MediaFailure::VideoTooLong,
                    format!(
                        "`{}` decodes to more than the {} frames its header announces; refused",
                        self.name, self.expected_frames
                    ),
                ));
            }
            self.frames_read += 1;
            return Ok(Some(Frame::from_vec(self.width, self.height, 3, data)));
        }
        self.finished = true;
        self.end_of_stream(filled)?;
        Ok(None)
    }

    /// At EOF: ffmpeg's exit status decides between a clean end and a decode failure.
    fn end_of_stream(&mut self, partial_bytes: usize) -> Result<()> {
        let status = self.child.wait()?;
        let stderr = self.child.stderr_text();
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no detail").trim().to_string();
        if !status.success() {
            return Err(PipelineError::UnsupportedMedia(format!(
                "`{}` could not be decoded after {} frames ({status}): {last}",
                self.name, self.frames_read
            )));
        }
        if partial_bytes > 0 {
            return Err(PipelineError::UnsupportedMedia(format!(
                "`{}`: ffmpeg ended in the middle of frame {}: {last}",
                self.name, self.frames_read
            )));
        }
        // ffmpeg exits 0 on a truncated file ("partial file"), having decoded what was there. A short
        // count together with error output is a damaged input, not a shorter video.
        if self.frames_read < self.expected_frames && !stderr.is_empty() {
            return Err(PipelineError::UnsupportedMedia(format!(
                "`{}` is truncated or corrupt: decoded {} of {} frames: {last}",
                self.name, self.frames_read, self.expected_frames
            )));
        }
        if self.frames_read == 0 {
            return Err(PipelineError::UnsupportedMedia(format!("`{}`: no frame could be decoded", self.name)));
        }
        Ok(())
    }
}

impl Iterator for FrameReader {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

/// Where a decode starts when it seeks: the keyframe, and one frame's duration at the video's rate.
#[derive(Clone, Copy, Debug)]
struct Seek {
    keyframe: Keyframe,
    frame_seconds: f64,
}

/// FaceFusion's extract_frames command, with the image-sequence output replaced by raw bgr24 on stdout.
/// `-s` and `-pix_fmt` are output options, so ffmpeg scales and converts after trim and fps, exactly as
/// when FaceFusion writes its temp frames; bgr24 instead of rgb24 only swaps the channel order.
///
/// With `seek`, ffmpeg seeks by timestamp to a tenth of a frame before the keyframe (so rounding
/// cannot drop it, and the frame before it, almost a whole frame earlier, is dropped by the accurate
/// seek) and the trim range counts from the keyframe: the same frames come out as from the video's
/// start. A tenth, not a half: the seek rebases the timestamps, and the `fps` filter rounds them to
/// the nearest frame, so they must stay near whole frames as in a decode from the start, not on
/// the rounding boundary where a millisecond time base's jitter would drop or repeat frames.
fn decode_args(
    path: &Path,
    resolution: Option<(u32, u32)>,
    (start, end): (u64, u64),
    fps: f64,
    sample_every: Option<u64>,
    seek: Option<Seek>,
) -> Vec<String> {
    let mut args: Vec<String> = vec!["-loglevel".into(), "error".into(), "-nostdin".into()];
    let first = match seek {
        Some(Seek { keyframe, frame_seconds }) => {
            let at = (keyframe.seconds - frame_seconds / 10.0).max(0.0);
            args.extend(["-seek_timestamp".into(), "1".into(), "-ss".into(), format!("{at:.6}")]);
            keyframe.frame
        }
        None => 0,
    };
    args.push("-i".into());
    args.push(PathBuf::from(path).to_string_lossy().into_owned());
    if let Some((w, h)) = resolution {
        args.extend(["-s".into(), format!("{w}x{h}")]);
    }
    args.extend(["-pix_fmt".into(), "bgr24".into()]);
    let mut filters = format!("trim=start_frame={}:end_frame={},fps={}", start - first, end - first, py_float(fps));
    if let Some(every) = sample_every {
        // `n` counts the frames reaching select from 0, i.e. from frame `start`.
        filters.push_str(&format!(",select=not(mod(n+{start}\\,{every}))"));
    }
    args.extend(["-vf".into(), filters]);
    // Only the video is wanted on the pipe; -vsync 0 passes frames through as FaceFusion does.
    args.extend(["-vsync", "0", "-an", "-sn", "-dn", "-f", "rawvideo", "-"].map(String::from));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_command_matches_facefusion_extraction() {
        let args = decode_args(Path::new("/v/t.mp4"), Some((640, 360)), (120, 180), 29.97, None, None);
        assert_eq!(
            args.join(" "),
            "-loglevel error -nostdin -i /v/t.mp4 -s 640x360 -pix_fmt bgr24 \
             -vf trim=start_frame=120:end_frame=180,fps=29.97 -vsync 0 -an -sn -dn -f rawvideo -"
        );
        let sampled = decode_args(Path::new("/v/t.mp4"), None, (5, 90), 30.0, Some(30), None);
        assert!(sampled.contains(&r"trim=start_frame=5:end_frame=90,fps=30.0,select=not(mod(n+5\,30))".to_string()));
    }

    #[test]
    fn a_seek_starts_a_tenth_of_a_frame_before_the_keyframe_and_counts_from_it() {
        let seek = Seek { keyframe: Keyframe { frame: 120, seconds: 4.023 }, frame_seconds: 0.04 };
        let args = decode_args(Path::new("/v/t.mp4"), None, (130, 180), 25.0, None, Some(seek));
        assert_eq!(
            args.join(" "),
            "-loglevel error -nostdin -seek_timestamp 1 -ss 4.019000 -i /v/t.mp4 -pix_fmt bgr24 \
             -vf trim=start_frame=10:end_frame=60,fps=25.0 -vsync 0 -an -sn -dn -f rawvideo -"
        );
    }
}
