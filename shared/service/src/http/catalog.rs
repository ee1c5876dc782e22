//! What the service offers and what it runs on: GET /api/v1/processors, GET /api/v1/models,
//! POST /api/v1/models/download and GET /api/v1/system.
//!
//! Everything here is read from the definitions the CLI uses — the option table
//! (`ff_pipeline::options::OPTIONS`), the model catalogue and the model store — so the API cannot
//! drift from `ff process --help` or `ff models`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ff_pipeline::models::{catalogue, DownloadScope, ModelEntry, ModelStatus, ModelStore, CUSTOM_MODELS_DIR};
use ff_pipeline::options::{swapper_pixel_boosts, OptionKind, OptionSpec, Support, FACE_SWAPPER_MODELS, OPTIONS};
use ff_pipeline::processor::Processor;
use ff_pipeline::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::body::{read_small, refuse_unread, MODEL_DOWNLOAD_BODY_LIMIT};
use crate::error::ApiError;
use crate::models_bucket::{BucketModels, Published};
use crate::run::on_cpu;
use crate::state::AppState;

/// GET /api/v1/processors, GET /api/v1/models, POST /api/v1/models/download.
pub fn models_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/processors", get(processors))
        .route("/api/v1/models", get(list_models))
        .route("/api/v1/models/download", post(download_models))
}

/// GET /api/v1/system.
pub fn system_router() -> Router<AppState> {
    Router::new().route("/api/v1/system", get(system))
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/processors

async fn processors() -> Json<Value> {
    Json(processors_document())
}

/// The processors FaceFusion 3.5.3 has, those this engine runs first, each with its model choices
/// and options; options shared by every processor come once, under `common_options`.
fn processors_document() -> Value {
    let available = Processor::ALL.iter().map(|processor| processor_entry(processor.name(), true));
    let common: Vec<Value> = OPTIONS.iter().filter(|spec| spec.processor.is_none()).map(option_entry).collect();
    json!({
        "processors": available.collect::<Vec<_>>(),
        "common_options": common,
    })
}

fn processor_entry(name: &str, available: bool) -> Value {
    let options: Vec<Value> = OPTIONS.iter().filter(|spec| spec.processor == Some(name)).map(option_entry).collect();
    json!({ "name": name, "available": available, "models": processor_models(name), "options": options })
}

/// The values of the processor's `<name>_model` option: from the option table when the engine runs
/// the processor, else from the catalogue (what FaceFusion offers), so clients see both the same way.
fn processor_models(name: &str) -> Vec<String> {
    let option = format!("{name}_model");
    if let Some(spec) = OPTIONS.iter().find(|spec| spec.name == option) {
        if let OptionKind::Choice { choices } | OptionKind::Choices { choices } = &spec.kind {
            return choices.iter().map(|choice| choice.to_string()).collect();
        }
    }
    let mut models: Vec<String> = Vec::new();
    for entry in catalogue().for_processor(name) {
        for choice in &entry.choices {
            if !models.contains(choice) {
                models.push(choice.clone());
            }
        }
    }
    models
}

/// One option as a client needs it: the form-field name, the CLI flag, a typed default and the
/// values it accepts. Built from `OptionSpec` rather than serialising it as is, because the table
/// keeps defaults as command-line text ("0 0 0 0") and a client wants JSON values ([0, 0, 0, 0]).
fn option_entry(spec: &OptionSpec) -> Value {
    let mut entry = serde_json::Map::new();
    entry.insert("name".into(), json!(spec.name));
    entry.insert("flag".into(), json!(format!("--{}", spec.name.replace('_', "-"))));
    let words: Vec<&str> = spec.default.split_whitespace().collect();
    let single = |parse: fn(&str) -> Option<Value>| words.first().and_then(|word| parse(word)).unwrap_or(Value::Null);
    let (kind, default) = match &spec.kind {
        OptionKind::Choice { choices } => {
            entry.insert("choices".into(), json!(choices));
            ("choice", single(|word| Some(json!(word))))
        }
        OptionKind::Choices { choices } => {
            entry.insert("choices".into(), json!(choices));
            ("choices", json!(words))
        }
        OptionKind::Float { min, max, step } => {
            entry.extend([("min".into(), json!(min)), ("max".into(), json!(max)), ("step".into(), json!(step))]);
            ("float", single(|word| word.parse::<f64>().ok().map(|number| json!(number))))
        }
        OptionKind::Int { min, max } => {
            entry.insert("min".into(), json!(min));
            // i64::MAX stands for "no upper bound" in the table; JSON clients would mangle it.
            if *max != i64::MAX {
                entry.insert("max".into(), json!(max));
            }
            ("int", single(|word| word.parse::<i64>().ok().map(|number| json!(number))))
        }
        OptionKind::Sides => {
            entry.extend([("min".into(), json!(0)), ("max".into(), json!(100)), ("max_items".into(), json!(4))]);
            ("sides", json!(words.iter().filter_map(|word| word.parse::<u32>().ok()).collect::<Vec<_>>()))
        }
        OptionKind::Color => {
            entry.extend([("min".into(), json!(0)), ("max".into(), json!(255)), ("max_items".into(), json!(4))]);
            ("color", json!(words.iter().filter_map(|word| word.parse::<u8>().ok()).collect::<Vec<_>>()))
        }
        OptionKind::Flag => ("flag", json!(false)),
        OptionKind::Text => ("text", single(|word| Some(json!(word)))),
    };
    entry.insert("type".into(), json!(kind));
    entry.insert("default".into(), default);
    if spec.name == "face_swapper_pixel_boost" {
        // The accepted sizes depend on the model; the default is the model's native size.
        let by_model: BTreeMap<&str, Vec<String>> = FACE_SWAPPER_MODELS
            .iter()
            .map(|model| (*model, swapper_pixel_boosts(model).iter().map(|size| format!("{size}x{size}")).collect()))
            .collect();
        entry.insert("choices_by_model".into(), json!(by_model));
    }
    match spec.support {
        Support::Supported => {
            entry.insert("supported".into(), json!(true));
        }
        Support::Ignored(reason) => {
            entry.insert("supported".into(), json!(false));
            entry.insert("ignored_because".into(), json!(reason));
        }
    }
    entry.insert("help".into(), json!(spec.help));
    Value::Object(entry)
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/models

#[derive(Debug, Deserialize)]
struct ModelsQuery {
    /// Only models a module or processor loads (`face_swapper`, `face_detector`).
    processor: Option<String>,
    /// Only models that are (`true`) or are not (`false`) in the models directory.
    downloaded: Option<bool>,
}

/// One catalogue entry against the models directory. The file is relative to the models
/// directory: the server's own paths are not the client's business.
#[derive(Debug, Serialize)]
struct ModelRow {
    name: String,
    modules: Vec<String>,
    choices: Vec<String>,
    file: String,
    downloaded: bool,
    size: Option<u64>,
    verified: bool,
    /// The published size of the file, when the catalogue knows it.
    expected_size: Option<u64>,
    /// FaceFusion's download scope; none for custom models, which are never downloaded.
    download_scope: Option<DownloadScope>,
    /// A deep swapper model the operator put into `<models dir>/custom/`: used as it is, without a
    /// hash (as FaceFusion does), so `verified` only says that the file is there.
    custom: bool,
}

impl ModelRow {
    fn new(entry: &ModelEntry, status: &ModelStatus) -> Self {
        Self {
            name: entry.name.clone(),
            modules: entry.modules.clone(),
            choices: entry.choices.clone(),
            file: entry.file.clone(),
            downloaded: status.downloaded,
            size: status.size,
            verified: status.verified,
            expected_size: entry.bytes,
            download_scope: Some(entry.download_scope),
            custom: false,
        }
    }

    fn custom(status: ModelStatus) -> Self {
        Self {
            file: format!("{CUSTOM_MODELS_DIR}/{}", status.file.file_name().unwrap_or_default().to_string_lossy()),
            modules: vec![Processor::DeepSwapper.name().to_string()],
            choices: vec![status.name.clone()],
            name: status.name,
            downloaded: status.downloaded,
            size: status.size,
            verified: status.verified,
            expected_size: None,
            download_scope: None,
            custom: true,
        }
    }
}

async fn list_models(
    State(state): State<AppState>,
    query: Result<Query<ModelsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let entries: Vec<&'static ModelEntry> = match &query.processor {
        None => catalogue().models().iter().collect(),
        Some(name) => {
            let found = catalogue().for_processor(name);
            if found.is_empty() {
                let modules = catalogue().module_names().join(", ");
                return Err(ApiError::BadRequest(format!(
                    "`{name}` is not a FaceFusion module or processor ({modules})"
                )));
            }
            found
        }
    };
    let engine = Arc::clone(state.engine());
    // Checking a file the store has not verified before reads all of it for its CRC32: disk and
    // CPU work that must not stall the async workers.
    let rows = on_cpu(move || {
        let store = engine.store();
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            let status = store.status(&entry.name)?;
            if query.downloaded.is_none_or(|wanted| wanted == status.downloaded) {
                rows.push(ModelRow::new(entry, &status));
            }
        }
        let wants_custom = query.processor.as_deref().is_none_or(|name| name == Processor::DeepSwapper.name());
        if wants_custom && query.downloaded != Some(false) {
            for name in store.custom_deep_swapper_models()? {
                rows.push(ModelRow::custom(store.status(&name)?));
            }
        }
        Ok::<_, ApiError>(rows)
    })
    .await??;
    Ok(Json(json!({
        "facefusion_version": catalogue().facefusion_version,
        "download_allowed": state.engine().store().allow_download(),
        "count": rows.len(),
        "models": rows,
    })))
}

// ---------------------------------------------------------------------------------------------
// POST /api/v1/models/download

/// What happened to one model of a download request.
#[derive(Debug, Serialize)]
struct DownloadResult {
    name: String,
    /// `present` (was already verified), `downloaded` or `failed`.
    status: &'static str,
    size: Option<u64>,
    verified: bool,
    /// With FF_MODELS_S3_PREFIX: `present` (the bucket had it) or `uploaded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

impl DownloadResult {
    fn fail(&mut self, error: &ApiError) {
        self.status = "failed";
        self.error = Some(json!({ "code": error.code(), "message": error.to_string() }));
    }
}

/// Downloads the named models, option values (`yolo_face`), modules or processors
/// (`face_swapper`), or `all`, like `ff models download`. Names are all checked before anything is
/// fetched, so a typo costs nothing. Verified files are kept as they are.
///
/// If the request times out, downloads already started run to their end on the blocking pool and
/// land in the models directory; GET /api/v1/models shows them.
///
/// With FF_ALLOW_MODEL_DOWNLOAD=false the route answers 403 before reading the body: the operator
/// turned downloads off, and `ff models download` on the host is how they are done then.
async fn download_models(State(state): State<AppState>, request: Request) -> Response {
    if !state.config().allow_model_download {
        return refuse_unread(ApiError::ModelDownloadDisabled, request).await;
    }
    let body = match read_small(request, MODEL_DOWNLOAD_BODY_LIMIT, state.config().upload_timeout).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    download_named(&state, &body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn download_named(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let names: Vec<String> = serde_json::from_slice(body).map_err(|error| {
        ApiError::BadRequest(format!("expected a JSON array of model, module or processor names: {error}"))
    })?;
    let entries = resolve_names(&names)?;
    let engine = Arc::clone(state.engine());
    let mut results = on_cpu(move || download_all(&engine, &entries)).await?;
    if let Some(bucket) = state.models_bucket() {
        publish_all(bucket, state.engine().store().dir(), &mut results).await;
    }
    Ok(download_response(results))
}

/// Fills the bucket's models prefix with every model that is now in place, so the other functions
/// and containers copy it from there (FF_MODELS_S3_PREFIX). A model the bucket cannot take counts
/// as failed: filling the bucket is what the request was for.
async fn publish_all(bucket: &BucketModels, models_dir: &Path, results: &mut [DownloadResult]) {
    for result in results.iter_mut().filter(|result| result.status != "failed") {
        match bucket.publish(models_dir, &result.name).await {
            Ok(Published::Present) => result.bucket = Some("present"),
            Ok(Published::Uploaded { .. }) => result.bucket = Some("uploaded"),
            Err(error) => {
                let error = ApiError::from(error);
                tracing::error!(model = %result.name, %error, "could not put the model in the bucket");
                result.fail(&error);
            }
        }
    }
}

/// Expands names into catalogue entries, in the order given and without duplicates; `lite` scope
/// as FaceFusion's default, so `deep_swapper` does not mean 157 files.
fn resolve_names(names: &[String]) -> Result<Vec<&'static ModelEntry>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::BadRequest("name at least one model, module or processor to download".into()));
    }
    let mut entries: Vec<&'static ModelEntry> = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        let found = catalogue().resolve(name.trim(), DownloadScope::Lite);
        if found.is_empty() {
            unknown.push(format!("`{name}`"));
        }
        for entry in found {
            if !entries.iter().any(|known| known.name == entry.name) {
                entries.push(entry);
            }
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "not a FaceFusion 3.5.3 model, model option, module or processor: {}; GET /api/v1/models lists them",
            unknown.join(", ")
        )));
    }
    Ok(entries)
}

fn download_all(engine: &Engine, entries: &[&ModelEntry]) -> Vec<DownloadResult> {
    let store = engine.store();
    entries.iter().map(|entry| download_one(store, &entry.name)).collect()
}

fn download_one(store: &ModelStore, name: &str) -> DownloadResult {
    let was_verified = store.status(name).is_ok_and(|status| status.verified);
    let outcome = if was_verified {
        Ok("present")
    } else {
        tracing::info!(model = name, "downloading model");
        store.download(name).map(|_| "downloaded")
    };
    let after = store.status(name).ok();
    let mut result = DownloadResult {
        name: name.to_string(),
        status: "present",
        size: after.as_ref().and_then(|status| status.size),
        verified: after.is_some_and(|status| status.verified),
        bucket: None,
        error: None,
    };
    match outcome {
        Ok(status) => result.status = status,
        Err(error) => {
            let error = ApiError::from(error);
            if let ApiError::Internal { detail } | ApiError::ModelUnavailable { detail, .. } = &error {
                tracing::error!(model = name, code = error.code(), %detail, "model download failed");
            }
            result.fail(&error);
        }
    }
    result
}

/// 200 when every model is in place; otherwise 503 `model_unavailable` with the same error object
/// as every other failure, plus the per-model results so a client sees what did succeed.
fn download_response(results: Vec<DownloadResult>) -> Response {
    let failed: Vec<&str> =
        results.iter().filter(|result| result.status == "failed").map(|result| result.name.as_str()).collect();
    if failed.is_empty() {
        return Json(json!({ "results": results })).into_response();
    }
    let summary = ApiError::ModelUnavailable { model: failed.join(", "), detail: String::new() };
    let message =
        format!("{} of {} models could not be downloaded: {}", failed.len(), results.len(), failed.join(", "));
    let body = json!({ "error": { "code": summary.code(), "message": message }, "results": results });
    (summary.status(), Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/system

async fn system(State(state): State<AppState>) -> Json<Value> {
    let config = state.config();
    let limiter = state.limiter();
    let slots = config.max_concurrent_requests;
    let queue = config.max_queued_requests;
    let busy = slots.saturating_sub(limiter.idle_slots());
    // Admitted requests are either on a slot or waiting for one; the two counters are read one
    // after the other, so the difference is clamped rather than trusted to the unit.
    let admitted = (slots + queue).saturating_sub(limiter.free_places());
    let memory = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| parse_meminfo(&text));
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "facefusion_version": catalogue().facefusion_version,
        "onnxruntime": {
            "version": ff_pipeline::runtime::ORT_VERSION,
            "library_found": ff_pipeline::runtime::default_library_path().is_file(),
        },
        "execution_providers": config.execution_providers,
        "video_memory_strategy": format!("{:?}", config.video_memory_strategy).to_lowercase(),
        "execution_thread_count": config.execution_thread_count,
        "cpu_count": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory": {
            "total_bytes": memory.map(|m| m.total_bytes),
            "available_bytes": memory.map(|m| m.available_bytes),
            "cgroup_limit_bytes": cgroup_memory_limit(Path::new("/sys/fs/cgroup/memory.max")),
        },
        "processing": {
            "slots": slots,
            "slots_busy": busy,
            "queue_capacity": queue,
            "queued": admitted.saturating_sub(busy),
            // Uploads being received (each with FF_UPLOAD_TIMEOUT_SECS to arrive) and their places.
            "upload_places": slots + queue,
            "uploading": (slots + queue).saturating_sub(limiter.free_upload_places()),
        },
        // `429 busy` answers since start-up, on every route.
        "rejected_busy": state.busy_log().total(),
        "jobs": {
            "storage": state.storage().kind(),
            "workers": config.workers,
            "queue_capacity": config.job_queue_length,
            "queued": state.job_queue().depth(),
        },
        "models": {
            "download_allowed": state.engine().store().allow_download(),
            // FF_MODELS_S3_PREFIX: where missing models are copied from before FaceFusion's URLs.
            "source": state.engine().store().source_location(),
        },
        // FF_CONTENT_ANALYSIS: whether every target goes through FaceFusion's NSFW gate.
        "content_analysis": config.content_analysis,
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Memory {
    total_bytes: u64,
    available_bytes: u64,
}

/// `MemTotal` and `MemAvailable` of /proc/meminfo, which the kernel reports in KiB.
fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kib * 1024)
        })
    };
    Some(Memory { total_bytes: field("MemTotal")?, available_bytes: field("MemAvailable")? })
}

/// A container's memory limit (cgroup v2), which /proc/meminfo does not show: `None` when there
/// is no limit ("max") or no cgroup v2 file.
fn cgroup_memory_limit(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemTotal:       24567890 kB\nMemFree:         1000 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(Memory { total_bytes: 24_567_890 * 1024, available_bytes: 22_000_000 * 1024 })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotalish: 1 kB\nMemAvailable: 1 kB\n"), None);
    }

    #[test]
    fn cgroup_limit_is_a_number_or_nothing() {
        let dir = std::env::temp_dir().join(format!("ff-admin-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("memory.max");
        std::fs::write(&file, "max\n").unwrap();
        assert_eq!(cgroup_memory_limit(&file), None);
        std::fs::write(&file, "2147483648\n").unwrap();
        assert_eq!(cgroup_memory_limit(&file), Some(2_147_483_648));
        assert_eq!(cgroup_memory_limit(&dir.join("absent")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_option_of_the_table_is_listed_once() {
        let document = processors_document();
        let mut listed: Vec<String> = document["common_options"]
            .as_array()
            .unwrap()
            .iter()
            .chain(document["processors"].as_array().unwrap().iter().flat_map(|p| p["options"].as_array().unwrap()))
            .map(|option| option["name"].as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut table: Vec<String> = OPTIONS.iter().map(|spec| spec.name.to_string()).collect();
        table.sort();
        assert_eq!(listed, table);
    }

    #[test]
    fn defaults_are_typed_json_values() {
        let spec = |name: &str| option_entry(OPTIONS.iter().find(|spec| spec.name == name).unwrap());
        assert_eq!(spec("face_detector_score")["default"], json!(0.5));
        assert_eq!(spec("face_detector_margin")["default"], json!([0, 0, 0, 0]));
        assert_eq!(spec("face_mask_types")["default"], json!(["box"]));
        assert_eq!(spec("face_selector_age_start")["default"], Value::Null);
        assert_eq!(spec("output_image_quality")["default"], json!(80));
        assert_eq!(spec("keep_temp")["default"], json!(false));
        assert_eq!(spec("face_swapper_model")["default"], json!("hyperswap_1a_256"));
        let position = spec("reference_face_position");
        assert_eq!((position["min"].clone(), position.get("max")), (json!(0), None));
        let boost = spec("face_swapper_pixel_boost");
        assert_eq!(boost["choices_by_model"]["simswap_unofficial_512"], json!(["512x512", "768x768", "1024x1024"]));
        let providers = spec("execution_providers");
        assert_eq!(providers["supported"], json!(false));
        assert!(providers["ignored_because"].as_str().unwrap().contains("CPU"));
    }

    #[test]
    fn all_eleven_processors_are_listed_with_their_models_and_options() {
        let document = processors_document();
        let processors = document["processors"].as_array().unwrap();
        let swapper = processors.iter().find(|p| p["name"] == "face_swapper").unwrap();
        assert_eq!(swapper["available"], json!(true));
        assert_eq!(swapper["models"].as_array().unwrap().len(), FACE_SWAPPER_MODELS.len());
        let lip_syncer = processors.iter().find(|p| p["name"] == "lip_syncer").unwrap();
        assert_eq!(lip_syncer["available"], json!(true));
        assert!(lip_syncer["models"].as_array().unwrap().contains(&json!("wav2lip_gan_96")));
        assert_eq!(processors.len(), 11);
        assert!(processors
            .iter()
            .all(|p| p["available"] == json!(true) && !p["options"].as_array().unwrap().is_empty()));
        let deep_swapper = processors.iter().find(|p| p["name"] == "deep_swapper").unwrap();
        assert_eq!(deep_swapper["models"].as_array().unwrap().len(), 157);
        let remover = processors.iter().find(|p| p["name"] == "background_remover").unwrap();
        let color = remover["options"].as_array().unwrap().iter().find(|o| o["name"] == "background_remover_color");
        assert_eq!(color.unwrap()["default"], json!([0, 0, 0, 0]));
    }

    #[test]
    fn names_resolve_in_order_without_duplicates_and_unknown_ones_are_named() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        let entries = resolve_names(&names(&["ghost_2_256", "crossface_ghost"])).unwrap();
        let resolved: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
        assert_eq!(resolved, ["crossface_ghost", "ghost_2_256"]);
        let error = resolve_names(&names(&["face_swapper", "nope", "nada"])).unwrap_err();
        assert_eq!(error.code(), "bad_request");
        assert!(error.to_string().contains("`nope`, `nada`"), "{error}");
        assert_eq!(resolve_names(&[]).unwrap_err().code(), "bad_request");
    }

    #[test]
    fn a_failed_download_is_a_503_with_every_result() {
        let ok = DownloadResult {
            name: "a".into(),
            status: "present",
            size: Some(1),
            verified: true,
            bucket: None,
            error: None,
        };
        let failed = DownloadResult {
            name: "b".into(),
            status: "failed",
            size: None,
            verified: false,
            bucket: None,
            error: Some(json!({ "code": "model_unavailable", "message": "x" })),
        };
        let response = download_response(vec![ok, failed]);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let all_ok = DownloadResult {
            name: "a".into(),
            status: "downloaded",
            size: Some(1),
            verified: true,
            bucket: Some("uploaded"),
            error: None,
        };
        assert_eq!(download_response(vec![all_ok]).status(), StatusCode::OK);
    }
}
