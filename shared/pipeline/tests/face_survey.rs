//! The survey behind `POST /api/v1/faces` and `ff faces`: every face of a photo with its crop, and
//! the people of a video from frames sampled across its trim range.

use std::time::Duration;

use ff_pipeline::engine::{Engine, EngineConfig};
use ff_pipeline::face_survey::{survey_image, survey_video, Survey, CROP_SIDE, MAX_SAMPLED_FRAMES};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, stand_in_config};
use ff_pipeline::video::Toolchain;

fn engine() -> Engine {
    Engine::new(EngineConfig { content_analysis: false, ..stand_in_config("light") }).unwrap()
}

fn options(pairs: &[(&str, &str)]) -> ProcessOptions {
    let pairs: Vec<(String, Vec<String>)> = pairs.iter().map(|(n, v)| (n.to_string(), vec![v.to_string()])).collect();
    ProcessOptions::from_pairs(&pairs).unwrap()
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(assets_dir().join("images").join(name)).unwrap()
}

/// Every crop is a JPEG within the size bound showing something of the face's colours.
fn assert_crops_are_small_jpegs(survey: &Survey) {
    for face in &survey.faces {
        let crop = image::load_from_memory_with_format(&face.crop, image::ImageFormat::Jpeg).expect("a JPEG crop");
        assert!(crop.width() as usize <= CROP_SIDE && crop.height() as usize <= CROP_SIDE);
        assert!(crop.width() >= 16 && crop.height() >= 16, "{}x{}", crop.width(), crop.height());
    }
}

#[test]
fn a_photo_of_two_people_has_two_faces_in_the_selectors_order_and_two_people() {
    let engine = engine();
    let survey = survey_image(engine.registry(), &image("two_people.jpg"), &options(&[]), 1 << 26).unwrap();
    assert_eq!((survey.frames.as_slice(), survey.faces.len(), survey.people.len()), (&[0][..], 2, 2));
    // The default order is large-small: position 0 is the larger face.
    let areas: Vec<f64> = survey.faces.iter().map(|f| f.face.bounding_box.area()).collect();
    assert!(areas[0] >= areas[1], "{areas:?}");
    assert_eq!(survey.faces.iter().map(|f| f.position).collect::<Vec<_>>(), [0, 1]);
    for face in &survey.faces {
        assert_eq!(face.face.embedding_norm.len(), 512, "faces carry their identity");
        assert!(face.face.age.1 > face.face.age.0, "and their classification");
    }
    assert_crops_are_small_jpegs(&survey);

    // Another order changes the positions; the filters apply as they would to a run.
    let left_right = survey_image(
        engine.registry(),
        &image("two_people.jpg"),
        &options(&[("face_selector_order", "left-right")]),
        1 << 26,
    )
    .unwrap();
    let x: Vec<f64> = left_right.faces.iter().map(|f| f.face.bounding_box.x1).collect();
    assert!(x[0] < x[1], "{x:?}");
    let one = survey_image(engine.registry(), &image("obama.jpg"), &options(&[]), 1 << 26).unwrap();
    assert_eq!((one.faces.len(), one.people.len()), (1, 1));
}

#[test]
fn a_photo_without_a_face_has_none() {
    let engine = engine();
    let blank = image::RgbImage::from_pixel(64, 48, image::Rgb([120, 180, 230]));
    let mut png = Vec::new();
    blank.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let survey = survey_image(engine.registry(), &png, &options(&[]), 1 << 26).unwrap();
    assert!(survey.faces.is_empty() && survey.people.is_empty());
    assert_eq!((survey.width, survey.height), (64, 48));
}

/// The talking clip, sampled: at most the bounded number of frames, spread over the trim range;
/// one person seen in many of them, never twice in one frame.
#[test]
fn a_video_is_sampled_across_its_trim_range_and_grouped_into_people() {
    let engine = engine();
    let toolchain = Toolchain::from_env();
    let path = assets_dir().join("video/short_hamilton_clip.mp4");
    let info = toolchain.probe(&path).unwrap();
    let trimmed = options(&[("trim_frame_start", "10"), ("trim_frame_end", "200")]);
    let survey = survey_video(
        engine.registry(),
        &toolchain,
        &path,
        &info,
        &trimmed,
        MAX_SAMPLED_FRAMES,
        Duration::from_secs(300),
    )
    .unwrap();
    assert!(survey.frames.len() <= MAX_SAMPLED_FRAMES && survey.frames.len() >= 40, "{:?}", survey.frames);
    assert!(survey.frames.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(survey.frames[0] >= 10 && *survey.frames.last().unwrap() < 200, "{:?}", survey.frames);
    assert_eq!((survey.width, survey.height), (640, 360));
    assert!(!survey.people.is_empty());
    let largest = survey.people.iter().map(|p| p.faces.len()).max().unwrap();
    assert!(largest >= survey.frames.len() / 3, "a person is followed across frames: {:?}", survey.people);
    for person in &survey.people {
        let mut frames: Vec<u64> = person.faces.iter().map(|&f| survey.faces[f].frame).collect();
        let count = frames.len();
        frames.dedup();
        assert_eq!(frames.len(), count, "one face a frame per person");
        assert!(person.faces.contains(&person.representative));
    }
    assert_eq!(survey.people.iter().map(|p| p.faces.len()).sum::<usize>(), survey.faces.len());
    assert_crops_are_small_jpegs(&survey);

    let few = survey_video(engine.registry(), &toolchain, &path, &info, &trimmed, 5, Duration::from_secs(300)).unwrap();
    assert!(few.frames.len() <= 5, "{:?}", few.frames);
}
