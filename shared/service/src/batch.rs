//! Batch processing: an object put under `inbox/` is processed and its result written to
//! `outbox/`, or its failure to `failed/`.
//!
//! Layout in storage (either backend):
//!
//! ```text
//! inbox/<name>                   the target, uploaded by anyone with write access to the bucket
//! inbox/<name>.json              optional options sidecar (upload it before the target)
//! batch/<name>/<etag>.claim      marker: this version of the target has been taken by a worker
//! outbox/<name>                  the result (extension changed only when `output_format` says so)
//! failed/<name>.json             `{"code", "message", "input"}` when it could not be processed
//! ```
//!
//! Options come from the sidecar when there is one, else from FF_BATCH_OPTIONS. Both are a JSON
//! object of FaceFusion option names (as `/process` takes them) plus two batch keys: `sources`,
//! the keys of source images already in the bucket (face_swapper needs at least one), and
//! `output_format` (jpg, png, webp or bmp). A sidecar replaces the defaults as a whole, so what
//! ran is always what one document says.
//!
//! A video target is processed like an image, on disk in a run directory under FF_TEMP_DIR, within
//! FF_MAX_JOB_VIDEO_SECS and FF_VIDEO_TIMEOUT_SECS; its result keeps the target's name and so its
//! container (`output_format` applies to image results only).
//!
//! S3 delivers events at least once, and late: the claim marker is created with `IfAbsent`, so
//! of any number of deliveries for one upload exactly one processes it. The marker is keyed by
//! the object's etag, so uploading different bytes under the same name processes them again.
//! The input is left in `inbox/` either way: deleting it is the uploader's choice, and a failed
//! input stays next to its `failed/` report to be fixed and re-uploaded.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::media::{sniff, MediaKind};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::ImageRequest;
use serde::Serialize;

use crate::error::ApiError;
use crate::jobs::worker::MAX_INPUT_BYTES;
use crate::media::VideoWorkspace;
use crate::media::{self, check_video, download, read_head, CancelOnDrop, DurationLimit, OutputFormat, Route};
use crate::state::AppState;
use crate::storage::{Storage, StorageError, WriteCondition};

pub const INBOX_PREFIX: &str = "inbox/";
pub const OUTBOX_PREFIX: &str = "outbox/";
pub const FAILED_PREFIX: &str = "failed/";
pub const CLAIM_PREFIX: &str = "batch/";

/// Sidecars are a few hundred bytes; anything much larger is not an options document.
const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

/// The options one batch object runs with: FF_BATCH_OPTIONS or a sidecar, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BatchOptions {
    /// FaceFusion options, as a JSON object (validated by `ProcessOptions::from_json`).
    pub options: serde_json::Value,
    /// Keys of the source images in the bucket.
    pub sources: Vec<String>,
    pub output_format: Option<ImageFormat>,
}

impl BatchOptions {
    /// Parses an options document; the error is a message naming the bad part.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err("must be a JSON object of option names to values".into());
        };
        let sources = match object.remove("sources") {
            None => Vec::new(),
            Some(serde_json::Value::Array(items)) => {
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    let key = item.as_str().ok_or("`sources` must be an array of object keys (strings)")?;
                    crate::storage::validate_key(key).map_err(|e| format!("`sources`: {e}"))?;
                    keys.push(key.to_string());
                }
                keys
            }
            Some(_) => return Err("`sources` must be an array of object keys".into()),
        };
        let output_format = match object.remove("output_format") {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(
                value
                    .as_str()
                    .and_then(ImageFormat::from_name)
                    .ok_or("`output_format` must be jpg, png, webp or bmp")?,
            ),
        };
        let options = serde_json::Value::Object(object);
        // Checked here so a bad default stops start-up and a bad sidecar fails before any work.
        ProcessOptions::from_json(&options).map_err(|e| e.to_string())?;
        Ok(Self { options, sources, output_format })
    }
}

/// What `process_inbox_object` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchOutcome {
    Completed {
        output: String,
    },
    Failed {
        code: String,
        report: String,
    },
    /// This version was already claimed: a duplicate or late event.
    Duplicate,
    /// Not a batch input (a sidecar, or outside `inbox/`).
    Ignored {
        reason: String,
    },
}

/// The name under `inbox/` of a batch input, `None` for sidecars and other keys.
pub fn inbox_name(key: &str) -> Option<&str> {
    let name = key.strip_prefix(INBOX_PREFIX)?;
    (!name.is_empty() && !name.ends_with(".json")).then_some(name)
}

/// Processes `inbox/<name>` once per uploaded version, with FF_BATCH_OPTIONS unless it has a
/// sidecar. Storage failures are returned (a retry of the event can help; the claim is released so
/// the retry is not taken for a duplicate); everything about the input itself ends in
/// `failed/<name>.json`.
pub async fn process_inbox_object(state: &AppState, key: &str) -> Result<BatchOutcome, StorageError> {
    let storage = Arc::clone(state.storage());
    let Some(name) = inbox_name(key) else {
        return Ok(BatchOutcome::Ignored { reason: "not a batch input (inbox/<name>, not a .json sidecar)".into() });
    };
    let meta = match storage.head(key).await {
        Ok(meta) => meta,
        // Deleted before its event arrived: nothing to do, and nothing a retry would change.
        Err(StorageError::NotFound { .. }) => {
            return Ok(BatchOutcome::Ignored { reason: "the object no longer exists".into() })
        }
        Err(error) => return Err(error),
    };
    let claim = format!("{CLAIM_PREFIX}{name}/{}.claim", etag_token(&meta.etag));
    let marker = serde_json::json!({ "key": key, "etag": meta.etag }).to_string();
    match storage.put_bytes(&claim, marker.into(), WriteCondition::IfAbsent).await {
        Ok(_) => {}
        Err(StorageError::PreconditionFailed { .. }) => return Ok(BatchOutcome::Duplicate),
        Err(error) => return Err(error),
    }
    tracing::info!(%key, "batch input claimed");
    let outcome = run(state, key, name).await;
    match outcome {
        Ok(Ok(output)) => {
            tracing::info!(%key, %output, "batch input processed");
            Ok(BatchOutcome::Completed { output })
        }
        Ok(Err(failure)) => {
            let report = format!("{FAILED_PREFIX}{name}.json");
            let body = serde_json::json!({ "code": failure.code(), "message": failure.to_string(), "input": key });
            tracing::info!(%key, code = failure.code(), "batch input failed");
            if let Err(error) = storage.put_bytes(&report, body.to_string().into(), WriteCondition::None).await {
                release(&storage, &claim).await;
                return Err(error);
            }
            Ok(BatchOutcome::Failed { code: failure.code().to_string(), report })
        }
        Err(error) => {
            release(&storage, &claim).await;
            Err(error)
        }
    }
}

/// Gives a claim back after a storage failure, so the retried event processes the input.
async fn release(storage: &Arc<dyn Storage>, claim: &str) {
    if let Err(error) = storage.delete(claim).await {
        tracing::warn!(%claim, %error, "could not release a batch claim; delete it to reprocess the input");
    }
}

/// Etags are quoted hex on S3 and backend-defined on files: keep only what is safe in a key.
fn etag_token(etag: &str) -> String {
    let token: String = etag.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if token.is_empty() {
        "unversioned".into()
    } else {
        token
    }
}

/// The work after the claim: `Err` for storage failures, `Ok(Err)` for the input's own failures.
async fn run(state: &AppState, key: &str, name: &str) -> Result<Result<String, ApiError>, StorageError> {
    let storage = state.storage();
    let sidecar = format!("{key}.json");
    let options = match storage.get_bytes(&sidecar, MAX_SIDECAR_BYTES).await {
        Ok((bytes, _)) => match std::str::from_utf8(&bytes).map_err(|e| e.to_string()).and_then(BatchOptions::parse) {
            Ok(options) => options,
            Err(reason) => return Ok(Err(ApiError::InvalidOption { option: sidecar, reason })),
        },
        Err(StorageError::NotFound { .. }) => state.config().batch_options.clone().unwrap_or_default(),
        Err(StorageError::TooLarge { limit, .. }) => {
            let reason = format!("larger than {limit} bytes");
            return Ok(Err(ApiError::InvalidOption { option: sidecar, reason }));
        }
        Err(error) => return Err(error),
    };
    let process_options = match ProcessOptions::from_json(&options.options) {
        Ok(parsed) => parsed,
        Err(error) => return Ok(Err(error.into())),
    };
    let mut sources = Vec::with_capacity(options.sources.len());
    for source in &options.sources {
        match read_input(storage, source).await? {
            Ok(bytes) => sources.push(bytes),
            Err(error) => return Ok(Err(error)),
        }
    }
    // The target goes to a run directory, streamed, and is judged by its first bytes.
    let mut workspace = match VideoWorkspace::create(&state.config().temp_dir, "download", "out") {
        Ok(workspace) => workspace,
        Err(error) => return Ok(Err(error)),
    };
    match download(storage, key, workspace.target(), MAX_INPUT_BYTES).await {
        Ok(()) => {}
        Err(error) => return input_failure(key, error).map(Err),
    }
    let head = match read_head(workspace.target()).await {
        Ok(head) => head,
        Err(error) => return Ok(Err(error)),
    };
    // `output_format` names an image format; a video keeps its container.
    let output_format = match sniff(&head) {
        Some(MediaKind::Video) => None,
        _ => options.output_format.map(OutputFormat::Image),
    };
    let route = match media::route(&sources, &head, Some(name), &process_options, output_format) {
        Ok(route) => route,
        Err(error) => return Ok(Err(error)),
    };
    let output_key = match route {
        Route::Image { output_format: Some(format) } => {
            // A requested format gets its extension, so the result opens as what it is.
            let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
            format!("{OUTBOX_PREFIX}{stem}.{}", format.extension())
        }
        _ => format!("{OUTBOX_PREFIX}{name}"),
    };
    match route {
        Route::Image { output_format } => {
            let target = match tokio::fs::read(workspace.target()).await {
                Ok(bytes) => bytes,
                Err(e) => return Ok(Err(ApiError::internal(format!("reading the downloaded target failed: {e}")))),
            };
            drop(workspace);
            let request = ImageRequest { sources, target, options: process_options, output_format };
            let engine = Arc::clone(state.engine());
            let processed = tokio::task::spawn_blocking(move || engine.process_image(request)).await;
            let output = match processed {
                Ok(Ok(output)) => output,
                Ok(Err(error)) => return Ok(Err(error.into())),
                Err(join_error) => {
                    return Ok(Err(ApiError::internal(format!("the pipeline task failed: {join_error}"))))
                }
            };
            storage.put_bytes(&output_key, output.bytes.into(), WriteCondition::None).await?;
        }
        Route::Video { target_extension, container } => {
            if let Err(error) = workspace.rename(target_extension, container) {
                return Ok(Err(error));
            }
            let workspace = match run_video(state, workspace, sources, process_options).await {
                Ok(workspace) => workspace,
                Err(error) => return Ok(Err(error)),
            };
            storage.put_file(&output_key, workspace.output()).await?;
        }
    }
    Ok(Ok(output_key))
}

/// Probes and processes a video target; the workspace comes back holding the result.
async fn run_video(
    state: &AppState,
    workspace: VideoWorkspace,
    sources: Vec<Vec<u8>>,
    options: ProcessOptions,
) -> Result<VideoWorkspace, ApiError> {
    let config = state.config();
    let limit = DurationLimit::Job(config.max_job_video_seconds);
    let engine = Arc::clone(state.engine());
    let timeout = config.video_timeout;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_when_dropped = CancelOnDrop(Arc::clone(&cancel));
    let processed = tokio::task::spawn_blocking(move || {
        if workspace.target_is_video() {
            check_video(workspace.target(), &options, limit)?;
        }
        let request = workspace.request(sources, options, timeout, limit);
        let output = engine.process_video(request, |_| {}, &cancel)?;
        tracing::info!(frames = output.frames, fps = output.processing_fps, "batch video processed");
        Ok::<_, ApiError>(workspace)
    })
    .await;
    processed.map_err(|e| ApiError::internal(format!("the pipeline task failed: {e}")))?
}

/// A target that cannot be read: the input's fault (`Ok`), or storage's (`Err`).
fn input_failure(key: &str, error: StorageError) -> Result<ApiError, StorageError> {
    match error {
        StorageError::NotFound { .. } => Ok(ApiError::BadRequest(format!("input `{key}` does not exist"))),
        StorageError::InvalidKey { .. } => Ok(ApiError::BadRequest(format!("`{key}` is not a valid key"))),
        StorageError::TooLarge { limit, .. } => {
            Ok(ApiError::PayloadTooLarge { limit_bytes: usize::try_from(limit).unwrap_or(usize::MAX) })
        }
        error => Err(error),
    }
}

async fn read_input(storage: &Arc<dyn Storage>, key: &str) -> Result<Result<Vec<u8>, ApiError>, StorageError> {
    match storage.get_bytes(key, MAX_INPUT_BYTES).await {
        Ok((bytes, _)) => Ok(Ok(bytes.into())),
        Err(error) => input_failure(key, error).map(Err),
    }
}

/// S3 event keys are URL-encoded the way HTML forms are: `+` for a space, `%XX` for other bytes.
pub fn decode_s3_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = key.get(index + 1..index + 3)?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                index += 2;
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).ok()
}

/// The key relative to FF_S3_PREFIX, or `None` when it lies outside it.
pub fn strip_key_prefix<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    if prefix.is_empty() {
        return Some(key);
    }
    key.strip_prefix(prefix)?.strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_and_other_keys_are_not_batch_inputs() {
        assert_eq!(inbox_name("inbox/a.jpg"), Some("a.jpg"));
        assert_eq!(inbox_name("inbox/sub/a.jpg"), Some("sub/a.jpg"));
        assert_eq!(inbox_name("inbox/a.jpg.json"), None);
        assert_eq!(inbox_name("inbox/"), None);
        assert_eq!(inbox_name("outbox/a.jpg"), None);
    }

    #[test]
    fn options_documents_are_checked() {
        let parsed = BatchOptions::parse(
            r#"{"face_swapper_model": "inswapper_128", "sources": ["s/a.jpg"], "output_format": "png"}"#,
        )
        .unwrap();
        assert_eq!(parsed.sources, ["s/a.jpg"]);
        assert_eq!(parsed.output_format, Some(ImageFormat::Png));
        assert!(parsed.options.get("sources").is_none());
        for bad in ["[]", "{", r#"{"sources": "a"}"#, r#"{"sources": ["../a"]}"#, r#"{"output_format": "gif"}"#] {
            assert!(BatchOptions::parse(bad).is_err(), "{bad}");
        }
        assert!(BatchOptions::parse(r#"{"no_such_option": 1}"#).is_err());
    }

    #[test]
    fn etags_become_key_safe() {
        assert_eq!(etag_token("\"abc123\""), "abc123");
        assert_eq!(etag_token("\"\""), "unversioned");
    }

    #[test]
    fn keys_are_form_url_decoded() {
        assert_eq!(decode_s3_key("inbox/a+b%C3%A9.png").as_deref(), Some("inbox/a bé.png"));
        assert_eq!(decode_s3_key("jobs/x.json").as_deref(), Some("jobs/x.json"));
        assert_eq!(decode_s3_key("a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(decode_s3_key("bad%2"), None);
        assert_eq!(decode_s3_key("bad%zz"), None);
        assert_eq!(decode_s3_key("%FF"), None);
    }

    #[test]
    fn the_prefix_is_a_whole_path_segment() {
        assert_eq!(strip_key_prefix("jobs/a.json", ""), Some("jobs/a.json"));
        assert_eq!(strip_key_prefix("ff/jobs/a.json", "ff"), Some("jobs/a.json"));
        assert_eq!(strip_key_prefix("ffx/jobs/a.json", "ff"), None);
        assert_eq!(strip_key_prefix("jobs/a.json", "ff"), None);
    }
}
