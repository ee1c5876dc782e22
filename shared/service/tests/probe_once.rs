//! A video is probed once: `FF_FFPROBE` points at a wrapper that logs every call before running the
//! real ffprobe, and a `/process` video and a video job (probed when created, run by a worker) each
//! probe their target exactly once. The encoder's own probes of the result it wrote (to time the
//! audio cut as FaceFusion does, and to check the audio made it in) are counted apart.
//!
//! Its own test binary: the variable is process-wide, and no other test may share the wrapper.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use ff_pipeline::testing::assets_dir;
use ff_service::jobs::{Job, JobStatus, Workers};
use ff_service::{router, AppState};

mod common;
use common::{asset, get, send, Form};

/// The wrapper: appends its arguments as one line to `log`, then becomes the real ffprobe.
fn counting_ffprobe(dir: &Path, log: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let real = std::env::var("FF_FFPROBE").unwrap_or_else(|_| "ffprobe".into());
    let script = dir.join("ffprobe");
    let text = format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n", log.display(), real);
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Calls since the last look: (probes of a run's target, all probes).
fn calls(log: &Path, seen: &mut usize) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().skip(*seen).collect();
    *seen += lines.len();
    let target = lines.iter().filter(|line| line.contains("/target.")).count();
    (target, lines.len())
}

fn clip_form(frames: u64) -> Form {
    let clip = std::fs::read(assets_dir().join("video/short_hamilton_clip.mp4")).unwrap();
    Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "hamilton.mp4", &clip)
        .text("face_swapper_model", "inswapper_128")
        .text("trim_frame_end", &frames.to_string())
        .text("output_video_preset", "ultrafast")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_video_and_a_video_job_probe_their_target_once() {
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("calls.log");
    let wrapper = counting_ffprobe(tools.path(), &log);
    // Before any engine or toolchain exists, and the only test of this binary.
    std::env::set_var("FF_FFPROBE", &wrapper);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let config = common::test_config(&[("FF_DATA_DIR", data_dir.as_str())], &[("FF_WORKERS", "1")]);
    let state = AppState::new(config).expect("engine builds");
    let app = router(state.clone());
    let mut seen = 0;

    // 30 frames: the clip's sound covers them, so the encoder muxes audio in (and probes its result).
    let answer = send(&app, clip_form(30).post("/api/v1/process")).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
    );
    let (target, all) = calls(&log, &mut seen);
    eprintln!("POST /process video: {target} probe(s) of the target, {all} ffprobe call(s) in all");
    assert_eq!(target, 1, "the /process target is probed once");

    let workers = Workers::start(&state);
    let created = send(&app, clip_form(30).post("/api/v1/jobs")).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&created.body));
    let job: Job = serde_json::from_slice(&created.body).unwrap();
    assert!(job.target_video.is_some(), "the record keeps the probe made at creation");
    let (at_creation, _) = calls(&log, &mut seen);
    let started = Instant::now();
    let job = loop {
        let answer = send(&app, get(&format!("/api/v1/jobs/{}", job.id))).await;
        let job: Job = serde_json::from_slice(&answer.body).unwrap();
        if job.status.is_final() {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "job still {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let (in_worker, all) = calls(&log, &mut seen);
    eprintln!("video job: {at_creation} probe(s) at creation, {in_worker} in the worker, {all} worker call(s) in all");
    assert_eq!(at_creation + in_worker, 1, "the job's target is probed once, when the job is created");
    workers.shutdown(Duration::from_secs(10)).await;
}
