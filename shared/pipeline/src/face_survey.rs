//! What is in a target before anything is processed: every face of an image, or of frames sampled
//! across a video's trim range, each with its box, landmarks, scores, age, gender, race, embedding
//! and a small crop, grouped into people by identity. It is how a client chooses whom to process
//! (`reference_face_position`, or face mappings) without guessing.
//!
//! Faces are analysed completely, as FaceFusion analyses reference faces, with the run's detector
//! and landmarker options; within a frame they are in the selector's order, so a face's `position`
//! is the `reference_face_position` that picks it.

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::face::analyser::FaceAnalyser;
use crate::face::selector::sort_and_filter;
use crate::face::{face_distance, Face};
use crate::image_io::{self, ImageFormat};
use crate::imgproc::resize::resize_area;
use crate::options::ProcessOptions;
use crate::raster::{Frame, Raster};
use crate::sessions::ModelRegistry;
use crate::video::{FrameReader, ReadOptions, Toolchain, VideoInfo};

/// The most frames of a video a survey analyses, spread evenly over the trim range.
pub const MAX_SAMPLED_FRAMES: usize = 48;
/// The most faces a survey describes; a crowd past it is cut off (and says so).
pub const MAX_FACES: usize = 256;
/// The longest side of a face crop, in pixels.
pub const CROP_SIDE: usize = 128;
/// How far a crop reaches past the face's box, as a share of the box's side: enough to show the
/// hair and chin a person is recognised by.
const CROP_MARGIN: f64 = 0.25;
const CROP_QUALITY: u8 = 80;

/// One face of the survey.
#[derive(Clone, Debug)]
pub struct SurveyedFace {
    /// The frame it is in (the video's numbering); 0 for an image.
    pub frame: u64,
    /// Its place in its frame in the selector's order: the `reference_face_position` that picks it.
    pub position: usize,
    pub face: Face,
    /// A JPEG of the face and a margin around it, at most [`CROP_SIDE`] pixels a side.
    pub crop: Vec<u8>,
}

/// Faces taken to be one person: their embeddings are within the reference face distance of one
/// another, and no two are in the same frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// Indices into [`Survey::faces`], in frame order.
    pub faces: Vec<usize>,
    /// The member with the largest box: the clearest crop.
    pub representative: usize,
}

#[derive(Clone, Debug)]
pub struct Survey {
    pub width: usize,
    pub height: usize,
    /// The frames analysed, ascending; `[0]` for an image.
    pub frames: Vec<u64>,
    pub faces: Vec<SurveyedFace>,
    pub people: Vec<Person>,
    /// More than [`MAX_FACES`] faces were found; the later ones are left out.
    pub truncated: bool,
}

/// The faces of an image target.
pub fn survey_image(
    registry: &ModelRegistry,
    bytes: &[u8],
    options: &ProcessOptions,
    max_pixels: u64,
) -> Result<Survey> {
    survey_frame(registry, &image_io::decode(bytes, max_pixels)?.frame, options)
}

/// The faces of one decoded image, as frame 0.
pub fn survey_frame(registry: &ModelRegistry, frame: &Frame, options: &ProcessOptions) -> Result<Survey> {
    let mut survey = Survey::empty(frame.width, frame.height);
    survey.add_frame(registry, 0, frame, options)?;
    survey.group_people(options.selector.reference_face_distance);
    Ok(survey)
}

/// The faces of up to `samples` frames spread over the video's trim range (see
/// [`MAX_SAMPLED_FRAMES`]), decoded at the video's own size and rate within `timeout`.
pub fn survey_video(
    registry: &ModelRegistry,
    toolchain: &Toolchain,
    path: &Path,
    info: &VideoInfo,
    options: &ProcessOptions,
    samples: usize,
    timeout: Duration,
) -> Result<Survey> {
    let trim = &options.output.video;
    let (start, end) = info.trim_range(trim.trim_frame_start, trim.trim_frame_end)?;
    let every = sampling_step(end - start, samples);
    let read = ReadOptions {
        trim_frame_start: Some(start),
        trim_frame_end: Some(end),
        sample_every: Some(every),
        timeout,
        ..ReadOptions::default()
    };
    let mut reader = FrameReader::open(toolchain, path, info, &read)?;
    let mut survey = Survey::empty(reader.width(), reader.height());
    // The reader hands out the multiples of `every` in [start, end), in order.
    let mut number = start.div_ceil(every) * every;
    while let Some(frame) = reader.next_frame()? {
        if survey.truncated || survey.frames.len() == samples.max(1) {
            reader.abort();
            break;
        }
        survey.add_frame(registry, number, &frame, options)?;
        number += every;
    }
    survey.group_people(options.selector.reference_face_distance);
    Ok(survey)
}

/// Every how many frames one is analysed so that `frames` yield at most `samples`.
fn sampling_step(frames: u64, samples: usize) -> u64 {
    frames.div_ceil(samples.max(1) as u64).max(1)
}

impl Survey {
    fn empty(width: usize, height: usize) -> Self {
        Self { width, height, frames: Vec::new(), faces: Vec::new(), people: Vec::new(), truncated: false }
    }

    /// The person of each face, by face index.
    pub fn person_of_faces(&self) -> Vec<usize> {
        let mut person_of = vec![0; self.faces.len()];
        for (id, person) in self.people.iter().enumerate() {
            person.faces.iter().for_each(|&face| person_of[face] = id);
        }
        person_of
    }

    /// Analyses one frame: its faces in the selector's order (its filters apply, as they would
    /// to the run), each with its crop.
    fn add_frame(
        &mut self,
        registry: &ModelRegistry,
        number: u64,
        frame: &Frame,
        options: &ProcessOptions,
    ) -> Result<()> {
        self.frames.push(number);
        let analyser = FaceAnalyser::new(registry, &options.detector, &options.landmarker);
        let faces = sort_and_filter(analyser.faces(frame)?, &options.selector);
        for (position, face) in faces.into_iter().enumerate() {
            if self.faces.len() == MAX_FACES {
                self.truncated = true;
                break;
            }
            let crop = face_crop(frame, &face)?;
            self.faces.push(SurveyedFace { frame: number, position, face, crop });
        }
        Ok(())
    }

    /// Greedy grouping in frame order: a face joins the person with the nearest member (below
    /// `max_distance`) that has no face in its frame yet, or starts a new person.
    fn group_people(&mut self, max_distance: f32) {
        let mut people: Vec<Person> = Vec::new();
        for (index, surveyed) in self.faces.iter().enumerate() {
            let nearest = people
                .iter()
                .enumerate()
                .filter(|(_, person)| person.faces.iter().all(|&member| self.faces[member].frame != surveyed.frame))
                .map(|(at, person)| {
                    let distance = person
                        .faces
                        .iter()
                        .map(|&member| face_distance(&self.faces[member].face, &surveyed.face))
                        .fold(f32::INFINITY, f32::min);
                    (at, distance)
                })
                .filter(|(_, distance)| *distance < max_distance)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match nearest {
                Some((at, _)) => people[at].faces.push(index),
                None => people.push(Person { faces: vec![index], representative: index }),
            }
        }
        for person in &mut people {
            let area = |member: &usize| self.faces[*member].face.bounding_box.area();
            person.representative = person
                .faces
                .iter()
                .copied()
                .max_by(|a, b| area(a).total_cmp(&area(b)))
                .unwrap_or(person.representative);
        }
        self.people = people;
    }
}

/// The face's box grown by [`CROP_MARGIN`] a side, clamped to the frame, shrunk to at most
/// [`CROP_SIDE`] a side, as JPEG.
fn face_crop(frame: &Frame, face: &Face) -> Result<Vec<u8>> {
    let b = &face.bounding_box;
    let (margin_x, margin_y) = (b.width() * CROP_MARGIN, b.height() * CROP_MARGIN);
    let clamp = |value: f64, limit: usize| value.round().clamp(0.0, limit as f64) as usize;
    let (x1, y1) = (clamp(b.x1 - margin_x, frame.width), clamp(b.y1 - margin_y, frame.height));
    let (x2, y2) = (clamp(b.x2 + margin_x, frame.width), clamp(b.y2 + margin_y, frame.height));
    let (width, height) = (x2.saturating_sub(x1).max(1), y2.saturating_sub(y1).max(1));
    let (x1, y1) = (x1.min(frame.width - 1), y1.min(frame.height - 1));
    let (width, height) = (width.min(frame.width - x1), height.min(frame.height - y1));
    let mut region = Raster::new(width, height, 3);
    for row in 0..height {
        let from = ((y1 + row) * frame.width + x1) * 3;
        region.row_mut(row).copy_from_slice(&frame.data[from..from + width * 3]);
    }
    let scale = (CROP_SIDE as f64 / width.max(height) as f64).min(1.0);
    let small = if scale < 1.0 {
        let side = |value: usize| ((value as f64 * scale).round() as usize).max(1);
        resize_area(&region, side(width), side(height))
    } else {
        region
    };
    image_io::encode(&small, None, ImageFormat::Jpeg, CROP_QUALITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_spreads_the_samples_over_the_range() {
        assert_eq!(sampling_step(150, 48), 4);
        assert_eq!(sampling_step(48, 48), 1);
        assert_eq!(sampling_step(10, 48), 1);
        assert_eq!(sampling_step(0, 48), 1);
        assert_eq!(sampling_step(1000, 0), 1000);
    }
}
