//! GET /api/v1/openapi.json (OpenAPI 3.1) and GET /api/v1/docs (a page that renders it, served
//! from the binary, fetching nothing from elsewhere).
//!
//! What the document says comes from the code it describes: the job record and its parts derive
//! their schemas from the types the routes return, the processing options are built from the
//! option table the CLI and `/api/v1/processors` use (names, choices, ranges, defaults), the
//! error codes from [`ApiError::codes`], and a test holds the paths to exactly the routes
//! [`super::Endpoints`] registers.

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use ff_pipeline::options::{OptionKind, OptionSpec, Support, OPTIONS};
use serde_json::json;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ApiError;
use crate::faces::{FaceEntry, FacesAnswer, MediaClass, PersonEntry};
use crate::jobs::segments::JobSegments;
use crate::jobs::{Job, JobFailure, JobInputs, JobStatus};
use crate::state::AppState;
use crate::uploads::{UploadReceipt, UploadRequest, UploadTicket};
use crate::webhooks::WebhookEvent;

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
pub const DOCS_PATH: &str = "/api/v1/docs";

/// GET /api/v1/openapi.json and GET /api/v1/docs.
pub fn router() -> Router<AppState> {
    Router::new().route(OPENAPI_PATH, get(openapi_json)).route(DOCS_PATH, get(docs_page))
}

async fn openapi_json() -> Json<Document> {
    Json(document())
}

async fn docs_page() -> Html<&'static str> {
    Html(include_str!("../../assets/docs.html"))
}

/// The whole API's description.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// `{"error": {"code", "message"}}`, the body of every error.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: answers are built by `ApiError::into_response`
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// Stable and machine-readable: branch on it.
    #[schema(schema_with = error_code_schema)]
    code: String,
    /// For people; may change between versions.
    message: String,
}

fn error_code_schema() -> Schema {
    let mut codes = ApiError::codes();
    codes.sort_unstable();
    codes.dedup();
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).enum_values(Some(codes)).into()
}

/// A page of `GET /api/v1/jobs`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct JobPage {
    jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// One Server-Sent Event of `GET /api/v1/jobs/{id}/events`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct JobEventMessage {
    /// `status` (the status changed), `progress` (anything else changed) or `deleted`.
    #[schema(pattern = "^(status|progress|deleted)$")]
    event: String,
    /// The record's revision (absent for `deleted`).
    id: Option<String>,
    /// The job record as JSON (`{"id": ...}` for `deleted`).
    data: String,
}

/// `GET /api/v1/health`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Health {
    status: String,
    version: String,
}

/// A JSON job over inputs put through POST /api/v1/uploads.
#[derive(ToSchema)]
#[allow(dead_code)]
struct JobFromKeys {
    /// Upload keys (`uploads/<id>`) of source images (or speech for `lip_syncer`).
    #[schema(max_items = 64)]
    sources: Vec<String>,
    /// Upload key (`uploads/<id>`) of the target image or video.
    target: String,
    #[schema(schema_with = options_ref)]
    options: Option<serde_json::Value>,
    /// `jpg`, `png`, `webp`, `bmp`, or a video container; default: the target's.
    output_format: Option<String>,
    /// An https URL called with the job record on the chosen events (needs FF_WEBHOOK_SECRET).
    webhook: Option<String>,
    /// Default `["completed"]`.
    webhook_events_filter: Option<Vec<WebhookEvent>>,
}

/// The file of `/faces`; detector, landmarker, selector and trim options come as further fields.
#[derive(ToSchema)]
#[allow(dead_code)]
struct FacesFile {
    /// An image or a video.
    #[schema(format = Binary)]
    media: String,
}

/// `/faces` over an upload.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = FacesFromUpload)]
struct FacesFromUploadDoc {
    /// An upload key (`uploads/<id>`).
    media: String,
    #[schema(schema_with = options_ref)]
    options: Option<serde_json::Value>,
}

/// The files of `/process` and a multipart job; the processing options come as further fields.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ProcessFiles {
    /// Source images (faces), or speech for `lip_syncer`; repeat the field for several.
    #[schema(value_type = Vec<String>, format = Binary)]
    source: Vec<Vec<u8>>,
    /// The image or video to process.
    #[schema(value_type = String, format = Binary)]
    target: Vec<u8>,
    /// All options as one JSON object, instead of one field each.
    options: Option<String>,
    output_format: Option<String>,
    /// Jobs only: an https URL called with the job record on the chosen events.
    webhook: Option<String>,
    /// Jobs only: `start`, `progress`, `completed` (repeated or space-separated); default `completed`.
    webhook_events_filter: Option<Vec<WebhookEvent>>,
}

fn options_ref() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ProcessingOptions"))
}

/// The processing options, from the option table: each option's type, choices, range and default.
fn options_schema() -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .description(Some("FaceFusion's options by their snake_case names (see GET /api/v1/processors)."));
    for spec in OPTIONS {
        object = object.property(spec.name, option_schema(spec));
    }
    object.into()
}

fn option_schema(spec: &OptionSpec) -> Schema {
    let description = match spec.support {
        Support::Supported => spec.help.to_string(),
        Support::Ignored(reason) => format!("{} (accepted, no effect here: {reason})", spec.help),
    };
    let string = || ObjectBuilder::new().schema_type(SchemaType::new(Type::String));
    let default = (!spec.default.is_empty()).then(|| json!(spec.default));
    match &spec.kind {
        OptionKind::Choice { choices } => {
            string().enum_values(Some(choices.to_vec())).default(default).description(Some(description)).into()
        }
        OptionKind::Choices { choices } => {
            let one = string().enum_values(Some(choices.to_vec()));
            let list = ArrayBuilder::new().items(one).description(Some(description.clone())).build();
            // Lists also come space-separated in one form field.
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(list)
                .item(string().description(Some("space-separated")))
                .description(Some(description))
                .into()
        }
        OptionKind::Float { min, max, .. } => ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Number))
            .minimum(Some(*min))
            .maximum(Some(*max))
            .default(spec.default.parse::<f64>().ok().map(|v| json!(v)))
            .description(Some(description))
            .into(),
        OptionKind::Int { min, max } => ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .minimum(Some(*min as f64))
            .maximum(Some(*max as f64))
            .default(spec.default.parse::<i64>().ok().map(|v| json!(v)))
            .description(Some(description))
            .into(),
        OptionKind::Flag => {
            ObjectBuilder::new().schema_type(SchemaType::new(Type::Boolean)).description(Some(description)).into()
        }
        OptionKind::Sides | OptionKind::Color | OptionKind::Text => {
            string().default(default).description(Some(description)).into()
        }
    }
}

/// Adds what the derive cannot: the options from the option table and the bearer key scheme.
struct Additions;

impl Modify for Additions {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert("ProcessingOptions".into(), RefOr::T(options_schema()));
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("FF_API_KEYS; the API is open when the server has none"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ff", description = "FaceFusion 3.5.3 processing on CPU, over HTTP."),
    paths(
        paths::health,
        paths::openapi,
        paths::docs,
        paths::page,
        paths::process,
        paths::faces,
        paths::create_job,
        paths::create_upload,
        paths::put_upload,
        paths::list_jobs,
        paths::show_job,
        paths::job_events,
        paths::job_result,
        paths::delete_job,
        paths::processors,
        paths::models,
        paths::download_models,
        paths::system,
        paths::s3_events,
        paths::metrics,
    ),
    components(schemas(
        Job, JobStatus, JobFailure, JobInputs, JobSegments, JobPage, JobEventMessage, ErrorBody, ErrorDetail, Health, JobFromKeys,
        ProcessFiles, UploadRequest, UploadTicket, UploadReceipt, FacesAnswer, FaceEntry, PersonEntry, MediaClass,
        FacesFile, FacesFromUploadDoc
    )),
    modifiers(&Additions),
    security((), ("api_key" = [])),
)]
struct ApiDoc;

/// One documentation function per route. The handlers live with their routers; a test checks that
/// these paths and the routes `Endpoints` registers are the same set.
#[allow(dead_code)]
mod paths {
    use super::*;

    #[utoipa::path(get, path = "/api/v1/health", tag = "server", security(()),
        responses((status = 200, description = "Alive", body = Health)))]
    fn health() {}

    #[utoipa::path(get, path = "/api/v1/openapi.json", tag = "server", security(()),
        responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
    fn openapi() {}

    #[utoipa::path(get, path = "/api/v1/docs", tag = "server", security(()),
        responses((status = 200, description = "A page rendering this document", content_type = "text/html", body = String)))]
    fn docs() {}

    #[utoipa::path(get, path = "/", tag = "server", security(()),
        responses((status = 200, description = "A page to try ff in a browser, on this API", content_type = "text/html", body = String)))]
    fn page() {}

    #[utoipa::path(post, path = "/api/v1/process", tag = "processing",
        description = "Processes an image (or a short video) in the request and answers the result's bytes.",
        request_body(content = ProcessFiles, content_type = "multipart/form-data",
            description = "The files, and each processing option (see ProcessingOptions) as a field of its own"),
        responses(
            (status = 200, description = "The processed image or video, with X-Faces-Processed", content_type = "application/octet-stream", body = String),
            (status = 303, description = "On Lambda, an answer too large for the function URL: a presigned URL"),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn process() {}

    #[utoipa::path(post, path = "/api/v1/faces", tag = "processing",
        description = "The faces of an image (each with its position in the selector's order), or the people of a video (up to 48 frames sampled over the trim range, grouped by identity), each with a small JPEG crop.",
        request_body(content(
            (FacesFile = "multipart/form-data"),
            (FacesFromUploadDoc = "application/json"),
        )),
        responses(
            (status = 200, description = "The faces and people", body = FacesAnswer),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn faces() {}

    #[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs",
        description = "Creates a job. Headers: `Idempotency-Key` (a retry answers the job the first request created), `Prefer: wait=N` (wait up to N ≤ 60 s for the job to finish).",
        request_body(content(
            (ProcessFiles = "multipart/form-data"),
            (JobFromKeys = "application/json"),
        )),
        params(
            ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable characters; kept 24 h"),
            ("Prefer" = Option<String>, Header, description = "`wait=N`: hold the answer until the job is final or N seconds pass"),
        ),
        responses(
            (status = 200, description = "The job, final (after `Prefer: wait`, or a replayed Idempotency-Key)", body = Job),
            (status = 202, description = "The job, queued or running", body = Job),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn create_job() {}

    #[utoipa::path(post, path = "/api/v1/uploads", tag = "jobs",
        description = "A place to put one input for a JSON job: PUT the bytes to `url` with `headers` before `expires_at` (15 minutes), then name `key` in POST /api/v1/jobs. On S3 the URL is a presigned PUT into the bucket (up to 1 GiB); on the filesystem backend it is PUT /api/v1/uploads/{id} (up to FF_MAX_UPLOAD_SIZE_MB).",
        request_body(content = UploadRequest, content_type = "application/json"),
        responses(
            (status = 201, description = "Where and how to put the bytes", body = UploadTicket),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn create_upload() {}

    #[utoipa::path(put, path = "/api/v1/uploads/{id}", tag = "jobs", security(()),
        description = "The upload URL of the filesystem backend, exactly as POST /api/v1/uploads gave it: its query is the authorisation. Once only.",
        params(
            ("id" = String, Path, description = "The upload's id"),
            ("content_type" = String, Query, description = "Signed: the granted content type"),
            ("size" = u64, Query, description = "Signed: the granted size"),
            ("expires" = u64, Query, description = "Signed: Unix seconds"),
            ("signature" = String, Query, description = "HMAC-SHA256 of the grant"),
        ),
        request_body(content = String, content_type = "application/octet-stream", description = "The bytes, with the granted Content-Type and Content-Length"),
        responses(
            (status = 200, description = "Stored", body = UploadReceipt),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn put_upload() {}

    #[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
        params(
            ("status" = Option<JobStatus>, Query, description = "Only jobs in this status"),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
            ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ),
        responses(
            (status = 200, description = "The caller's jobs, oldest first", body = JobPage),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn list_jobs() {}

    #[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
        params(("id" = String, Path, description = "The job's id")),
        responses(
            (status = 200, description = "The job", body = Job),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn show_job() {}

    #[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
        description = "Server-Sent Events: `status` or `progress` events carrying the job record, ending after the final status.",
        params(
            ("id" = String, Path, description = "The job's id"),
            ("Last-Event-ID" = Option<String>, Header, description = "Continue after this revision"),
        ),
        responses(
            (status = 200, description = "The event stream", content_type = "text/event-stream", body = JobEventMessage),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn job_events() {}

    #[utoipa::path(get, path = "/api/v1/jobs/{id}/result", tag = "jobs",
        params(("id" = String, Path, description = "The job's id")),
        responses(
            (status = 200, description = "The result's bytes", content_type = "application/octet-stream", body = String),
            (status = 302, description = "On S3: a short-lived presigned URL of the result"),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn job_result() {}

    #[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "jobs",
        description = "Cancels a queued or running job (200, the record), or deletes a finished one (204).",
        params(("id" = String, Path, description = "The job's id")),
        responses(
            (status = 200, description = "Cancelled", body = Job),
            (status = 204, description = "Deleted"),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn delete_job() {}

    #[utoipa::path(get, path = "/api/v1/processors", tag = "server",
        responses(
            (status = 200, description = "Processors, their models and options", body = Object),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn processors() {}

    #[utoipa::path(get, path = "/api/v1/models", tag = "server",
        params(
            ("processor" = Option<String>, Query, description = "Only the models of this module or processor"),
            ("downloaded" = Option<bool>, Query, description = "Only models that are (not) present"),
        ),
        responses(
            (status = 200, description = "The model catalogue against the models directory", body = Object),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn models() {}

    #[utoipa::path(post, path = "/api/v1/models/download", tag = "server",
        request_body(content = Vec<String>, content_type = "application/json", description = "Model, module or processor names, or `all`"),
        responses(
            (status = 200, description = "What happened to each model", body = Object),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn download_models() {}

    #[utoipa::path(get, path = "/api/v1/system", tag = "server",
        responses(
            (status = 200, description = "Versions, resources and load", body = Object),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn system() {}

    #[utoipa::path(post, path = "/api/v1/events/s3", tag = "server", security(()),
        description = "S3 event notifications from MinIO (bearer FF_EVENTS_SECRET); absent when that is unset.",
        request_body(content = Object, content_type = "application/json"),
        responses(
            (status = 202, description = "A report per record", body = Object),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn s3_events() {}

    #[utoipa::path(get, path = "/metrics", tag = "server",
        description = "Counters of this process for Prometheus: requests, durations, jobs, frames, inference time per model.",
        responses(
            (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
            (status = "default", description = "An error", body = ErrorBody),
        ))]
    fn metrics() {}
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::metrics::METRICS_PATH;
    use crate::http::page::PAGE_PATH;
    use crate::http::Endpoints;

    #[test]
    fn the_document_describes_exactly_the_routes_served() {
        let document = serde_json::to_value(document()).unwrap();
        let mut described = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys().filter(|key| *key != "parameters") {
                described.insert((method.to_uppercase(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = Endpoints::ALL
            .iter()
            .flat_map(|endpoints| endpoints.routes().iter())
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .chain([OPENAPI_PATH, DOCS_PATH, METRICS_PATH, PAGE_PATH].map(|path| ("GET".to_string(), path.to_string())))
            .collect();
        assert_eq!(described, served);
    }

    #[test]
    fn options_come_from_the_option_table() {
        let document = serde_json::to_value(document()).unwrap();
        let options = &document["components"]["schemas"]["ProcessingOptions"]["properties"];
        assert_eq!(options.as_object().unwrap().len(), OPTIONS.len());
        let score = &options["face_detector_score"];
        assert_eq!((score["minimum"].as_f64(), score["maximum"].as_f64()), (Some(0.0), Some(1.0)));
        assert!(options["face_swapper_model"]["enum"].as_array().unwrap().iter().any(|v| v == "inswapper_128"));
        assert_eq!(document["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    }

    #[test]
    fn every_error_code_is_in_the_document() {
        let document = serde_json::to_value(document()).unwrap();
        let codes = &document["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
        for code in ["unauthorized", "rate_limited", "busy", "job_not_found", "ffmpeg_timeout"] {
            assert!(codes.as_array().unwrap().iter().any(|c| c == code), "{code}");
        }
    }
}
