//! A job survives `kill -9` of `ff serve`: the server is killed while a job runs, started again
//! on the same data directory, and every job ends completed or failed, never stuck `running`.
//! What killed runs leave behind (run directories, temporary files, inputs of a job whose creation
//! was killed) is swept at the restart. And two `ff serve` sharing one bucket (the S3 test server)
//! survive the death of the one running a job: the other takes it over once its lease passes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ff_pipeline::testing::assets_dir;

const BOUNDARY: &str = "ff-crash-test-8d1e0b";
const STARTUP_BUDGET: Duration = Duration::from_secs(30);
const JOBS_BUDGET: Duration = Duration::from_secs(300);
/// Older than any run may last with the default time limits (an hour and ten minutes).
const LONG_AGO: Duration = Duration::from_secs(3 * 3600);

/// A running `ff serve`; killed when dropped, so a failing test leaves no server behind.
struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data directory removed when the test ends.
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    probe.local_addr().expect("local address").port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Short, so a dead server's job is taken over within seconds.
const LEASE_SECS: &str = "2";

fn start_server(data_dir: &Path, temp_dir: &Path) -> Server {
    start_server_with(data_dir, temp_dir, &[])
}

fn start_server_with(data_dir: &Path, temp_dir: &Path, env: &[(&str, String)]) -> Server {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ff"));
    command
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env("FF_EXECUTION_THREAD_COUNT", "1")
        .env("FF_MAX_CONCURRENT_REQUESTS", "1")
        .env("FF_WORKERS", "1")
        .env("FF_DATA_DIR", data_dir)
        .env("FF_TEMP_DIR", temp_dir)
        .env_remove("FF_SWEEP_INTERVAL_SECS")
        .env_remove("FF_REQUEST_TIMEOUT_SECS")
        .env_remove("FF_VIDEO_TIMEOUT_SECS")
        .env("FF_JOB_LEASE_SECS", LEASE_SECS)
        .env_remove("FF_S3_BUCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("spawn ff serve");
    let mut server = Server { child, base_url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + STARTUP_BUDGET;
    loop {
        if let Some(status) = server.child.try_wait().expect("poll the child") {
            panic!("ff serve exited during start-up with {status}");
        }
        let health = agent().get(format!("{}/api/v1/health", server.base_url)).call();
        if health.is_ok_and(|response| response.status() == 200) {
            return server;
        }
        assert!(Instant::now() < deadline, "ff serve did not become healthy within {STARTUP_BUDGET:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn swap_form() -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file) in [("source", "obama.jpg"), ("target", "biden.jpg")] {
        let bytes = std::fs::read(assets_dir().join("images").join(file)).expect("test image");
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        );
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    // A pixel boost of 512 runs the swapper on 16 tiles per face, so a job lasts long enough to
    // be caught running.
    for (name, value) in [("face_swapper_model", "inswapper_128"), ("face_swapper_pixel_boost", "512x512")] {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn create_job(server: &Server) -> String {
    let mut response = agent()
        .post(format!("{}/api/v1/jobs", server.base_url))
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .send(&swap_form()[..])
        .expect("POST /api/v1/jobs");
    let body = response.body_mut().read_to_string().expect("body");
    assert_eq!(response.status(), 202, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).expect("job JSON");
    job["id"].as_str().expect("job id").to_string()
}

fn job(server: &Server, id: &str) -> serde_json::Value {
    let mut response = agent().get(format!("{}/api/v1/jobs/{id}", server.base_url)).call().expect("GET job");
    assert_eq!(response.status(), 200);
    serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("job JSON")
}

/// The record as stored, read without a server (the one that wrote it is dead).
fn stored(data_dir: &Path, id: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(data_dir.join("jobs").join(format!("{id}.json"))).expect("job record");
    serde_json::from_str(&text).expect("record JSON")
}

/// Writes `path` (and its folders) and dates it `LONG_AGO`.
fn leave_behind(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
    std::fs::write(path, b"left by a killed run").expect("write");
    backdate(path);
}

fn backdate(path: &Path) {
    let file = std::fs::File::open(path).expect("open to backdate");
    file.set_modified(std::time::SystemTime::now() - LONG_AGO).expect("backdate");
}

/// What a server killed long ago left: a run directory, a storage temporary file and the inputs of
/// a job whose record was never written. Returns their paths.
fn leftovers_of_an_old_crash(data_dir: &Path, temp_dir: &Path) -> Vec<PathBuf> {
    let run_dir = temp_dir.join("ff-video-Ab12Cd");
    let orphan_job = data_dir.join("jobs").join(ff_service::jobs::new_job_id());
    let files = vec![
        run_dir.join("target.mp4"),
        data_dir.join(".ff-tmp").join("0123456789abcdef0123456789abcdef"),
        orphan_job.join("inputs").join("source-0.jpg"),
        orphan_job.join("inputs").join("target.png"),
    ];
    for file in &files {
        leave_behind(file);
    }
    backdate(&run_dir);
    files
}

#[test]
fn a_job_running_when_the_server_is_killed_completes_after_a_restart() {
    let data_dir = DataDir(std::env::temp_dir().join(format!("ff-jobs-crash-{}", std::process::id())));
    let temp_dir = DataDir(std::env::temp_dir().join(format!("ff-jobs-crash-temp-{}", std::process::id())));
    std::fs::create_dir_all(&temp_dir.0).expect("a temp directory");
    // Something else's folder in the shared temp directory, as old: the sweep must not touch it.
    let foreign = temp_dir.0.join("someone-else").join("keep.txt");
    leave_behind(&foreign);
    let server = start_server(&data_dir.0, &temp_dir.0);
    let ids: Vec<String> = (0..3).map(|_| create_job(&server)).collect();

    // Wait until a job is running, then kill -9: no shutdown code runs.
    let deadline = Instant::now() + JOBS_BUDGET;
    let running = loop {
        if let Some(id) = ids.iter().find(|id| job(&server, id)["status"] == "running") {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "no job started within {JOBS_BUDGET:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut server = server;
    server.child.kill().expect("SIGKILL ff serve");
    server.child.wait().expect("reap ff serve");
    drop(server);

    // What the crash left: normally the job still `running` (unless it finished in the moment
    // between the poll and the kill).
    let left = stored(&data_dir.0, &running);
    let was_running = left["status"] == "running";
    eprintln!("killed ff serve while job {running} was {}", left["status"]);

    let leftovers = leftovers_of_an_old_crash(&data_dir.0, &temp_dir.0);
    let server = start_server(&data_dir.0, &temp_dir.0);
    let deadline = Instant::now() + JOBS_BUDGET;
    for id in &ids {
        let record = loop {
            let record = job(&server, id);
            if !matches!(record["status"].as_str(), Some("queued" | "running")) {
                break record;
            }
            assert!(Instant::now() < deadline, "job {id} still {} after the restart", record["status"]);
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(record["status"], "completed", "{record}");
        let result = agent().get(format!("{}/api/v1/jobs/{id}/result", server.base_url)).call().expect("result");
        assert_eq!(result.status(), 200);
    }
    if was_running {
        let retried = job(&server, &running);
        assert_eq!(retried["attempts"], 2, "the interrupted job ran again: {retried}");
    }

    // The sweep at start-up runs beside the jobs; it has long finished when they have.
    let deadline = Instant::now() + STARTUP_BUDGET;
    while leftovers.iter().any(|path| path.exists()) {
        assert!(Instant::now() < deadline, "left after the restart: {leftovers:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!leftovers[0].parent().expect("the run directory").exists(), "the run directory itself is gone");
    assert!(foreign.exists(), "the sweep touched another program's folder");
    for id in &ids {
        let inputs = data_dir.0.join("jobs").join(id).join("inputs");
        assert!(inputs.read_dir().is_ok_and(|mut entries| entries.next().is_some()), "job {id} kept its inputs");
    }
}

/// The settings that put a server's jobs on the S3 test server under `prefix`.
fn bucket_env(prefix: &str, worker: &str) -> Vec<(&'static str, String)> {
    let settings = ff_service::storage::testing::s3_test_settings(prefix);
    let server = ff_service::storage::testing::s3_test_server();
    vec![
        ("FF_S3_BUCKET", settings.bucket),
        ("FF_S3_PREFIX", prefix.to_string()),
        ("FF_S3_ENDPOINT", server.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", server.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("FF_WORKER_ID", worker.to_string()),
    ]
}

#[test]
fn two_servers_on_one_bucket_survive_the_death_of_either() {
    let prefix = format!("lease-{}", ff_service::jobs::new_job_id());
    let storage = ff_service::storage::S3Storage::new(ff_service::storage::testing::s3_test_settings(&prefix));
    tokio::runtime::Runtime::new().expect("a runtime").block_on(storage.create_bucket_if_missing()).expect("bucket");
    let scratch = DataDir(std::env::temp_dir().join(format!("ff-jobs-lease-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).expect("a temp directory");
    let mut servers: Vec<Option<Server>> = ["serve-a", "serve-b"]
        .iter()
        .map(|worker| Some(start_server_with(&scratch.0, &scratch.0, &bucket_env(&prefix, worker))))
        .collect();
    let id = create_job(servers[0].as_ref().expect("server a"));

    // Whichever server claimed it dies with kill -9 while it runs.
    let deadline = Instant::now() + JOBS_BUDGET;
    let owner = loop {
        let record = job(servers[1].as_ref().expect("server b"), &id);
        if record["status"] == "running" {
            break record["worker"].as_str().expect("a running job names its worker").to_string();
        }
        assert_eq!(record["status"], "queued", "the job ended before it could be caught running: {record}");
        assert!(Instant::now() < deadline, "the job did not start within {JOBS_BUDGET:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let dead = usize::from(owner.starts_with("serve-b/"));
    assert!(owner.starts_with(["serve-a/", "serve-b/"][dead]), "worker {owner}");
    let mut victim = servers[dead].take().expect("the owner is running");
    victim.child.kill().expect("SIGKILL the owner");
    victim.child.wait().expect("reap it");
    drop(victim);

    let survivor = servers[1 - dead].as_ref().expect("the other server");
    let deadline = Instant::now() + JOBS_BUDGET;
    let record = loop {
        let record = job(survivor, &id);
        if !matches!(record["status"].as_str(), Some("queued" | "running")) {
            break record;
        }
        assert!(Instant::now() < deadline, "job {id} still {} on the surviving server", record["status"]);
        std::thread::sleep(Duration::from_millis(100));
    };
    // It ran to completion once, on the survivor, after the dead server's attempt.
    assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("completed"), Some(2)), "{record}");
    let result = agent().get(format!("{}/api/v1/jobs/{id}/result", survivor.base_url)).call().expect("result");
    assert!(matches!(result.status().as_u16(), 200 | 302 | 303 | 307), "{}", result.status());
}
