//! One claimed run of a job, from its inputs to its result (or to its cut into segments, or to the
//! join of its segments), and what every run shares: the look at its record about once a second
//! while the engine works ([`drive`]), the download of its inputs ([`prepare_run`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_pipeline::engine::VideoSegment;
use ff_pipeline::media::sniff;
use ff_pipeline::video::{Progress, VideoInfo};
use tokio::sync::watch;

use super::cancel::Registration;
use super::queue::Work;
use super::segments::{self, JobSegments};
use super::store::{JobStore, StoreError, Update};
use super::{files_prefix, Job, JobFailure, JobStatus};
use crate::document::OptionsDocument;
use crate::error::{storage_code, ApiError};
use crate::plan::Plan;
use crate::probe::DurationLimit;
use crate::run::{execute_or_cut, join, on_cpu, CancelOnDrop, Failure, Outcome, Product, Run, Target, MAX_INPUT_BYTES};
use crate::state::AppState;
use crate::storage::{download_to_file, Storage, StorageError, WriteCondition};
use crate::webhooks::WebhookEvent;
use crate::workspace::Workspace;

/// How often a video job writes its progress (and so notices a cancellation from another process).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What `run_job` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Completed {
        output: String,
    },
    /// Finished as failed: a bad input, a pipeline error, or out of attempts.
    Failed {
        code: String,
    },
    /// Cancelled (or deleted) while running; its files are gone.
    Cancelled,
    /// A long video cut into this many segments, now records of their own for any worker; once
    /// the last is done, a run of the job joins them and completes it.
    Cut {
        segments: u32,
    },
    /// One segment of a job done (`index`); the job goes on with its other segments.
    SegmentDone {
        index: u32,
    },
    /// A segment's first failure (`code`): it is queued again for any worker.
    SegmentRetried {
        index: u32,
        code: String,
    },
    /// Nothing done: no such job, or it is not waiting to run (a duplicate or late trigger, or
    /// another worker has it). `None` when the job does not exist.
    Skipped {
        status: Option<JobStatus>,
    },
    /// This run had claimed the job but the record moved on without it (taken over as stale, or
    /// re-queued by a recovery); its work was discarded.
    Superseded {
        status: JobStatus,
    },
}

/// One claimed run of a job.
pub(super) struct ClaimedRun {
    pub(super) store: JobStore,
    pub(super) state: AppState,
    pub(super) id: String,
    pub(super) claim: String,
    /// FF_JOB_LEASE_SECS: each write of this run renews the lease by this much.
    pub(super) lease: Duration,
    /// Set by DELETE in this process, or by this run when a progress write finds the job gone.
    pub(super) cancel: Registration,
}

/// Whether the run still owns its job after writing a step.
pub(super) enum Step {
    Owned,
    /// The record is no longer this run's: cancelled, taken over (its status), or deleted (`None`).
    Lost(Option<JobStatus>),
}

impl ClaimedRun {
    pub(super) async fn execute(&self, job: &Job) -> Result<RunOutcome, StoreError> {
        if job.segments.as_ref().is_some_and(JobSegments::all_done) {
            // Taken over from a run that died joining the segments.
            return self.join(job).await;
        }
        let run = match self.prepare(job).await {
            Ok(run) => run,
            Err(failure) => return self.fail_to_prepare(failure).await,
        };
        let frames_total = match &run.target {
            Target::Image { .. } => None,
            Target::Video(video) => Some(video.frames_total(&run.options).unwrap_or(0)),
        };
        let probe = match &run.target {
            Target::Video(video) => video.probe.clone(),
            Target::Image { .. } => None,
        };
        let first = frames_total.map(|frames_total| Progress {
            frames_done: 0,
            frames_total,
            fps: 0.0,
            elapsed: Duration::ZERO,
            eta: None,
        });
        let step = match (&first, &job.segments) {
            // A cut made by an earlier run keeps the frames its finished segments counted.
            (_, Some(_)) => self.renew().await?,
            (Some(first), None) => self.video_progress(first, 10).await?,
            (None, None) => self.progress(10).await?,
        };
        if let Step::Lost(status) = step {
            return self.stop(status, None).await;
        }
        // A very long video gets longer segments than FF_SEGMENT_SECONDS rather than too many.
        let cut = match (self.state.config().segment_seconds, &probe) {
            (0, _) | (_, None) => None,
            (seconds, Some(info)) => Some(f64::from(seconds).max(info.duration / f64::from(segments::MAX_SEGMENTS))),
        };
        let engine = Arc::clone(self.state.engine());
        let work = move |report: Reporter, cancel: Arc<AtomicBool>| execute_or_cut(&engine, run, cut, report, &cancel);
        let (outcome, rate) = match drive(self, Arc::clone(self.cancel.flag()), first, work).await {
            Ok(processed) => processed,
            Err(error) => return self.fail_after_error(error).await,
        };
        match outcome {
            Outcome::Made(product) => self.deliver(product, rate).await,
            Outcome::Cut(segments) => self.cut(segments, probe).await,
        }
    }

    /// A run that could not be prepared: the job fails with the reason, or with the storage's code
    /// if storage still takes the write.
    pub(super) async fn fail_to_prepare(&self, failure: Failure) -> Result<RunOutcome, StoreError> {
        match failure {
            Failure::Abort(error) => self.fail(failure_of(error)).await,
            Failure::Retry(StoreError::Storage(error)) => self.fail_on_storage(error).await,
            Failure::Retry(error) => Err(error),
        }
    }

    /// The engine stopped with `error`: a cancellation that lost the job stops quietly, anything
    /// else fails the job.
    async fn fail_after_error(&self, error: ApiError) -> Result<RunOutcome, StoreError> {
        if error.is_cancelled() {
            if let Step::Lost(status) = self.still_owned().await? {
                return self.stop(status, None).await;
            }
        }
        self.fail(failure_of(error)).await
    }

    /// Hands the job over to the segments of `cut`: first the job's record says how many there
    /// are (still held by this run), then their records are made, then the job lets go of its
    /// worker and lease. A run dying in between leaves a job whose lease passes, and the run that
    /// takes it over cuts it again: the same ranges (they depend on the target and options
    /// only), records already made and segments already done kept.
    async fn cut(&self, cut: Vec<VideoSegment>, probe: Option<VideoInfo>) -> Result<RunOutcome, StoreError> {
        let total = cut.len() as u32;
        let frames_total: u64 = cut.iter().map(|segment| segment.frames.1 - segment.frames.0).sum();
        let earlier = self.store.load(&self.id).await?.and_then(|(job, _)| job.segments).map(|segments| segments.total);
        if earlier.is_some_and(|earlier| earlier != total)
            || !segments::records_match(&self.store, &self.id, &cut).await?
        {
            let message = format!(
                "an earlier run cut this video differently than into these {total} segments (do all workers have \
                 the same FF_SEGMENT_SECONDS and ffmpeg?)"
            );
            return self.fail(failure_of(ApiError::internal(message))).await;
        }
        let announced = self
            .advance(|mut next| {
                if next.segments.as_ref().is_none_or(|segments| segments.total != total) {
                    next.segments = Some(JobSegments::new(total));
                    next.frames_done = Some(0);
                }
                next.target_video = probe.clone().or(next.target_video);
                next.frames_total = Some(frames_total);
                next.fps = None;
                next.eta_seconds = None;
                next
            })
            .await?;
        if let Step::Lost(status) = announced {
            return self.stop(status, None).await;
        }
        segments::create_records(&self.store, &self.id, &cut).await?;
        let released = self
            .store
            .update(&self.id, |job| {
                let ours = job.status == JobStatus::Running && job.worker.as_deref() == Some(self.claim.as_str());
                ours.then(|| {
                    let mut next = job.next();
                    next.worker = None;
                    next.lease_expires_at = None;
                    next
                })
            })
            .await?;
        match released {
            Update::Written(_) => {
                tracing::info!(job = %self.id, segments = total, "video cut into segments");
                for index in 0..total {
                    if !self.state.job_queue().try_push(Work::Segment { job: self.id.clone(), index }) {
                        break;
                    }
                }
                Ok(RunOutcome::Cut { segments: total })
            }
            Update::Unchanged(job) => {
                if job.status.is_final() {
                    // Cancelled (or failed) while the records were made, after its files went.
                    remove_segments(&self.store, &self.id).await;
                }
                self.stop(Some(job.status), None).await
            }
            Update::Missing => {
                remove_segments(&self.store, &self.id).await;
                self.stop(None, None).await
            }
        }
    }

    /// Joins the finished segments of the job (this run claimed it for that, see
    /// `worker::decide_claim`), stores the result and completes the job; the segments' files go
    /// with the completing write.
    pub(super) async fn join(&self, job: &Job) -> Result<RunOutcome, StoreError> {
        let mut run = match self.prepare(job).await {
            Ok(run) => run,
            Err(failure) => return self.fail_to_prepare(failure).await,
        };
        let Target::Video(video) = &mut run.target else {
            return self.fail(failure_of(ApiError::internal("a job in segments has an image target"))).await;
        };
        video.segment = None;
        let total = job.segments.as_ref().map_or(0, |segments| segments.total);
        let extension = video.workspace.container().extension();
        let mut parts = Vec::with_capacity(total as usize);
        for index in 0..total {
            let path = video.workspace.scratch(&format!("part-{index}.{extension}"));
            let key = segments::part_key(&self.id, index, extension);
            if let Err(error) = download_to_file(self.store.storage().as_ref(), &key, &path, MAX_INPUT_BYTES).await {
                return self.fail_on_storage(error).await;
            }
            parts.push(path);
            // Many parts take a while: the lease must not pass meanwhile.
            if let Step::Lost(status) = self.renew().await? {
                return self.stop(status, None).await;
            }
        }
        let engine = Arc::clone(self.state.engine());
        let work = move |_: Reporter, _: Arc<AtomicBool>| join(&engine, run, &parts);
        let workspace = match drive(self, Arc::clone(self.cancel.flag()), None, work).await {
            Ok((workspace, _)) => workspace,
            Err(error) => return self.fail_after_error(error).await,
        };
        let key = format!("{}result.{extension}", files_prefix(&self.id));
        if let Err(error) = self.store.storage().put_file(&key, workspace.output()).await {
            return self.fail_on_storage(error).await;
        }
        if let Step::Lost(status) = self.renew().await? {
            return self.stop(status, None).await;
        }
        self.complete(key).await
    }

    /// Writes the result next to the job's inputs and completes the job.
    async fn deliver(&self, product: Product, rate: Option<f64>) -> Result<RunOutcome, StoreError> {
        let step = match &product {
            Product::Image(_) => self.progress(90).await?,
            Product::Video { output, .. } => {
                // The frames really encoded, whatever the prediction said.
                let last = Progress {
                    frames_done: output.frames,
                    frames_total: output.frames,
                    fps: rate.unwrap_or(output.processing_fps),
                    elapsed: output.elapsed,
                    eta: Some(Duration::ZERO),
                };
                self.video_progress(&last, 90).await?
            }
        };
        if let Step::Lost(status) = step {
            return self.stop(status, None).await;
        }
        let storage = self.store.storage();
        let (key, stored) = match product {
            Product::Image(output) => {
                let key = format!("{}result.{}", files_prefix(&self.id), output.format.extension());
                let stored = storage.put_bytes(&key, output.bytes.into(), WriteCondition::None).await.map(|_| ());
                (key, stored)
            }
            Product::Video { workspace, .. } => {
                let key = format!("{}result.{}", files_prefix(&self.id), workspace.container().extension());
                let stored = storage.put_file(&key, workspace.output()).await.map(|_| ());
                (key, stored)
            }
        };
        if let Err(error) = stored {
            return self.fail_on_storage(error).await;
        }
        self.complete(key).await
    }

    /// Marks the job completed with its result at `key`, unless it was cancelled meanwhile.
    pub(super) async fn complete(&self, key: String) -> Result<RunOutcome, StoreError> {
        let written = self
            .advance(|mut next| {
                next.output = Some(key.clone());
                next.finish(JobStatus::Completed, None)
            })
            .await?;
        match written {
            Step::Owned => Ok(RunOutcome::Completed { output: key }),
            Step::Lost(status) => self.stop(status, Some(&key)).await,
        }
    }

    /// [`prepare_run`] for this run's job.
    async fn prepare(&self, job: &Job) -> Result<Run, Failure> {
        prepare_run(&self.state, &self.store, job).await
    }

    /// Writes the next version of the record if it is still this run's.
    async fn advance(&self, change: impl Fn(Job) -> Job) -> Result<Step, StoreError> {
        let update = self
            .store
            .update(&self.id, |job| {
                let ours = job.status == JobStatus::Running && job.worker.as_deref() == Some(self.claim.as_str());
                ours.then(|| {
                    let mut next = change(job.next());
                    if next.status == JobStatus::Running {
                        next.renew_lease(self.lease);
                    }
                    next
                })
            })
            .await?;
        Ok(match update {
            Update::Written(job) => {
                announce(&self.state, &job);
                if job.status.is_final() && job.segments.is_some() {
                    remove_segments(&self.store, &self.id).await;
                }
                Step::Owned
            }
            Update::Unchanged(job) => Step::Lost(Some(job.status)),
            Update::Missing => Step::Lost(None),
        })
    }

    /// A write that changes nothing but the update time and the lease.
    async fn renew(&self) -> Result<Step, StoreError> {
        self.advance(|next| next).await
    }

    async fn progress(&self, percent: u8) -> Result<Step, StoreError> {
        self.advance(|mut next| {
            next.progress = percent;
            next
        })
        .await
    }

    async fn video_progress(&self, progress: &Progress, percent: u8) -> Result<Step, StoreError> {
        self.advance(|mut next| {
            next.progress = percent;
            next.frames_done = Some(progress.frames_done);
            next.frames_total = Some(progress.frames_total);
            next.fps = Some((progress.fps * 100.0).round() / 100.0);
            next.eta_seconds = progress.eta.map(|eta| (eta.as_secs_f64() * 10.0).round() / 10.0);
            next
        })
        .await
    }

    /// Reads the record without writing: whether it is still this run's.
    pub(super) async fn still_owned(&self) -> Result<Step, StoreError> {
        Ok(match self.store.load(&self.id).await? {
            Some((job, _))
                if job.status == JobStatus::Running && job.worker.as_deref() == Some(self.claim.as_str()) =>
            {
                Step::Owned
            }
            Some((job, _)) => Step::Lost(Some(job.status)),
            None => Step::Lost(None),
        })
    }

    pub(super) async fn fail(&self, failure: JobFailure) -> Result<RunOutcome, StoreError> {
        let code = failure.code.clone();
        match self.advance(|next| next.finish(JobStatus::Failed, Some(failure.clone()))).await? {
            Step::Owned => Ok(RunOutcome::Failed { code }),
            Step::Lost(status) => self.stop(status, None).await,
        }
    }

    /// Storage failed mid-run: the job fails with the storage's code if storage still takes the
    /// write; if not, the error is returned and the job stays `running` until it is recovered.
    pub(super) async fn fail_on_storage(&self, error: StorageError) -> Result<RunOutcome, StoreError> {
        tracing::error!(job = %self.id, %error, "storage failed during a job");
        self.fail(JobFailure { code: storage_code(&error).into(), message: error.to_string() }).await
    }

    /// The run lost its job: clean up what it wrote and say why it stopped.
    pub(super) async fn stop(
        &self,
        status: Option<JobStatus>,
        written: Option<&str>,
    ) -> Result<RunOutcome, StoreError> {
        // Whoever cancelled or deleted the job removed its files before this result existed. A job
        // taken over keeps it: the run that took it writes the same key, maybe already has.
        if let (Some(key), Some(JobStatus::Cancelled) | None) = (written, status) {
            if let Err(error) = self.store.storage().delete(key).await {
                tracing::warn!(job = %self.id, %error, "could not remove the result of a cancelled job");
            }
        }
        Ok(match status {
            Some(JobStatus::Cancelled) | None => RunOutcome::Cancelled,
            Some(status) => RunOutcome::Superseded { status },
        })
    }
}

/// Removes what the segments of a finished job left (records and videos); a failure is logged,
/// and the files go with the job's when it expires or is deleted.
pub(super) async fn remove_segments(store: &JobStore, id: &str) {
    if let Err(error) = segments::delete_all(store, id).await {
        tracing::warn!(job = %id, %error, "could not remove the segments of a finished job");
    }
}

/// Tells the job's webhook (and, once final, the metrics) about a version just written.
pub(super) fn announce(state: &AppState, job: &Job) {
    let event = if job.status.is_final() { WebhookEvent::Completed } else { WebhookEvent::Progress };
    state.webhooks().notify(job, event);
    if job.status.is_final() {
        state.metrics().job_ended(job);
    }
}

/// The pipeline's progress callback as [`drive`] hands it to the work.
pub(super) type Reporter = Box<dyn FnMut(Progress) + Send>;

/// What [`drive`] reports to about once a second while the engine works: a job's run, or a
/// segment's.
pub(super) trait Watcher: Sync {
    /// Names the run in logs.
    fn label(&self) -> String;
    /// FF_JOB_LEASE_SECS.
    fn lease(&self) -> Duration;
    /// One look at the record: write `moved` (the video's progress, when frames moved since the
    /// last tick), else renew the lease when `renew` (nothing written for a third of it), else
    /// read. Whether the work is still wanted.
    fn tick(&self, moved: Option<Progress>, renew: bool) -> impl Future<Output = Result<Step, StoreError>> + Send;
}

impl Watcher for ClaimedRun {
    fn label(&self) -> String {
        self.id.clone()
    }

    fn lease(&self) -> Duration {
        self.lease
    }

    async fn tick(&self, moved: Option<Progress>, renew: bool) -> Result<Step, StoreError> {
        match moved {
            Some(progress) => self.video_progress(&progress, video_percent(&progress)).await,
            None if renew => self.renew().await,
            None => self.still_owned().await,
        }
    }
}

/// Runs `work` on the blocking pool while `watcher` looks at its record about once a second (see
/// [`Watcher::tick`]); a record no longer the run's sets `cancel`, which stops the pipeline within
/// one frame, as does DELETE in this process. Also answers the rate the frames came at, as last
/// reported.
pub(super) async fn drive<T: Send + 'static>(
    watcher: &impl Watcher,
    cancel: Arc<AtomicBool>,
    first: Option<Progress>,
    work: impl FnOnce(Reporter, Arc<AtomicBool>) -> Result<T, ApiError> + Send + 'static,
) -> Result<(T, Option<f64>), ApiError> {
    // Should this task be dropped (shutdown), the pipeline stops too.
    let _cancel_when_dropped = CancelOnDrop(Arc::clone(&cancel));
    let (sender, mut receiver) = watch::channel::<Option<Progress>>(first);
    let report: Reporter = Box::new(move |progress| {
        sender.send_replace(Some(progress));
    });
    let flag = Arc::clone(&cancel);
    let mut task = std::pin::pin!(on_cpu(move || work(report, flag)));
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let renew_every = watcher.lease() / 3;
    let mut last_write = Instant::now();
    let made = loop {
        tokio::select! {
            made = &mut task => break made??,
            _ = ticker.tick() => {
                let moved = receiver.has_changed().unwrap_or(false).then(|| *receiver.borrow_and_update()).flatten();
                let renew = last_write.elapsed() >= renew_every;
                if moved.is_some() || renew {
                    last_write = Instant::now();
                }
                match watcher.tick(moved, renew).await {
                    Ok(Step::Owned) => {}
                    Ok(Step::Lost(status)) => {
                        tracing::info!(run = %watcher.label(), ?status, "no longer this run's; stopping");
                        cancel.store(true, Ordering::Relaxed);
                    }
                    Err(error) => tracing::warn!(run = %watcher.label(), %error, "progress write failed"),
                }
            }
        }
    };
    let rate = receiver.borrow().map(|progress| progress.fps);
    Ok((made, rate))
}

/// Reads the options document once, the sources into memory and the target into a run
/// directory (streamed: a video is never held in memory whole), then plans the run from what
/// the files are. A video target uploaded with the job was probed at creation; one named by a
/// JSON job is probed here.
pub(super) async fn prepare_run(state: &AppState, store: &JobStore, job: &Job) -> Result<Run, Failure> {
    let document = OptionsDocument::from_json(job.options.clone(), job.output_format.as_deref())?;
    let mut sources = Vec::with_capacity(job.inputs.sources.len());
    for key in &job.inputs.sources {
        sources.push(read_input(store.storage().as_ref(), key).await?);
    }
    let config = state.config();
    let key = &job.inputs.target;
    let workspace = Workspace::for_download(&config.temp_dir)?;
    download_to_file(store.storage().as_ref(), key, workspace.target(), MAX_INPUT_BYTES)
        .await
        .map_err(|error| input_error(key, error))?;
    let target_kind = workspace.target_kind(key.rsplit('/').next()).await?;
    let source_kinds: Vec<_> = sources.iter().map(|bytes| sniff(bytes)).collect();
    let options = document.options;
    let plan = Plan::decide(&source_kinds, target_kind, &options, document.output_format)?;
    let limit = DurationLimit::Job(config.max_job_video_seconds);
    let probed = job.target_video.clone();
    let target = Target::downloaded(plan, workspace, &options, limit, config.video_timeout, probed).await?;
    Ok(Run { sources, options, target })
}

/// 10 % when the frames start, 90 % when the last is encoded.
fn video_percent(progress: &Progress) -> u8 {
    let done = progress.frames_done as f64 / progress.frames_total.max(1) as f64;
    (10.0 + 80.0 * done.clamp(0.0, 1.0)).round() as u8
}

/// An input that cannot be read: gone or too large is the job's failure; the rest is storage's.
fn input_error(key: &str, error: StorageError) -> Failure {
    match error {
        StorageError::NotFound { .. } => {
            Failure::Abort(ApiError::InputMissing(format!("input `{key}` no longer exists")))
        }
        too_large @ StorageError::TooLarge { .. } => Failure::Abort(ApiError::Storage(too_large)),
        error => Failure::Retry(StoreError::Storage(error)),
    }
}

async fn read_input(storage: &dyn Storage, key: &str) -> Result<Vec<u8>, Failure> {
    match storage.get_bytes(key, MAX_INPUT_BYTES).await {
        Ok((bytes, _)) => Ok(bytes.into()),
        Err(error) => Err(input_error(key, error)),
    }
}

pub(super) fn failure_of(error: ApiError) -> JobFailure {
    JobFailure { code: error.code().to_string(), message: error.to_string() }
}
