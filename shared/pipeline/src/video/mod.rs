//! Video targets: ffmpeg decoding and encoding over pipes, frames processed in parallel in memory.
//!
//! # From FaceFusion's temp frames to streaming
//!
//! FaceFusion 3.5.3 (spec §11.2) works through the file system:
//!
//! | FaceFusion step | here |
//! |---|---|
//! | extract: `ffmpeg -i target -s <temp res> -q:v 0 -pix_fmt rgb24 -vf trim=start_frame=S:end_frame=E,fps=Ft -vsync 0 temp/%08d.png` | [`FrameReader`]: the same command with `-pix_fmt bgr24 -f rawvideo -` (stdout). The frames are bit-identical: FaceFusion reads its rgb24 PNGs back as BGR with OpenCV, and swscale's yuv→bgr24 is yuv→rgb24 with the channels swapped (checked against the golden `input_md5` of parity case 08). |
//! | process: a pool of `--execution-thread-count` workers, each reading a PNG, running the processors and writing the PNG back | [`process_video`]: `workers` threads take frames from the decoder; at most `max_in_flight` frames exist between decoder and encoder, so memory does not grow with the length |
//! | merge: `ffmpeg -r Ft -i temp/%08d.png -s <out res> -c:v <enc> <quality> <preset> -vf fps=Fo -pix_fmt <pf> temp/temp.<ext>` | [`FrameWriter`]: the same command reading `-f rawvideo -pix_fmt rgb24 -s WxH -r Ft -i -` (stdin). Frames go in as rgb24, like FaceFusion's PNGs, because swscale converts bgr24 to yuv420p with different rounding; with rgb24 the encoded frames are identical |
//! | audio: `restore_audio` / `replace_audio` with `-c:v copy`, or a plain move when the volume is 0 | [`FrameWriter::finish`]: the same commands into a temp file beside the output, renamed into place; on failure the video is kept without audio and the outcome says why ([`AudioOutcome::Skipped`]) |
//!
//! Options that lose their meaning: `--temp-frame-format` (no frame is written to disk, so PNG, JPEG, BMP
//! or TIFF make no difference; with FaceFusion a lossy JPEG temp format would even change the pixels) and
//! `--keep-temp` (there is no temp directory to keep; the only temp files are the encoded video before
//! its audio is added, removed on success, failure and cancellation). `--temp-path` only matters for
//! that intermediate video, which is written beside the output so that the final rename is atomic.
//!
//! Every ffmpeg/ffprobe process runs under a deadline (a watchdog kills it), is killed when its owner is
//! dropped, and keeps the tail of its stderr for the error message.

mod command;
mod encoders;
mod pipeline;
mod probe;
mod reader;
mod segments;
mod writer;

pub use command::Toolchain;
// The audio decoder (crate::audio) runs its ffmpeg under the same supervision.
pub(crate) use command::{media_error, Supervised};
pub use encoders::{
    audio_quality_args, available_encoders, fix_audio_encoder, fix_video_encoder, pixel_format, video_preset_args,
    video_quality_args, AudioEncoder, AvailableEncoders, VideoEncoder, VideoPreset, VIDEO_FORMATS,
};
pub use pipeline::{cancelled_error, process_video, FrameSource, Parallelism, Progress, StillFrames};
pub use probe::{parse_probe, probe, Rational, VideoInfo};
pub use reader::{FrameReader, Keyframe, ReadOptions};
pub use segments::{join_segments, seek_point, segment_ranges, MAX_SEGMENTS};
pub use writer::{AudioOutcome, AudioPlan, EncodeOptions, EncodedVideo, FrameWriter};
