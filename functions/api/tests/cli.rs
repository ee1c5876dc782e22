//! `ff process` as a user runs it, on the light stand-ins: a video swap keeps frames, fps and audio;
//! the lip syncer speaks an audio file onto a video and onto a still photo; bad input fails with a
//! one-line error and a non-zero exit, leaving no output behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ff_pipeline::testing::{assets_dir, psnr};
use ff_pipeline::video::Toolchain;

fn ff_process(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ff"))
        .arg("process")
        .args(args)
        .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env("FF_EXECUTION_THREAD_COUNT", "2")
        .output()
        .expect("run ff process")
}

fn asset(relative: &str) -> String {
    assets_dir().join(relative).to_string_lossy().into_owned()
}

fn succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "ff process failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
}

fn out(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let text = path.to_string_lossy().into_owned();
    (path, text)
}

#[test]
fn swaps_a_face_through_a_video_keeping_fps_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let (path, output) = out(dir.path(), "swapped.mp4");
    let target = asset("video/short_hamilton_clip.mp4");
    let result = ff_process(&[
        "-s",
        &asset("images/obama.jpg"),
        "-t",
        &target,
        "-o",
        &output,
        "--face-swapper-model",
        "inswapper_128",
        "--trim-frame-start",
        "120",
        "--trim-frame-end",
        "132",
    ]);
    succeeded(&result);
    let tools = Toolchain::from_env();
    let (info, source) = (tools.probe(&path).unwrap(), tools.probe(Path::new(&target)).unwrap());
    assert_eq!(info.frame_count, 12);
    assert!((info.fps - source.fps).abs() < 1e-6, "fps {} vs {}", info.fps, source.fps);
    assert!(info.has_audio, "the target's audio is kept");
    assert_eq!((info.width, info.height), (source.width, source.height));
}

/// `ff process --processors lip_syncer` speaking the sample speech onto `target`.
fn lip_sync(target: &str, output: &str, extra: &[&str]) {
    let speech = asset("audio/wav2lip_sample_speech.wav");
    let mut args = vec!["-s", &speech, "-t", target, "-o", output, "--processors", "lip_syncer"];
    args.extend(extra);
    succeeded(&ff_process(&args));
}

#[test]
fn lip_syncs_a_video_and_makes_a_photo_speak() {
    let dir = tempfile::tempdir().unwrap();
    let tools = Toolchain::from_env();
    let photo = asset("images/obama.jpg");

    let (video, output) = out(dir.path(), "synced.mp4");
    lip_sync(&asset("video/wav2lip_sample_target.mp4"), &output, &["--trim-frame-end", "15"]);
    let info = tools.probe(&video).unwrap();
    assert_eq!(info.frame_count, 15);
    assert!(info.has_audio, "the speech replaces the target's sound");

    let (talking, output) = out(dir.path(), "talking.mp4");
    lip_sync(&photo, &output, &["--output-video-fps", "10"]);
    let info = tools.probe(&talking).unwrap();
    // 10.27 s of speech at 10 fps.
    assert_eq!(info.frame_count, 103);
    assert!(info.has_audio);

    // An image output keeps FaceFusion's image workflow: one frame, silent mouth.
    let (still, output) = out(dir.path(), "still.png");
    lip_sync(&photo, &output, &[]);
    assert!(image_size(&still) > (0, 0));
}

fn image_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    let decoded = ff_pipeline::image_io::decode(&bytes, u64::MAX).unwrap();
    (decoded.frame.width as u32, decoded.frame.height as u32)
}

#[test]
fn bad_input_fails_with_a_clear_message_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (_, output) = out(dir.path(), "out.mp4");
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, b"\x00\x00\x00\x20ftypisom-not-really-a-video").unwrap();
    let cases: [(&str, Vec<&str>); 3] = [
        ("lip_syncer without audio", vec!["-s", "", "-t", "", "--processors", "lip_syncer"]),
        ("corrupt video", vec!["-s", "", "-t", "", "--face-swapper-model", "inswapper_128"]),
        ("photo to video without lip_syncer", vec!["-s", "", "-t", ""]),
    ];
    let obama = asset("images/obama.jpg");
    let target = asset("video/wav2lip_sample_target.mp4");
    let corrupt = corrupt.to_string_lossy().into_owned();
    for (name, mut args) in cases {
        let (source, target) = match name {
            "corrupt video" => (obama.as_str(), corrupt.as_str()),
            "photo to video without lip_syncer" => (obama.as_str(), obama.as_str()),
            _ => (obama.as_str(), target.as_str()),
        };
        args[1] = source;
        args[3] = target;
        args.extend(["-o", &output]);
        let result = ff_process(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        println!("{name}: {}", stderr.trim());
        assert!(!result.status.success(), "{name}: succeeded");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "{name}: only the corrupt input is left");
    }
}

/// FaceFusion's case 16 as its command line gives it: the background colour comes from the ini
/// (`--config-path`), the output PNG keeps the matte as alpha; and a flag overrides the ini.
#[test]
fn config_path_reads_facefusions_ini_and_flags_override_it() {
    let parity = ff_pipeline::testing::parity_dir();
    let dir = tempfile::tempdir().unwrap();
    let (path, output) = out(dir.path(), "out.png");
    let ini = parity.join("inputs/background_remover_green.ini").to_string_lossy().into_owned();
    let target = parity.join("inputs/obama.png").to_string_lossy().into_owned();
    let args = ["--config-path", &ini, "-t", &target, "-o", &output, "--processors", "background_remover"];
    succeeded(&ff_process(&args));
    let (ours, alpha) = ff_pipeline::testing::read_bgra(&path);
    let (golden, golden_alpha) =
        ff_pipeline::testing::read_bgra(&parity.join("16_background_remover_rmbg_green_alpha/output.png"));
    let (frame_psnr, alpha_psnr) = (psnr(&ours, &golden, None), psnr(&alpha, &golden_alpha, None));
    println!("case 16 through ff process: frame {frame_psnr:.2} dB, alpha {alpha_psnr:.2} dB");
    assert!(frame_psnr >= 40.0 && alpha_psnr >= 40.0);

    // A colour flag wins over the ini's: the background turns red, not green.
    let (red_path, red_output) = out(dir.path(), "red.png");
    let mut args = args.to_vec();
    args[5] = &red_output;
    args.extend(["--background-remover-color", "255", "0", "0"]);
    succeeded(&ff_process(&args));
    let (red, _) = ff_pipeline::testing::read_bgra(&red_path);
    let background = (0..alpha.data.len()).min_by_key(|&i| alpha.data[i]).unwrap();
    let (x, y) = (background % alpha.width, background / alpha.width);
    let (green_px, red_px) = (ours.pixel(x, y), red.pixel(x, y));
    assert!(green_px[1] > green_px[2] && red_px[2] > red_px[1], "{green_px:?} then {red_px:?}");
}

fn ff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ff"))
        .args(args)
        .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env("FF_EXECUTION_THREAD_COUNT", "2")
        .output()
        .expect("run ff")
}

/// `ff faces`: a table for people, the API's JSON with `--json`, crops on request.
#[test]
fn faces_lists_the_faces_of_a_photo_as_a_table_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let photo = asset("images/two_people.jpg");
    let table = ff(&["faces", &photo]);
    succeeded(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("2 face(s) in 1 frame(s); 2 person(s)"), "{text}");

    let crops = dir.path().join("crops");
    let json =
        ff(&["faces", "--json", "--face-selector-order", "left-right", "--crops", crops.to_str().unwrap(), &photo]);
    succeeded(&json);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON on stdout");
    assert_eq!((answer["media"].as_str(), answer["faces"].as_array().map(Vec::len)), (Some("image"), Some(2)));
    assert!(answer["faces"][0]["box"][0].as_f64() < answer["faces"][1]["box"][0].as_f64());
    assert!(crops.join("face-0.jpg").is_file() && crops.join("face-1.jpg").is_file());

    let missing = ff(&["faces", &asset("images/none.jpg")]);
    assert!(!missing.status.success());
}

/// On a terminal (a pseudo-terminal from `script`), a video's progress is a bar with frames,
/// fps and ETA, the log lines above it; through a pipe, JSON lines and no bar.
#[test]
fn process_shows_a_progress_bar_on_a_terminal_and_json_lines_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let (_, output) = out(dir.path(), "swapped.mp4");
    let args = [
        "process",
        "-s",
        &asset("images/obama.jpg"),
        "-t",
        &asset("video/short_hamilton_clip.mp4"),
        "-o",
        &output,
        "--trim-frame-end",
        "12",
        "--face-swapper-model",
        "inswapper_128",
        "--output-video-preset",
        "ultrafast",
    ];
    let transcript = dir.path().join("tty.log");
    let command = std::iter::once(env!("CARGO_BIN_EXE_ff").to_string())
        .chain(args.iter().map(|arg| format!("'{arg}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let status = Command::new("script")
        .args(["-qec", &command])
        .arg(&transcript)
        .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env("FF_EXECUTION_THREAD_COUNT", "2")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script (util-linux) runs");
    assert!(status.success());
    let screen = std::fs::read_to_string(&transcript).unwrap();
    assert!(screen.contains("12/12 frames"), "{screen}");
    assert!(screen.contains(" fps · ETA "), "{screen}");
    // The summary is printed above the bar's last state, which stays on screen.
    let summary = screen.rfind(" processed ").expect("a summary line");
    assert!(screen[summary..].contains("12/12 frames"), "{screen}");

    let piped = ff(&args);
    succeeded(&piped);
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("12/12 frames"), "no bar through a pipe: {stderr}");
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
    }
    assert!(stderr.contains("\"progress\""), "{stderr}");
}

fn ff_models(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ff"));
    command
        .arg("models")
        .args(args)
        .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
        .env_remove("FF_S3_BUCKET")
        .env_remove("FF_MODELS_S3_PREFIX");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run ff models")
}

/// `ff models upload` fills the models prefix of the storage (here FF_DATA_DIR) once.
#[test]
fn models_upload_fills_the_storage_prefix_once() {
    let data = tempfile::tempdir().unwrap();
    let prefix = Path::new("models/");
    let env = [("FF_DATA_DIR", data.path()), ("FF_MODELS_S3_PREFIX", prefix)];

    let first = ff_models(&["upload", "modnet"], &env);
    succeeded(&first);
    let stored = std::fs::read(data.path().join("models/modnet.onnx")).unwrap();
    assert_eq!(stored, std::fs::read(assets_dir().join("standins/light/modnet.onnx")).unwrap());
    let sidecar = std::fs::read_to_string(data.path().join("models/modnet.hash")).unwrap();
    assert_eq!(sidecar, std::fs::read_to_string(assets_dir().join("standins/light/modnet.hash")).unwrap());
    assert!(String::from_utf8_lossy(&first.stderr).contains("uploaded"), "{}", String::from_utf8_lossy(&first.stderr));

    let again = ff_models(&["upload", "modnet"], &env);
    succeeded(&again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already there"));

    let unset = ff_models(&["upload", "modnet"], &[("FF_DATA_DIR", data.path())]);
    assert!(!unset.status.success());
    assert!(String::from_utf8_lossy(&unset.stderr).contains("FF_MODELS_S3_PREFIX"));
}
