//! Face mappings: each mapped person swapped with their own source, the others left alone, on the
//! two-person photo and on the talking clip; a person named by survey id, by face position or by
//! embedding picks the same face; bad mappings are refused with the option's name.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ff_pipeline::engine::{Engine, EngineConfig, ImageRequest, VideoRequest};
use ff_pipeline::face_survey::{survey_image, survey_video, MAX_SAMPLED_FRAMES};
use ff_pipeline::image_io::{self, ImageFormat};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, diff_box, stand_in_config};
use ff_pipeline::video::{Parallelism, Toolchain};
use ff_pipeline::Frame;

fn engine() -> Engine {
    Engine::new(EngineConfig { content_analysis: false, ..stand_in_config("light") }).unwrap()
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(assets_dir().join("images").join(name)).unwrap()
}

fn options(mappings: &str) -> ProcessOptions {
    let pairs = [
        ("face_swapper_model".to_string(), vec!["inswapper_128".to_string()]),
        ("face_mappings".to_string(), vec![mappings.to_string()]),
    ];
    ProcessOptions::from_pairs(&pairs).unwrap()
}

/// The two-person photo swapped with obama (source 0) and biden (source 1) under `mappings`, as a
/// frame (PNG, so untouched pixels are the decoded target's exactly).
fn swap_two_people(engine: &Engine, mappings: &str) -> (Frame, usize) {
    let request = ImageRequest {
        sources: vec![image("obama.jpg"), image("biden.jpg")],
        target: image("two_people.jpg"),
        options: options(mappings),
        output_format: Some(ImageFormat::Png),
    };
    let output = engine.process_image(request).unwrap();
    (image_io::decode(&output.bytes, 1 << 26).unwrap().frame, output.faces_processed)
}

fn inside(region: (usize, usize, usize, usize), face: [f64; 4]) -> bool {
    let (x0, y0, x1, y1) = region;
    let margin = (face[2] - face[0]).max(face[3] - face[1]);
    x0 as f64 >= face[0] - margin
        && x1 as f64 <= face[2] + margin
        && y0 as f64 >= face[1] - margin
        && y1 as f64 <= face[3] + margin
}

#[test]
fn each_mapped_person_gets_their_own_source_and_the_others_none() {
    let engine = engine();
    let target = image_io::decode(&image("two_people.jpg"), 1 << 26).unwrap().frame;
    let survey = survey_image(engine.registry(), &image("two_people.jpg"), &options(""), 1 << 26).unwrap();
    let boxes: Vec<[f64; 4]> = survey
        .faces
        .iter()
        .map(|f| {
            let b = f.face.bounding_box;
            [b.x1, b.y1, b.x2, b.y2]
        })
        .collect();

    let (first_only, faces) = swap_two_people(&engine, r#"[{"source": 0, "target": 0}]"#);
    assert_eq!(faces, 1);
    let changed = diff_box(&target, &first_only).expect("person 0 was swapped");
    assert!(inside(changed, boxes[0]), "only around person 0: {changed:?} vs {:?}", boxes[0]);

    let (second_only, _) = swap_two_people(&engine, r#"[{"source": 1, "target": 1}]"#);
    let changed = diff_box(&target, &second_only).expect("person 1 was swapped");
    assert!(inside(changed, boxes[1]), "only around person 1: {changed:?} vs {:?}", boxes[1]);

    // Both at once: each region as its own mapping made it.
    let (both, faces) = swap_two_people(&engine, r#"[{"source": 0, "target": 0}, {"source": 1, "target": 1}]"#);
    assert_eq!(faces, 2);
    let as_first = diff_box(&both, &first_only).expect("person 1 differs from the first-only run");
    assert!(inside(as_first, boxes[1]), "{as_first:?}");
    let as_second = diff_box(&both, &second_only).expect("person 0 differs from the second-only run");
    assert!(inside(as_second, boxes[0]), "{as_second:?}");
    // Person 1 with biden is not person 1 with obama: the sources are really per person.
    let (swapped_sources, _) = swap_two_people(&engine, r#"[{"source": 1, "target": 0}, {"source": 0, "target": 1}]"#);
    assert!(diff_box(&both, &swapped_sources).is_some());

    // The same person named by position and by embedding picks the same face.
    let (by_position, _) = swap_two_people(&engine, r#"[{"source": 0, "target": {"frame": 0, "position": 0}}]"#);
    assert!(diff_box(&by_position, &first_only).is_none());
    let embedding = serde_json::to_string(&survey.faces[0].face.embedding_norm).unwrap();
    let (by_embedding, _) = swap_two_people(&engine, &format!(r#"[{{"source": 0, "target": {embedding}}}]"#));
    assert!(diff_box(&by_embedding, &first_only).is_none());
}

#[test]
fn mappings_naming_what_is_not_there_are_refused() {
    let engine = engine();
    for (mappings, expected) in [
        (r#"[{"source": 0, "target": 7}]"#, "no person 7"),
        (r#"[{"source": 5, "target": 0}]"#, "source 5"),
        (r#"[{"source": 0, "target": {"frame": 0, "position": 4}}]"#, "no position 4"),
        (r#"[{"source": 0, "target": {"frame": 3, "position": 0}}]"#, "only frame 0"),
    ] {
        let request = ImageRequest {
            sources: vec![image("obama.jpg")],
            target: image("two_people.jpg"),
            options: options(mappings),
            output_format: None,
        };
        let error = engine.process_image(request).err().expect("refused").to_string();
        assert!(error.contains("face_mappings") && error.contains(expected), "{mappings}: {error}");
    }
}

/// On the talking clip's last shot (four people): two of them mapped to two sources are the only
/// faces swapped, frame after frame.
#[test]
fn a_video_swaps_only_its_mapped_people() {
    let engine = engine();
    let toolchain = Toolchain::from_env();
    let path = assets_dir().join("video/short_hamilton_clip.mp4");
    let info = toolchain.probe(&path).unwrap();
    let trim = [("trim_frame_start", "216"), ("trim_frame_end", "236")];
    let pairs = |mappings: Option<&str>| {
        let mut pairs: Vec<(String, Vec<String>)> =
            trim.iter().map(|(name, value)| (name.to_string(), vec![value.to_string()])).collect();
        pairs.push(("face_swapper_model".into(), vec!["inswapper_128".into()]));
        pairs.push(("output_video_preset".into(), vec!["ultrafast".into()]));
        match mappings {
            Some(mappings) => pairs.push(("face_mappings".into(), vec![mappings.into()])),
            None => pairs.push(("face_selector_mode".into(), vec!["many".into()])),
        }
        ProcessOptions::from_pairs(&pairs).unwrap()
    };
    let survey = survey_video(
        engine.registry(),
        &toolchain,
        &path,
        &info,
        &pairs(None),
        MAX_SAMPLED_FRAMES,
        Duration::from_secs(300),
    )
    .unwrap();
    assert!(survey.people.len() >= 3, "the last shot has several people: {:?}", survey.people);
    let dir = tempfile::tempdir().unwrap();
    let run = |options: ProcessOptions, name: &str| {
        let request = VideoRequest {
            sources: vec![image("obama.jpg"), image("biden.jpg")],
            target: path.clone(),
            probe: None,
            output: dir.path().join(name),
            options,
            parallelism: Some(Parallelism { workers: 2, max_in_flight: 4 }),
            timeout: Duration::from_secs(600),
            max_duration: None,
            segment: None,
        };
        engine.process_video(request, |_| {}, &AtomicBool::new(false)).unwrap()
    };
    let everyone = run(pairs(None), "many.mp4");
    let mapped = run(pairs(Some(r#"[{"source": 0, "target": 0}, {"source": 1, "target": 1}]"#)), "mapped.mp4");
    assert_eq!((everyone.frames, mapped.frames), (20, 20));
    let seen = |person: usize| survey.people[person].faces.len() as f64 / survey.frames.len() as f64;
    assert!(mapped.faces_processed > 0, "the mapped people were swapped");
    assert!(
        mapped.faces_processed < everyone.faces_processed,
        "{} of {}",
        mapped.faces_processed,
        everyone.faces_processed
    );
    // About as many faces as the two people show up in frames.
    let expected = (seen(0) + seen(1)) * 20.0;
    assert!(
        (mapped.faces_processed as f64 - expected).abs() <= 6.0,
        "{} faces, expected about {expected}",
        mapped.faces_processed
    );
}
