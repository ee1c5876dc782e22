//! What a request's files are and where they go: images through `Engine::process_image` in memory,
//! videos (and images that become videos) through `Engine::process_video` on disk.
//!
//! The kinds come from the files' first bytes (`ff_pipeline::media::sniff`), never from names or
//! content types a client sends. A video run works in one temporary directory under FF_TEMP_DIR
//! ([`VideoWorkspace`]) holding the target and the encoded result; the directory is removed when
//! the workspace is dropped, whether the run succeeded, failed or was cancelled.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ff_pipeline::engine::VideoRequest;
use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::media::{produces_video, sniff, MediaKind};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::video::{Toolchain, VideoInfo, VIDEO_FORMATS};
use ff_pipeline::PipelineError;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::storage::{Storage, StorageError};

/// The container of a video result when neither the request nor the target names one.
pub const DEFAULT_VIDEO_CONTAINER: &str = "mp4";

/// Bytes read from a downloaded target to tell what it is.
const SNIFF_BYTES: usize = 4096;

/// What a client may ask a result to be encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Image(ImageFormat),
    /// One of FaceFusion's video containers (`VIDEO_FORMATS`).
    Video(&'static str),
}

impl OutputFormat {
    /// `jpg`, `png`, …, `mp4`, `mov`, …, case-insensitively.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let name = text.trim().to_ascii_lowercase();
        if let Some(format) = ImageFormat::from_name(&name).filter(|_| !name.contains('.')) {
            return Ok(Self::Image(format));
        }
        if let Some(container) = VIDEO_FORMATS.iter().find(|c| **c == name) {
            return Ok(Self::Video(container));
        }
        Err(ApiError::InvalidOption {
            option: "output_format".into(),
            reason: format!(
                "`{text}` is not one of jpg, jpeg, png, webp, bmp (images) or {}",
                VIDEO_FORMATS.join(", ")
            ),
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Image(format) => format.extension(),
            Self::Video(container) => container,
        }
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Image in, image out; `None` keeps the target's format.
    Image { output_format: Option<ImageFormat> },
    /// A video comes out: the target is written to disk as `target.<target_extension>`, the result
    /// encoded into `output.<container>`.
    Video { target_extension: &'static str, container: &'static str },
}

/// Decides the route from the files' kinds and the options, and refuses what cannot work: bytes
/// that are no known medium (415), an audio target or a video source (415), audio sources that
/// nothing would speak (400), an output format of the wrong kind (400).
pub fn route(
    sources: &[Vec<u8>],
    target: &[u8],
    target_name: Option<&str>,
    options: &ProcessOptions,
    output_format: Option<OutputFormat>,
) -> Result<Route, ApiError> {
    let target_kind = match sniff(target) {
        None => {
            return Err(ApiError::UnsupportedMedia(
                "`target` is not a JPEG, PNG, WebP or BMP image nor a video container ffmpeg reads".into(),
            ))
        }
        Some(MediaKind::Audio) => {
            return Err(ApiError::UnsupportedMedia("`target` is audio; a target is an image or a video".into()))
        }
        Some(kind) => kind,
    };
    let mut source_kinds = Vec::with_capacity(sources.len());
    for (index, bytes) in sources.iter().enumerate() {
        match sniff(bytes) {
            None => {
                return Err(ApiError::UnsupportedMedia(format!(
                    "`source` {index} is neither an image (JPEG, PNG, WebP, BMP) nor audio"
                )))
            }
            Some(MediaKind::Video) => {
                return Err(ApiError::UnsupportedMedia(format!(
                    "`source` {index} is a video; sources are images (faces) or audio (speech for lip_syncer)"
                )))
            }
            Some(kind) => source_kinds.push(kind),
        }
    }
    let image_output = matches!(output_format, Some(OutputFormat::Image(_)));
    if !produces_video(target_kind, &source_kinds, options, image_output) {
        if source_kinds.contains(&MediaKind::Audio) {
            return Err(ApiError::BadRequest(
                "an audio source is only spoken by lip_syncer into a video result: add lip_syncer to the \
                 processors and ask for no image output_format"
                    .into(),
            ));
        }
        return match output_format {
            Some(OutputFormat::Video(container)) => Err(ApiError::InvalidOption {
                option: "output_format".into(),
                reason: format!("`{container}` is a video container, but this request produces an image"),
            }),
            Some(OutputFormat::Image(format)) => Ok(Route::Image { output_format: Some(format) }),
            None => Ok(Route::Image { output_format: None }),
        };
    }
    let target_extension = match target_kind {
        MediaKind::Image(format) => format.extension(),
        _ => container_of(target, target_name).unwrap_or(DEFAULT_VIDEO_CONTAINER),
    };
    let container = match output_format {
        Some(OutputFormat::Video(container)) => container,
        Some(OutputFormat::Image(format)) => {
            return Err(ApiError::InvalidOption {
                option: "output_format".into(),
                reason: format!(
                    "`{}` is an image format, but a video target gives a video: use one of {}",
                    format.extension(),
                    VIDEO_FORMATS.join(", ")
                ),
            })
        }
        None if target_kind == MediaKind::Video => target_extension,
        None => DEFAULT_VIDEO_CONTAINER,
    };
    Ok(Route::Video { target_extension, container })
}

/// A video's container, from its file name when that names one of FaceFusion's, else from its
/// magic numbers; `None` when neither says.
pub fn container_of(bytes: &[u8], file_name: Option<&str>) -> Option<&'static str> {
    let named = file_name
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .and_then(|extension| VIDEO_FORMATS.iter().find(|c| **c == extension).copied());
    named.or_else(|| {
        let head = &bytes[..bytes.len().min(64)];
        let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
        if bytes.get(4..8) == Some(b"ftyp") {
            Some(if bytes.get(8..12) == Some(b"qt  ") { "mov" } else { "mp4" })
        } else if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            Some(if contains(b"webm") { "webm" } else { "mkv" })
        } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"AVI ") {
            Some("avi")
        } else if bytes.starts_with(&[0x30, 0x26, 0xB2, 0x75]) {
            Some("wmv")
        } else if bytes.starts_with(&[0x00, 0x00, 0x01, 0xBA]) {
            Some("mpeg")
        } else if bytes.starts_with(&[0x06, 0x0E, 0x2B, 0x34]) {
            Some("mxf")
        } else {
            None
        }
    })
}

/// The extension an input is stored under (job inputs): what its bytes are, not what it was called.
pub fn input_extension(field: &str, bytes: &[u8]) -> Result<&'static str, ApiError> {
    match sniff(bytes) {
        Some(MediaKind::Image(format)) => Ok(format.extension()),
        Some(MediaKind::Video) => Ok(container_of(bytes, None).unwrap_or(DEFAULT_VIDEO_CONTAINER)),
        Some(MediaKind::Audio) => Ok(audio_extension(bytes)),
        None => Err(ApiError::UnsupportedMedia(format!("`{field}` is not an image, a video or audio file"))),
    }
}

fn audio_extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"RIFF") {
        "wav"
    } else if bytes.starts_with(b"fLaC") {
        "flac"
    } else if bytes.starts_with(b"OggS") {
        "ogg"
    } else if bytes.get(4..8) == Some(b"ftyp") {
        "m4a"
    } else if bytes.starts_with(b"FORM") {
        "aiff"
    } else {
        "mp3"
    }
}

/// The MIME type of a result, from its extension.
pub fn mime_of(extension: &str) -> &'static str {
    if let Some(format) = ImageFormat::from_name(extension) {
        return format.mime();
    }
    match extension.to_ascii_lowercase().as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mpeg" => "video/mpeg",
        "mxf" => "application/mxf",
        "wmv" => "video/x-ms-wmv",
        _ => "application/octet-stream",
    }
}

/// The extension for a MIME type `mime_of` gives; `None` for others.
pub fn extension_of_mime(mime: &str) -> Option<&'static str> {
    let mime = mime.split(';').next().unwrap_or("").trim();
    ["jpg", "png", "webp", "bmp", "mp4", "mov", "mkv", "webm", "avi", "mpeg", "mxf", "wmv"]
        .into_iter()
        .find(|extension| mime_of(extension) == mime)
}

/// One video run's directory: the target and the result, removed on drop.
#[derive(Debug)]
pub struct VideoWorkspace {
    dir: tempfile::TempDir,
    target: PathBuf,
    output: PathBuf,
}

impl VideoWorkspace {
    /// A fresh directory under `temp_dir`.
    pub fn create(temp_dir: &Path, target_extension: &str, container: &str) -> Result<Self, ApiError> {
        let dir = tempfile::Builder::new()
            .prefix("ff-video-")
            .tempdir_in(temp_dir)
            .map_err(|e| ApiError::internal(format!("cannot create a directory in {}: {e}", temp_dir.display())))?;
        let target = dir.path().join(format!("target.{target_extension}"));
        let output = dir.path().join(format!("output.{container}"));
        Ok(Self { dir, target, output })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn output(&self) -> &Path {
        &self.output
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// False for an image target (a photo lip_syncer turns into a video).
    pub fn target_is_video(&self) -> bool {
        self.target.extension().and_then(|e| e.to_str()).and_then(ImageFormat::from_name).is_none()
    }

    /// Renames the target already in the directory to `target.<target_extension>` and sets the
    /// result's container (a target downloaded before its kind was known).
    pub fn rename(&mut self, target_extension: &str, container: &str) -> Result<(), ApiError> {
        let target = self.dir.path().join(format!("target.{target_extension}"));
        std::fs::rename(&self.target, &target)
            .map_err(|e| ApiError::internal(format!("cannot rename {}: {e}", self.target.display())))?;
        self.target = target;
        self.output = self.dir.path().join(format!("output.{container}"));
        Ok(())
    }

    /// The pipeline request for this directory's target and output. `limit` also bounds the video a
    /// photo becomes when the lip syncer speaks an audio source (its length is the audio's).
    pub fn request(
        &self,
        sources: Vec<Vec<u8>>,
        options: ProcessOptions,
        timeout: std::time::Duration,
        limit: DurationLimit,
    ) -> VideoRequest {
        VideoRequest {
            sources,
            target: self.target.clone(),
            output: self.output.clone(),
            options,
            parallelism: None,
            timeout,
            max_duration: Some(std::time::Duration::from_secs(limit.seconds())),
        }
    }

    pub async fn write_target(&self, bytes: &[u8]) -> Result<(), ApiError> {
        tokio::fs::write(&self.target, bytes)
            .await
            .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", self.target.display())))
    }
}

/// Streams `key` into `path`, refusing more than `max_bytes`; the file is never held in memory.
pub async fn download(storage: &Arc<dyn Storage>, key: &str, path: &Path, max_bytes: u64) -> Result<(), StorageError> {
    let body = storage.get(key).await?;
    if body.meta.size > max_bytes {
        return Err(StorageError::TooLarge { key: key.to_string(), limit: max_bytes });
    }
    let local = |e: std::io::Error| StorageError::backend("download", key, format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::create(path).await.map_err(local)?;
    let mut stream = body.stream;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(StorageError::TooLarge { key: key.to_string(), limit: max_bytes });
        }
        file.write_all(&chunk).await.map_err(local)?;
    }
    file.flush().await.map_err(local)
}

/// The first bytes of a file, enough to tell its kind and container.
pub async fn read_head(path: &Path) -> Result<Vec<u8>, ApiError> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| ApiError::internal(format!("opening {} failed: {e}", path.display())))?;
    let mut head = vec![0u8; SNIFF_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]).await {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) => return Err(ApiError::internal(format!("reading {} failed: {e}", path.display()))),
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// Which limit a too-long video broke, for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationLimit {
    /// POST /api/v1/process: FF_MAX_SYNC_VIDEO_SECS.
    Sync(u64),
    /// Jobs and batch inputs: FF_MAX_JOB_VIDEO_SECS.
    Job(u64),
}

impl DurationLimit {
    pub fn seconds(self) -> u64 {
        match self {
            Self::Sync(seconds) | Self::Job(seconds) => seconds,
        }
    }
}

/// Probes the target video and refuses it when the part to process (the trim range) is longer than
/// the limit, before any frame is decoded. Blocking (ffprobe): call from a blocking thread.
///
/// A file ffprobe cannot read, or without a video stream, is `invalid_media` (422): its bytes looked
/// like a video container, so it is damaged rather than of an unsupported kind.
pub fn check_video(path: &Path, options: &ProcessOptions, limit: DurationLimit) -> Result<VideoInfo, ApiError> {
    let info = Toolchain::from_env().probe(path).map_err(|error| match error {
        PipelineError::UnsupportedMedia(message) => ApiError::InvalidMedia(message),
        other => ApiError::from(other),
    })?;
    let video = &options.output.video;
    let (start, end) = info.trim_range(video.trim_frame_start, video.trim_frame_end)?;
    let seconds = (end - start) as f64 / info.fps.max(f64::MIN_POSITIVE);
    let (max, advice) = match limit {
        DurationLimit::Sync(max) => {
            (max, "send it to POST /api/v1/jobs, or trim it with trim_frame_start/trim_frame_end")
        }
        DurationLimit::Job(max) => (max, "trim it with trim_frame_start/trim_frame_end or split it"),
    };
    if seconds > max as f64 {
        let place = match limit {
            DurationLimit::Sync(_) => "POST /api/v1/process takes",
            DurationLimit::Job(_) => "a job takes",
        };
        return Err(ApiError::VideoTooLong(format!(
            "the video to process is {seconds:.1} s long ({} frames at {:.2} fps); {place} at most {max} s: {advice}",
            end - start,
            info.fps
        )));
    }
    Ok(info)
}

/// Sets a cancel flag when dropped: a run whose caller went away (client gone, request timed out,
/// worker stopped) stops within one frame instead of running on unobserved.
#[derive(Debug)]
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether a pipeline error is the cancellation the cancel flag asked for.
pub fn is_cancelled(error: &PipelineError) -> bool {
    matches!(error, PipelineError::Media { code: "cancelled", .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(head: &[u8]) -> Vec<u8> {
        let mut bytes = head.to_vec();
        bytes.resize(64, 0);
        bytes
    }

    fn png() -> Vec<u8> {
        padded(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR")
    }

    fn mp4() -> Vec<u8> {
        padded(b"\0\0\0\x20ftypisom")
    }

    fn wav() -> Vec<u8> {
        padded(b"RIFF\0\0\0\0WAVEfmt ")
    }

    #[test]
    fn output_formats_are_images_or_video_containers() {
        assert_eq!(OutputFormat::parse("JPEG").unwrap(), OutputFormat::Image(ImageFormat::Jpeg));
        assert_eq!(OutputFormat::parse("mov").unwrap(), OutputFormat::Video("mov"));
        assert_eq!(OutputFormat::parse("gif").unwrap_err().code(), "invalid_option");
        assert!(OutputFormat::parse("a.png").is_err());
    }

    #[test]
    fn images_stay_images_and_videos_keep_their_container() {
        let options = ProcessOptions::default();
        assert_eq!(route(&[png()], &png(), None, &options, None).unwrap(), Route::Image { output_format: None });
        assert_eq!(
            route(&[png()], &mp4(), Some("clip.MOV"), &options, None).unwrap(),
            Route::Video { target_extension: "mov", container: "mov" }
        );
        assert_eq!(
            route(&[png()], &mp4(), None, &options, Some(OutputFormat::Video("mkv"))).unwrap(),
            Route::Video { target_extension: "mp4", container: "mkv" }
        );
    }

    #[test]
    fn wrong_kinds_are_refused_with_their_status() {
        let options = ProcessOptions::default();
        let code = |result: Result<Route, ApiError>| result.unwrap_err().code();
        assert_eq!(code(route(&[png()], b"GIF89a", None, &options, None)), "unsupported_media");
        assert_eq!(code(route(&[png()], &wav(), None, &options, None)), "unsupported_media");
        let video_source = route(&[mp4()], &png(), None, &options, None).unwrap_err();
        assert_eq!(video_source.code(), "unsupported_media");
        assert!(video_source.to_string().contains("is a video"), "{video_source}");
        assert_eq!(code(route(&[wav()], &png(), None, &options, None)), "bad_request");
        let png_out = Some(OutputFormat::Image(ImageFormat::Png));
        assert_eq!(code(route(&[png()], &mp4(), None, &options, png_out)), "invalid_option");
        assert_eq!(code(route(&[png()], &png(), None, &options, Some(OutputFormat::Video("mp4")))), "invalid_option");
    }

    #[test]
    fn an_image_spoken_by_lip_syncer_becomes_an_mp4() {
        let options = ProcessOptions { processors: vec!["lip_syncer".into()], ..ProcessOptions::default() };
        assert_eq!(
            route(&[wav()], &png(), None, &options, None).unwrap(),
            Route::Video { target_extension: "png", container: "mp4" }
        );
    }

    #[test]
    fn containers_come_from_names_then_magic() {
        assert_eq!(container_of(&mp4(), Some("a.webm")), Some("webm"));
        assert_eq!(container_of(&padded(b"\0\0\0\x14ftypqt  "), None), Some("mov"));
        assert_eq!(container_of(&padded(b"\x1A\x45\xDF\xA3\x42\x82\x84webm"), None), Some("webm"));
        assert_eq!(container_of(&padded(b"\x1A\x45\xDF\xA3"), None), Some("mkv"));
        assert_eq!(container_of(b"FLV\x01", Some("x.flv")), None);
        assert_eq!(input_extension("source", &wav()).unwrap(), "wav");
        assert_eq!(input_extension("target", &mp4()).unwrap(), "mp4");
    }

    #[test]
    fn mime_types_round_trip() {
        for extension in ["jpg", "png", "mp4", "mov", "mkv", "webm", "avi"] {
            assert_eq!(extension_of_mime(mime_of(extension)), Some(extension), "{extension}");
        }
        assert_eq!(mime_of("MP4"), "video/mp4");
        assert_eq!(extension_of_mime("text/plain"), None);
    }

    #[test]
    fn a_dropped_guard_cancels() {
        let flag = Arc::new(AtomicBool::new(false));
        drop(CancelOnDrop(Arc::clone(&flag)));
        assert!(flag.load(Ordering::Relaxed));
    }

    #[test]
    fn the_workspace_is_removed_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let workspace = VideoWorkspace::create(root.path(), "mp4", "mkv").unwrap();
        assert!(workspace.target().ends_with("target.mp4") && workspace.output().ends_with("output.mkv"));
        std::fs::write(workspace.target(), b"x").unwrap();
        drop(workspace);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
