//! Service settings from FF_* environment variables, validated once at start-up.
//!
//! Parsing goes through a lookup closure rather than `std::env` so the rules can be tested without
//! touching the process environment. A bad value stops start-up with an error naming the variable
//! and what it accepts: a server that silently falls back to a default is harder to debug than one
//! that refuses to start.

use std::fmt::Display;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ff_pipeline::engine::VideoMemoryStrategy;
use ff_pipeline::EngineConfig;

use crate::keys::ApiKeys;
use crate::webhooks::{AllowedHosts, WebhookSecret};

const MIB: usize = 1024 * 1024;

/// Everything the HTTP service needs to know about its host.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// FF_MODELS_DIR: models under their FaceFusion file names.
    pub models_dir: PathBuf,
    /// FF_MAX_UPLOAD_SIZE_MB, in bytes: the largest request body accepted.
    pub max_upload_bytes: usize,
    /// FF_EXECUTION_THREAD_COUNT: ONNX Runtime intra-op threads per session.
    pub execution_thread_count: usize,
    /// FF_MAX_CONCURRENT_REQUESTS: requests processed at once (processing slots).
    pub max_concurrent_requests: usize,
    /// FF_MAX_QUEUED_REQUESTS: requests allowed to wait for a slot before new ones get 429.
    pub max_queued_requests: usize,
    /// FF_REQUEST_TIMEOUT_SECS: whole-request budget, upload included.
    pub request_timeout: Duration,
    /// FF_UPLOAD_TIMEOUT_SECS: how long a request body may take to arrive; a stalled upload is
    /// answered 408 and gives its upload place back (see `limiter`).
    pub upload_timeout: Duration,
    /// FF_MAX_IMAGE_PIXELS: the largest decoded image accepted.
    pub max_image_pixels: u64,
    /// FF_ALLOW_MODEL_DOWNLOAD: whether a missing model may be fetched from FaceFusion's URLs.
    pub allow_model_download: bool,
    /// FF_CONTENT_ANALYSIS: FaceFusion's NSFW gate on every target. Only the operator can turn it off.
    pub content_analysis: bool,
    /// FF_VIDEO_MEMORY_STRATEGY: strict, moderate or tolerant (FaceFusion's names); bounds video frames in flight.
    pub video_memory_strategy: VideoMemoryStrategy,
    /// FF_EXECUTION_PROVIDERS: a JSON array as FaceFusion's; this build runs the CPU provider only.
    pub execution_providers: Vec<String>,
    /// FF_DATA_DIR: where jobs and files live when no bucket is set (default `.data`).
    pub data_dir: PathBuf,
    /// FF_S3_BUCKET: keep jobs and files in this S3 bucket instead of FF_DATA_DIR.
    pub s3_bucket: Option<String>,
    /// FF_S3_PREFIX: key prefix inside the bucket, without surrounding slashes; empty for none.
    pub s3_prefix: String,
    /// FF_MODELS_S3_PREFIX: a prefix of the storage (the bucket, else FF_DATA_DIR) holding models
    /// under their FaceFusion file names with `.hash` sidecars; a missing model is copied from
    /// there before FaceFusion's URLs are tried, even when downloads are off. Ends with '/'.
    pub models_s3_prefix: Option<String>,
    /// FF_S3_ENDPOINT: an S3-compatible server (MinIO) instead of AWS, `http(s)://host:port`.
    pub s3_endpoint: Option<String>,
    /// FF_S3_FORCE_PATH_STYLE: bucket in the URL path; defaults to true when an endpoint is set.
    pub s3_force_path_style: bool,
    /// FF_WORKERS: in-process job workers of `ff serve`; 0 leaves jobs to an external worker (Lambda).
    pub workers: usize,
    /// FF_JOB_QUEUE_LENGTH: jobs waiting for a worker before new ones get 429.
    pub job_queue_length: usize,
    /// FF_JOB_LEASE_SECS: how long a running job stays this worker's without a write; every
    /// progress write (and a heartbeat a third of it apart) renews it. Past it, any worker on the
    /// same storage may take the job over.
    pub job_lease: Duration,
    /// FF_SEGMENT_SECONDS: a video job longer than this (and a quarter) is cut into segments of
    /// about this many seconds of the target, run by any worker in parallel and joined; 0 runs
    /// every video job in one piece.
    pub segment_seconds: u32,
    /// FF_WORKER_ID: names this process in the records of the jobs it runs (`worker` is
    /// `<id>/<claim>`); defaults to `<hostname>-<pid>`.
    pub worker_id: String,
    /// FF_BATCH_OPTIONS: options for `inbox/` objects without a sidecar (see the batch module).
    pub batch_options: Option<crate::batch::options::BatchOptions>,
    /// FF_EVENTS_SECRET: bearer secret of POST /api/v1/events/s3; unset disables the endpoint.
    pub events_secret: Option<String>,
    /// FF_MAX_SYNC_VIDEO_SECS: the longest video (the part to process, after trimming) POST
    /// /api/v1/process takes; longer ones go through jobs. 0 refuses videos there.
    pub max_sync_video_seconds: u64,
    /// FF_MAX_JOB_VIDEO_SECS: the longest video (after trimming) a job may process.
    pub max_job_video_seconds: u64,
    /// FF_MAX_BATCH_VIDEO_SECS: the same for a batch input, which always runs in one piece (no
    /// segments); defaults to FF_MAX_JOB_VIDEO_SECS.
    pub max_batch_video_seconds: u64,
    /// FF_MAX_SOURCES: the most source files (or stored source keys) one request, job or batch
    /// document names; each is decoded and analysed, so the count multiplies a request's work.
    pub max_sources: usize,
    /// FF_VIDEO_TIMEOUT_SECS: the whole-run limit of one video job or batch input; ffmpeg is killed
    /// past it. Videos through /process have FF_REQUEST_TIMEOUT_SECS instead.
    pub video_timeout: Duration,
    /// FF_TEMP_DIR: where uploaded videos and encoded results wait on disk while they are processed
    /// (one directory per run, removed when it ends); default: the system's temp directory.
    pub temp_dir: PathBuf,
    /// FF_SWEEP_INTERVAL_SECS: how often `ff serve` removes what killed runs left (run
    /// directories, the filesystem storage's temporary files, inputs of jobs never created), after
    /// a first sweep at start-up; `None` (0) turns the sweep off. See `sweep.rs`.
    pub sweep_interval: Option<Duration>,
    /// FF_API_KEYS and FF_API_KEYS_FILE: `name:sha256-hex-of-key` entries; empty leaves the API open.
    pub api_keys: ApiKeys,
    /// FF_RATE_LIMIT_PER_MINUTE: requests a key (or, on an open API, everyone together) may make a
    /// minute; `None` (0 or unset) for no limit.
    pub rate_limit_per_minute: Option<NonZeroU32>,
    /// FF_MAX_ACTIVE_JOBS_PER_KEY: jobs one key may have queued or running; `None` (0 or unset) for
    /// no limit beyond FF_JOB_QUEUE_LENGTH.
    pub max_active_jobs_per_key: Option<usize>,
    /// FF_CORS_ORIGINS: browser origins (`https://app.example.com`, comma-separated, or `*`) that may
    /// call the API from a page; empty (the default) sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// FF_RESULT_TTL_HOURS: how long a finished job (record, inputs, result) is kept, counted from
    /// its finish; `None` (0) keeps jobs until deleted. `ff serve`'s sweep removes expired ones.
    pub result_ttl_hours: Option<u32>,
    /// FF_WEBHOOK_SECRET: `whsec_` + base64, the key of webhook signatures; unset refuses webhooks.
    pub webhook_secret: Option<WebhookSecret>,
    /// FF_WEBHOOK_ALLOWED_HOSTS: `host:port` entries webhooks may reach over http and on private
    /// addresses (a receiver on the same network, tests).
    pub webhook_allowed_hosts: AllowedHosts,
    /// FF_PUBLIC_URL: how clients reach this server (`https://ff.example.com`), for the upload URLs
    /// ff signs itself; unset, they are built from the request's `Host` over http.
    pub public_url: Option<String>,
}

/// A variable whose value is outside what it accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}=`{value}` is invalid: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

impl ServiceConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`; an unset or empty variable takes its default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let value = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let upload_mb: usize =
            parse_in_range(value("FF_MAX_UPLOAD_SIZE_MB"), "FF_MAX_UPLOAD_SIZE_MB", 500, 1..=10_240)?;
        let timeout_secs: u64 =
            parse_in_range(value("FF_REQUEST_TIMEOUT_SECS"), "FF_REQUEST_TIMEOUT_SECS", 300, 1..=3_600)?;
        Ok(Self {
            models_dir: value("FF_MODELS_DIR").map_or_else(|| PathBuf::from(".models"), PathBuf::from),
            max_upload_bytes: upload_mb * MIB,
            execution_thread_count: parse_in_range(
                value("FF_EXECUTION_THREAD_COUNT"),
                "FF_EXECUTION_THREAD_COUNT",
                4,
                1..=32,
            )?,
            max_concurrent_requests: parse_in_range(
                value("FF_MAX_CONCURRENT_REQUESTS"),
                "FF_MAX_CONCURRENT_REQUESTS",
                available_cpus(),
                1..=1_024,
            )?,
            max_queued_requests: parse_in_range(
                value("FF_MAX_QUEUED_REQUESTS"),
                "FF_MAX_QUEUED_REQUESTS",
                16,
                0..=10_000,
            )?,
            request_timeout: Duration::from_secs(timeout_secs),
            upload_timeout: Duration::from_secs(parse_in_range(
                value("FF_UPLOAD_TIMEOUT_SECS"),
                "FF_UPLOAD_TIMEOUT_SECS",
                60,
                1..=3_600,
            )?),
            max_image_pixels: parse_in_range(
                value("FF_MAX_IMAGE_PIXELS"),
                "FF_MAX_IMAGE_PIXELS",
                50_000_000,
                1..=1_000_000_000,
            )?,
            allow_model_download: parse_bool(value("FF_ALLOW_MODEL_DOWNLOAD"), "FF_ALLOW_MODEL_DOWNLOAD", true)?,
            content_analysis: parse_bool(value("FF_CONTENT_ANALYSIS"), "FF_CONTENT_ANALYSIS", true)?,
            video_memory_strategy: parse_memory_strategy(value("FF_VIDEO_MEMORY_STRATEGY"))?,
            execution_providers: parse_execution_providers(value("FF_EXECUTION_PROVIDERS"))?,
            data_dir: value("FF_DATA_DIR").map_or_else(|| PathBuf::from(".data"), PathBuf::from),
            s3_bucket: value("FF_S3_BUCKET").map(parse_bucket).transpose()?,
            s3_prefix: parse_s3_prefix(value("FF_S3_PREFIX"))?,
            models_s3_prefix: value("FF_MODELS_S3_PREFIX").map(parse_models_prefix).transpose()?,
            s3_endpoint: value("FF_S3_ENDPOINT").map(parse_endpoint).transpose()?,
            s3_force_path_style: parse_bool(
                value("FF_S3_FORCE_PATH_STYLE"),
                "FF_S3_FORCE_PATH_STYLE",
                value("FF_S3_ENDPOINT").is_some(),
            )?,
            workers: parse_in_range(value("FF_WORKERS"), "FF_WORKERS", 1, 0..=64)?,
            job_queue_length: parse_in_range(value("FF_JOB_QUEUE_LENGTH"), "FF_JOB_QUEUE_LENGTH", 64, 1..=100_000)?,
            job_lease: Duration::from_secs(parse_in_range(
                value("FF_JOB_LEASE_SECS"),
                "FF_JOB_LEASE_SECS",
                60,
                2..=3600,
            )?),
            segment_seconds: parse_in_range(value("FF_SEGMENT_SECONDS"), "FF_SEGMENT_SECONDS", 20, 0..=3600)?,
            worker_id: value("FF_WORKER_ID").map_or_else(|| Ok(default_worker_id()), parse_worker_id)?,
            batch_options: value("FF_BATCH_OPTIONS").map(parse_batch_options).transpose()?,
            events_secret: value("FF_EVENTS_SECRET").map(parse_events_secret).transpose()?,
            max_sync_video_seconds: parse_in_range(
                value("FF_MAX_SYNC_VIDEO_SECS"),
                "FF_MAX_SYNC_VIDEO_SECS",
                20,
                0..=3_600,
            )?,
            max_job_video_seconds: parse_in_range(
                value("FF_MAX_JOB_VIDEO_SECS"),
                "FF_MAX_JOB_VIDEO_SECS",
                600,
                1..=86_400,
            )?,
            max_batch_video_seconds: parse_in_range(
                value("FF_MAX_BATCH_VIDEO_SECS"),
                "FF_MAX_BATCH_VIDEO_SECS",
                parse_in_range(value("FF_MAX_JOB_VIDEO_SECS"), "FF_MAX_JOB_VIDEO_SECS", 600, 1..=86_400)?,
                1..=86_400,
            )?,
            max_sources: parse_in_range(value("FF_MAX_SOURCES"), "FF_MAX_SOURCES", 8, 1..=64)?,
            video_timeout: Duration::from_secs(parse_in_range(
                value("FF_VIDEO_TIMEOUT_SECS"),
                "FF_VIDEO_TIMEOUT_SECS",
                3_600,
                1..=86_400,
            )?),
            temp_dir: parse_temp_dir(value("FF_TEMP_DIR"))?,
            sweep_interval: Some(parse_in_range(
                value("FF_SWEEP_INTERVAL_SECS"),
                "FF_SWEEP_INTERVAL_SECS",
                600,
                0..=86_400,
            )?)
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs),
            api_keys: parse_api_keys(value("FF_API_KEYS"), value("FF_API_KEYS_FILE"))?,
            rate_limit_per_minute: NonZeroU32::new(parse_in_range(
                value("FF_RATE_LIMIT_PER_MINUTE"),
                "FF_RATE_LIMIT_PER_MINUTE",
                0,
                0..=1_000_000,
            )?),
            max_active_jobs_per_key: Some(parse_in_range(
                value("FF_MAX_ACTIVE_JOBS_PER_KEY"),
                "FF_MAX_ACTIVE_JOBS_PER_KEY",
                0,
                0..=100_000,
            )?)
            .filter(|limit| *limit > 0),
            cors_origins: value("FF_CORS_ORIGINS").map(parse_cors_origins).transpose()?.unwrap_or_default(),
            result_ttl_hours: Some(parse_in_range(
                value("FF_RESULT_TTL_HOURS"),
                "FF_RESULT_TTL_HOURS",
                24,
                0..=87_600,
            )?)
            .filter(|hours| *hours > 0),
            webhook_secret: value("FF_WEBHOOK_SECRET").map(parse_webhook_secret).transpose()?,
            webhook_allowed_hosts: value("FF_WEBHOOK_ALLOWED_HOSTS")
                .map(parse_allowed_hosts)
                .transpose()?
                .unwrap_or_default(),
            public_url: value("FF_PUBLIC_URL").map(parse_public_url).transpose()?,
        })
    }

    /// The engine settings these service settings imply.
    pub fn to_engine_config(&self) -> EngineConfig {
        EngineConfig {
            models_dir: self.models_dir.clone(),
            allow_download: self.allow_model_download,
            content_analysis: self.content_analysis,
            video_memory_strategy: self.video_memory_strategy,
            intra_threads: self.execution_thread_count,
            frame_workers: self.execution_thread_count,
            // One session per processing slot, so concurrent requests never queue on one model.
            sessions_per_model: self.max_concurrent_requests,
            max_image_pixels: self.max_image_pixels,
        }
    }
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_in_range<T>(
    value: Option<String>,
    variable: &'static str,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display,
{
    let Some(text) = value else {
        return Ok(default);
    };
    match text.parse::<T>() {
        Ok(parsed) if range.contains(&parsed) => Ok(parsed),
        _ => Err(ConfigError {
            variable,
            value: text,
            expected: format!("an integer in {}..={}", range.start(), range.end()),
        }),
    }
}

/// S3's bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens.
fn parse_bucket(text: String) -> Result<String, ConfigError> {
    if cfg!(not(feature = "s3")) {
        return Err(ConfigError {
            variable: "FF_S3_BUCKET",
            value: text,
            expected: "unset: this build has no S3 backend (ff-service without its `s3` feature)".into(),
        });
    }
    let valid_chars = text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if (3..=63).contains(&text.len()) && valid_chars {
        Ok(text)
    } else {
        Err(ConfigError {
            variable: "FF_S3_BUCKET",
            value: text,
            expected: "an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)".into(),
        })
    }
}

fn parse_s3_prefix(value: Option<String>) -> Result<String, ConfigError> {
    let prefix = value.unwrap_or_default().trim_matches('/').to_string();
    if prefix.is_empty() || crate::storage::validate_key(&prefix).is_ok() {
        Ok(prefix)
    } else {
        Err(ConfigError {
            variable: "FF_S3_PREFIX",
            value: prefix,
            expected: "'/'-separated names without empty, `.` or `..` parts".into(),
        })
    }
}

/// `<hostname>-<pid>`, with anything but letters, digits, `.`, `_` and `-` dropped from the name.
fn default_worker_id() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = hostname.trim().chars().filter(|c| is_worker_id_char(*c)).take(48).collect();
    let host = if host.is_empty() { "ff".to_string() } else { host };
    format!("{host}-{}", std::process::id())
}

fn is_worker_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn parse_worker_id(text: String) -> Result<String, ConfigError> {
    if (1..=64).contains(&text.len()) && text.chars().all(is_worker_id_char) {
        Ok(text)
    } else {
        Err(ConfigError {
            variable: "FF_WORKER_ID",
            value: text,
            expected: "1-64 letters, digits, `.`, `_` or `-`".into(),
        })
    }
}

/// The prefixes the service writes its own objects under; models must live elsewhere, or the
/// sweep, the lifecycle rules or the worker's S3 events would treat them as jobs and inputs.
/// (A test in `models_bucket` checks this list against the modules that own them.)
pub(crate) const SERVICE_PREFIXES: [&str; 9] =
    ["jobs/", "uploads/", "inbox/", "outbox/", "failed/", "batch/", "idempotency/", "owners/", "lambda-results/"];

/// A non-empty key prefix, returned with one trailing '/', outside the service's own prefixes.
fn parse_models_prefix(text: String) -> Result<String, ConfigError> {
    let trimmed = text.trim().trim_matches('/');
    let prefix = format!("{trimmed}/");
    let clashes = SERVICE_PREFIXES.iter().any(|own| prefix.starts_with(own) || own.starts_with(&prefix));
    if !trimmed.is_empty() && crate::storage::validate_key(trimmed).is_ok() && !clashes {
        Ok(prefix)
    } else {
        Err(ConfigError {
            variable: "FF_MODELS_S3_PREFIX",
            value: text,
            expected: format!(
                "a key prefix such as `models/`, '/'-separated names without `.` or `..`, outside {}",
                SERVICE_PREFIXES.join(", ")
            ),
        })
    }
}

fn parse_endpoint(text: String) -> Result<String, ConfigError> {
    let has_host = |rest: &str| !rest.is_empty() && !rest.starts_with('/');
    match text.strip_prefix("http://").or_else(|| text.strip_prefix("https://")) {
        Some(rest) if has_host(rest) && !rest.contains(char::is_whitespace) => Ok(text),
        _ => Err(ConfigError {
            variable: "FF_S3_ENDPOINT",
            value: text,
            expected: "an http:// or https:// URL such as http://127.0.0.1:9000".into(),
        }),
    }
}

fn parse_memory_strategy(value: Option<String>) -> Result<VideoMemoryStrategy, ConfigError> {
    let Some(text) = value else { return Ok(VideoMemoryStrategy::default()) };
    text.parse().map_err(|_| ConfigError {
        variable: "FF_VIDEO_MEMORY_STRATEGY",
        value: text,
        expected: "strict, moderate or tolerant".into(),
    })
}

/// A JSON array of provider names, e.g. `["cpu"]`. Only the CPU provider is built in, so any other
/// name stops start-up rather than silently running on the CPU.
fn parse_execution_providers(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(text) = value else { return Ok(vec!["cpu".to_string()]) };
    let invalid = |text: &str| ConfigError {
        variable: "FF_EXECUTION_PROVIDERS",
        value: text.to_string(),
        expected: "a JSON array of execution providers available in this build: [\"cpu\"]".into(),
    };
    match serde_json::from_str::<Vec<String>>(&text) {
        Ok(providers) if !providers.is_empty() && providers.iter().all(|p| p == "cpu") => Ok(providers),
        _ => Err(invalid(&text)),
    }
}

/// Checked like a sidecar, at start-up: a bad default would otherwise fail every upload.
fn parse_batch_options(text: String) -> Result<crate::batch::options::BatchOptions, ConfigError> {
    crate::batch::options::BatchOptions::parse(&text).map_err(|reason| ConfigError {
        variable: "FF_BATCH_OPTIONS",
        value: text,
        expected: format!("a JSON object of FaceFusion options plus `sources` and `output_format` ({reason})"),
    })
}

/// A guessable secret protects nothing; the value is not echoed back in the error.
fn parse_events_secret(text: String) -> Result<String, ConfigError> {
    if text.len() >= 16 && !text.contains(char::is_whitespace) {
        Ok(text)
    } else {
        Err(ConfigError {
            variable: "FF_EVENTS_SECRET",
            value: "(hidden)".into(),
            expected: "at least 16 characters without whitespace".into(),
        })
    }
}

/// The value is not echoed back in the error: it is a secret.
fn parse_webhook_secret(text: String) -> Result<WebhookSecret, ConfigError> {
    WebhookSecret::parse(&text).map_err(|reason| ConfigError {
        variable: "FF_WEBHOOK_SECRET",
        value: "(hidden)".into(),
        expected: format!("`whsec_` and the base64 of 24 or more random bytes ({reason})"),
    })
}

fn parse_allowed_hosts(text: String) -> Result<AllowedHosts, ConfigError> {
    AllowedHosts::parse(&text).map_err(|reason| ConfigError {
        variable: "FF_WEBHOOK_ALLOWED_HOSTS",
        value: text,
        expected: format!("comma-separated host:port entries ({reason})"),
    })
}

/// `*`, or origins as browsers send them: scheme, host and port, nothing after.
/// An http(s) origin, optionally with a path prefix (a reverse proxy's), without the final slash.
fn parse_public_url(text: String) -> Result<String, ConfigError> {
    let invalid = || ConfigError {
        variable: "FF_PUBLIC_URL",
        value: text.clone(),
        expected: "an http:// or https:// URL without query or fragment, e.g. https://ff.example.com".into(),
    };
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")).ok_or_else(invalid)?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || text.contains(['?', '#', ' ']) {
        return Err(invalid());
    }
    Ok(text.trim_end_matches('/').to_string())
}

fn parse_cors_origins(text: String) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = text.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
    let valid = |origin: &String| {
        let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        rest.is_some_and(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ', '*']))
    };
    let wildcard = origins == ["*"];
    if wildcard || (!origins.is_empty() && origins.iter().all(valid)) {
        Ok(origins)
    } else {
        Err(ConfigError {
            variable: "FF_CORS_ORIGINS",
            value: text,
            expected: "`*` or comma-separated origins like `https://app.example.com`".into(),
        })
    }
}

/// Both sources of keys at once, so a file of long-lived keys and a variable for a new one can
/// overlap during a rotation.
fn parse_api_keys(inline: Option<String>, file: Option<String>) -> Result<ApiKeys, ConfigError> {
    let refused = |variable: &'static str| {
        move |(name, expected): (String, String)| ConfigError { variable, value: name, expected }
    };
    let inline = match inline {
        Some(text) => ApiKeys::parse(&text).map_err(refused("FF_API_KEYS"))?,
        None => ApiKeys::default(),
    };
    let from_file = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|error| ConfigError {
                variable: "FF_API_KEYS_FILE",
                value: path.clone(),
                expected: format!("a readable file of `name:sha256-hex` lines ({error})"),
            })?;
            ApiKeys::parse(&text).map_err(refused("FF_API_KEYS_FILE"))?
        }
        None => ApiKeys::default(),
    };
    Ok(inline.merge(from_file))
}

/// The directory must exist: a server that only finds out at its first video has started broken.
fn parse_temp_dir(value: Option<String>) -> Result<PathBuf, ConfigError> {
    let Some(text) = value else { return Ok(std::env::temp_dir()) };
    let path = PathBuf::from(&text);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(ConfigError { variable: "FF_TEMP_DIR", value: text, expected: "an existing directory".into() })
    }
}

fn parse_bool(value: Option<String>, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError { variable, value: text, expected: "true or false (also 1/0, yes/no, on/off)".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
        ServiceConfig::from_lookup(|name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()))
    }

    #[test]
    fn job_leases_and_worker_ids() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.job_lease, Duration::from_secs(60));
        assert_eq!(config.segment_seconds, 20);
        assert_eq!(parse(&[("FF_SEGMENT_SECONDS", "0")]).unwrap().segment_seconds, 0);
        assert_eq!(parse(&[("FF_SEGMENT_SECONDS", "-1")]).unwrap_err().variable, "FF_SEGMENT_SECONDS");
        assert!(config.worker_id.ends_with(&format!("-{}", std::process::id())), "{}", config.worker_id);
        let set = parse(&[("FF_JOB_LEASE_SECS", "5"), ("FF_WORKER_ID", "serve-a.1")]).unwrap();
        assert_eq!((set.job_lease, set.worker_id.as_str()), (Duration::from_secs(5), "serve-a.1"));
        assert_eq!(parse(&[("FF_JOB_LEASE_SECS", "1")]).unwrap_err().variable, "FF_JOB_LEASE_SECS");
        assert_eq!(parse(&[("FF_WORKER_ID", "a/b")]).unwrap_err().variable, "FF_WORKER_ID");
    }

    #[test]
    fn the_models_prefix_is_a_prefix_of_its_own() {
        assert_eq!(parse(&[]).unwrap().models_s3_prefix, None);
        for (given, kept) in [("models", "models/"), ("/models/", "models/"), ("ff/models/v3", "ff/models/v3/")] {
            let config = parse(&[("FF_MODELS_S3_PREFIX", given)]).unwrap();
            assert_eq!(config.models_s3_prefix.as_deref(), Some(kept), "{given}");
        }
        for refused in ["/", "jobs/models", "uploads", "models/../jobs", "inbox/"] {
            let error = parse(&[("FF_MODELS_S3_PREFIX", refused)]).unwrap_err();
            assert_eq!(error.variable, "FF_MODELS_S3_PREFIX", "{refused}");
        }
    }

    #[test]
    fn unset_variables_take_the_documented_defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.models_dir, PathBuf::from(".models"));
        assert_eq!(config.max_upload_bytes, 500 * MIB);
        assert_eq!(config.execution_thread_count, 4);
        assert_eq!(config.max_concurrent_requests, available_cpus());
        assert_eq!(config.max_queued_requests, 16);
        assert_eq!(config.request_timeout, Duration::from_secs(300));
        assert_eq!(config.upload_timeout, Duration::from_secs(60));
        assert_eq!(config.max_image_pixels, 50_000_000);
        assert!(config.allow_model_download);
    }

    #[test]
    fn upload_timeout_is_checked_at_start_up() {
        assert_eq!(parse(&[("FF_UPLOAD_TIMEOUT_SECS", "5")]).unwrap().upload_timeout, Duration::from_secs(5));
        for value in ["0", "3601", "soon"] {
            let error = parse(&[("FF_UPLOAD_TIMEOUT_SECS", value)]).unwrap_err();
            assert_eq!(error.variable, "FF_UPLOAD_TIMEOUT_SECS", "{value}");
        }
    }

    #[test]
    fn memory_strategy_and_execution_providers_are_checked_at_start_up() {
        let config =
            parse(&[("FF_VIDEO_MEMORY_STRATEGY", "tolerant"), ("FF_EXECUTION_PROVIDERS", r#"["cpu"]"#)]).unwrap();
        assert_eq!(config.video_memory_strategy, VideoMemoryStrategy::Tolerant);
        assert_eq!(config.to_engine_config().video_memory_strategy, VideoMemoryStrategy::Tolerant);
        assert_eq!(config.execution_providers, ["cpu"]);
        assert_eq!(parse(&[]).unwrap().video_memory_strategy, VideoMemoryStrategy::Strict);
        for (variable, value) in [
            ("FF_VIDEO_MEMORY_STRATEGY", "lavish"),
            ("FF_EXECUTION_PROVIDERS", r#"["cuda"]"#),
            ("FF_EXECUTION_PROVIDERS", "cpu"),
            ("FF_EXECUTION_PROVIDERS", "[]"),
        ] {
            let error = parse(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
        }
    }

    #[test]
    fn batch_options_and_events_secret_are_checked_at_start_up() {
        let config = parse(&[
            ("FF_BATCH_OPTIONS", r#"{"face_swapper_model": "inswapper_128", "sources": ["sources/a.jpg"]}"#),
            ("FF_EVENTS_SECRET", "0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(config.batch_options.unwrap().sources, ["sources/a.jpg"]);
        assert_eq!(config.events_secret.as_deref(), Some("0123456789abcdef"));
        assert_eq!(parse(&[]).unwrap().events_secret, None);
        for (variable, value) in [
            ("FF_BATCH_OPTIONS", "{"),
            ("FF_BATCH_OPTIONS", r#"{"sources": "a.jpg"}"#),
            ("FF_BATCH_OPTIONS", r#"{"face_swapper_model": "nope"}"#),
            ("FF_EVENTS_SECRET", "short"),
        ] {
            assert_eq!(parse(&[(variable, value)]).unwrap_err().variable, variable, "{value}");
        }
    }

    #[test]
    fn video_limits_and_the_temp_dir_are_checked_at_start_up() {
        let defaults = parse(&[]).unwrap();
        assert_eq!((defaults.max_sync_video_seconds, defaults.max_job_video_seconds), (20, 600));
        assert_eq!(defaults.max_sources, 8);
        assert_eq!(parse(&[("FF_MAX_SOURCES", "64")]).unwrap().max_sources, 64);
        for bad in ["0", "65", "many"] {
            assert!(parse(&[("FF_MAX_SOURCES", bad)]).unwrap_err().to_string().contains("FF_MAX_SOURCES"), "{bad}");
        }
        assert_eq!(defaults.video_timeout, Duration::from_secs(3_600));
        assert_eq!(defaults.temp_dir, std::env::temp_dir());
        let dir = std::env::temp_dir().to_string_lossy().into_owned();
        let config = parse(&[
            ("FF_MAX_SYNC_VIDEO_SECS", "0"),
            ("FF_MAX_JOB_VIDEO_SECS", "60"),
            ("FF_VIDEO_TIMEOUT_SECS", "840"),
            ("FF_TEMP_DIR", &dir),
        ])
        .unwrap();
        assert_eq!((config.max_sync_video_seconds, config.max_job_video_seconds), (0, 60));
        assert_eq!(config.max_batch_video_seconds, 60, "the job limit unless set");
        assert_eq!(parse(&[("FF_MAX_BATCH_VIDEO_SECS", "30")]).unwrap().max_batch_video_seconds, 30);
        assert_eq!(config.video_timeout, Duration::from_secs(840));
        for (variable, value) in [
            ("FF_MAX_SYNC_VIDEO_SECS", "3601"),
            ("FF_MAX_JOB_VIDEO_SECS", "0"),
            ("FF_MAX_BATCH_VIDEO_SECS", "0"),
            ("FF_VIDEO_TIMEOUT_SECS", "ten"),
            ("FF_TEMP_DIR", "/no/such/directory/here"),
        ] {
            assert_eq!(parse(&[(variable, value)]).unwrap_err().variable, variable, "{value}");
        }
    }

    #[test]
    fn the_sweep_interval_defaults_to_ten_minutes_and_zero_turns_it_off() {
        assert_eq!(parse(&[]).unwrap().sweep_interval, Some(Duration::from_secs(600)));
        assert_eq!(parse(&[("FF_SWEEP_INTERVAL_SECS", "60")]).unwrap().sweep_interval, Some(Duration::from_secs(60)));
        assert_eq!(parse(&[("FF_SWEEP_INTERVAL_SECS", "0")]).unwrap().sweep_interval, None);
        for value in ["-1", "86401", "often"] {
            let error = parse(&[("FF_SWEEP_INTERVAL_SECS", value)]).unwrap_err();
            assert_eq!(error.variable, "FF_SWEEP_INTERVAL_SECS", "{value}");
        }
    }

    #[test]
    fn the_public_url_is_an_http_origin_kept_without_its_last_slash() {
        assert_eq!(parse(&[]).unwrap().public_url, None);
        let url = |text: &str| parse(&[("FF_PUBLIC_URL", text)]).map(|config| config.public_url.unwrap());
        assert_eq!(url("https://ff.example.com/").unwrap(), "https://ff.example.com");
        assert_eq!(url("http://10.0.0.5:8000/ff").unwrap(), "http://10.0.0.5:8000/ff");
        for bad in ["ff.example.com", "ftp://ff.example.com", "https://", "https://a/b?c=d", "https://a b"] {
            assert_eq!(url(bad).unwrap_err().variable, "FF_PUBLIC_URL", "{bad}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(parse(&[("FF_EXECUTION_THREAD_COUNT", " "), ("FF_MODELS_DIR", "")]).unwrap(), parse(&[]).unwrap());
    }

    #[test]
    fn set_variables_override_the_defaults() {
        let config = parse(&[
            ("FF_MODELS_DIR", "/opt/models"),
            ("FF_MAX_UPLOAD_SIZE_MB", "6"),
            ("FF_EXECUTION_THREAD_COUNT", "32"),
            ("FF_MAX_CONCURRENT_REQUESTS", "2"),
            ("FF_MAX_QUEUED_REQUESTS", "0"),
            ("FF_REQUEST_TIMEOUT_SECS", "30"),
            ("FF_MAX_IMAGE_PIXELS", "1000"),
            ("FF_ALLOW_MODEL_DOWNLOAD", "off"),
        ])
        .unwrap();
        assert_eq!(config.models_dir, PathBuf::from("/opt/models"));
        assert_eq!(config.max_upload_bytes, 6 * MIB);
        assert_eq!(config.execution_thread_count, 32);
        assert_eq!(config.max_concurrent_requests, 2);
        assert_eq!(config.max_queued_requests, 0);
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.max_image_pixels, 1000);
        assert!(!config.allow_model_download);
    }

    #[test]
    fn out_of_range_values_name_the_variable_and_the_range() {
        let error = parse(&[("FF_EXECUTION_THREAD_COUNT", "33")]).unwrap_err();
        assert_eq!(error.variable, "FF_EXECUTION_THREAD_COUNT");
        assert_eq!(error.to_string(), "FF_EXECUTION_THREAD_COUNT=`33` is invalid: expected an integer in 1..=32");
        assert_eq!(parse(&[("FF_MAX_CONCURRENT_REQUESTS", "0")]).unwrap_err().variable, "FF_MAX_CONCURRENT_REQUESTS");
    }

    #[test]
    fn unparsable_values_are_rejected() {
        assert_eq!(parse(&[("FF_MAX_UPLOAD_SIZE_MB", "big")]).unwrap_err().variable, "FF_MAX_UPLOAD_SIZE_MB");
        assert_eq!(parse(&[("FF_REQUEST_TIMEOUT_SECS", "-1")]).unwrap_err().variable, "FF_REQUEST_TIMEOUT_SECS");
        let error = parse(&[("FF_ALLOW_MODEL_DOWNLOAD", "maybe")]).unwrap_err();
        assert_eq!(error.variable, "FF_ALLOW_MODEL_DOWNLOAD");
        assert!(error.expected.contains("true or false"));
    }

    #[test]
    fn engine_config_carries_the_matching_settings() {
        let config = parse(&[("FF_MAX_CONCURRENT_REQUESTS", "3"), ("FF_EXECUTION_THREAD_COUNT", "2")]).unwrap();
        let engine = config.to_engine_config();
        assert_eq!(engine.models_dir, config.models_dir);
        assert_eq!(engine.intra_threads, 2);
        assert_eq!(engine.sessions_per_model, 3);
        assert_eq!(engine.max_image_pixels, 50_000_000);
        assert!(engine.allow_download);
    }
}
