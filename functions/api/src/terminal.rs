//! How `ff` talks to the person at a terminal: readable log lines, and a video's progress as a bar
//! (frames done/total, fps, ETA) with the log lines printed above it instead of through it.
//! Anywhere else (a pipe, a container, Lambda) logs are JSON lines and progress a line a second.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ff_pipeline::video::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text with a progress bar on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    Text,
    Json,
}

/// The terminal's stderr, shared by the log writer and the progress bar: a log line clears the
/// bar, prints, and redraws it below.
#[derive(Clone, Default)]
pub struct Terminal {
    bar: Arc<Mutex<Option<ProgressBar>>>,
    /// Whether stderr is a terminal a bar can be drawn on.
    draws: bool,
}

impl Terminal {
    fn bar(&self) -> MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A callback for a video's progress: the bar on a terminal, else an INFO line a second.
    pub fn progress(&self) -> Box<dyn FnMut(Progress) + Send> {
        if !self.draws {
            return Box::new(progress_lines());
        }
        let terminal = self.clone();
        Box::new(move |progress: Progress| terminal.show(&progress))
    }

    fn show(&self, progress: &Progress) {
        let mut slot = self.bar();
        let bar = slot.get_or_insert_with(|| new_bar(progress.frames_total));
        bar.set_length(progress.frames_total);
        bar.set_position(progress.frames_done);
        let eta = progress.eta.map_or_else(|| "--:--".to_string(), clock);
        bar.set_message(format!("{:.2} fps · ETA {eta}", progress.fps));
    }

    /// Leaves the bar's last state on screen, below everything logged so far.
    pub fn finish(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish();
        }
    }
}

fn new_bar(total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} frames · {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// `m:ss`, or `h:mm:ss` past an hour.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds / 3600 {
        0 => format!("{}:{:02}", seconds / 60, seconds % 60),
        hours => format!("{hours}:{:02}:{:02}", seconds / 60 % 60, seconds % 60),
    }
}

/// A line a second at most, and the last frame always.
fn progress_lines() -> impl FnMut(Progress) + Send {
    let mut last: Option<std::time::Instant> = None;
    move |p: Progress| {
        let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        if due || p.frames_done == p.frames_total {
            last = Some(std::time::Instant::now());
            tracing::info!(
                frames = p.frames_done,
                total = p.frames_total,
                fps = format!("{:.2}", p.fps),
                eta_s = p.eta.map(|eta| eta.as_secs()),
                "progress"
            );
        }
    }
}

/// One log event, written whole when dropped: above the bar when one is shown.
pub struct EventWriter {
    terminal: Terminal,
    line: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.line);
        let write = || {
            let _ = std::io::stderr().write_all(&line);
        };
        match self.terminal.bar().as_ref() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl<'a> MakeWriter<'a> for Terminal {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { terminal: self.clone(), line: Vec::new() }
    }
}

/// Starts logging (`RUST_LOG` filters) and answers the terminal progress goes to.
pub fn init(format: LogFormat) -> Terminal {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let on_terminal = std::io::stderr().is_terminal();
    let text = match format {
        LogFormat::Auto => on_terminal,
        LogFormat::Text => true,
        LogFormat::Json => false,
    };
    let terminal = Terminal { bar: Arc::default(), draws: text && on_terminal };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(terminal.clone());
    if text {
        builder.init();
    } else {
        builder.json().init();
    }
    terminal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_clocks() {
        assert_eq!(clock(Duration::from_secs(42)), "0:42");
        assert_eq!(clock(Duration::from_secs(754)), "12:34");
        assert_eq!(clock(Duration::from_secs(3600 + 62)), "1:01:02");
    }
}
