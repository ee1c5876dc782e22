//! Face mappings (`face_mappings`, an ff option beyond FaceFusion): several people swapped at once,
//! each with their own source. A mapping names source images by index and a target person by a
//! person id of the face survey (`POST /api/v1/faces`), an embedding, or a face's frame and
//! position. With mappings, each target face in each frame goes to the mapping whose person it is
//! nearest to (under `reference_face_distance`); faces of no mapped person are left alone by every
//! face processor. Without mappings nothing changes.

use std::path::Path;
use std::time::Duration;

use crate::error::{PipelineError, Result};
use crate::face::analyser::FaceAnalyser;
use crate::face::selector::sort_and_filter;
use crate::face::{embedding_distance, Face};
use crate::face_survey::{survey_frame, survey_video, MAX_SAMPLED_FRAMES};
use crate::mapping_option::{FaceMapping, MappingTarget, OPTION};
use crate::options::ProcessOptions;
use crate::processors::face_swapper::SourceFace;
use crate::raster::Frame;
use crate::sessions::ModelRegistry;
use crate::video::{FrameReader, Toolchain, VideoInfo};

/// What the target is, for finding the people mappings name.
pub enum MappedTarget<'t> {
    /// An image (or a still a lip-synced video is made of): frame 0.
    Frame(&'t Frame),
    /// A video file, read again for the frames mappings name.
    Video { toolchain: &'t Toolchain, path: &'t Path, info: &'t VideoInfo, timeout: Duration },
}

/// The normalised embeddings that recognise each mapping's person, in mapping order: a person of
/// the survey by all their faces, a face by its own, an embedding as given. The survey and the
/// frames are made with the run's options, as `POST /api/v1/faces` made them.
pub fn resolve_references(
    registry: &ModelRegistry,
    target: &MappedTarget<'_>,
    options: &ProcessOptions,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let mappings = &options.face_mappings;
    let needs_survey = mappings.iter().any(|mapping| matches!(mapping.target, MappingTarget::Person(_)));
    let survey = match (needs_survey, target) {
        (false, _) => None,
        (true, MappedTarget::Frame(frame)) => Some(survey_frame(registry, frame, options)?),
        (true, MappedTarget::Video { toolchain, path, info, timeout }) => {
            Some(survey_video(registry, toolchain, path, info, options, MAX_SAMPLED_FRAMES, *timeout)?)
        }
    };
    mappings
        .iter()
        .map(|mapping| match &mapping.target {
            MappingTarget::Embedding(values) => Ok(vec![values.clone()]),
            MappingTarget::Person(id) => {
                let survey = survey.as_ref().ok_or_else(|| PipelineError::Runtime("no survey was made".into()))?;
                let person = survey.people.get(*id).ok_or_else(|| {
                    PipelineError::invalid_option(
                        OPTION,
                        format!(
                            "the target has {} people (POST /api/v1/faces); there is no person {id}",
                            survey.people.len()
                        ),
                    )
                })?;
                Ok(person.faces.iter().map(|&face| survey.faces[face].face.embedding_norm.clone()).collect())
            }
            MappingTarget::Face { frame, position } => {
                let face = face_at(registry, target, *frame, *position, options)?;
                Ok(vec![face.embedding_norm])
            }
        })
        .collect()
}

/// The face at `position` in the selector's order in frame `number` of the target.
fn face_at(
    registry: &ModelRegistry,
    target: &MappedTarget<'_>,
    number: u64,
    position: usize,
    options: &ProcessOptions,
) -> Result<Face> {
    let read;
    let frame = match target {
        MappedTarget::Frame(frame) if number == 0 => *frame,
        MappedTarget::Frame(_) => {
            return Err(PipelineError::invalid_option(OPTION, format!("an image has only frame 0, not {number}")))
        }
        MappedTarget::Video { toolchain, path, info, timeout } => {
            read = FrameReader::read_one(toolchain, path, info, number, *timeout)?
                .ok_or_else(|| PipelineError::invalid_option(OPTION, format!("the video has no frame {number}")))?;
            &read
        }
    };
    let faces = FaceAnalyser::new(registry, &options.detector, &options.landmarker).faces(frame)?;
    let count = faces.len();
    sort_and_filter(faces, &options.selector).into_iter().nth(position).ok_or_else(|| {
        PipelineError::invalid_option(
            OPTION,
            format!("frame {number} has {count} face(s); there is no position {position}"),
        )
    })
}

/// Each mapping's identity: its source images' chosen faces averaged, as FaceFusion averages all.
pub fn identities(sources: &[Frame], chosen: &[Option<Face>], mappings: &[FaceMapping]) -> Result<Vec<SourceFace>> {
    mappings
        .iter()
        .map(|mapping| {
            let mut frames = Vec::with_capacity(mapping.sources.len());
            let mut faces = Vec::with_capacity(mapping.sources.len());
            for &index in &mapping.sources {
                let (Some(frame), Some(face)) = (sources.get(index), chosen.get(index)) else {
                    return Err(PipelineError::invalid_option(
                        OPTION,
                        format!("source {index} does not exist: the run has {} source image(s)", sources.len()),
                    ));
                };
                frames.push(frame.clone());
                faces.push(face.clone());
            }
            SourceFace::average(&frames, &faces).map_err(|_| PipelineError::NoSourceFace { index: mapping.sources[0] })
        })
        .collect()
}

/// The faces of one frame that belong to a mapped person, each with its mapping's index, in the
/// frame's order. A person is in a frame once, so each mapping takes at most one face: the pairs
/// of face and mapping under `max_distance` are taken nearest first, each face and each mapping
/// once (as the survey never puts two faces of one frame in one person).
pub fn assign(faces: &[Face], references: &[Vec<Vec<f32>>], max_distance: f32) -> Vec<(Face, usize)> {
    let mut pairs: Vec<(f32, usize, usize)> = faces
        .iter()
        .enumerate()
        .flat_map(|(face, candidate)| {
            references.iter().enumerate().map(move |(mapping, person)| (nearest(candidate, person), face, mapping))
        })
        .filter(|(distance, _, _)| *distance < max_distance)
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut mapping_of: Vec<Option<usize>> = vec![None; faces.len()];
    let mut taken = vec![false; references.len()];
    for (_, face, mapping) in pairs {
        if mapping_of[face].is_none() && !taken[mapping] {
            mapping_of[face] = Some(mapping);
            taken[mapping] = true;
        }
    }
    faces.iter().zip(mapping_of).filter_map(|(face, mapping)| Some((face.clone(), mapping?))).collect()
}

/// The face's distance to the nearest of `references` (FaceFusion's face distance).
fn nearest(face: &Face, references: &[Vec<f32>]) -> f32 {
    references.iter().map(|reference| embedding_distance(&face.embedding_norm, reference)).fold(f32::INFINITY, f32::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(embedding: [f32; 2]) -> Face {
        crate::face::test_face(0.0, 1.0, 0.9, embedding, (20, 30))
    }

    #[test]
    fn each_mapping_takes_its_nearest_face_once_per_frame() {
        let faces = [face([1.0, 0.0]), face([0.0, 1.0]), face([0.9, 0.436]), face([-1.0, 0.0])];
        let references = vec![vec![vec![1.0, 0.0]], vec![vec![0.0, 1.0]]];
        let assigned: Vec<(f32, usize)> =
            assign(&faces, &references, 0.3).iter().map(|(face, mapping)| (face.embedding_norm[0], *mapping)).collect();
        // Face 2 is close to mapping 0 too, but face 0 is closer: a person is in a frame once.
        assert_eq!(assigned, [(1.0, 0), (0.0, 1)]);
        // Alone, face 2 goes to mapping 0; a face far from everyone goes nowhere.
        let alone = assign(&faces[2..], &references, 0.3);
        assert_eq!(alone.iter().map(|(_, mapping)| *mapping).collect::<Vec<_>>(), [0]);
        assert!(assign(&faces[3..], &references, 0.3).is_empty());
    }
}
