//! The model store against a real HTTP server on a loopback port: good, corrupt, truncated,
//! missing and stalled files, resume of partial downloads, mirror fallback and concurrent callers.
//! Also checks the stand-in models directory verifies offline.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ff_pipeline::models::{catalogue, crc32_file, ModelSource, ModelStore, SourceError};
use ff_pipeline::PipelineError;

/// How the server answers requests for one path.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 200, or 206 for a range request, or 416 past the end.
    Normal,
    /// Always 200 with the whole body, whatever the Range header says.
    IgnoreRange,
    /// Full headers, but at most this many body bytes, then the connection closes.
    Truncate(usize),
    /// Like `Truncate` for the first request only.
    TruncateFirst(usize),
    /// Full headers and this many body bytes, then silence with the connection open.
    Stall(usize),
    /// Waits before answering normally, so concurrent callers overlap.
    Delay(Duration),
}

struct Route {
    body: Vec<u8>,
    behaviour: Behaviour,
    hits: AtomicUsize,
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    range: Option<String>,
}

struct Server {
    base: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Serves `routes` (path → body, behaviour); every other path is a 404.
    fn start(routes: Vec<(String, Vec<u8>, Behaviour)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<HashMap<String, Route>> = Arc::new(
            routes
                .into_iter()
                .map(|(path, body, behaviour)| (path, Route { body, behaviour, hits: AtomicUsize::new(0) }))
                .collect(),
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (routes, log) = (routes.clone(), log.clone());
                thread::spawn(move || handle(stream, &routes, &log));
            }
        });
        Self { base, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn requests_for(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

fn handle(stream: TcpStream, routes: &HashMap<String, Route>, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    log.lock().unwrap().push(Request { path: path.clone(), range: range.clone() });

    let mut stream = stream;
    let Some(route) = routes.get(&path) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
        return;
    };
    let hit = route.hits.fetch_add(1, Ordering::SeqCst);
    let behaviour = route.behaviour;
    if let Behaviour::Delay(delay) = behaviour {
        thread::sleep(delay);
    }
    let body = &route.body;
    let start = match (behaviour, &range) {
        (Behaviour::IgnoreRange, _) | (_, None) => None,
        (_, Some(range)) => {
            range.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse::<usize>().ok())
        }
    };
    let (head, slice) = match start {
        Some(start) if start >= body.len() => {
            let head = format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", body.len());
            (head, &body[..0])
        }
        Some(start) => {
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() - 1,
                body.len(),
                body.len() - start
            );
            (head, &body[start..])
        }
        None => (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()), &body[..]),
    };
    let sent = match behaviour {
        Behaviour::Truncate(limit) | Behaviour::Stall(limit) => limit.min(slice.len()),
        Behaviour::TruncateFirst(limit) if hit == 0 => limit.min(slice.len()),
        _ => slice.len(),
    };
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&slice[..sent]).is_err() {
        return;
    }
    let _ = stream.flush();
    if let Behaviour::Stall(_) = behaviour {
        thread::sleep(Duration::from_secs(10));
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Deterministic content that no two sizes share a prefix-CRC by accident.
fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

fn crc_of(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// URL paths of a model and its sidecar as the catalogue publishes them.
fn paths(name: &str) -> (String, String) {
    let entry = catalogue().get(name).unwrap();
    (
        format!("/{}/{}", entry.base_name, entry.url_file_name()),
        format!("/{}/{}", entry.base_name, entry.hash_url_file_name()),
    )
}

/// A server for one model with a correct sidecar.
fn serve_model(name: &str, body: &[u8], behaviour: Behaviour) -> Server {
    let (model, hash) = paths(name);
    Server::start(vec![(model, body.to_vec(), behaviour), (hash, crc_of(body).into_bytes(), Behaviour::Normal)])
}

fn store(dir: &Path, servers: &[&Server]) -> ModelStore {
    ModelStore::new(dir, true)
        .with_base_urls(servers.iter().map(|s| s.base.clone()).collect())
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(5))
}

fn part_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

#[test]
fn downloads_a_good_file_and_its_hash() {
    let body = content(300_000, 1);
    let server = serve_model("fan_68_5", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), &[&server]);

    let status = store.status("fan_68_5").unwrap();
    assert!(!status.downloaded && !status.verified && status.size.is_none());

    let path = store.ensure("fan_68_5").unwrap();
    assert_eq!(path, dir.path().join("fan_68_5.onnx"));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(std::fs::read_to_string(dir.path().join("fan_68_5.hash")).unwrap(), crc_of(&body));
    assert!(!part_of(&path).exists());

    let (model_path, hash_path) = paths("fan_68_5");
    let requests = server.requests();
    assert_eq!(requests.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), [hash_path.as_str(), model_path.as_str()]);
    assert!(requests.iter().all(|r| r.range.is_none()));

    let status = store.status("fan_68_5").unwrap();
    assert!(status.downloaded && status.verified);
    assert_eq!(status.size, Some(body.len() as u64));

    // A second call finds the verified file and does not touch the network.
    store.ensure("fan_68_5").unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_file_failing_its_hash_is_deleted_and_reported_corrupt() {
    let body = content(50_000, 2);
    let (model, hash) = paths("nsfw_2");
    let server = Server::start(vec![
        (model, body.clone(), Behaviour::Normal),
        (hash, crc_of(b"something else").into_bytes(), Behaviour::Normal),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let error = store(dir.path(), &[&server]).ensure("nsfw_2").unwrap_err();
    match &error {
        PipelineError::ModelCorrupt { name, reason } => {
            assert_eq!(name, "nsfw_2");
            assert!(reason.contains(&crc_of(&body)) && reason.contains("deleted"), "{reason}");
        }
        other => panic!("expected ModelCorrupt, got {other:?}"),
    }
    assert!(!dir.path().join("nsfw_2.onnx").exists());
    assert!(!part_of(&dir.path().join("nsfw_2.onnx")).exists());
}

/// A mirror serving another file of the published size with a sidecar that matches it (what a
/// tampered mirror would do) passes the CRC32 check; the catalogue's SHA-256 refuses it.
#[test]
fn a_file_with_the_right_crc_but_not_the_published_sha256_is_deleted() {
    let entry = ff_pipeline::models::catalogue().entry("yoloface_8n").unwrap();
    let (published, bytes) = (entry.sha256.clone().expect("the catalogue publishes it"), entry.bytes.unwrap());
    let body = content(bytes as usize, 3);
    let server = serve_model("yoloface_8n", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let error = store(dir.path(), &[&server]).ensure("yoloface_8n").unwrap_err();
    match &error {
        PipelineError::ModelCorrupt { name, reason } => {
            assert_eq!(name, "yoloface_8n");
            assert!(reason.contains("SHA-256") && reason.contains(&published), "{reason}");
        }
        other => panic!("expected ModelCorrupt, got {other:?}"),
    }
    assert!(!dir.path().join("yoloface_8n.onnx").exists());
    assert!(!part_of(&dir.path().join("yoloface_8n.onnx")).exists());
}

#[test]
fn a_truncated_response_is_a_download_error_and_keeps_the_partial_file() {
    let body = content(40_000, 3);
    let server = serve_model("xseg_2", &body, Behaviour::Truncate(1_000));
    let dir = tempfile::tempdir().unwrap();
    let error = store(dir.path(), &[&server]).ensure("xseg_2").unwrap_err();
    match &error {
        PipelineError::Download { name, reason } => {
            assert_eq!(name, "xseg_2");
            assert!(reason.contains("connection closed after") && reason.contains("40000 bytes"), "{reason}");
            assert!(reason.contains(&server.base), "{reason}");
        }
        other => panic!("expected Download, got {other:?}"),
    }
    let path = dir.path().join("xseg_2.onnx");
    assert!(!path.exists());
    // Three attempts, each resuming where the last one stopped.
    assert_eq!(std::fs::read(part_of(&path)).unwrap(), body[..3_000]);
    let ranges: Vec<_> = server.requests_for(&paths("xseg_2").0).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some("bytes=1000-".into()), Some("bytes=2000-".into())]);
}

#[test]
fn a_truncated_response_is_resumed_with_a_range_request() {
    let body = content(80_000, 4);
    let server = serve_model("peppa_wutz", &body, Behaviour::TruncateFirst(30_000));
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), &[&server]).ensure("peppa_wutz").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let ranges: Vec<_> = server.requests_for(&paths("peppa_wutz").0).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some("bytes=30000-".into())]);
}

#[test]
fn a_404_names_the_url_and_status() {
    let server = Server::start(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let error = store(dir.path(), &[&server]).ensure("kim_vocal_1").unwrap_err();
    match &error {
        PipelineError::Download { name, reason } => {
            assert_eq!(name, "kim_vocal_1");
            let url = format!("{}/models-3.4.0/kim_vocal_1.hash", server.base);
            assert!(reason.contains(&url) && reason.contains("HTTP 404"), "{reason}");
        }
        other => panic!("expected Download, got {other:?}"),
    }
    // The model file itself is a 404 too when only the sidecar exists.
    let (_, hash) = paths("kim_vocal_1");
    let server = Server::start(vec![(hash, b"0123abcd".to_vec(), Behaviour::Normal)]);
    let error = store(dir.path(), &[&server]).ensure("kim_vocal_1").unwrap_err();
    let reason = error.to_string();
    assert!(reason.contains(&format!("{}/models-3.4.0/kim_vocal_1.onnx: HTTP 404", server.base)), "{reason}");
    assert!(!dir.path().join("kim_vocal_1.onnx").exists());
}

#[test]
fn a_partial_file_is_resumed_from_its_size() {
    let body = content(120_000, 5);
    let server = serve_model("bisenet_resnet_18", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bisenet_resnet_18.onnx");
    std::fs::write(part_of(&path), &body[..45_000]).unwrap();

    assert_eq!(store(dir.path(), &[&server]).ensure("bisenet_resnet_18").unwrap(), path);
    assert_eq!(crc32_file(&path).unwrap(), crc_of(&body));
    let ranges: Vec<_> = server.requests_for(&paths("bisenet_resnet_18").0).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=45000-".into())]);
}

#[test]
fn a_server_ignoring_the_range_restarts_the_file() {
    let body = content(60_000, 6);
    let server = serve_model("xseg_3", &body, Behaviour::IgnoreRange);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xseg_3.onnx");
    std::fs::write(part_of(&path), content(20_000, 99)).unwrap();

    store(dir.path(), &[&server]).ensure("xseg_3").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let ranges: Vec<_> = server.requests_for(&paths("xseg_3").0).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=20000-".into())]);
}

#[test]
fn a_stale_partial_file_that_fails_verification_is_downloaded_again_from_zero() {
    let body = content(70_000, 7);
    let server = serve_model("uvr_mdxnet", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvr_mdxnet.onnx");
    std::fs::write(part_of(&path), content(10_000, 77)).unwrap();

    store(dir.path(), &[&server]).ensure("uvr_mdxnet").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let ranges: Vec<_> = server.requests_for(&paths("uvr_mdxnet").0).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=10000-".into()), None]);
}

#[test]
fn a_complete_partial_file_is_only_verified() {
    let body = content(30_000, 8);
    let server = serve_model("crossface_ghost", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crossface_ghost.onnx");
    std::fs::write(part_of(&path), &body).unwrap();

    store(dir.path(), &[&server]).ensure("crossface_ghost").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let ranges: Vec<_> = server.requests_for(&paths("crossface_ghost").0).into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [Some("bytes=30000-".into())], "the 416 answer must count as complete");
}

#[test]
fn a_corrupt_local_file_is_replaced_when_downloads_are_allowed() {
    let body = content(25_000, 9);
    let server = serve_model("crossface_simswap", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crossface_simswap.onnx");
    std::fs::write(&path, content(25_000, 10)).unwrap();
    std::fs::write(dir.path().join("crossface_simswap.hash"), crc_of(&body)).unwrap();

    store(dir.path(), &[&server]).ensure("crossface_simswap").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
}

#[test]
fn the_next_mirror_is_tried_after_a_failure() {
    let body = content(20_000, 11);
    let broken = Server::start(vec![]);
    let good = serve_model("retinaface_10g", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), &[&broken, &good]).ensure("retinaface_10g").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), body);
    assert_eq!(broken.requests().len(), 2, "the first mirror is asked for the sidecar and the model");
}

#[test]
fn a_stalled_transfer_hits_the_read_timeout() {
    let body = content(50_000, 12);
    let server = serve_model("kim_vocal_2", &body, Behaviour::Stall(5_000));
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path(), true)
        .with_base_urls(vec![server.base.clone()])
        .with_timeouts(Duration::from_secs(2), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let error = store.ensure("kim_vocal_2").unwrap_err();
    assert!(matches!(error, PipelineError::Download { .. }), "{error:?}");
    assert!(error.to_string().contains("read timeout"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
}

#[test]
fn a_file_of_the_wrong_published_size_is_rejected() {
    // yoloface_8n's release size is in the catalogue; a different body cannot be it.
    let body = content(10_000, 13);
    let server = serve_model("yoloface_8n", &body, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let error = store(dir.path(), &[&server]).ensure("yoloface_8n").unwrap_err();
    assert!(matches!(error, PipelineError::ModelCorrupt { .. }), "{error:?}");
    assert!(!dir.path().join("yoloface_8n.onnx").exists());
}

#[test]
fn concurrent_ensure_calls_download_once() {
    let body = content(200_000, 14);
    let server = serve_model("hififace_unofficial_256", &body, Behaviour::Delay(Duration::from_millis(300)));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store(dir.path(), &[&server]));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            thread::spawn(move || store.ensure("hififace_unofficial_256"))
        })
        .collect();
    for worker in workers {
        let path = worker.join().unwrap().unwrap();
        assert_eq!(std::fs::read(path).unwrap(), body);
    }
    assert_eq!(server.requests_for(&paths("hififace_unofficial_256").0).len(), 1);
}

/// Lock files left in the models folder (they used to stay after every download).
fn lock_files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".lock"))
        .collect()
}

#[test]
fn downloads_from_separate_stores_run_once_and_leave_no_lock_file() {
    // Separate stores share no in-process mutex: only the lock file keeps them apart, as it keeps
    // two `ff` processes apart, and it must do so although each holder removes it when done.
    let body = content(150_000, 16);
    let server = serve_model("fan_68_5", &body, Behaviour::Delay(Duration::from_millis(200)));
    let dir = tempfile::tempdir().unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let store = store(dir.path(), &[&server]);
            thread::spawn(move || store.download("fan_68_5"))
        })
        .collect();
    for worker in workers {
        let path = worker.join().unwrap().unwrap();
        assert_eq!(std::fs::read(path).unwrap(), body);
    }
    assert_eq!(server.requests_for(&paths("fan_68_5").0).len(), 1);
    assert_eq!(lock_files_in(dir.path()), Vec::<String>::new());
}

#[test]
fn a_failed_download_leaves_no_lock_file_either() {
    let server = Server::start(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    assert!(store(dir.path(), &[&server]).download("fan_68_5").is_err());
    assert_eq!(lock_files_in(dir.path()), Vec::<String>::new());
}

#[test]
fn deep_swapper_models_live_under_their_scope() {
    let body = content(15_000, 15);
    let server = serve_model("iperov/elon_musk_224", &body, Behaviour::Normal);
    assert_eq!(paths("iperov/elon_musk_224").0, "/deepfacelive-models-iperov/elon_musk_224.dfm");
    let dir = tempfile::tempdir().unwrap();
    let path = store(dir.path(), &[&server]).ensure("iperov/elon_musk_224").unwrap();
    assert_eq!(path, dir.path().join("iperov/elon_musk_224.dfm"));
    assert_eq!(std::fs::read_to_string(dir.path().join("iperov/elon_musk_224.hash")).unwrap(), crc_of(&body));
}

#[test]
fn without_downloads_missing_and_corrupt_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path(), false);
    match store.ensure("fairface") {
        Err(PipelineError::ModelMissing { name, dir: missing_dir }) => {
            assert_eq!(name, "fairface");
            assert_eq!(missing_dir, dir.path());
        }
        other => panic!("expected ModelMissing, got {other:?}"),
    }
    // A model without its sidecar cannot be verified, so it counts as missing.
    std::fs::write(dir.path().join("fairface.onnx"), b"model").unwrap();
    assert!(matches!(store.ensure("fairface"), Err(PipelineError::ModelMissing { .. })));
    std::fs::write(dir.path().join("fairface.hash"), "00000000").unwrap();
    assert!(matches!(store.ensure("fairface"), Err(PipelineError::ModelCorrupt { .. })));
    assert!(dir.path().join("fairface.onnx").exists(), "offline checks never delete files");
    std::fs::write(dir.path().join("fairface.hash"), crc_of(b"model")).unwrap();
    assert_eq!(store.ensure("fairface").unwrap(), dir.path().join("fairface.onnx"));
    assert!(matches!(store.ensure("not_a_model"), Err(PipelineError::UnknownModel { .. })));
}

#[test]
fn every_stand_in_verifies_offline() {
    let dir = ff_pipeline::testing::assets_dir().join("standins/light");
    // No mirrors at all: any attempt to download would fail loudly.
    let store = ModelStore::new(&dir, false).with_base_urls(vec![]);
    let mut checked = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(catalogue().get(&name).is_some(), "stand-in {name} is not in the catalogue");
        assert_eq!(store.ensure(&name).unwrap(), path);
        // An explicit download of a verified file is a no-op, even in this read-only directory.
        assert_eq!(store.download(&name).unwrap(), path);
        let status = store.status(&name).unwrap();
        assert!(status.downloaded && status.verified, "{status:?}");
        assert_eq!(status.size, Some(std::fs::metadata(&path).unwrap().len()));
        checked += 1;
    }
    // The 19 models of the first processors and the 12 ONNX stand-ins of the six added later (the
    // deep swapper's `.dfm` is not ONNX): see the stand-ins' README.
    assert_eq!(checked, 31);
}

/// A source over a local directory laid out like a models directory, counting what it is asked.
#[derive(Debug)]
struct DirectorySource {
    dir: std::path::PathBuf,
    reads: Mutex<Vec<String>>,
}

impl DirectorySource {
    fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self { dir: dir.to_path_buf(), reads: Mutex::new(Vec::new()) })
    }

    fn reads(&self) -> Vec<String> {
        self.reads.lock().unwrap().clone()
    }
}

impl ModelSource for DirectorySource {
    fn location(&self) -> String {
        format!("{}/", self.dir.display())
    }

    fn read_small(&self, relative: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError> {
        self.reads.lock().unwrap().push(relative.to_string());
        match std::fs::read(self.dir.join(relative)) {
            Ok(bytes) if bytes.len() as u64 > max_bytes => Err("too large".into()),
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn copy_to(&self, relative: &str, destination: &Path, _max_bytes: u64) -> Result<Option<u64>, SourceError> {
        self.reads.lock().unwrap().push(relative.to_string());
        match std::fs::copy(self.dir.join(relative), destination) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

fn fill_source(dir: &Path, name: &str, body: &[u8], sidecar: &str) {
    let entry = catalogue().get(name).unwrap();
    std::fs::write(dir.join(&entry.file), body).unwrap();
    std::fs::write(dir.join(&entry.hash_file), sidecar).unwrap();
}

#[test]
fn a_source_fills_the_models_directory_even_with_downloads_off() {
    let bucket = tempfile::tempdir().unwrap();
    let body = content(200_000, 21);
    fill_source(bucket.path(), "fan_68_5", &body, &crc_of(&body));
    let source = DirectorySource::new(bucket.path());
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path(), false).with_source(source.clone());
    assert_eq!(store.source_location(), Some(format!("{}/", bucket.path().display())));

    let path = store.ensure("fan_68_5").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(std::fs::read_to_string(dir.path().join("fan_68_5.hash")).unwrap(), crc_of(&body));
    assert!(!part_of(&path).exists());
    assert_eq!(source.reads(), ["fan_68_5.hash", "fan_68_5.onnx"]);
    // Verified now: the source is not asked again.
    store.ensure("fan_68_5").unwrap();
    assert_eq!(source.reads().len(), 2);

    // Without the model in the source and without downloads, the error names both.
    let error = store.ensure("peppa_wutz").unwrap_err();
    match &error {
        PipelineError::Download { name, reason } => {
            assert_eq!(name, "peppa_wutz");
            assert!(reason.contains("does not have peppa_wutz.hash") && reason.contains("disabled"), "{reason}");
        }
        other => panic!("expected Download, got {other:?}"),
    }
}

#[test]
fn a_corrupt_or_missing_copy_in_the_source_falls_back_to_the_mirrors() {
    let body = content(120_000, 22);
    let server = serve_model("fan_68_5", &body, Behaviour::Normal);
    let bucket = tempfile::tempdir().unwrap();
    // The source's sidecar is right but its file is another one: it must not be kept.
    fill_source(bucket.path(), "fan_68_5", &content(120_000, 23), &crc_of(&body));
    let source = DirectorySource::new(bucket.path());
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), &[&server]).with_source(source.clone());
    let path = store.ensure("fan_68_5").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let (model_path, _) = paths("fan_68_5");
    assert_eq!(server.requests().iter().map(|r| r.path.clone()).collect::<Vec<_>>(), [model_path]);

    // A model the source lacks entirely comes from the mirrors, sidecar and all.
    let other = content(90_000, 24);
    let server = serve_model("peppa_wutz", &other, Behaviour::Normal);
    let store = self::store(dir.path(), &[&server]).with_source(source.clone());
    assert_eq!(std::fs::read(store.ensure("peppa_wutz").unwrap()).unwrap(), other);
    assert_eq!(server.requests().len(), 2);
    assert!(source.reads().contains(&"peppa_wutz.onnx".to_string()));
}
