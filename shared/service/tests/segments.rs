//! Video jobs in segments (FF_SEGMENT_SECONDS): a job cut into segments run by several workers
//! gives the same video and audio as the job made in one piece, on both storage backends; the
//! segments also run one by one from their records (as Lambda invocations run them, one S3 event
//! each); a failed segment is retried once, then fails the job with its code; DELETE stops them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::Router;
use ff_pipeline::engine::VideoSegment;
use ff_pipeline::testing::{assets_dir, changed_box, decode_video, psnr};
use ff_pipeline::video::ReadOptions;
use ff_service::jobs::segment_run::run_segment;
use ff_service::jobs::segments::{record_key, JobSegments, Segment};
use ff_service::jobs::store::JobStore;
use ff_service::jobs::{run_job, Job, JobStatus, RunOutcome, Workers};
use ff_service::storage::ListRequest;
use ff_service::{router, AppState};

mod common;
use common::{asset, delete, fs_backend, get, s3_backend, send, Backend, Form};

const DEADLINE: Duration = Duration::from_secs(300);
/// The clip's first 100 frames in 1-second segments: its keyframes are at frames 0, 60 and 120,
/// and a cut goes to a keyframe only within half a segment of where it would fall.
const FRAMES: u64 = 100;
const RANGES: [(u64, u64); 4] = [(0, 30), (30, 60), (60, 90), (90, 100)];

on_both_backends!(a_job_in_segments_matches_the_job_in_one_piece);

fn app(backend: &Backend, overrides: &[(&str, &str)]) -> (AppState, Router) {
    let config = common::test_config(overrides, &[("FF_SEGMENT_SECONDS", "1")]);
    let state = AppState::new(config).expect("engine builds").with_storage(Arc::clone(&backend.storage));
    (state.clone(), router(state))
}

fn clip() -> Vec<u8> {
    std::fs::read(assets_dir().join("video/short_hamilton_clip.mp4")).unwrap()
}

/// A swap over the clip's first `frames` frames.
fn swap_form(frames: u64) -> Form {
    Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "hamilton.mp4", &clip())
        .text("face_swapper_model", "inswapper_128")
        .text("trim_frame_end", &frames.to_string())
        .text("output_video_preset", "ultrafast")
}

async fn create(router: &Router, form: Form) -> Job {
    let answer = send(router, form.post("/api/v1/jobs")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", String::from_utf8_lossy(&answer.body));
    serde_json::from_slice(&answer.body).unwrap()
}

async fn load(backend: &Backend, id: &str) -> Job {
    JobStore::new(Arc::clone(&backend.storage)).load(id).await.unwrap().expect("the record exists").0
}

async fn segment(backend: &Backend, id: &str, index: u32) -> Segment {
    let store = JobStore::new(Arc::clone(&backend.storage));
    store.load_record::<Segment>(&record_key(id, index)).await.unwrap().expect("the segment's record").0
}

async fn keys_under(backend: &Backend, prefix: &str) -> Vec<String> {
    let page = backend.storage.list(prefix, ListRequest::default()).await.unwrap();
    page.objects.into_iter().map(|object| object.key).collect()
}

/// GET /jobs/{id} until the job is final; every version seen.
async fn watch_until_final(router: &Router, id: &str) -> Vec<Job> {
    let started = Instant::now();
    let mut seen: Vec<Job> = Vec::new();
    loop {
        let answer = send(router, get(&format!("/api/v1/jobs/{id}"))).await;
        assert_eq!(answer.status, StatusCode::OK);
        let job: Job = serde_json::from_slice(&answer.body).unwrap();
        let done = job.status.is_final();
        seen.push(job);
        if done {
            return seen;
        }
        assert!(started.elapsed() < DEADLINE, "job still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The result of a completed job, written to `path`.
async fn save_result(router: &Router, id: &str, path: &Path) {
    let answer = send(router, get(&format!("/api/v1/jobs/{id}/result"))).await;
    let bytes = match answer.status {
        StatusCode::FOUND => {
            let url = answer.headers[LOCATION].to_str().unwrap().to_string();
            tokio::task::spawn_blocking(move || {
                ureq::get(&url).call().unwrap().body_mut().with_config().limit(100 << 20).read_to_vec().unwrap()
            })
            .await
            .unwrap()
        }
        status => {
            assert_eq!(status, StatusCode::OK);
            answer.body.to_vec()
        }
    };
    std::fs::write(path, bytes).unwrap();
}

/// The decoded audio's MD5.
fn audio_md5(path: &Path) -> String {
    let output = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Two workers run the segments; a second service with FF_SEGMENT_SECONDS=0 makes the same job in
/// one piece; the videos match frame for frame where the swap changed them, the audio exactly.
async fn a_job_in_segments_matches_the_job_in_one_piece(backend: Backend) {
    let (state, router) = app(&backend, &[("FF_WORKERS", "2")]);
    let workers = Workers::start(&state);
    let created = create(&router, swap_form(FRAMES)).await;
    let started = Instant::now();
    let seen = watch_until_final(&router, &created.id).await;
    eprintln!("{FRAMES}-frame job in segments ({}): {:?}", backend.storage.kind(), started.elapsed());
    let job = seen.last().unwrap().clone();
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.segments, Some(JobSegments { total: 4, completed: vec![0, 1, 2, 3] }));
    assert_eq!((job.frames_done, job.frames_total, job.progress), (Some(FRAMES), Some(FRAMES), 100));
    let running: Vec<&Job> = seen.iter().filter(|j| j.status == JobStatus::Running && j.segments.is_some()).collect();
    assert!(!running.is_empty(), "no version in segments was seen");
    assert!(running.windows(2).all(|pair| pair[0].frames_done <= pair[1].frames_done), "progress went back");
    assert!(keys_under(&backend, &format!("jobs/{}/segments/", job.id)).await.is_empty(), "segments left");
    workers.shutdown(Duration::from_secs(10)).await;

    let (whole_state, whole_router) = app(&backend, &[("FF_WORKERS", "1"), ("FF_SEGMENT_SECONDS", "0")]);
    let whole_workers = Workers::start(&whole_state);
    let whole = create(&whole_router, swap_form(FRAMES)).await;
    let whole = watch_until_final(&whole_router, &whole.id).await.pop().unwrap();
    assert_eq!((whole.status, whole.segments), (JobStatus::Completed, None));
    whole_workers.shutdown(Duration::from_secs(10)).await;

    let dir = tempfile::tempdir().unwrap();
    let (cut_path, whole_path) = (dir.path().join("cut.mp4"), dir.path().join("whole.mp4"));
    save_result(&router, &job.id, &cut_path).await;
    save_result(&whole_router, &whole.id, &whole_path).await;
    let cut_frames = decode_video(&cut_path, &ReadOptions::default());
    let whole_frames = decode_video(&whole_path, &ReadOptions::default());
    let read = ReadOptions { trim_frame_end: Some(FRAMES), ..Default::default() };
    let original = decode_video(&assets_dir().join("video/short_hamilton_clip.mp4"), &read);
    assert_eq!((cut_frames.len(), whole_frames.len()), (FRAMES as usize, FRAMES as usize));
    let mut changed = 0;
    for (index, ((ours, theirs), before)) in cut_frames.iter().zip(&whole_frames).zip(&original).enumerate() {
        let Some(region) = changed_box(theirs, before, 12) else { continue };
        changed += 1;
        let db = psnr(ours, theirs, Some(region));
        assert!(db >= 40.0, "frame {index}: {db:.1} dB in the changed region {region:?}");
    }
    assert!(changed > FRAMES / 2, "the swap changed only {changed} frames");
    assert_eq!(audio_md5(&cut_path), audio_md5(&whole_path), "the audio is added once, the same");
}

/// As on Lambda: no in-process worker; the job's run cuts it, then each segment's run (one per
/// S3 event) processes it; the last mark's write of the job record starts a run that joins them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_run_from_their_records_and_the_last_joins_them() {
    let backend = fs_backend();
    let (state, router) = app(&backend, &[("FF_WORKERS", "0")]);
    let created = create(&router, swap_form(FRAMES)).await;
    assert_eq!(run_job(&state, &created.id).await.unwrap(), RunOutcome::Cut { segments: 4 });
    let job = load(&backend, &created.id).await;
    assert_eq!((job.status, job.worker.as_deref(), job.lease_expires_at.as_deref()), (JobStatus::Running, None, None));
    assert_eq!(job.segments, Some(JobSegments::new(4)));
    for (index, frames) in (0u32..).zip(RANGES) {
        let record = segment(&backend, &created.id, index).await;
        assert_eq!((record.status, record.frames), (JobStatus::Queued, frames));
    }
    // A repeated trigger of the job does nothing while its segments run.
    assert_eq!(run_job(&state, &created.id).await.unwrap(), RunOutcome::Skipped { status: Some(JobStatus::Running) });

    let runs = (0..4).map(|index| {
        let (state, id) = (state.clone(), created.id.clone());
        tokio::spawn(async move { run_segment(&state, &id, index).await.unwrap() })
    });
    let outcomes: Vec<RunOutcome> =
        futures_util::future::join_all(runs).await.into_iter().map(Result::unwrap).collect();
    assert!(outcomes.iter().all(|outcome| matches!(outcome, RunOutcome::SegmentDone { .. })), "{outcomes:?}");
    // The last mark left the job all done, with no worker: its record's event starts the join.
    let ready = load(&backend, &created.id).await;
    assert_eq!((ready.status, ready.worker.as_deref(), ready.attempts), (JobStatus::Running, None, 1));
    assert_eq!(ready.segments, Some(JobSegments { total: 4, completed: vec![0, 1, 2, 3] }));
    let joined = run_job(&state, &created.id).await.unwrap();
    assert!(matches!(joined, RunOutcome::Completed { .. }), "{joined:?}");
    let job = load(&backend, &created.id).await;
    assert_eq!(job.attempts, 1, "the join is not another attempt");
    assert_eq!((job.status, job.frames_done), (JobStatus::Completed, Some(FRAMES)), "{:?}", job.error);
    // A late or repeated segment event finds nothing to do.
    assert_eq!(run_segment(&state, &created.id, 2).await.unwrap(), RunOutcome::Skipped { status: None });
    let files = keys_under(&backend, &format!("jobs/{}/", created.id)).await;
    assert!(files.iter().all(|key| !key.contains("/segments/")), "{files:?}");
}

/// A segment whose run fails goes back to the queue once; its second failure fails the job with
/// its code, and the other segments then stop without running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_is_retried_once_then_fails_the_job() {
    let backend = fs_backend();
    let (state, router) = app(&backend, &[("FF_WORKERS", "0")]);
    let created = create(&router, swap_form(FRAMES)).await;
    assert_eq!(run_job(&state, &created.id).await.unwrap(), RunOutcome::Cut { segments: 4 });
    // The target disappears under the segments (an operator's lifecycle rule, say).
    backend.storage.delete(&created.inputs.target).await.unwrap();
    let first = run_segment(&state, &created.id, 1).await.unwrap();
    assert_eq!(first, RunOutcome::SegmentRetried { index: 1, code: "input_missing".into() });
    let record = segment(&backend, &created.id, 1).await;
    assert_eq!((record.status, record.attempts), (JobStatus::Queued, 1));
    assert_eq!(load(&backend, &created.id).await.status, JobStatus::Running);
    let second = run_segment(&state, &created.id, 1).await.unwrap();
    assert_eq!(second, RunOutcome::Failed { code: "input_missing".into() });
    let job = load(&backend, &created.id).await;
    assert_eq!((job.status, job.error.map(|e| e.code)), (JobStatus::Failed, Some("input_missing".into())));
    // The failure removed the segments: a late event of another one finds nothing.
    assert!(keys_under(&backend, &format!("jobs/{}/segments/", created.id)).await.is_empty());
    assert_eq!(run_segment(&state, &created.id, 0).await.unwrap(), RunOutcome::Skipped { status: None });
    // A segment record that outlived its job's failure (its removal failed) is claimed, finds the
    // job failed, and ends without running.
    let store = JobStore::new(Arc::clone(&backend.storage));
    let late = Segment::new(&created.id, 2, VideoSegment { frames: (60, 90), keyframe: None });
    store.create_record(&record_key(&created.id, 2), &late).await.unwrap();
    let other = run_segment(&state, &created.id, 2).await.unwrap();
    assert_eq!(other, RunOutcome::Superseded { status: JobStatus::Failed });
    assert_eq!(segment(&backend, &created.id, 2).await.status, JobStatus::Cancelled);
}

/// DELETE while segments run in this process stops every one of them within a frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stops_every_running_segment() {
    let backend = fs_backend();
    // Segments of about 4 s (120 frames), so they still run when their first frame count is written.
    let (state, router) = app(&backend, &[("FF_WORKERS", "0"), ("FF_SEGMENT_SECONDS", "4")]);
    let created = create(&router, swap_form(275)).await;
    assert!(matches!(run_job(&state, &created.id).await.unwrap(), RunOutcome::Cut { .. }));
    let runs: Vec<_> = (0..2)
        .map(|index| {
            let (state, id) = (state.clone(), created.id.clone());
            tokio::spawn(async move { run_segment(&state, &id, index).await.unwrap() })
        })
        .collect();
    let started = Instant::now();
    while segment(&backend, &created.id, 0).await.frames_done == 0 {
        assert!(started.elapsed() < DEADLINE, "segment 0 shows no frames");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    assert_eq!(send(&router, delete(&format!("/api/v1/jobs/{}", created.id))).await.status, StatusCode::OK);
    for run in runs {
        assert_eq!(run.await.unwrap(), RunOutcome::Cancelled);
    }
    eprintln!("segments stopped {:?} after DELETE", asked.elapsed());
    assert!(asked.elapsed() < Duration::from_secs(3), "{:?}", asked.elapsed());
    assert!(keys_under(&backend, &format!("jobs/{}/", created.id)).await.is_empty(), "files left");
}
