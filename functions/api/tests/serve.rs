//! `ff serve` as a real process on a real port: health, a real multipart swap over HTTP, and a
//! graceful stop on SIGTERM.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ff_pipeline::testing::assets_dir;

const BOUNDARY: &str = "ff-serve-test-3f9a1c";
const STARTUP_BUDGET: Duration = Duration::from_secs(30);

/// The running server; killed when the test ends, whether it passed or panicked.
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

/// A port that was free a moment ago. Another process could take it before `ff` binds it,
/// which is rare enough for a test and shows up as a clear start-up failure.
fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    probe.local_addr().expect("local address").port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

fn start_server() -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ff"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env("FF_EXECUTION_THREAD_COUNT", "2")
        .env("FF_MAX_CONCURRENT_REQUESTS", "1")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ff serve");
    let mut server = Server { child, base_url: format!("http://127.0.0.1:{port}") };
    wait_until_healthy(&mut server);
    server
}

fn wait_until_healthy(server: &mut Server) {
    let agent = agent();
    let deadline = Instant::now() + STARTUP_BUDGET;
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait().expect("poll the child") {
            panic!("ff serve exited during start-up with {status}");
        }
        let health = agent.get(format!("{}/api/v1/health", server.base_url)).call();
        if health.is_ok_and(|response| response.status() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("ff serve did not become healthy within {STARTUP_BUDGET:?}");
}

fn wait_for_exit(child: &mut Child, budget: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn image(name: &str) -> Vec<u8> {
    let path = assets_dir().join("images").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn multipart_body(files: &[(&str, &str, &[u8])], fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, bytes) in files {
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[test]
fn serves_health_and_swaps_a_face_over_http() {
    let server = start_server();
    let agent = agent();

    let mut health = agent.get(format!("{}/api/v1/health", server.base_url)).call().expect("health answers");
    let json: serde_json::Value = serde_json::from_slice(&health.body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!(json["status"], "ok");

    let (source, target) = (image("obama.jpg"), image("biden.jpg"));
    let body = multipart_body(
        &[("source", "obama.jpg", &source), ("target", "biden.jpg", &target)],
        &[("face_swapper_model", "inswapper_128")],
    );
    let mut response = agent
        .post(format!("{}/api/v1/process", server.base_url))
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .send(&body[..])
        .expect("process answers");
    let bytes = response.body_mut().with_config().limit(100 * 1024 * 1024).read_to_vec().unwrap();
    assert_eq!(response.status(), 200, "body: {}", String::from_utf8_lossy(&bytes));
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.headers()["x-faces-processed"], "1");
    assert!(bytes.starts_with(&[0xff, 0xd8]), "the body is a JPEG");
}

#[test]
fn unknown_routes_answer_json_over_http() {
    let server = start_server();
    let mut response = agent().get(format!("{}/nope", server.base_url)).call().expect("server answers");
    assert_eq!(response.status(), 404);
    let json: serde_json::Value = serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "not_found");
}

#[cfg(unix)]
#[test]
fn stops_cleanly_on_sigterm() {
    let mut server = start_server();
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(sent.success());
    let status = wait_for_exit(&mut server.child, Duration::from_secs(10)).expect("ff serve exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}
