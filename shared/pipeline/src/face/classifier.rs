//! The fairface classifier (spec §4.5): gender, age bucket and race from an arcface_112_v2 crop at 224².

use crate::error::Result;
use crate::face::recognizer::planar_rgb;
use crate::face::{Gender, Point, Race};
use crate::geometry::{warp_face_by_landmark_5, WarpTemplate};
use crate::raster::Frame;
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

pub const MODEL: &str = "fairface";
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

pub struct Classification {
    pub gender: Gender,
    pub age: (u32, u32),
    pub race: Race,
}

pub fn classify(registry: &ModelRegistry, frame: &Frame, landmark_5: &[Point; 5]) -> Result<Classification> {
    let (crop, _) = warp_face_by_landmark_5(frame, landmark_5, WarpTemplate::Arcface112V2, (224, 224));
    let mut tensor = planar_rgb(&crop, |v| v / 255.0);
    let plane = 224 * 224;
    for (c, channel) in tensor.chunks_exact_mut(plane).enumerate() {
        channel.iter_mut().for_each(|v| *v = (*v - MEAN[c]) / STD[c]);
    }
    let outputs = registry.get(MODEL)?.run(vec![Input::f32("input", &[1, 3, 224, 224], tensor)])?;
    let id = |index: usize| outputs.get(index).and_then(|o| o.data.first()).map(|v| *v as i64).unwrap_or(0);
    Ok(Classification { race: race_from_id(id(0)), gender: gender_from_id(id(1)), age: age_from_id(id(2)) })
}

fn gender_from_id(id: i64) -> Gender {
    if id == 1 {
        Gender::Female
    } else {
        Gender::Male
    }
}

fn age_from_id(id: i64) -> (u32, u32) {
    match id {
        0 => (0, 3),
        1 => (3, 10),
        2 => (10, 20),
        3 => (20, 30),
        4 => (30, 40),
        5 => (40, 50),
        6 => (50, 60),
        7 => (60, 70),
        _ => (70, 100),
    }
}

fn race_from_id(id: i64) -> Race {
    match id {
        1 => Race::Black,
        2 => Race::Latino,
        3 | 4 => Race::Asian,
        5 => Race::Indian,
        6 => Race::Arabic,
        _ => Race::White,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_as_facefusion() {
        assert_eq!(gender_from_id(1), Gender::Female);
        assert_eq!(gender_from_id(0), Gender::Male);
        assert_eq!(age_from_id(4), (30, 40));
        assert_eq!(age_from_id(9), (70, 100));
        assert_eq!(race_from_id(4), Race::Asian);
        assert_eq!(race_from_id(0), Race::White);
    }
}
