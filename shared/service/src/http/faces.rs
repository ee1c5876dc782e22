//! POST /api/v1/faces: the faces of an image, or the people of a video, before anything is
//! processed. Multipart (`media`, and the detector, landmarker, selector and trim options as
//! fields) or JSON naming an upload (`{"media": "uploads/<id>", "options": {...}}`). CPU work like
//! /process: it takes an upload place, then a processing place, under the same limits.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ff_pipeline::face_survey::{survey_image, survey_video, MAX_SAMPLED_FRAMES};
use ff_pipeline::media::MediaKind;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::video::Toolchain;
use serde::Deserialize;

use super::body::{declares_json, read_small, refuse_unread, within_upload_deadline};
use crate::document::OptionsDocument;
use crate::error::ApiError;
use crate::faces::{FacesAnswer, MediaClass};
use crate::form::{FormLimits, ProcessForm};
use crate::limiter::UploadPlace;
use crate::probe::DurationLimit;
use crate::run::{on_cpu, VideoTarget, MAX_INPUT_BYTES};
use crate::state::AppState;
use crate::storage::download_to_file;
use crate::uploads::require_upload_key;
use crate::workspace::Workspace;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/faces", post(faces))
}

/// The JSON form: an upload and the options, as a JSON job names them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FacesFromUpload {
    media: String,
    #[serde(default)]
    options: Option<serde_json::Value>,
}

/// What is surveyed, read and checked.
enum Media {
    Image(Vec<u8>),
    /// Written to a run directory and probed (FF_MAX_JOB_VIDEO_SECS: a survey samples a video a
    /// job would process).
    Video(VideoTarget),
}

/// The JSON form's body limit: a key and options.
const JSON_BODY_LIMIT: usize = 64 * 1024;

/// How the request names what to survey.
enum Input {
    Form(Box<Request>),
    Json(Bytes),
}

async fn faces(State(state): State<AppState>, request: Request) -> Response {
    let upload = match state.limiter().try_start_upload() {
        Ok(upload) => upload,
        Err(busy) => return refuse_unread(busy.into(), request).await,
    };
    let input = match declares_json(request.headers()) {
        true => match read_small(request, JSON_BODY_LIMIT, state.config().upload_timeout).await {
            Ok(body) => Input::Json(body),
            Err(answer) => return answer,
        },
        false => Input::Form(Box::new(request)),
    };
    survey(state, upload, input).await.map(IntoResponse::into_response).unwrap_or_else(IntoResponse::into_response)
}

async fn survey(state: AppState, upload: UploadPlace, input: Input) -> Result<Json<FacesAnswer>, ApiError> {
    let (media, options) = match input {
        Input::Json(body) => read_upload_reference(&state, &body).await?,
        Input::Form(request) => read_form(&state, *request).await?,
    };
    drop(upload);
    let admission = state.limiter().try_admit()?;
    let slot = admission.wait_for_slot().await;
    let engine = Arc::clone(state.engine());
    let config = state.config();
    let (max_pixels, timeout) = (config.max_image_pixels, config.request_timeout);
    let answer = on_cpu(move || {
        let _slot = slot;
        let registry = engine.registry();
        match media {
            Media::Image(bytes) => survey_image(registry, &bytes, &options, max_pixels)
                .map(|survey| FacesAnswer::from_survey(MediaClass::Image, &survey)),
            Media::Video(video) => {
                let info = video
                    .probe
                    .as_ref()
                    .ok_or_else(|| ff_pipeline::PipelineError::MissingInput("the video was not probed".into()))?;
                let path = video.workspace.target();
                survey_video(registry, &Toolchain::from_env(), path, info, &options, MAX_SAMPLED_FRAMES, timeout)
                    .map(|survey| FacesAnswer::from_survey(MediaClass::Video, &survey))
            }
        }
    })
    .await??;
    Ok(Json(answer))
}

/// The multipart form: one `media` file (`target` works too) and option fields; no sources.
async fn read_form(state: &AppState, request: Request) -> Result<(Media, ProcessOptions), ApiError> {
    let config = state.config();
    let limits = FormLimits { body_bytes: config.max_upload_bytes, max_sources: config.max_sources };
    let submission = within_upload_deadline(config.upload_timeout, async {
        let multipart = Multipart::from_request(request, state).await?;
        ProcessForm::read(multipart, limits).await
    })
    .await?
    .into_submission()?;
    if !submission.sources.is_empty() || submission.webhook.is_some() {
        return Err(ApiError::BadRequest("/faces takes one `media` file and options, no `source` or `webhook`".into()));
    }
    let options = submission.document.options;
    let media = match submission.target_kind {
        Some(MediaKind::Image(_)) => Media::Image(submission.target),
        Some(kind @ MediaKind::Video(container)) => {
            let workspace = Workspace::create(&config.temp_dir, kind, container)?;
            workspace.write_target(&submission.target).await?;
            Media::Video(probed(state, workspace, kind, &options).await?)
        }
        _ => return Err(not_media()),
    };
    Ok((media, options))
}

/// `{"media": "uploads/<id>", "options": {...}}`: the upload streamed into a run directory.
async fn read_upload_reference(state: &AppState, body: &[u8]) -> Result<(Media, ProcessOptions), ApiError> {
    let config = state.config();
    let reference: FacesFromUpload = serde_json::from_slice(body).map_err(|error| {
        ApiError::BadRequest(format!("expected {{\"media\": \"uploads/<id>\", \"options\": {{...}}}}: {error}"))
    })?;
    require_upload_key(&reference.media)?;
    let options = OptionsDocument::from_json(reference.options.unwrap_or_else(|| serde_json::json!({})), None)?.options;
    let mut workspace = Workspace::for_download(&config.temp_dir)?;
    download_to_file(state.storage().as_ref(), &reference.media, workspace.target(), MAX_INPUT_BYTES).await?;
    let media = match workspace.target_kind(None).await? {
        Some(MediaKind::Image(_)) => Media::Image(workspace.read_target().await?),
        Some(kind @ MediaKind::Video(container)) => {
            workspace.rename(kind, container)?;
            Media::Video(probed(state, workspace, kind, &options).await?)
        }
        _ => return Err(not_media()),
    };
    Ok((media, options))
}

async fn probed(
    state: &AppState,
    workspace: Workspace,
    kind: MediaKind,
    options: &ProcessOptions,
) -> Result<VideoTarget, ApiError> {
    let config = state.config();
    let limit = DurationLimit::Job(config.max_job_video_seconds);
    VideoTarget::new(workspace, limit, config.request_timeout).probe(kind, options).await
}

fn not_media() -> ApiError {
    ApiError::UnsupportedMedia("`media` must be a JPEG, PNG, WebP or BMP image or a video".into())
}
