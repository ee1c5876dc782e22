//! The one processing path. `/process`, the job worker, the batch runner and `ff process` each say
//! where the inputs come from and where the result goes; everything between (the plan, the
//! workspace, the probe against the route's limit, the engine on the blocking pool, cancellation)
//! is here, once.
//!
//! ```text
//! inputs ──Plan::decide──▶ Image { bytes }              ──execute──▶ Product::Image
//!                        └▶ Video { workspace, probe }   ──execute──▶ Product::Video { workspace }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use ff_pipeline::engine::{VideoOutput, VideoRequest, VideoSegment};
use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::media::MediaKind;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::video::{Progress, VideoInfo};
use ff_pipeline::{Engine, ImageOutput, ImageRequest};

use crate::error::ApiError;
use crate::jobs::store::StoreError;
use crate::plan::Plan;
use crate::probe::{check_duration, planned_frames, probe_video, DurationLimit};
use crate::storage::StorageError;
use crate::workspace::Workspace;

/// The largest input object a job or batch run reads from storage; uploads are already bounded by
/// FF_MAX_UPLOAD_SIZE_MB, this bounds objects named by a JSON job or a batch document.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024 * 1024;

/// One run's typed inputs.
#[derive(Debug)]
pub struct Run {
    /// Images (faces) and audio (speech for lip_syncer).
    pub sources: Vec<Vec<u8>>,
    pub options: ProcessOptions,
    pub target: Target,
}

#[derive(Debug)]
pub enum Target {
    /// Image in, image out, in memory; `None` keeps the target's format.
    Image { bytes: Vec<u8>, output_format: Option<ImageFormat> },
    /// A video made on disk.
    Video(VideoTarget),
}

/// A target file ready to become a video: where it is, what the probe found, and the bounds.
#[derive(Debug)]
pub struct VideoTarget {
    pub workspace: Workspace,
    /// The target as probed; `None` for a still photo the lip syncer makes speak.
    pub probe: Option<VideoInfo>,
    /// Also bounds the video a photo becomes (the length of the audio it speaks).
    pub limit: DurationLimit,
    /// The whole run's time limit; ffmpeg is killed past it.
    pub timeout: Duration,
    /// Only this segment of a job cut into segments; `None`: the whole video.
    pub segment: Option<VideoSegment>,
}

impl VideoTarget {
    /// A target in `workspace`, not probed yet, bounded by `limit` and `timeout`.
    pub fn new(workspace: Workspace, limit: DurationLimit, timeout: Duration) -> Self {
        Self { workspace, probe: None, limit, timeout, segment: None }
    }

    /// The engine's request for this target, its output in the workspace.
    fn request(&self, sources: Vec<Vec<u8>>, options: ProcessOptions) -> VideoRequest {
        VideoRequest {
            sources,
            target: self.workspace.target().to_path_buf(),
            probe: self.probe.clone(),
            output: self.workspace.output().to_path_buf(),
            options,
            parallelism: None,
            timeout: self.timeout,
            max_duration: self.limit.max_duration(),
            segment: self.segment,
        }
    }

    /// Probes the target, of kind `target`, against the limit (a photo needs no probe): the one
    /// probe of the run. Blocking (ffprobe): [`VideoTarget::probe`] runs it on the blocking pool.
    pub fn probe_blocking(mut self, target: MediaKind, options: &ProcessOptions) -> Result<Self, ApiError> {
        if !target.is_image() {
            self.probe = Some(probe_video(self.workspace.target(), options, self.limit)?);
        }
        Ok(self)
    }

    /// [`VideoTarget::probe_blocking`] on the blocking pool.
    pub async fn probe(self, target: MediaKind, options: &ProcessOptions) -> Result<Self, ApiError> {
        let options = options.clone();
        on_cpu(move || self.probe_blocking(target, &options)).await?
    }

    /// Takes a probe made earlier (a job's upload, at creation), checked again against the limit.
    pub fn probed(mut self, info: VideoInfo, options: &ProcessOptions) -> Result<Self, ApiError> {
        check_duration(&info, options, self.limit)?;
        self.probe = Some(info);
        Ok(self)
    }

    /// Frames the run will encode, when the probe says (a photo's count depends on its audio).
    pub fn frames_total(&self, options: &ProcessOptions) -> Option<u64> {
        planned_frames(self.probe.as_ref()?, options).ok()
    }
}

/// What a run made.
pub enum Product {
    Image(ImageOutput),
    /// The encoded video is `workspace.output()`; it goes when the workspace is dropped.
    Video {
        output: Box<VideoOutput>,
        workspace: Workspace,
    },
}

impl Target {
    /// The target of `plan`, already downloaded into `workspace` before its kind was known: read
    /// into memory for an image; for a video, renamed after its kind and probed, unless `probed`
    /// holds what an earlier probe found (then only checked against `limit`).
    pub async fn downloaded(
        plan: Plan,
        mut workspace: Workspace,
        options: &ProcessOptions,
        limit: DurationLimit,
        timeout: Duration,
        probed: Option<VideoInfo>,
    ) -> Result<Self, ApiError> {
        match plan {
            Plan::Image { output_format } => Ok(Self::Image { bytes: workspace.read_target().await?, output_format }),
            Plan::Video { target, container } => {
                workspace.rename(target, container)?;
                let unprobed = VideoTarget::new(workspace, limit, timeout);
                let video = match probed {
                    Some(info) => unprobed.probed(info, options)?,
                    None => unprobed.probe(target, options).await?,
                };
                Ok(Self::Video(video))
            }
        }
    }
}

/// Runs the engine. Blocking: call it on the blocking pool (see [`execute_on_cpu`]) or from a
/// command line. `progress` hears about video frames; `cancel` stops a video within one frame and an
/// image within one face.
pub fn execute(
    engine: &Engine,
    run: Run,
    progress: impl FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Product, ApiError> {
    let Run { sources, options, target } = run;
    match target {
        Target::Image { bytes, output_format } => {
            let request = ImageRequest { sources, target: bytes, options, output_format };
            Ok(Product::Image(engine.process_image_with_cancel(request, cancel)?))
        }
        Target::Video(video) => {
            let request = video.request(sources, options);
            let workspace = video.workspace;
            let output = engine.process_video(request, progress, cancel)?;
            tracing::info!(
                frames = output.frames,
                fps = output.processing_fps,
                faces = output.faces_processed,
                "video processed"
            );
            Ok(Product::Video { output: Box::new(output), workspace })
        }
    }
}

/// What [`execute_or_cut`] did.
pub enum Outcome {
    Made(Product),
    /// The video was cut into these segments, to run on their own; nothing was processed.
    Cut(Vec<VideoSegment>),
}

/// [`execute`], unless the run is a whole video the engine cuts into segments of about `cut`
/// seconds (`Engine::plan_segments`, which also judges the whole video with the NSFW gate).
pub fn execute_or_cut(
    engine: &Engine,
    run: Run,
    cut: Option<f64>,
    progress: impl FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Outcome, ApiError> {
    if let (Some(seconds), Target::Video(video)) = (cut, &run.target) {
        if video.segment.is_none() {
            let request = video.request(run.sources.clone(), run.options.clone());
            if let Some(segments) = engine.plan_segments(&request, seconds, cancel)? {
                return Ok(Outcome::Cut(segments));
            }
        }
    }
    Ok(Outcome::Made(execute(engine, run, progress, cancel)?))
}

/// Joins the segments `parts` of a video run (in order) into the run's output, with the audio
/// the whole run would have. Blocking. The joined video is `workspace.output()`.
pub fn join(engine: &Engine, run: Run, parts: &[PathBuf]) -> Result<Workspace, ApiError> {
    let Run { sources, options, target } = run;
    let Target::Video(video) = target else {
        return Err(ApiError::internal("only a video is joined from segments"));
    };
    let request = video.request(sources, options);
    let encoded = engine.join_segments(&request, parts)?;
    tracing::info!(frames = encoded.frames, parts = parts.len(), "segments joined");
    Ok(video.workspace)
}

/// [`execute`] on the blocking pool. `hold` (a processing slot) moves into the task and is
/// released when the CPU work ends, not when the caller stops waiting, so the CPU is never
/// oversubscribed by work nobody waits for.
pub async fn execute_on_cpu(
    engine: Arc<Engine>,
    run: Run,
    progress: impl FnMut(Progress) + Send + 'static,
    cancel: Arc<AtomicBool>,
    hold: impl Send + 'static,
) -> Result<Product, ApiError> {
    on_cpu(move || {
        let _hold = hold;
        execute(&engine, run, progress, &cancel)
    })
    .await?
}

/// Runs CPU work on the blocking pool; a panic becomes an internal error.
pub async fn on_cpu<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(join_error) if join_error.is_panic() => {
            Err(ApiError::internal(format!("pipeline panicked: {}", panic_message(&*join_error.into_panic()))))
        }
        Err(join_error) => Err(ApiError::internal(format!("pipeline task failed: {join_error}"))),
    }
}

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// Sets a cancel flag when dropped: a run whose caller went away (client gone, request timed out,
/// worker stopped) stops within one frame (one face of an image) instead of running on unobserved.
#[derive(Debug)]
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How work that did not succeed ended, and whether doing it again can help. Jobs, batch, the S3
/// event routing and the Lambda worker all decide on this one kind.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The work cannot succeed as given (a bad input, a failed run, a damaged record): its code and
    /// message are recorded or answered, and nobody retries it.
    #[error("{0}")]
    Abort(ApiError),
    /// Storage was unreachable, slow or contended under the work: the same work may succeed later.
    #[error("{0}")]
    Retry(StoreError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Abort(error)
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Self {
        match error.is_transient() {
            true => Self::Retry(StoreError::Storage(error)),
            false => Self::Abort(ApiError::Storage(error)),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Storage(error) => Self::from(error),
            contended @ StoreError::Contended { .. } => Self::Retry(contended),
            corrupt @ StoreError::Corrupt { .. } => Self::Abort(ApiError::from(corrupt)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_cancels() {
        let flag = Arc::new(AtomicBool::new(false));
        drop(CancelOnDrop(Arc::clone(&flag)));
        assert!(flag.load(Ordering::Relaxed));
    }

    #[test]
    fn only_storage_trouble_is_worth_a_retry() {
        assert!(matches!(Failure::from(StorageError::backend("get", "k", "down")), Failure::Retry(_)));
        assert!(matches!(Failure::from(StoreError::Contended { id: "x".into() }), Failure::Retry(_)));
        let corrupt = StoreError::Corrupt { key: "jobs/x.json".into(), reason: "not JSON".into() };
        assert!(matches!(Failure::from(corrupt), Failure::Abort(_)));
        assert!(matches!(Failure::from(StorageError::NotFound { key: "k".into() }), Failure::Abort(_)));
        assert!(matches!(Failure::from(ApiError::BadRequest("no".into())), Failure::Abort(_)));
    }

    #[tokio::test]
    async fn a_panic_on_the_blocking_pool_is_an_internal_error() {
        let error = on_cpu(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert_eq!(error.code(), "internal");
    }
}
