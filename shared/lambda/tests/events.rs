//! Every payload in `events/` through the function it is for, the way Lambda runs it: the JSON is
//! deserialised by lambda_http into a request, the function's router answers, and the answer is
//! serialised into the function-URL response JSON Lambda hands back to the caller (status, headers,
//! body, base64 flag). S3 events go through the worker's handler the same way. The same files work
//! with `cargo lambda invoke --data-file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use ff_lambda::worker::handle_s3_event;
use ff_lambda::{dispatch, function_router, Function};
use ff_pipeline::engine::VideoSegment;
use ff_pipeline::testing::assets_dir;
use ff_service::jobs::segments::{record_key, JobSegments, Segment};
use ff_service::jobs::store::JobStore;
use ff_service::jobs::{new_job_id, Job, JobInputs, JobStatus};
use ff_service::storage::{FsStorage, Storage, WriteCondition};
use ff_service::{AppState, ServiceConfig};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::Value;
use tower::ServiceExt;

/// One fixture, the function it is sent to and what must come back.
struct Case {
    function: Function,
    file: &'static str,
    status: u16,
    check: fn(&Answer),
}

/// The fixtures that need no stored jobs; the job and worker fixtures run in order in
/// `a_job_runs_through_its_functions_and_the_worker`.
const CASES: &[Case] = &[
    Case { function: Function::Process, file: "process/no-source-face.json", status: 422, check: no_source_face },
    Case { function: Function::Process, file: "process/health.json", status: 200, check: healthy },
    Case { function: Function::Models, file: "models/list.json", status: 200, check: downloaded_swapper_models },
    Case { function: Function::Models, file: "models/download.json", status: 200, check: all_present },
    Case { function: Function::Models, file: "models/download-unknown.json", status: 400, check: unknown_model },
    Case { function: Function::Models, file: "models/processors.json", status: 200, check: face_swapper_listed },
    Case { function: Function::System, file: "system/system.json", status: 200, check: system_described },
    Case { function: Function::System, file: "system/not-this-function.json", status: 404, check: not_found },
];

/// What Lambda would return for one invocation.
struct Answer {
    json: Value,
    body: Vec<u8>,
}

impl Answer {
    fn status(&self) -> u16 {
        self.json["statusCode"].as_u64().and_then(|code| u16::try_from(code).ok()).unwrap_or(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.json["headers"][name].as_str()
    }

    fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.json))
    }

    fn error_code(&self) -> String {
        self.body_json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// The stand-in models, never a download, so the fixtures answer the same on every machine.
/// The job id in the job fixtures; the tests put the id of the job they created in its place.
const FIXTURE_JOB_ID: &str = "0192f1a2-3b4c-7d5e-8f60-718293a4b5c6";
/// The bucket the S3 fixtures name, as template.yaml would name it.
const FIXTURE_BUCKET: &str = "ff-data-123456789012-eu-west-1";

/// The stand-in models, all present, so nothing is ever fetched and the fixtures answer the same on
/// every machine (downloads are allowed only so that the download fixture, which names models
/// already there, gets its 200 rather than 403 `model_download_disabled`); the bucket of the
/// fixtures over `storage`, as the Lambda functions see S3 (FF_WORKERS=0).
fn state_with(storage: Arc<dyn Storage>) -> AppState {
    state_with_vars(storage, &[])
}

/// [`state_with`] with `extra` settings, which win.
fn state_with_vars(storage: Arc<dyn Storage>, extra: &[(&str, &str)]) -> AppState {
    let models = assets_dir().join("standins/light").to_string_lossy().into_owned();
    let vars = [
        ("FF_MODELS_DIR", models.as_str()),
        ("FF_ALLOW_MODEL_DOWNLOAD", "true"),
        ("FF_EXECUTION_THREAD_COUNT", "1"),
        ("FF_MAX_CONCURRENT_REQUESTS", "2"),
        ("FF_MAX_QUEUED_REQUESTS", "3"),
        ("FF_S3_BUCKET", FIXTURE_BUCKET),
        ("FF_WORKERS", "0"),
    ];
    let config = ServiceConfig::from_lookup(|name| {
        extra.iter().chain(&vars).find(|(key, _)| *key == name).map(|(_, v)| v.to_string())
    })
    .expect("test configuration is valid");
    AppState::new(config).expect("engine builds").with_storage(storage)
}

/// For fixtures that never reach storage.
fn state() -> AppState {
    state_with(Arc::new(FsStorage::new(std::env::temp_dir().join("ff-lambda-events-no-jobs"))))
}

fn read_event(file: &str) -> Value {
    let path = events_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Invokes the function's handler with the payload exactly as `lambda_http::run` does.
async fn invoke(function: Function, state: AppState, payload: Value) -> Answer {
    let request: LambdaRequest = serde_json::from_value(payload).expect("a function-URL payload");
    let adapter = Adapter::from(function_router(function, state));
    let response = adapter.oneshot(LambdaEvent::new(request, Context::default())).await.expect("infallible");
    let json = serde_json::to_value(&response).expect("the response serialises");
    let body = match json["body"].as_str() {
        None => Vec::new(),
        Some(text) if json["isBase64Encoded"] == Value::Bool(true) => {
            base64::engine::general_purpose::STANDARD.decode(text).expect("base64 body")
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    Answer { json, body }
}

#[tokio::test]
async fn every_fixture_gets_its_documented_answer() {
    let state = state();
    for case in CASES {
        let answer = invoke(case.function, state.clone(), read_event(case.file)).await;
        assert_eq!(answer.status(), case.status, "{}: {:?}", case.file, String::from_utf8_lossy(&answer.body));
        (case.check)(&answer);
    }
}

#[tokio::test]
async fn a_function_answers_only_its_own_routes() {
    let state = state();
    let job_fixtures = [
        (Function::JobCreate, "job-create/from-stored-objects.json"),
        (Function::JobStatus, "job-status/show.json"),
        (Function::JobResult, "job-result/result.json"),
        (Function::JobDelete, "job-delete/delete.json"),
    ];
    let owned = CASES.iter().filter(|case| case.status != 404).map(|case| (case.function, case.file));
    for (function, file) in owned.chain(job_fixtures) {
        let event = read_event(file);
        let path = event["rawPath"].as_str().unwrap_or_default().to_string();
        let method = event["requestContext"]["http"]["method"].as_str().unwrap_or_default().to_string();
        for other in Function::ALL.into_iter().filter(|f| *f != function) {
            let route_matches = |route: &str| {
                let (route, path) = (route.split('/').collect::<Vec<_>>(), path.split('/').collect::<Vec<_>>());
                route.len() == path.len() && route.iter().zip(&path).all(|(r, p)| r == p || r.starts_with('{'))
            };
            if other.routes().iter().any(|(m, route)| m.as_str() == method && route_matches(route)) {
                continue;
            }
            let answer = invoke(other, state.clone(), event.clone()).await;
            let status = answer.status();
            assert!(matches!(status, 404 | 405), "{method} {path} on {other:?}: {status}");
            assert!(matches!(answer.error_code().as_str(), "not_found" | "method_not_allowed"), "{path} on {other:?}");
        }
    }
}

/// The job fixtures in the order a client and S3 would send them, each through its own function:
/// create → (S3 event) worker → status → result → duplicate event → delete → status again.
#[tokio::test]
async fn a_job_runs_through_its_functions_and_the_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()));
    let state = state_with(Arc::clone(&storage));
    let image = |name: &str| std::fs::read(assets_dir().join("images").join(name)).expect("test image");
    for (key, name) in [("uploads/source.jpg", "obama.jpg"), ("uploads/target.jpg", "biden.jpg")] {
        storage.put_bytes(key, image(name).into(), WriteCondition::None).await.expect("seeded input");
    }

    let created = invoke(Function::JobCreate, state.clone(), read_event("job-create/from-stored-objects.json")).await;
    assert_eq!(created.status(), 202, "{:?}", String::from_utf8_lossy(&created.body));
    let job = created.body_json();
    assert_eq!(job["status"], "queued");
    let id = job["id"].as_str().expect("a job id").to_string();
    let with_id = |file: &str| {
        let text = serde_json::to_string(&read_event(file)).expect("serialises");
        serde_json::from_str::<Value>(&text.replace(FIXTURE_JOB_ID, &id)).expect("still JSON")
    };

    let s3_event = |file: &str| serde_json::from_value(with_id(file)).expect("an S3 event");
    let report = handle_s3_event(&state, s3_event("worker/job-record-created.json")).await.expect("no retry needed");
    assert_eq!(report.records.len(), 1);
    assert_eq!((report.records[0].action, report.records[0].outcome.as_str()), ("job", "completed"));

    let shown = invoke(Function::JobStatus, state.clone(), with_id("job-status/show.json")).await;
    assert_eq!(shown.status(), 200, "{:?}", String::from_utf8_lossy(&shown.body));
    assert_eq!(
        (shown.body_json()["status"].as_str(), shown.body_json()["progress"].as_u64()),
        (Some("completed"), Some(100))
    );
    let listed = invoke(Function::JobStatus, state.clone(), read_event("job-status/list.json")).await;
    assert_eq!(listed.status(), 200);
    assert!(listed.body_json()["jobs"].as_array().unwrap().iter().any(|job| job["id"] == id.as_str()));

    // The filesystem backend has no presigned URLs, so the result comes back in the answer.
    let result = invoke(Function::JobResult, state.clone(), with_id("job-result/result.json")).await;
    assert_eq!(result.status(), 200);
    assert_eq!(result.header("content-type"), Some("image/png"));
    assert!(image::load_from_memory(&result.body).is_ok(), "the result is an image");

    // Every later write of the record raises the event again: a no-op.
    let again = handle_s3_event(&state, s3_event("worker/job-record-created.json")).await.expect("no retry needed");
    assert_eq!(again.records[0].outcome, "skipped: completed");
    let input = handle_s3_event(&state, s3_event("worker/job-input-created.json")).await.expect("no retry needed");
    assert_eq!(input.records[0].action, "ignored");

    let deleted = invoke(Function::JobDelete, state.clone(), with_id("job-delete/delete.json")).await;
    assert!(matches!(deleted.status(), 200 | 204), "{}", deleted.status());
    let gone = invoke(Function::JobStatus, state.clone(), with_id("job-status/show.json")).await;
    assert_eq!((gone.status(), gone.error_code().as_str()), (404, "job_not_found"));
}

/// A video job in segments through the worker, as Lambda runs it: the job record's event cuts it,
/// each segment record's event (the fixture names segment 1) runs that segment, and the job
/// record's event after the last one joins them; a repeated event does nothing.
#[tokio::test]
async fn a_video_job_runs_in_segments_one_event_each() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()));
    let state = state_with_vars(Arc::clone(&storage), &[("FF_SEGMENT_SECONDS", "1")]);
    let read = |relative: &str| std::fs::read(assets_dir().join(relative)).expect("test asset");
    for (key, file) in
        [("uploads/source.jpg", "images/obama.jpg"), ("uploads/clip.mp4", "video/short_hamilton_clip.mp4")]
    {
        storage.put_bytes(key, read(file).into(), WriteCondition::None).await.expect("seeded input");
    }
    let inputs = JobInputs { sources: vec!["uploads/source.jpg".into()], target: "uploads/clip.mp4".into() };
    let options = serde_json::json!({ "face_swapper_model": "inswapper_128", "trim_frame_end": 40, "output_video_preset": "ultrafast" });
    let job = Job::new(FIXTURE_JOB_ID.to_string(), inputs, options, None);
    JobStore::new(Arc::clone(&storage)).create(&job).await.expect("the job record");
    let event = |file: &str| serde_json::from_value(read_event(file)).expect("an S3 event");

    let cut = handle_s3_event(&state, event("worker/job-record-created.json")).await.expect("no retry needed");
    assert_eq!((cut.records[0].action, cut.records[0].outcome.as_str()), ("job", "cut into 2 segments"));
    let second = handle_s3_event(&state, event("worker/segment-record-created.json")).await.expect("no retry needed");
    assert_eq!((second.records[0].action, second.records[0].outcome.as_str()), ("segment", "segment 1 completed"));
    let first = serde_json::to_string(&read_event("worker/segment-record-created.json")).expect("serialises");
    let first = serde_json::from_str::<Value>(&first.replace("/segments/1.json", "/segments/0.json")).expect("JSON");
    let last = handle_s3_event(&state, serde_json::from_value(first).expect("an S3 event")).await.expect("no retry");
    assert_eq!(last.records[0].outcome, "segment 0 completed");
    // The last mark's write of the job record raises its event: that invocation joins.
    let joined = handle_s3_event(&state, event("worker/job-record-created.json")).await.expect("no retry needed");
    assert_eq!((joined.records[0].action, joined.records[0].outcome.as_str()), ("job", "completed"));
    let again = handle_s3_event(&state, event("worker/segment-record-created.json")).await.expect("no retry needed");
    assert_eq!(again.records[0].outcome, "skipped: no such job", "the joined job's segments are gone");
    let (record, _) = JobStore::new(Arc::clone(&storage)).load(FIXTURE_JOB_ID).await.unwrap().expect("the job");
    assert_eq!((record.status.as_str(), record.frames_done), ("completed", Some(40)));
}

/// The scheduled scan writes again the records of work whose worker is gone (a running job or
/// segment past its lease, a job queued for over an hour) and nothing else, so their S3 events
/// invoke a worker; through the worker function and the all-in-one one alike.
#[tokio::test]
async fn a_scheduled_scan_nudges_work_whose_worker_is_gone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()));
    let state = state_with(Arc::clone(&storage));
    let store = JobStore::new(Arc::clone(&storage));
    let long_ago = "2000-01-01T00:00:00Z";
    let job = |status: JobStatus, lease: Option<&str>, updated: Option<&str>| {
        let inputs = JobInputs { sources: vec![], target: "uploads/t.mp4".into() };
        let mut job = Job::new(new_job_id(), inputs, serde_json::json!({}), None);
        job.status = status;
        job.worker = lease.map(|_| "gone/claim".to_string());
        job.lease_expires_at = lease.map(str::to_string);
        if let Some(updated) = updated {
            job.updated_at = updated.to_string();
        }
        job
    };
    let dead = job(JobStatus::Running, Some(long_ago), None);
    let alive = job(JobStatus::Running, Some("2999-01-01T00:00:00Z"), None);
    let forgotten = job(JobStatus::Queued, None, Some(long_ago));
    let fresh = job(JobStatus::Queued, None, None);
    let done = job(JobStatus::Completed, None, Some(long_ago));
    let mut cut = job(JobStatus::Running, None, None);
    cut.segments = Some(JobSegments::new(2));
    for record in [&dead, &alive, &forgotten, &fresh, &done, &cut] {
        store.create(record).await.expect("a job record");
    }
    let mut lost = Segment::new(&cut.id, 0, VideoSegment { frames: (0, 30), keyframe: None });
    lost.status = JobStatus::Running;
    lost.worker = Some("gone/claim".into());
    lost.lease_expires_at = Some(long_ago.into());
    let waiting = Segment::new(&cut.id, 1, VideoSegment { frames: (30, 60), keyframe: None });
    for (index, segment) in [(0, &lost), (1, &waiting)] {
        store.create_record(&record_key(&cut.id, index), segment).await.expect("a segment record");
    }

    let router = ff_service::router(state.clone());
    let event = LambdaEvent::new(read_event("worker/scheduled-lease-scan.json"), Context::default());
    let report = dispatch(&state, router, event).await.expect("a scan report");
    let mut nudged: Vec<String> =
        report["nudged"].as_array().expect("nudged keys").iter().map(|key| key.as_str().unwrap().to_string()).collect();
    nudged.sort();
    let mut expected =
        vec![format!("jobs/{}.json", dead.id), format!("jobs/{}.json", forgotten.id), record_key(&cut.id, 0)];
    expected.sort();
    assert_eq!(nudged, expected);
    let (dead_now, _) = store.load(&dead.id).await.unwrap().expect("still there");
    assert_eq!(
        (dead_now.revision, dead_now.status, dead_now.lease_expires_at),
        (1, JobStatus::Running, dead.lease_expires_at)
    );
    let (alive_now, _) = store.load(&alive.id).await.unwrap().expect("still there");
    assert_eq!(alive_now.revision, 0);
    // The worker function takes the same event. The dead job and segment are still due (nobody
    // took them here); the queued job's nudge counts as its latest write, so it waits an hour again.
    let again = ff_lambda::worker::handle_worker_event(&state, read_event("worker/scheduled-lease-scan.json")).await;
    let again = again.expect("a scan report");
    let mut again: Vec<&str> = again["nudged"].as_array().unwrap().iter().filter_map(|key| key.as_str()).collect();
    again.sort();
    let mut still = vec![format!("jobs/{}.json", dead.id), record_key(&cut.id, 0)];
    still.sort();
    assert_eq!(again, still);
}

/// An upload under `inbox/` through the worker: the result lands in `outbox/`, and the same event
/// again (S3 delivers at least once) does nothing.
#[tokio::test]
async fn an_inbox_upload_runs_through_the_worker_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()));
    let state = state_with(Arc::clone(&storage));
    let image = |name: &str| std::fs::read(assets_dir().join("images").join(name)).expect("test image");
    let sidecar = serde_json::json!({ "face_swapper_model": "inswapper_128", "sources": ["sources/obama.jpg"] });
    // The fixture's key is form-encoded: `holiday+photo.jpg` is the object `holiday photo.jpg`.
    for (key, bytes) in [
        ("sources/obama.jpg", image("obama.jpg")),
        ("inbox/holiday photo.jpg.json", sidecar.to_string().into_bytes()),
        ("inbox/holiday photo.jpg", image("biden.jpg")),
    ] {
        storage.put_bytes(key, bytes.into(), WriteCondition::None).await.expect("seeded input");
    }
    let event = || serde_json::from_value(read_event("worker/inbox-object-created.json")).expect("an S3 event");
    let report = handle_s3_event(&state, event()).await.expect("no retry needed");
    assert_eq!(report.records[0].key, "inbox/holiday photo.jpg");
    assert_eq!(
        (report.records[0].action, report.records[0].outcome.as_str()),
        ("batch", "completed: outbox/holiday photo.jpg")
    );
    let (result, _) = storage.get_bytes("outbox/holiday photo.jpg", 1 << 30).await.expect("the result exists");
    let (result, target) =
        (image::load_from_memory(&result).unwrap(), image::load_from_memory(&image("biden.jpg")).unwrap());
    assert_eq!((result.width(), result.height()), (target.width(), target.height()));
    let again = handle_s3_event(&state, event()).await.expect("no retry needed");
    assert_eq!(again.records[0].outcome, "skipped: already processed");
}

/// `ff` as one function takes both kinds of event.
#[tokio::test]
async fn the_all_in_one_function_routes_http_and_s3_events() {
    let state = state();
    let router = ff_service::router(state.clone());
    let http = LambdaEvent::new(read_event("system/system.json"), Context::default());
    let answer = dispatch(&state, router.clone(), http).await.expect("an HTTP answer");
    assert_eq!(answer["statusCode"], 200);
    let s3 = LambdaEvent::new(read_event("worker/job-record-created.json"), Context::default());
    let report = dispatch(&state, router.clone(), s3).await.expect("a worker report");
    assert_eq!(report["records"][0]["outcome"], "skipped: no such job");
    let junk = LambdaEvent::new(serde_json::json!({ "hello": "world" }), Context::default());
    let error = dispatch(&state, router, junk).await.expect_err("neither kind");
    assert_eq!(error.error_type, "InvalidEvent");
}

#[test]
fn every_fixture_file_is_tested() {
    let mut files = Vec::new();
    for folder in std::fs::read_dir(events_dir()).expect("events/ exists") {
        let folder = folder.expect("readable entry").path();
        for file in std::fs::read_dir(&folder).expect("readable folder") {
            let file = file.expect("readable entry").path();
            let relative = file.strip_prefix(events_dir()).expect("under events/").to_string_lossy().into_owned();
            files.push(relative);
        }
    }
    let sequenced = [
        "job-create/from-stored-objects.json",
        "job-status/show.json",
        "job-status/list.json",
        "job-result/result.json",
        "job-delete/delete.json",
        "worker/job-record-created.json",
        "worker/job-input-created.json",
        "worker/inbox-object-created.json",
        "worker/segment-record-created.json",
        "worker/scheduled-lease-scan.json",
    ];
    let tested: Vec<&str> = CASES.iter().map(|case| case.file).chain(sequenced).collect();
    for file in files {
        assert!(tested.contains(&file.as_str()), "events/{file} has no case in tests/events.rs");
    }
}

/// The happy path of /process through Lambda: two real photos, an image back, base64-encoded
/// because it is binary. Built from the fixture's envelope so only the body differs; the photos
/// stay in the shared test assets instead of being copied into `events/`.
#[tokio::test]
async fn process_answers_an_image_as_base64() {
    let boundary = "ff-lambda-test-8d1c";
    let image = |name: &str| std::fs::read(assets_dir().join("images").join(name)).expect("test image");
    let mut body = Vec::new();
    for (field, name) in [("source", "obama.jpg"), ("target", "biden.jpg")] {
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        );
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(&image(name));
        body.extend_from_slice(b"\r\n");
    }
    let field = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"face_swapper_model\"\r\n\r\n");
    body.extend_from_slice(format!("{field}inswapper_128\r\n--{boundary}--\r\n").as_bytes());
    let mut event = read_event("process/no-source-face.json");
    event["headers"]["content-type"] = format!("multipart/form-data; boundary={boundary}").into();
    event["headers"]["content-length"] = body.len().to_string().into();
    event["body"] = base64::engine::general_purpose::STANDARD.encode(&body).into();

    let answer = invoke(Function::Process, state(), event).await;
    assert_eq!(answer.status(), 200, "{:?}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json["isBase64Encoded"], Value::Bool(true));
    assert_eq!(answer.header("content-type"), Some("image/jpeg"));
    assert_eq!(answer.header("x-faces-processed"), Some("1"));
    let decoded = image::load_from_memory(&answer.body).expect("a decodable image");
    let original = image::load_from_memory(&image("biden.jpg")).expect("the target decodes");
    assert_eq!((decoded.width(), decoded.height()), (original.width(), original.height()));
}

fn no_source_face(answer: &Answer) {
    assert_eq!(answer.error_code(), "no_source_face");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json["isBase64Encoded"], Value::Bool(false));
}

fn healthy(answer: &Answer) {
    assert_eq!(answer.body_json()["status"], "ok");
}

fn downloaded_swapper_models(answer: &Answer) {
    let body = answer.body_json();
    let models = body["models"].as_array().expect("a model list");
    assert!(!models.is_empty());
    for model in models {
        assert!(model["modules"].as_array().unwrap().contains(&"face_swapper".into()), "{model}");
        assert_eq!(model["downloaded"], true, "{model}");
    }
    let inswapper = models.iter().find(|m| m["name"] == "inswapper_128").expect("inswapper_128 listed");
    assert_eq!(inswapper["verified"], true);
    assert_eq!(inswapper["file"], "inswapper_128.onnx", "a file name, not a server path");
}

fn all_present(answer: &Answer) {
    let body = answer.body_json();
    let results = body["results"].as_array().expect("per-model results");
    let names: Vec<&str> = results.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"inswapper_128") && names.contains(&"yoloface_8n"), "{names:?}");
    for result in results {
        assert_eq!((result["status"].as_str(), result["verified"].as_bool()), (Some("present"), Some(true)));
    }
}

fn unknown_model(answer: &Answer) {
    assert_eq!(answer.error_code(), "bad_request");
    assert!(answer.body_json()["error"]["message"].as_str().unwrap().contains("inswapper_129"));
}

fn face_swapper_listed(answer: &Answer) {
    let body = answer.body_json();
    let swapper = body["processors"].as_array().unwrap().iter().find(|p| p["name"] == "face_swapper").unwrap();
    assert_eq!(swapper["available"], true);
    let model = swapper["options"].as_array().unwrap().iter().find(|o| o["name"] == "face_swapper_model").unwrap();
    assert_eq!(model["default"], "hyperswap_1a_256");
    assert!(!body["common_options"].as_array().unwrap().is_empty());
}

fn system_described(answer: &Answer) {
    let body = answer.body_json();
    assert_eq!(body["execution_providers"], serde_json::json!(["cpu"]));
    assert_eq!(body["execution_thread_count"], 1);
    assert_eq!(body["processing"]["slots"], 2);
    assert_eq!(body["processing"]["queue_capacity"], 3);
    assert_eq!(body["processing"]["queued"], 0);
    assert_eq!(body["onnxruntime"]["version"], ff_pipeline::runtime::ORT_VERSION);
    assert_eq!(body["content_analysis"], true);
    assert_eq!((body["jobs"]["workers"].as_u64(), body["jobs"]["storage"].as_str()), (Some(0), Some("fs")));
    assert!(body["cpu_count"].as_u64().unwrap() >= 1);
}

fn not_found(answer: &Answer) {
    assert_eq!(answer.error_code(), "not_found");
}
