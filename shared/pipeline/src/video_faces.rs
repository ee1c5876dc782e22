//! The faces of a video range analysed in order, ahead of the frames being processed: the tracker
//! reads the faces of the frames around each frame, and the detector interval follows faces from one
//! frame to the next, so neither fits the frame loop, where frames are processed out of order.
//!
//! One thread decodes the range a second time and analyses it frame after frame, publishing each
//! frame's faces; the frame loop's workers wait for the faces of the frames they need. The two run
//! side by side, so the analysis models and the processors share the cores as they do without the
//! tracker (a whole analysis pass first left the processors' workers competing for the same model).
//! Faces, a few KB a frame, are kept for the run; frames are not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::error::{MediaFailure, PipelineError, Result};
use crate::face::analyser::{FaceAnalyser, FaceNeeds};
use crate::face::follower::follow;
use crate::face::tracker::{track_faces, window_at, WINDOW};
use crate::face::Face;
use crate::options::ProcessOptions;
use crate::sessions::ModelRegistry;
use crate::video::{cancelled_error, FrameSource};

/// How often a waiting worker looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The faces of the frames analysed so far, by decoded frame, shared between the analysing thread
/// and the frame loop's workers.
pub struct TrackedFaces {
    /// Decoded frames before the run's first frame (the tracker's window reaches into them).
    lead: usize,
    /// The tracker's score; 0 returns each frame's own faces.
    score: f32,
    state: Mutex<Analysed>,
    published: Condvar,
    /// Set when the run ends early: the analysis stops.
    stopped: AtomicBool,
}

#[derive(Default)]
struct Analysed {
    frames: Vec<Vec<Face>>,
    /// The analysis ended: every frame it will ever publish is in `frames`.
    finished: bool,
    failed: bool,
}

impl TrackedFaces {
    /// `lead` decoded frames come before the run's first frame.
    pub fn new(lead: usize, score: f32) -> Self {
        Self {
            lead,
            score,
            state: Mutex::new(Analysed::default()),
            published: Condvar::new(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Analyses every frame of `frames` in order and publishes its faces: the detector on every
    /// `detector_interval`-th frame, the follower between. Every face of a frame is described (the
    /// tracker links all of them), with the embedding and classification only where the run reads
    /// them. Runs on its own thread until the frames end, the run is cancelled or `stop` is called.
    pub fn analyse(
        &self,
        registry: &ModelRegistry,
        options: &ProcessOptions,
        mut frames: impl FrameSource,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let result = self.analyse_frames(registry, options, &mut frames, cancel);
        frames.abort();
        let mut state = self.lock();
        state.finished = true;
        state.failed = result.is_err();
        self.published.notify_all();
        result
    }

    fn analyse_frames(
        &self,
        registry: &ModelRegistry,
        options: &ProcessOptions,
        frames: &mut impl FrameSource,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let needs = FaceNeeds { only_first: None, ..FaceNeeds::for_targets(options) };
        // Following needs the landmarker's points and score; without it every frame is detected.
        let interval = if options.landmarker.score > 0.0 { options.tracker.detector_interval.max(1) } else { 1 };
        let mut previous: Option<Vec<Face>> = None;
        let mut index = 0usize;
        while let Some(frame) = frames.next_frame()? {
            stop_if_cancelled(cancel)?;
            if self.stopped.load(Ordering::Relaxed) {
                return Ok(());
            }
            let faces = match previous.take() {
                Some(previous) if !index.is_multiple_of(interval) => {
                    follow(registry, &frame, &previous, &options.landmarker)?
                }
                // A fresh analyser a frame: its cache would otherwise hold every frame's faces.
                _ => FaceAnalyser::with_needs(registry, &options.detector, &options.landmarker, needs).faces(&frame)?,
            };
            previous = Some(faces.clone());
            self.lock().frames.push(faces);
            self.published.notify_all();
            index += 1;
        }
        Ok(())
    }

    /// Ends the analysis early (the run failed or finished without it).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// The faces of the run's frame `index`, once the frames its window needs are analysed: tracked
    /// when the tracker is on, else the frame's own. `None` when the analysis ended before this
    /// frame (the caller analyses it itself).
    pub fn faces(&self, index: usize, cancel: &AtomicBool) -> Result<Option<Vec<Face>>> {
        let at = self.lead + index;
        let reach = if self.score > 0.0 { WINDOW } else { 0 };
        let mut state = self.lock();
        while state.frames.len() <= at + reach && !state.finished {
            stop_if_cancelled(cancel)?;
            state = self.published.wait_timeout(state, CANCEL_POLL).unwrap_or_else(|p| p.into_inner()).0;
        }
        if state.failed {
            return Err(analysis_failed());
        }
        if at >= state.frames.len() {
            return Ok(None);
        }
        if reach == 0 {
            return Ok(Some(state.frames[at].clone()));
        }
        Ok(Some(track_faces(&window_at(&state.frames, at), self.score)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Analysed> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn stop_if_cancelled(cancel: &AtomicBool) -> Result<()> {
    match cancel.load(Ordering::Relaxed) {
        true => Err(cancelled_error()),
        false => Ok(()),
    }
}

/// What a worker waiting for faces answers when the analysis failed; the run reports the analysis's
/// own error.
fn analysis_failed() -> PipelineError {
    PipelineError::media(MediaFailure::FfmpegFailed, "the face analysis ahead of the frames failed")
}
