//! face_debugger (spec §8.11): draws what face analysis found — boxes, landmarks, the face mask —
//! in FaceFusion's colours (BGR) and thicknesses. No model of its own.
//!
//! The shapes are rasterised here rather than by OpenCV: filled discs for `cv2.circle(.., -1)`,
//! capsules (segments with round ends) for thick `cv2.line`/`cv2.rectangle`, and the boundary of
//! the thresholded mask for `cv2.findContours` + `drawContours`. Edge pixels can differ from
//! OpenCV's by one; the debugger is a visual aid and has no golden output.

use crate::error::Result;
use crate::face::{Face, Point};
use crate::geometry::{invert_affine, transform_points, warp_face_by_landmark_5, WarpTemplate};
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
    let [x1, y1, x2, y2] = [b.x1, b.y1, b.x2, b.y2].map(|v| v.trunc());
    let corners = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
    for i in 0..4 {
        draw_line(frame, corners[i], corners[(i + 1) % 4], 2, BOX_COLOR);
    }
    let up = match face.angle {
        0 => Some(([x1, y1], [x2, y1])),
        180 => Some(([x1, y2], [x2, y2])),
        90 => Some(([x2, y1], [x2, y2])),
        270 => Some(([x1, y1], [x1, y2])),
        _ => None,
    };
    if let Some((a, b)) = up {
        draw_line(frame, a, b, 3, BOX_UP_COLOR);
    }
}

/// Filled radius-3 discs at the truncated points; all-zero landmark sets are skipped, as FaceFusion does.
fn draw_points(frame: &mut Frame, points: &[Point], color: Bgr) {
    if points.iter().all(|p| p[0] == 0.0 && p[1] == 0.0) {
        return;
    }
    for p in points {
        fill_disc(frame, [p[0].trunc(), p[1].trunc()], 3.0, color);
    }
}

/// The combined mask on a 512² arcface_128 crop (box without blur), warped back to the frame,
/// thresholded at 100 and outlined 2 px wide: green, or cyan when the 5 points are unrefined.
fn draw_face_mask(registry: &ModelRegistry, frame: &mut Frame, face: &Face, masks: &MaskOptions) -> Result<()> {
    let (crop, affine) = warp_face_by_landmark_5(frame, &face.landmark_5_68, WarpTemplate::Arcface128, (512, 512));
    let color = if face.landmark_5 == face.landmark_5_68 { UNREFINED_COLOR } else { REFINED_COLOR };
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
        return Ok(());
    }
    let mask = combine_masks_min(&crop_masks.iter().collect::<Vec<_>>());
    let mask_u8 = Raster::from_vec(512, 512, 1, mask.data.iter().map(|&v| (v * 255.0) as u8).collect());
    let inverse = invert_affine(&affine);
    let warped = warp_affine(&mask_u8, &inverse, frame.width, frame.height, Border::Constant(0));
    let inside = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && (x as usize) < warped.width
            && (y as usize) < warped.height
            && warped.data[y as usize * warped.width + x as usize] > 100
    };
    // Contour pixels: inside pixels with a 4-neighbour outside (or at the frame edge, where
    // findContours also traces). Thickness 2 paints each one and its right/lower neighbour.
    let mut outline = Vec::new();
    for y in 0..warped.height as i64 {
        for x in 0..warped.width as i64 {
            if inside(x, y) && [(1, 0), (-1, 0), (0, 1), (0, -1)].iter().any(|(dx, dy)| !inside(x + dx, y + dy)) {
                outline.push((x, y));
            }
        }
    }
    for (x, y) in outline {
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            set_pixel(frame, x + dx, y + dy, color);
        }
    }
    Ok(())
}

fn set_pixel(frame: &mut Frame, x: i64, y: i64, color: Bgr) {
    if x < 0 || y < 0 || x as usize >= frame.width || y as usize >= frame.height {
        return;
    }
    let i = (y as usize * frame.width + x as usize) * frame.channels;
    frame.data[i..i + 3].copy_from_slice(&color);
}

/// Pixels whose centre lies within `radius` of `centre` (a filled `cv2.circle`).
fn fill_disc(frame: &mut Frame, centre: Point, radius: f64, color: Bgr) {
    let reach = radius.ceil() as i64;
    let (cx, cy) = (centre[0] as i64, centre[1] as i64);
    for dy in -reach..=reach {
        for dx in -reach..=reach {
            if ((dx * dx + dy * dy) as f64) <= radius * radius {
                set_pixel(frame, cx + dx, cy + dy, color);
            }
        }
    }
}

/// A `thickness`-wide segment with round ends, as OpenCV draws thick lines: every pixel whose
/// centre is within thickness / 2 of the segment.
fn draw_line(frame: &mut Frame, a: Point, b: Point, thickness: u32, color: Bgr) {
    let half = thickness as f64 / 2.0;
    let (x_min, x_max) = ((a[0].min(b[0]) - half).floor() as i64, (a[0].max(b[0]) + half).ceil() as i64);
    let (y_min, y_max) = ((a[1].min(b[1]) - half).floor() as i64, (a[1].max(b[1]) + half).ceil() as i64);
    let (x_min, x_max) = (x_min.max(0), x_max.min(frame.width as i64 - 1));
    let (y_min, y_max) = (y_min.max(0), y_max.min(frame.height as i64 - 1));
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let length = dx * dx + dy * dy;
    for y in y_min..=y_max {
        for x in x_min..=x_max {
            let (px, py) = (x as f64 - a[0], y as f64 - a[1]);
            let t = if length > 0.0 { ((px * dx + py * dy) / length).clamp(0.0, 1.0) } else { 0.0 };
            let (ex, ey) = (px - t * dx, py - t * dy);
            if ex * ex + ey * ey <= half * half {
                set_pixel(frame, x, y, color);
            }
        }
    }
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
        let registry = ModelRegistry::new(
            std::sync::Arc::new(|name: &str| Err(crate::error::PipelineError::UnknownModel { name: name.into() })),
            1,
            1,
        );
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

    #[test]
    fn thick_lines_are_capsules() {
        let mut frame = Frame::filled(20, 20, 3, 0);
        draw_line(&mut frame, [2.0, 10.0], [17.0, 10.0], 3, [1, 2, 3]);
        assert_eq!(color_at(&frame, 10, 9), [1, 2, 3]);
        assert_eq!(color_at(&frame, 10, 11), [1, 2, 3]);
        assert_eq!(color_at(&frame, 10, 12), [0, 0, 0]);
        assert_eq!(color_at(&frame, 1, 10), [1, 2, 3]);
        assert_eq!(color_at(&frame, 0, 10), [0, 0, 0]);
    }
}
