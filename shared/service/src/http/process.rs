//! POST /api/v1/process: one image, or one short video, in and out within the request.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use ff_pipeline::engine::VideoOutput;
use ff_pipeline::media::Container;
use ff_pipeline::ImageOutput;

use super::body::{refuse_unread, within_upload_deadline};
use crate::error::ApiError;
use crate::form::{FormLimits, ProcessForm, Submission};
use crate::limiter::UploadPlace;
use crate::plan::Plan;
use crate::probe::DurationLimit;
use crate::run::{execute_on_cpu, on_cpu, CancelOnDrop, Product, Run, Target, VideoTarget};
use crate::state::AppState;
use crate::workspace::Workspace;

/// How many faces the processors changed; 0 means the target came back as it was.
pub const X_FACES_PROCESSED: &str = "x-faces-processed";

/// Video answers: how many frames were encoded.
pub const X_FRAMES_PROCESSED: &str = "x-frames-processed";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/process", post(process))
}

/// Takes an upload place (429 before the upload is read, with the body drained so the client
/// reads the answer), reads the form within FF_UPLOAD_TIMEOUT_SECS (408 past it), then takes a
/// place in the processing line (429 when it filled meanwhile). It prepares the target (a video is
/// written to a run directory and probed against FF_MAX_SYNC_VIDEO_SECS before it waits for a
/// slot), then runs on the blocking pool under FF_REQUEST_TIMEOUT_SECS. If the client goes away or
/// the request times out, the dropped guard cancels a video within one frame, and the run
/// directory goes with the blocking task that owns it.
async fn process(State(state): State<AppState>, request: Request) -> Response {
    let upload = match state.limiter().try_start_upload() {
        Ok(upload) => upload,
        Err(busy) => return refuse_unread(busy.into(), request).await,
    };
    process_upload(state, upload, request).await.unwrap_or_else(IntoResponse::into_response)
}

async fn process_upload(state: AppState, upload: UploadPlace, request: Request) -> Result<Response, ApiError> {
    let config = state.config();
    let form_limits = FormLimits { body_bytes: config.max_upload_bytes, max_sources: config.max_sources };
    let submission = within_upload_deadline(config.upload_timeout, async {
        let multipart = Multipart::from_request(request, &state).await?;
        ProcessForm::read(multipart, form_limits).await
    })
    .await?
    .into_submission()?;
    if submission.webhook.is_some() {
        return Err(ApiError::BadRequest(
            "`webhook` is for jobs (POST /api/v1/jobs); /process answers directly".into(),
        ));
    }
    // The body is in: its upload place is free for the next client before this one waits.
    drop(upload);
    let admission = state.limiter().try_admit()?;
    let plan = submission.plan()?;
    // Undecodable or oversized images are refused now, before the request waits for a slot.
    submission.check_images(&plan, config.max_image_pixels)?;
    let Submission { sources, target, document, download_stem, .. } = submission;
    let target = match plan {
        Plan::Image { output_format } => Target::Image { bytes: target, output_format },
        Plan::Video { target: kind, container } => {
            let workspace = Workspace::create(&config.temp_dir, kind, container)?;
            workspace.write_target(&target).await?;
            drop(target);
            let limit = DurationLimit::Sync(config.max_sync_video_seconds);
            let timeout = config.request_timeout;
            Target::Video(VideoTarget::new(workspace, limit, timeout).probe(kind, &document.options).await?)
        }
    };
    let slot = admission.wait_for_slot().await;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_when_dropped = CancelOnDrop(Arc::clone(&cancel));
    let run = Run { sources, options: document.options, target };
    match execute_on_cpu(Arc::clone(state.engine()), run, |_| {}, cancel, slot).await? {
        Product::Image(output) => Ok(image_response(output, &download_stem)),
        Product::Video { output, workspace } => {
            // The run directory is removed once the result is read, before the answer is sent.
            let container = workspace.container();
            let bytes = on_cpu(move || workspace.read_output()).await??;
            Ok(video_response(&output, container, bytes, &download_stem))
        }
    }
}

fn image_response(output: ImageOutput, download_stem: &str) -> Response {
    let disposition = format!("inline; filename=\"{download_stem}.{}\"", output.format.extension());
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(output.format.mime())),
        // The stem is reduced to header-safe ASCII by `download_stem`, so this cannot fail.
        (CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("inline"))),
        (HeaderName::from_static(X_FACES_PROCESSED), HeaderValue::from(output.faces_processed)),
    ];
    (headers, output.bytes).into_response()
}

fn video_response(output: &VideoOutput, container: Container, bytes: Vec<u8>, download_stem: &str) -> Response {
    tracing::info!(frames = output.frames, bytes = bytes.len(), "video answered");
    let disposition = format!("inline; filename=\"{download_stem}.{}\"", container.extension());
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(container.mime())),
        (CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("inline"))),
        (HeaderName::from_static(X_FACES_PROCESSED), HeaderValue::from(output.faces_processed)),
        (HeaderName::from_static(X_FRAMES_PROCESSED), HeaderValue::from(output.frames)),
    ];
    (headers, bytes).into_response()
}
