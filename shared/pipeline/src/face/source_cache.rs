//! The faces chosen in source images, remembered across runs: a server that receives the same source
//! image again with the same analysis options skips its detection, landmarks, embedding and
//! classification (about a second per image on CPU).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::face::Face;
use crate::options::ProcessOptions;
use crate::raster::Frame;

/// What decides a source image's chosen face: its pixels and the options that shape the analysis
/// and the choice. SHA-256, not a fast hash: one client's image must never be taken for another's
/// (a collision would swap in a stranger's identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceKey([u8; 32]);

impl SourceKey {
    pub fn new(frame: &Frame, options: &ProcessOptions) -> Self {
        let selector = &options.selector;
        let shaping = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            options.detector,
            options.landmarker,
            selector.order,
            selector.gender,
            selector.race,
            selector.age_start,
            selector.age_end
        );
        let mut hasher = Sha256::new();
        for dimension in [frame.width, frame.height, frame.channels] {
            hasher.update((dimension as u64).to_le_bytes());
        }
        hasher.update(&frame.data);
        hasher.update(shaping.as_bytes());
        Self(hasher.finalize().into())
    }
}

/// Chosen source faces by [`SourceKey`], least recently used forgotten first. An entry is one face
/// record (landmarks and a 512-float embedding, a few KB), so the count bounds the memory.
pub struct SourceFaceCache {
    entries: Mutex<LruCache<SourceKey, Option<Face>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl SourceFaceCache {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self { entries: Mutex::new(LruCache::new(capacity)), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    /// The face chosen in `frame` (`None`: it has none), from the cache or from `analyse`, whose
    /// answer is remembered unless it failed.
    pub fn chosen_face(
        &self,
        frame: &Frame,
        options: &ProcessOptions,
        analyse: impl FnOnce() -> Result<Option<Face>>,
    ) -> Result<Option<Face>> {
        let key = SourceKey::new(frame, options);
        if let Some(face) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(face.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let face = analyse()?;
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).put(key, face.clone());
        Ok(face)
    }

    /// (hits, misses) since the cache was made.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: u8) -> Frame {
        Frame { width: 2, height: 2, channels: 3, data: vec![value; 12] }
    }

    fn options(pairs: &[(&str, &str)]) -> ProcessOptions {
        let pairs: Vec<(String, Vec<String>)> =
            pairs.iter().map(|(name, value)| (name.to_string(), vec![value.to_string()])).collect();
        ProcessOptions::from_pairs(&pairs).unwrap()
    }

    #[test]
    fn pixels_and_shaping_options_make_the_key_and_nothing_else() {
        let base = options(&[]);
        assert_eq!(
            SourceKey::new(&frame(1), &base),
            SourceKey::new(&frame(1), &options(&[("face_swapper_weight", "0.8")]))
        );
        assert_ne!(SourceKey::new(&frame(1), &base), SourceKey::new(&frame(2), &base));
        for (name, value) in
            [("face_detector_score", "0.7"), ("face_selector_order", "left-right"), ("face_selector_gender", "female")]
        {
            assert_ne!(
                SourceKey::new(&frame(1), &base),
                SourceKey::new(&frame(1), &options(&[(name, value)])),
                "{name}"
            );
        }
        let wide = Frame { width: 4, height: 1, channels: 3, data: vec![1; 12] };
        assert_ne!(SourceKey::new(&frame(1), &base), SourceKey::new(&wide, &base), "same bytes, other shape");
    }

    #[test]
    fn an_analysis_runs_once_per_key_and_failures_are_not_remembered() {
        let cache = SourceFaceCache::new(1);
        let base = options(&[]);
        let failed = cache.chosen_face(&frame(1), &base, || Err(crate::error::PipelineError::Runtime("down".into())));
        assert!(failed.is_err());
        assert!(cache.chosen_face(&frame(1), &base, || Ok(None)).unwrap().is_none());
        assert!(cache.chosen_face(&frame(1), &base, || panic!("cached")).unwrap().is_none());
        assert_eq!(cache.stats(), (1, 2));
        // Capacity one: another image pushes the first out.
        cache.chosen_face(&frame(2), &base, || Ok(None)).unwrap();
        let mut analysed = false;
        cache
            .chosen_face(&frame(1), &base, || {
                analysed = true;
                Ok(None)
            })
            .unwrap();
        assert!(analysed);
    }
}
