//! The frame loop: decode → process in parallel → encode in order, with a bounded number of frames in
//! flight, progress per frame and cancellation within one frame.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::command::media_error;
use super::reader::FrameReader;
use super::writer::{EncodedVideo, FrameWriter};
use crate::error::{MediaFailure, PipelineError, Result};
use crate::raster::Frame;

/// How often the collector looks at the cancel flag while no frame arrives.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// Reported after every frame written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub frames_done: u64,
    /// FaceFusion's predicted frame count for the range; never below `frames_done`.
    pub frames_total: u64,
    /// Frames per second since the start.
    pub fps: f64,
    pub elapsed: Duration,
    /// At the current rate; `None` until a rate is known.
    pub eta: Option<Duration>,
}

/// How many frames are worked on at once and how many may exist between decoder and encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parallelism {
    /// Worker threads running `process` (FaceFusion's `--execution-thread-count`, frames at a time).
    pub workers: usize,
    /// Frames decoded but not yet encoded, including those being processed and those waiting for an
    /// earlier frame to finish. This bounds memory at about `max_in_flight` frames whatever the length.
    pub max_in_flight: usize,
}

impl Parallelism {
    /// At least one worker, and at least one frame per worker in flight (fewer would idle workers).
    fn normalised(self) -> Self {
        let workers = self.workers.max(1);
        Self { workers, max_in_flight: self.max_in_flight.max(workers) }
    }
}

/// Where the frame loop takes its frames from: the ffmpeg decoder, or a still image repeated.
pub trait FrameSource: Send {
    /// The progress total; never below what `next_frame` yields unless the source ends early.
    fn expected_frames(&self) -> u64;
    /// The next frame, `None` at the end.
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// Stops now (cancellation or failure); later reads return `Ok(None)`.
    fn abort(&mut self);
}

impl FrameSource for FrameReader {
    fn expected_frames(&self) -> u64 {
        FrameReader::expected_frames(self)
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        FrameReader::next_frame(self)
    }

    fn abort(&mut self) {
        FrameReader::abort(self)
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn expected_frames(&self) -> u64 {
        (**self).expected_frames()
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        (**self).next_frame()
    }

    fn abort(&mut self) {
        (**self).abort()
    }
}

/// One image as a video of `count` frames: a photo the lip syncer makes speak.
pub struct StillFrames {
    frame: Frame,
    count: u64,
    produced: u64,
}

impl StillFrames {
    pub fn new(frame: Frame, count: u64) -> Self {
        Self { frame, count, produced: 0 }
    }
}

impl FrameSource for StillFrames {
    fn expected_frames(&self) -> u64 {
        self.count
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.produced >= self.count {
            return Ok(None);
        }
        self.produced += 1;
        Ok(Some(self.frame.clone()))
    }

    fn abort(&mut self) {
        self.produced = self.count;
    }
}

/// The error for a cancelled run. Its code is `cancelled`, so callers can tell it from a failure.
pub fn cancelled_error() -> PipelineError {
    media_error(MediaFailure::Cancelled, "the video processing was cancelled")
}

/// Decodes every frame of `reader`, runs `process(index, frame)` on `parallelism.workers` threads and
/// encodes the results in order with `writer`, then finishes the writer (audio included).
///
/// On an error or cancellation every frame in flight is dropped, both ffmpeg processes are killed and
/// the partial output is removed; the cancel flag is checked for every frame, so at most the frames
/// already inside `process` run to completion. A panic inside `process` becomes an error.
pub fn process_video<S, F, P>(
    reader: S,
    writer: FrameWriter,
    parallelism: Parallelism,
    process: F,
    progress: P,
    cancel: &AtomicBool,
) -> Result<EncodedVideo>
where
    S: FrameSource,
    F: Fn(usize, Frame) -> Result<Frame> + Sync,
    P: FnMut(Progress),
{
    let mut writer = writer;
    run_frames(reader, &mut writer, parallelism.normalised(), &process, progress, cancel)?;
    if cancel.load(Ordering::Relaxed) {
        return Err(cancelled_error());
    }
    writer.finish()
}

type Job = (usize, Frame);
type Done = (usize, Result<Frame>);

fn run_frames<S, F, P>(
    mut reader: S,
    writer: &mut FrameWriter,
    parallelism: Parallelism,
    process: &F,
    mut progress: P,
    cancel: &AtomicBool,
) -> Result<()>
where
    S: FrameSource,
    F: Fn(usize, Frame) -> Result<Frame> + Sync,
    P: FnMut(Progress),
{
    let expected = reader.expected_frames();
    // Set on any failure or cancellation: every thread stops taking work.
    let abort = AtomicBool::new(false);
    let stopping = || abort.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed);

    // Permits bound the frames alive between decode and encode: the decoder takes one per frame, the
    // encoder side gives it back once the frame is written.
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(parallelism.max_in_flight);
    for _ in 0..parallelism.max_in_flight {
        let _ = permit_tx.send(());
    }
    // With the permits in place these channels never hold more than max_in_flight items.
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(parallelism.max_in_flight);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<Done>(parallelism.max_in_flight);

    let stopping = &stopping;
    let abort = &abort;
    std::thread::scope(|scope| -> Result<()> {
        // The decoder thread owns the reader, so ffmpeg is killed whenever that thread ends early.
        let decoder = scope.spawn(move || -> Result<u64> {
            let mut index = 0usize;
            loop {
                if permit_rx.recv().is_err() || stopping() {
                    reader.abort();
                    return Ok(index as u64);
                }
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        if job_tx.send((index, frame)).is_err() {
                            reader.abort();
                            return Ok(index as u64);
                        }
                        index += 1;
                    }
                    Ok(None) => return Ok(index as u64),
                    Err(error) => {
                        abort.store(true, Ordering::Relaxed);
                        return Err(error);
                    }
                }
            }
        });

        for _ in 0..parallelism.workers {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || loop {
                let job = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((index, frame)) = job else { return };
                if stopping() {
                    return;
                }
                let result = catch_unwind(AssertUnwindSafe(|| process(index, frame))).unwrap_or_else(|panic| {
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(media_error(
                        MediaFailure::ProcessingPanicked,
                        format!("processing frame {index} panicked: {text}"),
                    ))
                });
                if done_tx.send((index, result)).is_err() {
                    return;
                }
            });
        }
        // Only the workers hold result senders now: the channel closes when the last one exits.
        drop(done_tx);
        drop(job_rx);

        let started = Instant::now();
        let mut pending: BTreeMap<usize, Frame> = BTreeMap::new();
        let mut next = 0usize;
        let mut outcome: Result<()> = Ok(());
        loop {
            if cancel.load(Ordering::Relaxed) {
                outcome = Err(cancelled_error());
                break;
            }
            let (index, result) = match done_rx.recv_timeout(CANCEL_POLL) {
                Ok(done) => done,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match result {
                Ok(frame) => {
                    pending.insert(index, frame);
                }
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
            while let Some(frame) = pending.remove(&next) {
                if cancel.load(Ordering::Relaxed) {
                    outcome = Err(cancelled_error());
                    break;
                }
                if let Err(error) = writer.write_frame(&frame) {
                    outcome = Err(error);
                    break;
                }
                drop(frame);
                next += 1;
                let _ = permit_tx.send(());
                progress(progress_at(next as u64, expected, started.elapsed()));
            }
            if outcome.is_err() {
                break;
            }
        }
        if outcome.is_err() {
            // Unblock and stop everyone: the decoder waits on permits, workers on jobs or results.
            abort.store(true, Ordering::Relaxed);
        }
        drop(permit_tx);
        drop(done_rx);
        drop(pending);
        let decoded = decoder
            .join()
            .unwrap_or_else(|_| Err(media_error(MediaFailure::FfmpegFailed, "the decoder thread panicked")));
        match (outcome, decoded) {
            (Err(error), _) => Err(error),
            // A decode error outranks the missing frames it caused.
            (Ok(()), Err(error)) => Err(error),
            (Ok(()), Ok(count)) if count != next as u64 => {
                Err(media_error(MediaFailure::FfmpegFailed, format!("{count} frames were decoded but {next} encoded")))
            }
            (Ok(()), Ok(_)) => Ok(()),
        }
    })
}

fn progress_at(done: u64, expected: u64, elapsed: Duration) -> Progress {
    let total = expected.max(done);
    let seconds = elapsed.as_secs_f64();
    let fps = if seconds > 0.0 { done as f64 / seconds } else { 0.0 };
    let eta = (fps > 0.0).then(|| Duration::from_secs_f64((total - done) as f64 / fps));
    Progress { frames_done: done, frames_total: total, fps, elapsed, eta }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_rate_and_eta() {
        let p = progress_at(30, 60, Duration::from_secs(3));
        assert_eq!((p.frames_done, p.frames_total), (30, 60));
        assert!((p.fps - 10.0).abs() < 1e-9);
        assert_eq!(p.eta, Some(Duration::from_secs(3)));
        assert_eq!(progress_at(70, 60, Duration::from_secs(7)).frames_total, 70);
    }
}
