//! Creating a job: from a submitted form (the inputs are stored under the job) or from objects
//! already in storage. Everything that can be checked is checked before anything is stored, so a
//! refused job leaves nothing behind.

use std::time::Duration;

use bytes::Bytes;
use ff_pipeline::processor::Processor;
use ff_pipeline::video::VideoInfo;

use super::store::JobStore;
use super::{files_prefix, new_job_id, Job, JobInputs, NewJobPolicy};
use crate::document::OptionsDocument;
use crate::error::ApiError;
use crate::form::Submission;
use crate::format::stored_extension;
use crate::plan::Plan;
use crate::probe::DurationLimit;
use crate::run::VideoTarget;
use crate::sources::check_source_keys;
use crate::storage::{validate_key, StorageError, WriteCondition};
use crate::uploads::require_upload_key;
use crate::workspace::Workspace;

/// What job creation needs to know of the host.
#[derive(Clone, Debug)]
pub struct CreateSettings<'a> {
    pub temp_dir: &'a std::path::Path,
    /// FF_MAX_JOB_VIDEO_SECS.
    pub max_video_seconds: u64,
    /// FF_VIDEO_TIMEOUT_SECS (bounds the probe's ffmpeg too).
    pub video_timeout: Duration,
    /// FF_MAX_IMAGE_PIXELS: image inputs are checked against it at creation, as `/process` does.
    pub max_image_pixels: u64,
}

/// A job from a submitted form, its inputs stored under `jobs/<id>/inputs/`. A video target is
/// probed now, so a damaged or too long one is refused (422, 413) rather than failing later in the
/// worker, and the record keeps the probe so the worker does not probe again.
pub async fn from_submission(
    store: &JobStore,
    submission: Submission,
    settings: CreateSettings<'_>,
    policy: &NewJobPolicy,
) -> Result<Job, ApiError> {
    require_sources(&submission.document, submission.sources.len())?;
    let plan = submission.plan()?;
    // An image that cannot be decoded or is too large fails now (as on /process), not in the worker.
    submission.check_images(&plan, settings.max_image_pixels)?;
    let target_video = match plan {
        Plan::Video { target, container } if !target.is_image() => {
            Some(probe_upload(&submission.target, target, container, &submission.document, &settings).await?)
        }
        _ => None,
    };
    let Submission { sources, target, source_kinds, target_kind, document, .. } = submission;
    let id = new_job_id();
    let inputs_prefix = format!("{}inputs/", files_prefix(&id));
    let mut uploads = Vec::with_capacity(sources.len() + 1);
    for (index, (bytes, kind)) in sources.into_iter().zip(source_kinds).enumerate() {
        uploads.push((format!("{inputs_prefix}source-{index}.{}", stored_extension("source", kind)?), bytes));
    }
    let target_key = format!("{inputs_prefix}target.{}", stored_extension("target", target_kind)?);
    uploads.push((target_key.clone(), target));
    let inputs = JobInputs {
        sources: uploads[..uploads.len() - 1].iter().map(|(key, _)| key.clone()).collect(),
        target: target_key,
    };
    let output_format = document.output_format.map(|format| format.extension().to_string());
    let mut job = Job::new(id, inputs, document.raw, output_format);
    job.target_video = target_video;
    policy.apply(&mut job);
    let stored = async {
        for (key, bytes) in uploads {
            store.storage().put_bytes(&key, Bytes::from(bytes), WriteCondition::None).await?;
        }
        store.create(&job).await
    };
    if let Err(error) = stored.await {
        // Leave nothing behind for a job that was never created.
        if let Err(cleanup) = store.delete_files(&job.id).await {
            tracing::warn!(job = %job.id, error = %cleanup, "could not remove the inputs of a failed job creation");
        }
        return Err(error.into());
    }
    Ok(job)
}

/// Probes an uploaded video target against FF_MAX_JOB_VIDEO_SECS in a run directory of its own.
async fn probe_upload(
    bytes: &[u8],
    target: ff_pipeline::media::MediaKind,
    container: ff_pipeline::media::Container,
    document: &OptionsDocument,
    settings: &CreateSettings<'_>,
) -> Result<VideoInfo, ApiError> {
    let workspace = Workspace::create(settings.temp_dir, target, container)?;
    workspace.write_target(bytes).await?;
    let limit = DurationLimit::Job(settings.max_video_seconds);
    let probed = VideoTarget::new(workspace, limit, settings.video_timeout).probe(target, &document.options).await?;
    probed.probe.ok_or_else(|| ApiError::internal("a video target was not probed"))
}

/// A job over objects already in storage; they are read when it runs. At most `max_sources`
/// (FF_MAX_SOURCES) distinct source keys.
pub async fn from_keys(
    store: &JobStore,
    sources: Vec<String>,
    target: String,
    document: OptionsDocument,
    max_sources: usize,
    policy: &NewJobPolicy,
) -> Result<Job, ApiError> {
    check_source_keys(&sources, max_sources)?;
    require_sources(&document, sources.len())?;
    for key in sources.iter().chain(std::iter::once(&target)) {
        validate_key(key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        require_upload_key(key)?;
        match store.storage().head(key).await {
            Ok(_) => {}
            Err(StorageError::NotFound { .. }) => {
                return Err(ApiError::BadRequest(format!("object `{key}` does not exist")))
            }
            Err(error) => return Err(error.into()),
        }
    }
    let output_format = document.output_format.map(|format| format.extension().to_string());
    let mut job = Job::new(new_job_id(), JobInputs { sources, target }, document.raw, output_format);
    policy.apply(&mut job);
    store.create(&job).await?;
    Ok(job)
}

/// A swap without a source face cannot succeed; say so now rather than after queueing.
fn require_sources(document: &OptionsDocument, sources: usize) -> Result<(), ApiError> {
    if sources == 0 && document.options.uses(Processor::FaceSwapper) {
        return Err(ApiError::BadRequest("face_swapper needs at least one `source` image".into()));
    }
    Ok(())
}
