//! The answer of `POST /api/v1/faces` (and `ff faces --json`): a face survey of the pipeline
//! (`ff_pipeline::face_survey`) as JSON, with ids a client can name back: a face's `frame` and
//! `position` pick it as `reference_frame_number`/`reference_face_position` do, and a person's
//! `embedding` identifies them across frames.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ff_pipeline::face_survey::{Person, Survey, SurveyedFace};
use serde::Serialize;

/// What was surveyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaClass {
    Image,
    Video,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacesAnswer {
    pub media: MediaClass,
    pub width: usize,
    pub height: usize,
    /// The frames analysed: `[0]` for an image, up to 48 spread over a video's trim range.
    pub frames: Vec<u64>,
    pub faces: Vec<FaceEntry>,
    /// Faces grouped by identity (ArcFace distance below `reference_face_distance`), never two of
    /// one frame in one person.
    pub people: Vec<PersonEntry>,
    /// More than 256 faces were found; the later ones are not listed.
    pub truncated: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FaceEntry {
    /// Its index in `faces`.
    pub id: usize,
    pub frame: u64,
    /// Its place in its frame in the selector's order (`face_selector_order`): the
    /// `reference_face_position` that picks it.
    pub position: usize,
    /// The id of the person it belongs to.
    pub person: usize,
    /// `[x1, y1, x2, y2]` in pixels.
    #[serde(rename = "box")]
    pub bounding_box: [f64; 4],
    /// Eyes, nose, mouth corners: the points the face is aligned by.
    pub landmarks_5: [[f64; 2]; 5],
    /// The detector's score.
    pub score: f32,
    pub landmarker_score: f32,
    /// `[start, end)` in years.
    pub age: [u32; 2],
    /// `female` or `male`.
    pub gender: &'static str,
    /// `white`, `black`, `latino`, `asian`, `indian` or `arabic`.
    pub race: &'static str,
    /// Base64 JPEG of the face and some margin, at most 128 pixels a side.
    pub crop: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PersonEntry {
    pub id: usize,
    /// Ids of their faces, in frame order.
    pub faces: Vec<usize>,
    /// The frames they appear in, ascending.
    pub frames: Vec<u64>,
    /// The face with the largest box.
    pub representative_face: usize,
    /// That face's crop (base64 JPEG).
    pub crop: String,
    /// The normalised mean of their faces' 512 ArcFace embeddings: names this person in a
    /// face mapping.
    pub embedding: Vec<f32>,
}

impl FacesAnswer {
    pub fn from_survey(media: MediaClass, survey: &Survey) -> Self {
        let person_of = survey.person_of_faces();
        Self {
            media,
            width: survey.width,
            height: survey.height,
            frames: survey.frames.clone(),
            faces: survey.faces.iter().enumerate().map(|(id, face)| face_entry(id, face, person_of[id])).collect(),
            people: survey.people.iter().enumerate().map(|(id, person)| person_entry(id, person, survey)).collect(),
            truncated: survey.truncated,
        }
    }
}

fn face_entry(id: usize, surveyed: &SurveyedFace, person: usize) -> FaceEntry {
    let face = &surveyed.face;
    let b = &face.bounding_box;
    FaceEntry {
        id,
        frame: surveyed.frame,
        position: surveyed.position,
        person,
        bounding_box: [b.x1, b.y1, b.x2, b.y2].map(two_decimals),
        landmarks_5: face.landmark_5_68.map(|[x, y]| [two_decimals(x), two_decimals(y)]),
        score: face.detector_score,
        landmarker_score: face.landmarker_score,
        age: [face.age.0, face.age.1],
        gender: face.gender.name(),
        race: face.race.name(),
        crop: STANDARD.encode(&surveyed.crop),
    }
}

fn person_entry(id: usize, person: &Person, survey: &Survey) -> PersonEntry {
    let frames = person.faces.iter().map(|&face| survey.faces[face].frame).collect();
    PersonEntry {
        id,
        faces: person.faces.clone(),
        frames,
        representative_face: person.representative,
        crop: STANDARD.encode(&survey.faces[person.representative].crop),
        embedding: mean_embedding(person.faces.iter().map(|&face| survey.faces[face].face.embedding_norm.as_slice())),
    }
}

/// The unit-length mean of unit-length embeddings.
fn mean_embedding<'a>(embeddings: impl Iterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut sum: Vec<f64> = Vec::new();
    for embedding in embeddings {
        sum.resize(embedding.len(), 0.0);
        sum.iter_mut().zip(embedding).for_each(|(total, value)| *total += f64::from(*value));
    }
    let norm = sum.iter().map(|value| value * value).sum::<f64>().sqrt();
    sum.iter().map(|value| if norm > 0.0 { (value / norm) as f32 } else { 0.0 }).collect()
}

/// Pixel coordinates to the hundredth: finer is noise, and it keeps the answer short.
fn two_decimals(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_embedding_is_unit_length_and_between_its_members() {
        let mean = mean_embedding([&[1.0f32, 0.0][..], &[0.0, 1.0][..]].into_iter());
        let expected = std::f32::consts::FRAC_1_SQRT_2;
        assert!(mean.iter().all(|value| (value - expected).abs() < 1e-6), "{mean:?}");
        assert!(mean_embedding(std::iter::empty()).is_empty());
    }
}
