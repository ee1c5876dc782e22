//! The NSFW gate (spec §10): three classifiers vote on the target; two yes votes reject it.
//! FaceFusion runs this on every target before any processor, whatever the processors are.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::error::{PipelineError, Result};
use crate::imgproc::resize::resize_linear;
use crate::raster::Frame;
use crate::runtime::{Input, Output};
use crate::sessions::ModelRegistry;

pub const MODELS: &[&str] = &["nsfw_1", "nsfw_2", "nsfw_3"];

/// Input size, mean and standard deviation per model (FaceFusion's `create_static_model_set`).
fn model_settings(model: &str) -> (usize, [f64; 3], [f64; 3]) {
    match model {
        "nsfw_1" => (640, [0.0; 3], [1.0; 3]),
        "nsfw_2" => (384, [0.5; 3], [0.5; 3]),
        _ => (448, [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]),
    }
}

/// The three models' raw results: nsfw_1's highest class score, nsfw_2's and nsfw_3's output vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub nsfw_1: f32,
    pub nsfw_2: Vec<f32>,
    pub nsfw_3: Vec<f32>,
}

impl Scores {
    /// Each model's vote, with FaceFusion's thresholds.
    pub fn votes(&self) -> [bool; 3] {
        [vote_1(self.nsfw_1), vote_2(&self.nsfw_2), vote_3(&self.nsfw_3)]
    }

    /// NSFW when at least two of the three vote yes.
    pub fn is_nsfw(&self) -> bool {
        self.votes().iter().filter(|&&v| v).count() >= 2
    }
}

fn score_at(scores: &[f32], index: usize) -> f32 {
    scores.get(index).copied().unwrap_or(0.0)
}

fn vote_1(highest: f32) -> bool {
    highest > 0.2
}

fn vote_2(scores: &[f32]) -> bool {
    score_at(scores, 0) - score_at(scores, 1) > 0.25
}

fn vote_3(scores: &[f32]) -> bool {
    (score_at(scores, 2) + score_at(scores, 3)) - (score_at(scores, 0) + score_at(scores, 1)) > 10.5
}

/// FaceFusion's `fit_contain_frame`: scale by the smaller ratio (bilinear, sizes truncated), centre
/// on a black `size`² canvas.
pub fn fit_contain(frame: &Frame, size: usize) -> Frame {
    let (width, height) = (frame.width.max(1) as f64, frame.height.max(1) as f64);
    let scale = (size as f64 / height).min(size as f64 / width);
    let (new_width, new_height) = (((width * scale) as usize).min(size), ((height * scale) as usize).min(size));
    let resized = resize_linear(frame, new_width, new_height);
    let (start_x, start_y) = ((size - new_width) / 2, (size - new_height) / 2);
    let mut canvas = Frame::new(size, size, frame.channels);
    let channels = frame.channels;
    for y in 0..new_height {
        let target = &mut canvas.row_mut(start_y + y)[start_x * channels..(start_x + new_width) * channels];
        target.copy_from_slice(resized.row(y));
    }
    canvas
}

/// The model input: letterboxed, RGB / 255, normalised (numpy float64, then float32), NCHW.
fn prepare(frame: &Frame, model: &str) -> (Vec<f32>, usize) {
    let (size, mean, std) = model_settings(model);
    let canvas = fit_contain(frame, size);
    let plane = size * size;
    let mut tensor = vec![0.0f32; 3 * plane];
    for (i, px) in canvas.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            tensor[c * plane + i] = ((px[2 - c] as f64 / 255.0 - mean[c]) / std[c]) as f32;
        }
    }
    (tensor, size)
}

/// Runs the three models on a BGR frame and keeps every score (the parity tests compare them).
pub fn analyse(registry: &ModelRegistry, frame: &Frame) -> Result<Scores> {
    Ok(Scores {
        nsfw_1: highest_class_score(&run_model(registry, frame, MODELS[0])?)?,
        nsfw_2: run_model(registry, frame, MODELS[1])?.data,
        nsfw_3: run_model(registry, frame, MODELS[2])?.data,
    })
}

/// The gate's verdict, FaceFusion's two-of-three vote: the third model runs only when the first two
/// disagree, since otherwise it cannot change the outcome.
pub fn is_nsfw(registry: &ModelRegistry, frame: &Frame) -> Result<bool> {
    let first = vote_1(highest_class_score(&run_model(registry, frame, MODELS[0])?)?);
    let second = vote_2(&run_model(registry, frame, MODELS[1])?.data);
    if first == second {
        return Ok(first);
    }
    Ok(vote_3(&run_model(registry, frame, MODELS[2])?.data))
}

fn run_model(registry: &ModelRegistry, frame: &Frame, model: &str) -> Result<Output> {
    let (tensor, size) = prepare(frame, model);
    let outputs = registry.get(model)?.run(vec![Input::f32("input", &[1, 3, size, size], tensor)])?;
    outputs
        .into_iter()
        .next()
        .ok_or_else(|| PipelineError::ModelContract { name: model.to_string(), reason: "no output".into() })
}

/// nsfw_1's (1, 4 + classes, anchors) output: the highest score of any class row at any anchor.
fn highest_class_score(output: &Output) -> Result<f32> {
    let anchors = output.shape.last().copied().unwrap_or(0);
    if anchors == 0 || output.data.len() < 5 * anchors {
        return Err(PipelineError::ModelContract {
            name: "nsfw_1".into(),
            reason: format!("expected a (1, 4 + classes, anchors) output, got {:?}", output.shape),
        });
    }
    Ok(output.data[4 * anchors..].iter().copied().fold(f32::NEG_INFINITY, f32::max))
}

/// Fails with `ContentRejected` when the frame is NSFW.
pub fn check(registry: &ModelRegistry, frame: &Frame) -> Result<()> {
    if is_nsfw(registry, frame)? {
        tracing::info!("target rejected by the content analyser");
        return Err(PipelineError::ContentRejected);
    }
    Ok(())
}

/// A target's content (and trim range) as SHA-256: a verdict is reused only for the same bytes. A
/// fast non-cryptographic hash here would let a crafted target collide with one judged safe.
pub type ContentKey = [u8; 32];

/// The gate's verdicts by target: FaceFusion caches them per target path; here per target content
/// (and trim range), so a target judged once in this process is not judged again. Bounded: past
/// `capacity` the least recently used verdict is forgotten.
pub struct VerdictCache {
    /// key → NSFW.
    verdicts: Mutex<LruCache<ContentKey, bool>>,
}

impl VerdictCache {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self { verdicts: Mutex::new(LruCache::new(capacity)) }
    }

    /// The cached verdict for `key` (true: NSFW), if any.
    pub fn get(&self, key: &ContentKey) -> Option<bool> {
        self.verdicts.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied()
    }

    pub fn insert(&self, key: ContentKey, nsfw: bool) {
        self.verdicts.lock().unwrap_or_else(|p| p.into_inner()).put(key, nsfw);
    }

    /// Runs `judge` unless `key` has a verdict; caches what it decides (a rejection or a pass, not a
    /// failure or a cancellation).
    pub fn judged(&self, key: ContentKey, judge: impl FnOnce() -> Result<()>) -> Result<()> {
        match self.get(&key) {
            Some(true) => return Err(PipelineError::ContentRejected),
            Some(false) => return Ok(()),
            None => {}
        }
        match judge() {
            Ok(()) => {
                self.insert(key, false);
                Ok(())
            }
            Err(PipelineError::ContentRejected) => {
                self.insert(key, true);
                Err(PipelineError::ContentRejected)
            }
            Err(other) => Err(other),
        }
    }
}

/// A key for a target's content, with `extra` (a trim range) mixed in.
pub fn content_key(bytes: &[u8], extra: &[u64]) -> ContentKey {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    finish_key(hasher, bytes.len() as u64, extra)
}

/// [`content_key`] of a file, read in chunks (a video is never held in memory whole).
pub fn file_key(path: &std::path::Path, extra: &[u64]) -> Result<ContentKey> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut length = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(|e| PipelineError::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        length += read as u64;
    }
    Ok(finish_key(hasher, length, extra))
}

/// The extra values, their count and the content's length follow the content, so read from the end
/// the hashed bytes split one way only: content and extra values cannot trade bytes.
fn finish_key(mut hasher: Sha256, content_length: u64, extra: &[u64]) -> ContentKey {
    extra.iter().for_each(|value| hasher.update(value.to_le_bytes()));
    hasher.update((extra.len() as u64).to_le_bytes());
    hasher.update(content_length.to_le_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_cached_and_the_least_recently_used_goes_first() {
        let cache = VerdictCache::new(2);
        let [k1, k2, k3, k4] = [1u64, 2, 3, 4].map(|n| content_key(&n.to_le_bytes(), &[]));
        let mut runs = 0;
        let mut judge = |verdict: Result<()>| {
            runs += 1;
            verdict
        };
        assert!(cache.judged(k1, || judge(Ok(()))).is_ok());
        assert!(matches!(
            cache.judged(k2, || judge(Err(PipelineError::ContentRejected))),
            Err(PipelineError::ContentRejected)
        ));
        assert!(matches!(cache.judged(k2, || panic!("judged twice")), Err(PipelineError::ContentRejected)));
        assert!(cache.judged(k1, || panic!("judged twice")).is_ok());
        // A failure is not a verdict.
        assert!(cache.judged(k3, || Err(PipelineError::MissingInput("x".into()))).is_err());
        assert_eq!(cache.get(&k3), None);
        cache.insert(k4, false);
        assert_eq!(
            (cache.get(&k2), cache.get(&k1), cache.get(&k4)),
            (None, Some(false), Some(false)),
            "2 was used least recently"
        );
        assert_ne!(content_key(b"a", &[0, 1]), content_key(b"a", &[0, 2]));
        let mut longer = b"a".to_vec();
        longer.extend(0u64.to_le_bytes());
        assert_ne!(content_key(&longer, &[]), content_key(b"a", &[0]), "extra values are not content");
    }

    fn scores(nsfw_1: f32, nsfw_2: [f32; 2], nsfw_3: [f32; 4]) -> Scores {
        Scores { nsfw_1, nsfw_2: nsfw_2.to_vec(), nsfw_3: nsfw_3.to_vec() }
    }

    #[test]
    fn two_of_three_votes_reject() {
        let safe_1 = 0.03;
        let unsafe_1 = 0.5;
        let (safe_2, unsafe_2) = ([0.02, 0.98], [0.9, 0.1]);
        let (safe_3, unsafe_3) = ([1.5, 2.4, -2.3, -2.5], [-3.0, -3.0, 3.0, 2.0]);
        assert_eq!(scores(safe_1, safe_2, safe_3).votes(), [false, false, false]);
        assert!(!scores(unsafe_1, safe_2, safe_3).is_nsfw());
        assert!(!scores(safe_1, unsafe_2, safe_3).is_nsfw());
        assert!(!scores(safe_1, safe_2, unsafe_3).is_nsfw());
        assert!(scores(unsafe_1, unsafe_2, safe_3).is_nsfw());
        assert!(scores(unsafe_1, safe_2, unsafe_3).is_nsfw());
        assert!(scores(safe_1, unsafe_2, unsafe_3).is_nsfw());
        assert!(scores(unsafe_1, unsafe_2, unsafe_3).is_nsfw());
    }

    #[test]
    fn thresholds_are_strict() {
        // Exactly at the threshold is not a vote (FaceFusion compares with >).
        let at = scores(0.2, [0.75, 0.5], [0.0, 0.0, 5.25, 5.25]);
        assert_eq!(at.votes(), [false, false, false]);
        let above = scores(0.2001, [0.76, 0.5], [0.0, 0.0, 5.3, 5.25]);
        assert_eq!(above.votes(), [true, true, true]);
        // Short outputs count as no vote rather than panicking.
        assert_eq!(Scores { nsfw_1: 0.0, nsfw_2: vec![], nsfw_3: vec![1.0] }.votes(), [false, false, false]);
    }

    #[test]
    fn fit_contain_centres_the_scaled_frame() {
        let frame = Frame::filled(200, 100, 3, 200);
        let canvas = fit_contain(&frame, 64);
        // 200×100 → 64×32, rows 16..48.
        assert_eq!(canvas.pixel(10, 15), &[0, 0, 0]);
        assert_eq!(canvas.pixel(10, 16), &[200, 200, 200]);
        assert_eq!(canvas.pixel(10, 47), &[200, 200, 200]);
        assert_eq!(canvas.pixel(10, 48), &[0, 0, 0]);
    }
}
