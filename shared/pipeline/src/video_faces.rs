//! The faces of a whole video range, analysed before any frame is processed: the tracker reads the
//! faces of the frames around each frame, and the detector interval follows faces from one frame to
//! the next, so neither fits the frame loop, where frames are processed out of order.
//!
//! The range is decoded once for this pass and again for processing: decoding is a small part of a
//! face run, and holding faces (a few KB a frame) instead of frames keeps memory small.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use crate::chain::check_cancelled;
use crate::error::{MediaFailure, PipelineError, Result};
use crate::face::analyser::{FaceAnalyser, FaceNeeds};
use crate::face::follower::follow;
use crate::face::Face;
use crate::options::ProcessOptions;
use crate::raster::Frame;
use crate::sessions::ModelRegistry;
use crate::video::FrameSource;

/// Frames analysed together by one worker: the first is detected, the rest follow it.
type Block = (usize, Vec<Frame>);
type BlockFaces = (usize, Result<Vec<Vec<Face>>>);

/// Analyses every frame of `frames` on `workers` threads and answers their faces in frame order.
/// Every face of a frame is described (the tracker links all of them), with the embedding and
/// classification only where the run reads them.
pub fn analyse_frames(
    registry: &ModelRegistry,
    options: &ProcessOptions,
    mut frames: impl FrameSource,
    workers: usize,
    cancel: &AtomicBool,
) -> Result<Vec<Vec<Face>>> {
    let needs = FaceNeeds { only_first: None, ..FaceNeeds::for_targets(options) };
    // Following needs the landmarker's points and score; without it every frame is detected.
    let interval = if options.landmarker.score > 0.0 { options.tracker.detector_interval.max(1) } else { 1 };
    let workers = workers.max(1);
    let abort = AtomicBool::new(false);
    let stopping = || abort.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed);
    let (block_tx, block_rx) = mpsc::sync_channel::<Block>(workers);
    let block_rx = Arc::new(Mutex::new(block_rx));
    let (done_tx, done_rx) = mpsc::channel::<BlockFaces>();

    let analyse = |frames: &[Frame]| -> Result<Vec<Vec<Face>>> {
        let mut faces: Vec<Vec<Face>> = Vec::with_capacity(frames.len());
        for frame in frames {
            check_cancelled(cancel)?;
            let found = match faces.last() {
                Some(previous) => follow(registry, frame, previous, &options.landmarker)?,
                // A fresh analyser a frame: its cache would otherwise hold every frame's faces.
                None => {
                    FaceAnalyser::with_needs(registry, &options.detector, &options.landmarker, needs).faces(frame)?
                }
            };
            faces.push(found);
        }
        Ok(faces)
    };

    let decoded = std::thread::scope(|scope| -> Result<usize> {
        for _ in 0..workers {
            let block_rx = Arc::clone(&block_rx);
            let done_tx = done_tx.clone();
            let (analyse, abort) = (&analyse, &abort);
            scope.spawn(move || loop {
                let block = match block_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((start, frames)) = block else { return };
                let result = catch_unwind(AssertUnwindSafe(|| analyse(&frames)))
                    .unwrap_or_else(|_| Err(analysis_panicked(start)));
                if result.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
                if done_tx.send((start, result)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut index = 0usize;
        let mut block: Vec<Frame> = Vec::with_capacity(interval);
        while !stopping() {
            match frames.next_frame() {
                Ok(Some(frame)) => block.push(frame),
                Ok(None) => break,
                Err(error) => {
                    abort.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
            if block.len() == interval {
                let start = index;
                index += block.len();
                if block_tx.send((start, std::mem::replace(&mut block, Vec::with_capacity(interval)))).is_err() {
                    break;
                }
            }
        }
        if !block.is_empty() && !stopping() {
            let start = index;
            index += block.len();
            let _ = block_tx.send((start, block));
        }
        frames.abort();
        drop(block_tx);
        Ok(index)
    });
    let decoded = decoded?;

    let mut faces: Vec<Option<Vec<Face>>> = vec![None; decoded];
    for (start, result) in done_rx {
        for (offset, found) in result?.into_iter().enumerate() {
            if let Some(slot) = faces.get_mut(start + offset) {
                *slot = Some(found);
            }
        }
    }
    check_cancelled(cancel)?;
    faces.into_iter().enumerate().map(|(index, found)| found.ok_or_else(|| analysis_missing(index))).collect()
}

fn analysis_panicked(start: usize) -> PipelineError {
    PipelineError::media(MediaFailure::ProcessingPanicked, format!("analysing the faces of frame {start} panicked"))
}

fn analysis_missing(index: usize) -> PipelineError {
    PipelineError::media(
        MediaFailure::FfmpegFailed,
        format!("frame {index} was decoded but its faces were not analysed"),
    )
}
