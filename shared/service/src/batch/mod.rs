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
//! FF_MAX_BATCH_VIDEO_SECS (by default FF_MAX_JOB_VIDEO_SECS: a batch input runs in one piece,
//! never in segments) and FF_VIDEO_TIMEOUT_SECS; its result keeps the target's name and so its
//! container (`output_format` applies to image results only).
//!
//! S3 delivers events at least once, and late: the claim marker is created with `IfAbsent`, so
//! of any number of deliveries for one upload exactly one processes it. The marker is keyed by
//! the object's etag, so uploading different bytes under the same name processes them again.
//! The input is left in `inbox/` either way: deleting it is the uploader's choice, and a failed
//! input stays next to its `failed/` report to be fixed and re-uploaded.

pub mod options;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ff_pipeline::media::{sniff, MediaKind};
use serde::Serialize;

use crate::error::ApiError;
use crate::format::OutputFormat;
use crate::plan::Plan;
use crate::probe::DurationLimit;
use crate::run::{execute_on_cpu, CancelOnDrop, Failure, Product, Run, Target, MAX_INPUT_BYTES};
use crate::sources::check_source_keys;
use crate::state::AppState;
use crate::storage::{download_to_file, Storage, StorageError, WriteCondition};
use crate::workspace::Workspace;

pub use options::BatchOptions;

pub const INBOX_PREFIX: &str = "inbox/";
pub const OUTBOX_PREFIX: &str = "outbox/";
pub const FAILED_PREFIX: &str = "failed/";
pub const CLAIM_PREFIX: &str = "batch/";

/// Sidecars are a few hundred bytes; anything much larger is not an options document.
const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

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
/// sidecar. Storage trouble is returned as `Failure::Retry` (a retry of the event can help; the
/// claim is released so the retry is not taken for a duplicate); everything about the input itself
/// ends in `failed/<name>.json`.
pub async fn process_inbox_object(state: &AppState, key: &str) -> Result<BatchOutcome, Failure> {
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
        Err(error) => return Err(error.into()),
    };
    let claim = format!("{CLAIM_PREFIX}{name}/{}.claim", etag_token(&meta.etag));
    let marker = serde_json::json!({ "key": key, "etag": meta.etag }).to_string();
    match storage.put_bytes(&claim, marker.into(), WriteCondition::IfAbsent).await {
        Ok(_) => {}
        Err(StorageError::PreconditionFailed { .. }) => return Ok(BatchOutcome::Duplicate),
        Err(error) => return Err(error.into()),
    }
    tracing::info!(%key, "batch input claimed");
    let outcome = run(state, key, name).await;
    match outcome {
        Ok(output) => {
            tracing::info!(%key, %output, "batch input processed");
            Ok(BatchOutcome::Completed { output })
        }
        Err(Failure::Abort(failure)) => {
            let report = format!("{FAILED_PREFIX}{name}.json");
            let body = serde_json::json!({ "code": failure.code(), "message": failure.to_string(), "input": key });
            tracing::info!(%key, code = failure.code(), "batch input failed");
            if let Err(error) = storage.put_bytes(&report, body.to_string().into(), WriteCondition::None).await {
                release(&storage, &claim).await;
                return Err(error.into());
            }
            Ok(BatchOutcome::Failed { code: failure.code().to_string(), report })
        }
        Err(retry) => {
            release(&storage, &claim).await;
            Err(retry)
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

/// The work after the claim: the options document (the sidecar, else FF_BATCH_OPTIONS), the
/// sources, the target streamed into a run directory and judged by its first bytes, one run, and
/// the result under `outbox/`.
async fn run(state: &AppState, key: &str, name: &str) -> Result<String, Failure> {
    let storage = state.storage();
    let config = state.config();
    let batch = batch_options(state, key).await?;
    check_source_keys(&batch.sources, config.max_sources)?;
    let mut sources = Vec::with_capacity(batch.sources.len());
    for source in &batch.sources {
        sources.push(read_input(storage.as_ref(), source).await?);
    }
    let workspace = Workspace::for_download(&config.temp_dir)?;
    download_to_file(storage.as_ref(), key, workspace.target(), MAX_INPUT_BYTES)
        .await
        .map_err(|error| input_failure(key, error))?;
    let target_kind = workspace.target_kind(Some(name)).await?;
    // `output_format` names an image format; a video keeps its container.
    let output_format = match target_kind {
        Some(MediaKind::Video(_)) => None,
        _ => batch.output_format.map(OutputFormat::Image),
    };
    let source_kinds: Vec<_> = sources.iter().map(|bytes| sniff(bytes)).collect();
    let options = batch.options.options;
    let plan = Plan::decide(&source_kinds, target_kind, &options, output_format)?;
    let output_key = match plan {
        Plan::Image { output_format: Some(format) } => {
            // A requested format gets its extension, so the result opens as what it is.
            let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
            format!("{OUTBOX_PREFIX}{stem}.{}", format.extension())
        }
        _ => format!("{OUTBOX_PREFIX}{name}"),
    };
    let limit = DurationLimit::Job(config.max_batch_video_seconds);
    let target = Target::downloaded(plan, workspace, &options, limit, config.video_timeout, None).await?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_when_dropped = CancelOnDrop(Arc::clone(&cancel));
    let run = Run { sources, options, target };
    match execute_on_cpu(Arc::clone(state.engine()), run, |_| {}, cancel, ()).await? {
        Product::Image(output) => {
            storage.put_bytes(&output_key, output.bytes.into(), WriteCondition::None).await?;
        }
        Product::Video { workspace, .. } => {
            storage.put_file(&output_key, workspace.output()).await?;
        }
    }
    Ok(output_key)
}

/// The input's sidecar `<key>.json` if there is one, else FF_BATCH_OPTIONS.
async fn batch_options(state: &AppState, key: &str) -> Result<BatchOptions, Failure> {
    let sidecar = format!("{key}.json");
    match state.storage().get_bytes(&sidecar, MAX_SIDECAR_BYTES).await {
        Ok((bytes, _)) => std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(BatchOptions::parse)
            .map_err(|reason| Failure::Abort(ApiError::InvalidOption { option: sidecar, reason })),
        Err(StorageError::NotFound { .. }) => Ok(state.config().batch_options.clone().unwrap_or_default()),
        Err(StorageError::TooLarge { limit, .. }) => {
            let reason = format!("larger than {limit} bytes");
            Err(Failure::Abort(ApiError::InvalidOption { option: sidecar, reason }))
        }
        Err(error) => Err(error.into()),
    }
}

/// An input that cannot be read: the input's fault (`Abort`), or storage's.
fn input_failure(key: &str, error: StorageError) -> Failure {
    match error {
        StorageError::NotFound { .. } => Failure::Abort(ApiError::BadRequest(format!("input `{key}` does not exist"))),
        StorageError::InvalidKey { .. } => Failure::Abort(ApiError::BadRequest(format!("`{key}` is not a valid key"))),
        StorageError::TooLarge { limit, .. } => {
            Failure::Abort(ApiError::PayloadTooLarge { limit_bytes: usize::try_from(limit).unwrap_or(usize::MAX) })
        }
        error => error.into(),
    }
}

async fn read_input(storage: &dyn Storage, key: &str) -> Result<Vec<u8>, Failure> {
    match storage.get_bytes(key, MAX_INPUT_BYTES).await {
        Ok((bytes, _)) => Ok(bytes.into()),
        Err(error) => Err(input_failure(key, error)),
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
                // Two hex digits exactly: from_str_radix alone would also take a sign (`%+5`).
                let hex = key.get(index + 1..index + 3).filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
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
        // Found while writing fuzz/s3_event's decoding invariant: a sign is not a hex digit.
        assert_eq!(decode_s3_key("inbox/a%+5.png"), None);
    }

    #[test]
    fn the_prefix_is_a_whole_path_segment() {
        assert_eq!(strip_key_prefix("jobs/a.json", ""), Some("jobs/a.json"));
        assert_eq!(strip_key_prefix("ff/jobs/a.json", "ff"), Some("jobs/a.json"));
        assert_eq!(strip_key_prefix("ffx/jobs/a.json", "ff"), None);
        assert_eq!(strip_key_prefix("jobs/a.json", "ff"), None);
    }
}
