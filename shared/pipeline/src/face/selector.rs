//! Face selection (spec §5): order, gender/race/age filters, and the one / many / reference modes.

use crate::face::{face_distance, BoundingBox, Face};
use crate::options::{FaceOrder, SelectorMode, SelectorOptions};

/// A face's place in `order`, ascending; only the detection decides it (box and score).
pub fn order_key(order: FaceOrder, b: &BoundingBox, detector_score: f32) -> f64 {
    match order {
        FaceOrder::LeftRight => b.x1,
        FaceOrder::RightLeft => -b.x1,
        FaceOrder::TopBottom => b.y1,
        FaceOrder::BottomTop => -b.y1,
        FaceOrder::SmallLarge => b.area(),
        FaceOrder::LargeSmall => -b.area(),
        FaceOrder::BestWorst => -(detector_score as f64),
        FaceOrder::WorstBest => detector_score as f64,
    }
}

/// Stable sort by the order option, then the gender, race and age filters.
pub fn sort_and_filter(mut faces: Vec<Face>, options: &SelectorOptions) -> Vec<Face> {
    let key = |face: &Face| order_key(options.order, &face.bounding_box, face.detector_score);
    faces.sort_by(|a, b| key(a).total_cmp(&key(b)));
    faces.retain(|face| {
        options.gender.is_none_or(|gender| face.gender == gender)
            && options.race.is_none_or(|race| face.race == race)
            && age_matches(face, options)
    });
    faces
}

/// Keeps faces whose age range meets [start, end). FaceFusion needs both bounds; a lone bound is
/// completed with 0 or 100 here instead of failing.
fn age_matches(face: &Face, options: &SelectorOptions) -> bool {
    if options.age_start.is_none() && options.age_end.is_none() {
        return true;
    }
    let start = options.age_start.unwrap_or(0);
    let end = options.age_end.unwrap_or(100);
    face.age.0.max(start) < face.age.1.min(end)
}

/// The target faces a face processor works on.
///
/// `reference_faces` are the faces of the reference frame (for an image target, the target itself).
pub fn select_faces(target_faces: &[Face], reference_faces: &[Face], options: &SelectorOptions) -> Vec<Face> {
    match options.mode {
        SelectorMode::Many => sort_and_filter(target_faces.to_vec(), options),
        SelectorMode::One => sort_and_filter(target_faces.to_vec(), options).into_iter().take(1).collect(),
        SelectorMode::Reference => {
            let references = sort_and_filter(reference_faces.to_vec(), options);
            let Some(reference) =
                references.get(options.reference_face_position.min(references.len().saturating_sub(1)))
            else {
                return Vec::new();
            };
            target_faces
                .iter()
                .filter(|face| face_distance(face, reference) < options.reference_face_distance)
                .cloned()
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::test_face as face;
    use crate::options::ProcessOptions;

    #[test]
    fn orders_and_modes() {
        let faces = vec![face(0.0, 10.0, 0.9, [1.0, 0.0], (20, 30)), face(50.0, 30.0, 0.6, [0.0, 1.0], (30, 40))];
        let mut options = ProcessOptions::default().selector;
        options.mode = SelectorMode::One;
        assert_eq!(select_faces(&faces, &faces, &options)[0].bounding_box.x1, 50.0);
        options.order = FaceOrder::BestWorst;
        assert_eq!(select_faces(&faces, &faces, &options)[0].bounding_box.x1, 0.0);
        options.mode = SelectorMode::Many;
        options.age_start = Some(35);
        options.age_end = Some(60);
        assert_eq!(select_faces(&faces, &faces, &options).len(), 1);
    }

    #[test]
    fn reference_mode_picks_faces_near_the_reference_position() {
        let faces = vec![face(0.0, 10.0, 0.9, [1.0, 0.0], (20, 30)), face(50.0, 30.0, 0.6, [0.0, 1.0], (30, 40))];
        let mut options = ProcessOptions::default().selector;
        options.reference_face_position = 1;
        let selected = select_faces(&faces, &faces, &options);
        assert_eq!(selected.len(), 1);
        assert_eq!(selected[0].bounding_box.x1, 0.0);
        options.reference_face_position = 7;
        assert_eq!(select_faces(&faces, &faces, &options)[0].bounding_box.x1, 0.0);
    }
}
