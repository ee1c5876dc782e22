//! Encoding: [`FrameWriter`] pipes frames into ffmpeg (FaceFusion's merge step), then muxes the audio
//! (its restore/replace step) and moves the result into place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::command::{media_error, py_float, Supervised, Toolchain};
use super::encoders::{
    audio_quality_args, fix_audio_encoder, fix_video_encoder, pixel_format, video_preset_args, video_quality_args,
    AudioEncoder, VideoEncoder, VideoPreset, VIDEO_FORMATS,
};
use crate::error::{MediaFailure, PipelineError, Result};
use crate::raster::Frame;

/// Muxing audio copies the video stream, so it is quick; this bounds a stuck ffmpeg.
const AUDIO_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the output's audio comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioPlan {
    /// No audio (`--skip-audio`, or a target without one).
    None,
    /// FaceFusion's restore_audio: the target's first audio stream, cut to the trimmed frame range.
    Restore { target: PathBuf, trim_frame_start: u64, trim_frame_end: u64, target_fps: f64 },
    /// FaceFusion's replace_audio: an audio file (a source audio), cut to the video's duration.
    Replace { audio: PathBuf },
}

/// FaceFusion's output options for a video.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeOptions {
    /// `--output-video-encoder` (before the container fix).
    pub encoder: VideoEncoder,
    /// `--output-video-preset`.
    pub preset: VideoPreset,
    /// `--output-video-quality`, 0..100.
    pub quality: u8,
    /// The rate the frames come at (the reader's fps, FaceFusion's temp fps).
    pub input_fps: f64,
    /// `--output-video-fps` as resolved (clamped to 1..60 when given, else the target's fps).
    pub output_fps: f64,
    /// The output resolution; `None` keeps the frames' size.
    pub resolution: Option<(u32, u32)>,
    /// The container of the intermediate video, which picks the encoder fixes. FaceFusion names its
    /// temp video after the *target's* extension; `None` uses the output's.
    pub temp_format: Option<String>,
    pub audio: AudioPlan,
    /// `--output-audio-encoder` (before the container fix), `--output-audio-quality` 0..100 and
    /// `--output-audio-volume` 0..100 (0 drops the audio).
    pub audio_encoder: AudioEncoder,
    pub audio_quality: u8,
    pub audio_volume: u8,
    /// The encoder's whole time limit, including waiting for frames: set from the job's budget.
    pub timeout: Duration,
}

impl EncodeOptions {
    /// FaceFusion's defaults at `fps`: libx264, veryfast, quality 80, audio quality 80, volume 100.
    /// The audio encoder is aac rather than FaceFusion's first-available flac, which ffmpeg 5 cannot
    /// put in MP4 (FaceFusion then silently loses the audio); the integration can pass
    /// [`super::AvailableEncoders::default_audio`] to copy FaceFusion exactly.
    pub fn new(fps: f64) -> Self {
        Self {
            encoder: VideoEncoder::Libx264,
            preset: VideoPreset::Veryfast,
            quality: 80,
            input_fps: fps,
            output_fps: fps,
            resolution: None,
            temp_format: None,
            audio: AudioPlan::None,
            audio_encoder: AudioEncoder::Aac,
            audio_quality: 80,
            audio_volume: 100,
            timeout: Duration::from_secs(6 * 3600),
        }
    }
}

/// What happened to the audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioOutcome {
    /// No audio was asked for, or the volume was 0.
    None,
    Restored,
    Replaced,
    /// The audio step failed and the video was kept without audio, as FaceFusion does (a warning).
    Skipped {
        reason: String,
    },
}

/// A finished output video.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedVideo {
    pub path: PathBuf,
    /// Frames handed to the encoder.
    pub frames: u64,
    /// The encoder used, after the container fix.
    pub encoder: VideoEncoder,
    pub audio: AudioOutcome,
}

/// Unique temp names beside the output: a rename within one directory is atomic and cannot cross file
/// systems, and concurrent jobs writing the same output name cannot collide.
pub(super) fn sibling_temp(output: &Path, tag: &str, extension: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    let name = format!(".{stem}.ff-{}-{n}-{tag}.{extension}", std::process::id());
    output.parent().unwrap_or(Path::new(".")).join(name)
}

pub(super) fn extension_of(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default()
}

/// A file removed on drop unless kept: partial outputs never outlive a failure or a cancellation.
pub(super) struct TempFile(pub(super) Option<PathBuf>);

impl TempFile {
    pub(super) fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn persist(mut self, to: &Path) -> Result<()> {
        let from = self.0.take().unwrap_or_default();
        std::fs::rename(&from, to).map_err(|e| {
            let _ = std::fs::remove_file(&from);
            PipelineError::io(to, e)
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Encodes frames to `output`. ffmpeg starts on the first frame, whose size becomes the input size (a
/// frame enhancer changes it). Dropping the writer before [`FrameWriter::finish`] kills ffmpeg and
/// removes every temp file.
pub struct FrameWriter {
    toolchain: Toolchain,
    output: PathBuf,
    options: EncodeOptions,
    temp_format: String,
    encoder: VideoEncoder,
    temp_video: TempFile,
    child: Option<Supervised>,
    stdin: Option<ChildStdin>,
    /// Width, height and channels of the first frame: every later frame must match.
    frame_size: Option<(usize, usize, usize)>,
    rgb: Vec<u8>,
    frames: u64,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("output", &self.output)
            .field("encoder", &self.encoder)
            .field("frames", &self.frames)
            .finish()
    }
}

impl FrameWriter {
    pub fn create(toolchain: &Toolchain, output: &Path, options: EncodeOptions) -> Result<Self> {
        let output_format = extension_of(output);
        if !VIDEO_FORMATS.contains(&output_format.as_str()) {
            return Err(PipelineError::invalid_option(
                "output_path",
                format!("`.{output_format}` is not a video format ({})", VIDEO_FORMATS.join(", ")),
            ));
        }
        let temp_format = options.temp_format.clone().map(|f| f.to_lowercase()).unwrap_or(output_format);
        if !VIDEO_FORMATS.contains(&temp_format.as_str()) {
            return Err(PipelineError::invalid_option("target_path", format!("`{temp_format}` is not a video format")));
        }
        for (name, fps) in [("output_video_fps", options.input_fps), ("output_video_fps", options.output_fps)] {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(PipelineError::invalid_option(name, format!("{fps} is not a frame rate")));
            }
        }
        for (name, value) in [
            ("output_video_quality", options.quality),
            ("output_audio_quality", options.audio_quality),
            ("output_audio_volume", options.audio_volume),
        ] {
            if value > 100 {
                return Err(PipelineError::invalid_option(name, format!("{value} is outside 0..100")));
            }
        }
        if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(PipelineError::MissingInput(format!(
                    "output directory `{}` does not exist",
                    dir.display()
                )));
            }
        }
        let encoder = fix_video_encoder(&temp_format, options.encoder);
        let temp_video = TempFile(Some(sibling_temp(output, "video", &temp_format)));
        Ok(Self {
            toolchain: toolchain.clone(),
            output: output.to_path_buf(),
            options,
            temp_format,
            encoder,
            temp_video,
            child: None,
            stdin: None,
            frame_size: None,
            rgb: Vec::new(),
            frames: 0,
        })
    }

    /// The encoder in use, after the container fix.
    pub fn encoder(&self) -> VideoEncoder {
        self.encoder
    }

    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    /// Appends one BGR frame, or a BGRA frame whose alpha the encoder keeps (VP9 in webm); the first
    /// frame decides which for the whole video.
    pub fn write_frame(&mut self, frame: &Frame) -> Result<()> {
        let channels = frame.channels;
        if !matches!(channels, 3 | 4) || frame.data.len() != frame.width * frame.height * channels || frame.width == 0 {
            return Err(media_error(
                MediaFailure::FfmpegFailed,
                "the encoder takes 3-channel BGR or 4-channel BGRA frames",
            ));
        }
        let size = (frame.width, frame.height, channels);
        match self.frame_size {
            None => self.start(size)?,
            Some(expected) if expected != size => {
                return Err(media_error(
                    MediaFailure::FfmpegFailed,
                    format!(
                        "frame {} is {}x{}x{}, the video is {}x{}x{}",
                        self.frames, size.0, size.1, size.2, expected.0, expected.1, expected.2
                    ),
                ))
            }
            Some(_) => {}
        }
        // ffmpeg gets rgb24, as FaceFusion's rgb24 PNG frames: swscale's bgr24→yuv420p rounds
        // differently from rgb24→yuv420p, and rgb24 makes the encoded frames identical to FaceFusion's.
        self.rgb.clear();
        match channels {
            3 => self.rgb.extend(frame.data.chunks_exact(3).flat_map(|px| [px[2], px[1], px[0]])),
            _ => self.rgb.extend(frame.data.chunks_exact(4).flat_map(|px| [px[2], px[1], px[0], px[3]])),
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(media_error(MediaFailure::FfmpegFailed, "the encoder is closed"));
        };
        if let Err(e) = stdin.write_all(&self.rgb) {
            // A broken pipe means ffmpeg died; its stderr says why.
            let mut child = self.child.take();
            let error = match child.as_mut() {
                Some(child) => {
                    let _ = child.wait();
                    child.failure(&format!("stopped taking frames ({e})"))
                }
                None => media_error(MediaFailure::FfmpegFailed, format!("writing a frame failed: {e}")),
            };
            return Err(error);
        }
        self.frames += 1;
        Ok(())
    }

    fn start(&mut self, (width, height, channels): (usize, usize, usize)) -> Result<()> {
        let input_format = if channels == 4 { "rgba" } else { "rgb24" };
        let args = encode_args((width, height), input_format, &self.options, self.encoder, self.temp_video.path());
        let mut child =
            Supervised::spawn("ffmpeg encoding", &self.toolchain.ffmpeg, &args, true, false, self.options.timeout)?;
        self.stdin = child.take_stdin();
        self.child = Some(child);
        self.frame_size = Some((width, height, channels));
        Ok(())
    }

    /// Closes the stream, waits for the encoder, muxes the audio and moves the video to the output.
    pub fn finish(mut self) -> Result<EncodedVideo> {
        self.stdin.take();
        let Some(mut child) = self.child.take() else {
            return Err(media_error(MediaFailure::FfmpegFailed, "no frame was written, so there is no video"));
        };
        child.wait_success()?;
        drop(child);

        let audio = self.mux_audio()?;
        Ok(EncodedVideo { path: self.output.clone(), frames: self.frames, encoder: self.encoder, audio })
    }

    fn mux_audio(&mut self) -> Result<AudioOutcome> {
        let temp_video = std::mem::replace(&mut self.temp_video, TempFile(None));
        mux_audio(&self.toolchain, temp_video, &self.output, &self.options, &self.temp_format)
    }
}

/// FaceFusion's audio step over an encoded `temp_video` (in the `temp_format` container): restores
/// or replaces the audio into a temp file beside `output` and moves that into place, or moves the
/// video there as it is when there is no audio to add or adding it fails (a warning, as FaceFusion).
pub(super) fn mux_audio(
    toolchain: &Toolchain,
    temp_video: TempFile,
    output: &Path,
    options: &EncodeOptions,
    temp_format: &str,
) -> Result<AudioOutcome> {
    if options.audio_volume == 0 || options.audio == AudioPlan::None {
        temp_video.persist(output)?;
        return Ok(AudioOutcome::None);
    }
    // FaceFusion's -t: the temp video's duration, frame count / fps as OpenCV reads them.
    let info = toolchain.probe(temp_video.path())?;
    let duration = info.frame_count as f64 / info.fps;
    let audio_encoder = fix_audio_encoder(temp_format, options.audio_encoder);
    let with_audio = TempFile(Some(sibling_temp(output, "audio", &extension_of(output))));
    let args = audio_args(temp_video.path(), &options.audio, audio_encoder, options, duration, with_audio.path());
    let outcome = match &options.audio {
        AudioPlan::Replace { .. } => AudioOutcome::Replaced,
        _ => AudioOutcome::Restored,
    };
    let result = Supervised::spawn("ffmpeg audio", &toolchain.ffmpeg, &args, false, false, AUDIO_TIMEOUT)
        .and_then(|mut child| child.wait_success());
    // ffmpeg succeeds without an audio stream when the cut holds no audio packet (a target whose
    // sound starts later than the trimmed range): say so rather than report the audio restored.
    let result = result.and_then(|()| match toolchain.probe(with_audio.path())?.has_audio {
        true => Ok(()),
        false => Err(media_error(MediaFailure::AudioMissing, "the audio source has no sound in the processed range")),
    });
    match result {
        Ok(()) => {
            with_audio.persist(output)?;
            Ok(outcome)
        }
        Err(error) => {
            drop(with_audio);
            tracing::warn!(%error, "the audio could not be added; the video is kept without audio");
            temp_video.persist(output)?;
            Ok(AudioOutcome::Skipped { reason: error.to_string() })
        }
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        // The child is killed before its temp file is removed (TempFile's drop runs after this).
        self.stdin.take();
        self.child.take();
    }
}

/// FaceFusion's merge_video command with the frame pattern replaced by raw rgb24 (or rgba) on stdin.
fn encode_args(
    (width, height): (usize, usize),
    input_format: &str,
    options: &EncodeOptions,
    encoder: VideoEncoder,
    temp_video: &Path,
) -> Vec<String> {
    let mut args: Vec<String> =
        ["-loglevel", "error", "-f", "rawvideo", "-pix_fmt", input_format].map(String::from).to_vec();
    args.extend(["-s".into(), format!("{width}x{height}"), "-r".into(), py_float(options.input_fps)]);
    args.extend(["-i".into(), "-".into()]);
    if let Some((w, h)) = options.resolution {
        args.extend(["-s".into(), format!("{w}x{h}")]);
    }
    args.extend(["-c:v".into(), encoder.name().into()]);
    args.extend(video_quality_args(encoder, options.quality));
    args.extend(video_preset_args(encoder, options.preset));
    let mut filter = format!("fps={}", py_float(options.output_fps));
    if encoder == VideoEncoder::LibvpxVp9 {
        filter.push_str(",format=yuva420p");
    }
    args.extend(["-vf".into(), filter, "-pix_fmt".into(), pixel_format(encoder).into()]);
    args.extend(["-y".into(), temp_video.to_string_lossy().into_owned()]);
    args
}

/// FaceFusion's restore_audio / replace_audio commands.
fn audio_args(
    temp_video: &Path,
    plan: &AudioPlan,
    encoder: AudioEncoder,
    options: &EncodeOptions,
    duration: f64,
    output: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = ["-loglevel", "error", "-nostdin", "-i"].map(String::from).to_vec();
    args.push(temp_video.to_string_lossy().into_owned());
    match plan {
        AudioPlan::Restore { target, trim_frame_start, trim_frame_end, target_fps } => {
            args.extend(["-ss".into(), py_float(*trim_frame_start as f64 / target_fps)]);
            args.extend(["-to".into(), py_float(*trim_frame_end as f64 / target_fps)]);
            args.extend(["-i".into(), target.to_string_lossy().into_owned()]);
        }
        AudioPlan::Replace { audio } => args.extend(["-i".into(), audio.to_string_lossy().into_owned()]),
        AudioPlan::None => {}
    }
    args.extend(["-c:v".into(), "copy".into(), "-c:a".into(), encoder.name().into()]);
    args.extend(audio_quality_args(encoder, options.audio_quality));
    args.extend(["-filter:a".into(), format!("volume={}", py_float(options.audio_volume as f64 / 100.0))]);
    if matches!(plan, AudioPlan::Restore { .. }) {
        args.extend(["-map", "0:v:0", "-map", "1:a:0"].map(String::from));
    }
    args.extend(["-t".into(), py_float(duration), "-y".into(), output.to_string_lossy().into_owned()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_restore_commands_match_facefusion() {
        let mut options = EncodeOptions::new(29.97);
        options.resolution = Some((640, 360));
        let args = encode_args((640, 360), "rgb24", &options, VideoEncoder::Libx264, Path::new("/o/t.mp4"));
        assert_eq!(
            args.join(" "),
            "-loglevel error -f rawvideo -pix_fmt rgb24 -s 640x360 -r 29.97 -i - -s 640x360 -c:v libx264 \
             -crf 10 -preset veryfast -vf fps=29.97 -pix_fmt yuv420p -y /o/t.mp4"
        );
        let args = encode_args((640, 360), "rgba", &options, VideoEncoder::LibvpxVp9, Path::new("/o/t.webm"));
        assert!(args.join(" ").contains("-c:v libvpx-vp9 -crf 13 -vf fps=29.97,format=yuva420p -pix_fmt yuva420p"));

        let plan = AudioPlan::Restore {
            target: "/t.mp4".into(),
            trim_frame_start: 120,
            trim_frame_end: 180,
            target_fps: 29.97,
        };
        let args = audio_args(
            Path::new("/o/t.mp4"),
            &plan,
            AudioEncoder::Aac,
            &options,
            2.002002002002002,
            Path::new("/o/out.mp4"),
        );
        assert_eq!(
            args.join(" "),
            "-loglevel error -nostdin -i /o/t.mp4 -ss 4.004004004004004 -to 6.0060060060060065 -i /t.mp4 -c:v copy \
             -c:a aac -q:a 1.6 -filter:a volume=1.0 -map 0:v:0 -map 1:a:0 -t 2.002002002002002 -y /o/out.mp4"
        );
    }
}
