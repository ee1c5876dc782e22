//! A video job in segments against the same job in one piece, in one `ff serve`: obama.jpg swapped
//! onto the first 5 s (150 frames) of the talking clip with the costed stand-ins, NSFW gate on,
//!
//! * in one piece (FF_SEGMENT_SECONDS=0, one worker with all the cores),
//! * in 1-second segments (5 of them) with 1, 2 and 4 in-process workers (FF_WORKERS; each worker
//!   gets cores / workers frame threads, at least one),
//!
//! alternating, a fresh server each run (filesystem storage). Wall time is from the job's creation
//! to its completion as GET /api/v1/jobs/{id} sees it (polled every 100 ms); ORT time is the
//! server's `inference_seconds` summed over models after the run.
//!
//! A timing table, not a test: nothing is asserted but that every job completes.
//!
//!     cargo bench -p ff-api --bench segments [-- RUNS]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ff_pipeline::testing::assets_dir;

const BOUNDARY: &str = "ff-segments-bench";
const FRAMES: &str = "150";
const DEADLINE: Duration = Duration::from_secs(1800);

/// One configuration of the server.
#[derive(Clone, Copy)]
struct Setup {
    name: &'static str,
    segment_seconds: u32,
    workers: usize,
}

const SETUPS: [Setup; 4] = [
    Setup { name: "one piece", segment_seconds: 0, workers: 1 },
    Setup { name: "segments", segment_seconds: 1, workers: 1 },
    Setup { name: "segments", segment_seconds: 1, workers: 2 },
    Setup { name: "segments", segment_seconds: 1, workers: 4 },
];

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

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn start(setup: Setup, data_dir: &Path, temp_dir: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|probe| probe.local_addr()).expect("a free port").port();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = (cores / setup.workers).max(1);
    let child = Command::new(env!("CARGO_BIN_EXE_ff"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("FF_MODELS_DIR", assets_dir().join("standins/costed"))
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env("FF_EXECUTION_THREAD_COUNT", threads.to_string())
        .env("FF_MAX_CONCURRENT_REQUESTS", setup.workers.to_string())
        .env("FF_WORKERS", setup.workers.to_string())
        .env("FF_SEGMENT_SECONDS", setup.segment_seconds.to_string())
        .env("FF_DATA_DIR", data_dir)
        .env("FF_TEMP_DIR", temp_dir)
        .env_remove("FF_S3_BUCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ff serve");
    let server = Server { child, base_url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !agent().get(format!("{}/api/v1/health", server.base_url)).call().is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "ff serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn form() -> Vec<u8> {
    let mut body = Vec::new();
    for (name, path) in [("source", "images/obama.jpg"), ("target", "video/short_hamilton_clip.mp4")] {
        let bytes = std::fs::read(assets_dir().join(path)).expect("asset");
        let file = path.rsplit('/').next().unwrap_or(path);
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    for (name, value) in [("face_swapper_model", "inswapper_128"), ("trim_frame_end", FRAMES)] {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn get_json(url: &str) -> serde_json::Value {
    let mut response = agent().get(url).call().expect("GET");
    serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("JSON")
}

/// Seconds inside ONNX Runtime, summed over the models, from the server's metrics.
fn inference_seconds(server: &Server) -> f64 {
    let mut response = agent().get(format!("{}/metrics", server.base_url)).call().expect("GET /metrics");
    let text = response.body_mut().read_to_string().expect("metrics");
    text.lines()
        .filter(|line| line.contains("inference_seconds") && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One job through a fresh server: (wall seconds, ORT seconds, segments).
fn run(setup: Setup) -> (f64, f64, u64) {
    let data = tempfile::tempdir().expect("data dir");
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(setup, data.path(), temp.path());
    let started = Instant::now();
    let mut response = agent()
        .post(format!("{}/api/v1/jobs", server.base_url))
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .send(&form()[..])
        .expect("POST /api/v1/jobs");
    let created: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("job JSON");
    let id = created["id"].as_str().expect("a job id").to_string();
    let job = loop {
        let job = get_json(&format!("{}/api/v1/jobs/{id}", server.base_url));
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            break job;
        }
        assert!(started.elapsed() < DEADLINE, "the job did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(job["status"], "completed", "{job}");
    let segments = job["segments"]["total"].as_u64().unwrap_or(0);
    (wall, inference_seconds(&server), segments)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(2).max(1);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut results: Vec<Vec<(f64, f64, u64)>> = vec![Vec::new(); SETUPS.len()];
    for round in 0..runs {
        for (index, setup) in SETUPS.iter().enumerate() {
            let result = run(*setup);
            eprintln!("round {round}: {} x{} -> {:.1} s", setup.name, setup.workers, result.0);
            results[index].push(result);
        }
    }
    println!("obama.jpg -> short_hamilton_clip.mp4 frames 0..{FRAMES}, inswapper_128, costed stand-ins, NSFW gate on, {cores} cores, {runs} runs each, alternating");
    println!();
    println!("| run | workers | frame threads each | segments | wall s (median) | min | max | ORT s (median) | wall / (ORT / cores) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (setup, results) in SETUPS.iter().zip(&results) {
        let mut walls: Vec<f64> = results.iter().map(|r| r.0).collect();
        let mut orts: Vec<f64> = results.iter().map(|r| r.1).collect();
        let (min, max) = (walls.iter().copied().fold(f64::MAX, f64::min), walls.iter().copied().fold(0.0, f64::max));
        let (wall, ort) = (median(&mut walls), median(&mut orts));
        println!(
            "| {} | {} | {} | {} | {wall:.1} | {min:.1} | {max:.1} | {ort:.1} | {:.2}x |",
            setup.name,
            setup.workers,
            (cores / setup.workers).max(1),
            results[0].2,
            wall / (ort / cores as f64)
        );
    }
}
