//! The faces of a video range analysed in order, ahead of the frames being processed: the tracker
//! reads the faces of the frames around each frame, and the detector interval follows faces from one
//! frame to the next, so neither fits the frame loop, where frames are processed out of order.
//!
//! One thread decodes the range a second time and analyses it frame after frame, publishing each
//! frame's faces; the frame loop's workers wait for the faces of the frames they need. The two run
//! side by side, so the analysis models and the processors share the cores as they do without the
//! tracker (a whole analysis pass first left the processors' workers competing for the same model).
//! Only the faces of the frames around those in flight are kept (a few KB a frame); frames are not.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{check_cancelled, MediaFailure, PipelineError, Result};
use crate::face::analyser::{FaceAnalyser, FaceNeeds};
use crate::face::follower::follow;
use crate::face::tracker::{track_faces, window_at, WINDOW};
use crate::face::Face;
use crate::options::ProcessOptions;
use crate::sessions::ModelRegistry;
use crate::video::FrameSource;

/// How often a waiting worker looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The faces of the frames analysed so far, by decoded frame, shared between the analysing thread
/// and the frame loop's workers. Only the frames around those being processed are kept: memory
/// stays flat however long the video.
pub struct TrackedFaces {
    /// Decoded frames before the run's first frame (the tracker's window reaches into them).
    lead: usize,
    /// The tracker's score; 0 returns each frame's own faces.
    score: f32,
    /// Frames kept behind the latest one asked for, and published ahead of it: the frame loop's
    /// frames in flight plus the tracker's window, so every frame a worker can still ask for is
    /// kept, and the analysis never blocks a worker.
    horizon: usize,
    state: Mutex<Analysed>,
    published: Condvar,
    /// Set when the run ends early: the analysis stops.
    stopped: AtomicBool,
}

#[derive(Default)]
struct Analysed {
    /// The faces of decoded frames `first..first + frames.len()`.
    frames: VecDeque<Vec<Face>>,
    first: usize,
    /// The latest decoded frame a worker asked for.
    latest_asked: usize,
    /// The analysis ended: every frame it will ever publish has been published.
    finished: bool,
    failed: bool,
}

impl Analysed {
    fn published(&self) -> usize {
        self.first + self.frames.len()
    }
}

impl TrackedFaces {
    /// `lead` decoded frames come before the run's first frame; the frame loop holds at most
    /// `in_flight` frames at once.
    pub fn new(lead: usize, score: f32, in_flight: usize) -> Self {
        Self {
            lead,
            score,
            horizon: in_flight + 2 * WINDOW + 1,
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
            check_cancelled(cancel)?;
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
            self.publish(faces, cancel)?;
            index += 1;
        }
        Ok(())
    }

    /// Adds the next frame's faces once the workers are within the horizon of it.
    fn publish(&self, faces: Vec<Face>, cancel: &AtomicBool) -> Result<()> {
        let mut state = self.lock();
        while state.published() > state.latest_asked + self.horizon && !self.stopped.load(Ordering::Relaxed) {
            state = self.wait(state, cancel)?;
        }
        state.frames.push_back(faces);
        self.published.notify_all();
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
        if at > state.latest_asked {
            state.latest_asked = at;
            self.forget_before(&mut state, at.saturating_sub(self.horizon));
            self.published.notify_all();
        }
        while state.published() <= at + reach && !state.finished {
            state = self.wait(state, cancel)?;
        }
        if state.failed {
            return Err(analysis_failed());
        }
        // Past the analysis's end, or (never with the horizon above) already forgotten.
        if at >= state.published() || at.saturating_sub(reach) < state.first {
            return Ok(None);
        }
        let first = state.first;
        let frames = state.frames.make_contiguous();
        if reach == 0 {
            return Ok(Some(frames[at - first].clone()));
        }
        Ok(Some(track_faces(&window_at(frames, at - first), self.score)))
    }

    /// Drops the faces of frames before `keep_from`: no worker can ask for them any more.
    fn forget_before(&self, state: &mut Analysed, keep_from: usize) {
        while state.first < keep_from && !state.frames.is_empty() {
            state.frames.pop_front();
            state.first += 1;
        }
    }

    /// Waits for the other side to publish or ask, a moment at most, so a cancellation is seen.
    fn wait<'s>(&'s self, state: MutexGuard<'s, Analysed>, cancel: &AtomicBool) -> Result<MutexGuard<'s, Analysed>> {
        check_cancelled(cancel)?;
        Ok(self.published.wait_timeout(state, CANCEL_POLL).unwrap_or_else(|p| p.into_inner()).0)
    }

    fn lock(&self) -> MutexGuard<'_, Analysed> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a worker waiting for faces answers when the analysis failed; the run reports the analysis's
/// own error.
fn analysis_failed() -> PipelineError {
    PipelineError::media(MediaFailure::FfmpegFailed, "the face analysis ahead of the frames failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::{BoundingBox, Gender, Race};

    fn face(x: f64) -> Face {
        Face {
            bounding_box: BoundingBox { x1: x, y1: 0.0, x2: x + 100.0, y2: 100.0 },
            detector_score: 0.9,
            landmarker_score: 0.9,
            landmark_5: [[x, 0.0]; 5],
            landmark_5_68: [[x, 0.0]; 5],
            landmark_68: vec![[x, 0.0]; 68],
            landmark_68_5: vec![[x, 0.0]; 68],
            angle: 0,
            embedding: Vec::new(),
            embedding_norm: Vec::new(),
            gender: Gender::Male,
            age: (20, 30),
            race: Race::White,
        }
    }

    /// Frames published and asked for in step, as the analysis thread and the frame loop do: every
    /// answer is tracked over its window, a missed face refilled, and only the frames around the
    /// latest asked for are kept, however many go by.
    #[test]
    fn faces_are_tracked_and_only_the_horizon_is_kept() {
        let cancel = AtomicBool::new(false);
        let tracked = TrackedFaces::new(0, 0.3, 2);
        let frames = 200;
        let mut answers = Vec::new();
        for published in 0..frames {
            // Frame 7 has no face: the tracker refills it from frames 6 and 8.
            let faces = if published == 7 { Vec::new() } else { vec![face(published as f64)] };
            tracked.publish(faces, &cancel).unwrap();
            if published >= WINDOW {
                let asked = published - WINDOW;
                answers.push(tracked.faces(asked, &cancel).unwrap().expect("analysed"));
                assert!(tracked.lock().frames.len() <= tracked.horizon + WINDOW + 1);
            }
        }
        {
            let mut state = tracked.lock();
            state.finished = true;
        }
        for asked in frames - WINDOW..frames {
            answers.push(tracked.faces(asked, &cancel).unwrap().expect("analysed"));
        }
        assert_eq!(answers.len(), frames);
        for (index, faces) in answers.iter().enumerate() {
            assert_eq!(faces.len(), 1, "frame {index}");
            assert_eq!(faces[0].bounding_box.x1, index as f64, "frame {index}");
        }
        assert!(tracked.faces(frames, &cancel).unwrap().is_none(), "past the end: analysed by the caller");
    }
}
