//! Supervised ffmpeg/ffprobe children: every one has a deadline enforced by a watchdog thread, is killed
//! and reaped on drop, and keeps the tail of its stderr for the error message.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{MediaFailure, PipelineError, Result};

/// How much of a child's stderr is kept: ffmpeg runs at `-loglevel error`, so the useful lines are the
/// last few; a bounded tail keeps a chatty child from growing memory.
const STDERR_TAIL_BYTES: usize = 16 * 1024;

/// Where ffmpeg and ffprobe are. `FF_FFMPEG` names the ffmpeg binary (a Lambda layer puts it under
/// `/opt/bin`); ffprobe is taken from beside it, or `FF_FFPROBE`. Without either, both come from `PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Default for Toolchain {
    fn default() -> Self {
        Self { ffmpeg: PathBuf::from("ffmpeg"), ffprobe: PathBuf::from("ffprobe") }
    }
}

impl Toolchain {
    pub fn from_env() -> Self {
        let ffmpeg = std::env::var_os("FF_FFMPEG").filter(|v| !v.is_empty()).map(PathBuf::from);
        let ffprobe = std::env::var_os("FF_FFPROBE").filter(|v| !v.is_empty()).map(PathBuf::from);
        let ffprobe = ffprobe.or_else(|| {
            // An explicit ffmpeg path usually comes with its ffprobe in the same directory.
            let dir = ffmpeg.as_deref()?.parent()?;
            let candidate = dir.join("ffprobe");
            candidate.is_file().then_some(candidate)
        });
        let default = Self::default();
        Self { ffmpeg: ffmpeg.unwrap_or(default.ffmpeg), ffprobe: ffprobe.unwrap_or(default.ffprobe) }
    }
}

/// A media failure that is not the input's fault (ffmpeg missing, crashed, timed out, cancelled).
pub(crate) fn media_error(kind: MediaFailure, message: impl Into<String>) -> PipelineError {
    PipelineError::media(kind, message)
}

struct Watch {
    finished: bool,
    timed_out: bool,
}

struct Shared {
    child: Mutex<Child>,
    watch: Mutex<Watch>,
    wake: Condvar,
    stderr: Mutex<Vec<u8>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data inconsistent (flags and a byte
    // buffer), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running child process under a deadline.
pub(crate) struct Supervised {
    label: String,
    shared: Arc<Shared>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    watchdog: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Supervised {
    /// Spawns `program args` with stderr captured; stdin/stdout piped as asked, else null.
    pub fn spawn(
        label: &str,
        program: &Path,
        args: &[String],
        pipe_stdin: bool,
        pipe_stdout: bool,
        timeout: Duration,
    ) -> Result<Self> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(if pipe_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(if pipe_stdout { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::piped());
        tracing::debug!(program = %program.display(), ?args, "spawning");
        let mut child = command.spawn().map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                media_error(
                    MediaFailure::FfmpegMissing,
                    format!(
                        "`{}` was not found: install ffmpeg (apt-get install ffmpeg) or set FF_FFMPEG",
                        program.display()
                    ),
                )
            } else {
                media_error(
                    MediaFailure::FfmpegFailed,
                    format!("{label}: could not start `{}`: {error}", program.display()),
                )
            }
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let shared = Arc::new(Shared {
            child: Mutex::new(child),
            watch: Mutex::new(Watch { finished: false, timed_out: false }),
            wake: Condvar::new(),
            stderr: Mutex::new(Vec::new()),
        });

        let deadline = Instant::now() + timeout;
        let watched = Arc::clone(&shared);
        let watchdog = std::thread::Builder::new()
            .name("ffmpeg-watchdog".into())
            .spawn(move || watchdog(&watched, deadline))
            .map_err(|e| {
                media_error(MediaFailure::FfmpegFailed, format!("{label}: could not start a watchdog: {e}"))
            })?;

        let mut supervised = Self {
            label: label.to_string(),
            shared,
            stdin,
            stdout,
            watchdog: Some(watchdog),
            stderr_reader: None,
            exited: None,
        };
        if let Some(mut stderr) = stderr {
            let sink = Arc::clone(&supervised.shared);
            let reader = std::thread::Builder::new().name("ffmpeg-stderr".into()).spawn(move || {
                // Drained continuously: a full stderr pipe would block ffmpeg.
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let mut tail = lock(&sink.stderr);
                    tail.extend_from_slice(&chunk[..n]);
                    if tail.len() > STDERR_TAIL_BYTES {
                        let excess = tail.len() - STDERR_TAIL_BYTES;
                        tail.drain(..excess);
                    }
                }
            });
            match reader {
                Ok(handle) => supervised.stderr_reader = Some(handle),
                Err(e) => {
                    return Err(media_error(
                        MediaFailure::FfmpegFailed,
                        format!("{label}: could not start a stderr reader: {e}"),
                    ))
                }
            }
        }
        Ok(supervised)
    }

    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    pub fn timed_out(&self) -> bool {
        lock(&self.shared.watch).timed_out
    }

    /// The kept stderr tail, trimmed, as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.shared.stderr)).trim().to_string()
    }

    pub fn kill(&mut self) {
        let mut child = lock(&self.shared.child);
        let _ = child.kill();
    }

    /// Waits for the child to exit (the watchdog kills it at the deadline), then for its stderr to be
    /// drained. Polls `try_wait` so the watchdog can take the child's lock to kill it meanwhile.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        // Closing our end of stdin first: ffmpeg reading a pipe waits for EOF.
        self.stdin.take();
        let status = loop {
            if let Some(status) = self.exited {
                break status;
            }
            let polled = lock(&self.shared.child).try_wait();
            match polled {
                Ok(Some(status)) => self.exited = Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    return Err(media_error(MediaFailure::FfmpegFailed, format!("{}: wait failed: {e}", self.label)))
                }
            }
        };
        self.stop_watchdog();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        if self.timed_out() {
            return Err(self.timeout_error());
        }
        Ok(status)
    }

    /// Waits and turns a non-zero exit into an error carrying stderr.
    pub fn wait_success(&mut self) -> Result<()> {
        let status = self.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failure(&format!("exited with {status}")))
        }
    }

    pub fn failure(&self, what: &str) -> PipelineError {
        if self.timed_out() {
            return self.timeout_error();
        }
        let stderr = self.stderr_text();
        let detail = if stderr.is_empty() { String::new() } else { format!(": {stderr}") };
        media_error(MediaFailure::FfmpegFailed, format!("{} {what}{detail}", self.label))
    }

    fn timeout_error(&self) -> PipelineError {
        media_error(MediaFailure::FfmpegTimeout, format!("{} was stopped after its time limit", self.label))
    }

    fn stop_watchdog(&mut self) {
        lock(&self.shared.watch).finished = true;
        self.shared.wake.notify_all();
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
    }
}

fn watchdog(shared: &Shared, deadline: Instant) {
    let mut watch = lock(&shared.watch);
    loop {
        if watch.finished {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            watch.timed_out = true;
            drop(watch);
            let _ = lock(&shared.child).kill();
            return;
        }
        watch = shared
            .wake
            .wait_timeout(watch, deadline - now)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Killing an exited child is harmless; reaping it avoids a zombie.
        self.stdin.take();
        self.stdout.take();
        if self.exited.is_none() {
            let mut child = lock(&self.shared.child);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_watchdog();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
    }
}

/// Runs a short command to completion and returns its stdout (at most `limit` bytes are kept: probe
/// answers are small, and a bound protects against a misbehaving binary).
pub(crate) fn run_capture(
    label: &str,
    program: &Path,
    args: &[String],
    timeout: Duration,
    limit: usize,
) -> Result<(ExitStatus, Vec<u8>, String)> {
    let mut child = Supervised::spawn(label, program, args, false, true, timeout)?;
    let mut output = Vec::new();
    if let Some(stdout) = child.take_stdout() {
        let mut limited = stdout.take(limit as u64);
        limited
            .read_to_end(&mut output)
            .map_err(|e| media_error(MediaFailure::FfmpegFailed, format!("{label}: reading its output failed: {e}")))?;
        // Anything past the limit is drained so the child is not blocked on a full pipe.
        let mut rest = limited.into_inner();
        let _ = std::io::copy(&mut rest, &mut std::io::sink());
    }
    let status = child.wait()?;
    let stderr = child.stderr_text();
    Ok((status, output, stderr))
}

/// Python's `str(float)`: FaceFusion formats fps, seek times, durations and volumes this way, and the
/// same text keeps ffmpeg's parsing (and so its rounding) identical.
pub(crate) fn py_float(value: f64) -> String {
    if value.is_finite() && value == value.trunc() && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_text() {
        assert_eq!(py_float(29.97), "29.97");
        assert_eq!(py_float(30.0), "30.0");
        assert_eq!(py_float(120.0 / 29.97), "4.004004004004004");
        assert_eq!(py_float(0.8), "0.8");
        assert_eq!(py_float(1.0), "1.0");
    }
}
