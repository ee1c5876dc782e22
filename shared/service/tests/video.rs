//! Video targets through the API: POST /api/v1/process for short clips, jobs with frame progress and
//! cancellation (in this process and from another one), and batch; storage-backed behaviours on both
//! backends. Every run swaps real faces on the stand-in models over a few frames of the Hamilton clip,
//! and every result is probed with ffprobe.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::{Request, StatusCode};
use axum::Router;
use ff_pipeline::testing::assets_dir;
use ff_pipeline::video::{Toolchain, VideoInfo};
use ff_service::batch::{process_inbox_object, BatchOutcome};
use ff_service::jobs::store::JobStore;
use ff_service::jobs::worker::PROGRESS_INTERVAL;
use ff_service::jobs::{run_job, Job, JobStatus, RunOutcome, Workers};
use ff_service::storage::{ListRequest, WriteCondition};
use ff_service::{router, AppState, X_FACES_PROCESSED, X_FRAMES_PROCESSED};

mod common;
use common::{asset, delete, fs_backend, get, s3_backend, send, Backend, Form};

/// Long enough for a few dozen frames on a loaded 2-core machine running other tests at once.
const DEADLINE: Duration = Duration::from_secs(300);

on_both_backends!(
    a_video_job_reports_frames_and_its_result_plays,
    delete_stops_a_running_video_job_within_a_frame,
    a_delete_from_another_process_stops_the_video_at_its_next_progress_write,
    job_creation_refuses_too_long_and_damaged_videos_before_storing,
    json_jobs_over_stored_videos_run_or_fail_with_video_too_long,
    an_inbox_video_lands_in_the_outbox_as_a_video,
    a_lip_sync_job_speaks_the_audio_onto_the_video,
);

fn clip() -> Vec<u8> {
    let path = assets_dir().join("video/short_hamilton_clip.mp4");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A service whose video runs work under their own FF_TEMP_DIR, so a test can see what is left.
struct App {
    state: AppState,
    router: Router,
    temp: tempfile::TempDir,
}

impl App {
    fn new(backend: Option<&Backend>, overrides: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let temp_path = temp.path().to_string_lossy().into_owned();
        let mut settings = vec![("FF_TEMP_DIR", temp_path.as_str())];
        settings.extend_from_slice(overrides);
        let config = common::test_config(&settings, &[("FF_WORKERS", "1")]);
        let mut state = AppState::new(config).expect("engine builds");
        if let Some(backend) = backend {
            state = state.with_storage(Arc::clone(&backend.storage));
        }
        Self { router: router(state.clone()), state, temp }
    }

    /// What video runs left in FF_TEMP_DIR.
    fn leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.temp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// A swap over the first `frames` frames of the clip, encoded fast.
fn video_form(frames: u64) -> Form {
    Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "hamilton.mp4", &clip())
        .text("face_swapper_model", "inswapper_128")
        .text("trim_frame_end", &frames.to_string())
        .text("output_video_preset", "ultrafast")
}

/// ffprobe's view of encoded bytes.
fn probe_bytes(bytes: &[u8], extension: &str) -> VideoInfo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("result.{extension}"));
    std::fs::write(&path, bytes).unwrap();
    Toolchain::from_env().probe(&path).unwrap_or_else(|e| panic!("the result does not probe as a video: {e}"))
}

/// The clip's audio only, in an MP4 container (magic numbers of a video, no video stream).
fn audio_only_mp4(dir: &Path) -> Vec<u8> {
    let source = assets_dir().join("video/short_hamilton_clip.mp4");
    let path = dir.join("audio-only.mp4");
    let status = std::process::Command::new(Toolchain::from_env().ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(&source)
        .args(["-vn", "-c:a", "copy", "-t", "1", "-brand", "isom"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::read(&path).unwrap()
}

/// The first bytes of an MP4 and then nothing a demuxer could use.
fn damaged_mp4() -> Vec<u8> {
    let mut bytes = clip()[..32].to_vec();
    bytes.extend(std::iter::repeat_n(0x5A, 4096));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_answers_a_short_video_with_its_frames_and_audio() {
    let app = App::new(None, &[]);
    let started = Instant::now();
    // 30 frames: the clip's picture starts 0.85 s in, and a shorter trim keeps no audio (see the
    // pipeline's audio restore), so 10 frames would not show that the audio is kept.
    let answer = send(&app.router, video_form(30).post("/api/v1/process")).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
    );
    eprintln!("POST /process, 30 frames: {:?}", started.elapsed());
    assert_eq!(answer.headers[CONTENT_TYPE], "video/mp4");
    assert_eq!(answer.headers[CONTENT_DISPOSITION], "inline; filename=\"hamilton.mp4\"");
    assert_eq!(answer.headers[X_FRAMES_PROCESSED], "30");
    let faces: usize = answer.headers[X_FACES_PROCESSED].to_str().unwrap().parse().unwrap();
    assert!(faces >= 1, "Hamilton's face was swapped in some frame");
    let info = probe_bytes(&answer.body, "mp4");
    assert_eq!((info.width, info.height, info.frame_count), (640, 360, 30));
    assert!(info.has_audio, "the target's audio is kept");
    assert!((info.duration - 30.0 / 29.97).abs() < 0.05, "{}", info.duration);
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_refuses_videos_that_are_too_long_damaged_or_misplaced() {
    let app = App::new(None, &[("FF_MAX_SYNC_VIDEO_SECS", "1")]);
    // The whole 9-second clip: refused after probing, before any frame is decoded.
    let whole = Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "hamilton.mp4", &clip())
        .text("face_swapper_model", "inswapper_128");
    let message = send(&app.router, whole.post("/api/v1/process"))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "video_too_long");
    assert!(message.contains("/api/v1/jobs"), "{message}");

    let damaged =
        Form::default().file("source", "obama.jpg", &asset("obama.jpg")).file("target", "x.mp4", &damaged_mp4());
    send(&app.router, damaged.post("/api/v1/process"))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");

    let scratch = tempfile::tempdir().unwrap();
    let silent_film = Form::default().file("source", "obama.jpg", &asset("obama.jpg")).file(
        "target",
        "audio.mp4",
        &audio_only_mp4(scratch.path()),
    );
    let message = send(&app.router, silent_film.post("/api/v1/process"))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");
    assert!(message.contains("no video stream"), "{message}");

    let video_source =
        Form::default().file("source", "clip.mp4", &clip()).file("target", "biden.jpg", &asset("biden.jpg"));
    let message = send(&app.router, video_source.post("/api/v1/process"))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
    assert!(message.contains("is a video"), "{message}");

    let png_of_a_video = video_form(10).text("output_format", "png");
    send(&app.router, png_of_a_video.post("/api/v1/process"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

async fn create(router: &Router, form: Form) -> Job {
    let answer = send(router, form.post("/api/v1/jobs")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", String::from_utf8_lossy(&answer.body));
    serde_json::from_slice(&answer.body).unwrap()
}

async fn load(backend: &Backend, id: &str) -> Job {
    JobStore::new(Arc::clone(&backend.storage)).load(id).await.unwrap().expect("the record exists").0
}

async fn job_files(backend: &Backend, id: &str) -> Vec<String> {
    let page = backend.storage.list(&format!("jobs/{id}/"), ListRequest::default()).await.unwrap();
    page.objects.into_iter().map(|o| o.key).collect()
}

/// The result's bytes: streamed by the server (checking its type), or from the presigned URL.
async fn fetch_result(router: &Router, id: &str) -> Vec<u8> {
    let answer = send(router, get(&format!("/api/v1/jobs/{id}/result"))).await;
    if answer.status == StatusCode::FOUND {
        let url = answer.headers[LOCATION].to_str().unwrap().to_string();
        return tokio::task::spawn_blocking(move || {
            ureq::get(&url).call().expect("presigned GET").body_mut().with_config().limit(100 << 20).read_to_vec()
        })
        .await
        .unwrap()
        .expect("result body");
    }
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[CONTENT_TYPE], "video/mp4");
    answer.body.to_vec()
}

async fn a_video_job_reports_frames_and_its_result_plays(backend: Backend) {
    let app = App::new(Some(&backend), &[]);
    let workers = Workers::start(&app.state);
    let created = create(&app.router, video_form(60)).await;
    assert_eq!(created.inputs.target, format!("jobs/{}/inputs/target.mp4", created.id));
    let started = Instant::now();
    let mut seen: Vec<Job> = Vec::new();
    let job = loop {
        let job = load(&backend, &created.id).await;
        if seen.last().is_none_or(|last| last.revision != job.revision) {
            seen.push(job.clone());
        }
        if job.status.is_final() {
            break job;
        }
        assert!(started.elapsed() < DEADLINE, "job still {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let wall = started.elapsed();
    eprintln!("60-frame video job ({}): {wall:?}, {} record versions", backend.storage.kind(), job.revision);
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!((job.frames_done, job.frames_total, job.progress), (Some(60), Some(60), 100));
    assert!(job.fps.is_some_and(|fps| fps > 0.0));
    // Progress moved while frames were processed, never backwards.
    let running: Vec<&Job> =
        seen.iter().filter(|j| j.status == JobStatus::Running && j.frames_total.is_some()).collect();
    assert!(!running.is_empty(), "no running record with frame progress was seen");
    assert!(running.windows(2).all(|w| w[0].frames_done <= w[1].frames_done && w[0].progress <= w[1].progress));
    // About one write a second: claim, start, progress, the last frame and completion, not one per frame.
    assert!(job.revision <= wall.as_secs() + 6, "{} writes in {wall:?}", job.revision);
    let bytes = fetch_result(&app.router, &job.id).await;
    let info = probe_bytes(&bytes, "mp4");
    assert_eq!((info.width, info.height, info.frame_count), (640, 360, 60));
    assert!(info.has_audio);
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
    workers.shutdown(Duration::from_secs(10)).await;
}

/// The job's record once it is completed, failed or cancelled.
async fn wait_until_final(backend: &Backend, id: &str) -> Job {
    let started = Instant::now();
    loop {
        let job = load(backend, id).await;
        if job.status.is_final() {
            return job;
        }
        assert!(started.elapsed() < DEADLINE, "job still {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// lip_syncer as a job: the sample speech onto 20 frames of the lip-sync target; the result carries
/// the speech as its sound.
async fn a_lip_sync_job_speaks_the_audio_onto_the_video(backend: Backend) {
    let app = App::new(Some(&backend), &[]);
    let workers = Workers::start(&app.state);
    let read = |relative: &str| std::fs::read(assets_dir().join(relative)).unwrap();
    let form = Form::default()
        .file("source", "speech.wav", &read("audio/wav2lip_sample_speech.wav"))
        .file("target", "face.mp4", &read("video/wav2lip_sample_target.mp4"))
        .text("processors", "lip_syncer")
        .text("trim_frame_end", "20")
        .text("output_video_preset", "ultrafast");
    let created = create(&app.router, form).await;
    let job = wait_until_final(&backend, &created.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!((job.frames_done, job.frames_total), (Some(20), Some(20)));
    let info = probe_bytes(&fetch_result(&app.router, &job.id).await, "mp4");
    assert_eq!((info.width, info.height, info.frame_count), (480, 720, 20));
    assert!(info.has_audio, "the speech is the result's sound");
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
    workers.shutdown(Duration::from_secs(10)).await;
}

/// Waits until the job's record shows frames being processed.
async fn wait_for_frames(backend: &Backend, id: &str) {
    let started = Instant::now();
    loop {
        let job = load(backend, id).await;
        assert!(!job.status.is_final(), "the job ended before it could be cancelled: {:?}", job.error);
        if job.frames_done.is_some_and(|done| done > 0) {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "no frame progress after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// DELETE in the process running the job: the shared flag stops the pipeline within a frame.
async fn delete_stops_a_running_video_job_within_a_frame(backend: Backend) {
    let app = App::new(Some(&backend), &[]);
    let job = create(&app.router, video_form(275)).await;
    let (state, id) = (app.state.clone(), job.id.clone());
    let run = tokio::spawn(async move { run_job(&state, &id).await });
    wait_for_frames(&backend, &job.id).await;
    let asked = Instant::now();
    let answer = send(&app.router, delete(&format!("/api/v1/jobs/{}", job.id))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let outcome = run.await.unwrap().unwrap();
    let latency = asked.elapsed();
    eprintln!("in-process cancel ({}): run ended {latency:?} after DELETE", backend.storage.kind());
    assert_eq!(outcome, RunOutcome::Cancelled);
    assert!(latency < Duration::from_secs(3), "{latency:?}");
    let record = load(&backend, &job.id).await;
    assert_eq!((record.status, record.output), (JobStatus::Cancelled, None));
    assert!(job_files(&backend, &job.id).await.is_empty(), "no inputs or partial result stored");
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

/// DELETE from another process (its own `AppState`, as the Lambda delete function is): the worker
/// finds the record cancelled at its next progress write and stops.
async fn a_delete_from_another_process_stops_the_video_at_its_next_progress_write(backend: Backend) {
    let worker = App::new(Some(&backend), &[]);
    let other = App::new(Some(&backend), &[]);
    let job = create(&other.router, video_form(275)).await;
    let (state, id) = (worker.state.clone(), job.id.clone());
    let run = tokio::spawn(async move { run_job(&state, &id).await });
    wait_for_frames(&backend, &job.id).await;
    let asked = Instant::now();
    assert_eq!(send(&other.router, delete(&format!("/api/v1/jobs/{}", job.id))).await.status, StatusCode::OK);
    let outcome = run.await.unwrap().unwrap();
    let latency = asked.elapsed();
    eprintln!("cross-process cancel ({}): run ended {latency:?} after DELETE", backend.storage.kind());
    assert_eq!(outcome, RunOutcome::Cancelled);
    assert!(latency < PROGRESS_INTERVAL + Duration::from_secs(3), "{latency:?}");
    assert!(job_files(&backend, &job.id).await.is_empty());
    assert!(worker.leftovers().is_empty(), "{:?}", worker.leftovers());
}

async fn job_creation_refuses_too_long_and_damaged_videos_before_storing(backend: Backend) {
    let app = App::new(Some(&backend), &[("FF_MAX_JOB_VIDEO_SECS", "2")]);
    let whole = Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "hamilton.mp4", &clip())
        .text("face_swapper_model", "inswapper_128");
    let message = send(&app.router, whole.post("/api/v1/jobs"))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "video_too_long");
    assert!(message.contains("at most 2 s"), "{message}");
    let damaged =
        Form::default().file("source", "obama.jpg", &asset("obama.jpg")).file("target", "x.mp4", &damaged_mp4());
    send(&app.router, damaged.post("/api/v1/jobs"))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_media");
    let listed = backend.storage.list("", ListRequest::default()).await.unwrap();
    assert!(listed.objects.is_empty(), "refused jobs stored {:?}", listed.objects);
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

async fn an_inbox_video_lands_in_the_outbox_as_a_video(backend: Backend) {
    let app = App::new(Some(&backend), &[]);
    let storage = &backend.storage;
    storage.put_bytes("sources/obama.jpg", asset("obama.jpg").into(), WriteCondition::None).await.unwrap();
    // An image output_format in the options applies to images only: the video keeps its container.
    let sidecar = serde_json::json!({
        "face_swapper_model": "inswapper_128",
        "trim_frame_end": 10,
        "output_video_preset": "ultrafast",
        "sources": ["sources/obama.jpg"],
        "output_format": "png",
    });
    storage.put_bytes("inbox/clip.mp4.json", sidecar.to_string().into(), WriteCondition::None).await.unwrap();
    storage.put_bytes("inbox/clip.mp4", clip().into(), WriteCondition::None).await.unwrap();
    let outcome = process_inbox_object(&app.state, "inbox/clip.mp4").await.expect("storage works");
    assert_eq!(outcome, BatchOutcome::Completed { output: "outbox/clip.mp4".into() });
    let (bytes, _) = storage.get_bytes("outbox/clip.mp4", 1 << 30).await.expect("the result exists");
    let info = probe_bytes(&bytes, "mp4");
    assert_eq!((info.width, info.height, info.frame_count), (640, 360, 10));
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
    // A damaged video fails to a report with its code.
    storage.put_bytes("inbox/broken.mp4.json", sidecar.to_string().into(), WriteCondition::None).await.unwrap();
    storage.put_bytes("inbox/broken.mp4", damaged_mp4().into(), WriteCondition::None).await.unwrap();
    let outcome = process_inbox_object(&app.state, "inbox/broken.mp4").await.expect("storage works");
    assert_eq!(outcome, BatchOutcome::Failed { code: "invalid_media".into(), report: "failed/broken.mp4.json".into() });
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

/// A JSON job names a video already in storage: it cannot be probed at creation, so the worker
/// checks FF_MAX_JOB_VIDEO_SECS and fails the job with the same code.
async fn json_jobs_over_stored_videos_run_or_fail_with_video_too_long(backend: Backend) {
    let app = App::new(Some(&backend), &[("FF_MAX_JOB_VIDEO_SECS", "2")]);
    let storage = &backend.storage;
    storage.put_bytes("uploads/obama.jpg", asset("obama.jpg").into(), WriteCondition::None).await.unwrap();
    storage.put_bytes("uploads/clip.mov", clip().into(), WriteCondition::None).await.unwrap();
    let job_over = |trim: Option<u64>| {
        let mut options =
            serde_json::json!({"face_swapper_model": "inswapper_128", "output_video_preset": "ultrafast"});
        if let Some(end) = trim {
            options["trim_frame_end"] = end.into();
        }
        let body =
            serde_json::json!({"sources": ["uploads/obama.jpg"], "target": "uploads/clip.mov", "options": options});
        Request::post("/api/v1/jobs")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let short = send(&app.router, job_over(Some(10))).await;
    assert_eq!(short.status, StatusCode::ACCEPTED, "{}", short.json());
    let short: Job = serde_json::from_slice(&short.body).unwrap();
    let outcome = run_job(&app.state, &short.id).await.unwrap();
    // The container follows the target's name: a .mov stays a .mov.
    assert_eq!(outcome, RunOutcome::Completed { output: format!("jobs/{}/result.mov", short.id) });
    let (bytes, _) = storage.get_bytes(&format!("jobs/{}/result.mov", short.id), 1 << 30).await.unwrap();
    assert_eq!(probe_bytes(&bytes, "mov").frame_count, 10);

    let long: Job = serde_json::from_slice(&send(&app.router, job_over(None)).await.body).unwrap();
    let outcome = run_job(&app.state, &long.id).await.unwrap();
    assert_eq!(outcome, RunOutcome::Failed { code: "video_too_long".into() });
    let record = load(&backend, &long.id).await;
    assert!(record.error.unwrap().message.contains("at most 2 s"));
    assert!(storage.head("uploads/clip.mov").await.is_ok(), "the named input is left alone");
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

/// Speech synthesised by espeak-ng, about a second of it.
fn speech(dir: &Path) -> Vec<u8> {
    let path = dir.join("speech.wav");
    let status = std::process::Command::new("espeak-ng").arg("-w").arg(&path).arg("Hello there.").status();
    assert!(status.expect("espeak-ng on PATH").success());
    std::fs::read(&path).unwrap()
}

/// An image target with an audio source and lip_syncer: the photo speaks, as an MP4 with the speech.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_makes_a_photo_speak_an_audio_source() {
    let app = App::new(None, &[]);
    let scratch = tempfile::tempdir().unwrap();
    let form = Form::default()
        .file("source", "speech.wav", &speech(scratch.path()))
        .file("target", "obama.jpg", &asset("obama.jpg"))
        .text("processors", "lip_syncer")
        .text("output_video_preset", "ultrafast");
    let answer = send(&app.router, form.post("/api/v1/process")).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
    );
    assert_eq!(answer.headers[CONTENT_TYPE], "video/mp4");
    assert_eq!(answer.headers[CONTENT_DISPOSITION], "inline; filename=\"obama.mp4\"");
    let info = probe_bytes(&answer.body, "mp4");
    assert!(info.has_audio, "the speech is in the video");
    assert!(info.frame_count >= 10, "{} frames", info.frame_count);
    assert_eq!(answer.headers[X_FRAMES_PROCESSED], info.frame_count.to_string().as_str());
    // An audio source without lip_syncer has nothing to speak it.
    let mute = Form::default()
        .file("source", "speech.wav", &speech(scratch.path()))
        .file("target", "obama.jpg", &asset("obama.jpg"))
        .text("processors", "face_enhancer");
    send(&app.router, mute.post("/api/v1/process")).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

/// A photo asked to speak audio longer than FF_MAX_SYNC_VIDEO_SECS is a 413; a damaged audio source
/// a 422 naming it, and nothing is left behind either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_refuses_long_or_damaged_speech_for_a_photo() {
    let app = App::new(None, &[("FF_MAX_SYNC_VIDEO_SECS", "1")]);
    let speech_form = |audio: &[u8]| {
        Form::default()
            .file("source", "speech.wav", audio)
            .file("target", "obama.jpg", &asset("obama.jpg"))
            .text("processors", "lip_syncer")
    };
    let long = std::fs::read(ff_pipeline::testing::assets_dir().join("audio/wav2lip_sample_speech.wav")).unwrap();
    let answer = send(&app.router, speech_form(&long).post("/api/v1/process")).await;
    answer.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "video_too_long");
    let mut damaged = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    damaged.extend(std::iter::repeat_n(0x5a, 200));
    let answer = send(&app.router, speech_form(&damaged).post("/api/v1/process")).await;
    answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "audio_unreadable");
    assert!(app.leftovers().is_empty(), "{:?}", app.leftovers());
}

/// A video request over FF_REQUEST_TIMEOUT_SECS answers 503; the dropped handler cancels the run,
/// which gives its processing slot back and removes its directory within moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_video_request_stops_its_run_and_leaves_nothing() {
    let app = App::new(None, &[("FF_REQUEST_TIMEOUT_SECS", "2")]);
    let answer = send(&app.router, video_form(275).post("/api/v1/process")).await;
    answer.assert_error(StatusCode::SERVICE_UNAVAILABLE, "timeout");
    let timed_out = Instant::now();
    while !(app.leftovers().is_empty() && app.state.limiter().idle_slots() == 2) {
        assert!(timed_out.elapsed() < Duration::from_secs(5), "still running: {:?}", app.leftovers());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("timed-out /process run cleaned up {:?} after the 503", timed_out.elapsed());
}
