//! The job API and workers, against both storage backends: every behaviour is a generic async fn
//! over a `Backend`, run by a `fs` and an `s3` test (the S3 one on a real S3-compatible server,
//! see `ff_service::storage::testing`). Jobs run real face swaps on the stand-in models.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{Request, StatusCode};
use axum::Router;
use ff_service::jobs::store::JobStore;
use ff_service::jobs::{record_key, run_job, Job, JobInputs, JobStatus, RunOutcome, Workers};
use ff_service::storage::{ListRequest, WriteCondition};
use ff_service::{router, AppState, ServiceConfig};

mod common;
use common::{asset, blank_png, delete, fs_backend, get, s3_backend, send, Backend, Form};

/// Long enough for a swap on a loaded 2-core machine running other tests at once.
const JOB_DEADLINE: Duration = Duration::from_secs(180);

fn test_config(overrides: &[(&str, &str)]) -> ServiceConfig {
    common::test_config(overrides, &[("FF_WORKERS", "1")])
}

on_both_backends!(
    a_job_runs_to_a_result_of_the_targets_size,
    a_job_over_stored_objects_runs_to_the_chosen_format,
    a_job_whose_source_has_no_face_fails_with_its_code,
    jobs_list_in_pages_and_filter_by_status,
    delete_cancels_a_queued_job_then_deletes_it,
    delete_cancels_a_running_job_and_its_worker_stops,
    a_full_queue_answers_429_before_storing_anything,
    two_workers_racing_run_each_job_once,
    start_up_requeues_queued_and_retries_running_jobs_once,
    bad_job_requests_are_rejected_and_leave_nothing,
);

/// The service over `backend`, its workers not started (tests start them when they need them).
fn app(backend: &Backend, overrides: &[(&str, &str)]) -> (AppState, Router) {
    let state =
        AppState::new(test_config(overrides)).expect("engine builds").with_storage(Arc::clone(&backend.storage));
    (state.clone(), router(state))
}

fn image_size(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("the bytes decode as an image");
    (image.width(), image.height())
}

fn swap_form() -> Form {
    Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "biden.jpg", &asset("biden.jpg"))
        .text("face_swapper_model", "inswapper_128")
}

fn json_request(body: serde_json::Value) -> Request<Body> {
    Request::post("/api/v1/jobs").header(CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

async fn create(router: &Router, request: Request<Body>) -> Job {
    let answer = send(router, request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", String::from_utf8_lossy(&answer.body));
    let job = answer.job();
    assert_eq!(answer.headers[LOCATION], format!("/api/v1/jobs/{}", job.id).as_str());
    assert_eq!((job.status, job.progress, job.attempts), (JobStatus::Queued, 0, 0));
    job
}

/// Polls the job until it reaches a final state.
async fn wait_until_final(router: &Router, id: &str) -> Job {
    let started = Instant::now();
    loop {
        let answer = send(router, get(&format!("/api/v1/jobs/{id}"))).await;
        assert_eq!(answer.status, StatusCode::OK);
        let job = answer.job();
        if job.status.is_final() {
            return job;
        }
        assert!(started.elapsed() < JOB_DEADLINE, "job {id} still {:?} after {JOB_DEADLINE:?}", job.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The result's bytes: streamed by the server, or fetched from the presigned URL it redirects to.
async fn fetch_result(router: &Router, backend: &Backend, id: &str) -> (Vec<u8>, Option<String>) {
    let answer = send(router, get(&format!("/api/v1/jobs/{id}/result"))).await;
    match backend.storage.kind() {
        "fs" => {
            assert_eq!(answer.status, StatusCode::OK);
            let mime = answer.headers[CONTENT_TYPE].to_str().unwrap().to_string();
            assert_eq!(answer.headers[CONTENT_LENGTH], answer.body.len().to_string().as_str());
            (answer.body.to_vec(), Some(mime))
        }
        _ => {
            assert_eq!(answer.status, StatusCode::FOUND, "S3 answers with a redirect");
            let url = answer.headers[LOCATION].to_str().unwrap().to_string();
            assert!(url.contains("X-Amz-Signature="), "{url}");
            let bytes = tokio::task::spawn_blocking(move || {
                ureq::get(&url).call().expect("presigned GET").body_mut().with_config().limit(100 << 20).read_to_vec()
            })
            .await
            .unwrap()
            .expect("result body");
            (bytes, None)
        }
    }
}

async fn job_files(backend: &Backend, id: &str) -> Vec<String> {
    let page = backend.storage.list(&format!("jobs/{id}/"), ListRequest::default()).await.unwrap();
    page.objects.into_iter().map(|o| o.key).collect()
}

async fn a_job_runs_to_a_result_of_the_targets_size(backend: Backend) {
    let (state, router) = app(&backend, &[]);
    let workers = Workers::start(&state);
    let created = create(&router, swap_form().post("/api/v1/jobs")).await;
    assert_eq!(created.options, serde_json::json!({"face_swapper_model": "inswapper_128"}));
    assert_eq!(created.inputs.sources, [format!("jobs/{}/inputs/source-0.jpg", created.id)]);
    assert_eq!(created.inputs.target, format!("jobs/{}/inputs/target.jpg", created.id));
    let job = wait_until_final(&router, &created.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!((job.progress, job.attempts, job.error.as_ref()), (100, 1, None));
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    assert_eq!(job.output, Some(format!("jobs/{}/result.jpg", job.id)));
    let (bytes, mime) = fetch_result(&router, &backend, &job.id).await;
    assert_eq!(image_size(&bytes), image_size(&asset("biden.jpg")));
    assert!(bytes != asset("biden.jpg"), "the face was swapped");
    if let Some(mime) = mime {
        assert_eq!(mime, "image/jpeg");
    }
    // A late or duplicate trigger for the finished job does nothing.
    let again = run_job(&state, &job.id).await.unwrap();
    assert_eq!(again, RunOutcome::Skipped { status: Some(JobStatus::Completed) });
    workers.shutdown(Duration::from_secs(10)).await;
}

async fn a_job_over_stored_objects_runs_to_the_chosen_format(backend: Backend) {
    let (state, router) = app(&backend, &[]);
    let storage = &backend.storage;
    storage.put_bytes("uploads/obama.jpg", asset("obama.jpg").into(), WriteCondition::None).await.unwrap();
    storage.put_bytes("uploads/biden.jpg", asset("biden.jpg").into(), WriteCondition::None).await.unwrap();
    let workers = Workers::start(&state);
    let body = serde_json::json!({
        "sources": ["uploads/obama.jpg"],
        "target": "uploads/biden.jpg",
        "options": {"face_swapper_model": "inswapper_128", "face_selector_mode": "one"},
        "output_format": "png",
    });
    let created = create(&router, json_request(body)).await;
    assert_eq!(
        created.inputs,
        JobInputs { sources: vec!["uploads/obama.jpg".into()], target: "uploads/biden.jpg".into() }
    );
    assert_eq!(created.output_format.as_deref(), Some("png"));
    let job = wait_until_final(&router, &created.id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.output, Some(format!("jobs/{}/result.png", job.id)));
    let (bytes, mime) = fetch_result(&router, &backend, &job.id).await;
    assert_eq!(image::guess_format(&bytes).unwrap(), image::ImageFormat::Png);
    assert_eq!(image_size(&bytes), image_size(&asset("biden.jpg")));
    if let Some(mime) = mime {
        assert_eq!(mime, "image/png");
    }
    // Deleting the job removes what it stored, never the objects it was given.
    assert_eq!(send(&router, delete(&format!("/api/v1/jobs/{}", job.id))).await.status, StatusCode::NO_CONTENT);
    assert!(storage.head("uploads/biden.jpg").await.is_ok());
    assert!(job_files(&backend, &job.id).await.is_empty());
    workers.shutdown(Duration::from_secs(10)).await;
}

async fn a_job_whose_source_has_no_face_fails_with_its_code(backend: Backend) {
    let (state, router) = app(&backend, &[]);
    let workers = Workers::start(&state);
    let form = Form::default()
        .file("source", "sky.png", &blank_png(320, 240))
        .file("target", "biden.jpg", &asset("biden.jpg"))
        .text("face_swapper_model", "inswapper_128");
    let created = create(&router, form.post("/api/v1/jobs")).await;
    assert_eq!(created.inputs.sources, [format!("jobs/{}/inputs/source-0.png", created.id)]);
    let job = wait_until_final(&router, &created.id).await;
    assert_eq!(job.status, JobStatus::Failed);
    let error = job.error.expect("a failed job says why");
    assert_eq!(error.code, "no_source_face", "{}", error.message);
    let answer = send(&router, get(&format!("/api/v1/jobs/{}/result", job.id))).await;
    answer.assert_error(StatusCode::CONFLICT, "job_failed");
    workers.shutdown(Duration::from_secs(10)).await;
}

async fn jobs_list_in_pages_and_filter_by_status(backend: Backend) {
    let (_state, router) = app(&backend, &[]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create(&router, swap_form().post("/api/v1/jobs")).await.id);
    }
    let cancelled = send(&router, delete(&format!("/api/v1/jobs/{}", ids[1]))).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    // All five, two per page, in creation order.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        let answer = send(&router, get(&format!("/api/v1/jobs?limit=2&cursor={cursor}"))).await;
        assert_eq!(answer.status, StatusCode::OK);
        let json = answer.json();
        let jobs = json["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(jobs.iter().map(|job| job["id"].as_str().unwrap().to_string()));
        match json["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
        assert!(page < 5, "pagination does not end");
    }
    assert_eq!(seen, ids);
    let queued = send(&router, get("/api/v1/jobs?status=queued&limit=100")).await.json();
    let queued: Vec<&str> = queued["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(queued, [&ids[0], &ids[2], &ids[3], &ids[4]]);
    let only = send(&router, get("/api/v1/jobs?status=cancelled")).await.json();
    assert_eq!(only["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(only["jobs"][0]["id"], ids[1].as_str());
    assert_eq!(only["next_cursor"], serde_json::Value::Null);
    assert_eq!(send(&router, get("/api/v1/jobs?status=completed")).await.json()["jobs"], serde_json::json!([]));
    for bad in ["status=done", "limit=0", "limit=101", "limit=x", "cursor=../x", "colour=red"] {
        send(&router, get(&format!("/api/v1/jobs?{bad}"))).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
}

async fn delete_cancels_a_queued_job_then_deletes_it(backend: Backend) {
    let (state, router) = app(&backend, &[]);
    let job = create(&router, swap_form().post("/api/v1/jobs")).await;
    assert_eq!(job_files(&backend, &job.id).await.len(), 2, "inputs stored");
    send(&router, get(&format!("/api/v1/jobs/{}/result", job.id)))
        .await
        .assert_error(StatusCode::CONFLICT, "job_not_finished");
    let answer = send(&router, delete(&format!("/api/v1/jobs/{}", job.id))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let cancelled = answer.job();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert!(job_files(&backend, &job.id).await.is_empty(), "its files are removed");
    // The queued trigger arrives late: nothing runs.
    let outcome = run_job(&state, &job.id).await.unwrap();
    assert_eq!(outcome, RunOutcome::Skipped { status: Some(JobStatus::Cancelled) });
    let shown = send(&router, get(&format!("/api/v1/jobs/{}", job.id))).await.job();
    assert_eq!(shown.status, JobStatus::Cancelled);
    send(&router, get(&format!("/api/v1/jobs/{}/result", job.id)))
        .await
        .assert_error(StatusCode::CONFLICT, "job_cancelled");
    // A finished job is deleted outright, record and all.
    assert_eq!(send(&router, delete(&format!("/api/v1/jobs/{}", job.id))).await.status, StatusCode::NO_CONTENT);
    assert!(backend.storage.head(&record_key(&job.id)).await.is_err());
    for uri in [format!("/api/v1/jobs/{}", job.id), "/api/v1/jobs/0190f0a4-1b2c-7d3e-8f40-123456789abc".into()] {
        send(&router, get(&uri)).await.assert_error(StatusCode::NOT_FOUND, "job_not_found");
        send(&router, delete(&uri)).await.assert_error(StatusCode::NOT_FOUND, "job_not_found");
    }
    for uri in ["/api/v1/jobs/not-a-job", "/api/v1/jobs/..%2F..%2Fetc", "/api/v1/jobs/not-a-job/result"] {
        send(&router, get(uri)).await.assert_error(StatusCode::NOT_FOUND, "job_not_found");
    }
}

/// A running job (claimed by a worker that is between steps) is cancelled; the worker's next
/// progress write finds the record no longer its own, stops, and leaves nothing behind.
async fn delete_cancels_a_running_job_and_its_worker_stops(backend: Backend) {
    let (state, router) = app(&backend, &[]);
    let job = create(&router, swap_form().post("/api/v1/jobs")).await;
    let store = JobStore::new(Arc::clone(&backend.storage));
    // Start the run, and cancel as soon as the record says running.
    let (run_state, id) = (state.clone(), job.id.clone());
    let run = tokio::spawn(async move { run_job(&run_state, &id).await });
    let started = Instant::now();
    loop {
        let (record, _) = store.load(&job.id).await.unwrap().unwrap();
        if record.status == JobStatus::Running {
            break;
        }
        assert!(record.status == JobStatus::Queued, "{:?}", record.status);
        assert!(started.elapsed() < JOB_DEADLINE);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = send(&router, delete(&format!("/api/v1/jobs/{}", job.id))).await;
    let outcome = run.await.unwrap().unwrap();
    if answer.status == StatusCode::OK {
        assert_eq!(answer.job().status, JobStatus::Cancelled);
        assert_eq!(outcome, RunOutcome::Cancelled, "the worker noticed the cancellation");
    } else {
        // The swap finished between the two calls: the job was already complete and got deleted.
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert!(matches!(outcome, RunOutcome::Completed { .. }), "{outcome:?}");
    }
    assert!(job_files(&backend, &job.id).await.is_empty(), "no files are left");
}

async fn a_full_queue_answers_429_before_storing_anything(backend: Backend) {
    // Workers not started: the one queue place stays taken.
    let (state, router) = app(&backend, &[("FF_JOB_QUEUE_LENGTH", "1")]);
    let first = create(&router, swap_form().post("/api/v1/jobs")).await;
    assert_eq!(state.job_queue().depth(), 1);
    let answer = send(&router, swap_form().post("/api/v1/jobs")).await;
    answer.assert_error(StatusCode::TOO_MANY_REQUESTS, "busy");
    assert!(answer.headers.contains_key(RETRY_AFTER));
    let listed = send(&router, get("/api/v1/jobs")).await.json();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "the refused job left no record");
    let all = backend.storage.list("jobs/", ListRequest::default()).await.unwrap();
    assert!(all.objects.iter().all(|o| o.key.contains(&first.id)), "{:?}", all.objects);
    // Once the worker takes it, there is room again.
    let workers = Workers::start(&state);
    wait_until_final(&router, &first.id).await;
    create(&router, swap_form().post("/api/v1/jobs")).await;
    workers.shutdown(Duration::from_secs(10)).await;
}

/// Every job gets two workers at once (as two triggers for one job would); exactly one runs it.
async fn two_workers_racing_run_each_job_once(backend: Backend) {
    let (state, router) = app(&backend, &[]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create(&router, swap_form().post("/api/v1/jobs")).await.id);
    }
    for id in &ids {
        let race = |_| run_job(&state, id);
        let (a, b) = tokio::join!(race(0), race(1));
        let outcomes = [a.unwrap(), b.unwrap()];
        let completed = outcomes.iter().filter(|o| matches!(o, RunOutcome::Completed { .. })).count();
        assert_eq!(completed, 1, "{outcomes:?}");
        // The loser never claimed the job, so it never ran the pipeline.
        assert!(
            outcomes.iter().any(|o| matches!(o, RunOutcome::Skipped { status: Some(_) })),
            "the loser did nothing: {outcomes:?}"
        );
        let job = send(&router, get(&format!("/api/v1/jobs/{id}"))).await.job();
        assert_eq!((job.status, job.attempts), (JobStatus::Completed, 1));
    }
}

/// A crashed server's jobs, written as it would have left them: one queued, one running on its
/// first attempt, one running on its last, both with their lease passed; and one running on
/// another live server, whose lease holds.
async fn start_up_requeues_queued_and_retries_running_jobs_once(backend: Backend) {
    let (state, router) = app(&backend, &[]);
    let store = JobStore::new(Arc::clone(&backend.storage));
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(create(&router, swap_form().post("/api/v1/jobs")).await.id);
    }
    let crash = |id: &str, attempts: u32, lease: Duration, worker: &str| {
        let store = store.clone();
        let (id, worker) = (id.to_string(), worker.to_string());
        async move {
            store
                .update(&id, |job| {
                    let mut running = job.next();
                    running.status = JobStatus::Running;
                    running.attempts = attempts;
                    running.progress = 10;
                    running.worker = Some(worker.clone());
                    running.updated_at = "2026-01-01T00:00:00Z".into();
                    running.renew_lease(lease);
                    Some(running)
                })
                .await
                .unwrap();
        }
    };
    crash(&ids[1], 1, Duration::from_secs(60), "dead-server/1").await;
    crash(&ids[2], 2, Duration::from_secs(60), "dead-server/2").await;
    // Its lease runs a century ahead: a live worker elsewhere.
    crash(&ids[3], 1, Duration::from_secs(100 * 365 * 86400), "live-server/3").await;
    // The jobs were queued in memory by the server that "crashed"; this one starts afresh.
    let (fresh_state, fresh_router) = app(&backend, &[]);
    drop(state);
    let workers = Workers::start(&fresh_state);
    let queued = wait_until_final(&fresh_router, &ids[0]).await;
    assert_eq!((queued.status, queued.attempts), (JobStatus::Completed, 1));
    let retried = wait_until_final(&fresh_router, &ids[1]).await;
    assert_eq!((retried.status, retried.attempts), (JobStatus::Completed, 2), "{:?}", retried.error);
    let lost = wait_until_final(&fresh_router, &ids[2]).await;
    assert_eq!((lost.status, lost.attempts), (JobStatus::Failed, 2));
    assert_eq!(lost.error.unwrap().code, "worker_lost");
    let elsewhere = send(&fresh_router, get(&format!("/api/v1/jobs/{}", ids[3]))).await.job();
    assert_eq!((elsewhere.status, elsewhere.worker.as_deref()), (JobStatus::Running, Some("live-server/3")));
    workers.shutdown(Duration::from_secs(10)).await;
}

async fn bad_job_requests_are_rejected_and_leave_nothing(backend: Backend) {
    let (_state, router) = app(&backend, &[]);
    let no_target = Form::default().file("source", "obama.jpg", &asset("obama.jpg")).post("/api/v1/jobs");
    send(&router, no_target).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let bad_option = swap_form().text("face_swapper_modle", "x").post("/api/v1/jobs");
    send(&router, bad_option).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    let not_image = Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "notes.txt", b"plain text")
        .post("/api/v1/jobs");
    send(&router, not_image).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
    let no_source = Form::default().file("target", "biden.jpg", &asset("biden.jpg")).post("/api/v1/jobs");
    let message = send(&router, no_source).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("source"), "{message}");
    let missing = json_request(serde_json::json!({"sources": ["uploads/none.jpg"], "target": "uploads/none2.jpg"}));
    let message = send(&router, missing).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("uploads/none.jpg"), "{message}");
    // Only uploads: not other jobs' files, results or models, whether or not they exist.
    let not_upload = json_request(serde_json::json!({"sources": ["uploads/a"], "target": "jobs/x/result.png"}));
    let message = send(&router, not_upload).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("uploads/"), "{message}");
    let escape = json_request(serde_json::json!({"sources": ["../x.jpg"], "target": "t.jpg"}));
    send(&router, escape).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let unknown_field = json_request(serde_json::json!({"target": "t.jpg", "colour": "red"}));
    send(&router, unknown_field).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let bad_json_option =
        json_request(serde_json::json!({"sources": ["a.jpg"], "target": "t.jpg", "options": {"face_mask_blur": 7}}));
    send(&router, bad_json_option).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    let text = Request::post("/api/v1/jobs").header(CONTENT_TYPE, "text/plain").body(Body::from("hi")).unwrap();
    send(&router, text).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let listed = backend.storage.list("", ListRequest::default()).await.unwrap();
    assert!(listed.objects.is_empty(), "rejected requests stored {:?}", listed.objects);
}
