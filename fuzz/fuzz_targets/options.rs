//! The options parsers: the multipart form of /process and jobs (`ProcessForm::accept` then
//! `into_submission`, which reaches `OptionsDocument::from_fields`/`from_json` and the pipeline's
//! `ProcessOptions::from_pairs`/`from_json`), batch sidecars (`BatchOptions::parse`) and FaceFusion's
//! ini file (`ConfigFile::parse`).
//!
//! Input: one mode byte, then the body (see `Mode`). Invariants: nothing panics; options that pass
//! validation are within their documented ranges; the raw document a job record keeps parses back
//! to the same options (a worker re-reads it); the download name is header-safe.

#![no_main]

use ff_pipeline::config_file::{ConfigFile, PATH_KEYS};
use ff_pipeline::options::{self, swapper_pixel_boosts, ProcessOptions};
use ff_service::batch::options::BatchOptions;
use ff_service::form::{ProcessForm, Submission};
use libfuzzer_sys::fuzz_target;

/// What the body is, from the first byte.
enum Mode {
    /// An `options` JSON field (also read as a batch sidecar).
    Json,
    /// Form parts, one per line: `name=value`, `name:file_name=bytes` for a file, `=value` for a
    /// part without a name.
    Fields,
    /// A facefusion.ini file.
    Ini,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    match [Mode::Json, Mode::Fields, Mode::Ini][mode as usize % 3] {
        Mode::Json => json(body),
        Mode::Fields => fields(body),
        Mode::Ini => ini(body),
    }
});

fn json(body: &[u8]) {
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(batch) = BatchOptions::parse(text) {
            check_options(&batch.options.options);
        }
    }
    let mut form = ProcessForm::default();
    if form.accept(Some("options".into()), None, body.to_vec()).is_ok() {
        submit(form);
    }
}

fn fields(body: &[u8]) {
    let mut form = ProcessForm::default();
    let mut has_target = false;
    for line in body.split(|&b| b == b'\n') {
        let (head, value) = match line.iter().position(|&b| b == b'=') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &[][..]),
        };
        let head = String::from_utf8_lossy(head);
        let (name, file_name) = match head.split_once(':') {
            Some((name, file)) => (name.to_string(), Some(file.to_string())),
            None => (head.to_string(), None),
        };
        has_target |= name == "target";
        let name = (!name.is_empty()).then_some(name);
        if form.accept(name, file_name, value.to_vec()).is_err() {
            return;
        }
    }
    // Without a target the form stops before its options are read; give it one unless the input did.
    if has_target || form.accept(Some("target".into()), Some("t.png".into()), b"\x89PNG\r\n\x1a\n".to_vec()).is_ok() {
        submit(form);
    }
}

fn submit(form: ProcessForm) {
    let Ok(submission) = form.into_submission() else { return };
    check_submission(&submission);
}

fn check_submission(submission: &Submission) {
    let document = &submission.document;
    check_options(&document.options);
    // A job record keeps `raw`; its worker parses it again and must run what was validated here.
    let reparsed = ProcessOptions::from_json(&document.raw).expect("a validated document parses again");
    assert_eq!(reparsed, document.options, "the raw document {} means other options", document.raw);
    assert_eq!(submission.source_kinds.len(), submission.sources.len());
    let stem = &submission.download_stem;
    assert!(!stem.is_empty() && stem.chars().count() <= 64, "download stem {stem:?}");
    assert!(stem.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')), "{stem:?}");
}

fn ini(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else { return };
    let Ok(config) = ConfigFile::parse(text, "fuzz.ini") else { return };
    for (key, values) in &config.options {
        assert!(options::spec(key).is_some(), "`{key}` is not an option");
        assert!(!values.is_empty() && values.iter().all(|v| !v.is_empty() && !v.contains(char::is_whitespace)));
    }
    assert!(config.paths.iter().all(|(key, values)| PATH_KEYS.contains(&key.as_str()) && !values.is_empty()));
    if let Ok(options) = ProcessOptions::from_pairs(&config.options) {
        check_options(&options);
    }
}

/// What every validated option set promises the pipeline.
fn check_options(options: &ProcessOptions) {
    let processors = &options.processors;
    assert!(!processors.is_empty());
    assert!(processors.iter().enumerate().all(|(i, p)| !processors[..i].contains(p)), "{processors:?}");
    assert!(swapper_pixel_boosts(&options.swapper.model).contains(&options.swapper.pixel_boost));
    let percents = [
        options.face_enhancer.blend,
        options.frame_enhancer.blend,
        options.frame_colorizer.blend,
        options.output.image_quality,
        options.output.video.video_quality,
        options.output.video.audio_quality,
        options.output.video.audio_volume,
    ];
    assert!(percents.iter().all(|&p| p <= 100), "{percents:?}");
    let sides = options.detector.margin.iter().chain(&options.masks.padding);
    assert!(sides.clone().all(|&side| side <= 100));
    let editor = &options.face_editor;
    let floats = [
        options.detector.score,
        options.landmarker.score,
        options.selector.reference_face_distance,
        options.masks.blur,
        options.swapper.weight,
        options.face_enhancer.weight,
        options.lip_syncer.weight,
        options.age_modifier.direction,
        options.expression_restorer.factor,
        options.deep_swapper.morph,
        options.output.image_scale,
        options.output.video.video_scale,
        editor.eyebrow_direction,
        editor.eye_gaze_horizontal,
        editor.eye_gaze_vertical,
        editor.eye_open_ratio,
        editor.lip_open_ratio,
        editor.mouth_grim,
        editor.mouth_pout,
        editor.mouth_purse,
        editor.mouth_smile,
        editor.mouth_position_horizontal,
        editor.mouth_position_vertical,
        editor.head_pitch,
        editor.head_yaw,
        editor.head_roll,
    ];
    assert!(floats.iter().all(|f| f.is_finite()), "{floats:?}");
    assert!(options.output.video.video_fps.is_none_or(f64::is_finite));
}
