//! The arcface recognizer (spec §4.5): an arcface_112_v2 crop at 112², RGB, x/127.5 − 1.

use crate::error::Result;
use crate::face::{normalize, Point};
use crate::geometry::{warp_face_by_landmark_5, WarpTemplate};
use crate::raster::Frame;
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

pub const MODEL: &str = "arcface_w600k_r50";

/// The raw embedding and its L2-normalised copy.
pub fn embed(registry: &ModelRegistry, frame: &Frame, landmark_5: &[Point; 5]) -> Result<(Vec<f32>, Vec<f32>)> {
    let (crop, _) = warp_face_by_landmark_5(frame, landmark_5, WarpTemplate::Arcface112V2, (112, 112));
    let tensor = planar_rgb(&crop, |v| v / 127.5 - 1.0);
    let outputs = registry.get(MODEL)?.run(vec![Input::f32("input", &[1, 3, 112, 112], tensor)])?;
    let embedding = outputs.into_iter().next().map(|o| o.data).unwrap_or_default();
    let embedding_norm = normalize(&embedding);
    Ok((embedding, embedding_norm))
}

/// NCHW float with channels swapped to RGB, each value mapped by `map` (in 0..=255 float).
pub fn planar_rgb(frame: &Frame, map: impl Fn(f32) -> f32) -> Vec<f32> {
    let plane = frame.width * frame.height;
    let mut tensor = vec![0.0f32; 3 * plane];
    for (i, px) in frame.data.chunks_exact(3).enumerate() {
        tensor[i] = map(px[2] as f32);
        tensor[plane + i] = map(px[1] as f32);
        tensor[2 * plane + i] = map(px[0] as f32);
    }
    tensor
}
