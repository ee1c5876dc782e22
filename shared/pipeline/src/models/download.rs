//! HTTP transfers for the model store: small sidecar fetches and resumable file downloads.
//!
//! Each transfer gets its own `ureq` agent so a stall watchdog can shut exactly that connection
//! down: ureq's body timeout is a total budget, which would either cut off a slow but healthy
//! multi-hundred-megabyte download or never fire on a dead one.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ureq::http::{header, StatusCode};

/// Refuse bodies above this size: the largest FaceFusion 3.5.3 model is well under 2 GiB, so a
/// bigger body means a misconfigured mirror, and this bounds the disk we may fill.
pub(crate) const MAX_MODEL_BYTES: u64 = 4 << 30;
/// A `.hash` sidecar is 8 hex digits; anything much longer is not a sidecar.
pub(crate) const MAX_SIDECAR_BYTES: u64 = 64;
const USER_AGENT: &str = concat!("ff/", env!("CARGO_PKG_VERSION"), " (FaceFusion 3.5.3 compatible)");
/// Copy buffer size: large enough to keep syscalls cheap, small enough to keep the watchdog
/// informed several times a second on slow links.
const CHUNK: usize = 256 * 1024;

/// Connect and stall limits for one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Budget for DNS, TCP and TLS set-up of each connection.
    pub connect: Duration,
    /// Longest time without receiving a byte (headers or body) before the transfer is aborted.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), read: Duration::from_secs(30) }
    }
}

/// Why one transfer from one URL failed.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The server answered with a status other than success; retrying the same URL will not help.
    Status { url: String, status: u16 },
    /// The body was shorter than its `Content-Length`; the `.part` keeps what arrived.
    Truncated { url: String, received: u64, expected: u64 },
    /// Nothing arrived for `Timeouts::read`.
    Stalled { url: String, after: Duration },
    /// The response cannot be used as it is (bad `Content-Range`, too large, bad sidecar).
    Invalid { url: String, reason: String },
    /// Connection, TLS or protocol failure.
    Transport { url: String, reason: String },
    /// Local disk failure; no other mirror will fix it.
    Local { path: String, error: std::io::Error },
}

impl FetchError {
    /// Whether trying the same URL again can help (the part file keeps the progress).
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, Self::Truncated { .. } | Self::Stalled { .. } | Self::Transport { .. })
    }

    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Self::Local { .. })
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { url, status } => {
                let reason = StatusCode::from_u16(*status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
                write!(f, "{url}: HTTP {status} {reason}")
            }
            Self::Truncated { url, received, expected } => {
                write!(f, "{url}: connection closed after {received} of {expected} bytes")
            }
            Self::Stalled { url, after } => {
                write!(f, "{url}: no data received for {:.1} s (read timeout)", after.as_secs_f64())
            }
            Self::Invalid { url, reason } => write!(f, "{url}: {reason}"),
            Self::Transport { url, reason } => write!(f, "{url}: {reason}"),
            Self::Local { path, error } => write!(f, "{path}: {error}"),
        }
    }
}

/// Outcome of a successful [`fetch_to_part`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fetched {
    /// Size of the complete part file.
    pub total: u64,
    /// Bytes already on disk that this transfer kept (0 when it started from scratch).
    pub resumed_from: u64,
}

/// Fetches a small text resource (a `.hash` sidecar).
pub(crate) fn fetch_small(url: &str, timeouts: Timeouts) -> Result<Vec<u8>, FetchError> {
    with_watchdog(url, timeouts, |agent, progress| {
        let response =
            agent.get(url).header(header::ACCEPT_ENCODING, "identity").call().map_err(|e| transport(url, e))?;
        progress.tick();
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status { url: url.to_string(), status });
        }
        let mut body = Vec::new();
        response
            .into_body()
            .into_with_config()
            .limit(MAX_SIDECAR_BYTES)
            .reader()
            .read_to_end(&mut body)
            .map_err(|e| FetchError::Transport { url: url.to_string(), reason: e.to_string() })?;
        Ok(body)
    })
}

/// Downloads `url` into `part`, resuming from the part's current size with an HTTP range request.
/// A server that ignores the range (200) restarts the part from zero; a 416 with the part already
/// at the full size counts as complete. `expected_size` (published size, when known) bounds the
/// transfer. Progress is logged through `tracing`.
pub(crate) fn fetch_to_part(
    name: &str,
    url: &str,
    part: &Path,
    expected_size: Option<u64>,
    timeouts: Timeouts,
) -> Result<Fetched, FetchError> {
    let local = |error: std::io::Error| FetchError::Local { path: part.display().to_string(), error };
    let offset = match std::fs::metadata(part) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(local(error)),
    };
    // A part already as long as the published size only needs verifying.
    if offset > 0 && expected_size == Some(offset) {
        return Ok(Fetched { total: offset, resumed_from: offset });
    }

    with_watchdog(url, timeouts, |agent, progress| {
        let mut request = agent.get(url).header(header::ACCEPT_ENCODING, "identity");
        if offset > 0 {
            request = request.header(header::RANGE, format!("bytes={offset}-"));
        }
        let response = request.call().map_err(|e| transport(url, e))?;
        progress.tick();
        let status = response.status().as_u16();
        let content_length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let content_range =
            response.headers().get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);

        let (start, total) = match status {
            200 => (0, content_length),
            206 if offset > 0 => {
                let (start, total) =
                    content_range.as_deref().and_then(parse_content_range).ok_or_else(|| FetchError::Invalid {
                        url: url.to_string(),
                        reason: format!("206 response with unusable Content-Range {content_range:?}"),
                    })?;
                if start != offset {
                    return Err(FetchError::Invalid {
                        url: url.to_string(),
                        reason: format!("asked for bytes from {offset}, server sent from {start}"),
                    });
                }
                (start, total.or(content_length.map(|length| start + length)))
            }
            416 if offset > 0 => {
                // The part is at or past the end of the remote file: complete if the sizes match,
                // otherwise stale, and the caller restarts from zero.
                let remote = content_range.as_deref().and_then(unsatisfied_range_total);
                if remote == Some(offset) {
                    return Ok(Fetched { total: offset, resumed_from: offset });
                }
                std::fs::remove_file(part).map_err(local)?;
                return Err(FetchError::Transport {
                    url: url.to_string(),
                    reason: format!(
                        "partial file of {offset} bytes does not fit the remote file ({remote:?} bytes); discarded it"
                    ),
                });
            }
            _ => return Err(FetchError::Status { url: url.to_string(), status }),
        };
        if let Some(total) = total {
            let limit = expected_size.unwrap_or(MAX_MODEL_BYTES);
            if total > limit {
                return Err(FetchError::Invalid {
                    url: url.to_string(),
                    reason: format!("file of {total} bytes exceeds the expected {limit} bytes"),
                });
            }
        }

        let mut file = if start == 0 {
            if offset > 0 {
                tracing::info!(model = name, url, "server ignored the range request; restarting the download");
            }
            File::create(part).map_err(local)?
        } else {
            OpenOptions::new().append(true).open(part).map_err(local)?
        };
        tracing::info!(model = name, url, resume_from = start, total = ?total, "downloading");

        let started = Instant::now();
        let mut received = start;
        let mut next_report = Instant::now() + Duration::from_secs(5);
        let mut reader = response.into_body().into_with_config().reader();
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    file.flush().map_err(local)?;
                    // Keep what arrived: the next attempt resumes from it.
                    return Err(match total {
                        Some(expected) if received < expected => {
                            FetchError::Truncated { url: url.to_string(), received, expected }
                        }
                        _ => FetchError::Transport { url: url.to_string(), reason: error.to_string() },
                    });
                }
            };
            progress.tick();
            file.write_all(&buffer[..read]).map_err(local)?;
            received += read as u64;
            if received > total.unwrap_or(MAX_MODEL_BYTES).min(expected_size.unwrap_or(MAX_MODEL_BYTES)) {
                return Err(FetchError::Invalid {
                    url: url.to_string(),
                    reason: format!("body exceeds the expected size after {received} bytes"),
                });
            }
            if Instant::now() >= next_report {
                next_report = Instant::now() + Duration::from_secs(5);
                match total {
                    Some(total) => tracing::info!(
                        model = name,
                        received,
                        total,
                        "download {:.0}%",
                        100.0 * received as f64 / total.max(1) as f64
                    ),
                    None => tracing::info!(model = name, received, "download in progress"),
                }
            }
        }
        file.sync_all().map_err(local)?;
        if let Some(expected) = total {
            if received < expected {
                return Err(FetchError::Truncated { url: url.to_string(), received, expected });
            }
        }
        tracing::info!(
            model = name,
            url,
            bytes = received,
            seconds = started.elapsed().as_secs_f64(),
            "download complete"
        );
        Ok(Fetched { total: received, resumed_from: start })
    })
}

/// `bytes 100-199/1000` → (100, Some(1000)); `bytes 100-199/*` → (100, None).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    Some((start, total))
}

/// `bytes */1000` → 1000.
fn unsatisfied_range_total(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes")?.trim_start().strip_prefix("*/")?.trim().parse().ok()
}

fn transport(url: &str, error: ureq::Error) -> FetchError {
    FetchError::Transport { url: url.to_string(), reason: error.to_string() }
}

/// Shared "last byte seen" clock between a transfer and its watchdog.
pub(crate) struct Progress {
    epoch: Instant,
    last_millis: AtomicU64,
}

impl Progress {
    fn tick(&self) {
        self.last_millis.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// Runs `transfer` with a fresh agent and a watchdog thread that shuts the agent's connections
/// down once nothing has arrived for `timeouts.read`; the transfer's error is then reported as a
/// stall rather than as the I/O error the shutdown causes.
fn with_watchdog<T>(
    url: &str,
    timeouts: Timeouts,
    transfer: impl FnOnce(&ureq::Agent, &Progress) -> Result<T, FetchError>,
) -> Result<T, FetchError> {
    let agent = agent_for(url, timeouts);
    let progress = Progress { epoch: Instant::now(), last_millis: AtomicU64::new(0) };
    let stalled = AtomicBool::new(false);
    let (done, finished) = mpsc::channel::<()>();
    let tick = (timeouts.read / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));

    let result = std::thread::scope(|scope| {
        let watchdog_agent = agent.clone();
        let (progress, stalled) = (&progress, &stalled);
        scope.spawn(move || loop {
            match finished.recv_timeout(tick) {
                Err(mpsc::RecvTimeoutError::Timeout) if progress.idle() >= timeouts.read => {
                    stalled.store(true, Ordering::Relaxed);
                    watchdog_agent.shutdown();
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // The transfer is over (the sender was dropped or signalled).
                _ => return,
            }
        });
        let result = transfer(&agent, progress);
        drop(done);
        result
    });
    match result {
        Err(error) if stalled.load(Ordering::Relaxed) && !error.is_local() => {
            Err(FetchError::Stalled { url: url.to_string(), after: timeouts.read })
        }
        other => other,
    }
}

fn agent_for(url: &str, timeouts: Timeouts) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(timeouts.connect))
        .timeout_send_request(Some(timeouts.read))
        .timeout_recv_response(Some(timeouts.read))
        .http_status_as_error(false)
        .user_agent(USER_AGENT)
        .max_redirects(10);
    // Loopback mirrors (tests, a local cache) must not be routed through an environment proxy.
    if is_loopback(url) {
        config = config.proxy(None);
    }
    ureq::Agent::new_with_config(config.build())
}

fn is_loopback(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(unsatisfied_range_total("bytes */1000"), Some(1000));
        assert_eq!(unsatisfied_range_total("bytes 0-1/2"), None);
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://localhost/x"));
        assert!(is_loopback("http://[::1]:80/x"));
        assert!(!is_loopback("https://github.com/facefusion"));
        assert!(!is_loopback("not a url"));
    }

    #[test]
    fn errors_name_the_url_and_status() {
        let error = FetchError::Status { url: "http://h/x.onnx".into(), status: 404 };
        assert_eq!(error.to_string(), "http://h/x.onnx: HTTP 404 Not Found");
        assert!(!error.retryable());
        let truncated = FetchError::Truncated { url: "u".into(), received: 1, expected: 2 };
        assert!(truncated.retryable());
    }
}
