//! Frame processors, each as FaceFusion 3.5.3 runs it.

pub mod age_modifier;
pub mod background_remover;
pub mod deep_swapper;
pub mod expression_restorer;
pub mod face_debugger;
pub mod face_editor;
pub mod face_enhancer;
pub mod face_swapper;
pub mod frame_colorizer;
pub mod frame_enhancer;
pub mod lip_syncer;
pub mod live_portrait;

use crate::raster::Frame;

/// `cv2.addWeighted(a, alpha, b, beta, 0)` on 8-bit frames of the same shape, FaceFusion's
/// `blend_frame`. OpenCV narrows the weights to float and evaluates `a·α + (b·β + 0)` with fused
/// multiply-adds in its vector loop, then rounds half to even and saturates.
pub fn add_weighted(a: &Frame, alpha: f64, b: &Frame, beta: f64) -> Frame {
    let (alpha, beta) = (alpha as f32, beta as f32);
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            (x as f32).mul_add(alpha, (y as f32).mul_add(beta, 0.0)).round_ties_even().clamp(0.0, 255.0) as u8
        })
        .collect();
    Frame::from_vec(a.width, a.height, a.channels, data)
}
