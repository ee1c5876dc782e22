//! face_debugger (spec §8.11): draws what face analysis found — boxes, landmarks, the face mask —
//! in FaceFusion's colours (BGR) and thicknesses. No model of its own.
//!
//! Every shape goes through `imgproc::draw`, which rasterises as OpenCV 4.13 does: the mask outline
//! is `cv2.findContours(.., RETR_LIST, CHAIN_APPROX_NONE)` (`imgproc::contour`) drawn with
//! `cv2.drawContours(.., 2)`, boxes are `cv2.rectangle`/`cv2.line`, landmarks filled `cv2.circle`s.
//! So the drawing is FaceFusion's pixel for pixel whenever the thresholded mask is (the mask itself
//! follows FaceFusion's steps; model-made masks also depend on the models' outputs).

use crate::error::Result;
use crate::face::{Face, Point};
use crate::geometry::{invert_affine, transform_points, warp_face_by_landmark_5, WarpTemplate};
use crate::imgproc::contour::find_contours;
use crate::imgproc::draw;
use crate::imgproc::warp::{warp_affine, Border};
use crate::mask::{combine_masks_min, create_area_mask, create_box_mask, create_occlusion_mask, create_region_mask};
use crate::options::{DebuggerItem, MaskOptions, MaskType};
use crate::raster::{Frame, Mask, Raster};
use crate::sessions::ModelRegistry;

pub type Bgr = [u8; 3];

pub const BOX_COLOR: Bgr = [0, 0, 255];
pub const BOX_UP_COLOR: Bgr = [100, 100, 255];
pub const LANDMARK_5_COLOR: Bgr = [0, 0, 255];
pub const REFINED_COLOR: Bgr = [0, 255, 0];
/// FaceFusion's colour for points that only come from the detector (the landmarker was not used).
pub const UNREFINED_COLOR: Bgr = [255, 255, 0];

/// Draws the chosen items for one face (already scaled to `frame`), in FaceFusion's order.
pub fn debug_face(
    registry: &ModelRegistry,
    frame: &Frame,
    face: &Face,
    items: &[DebuggerItem],
    masks: &MaskOptions,
) -> Result<Frame> {
    let mut frame = frame.clone();
    if items.contains(&DebuggerItem::BoundingBox) {
        draw_bounding_box(&mut frame, face);
    }
    if items.contains(&DebuggerItem::FaceMask) {
        draw_face_mask(registry, &mut frame, face, masks)?;
    }
    let unrefined_5 = face.landmark_5 == face.landmark_5_68;
    if items.contains(&DebuggerItem::Landmark5) {
        draw_points(&mut frame, &face.landmark_5, LANDMARK_5_COLOR);
    }
    if items.contains(&DebuggerItem::Landmark5From68) {
        draw_points(&mut frame, &face.landmark_5_68, if unrefined_5 { UNREFINED_COLOR } else { REFINED_COLOR });
    }
    if items.contains(&DebuggerItem::Landmark68) {
        let unrefined = face.landmark_68 == face.landmark_68_5;
        draw_points(&mut frame, &face.landmark_68, if unrefined { UNREFINED_COLOR } else { REFINED_COLOR });
    }
    if items.contains(&DebuggerItem::Landmark68From5) {
        draw_points(&mut frame, &face.landmark_68_5, UNREFINED_COLOR);
    }
    Ok(frame)
}

/// Red rectangle of thickness 2 plus a thickness-3 line on the side that is up for the face angle.
fn draw_bounding_box(frame: &mut Frame, face: &Face) {
    let b = face.bounding_box;
    // numpy's astype(int32) truncates toward zero.
    let [x1, y1, x2, y2] = [b.x1, b.y1, b.x2, b.y2].map(|v| v as i32);
    draw::rectangle(frame, [x1, y1], [x2, y2], &BOX_COLOR, 2);
    let up = match face.angle {
        0 => Some(([x1, y1], [x2, y1])),
        180 => Some(([x1, y2], [x2, y2])),
        90 => Some(([x2, y1], [x2, y2])),
        270 => Some(([x1, y1], [x1, y2])),
        _ => None,
    };
    if let Some((a, b)) = up {
        draw::line(frame, a, b, &BOX_UP_COLOR, 3);
    }
}

/// Filled radius-3 discs at the truncated points; all-zero landmark sets are skipped, as FaceFusion does.
fn draw_points(frame: &mut Frame, points: &[Point], color: Bgr) {
    if points.iter().all(|p| p[0] == 0.0 && p[1] == 0.0) {
        return;
    }
    for p in points {
        draw::filled_circle(frame, [p[0] as i32, p[1] as i32], 3, &color);
    }
}

/// The combined mask on a 512² arcface_128 crop (box without blur), warped back to the frame,
/// thresholded at 100 and outlined 2 px wide: green, or cyan when the 5 points are unrefined.
fn draw_face_mask(registry: &ModelRegistry, frame: &mut Frame, face: &Face, masks: &MaskOptions) -> Result<()> {
    let color = if face.landmark_5 == face.landmark_5_68 { UNREFINED_COLOR } else { REFINED_COLOR };
    if let Some(inside) = frame_mask(registry, frame, face, masks)? {
        draw::draw_contours(frame, &find_contours(&inside), &color, 2);
    }
    Ok(())
}

/// FaceFusion's `inverse_vision_frame`: the crop masks' minimum as u8 (×255, truncated), warped
/// to the frame with `cv2.warpAffine`'s defaults (bilinear, black border) by the inverted crop
/// matrix, then `cv2.threshold(.., 100, 255, THRESH_BINARY)`. `None` when no mask type is chosen.
fn frame_mask(registry: &ModelRegistry, frame: &Frame, face: &Face, masks: &MaskOptions) -> Result<Option<Raster<u8>>> {
    let (crop, affine) = warp_face_by_landmark_5(frame, &face.landmark_5_68, WarpTemplate::Arcface128, (512, 512));
    let mut crop_masks: Vec<Mask> = Vec::new();
    if masks.types.contains(&MaskType::Box) {
        crop_masks.push(create_box_mask(512, 512, 0.0, masks.padding.map(|p| p as f64)));
    }
    if masks.types.contains(&MaskType::Occlusion) {
        crop_masks.push(create_occlusion_mask(registry, &crop, &masks.occluder_model)?);
    }
    if masks.types.contains(&MaskType::Area) {
        let landmark_68 = transform_points(&face.landmark_68, &affine);
        crop_masks.push(create_area_mask(512, 512, &landmark_68, &masks.areas));
    }
    if masks.types.contains(&MaskType::Region) {
        let float_crop = Raster::from_vec(512, 512, 3, crop.data.iter().map(|&v| v as f32).collect());
        crop_masks.push(create_region_mask(registry, &float_crop, &masks.parser_model, &masks.regions)?);
    }
    if crop_masks.is_empty() {
        return Ok(None);
    }
    let mask = combine_masks_min(&crop_masks.iter().collect::<Vec<_>>());
    // `.clip(0, 1) * 255` then astype(uint8): the float cast saturates and truncates the same way.
    let mask_u8 = Raster::from_vec(512, 512, 1, mask.data.iter().map(|&v| (v * 255.0) as u8).collect());
    // FaceFusion passes the inverted matrix to warpAffine, which inverts it again internally;
    // warp_affine does the same second inversion, so both sample the same source positions.
    let inverse = invert_affine(&affine);
    let mut warped = warp_affine(&mask_u8, &inverse, frame.width, frame.height, Border::Constant(0));
    warped.data.iter_mut().for_each(|v| *v = if *v > 100 { 255 } else { 0 });
    Ok(Some(warped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::BoundingBox;
    use crate::options::{Gender, Race};

    fn face() -> Face {
        let landmark_5 = [[40.0, 40.0], [60.0, 40.0], [50.0, 50.0], [42.0, 62.0], [58.0, 62.0]];
        let mut landmark_5_68 = landmark_5;
        landmark_5_68[0] = [41.0, 39.0];
        let landmark_68: Vec<Point> =
            (0..68).map(|i| [30.0 + (i % 17) as f64 * 2.5, 30.0 + (i / 17) as f64 * 10.0]).collect();
        Face {
            bounding_box: BoundingBox { x1: 20.5, y1: 25.9, x2: 80.2, y2: 90.0 },
            detector_score: 0.9,
            landmarker_score: 0.9,
            landmark_5,
            landmark_5_68,
            landmark_68: landmark_68.clone(),
            landmark_68_5: landmark_68.iter().map(|p| [p[0] + 1.0, p[1]]).collect(),
            angle: 0,
            embedding: vec![0.0; 4],
            embedding_norm: vec![0.0; 4],
            gender: Gender::Female,
            age: (20, 30),
            race: Race::White,
        }
    }

    fn color_at(frame: &Frame, x: usize, y: usize) -> Bgr {
        let p = frame.pixel(x, y);
        [p[0], p[1], p[2]]
    }

    #[test]
    fn bounding_box_is_red_with_the_up_side_highlighted() {
        let mut frame = Frame::filled(100, 100, 3, 7);
        draw_bounding_box(&mut frame, &face());
        // Truncated box 20,25 – 80,90: the left and bottom sides red, the top (angle 0) light red.
        assert_eq!(color_at(&frame, 20, 60), BOX_COLOR);
        assert_eq!(color_at(&frame, 80, 60), BOX_COLOR);
        assert_eq!(color_at(&frame, 50, 90), BOX_COLOR);
        assert_eq!(color_at(&frame, 50, 25), BOX_UP_COLOR);
        assert_eq!(color_at(&frame, 50, 60), [7, 7, 7]);
        let mut rotated = face();
        rotated.angle = 90;
        let mut frame = Frame::filled(100, 100, 3, 7);
        draw_bounding_box(&mut frame, &rotated);
        assert_eq!(color_at(&frame, 80, 60), BOX_UP_COLOR);
        assert_eq!(color_at(&frame, 50, 25), BOX_COLOR);
    }

    #[test]
    fn landmarks_are_discs_in_their_colours() {
        let face = face();
        let mut frame = Frame::filled(100, 100, 3, 7);
        draw_points(&mut frame, &face.landmark_5, LANDMARK_5_COLOR);
        assert_eq!(color_at(&frame, 50, 50), LANDMARK_5_COLOR);
        assert_eq!(color_at(&frame, 53, 50), LANDMARK_5_COLOR);
        assert_eq!(color_at(&frame, 50, 47), LANDMARK_5_COLOR);
        assert_eq!(color_at(&frame, 53, 53), [7, 7, 7]);
        assert_eq!(color_at(&frame, 54, 50), [7, 7, 7]);
        let mut frame = Frame::filled(100, 100, 3, 7);
        draw_points(&mut frame, &face.landmark_68_5, UNREFINED_COLOR);
        assert_eq!(color_at(&frame, 31, 30), UNREFINED_COLOR);
        // An all-zero set (no landmarks) draws nothing.
        let mut frame = Frame::filled(10, 10, 3, 7);
        draw_points(&mut frame, &[[0.0, 0.0]; 5], LANDMARK_5_COLOR);
        assert!(frame.data.iter().all(|&v| v == 7));
    }

    #[test]
    fn face_mask_outlines_the_box_in_green_or_cyan() {
        // A box-only mask needs no model: a registry that can load nothing proves it.
        let registry = no_models();
        let masks = crate::options::ProcessOptions::default().masks;
        let face = face();
        let frame = Frame::filled(100, 100, 3, 7);
        let drawn = debug_face(&registry, &frame, &face, &[DebuggerItem::FaceMask], &masks).unwrap();
        let outline: Vec<(usize, usize)> = (0..100)
            .flat_map(|y| (0..100).map(move |x| (x, y)))
            .filter(|&(x, y)| color_at(&drawn, x, y) == REFINED_COLOR)
            .collect();
        assert!(outline.len() > 50, "an outline of {} pixels", outline.len());
        // The outline surrounds the eyes and mouth and leaves the inside untouched.
        let (xs, ys): (Vec<usize>, Vec<usize>) = outline.iter().copied().unzip();
        assert!(*xs.iter().min().unwrap() < 40 && *xs.iter().max().unwrap() > 60);
        assert!(*ys.iter().min().unwrap() < 40 && *ys.iter().max().unwrap() > 62);
        assert_eq!(color_at(&drawn, 50, 50), [7, 7, 7]);
        // Unrefined points (5 = 5/68) switch to cyan.
        let mut unrefined = face.clone();
        unrefined.landmark_5_68 = unrefined.landmark_5;
        let drawn = debug_face(&registry, &frame, &unrefined, &[DebuggerItem::FaceMask], &masks).unwrap();
        assert!(drawn.data.chunks_exact(3).any(|px| px == UNREFINED_COLOR));
        assert!(!drawn.data.chunks_exact(3).any(|px| px == REFINED_COLOR));
    }

    /// FaceFusion's face (landmarks from its own detection of parity/inputs/obama.png) stored in the
    /// contour fixtures, with the rest of the face irrelevant to a box mask.
    fn obama() -> (Face, usize, usize) {
        let case = &crate::imgproc::contour::fixtures::json("contours.json")["obama"]["face"];
        let points = |key: &str| -> [Point; 5] {
            let list = case[key].as_array().unwrap();
            std::array::from_fn(|i| [list[i][0].as_f64().unwrap(), list[i][1].as_f64().unwrap()])
        };
        let size = |key: &str| case[key].as_u64().unwrap() as usize;
        let obama = Face { landmark_5: points("landmark_5"), landmark_5_68: points("landmark_5_68"), ..face() };
        (obama, size("frame_width"), size("frame_height"))
    }

    fn no_models() -> ModelRegistry {
        ModelRegistry::new(
            std::sync::Arc::new(|name: &str| Err(crate::error::PipelineError::UnknownModel { name: name.into() })),
            1,
            1,
        )
    }

    /// The whole face-mask item against FaceFusion's path run with OpenCV 4.13 (the fixtures'
    /// generate.py): the thresholded frame mask, then the drawn contour, pixel for pixel.
    #[test]
    fn face_mask_contour_matches_facefusion_on_obama() {
        use crate::imgproc::contour::fixtures;
        let (face, width, height) = obama();
        let masks = crate::options::ProcessOptions::default().masks;
        let frame = Frame::new(width, height, 3);
        let inside = frame_mask(&no_models(), &frame, &face, &masks).unwrap().unwrap();
        assert_eq!(fixtures::mismatches(&inside, &fixtures::gray("obama.png")), 0, "thresholded mask");
        let drawn = debug_face(&no_models(), &frame, &face, &[DebuggerItem::FaceMask], &masks).unwrap();
        let green = Raster::from_vec(width, height, 1, drawn.data.chunks_exact(3).map(|px| px[1]).collect());
        assert_eq!(fixtures::mismatches(&green, &fixtures::gray("obama_drawn.png")), 0, "drawn outline");
        assert!(drawn.data.chunks_exact(3).all(|px| px == [0, 0, 0] || px == REFINED_COLOR));
    }
}
