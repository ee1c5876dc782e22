//! FaceFusion 3.7's face tracker (`--face-tracker-score`), which 3.5.3 does not have: the faces of
//! a frame are read together with those of the frames around it, linked into tracks by box overlap,
//! and a face the detector missed in the middle frame is refilled by interpolating its track's faces
//! before and after. Against flicker: a face lost for a frame or two is still processed.
//!
//! As upstream (3.7.1): the window is ±2 frames; a face joins the track whose latest face overlaps
//! it most when that overlap is above the score (greedy, no motion model); only tracks with faces on
//! both sides of the middle frame (or in it) give a face, so nothing is extrapolated; a face the
//! detector found in the middle frame is returned as it is.

use crate::face::landmarker::estimate_face_angle;
use crate::face::{BoundingBox, Face, Point};

/// Frames on each side of the middle frame the tracker reads (FaceFusion 3.7.1's
/// `--target-frame-amount` default).
pub const WINDOW: usize = 2;

/// One linked face per frame of the window, by the frame's place in it.
type Track<'a> = Vec<(usize, &'a Face)>;

/// The faces of the middle frame of `window` (FaceFusion's `track_faces`): its own detections and
/// the refilled faces of tracks that pass through it, in the order the tracks were made.
pub fn track_faces(window: &[&[Face]], score: f32) -> Vec<Face> {
    let middle = window.len() / 2;
    link_tracks(window, score).iter().filter_map(|track| face_at(track, middle)).collect()
}

/// The faces of the frames `WINDOW` around frame `middle`; frames outside `frames` count as frames
/// without faces, as FaceFusion's empty frames past the video do.
pub fn window_at(frames: &[Vec<Face>], middle: usize) -> Vec<&[Face]> {
    (middle as isize - WINDOW as isize..=(middle + WINDOW) as isize)
        .map(|index| usize::try_from(index).ok().and_then(|index| frames.get(index)).map_or(&[][..], Vec::as_slice))
        .collect()
}

/// Frames in order, faces in detection order: each face joins the track whose latest face overlaps
/// it most, if that overlap is above `score`, else starts a track. A second face of the same frame
/// that joins a track replaces the first there, as in FaceFusion (a track holds one face a frame).
fn link_tracks<'a>(window: &[&'a [Face]], score: f32) -> Vec<Track<'a>> {
    let mut tracks: Vec<Track<'a>> = Vec::new();
    for (frame, faces) in window.iter().enumerate() {
        for face in faces.iter() {
            let best = tracks
                .iter()
                .enumerate()
                .filter_map(|(index, track)| {
                    track.last().map(|(_, latest)| (index, latest.bounding_box.iou(&face.bounding_box)))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((index, overlap)) if overlap > score as f64 => {
                    let track = &mut tracks[index];
                    if track.last().is_some_and(|(at, _)| *at == frame) {
                        track.pop();
                    }
                    track.push((frame, face));
                }
                _ => tracks.push(vec![(frame, face)]),
            }
        }
    }
    tracks
}

/// The track's face in frame `middle`: its own, or one interpolated between its nearest faces
/// before and after; `None` when the track does not reach across the middle.
fn face_at(track: &Track<'_>, middle: usize) -> Option<Face> {
    if let Some((_, face)) = track.iter().find(|(frame, _)| *frame == middle) {
        return Some((*face).clone());
    }
    let (before_frame, before) = track.iter().rev().find(|(frame, _)| *frame < middle)?;
    let (after_frame, after) = track.iter().find(|(frame, _)| *frame > middle)?;
    let t = (middle - before_frame) as f64 / (after_frame - before_frame) as f64;
    Some(interpolate(before, after, t))
}

/// FaceFusion's refill: box and every landmark set blended linearly, the angle estimated again from
/// the blended points; score, identity and classification copied from the nearer face (the later
/// one at exactly half way).
pub fn interpolate(before: &Face, after: &Face, t: f64) -> Face {
    let nearer = if t < 0.5 { before } else { after };
    let blend = |a: &Point, b: &Point| [a[0] * (1.0 - t) + b[0] * t, a[1] * (1.0 - t) + b[1] * t];
    let blend_all = |a: &[Point], b: &[Point]| a.iter().zip(b).map(|(a, b)| blend(a, b)).collect::<Vec<Point>>();
    let blend_5 = |a: &[Point; 5], b: &[Point; 5]| std::array::from_fn(|i| blend(&a[i], &b[i]));
    let (a, b) = (before.bounding_box, after.bounding_box);
    let [x1, y1] = blend(&[a.x1, a.y1], &[b.x1, b.y1]);
    let [x2, y2] = blend(&[a.x2, a.y2], &[b.x2, b.y2]);
    let landmark_68_5 = blend_all(&before.landmark_68_5, &after.landmark_68_5);
    Face {
        bounding_box: BoundingBox { x1, y1, x2, y2 },
        landmark_5: blend_5(&before.landmark_5, &after.landmark_5),
        landmark_5_68: blend_5(&before.landmark_5_68, &after.landmark_5_68),
        landmark_68: blend_all(&before.landmark_68, &after.landmark_68),
        angle: estimate_face_angle(&landmark_68_5),
        landmark_68_5,
        ..nearer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::{Gender, Race};

    fn face(x: f64, tag: f32) -> Face {
        let points: Vec<Point> = (0..68).map(|i| [x + i as f64, 10.0 + (i % 7) as f64]).collect();
        Face {
            bounding_box: BoundingBox { x1: x, y1: 0.0, x2: x + 100.0, y2: 100.0 },
            detector_score: tag,
            landmarker_score: 0.9,
            landmark_5: [[x, 1.0]; 5],
            landmark_5_68: [[x, 2.0]; 5],
            landmark_68: points.clone(),
            landmark_68_5: points,
            angle: 0,
            embedding: vec![tag],
            embedding_norm: vec![tag],
            gender: Gender::Female,
            age: (20, 30),
            race: Race::Asian,
        }
    }

    fn xs(faces: &[Face]) -> Vec<f64> {
        faces.iter().map(|f| f.bounding_box.x1).collect()
    }

    #[test]
    fn a_face_missed_in_the_middle_is_interpolated_from_its_track() {
        let frames = [vec![face(0.0, 0.1)], vec![face(10.0, 0.2)], vec![], vec![], vec![face(40.0, 0.5)]];
        let window: Vec<&[Face]> = frames.iter().map(Vec::as_slice).collect();
        let faces = track_faces(&window, 0.3);
        assert_eq!(xs(&faces), [20.0]);
        let face = &faces[0];
        assert_eq!(face.landmark_68[0], [20.0, 10.0]);
        assert_eq!(face.landmark_5_68[0], [20.0, 2.0]);
        // A third of the way from frame 1 to frame 4: the identity of the nearer, earlier face.
        assert_eq!((face.detector_score, face.embedding[0]), (0.2, 0.2));
    }

    #[test]
    fn at_half_way_the_later_face_lends_its_identity() {
        let refilled = interpolate(&face(0.0, 0.1), &face(10.0, 0.9), 0.5);
        assert_eq!((refilled.bounding_box.x1, refilled.embedding[0]), (5.0, 0.9));
    }

    #[test]
    fn nothing_is_extrapolated_past_a_tracks_end() {
        let frames = [vec![face(0.0, 0.1)], vec![face(10.0, 0.2)], vec![], vec![], vec![]];
        let window: Vec<&[Face]> = frames.iter().map(Vec::as_slice).collect();
        assert!(track_faces(&window, 0.3).is_empty());
    }

    #[test]
    fn a_detected_middle_face_is_returned_unchanged() {
        let frames = [vec![face(0.0, 0.1)], vec![], vec![face(50.0, 0.7)], vec![], vec![face(20.0, 0.3)]];
        let window: Vec<&[Face]> = frames.iter().map(Vec::as_slice).collect();
        let faces = track_faces(&window, 0.0);
        assert_eq!(xs(&faces), [50.0]);
        assert_eq!(faces[0].detector_score, 0.7);
    }

    #[test]
    fn boxes_that_overlap_too_little_make_separate_tracks() {
        // IoU of boxes 100 wide shifted by 60 is 40/160 = 0.25.
        let frames = [vec![face(0.0, 0.1)], vec![], vec![], vec![], vec![face(60.0, 0.2)]];
        let window: Vec<&[Face]> = frames.iter().map(Vec::as_slice).collect();
        assert!(track_faces(&window, 0.3).is_empty());
        assert_eq!(xs(&track_faces(&window, 0.2)), [30.0]);
    }

    #[test]
    fn two_people_keep_their_own_tracks() {
        let frames = [
            vec![face(0.0, 0.1), face(500.0, 0.6)],
            vec![face(2.0, 0.1), face(502.0, 0.6)],
            vec![face(504.0, 0.6)],
            vec![face(6.0, 0.1), face(506.0, 0.6)],
            vec![],
        ];
        let window: Vec<&[Face]> = frames.iter().map(Vec::as_slice).collect();
        assert_eq!(xs(&track_faces(&window, 0.3)), [4.0, 504.0]);
    }

    #[test]
    fn frames_outside_the_video_have_no_faces() {
        let frames = vec![vec![], vec![face(0.0, 0.1)], vec![face(4.0, 0.1)]];
        let tracked: Vec<Vec<Face>> = (0..3).map(|middle| track_faces(&window_at(&frames, middle), 0.3)).collect();
        assert_eq!(tracked.iter().map(|faces| xs(faces)).collect::<Vec<_>>(), [vec![], vec![0.0], vec![4.0]]);
    }
}
