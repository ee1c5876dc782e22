//! The storage contract, run against both backends: each behaviour is one generic async fn over
//! `&dyn Storage`, called from a `fs` and an `s3` test. The S3 run talks to a real S3-compatible
//! server (s3s-fs, which checks SigV4 signatures): `FF_TEST_S3_ENDPOINT` or one the tests start.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ff_service::storage::testing::s3_test_storage;
use ff_service::storage::{
    ByteStream, FsStorage, ListRequest, PutContent, Storage, StorageError, WriteCondition, DEFAULT_CALL_TIMEOUT,
};
use ff_service::ServiceConfig;
use futures_util::StreamExt;

/// A backend and what keeps it alive (the filesystem one's directory).
struct Backend {
    storage: Arc<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
}

fn fs_backend() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    Backend { storage: Arc::new(FsStorage::new(dir.path().join("data"))), _dir: Some(dir) }
}

async fn s3_backend() -> Backend {
    Backend { storage: Arc::new(s3_test_storage().await), _dir: None }
}

/// `mod name { fs, s3 }`: one test per backend over the same behaviour.
macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fs() {
                let backend = super::fs_backend();
                super::$behaviour(&*backend.storage).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                let backend = super::s3_backend().await;
                super::$behaviour(&*backend.storage).await;
            }
        }
    )*};
}

on_both_backends!(
    put_get_head_round_trip,
    missing_objects_are_not_found,
    create_only_if_absent,
    replace_only_the_version_read,
    large_bodies_stream_in_parts,
    files_upload_streaming,
    listing_pages_in_key_order,
    shallow_listing_skips_deeper_objects,
    delete_removes_and_is_idempotent,
    get_bytes_refuses_oversized_objects,
    presigned_urls_work_where_offered,
    invalid_keys_are_rejected_before_any_call,
);

async fn read_all(storage: &dyn Storage, key: &str) -> Vec<u8> {
    let mut body = storage.get(key).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
    let mut bytes = Vec::new();
    while let Some(chunk) = body.stream.next().await {
        bytes.extend_from_slice(&chunk.expect("chunk"));
    }
    bytes
}

/// A body of `size` bytes in uneven chunks, with content that depends on the position.
fn patterned(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

fn chunked(bytes: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, StorageError>> = bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(futures_util::stream::iter(chunks))
}

async fn put_get_head_round_trip(storage: &dyn Storage) {
    let put = storage.put_bytes("a/b/c.json", Bytes::from_static(b"{\"x\":1}"), WriteCondition::None).await.unwrap();
    assert_eq!((put.key.as_str(), put.size), ("a/b/c.json", 7));
    assert!(!put.etag.is_empty());
    assert_eq!(read_all(storage, "a/b/c.json").await, b"{\"x\":1}");
    let head = storage.head("a/b/c.json").await.unwrap();
    assert_eq!((head.size, head.etag.as_str()), (7, put.etag.as_str()));
    assert!(head.last_modified.is_some());
    let got = storage.get("a/b/c.json").await.unwrap();
    assert_eq!(got.meta.etag, put.etag);
    let again = storage.put_bytes("a/b/c.json", Bytes::from_static(b"{\"x\":2}"), WriteCondition::None).await.unwrap();
    assert_ne!(again.etag, put.etag, "a new version has a new etag");
}

async fn missing_objects_are_not_found(storage: &dyn Storage) {
    assert!(matches!(storage.get("nothing/here").await, Err(StorageError::NotFound { .. })));
    assert!(matches!(storage.head("nothing/here").await, Err(StorageError::NotFound { .. })));
    assert!(matches!(storage.get_bytes("nothing", 10).await, Err(StorageError::NotFound { .. })));
    // A key whose "folder" is an object is just missing too.
    storage.put_bytes("file", Bytes::from_static(b"x"), WriteCondition::None).await.unwrap();
    assert!(matches!(storage.head("file/below").await, Err(StorageError::NotFound { .. })));
}

async fn create_only_if_absent(storage: &dyn Storage) {
    storage.put_bytes("once", Bytes::from_static(b"first"), WriteCondition::IfAbsent).await.unwrap();
    let second = storage.put_bytes("once", Bytes::from_static(b"second"), WriteCondition::IfAbsent).await;
    assert!(matches!(second, Err(StorageError::PreconditionFailed { .. })), "{second:?}");
    assert_eq!(read_all(storage, "once").await, b"first");
    storage.delete("once").await.unwrap();
    storage.put_bytes("once", Bytes::from_static(b"third"), WriteCondition::IfAbsent).await.unwrap();
    assert_eq!(read_all(storage, "once").await, b"third");
}

async fn replace_only_the_version_read(storage: &dyn Storage) {
    let v1 = storage.put_bytes("cas", Bytes::from_static(b"v1"), WriteCondition::None).await.unwrap();
    let v2 =
        storage.put_bytes("cas", Bytes::from_static(b"v2"), WriteCondition::IfMatch(v1.etag.clone())).await.unwrap();
    let stale = storage.put_bytes("cas", Bytes::from_static(b"v3"), WriteCondition::IfMatch(v1.etag)).await;
    assert!(matches!(stale, Err(StorageError::PreconditionFailed { .. })), "{stale:?}");
    assert_eq!(read_all(storage, "cas").await, b"v2");
    assert_eq!(storage.head("cas").await.unwrap().etag, v2.etag);
    let missing = storage.put_bytes("no-such", Bytes::from_static(b"x"), WriteCondition::IfMatch(v2.etag)).await;
    assert!(matches!(missing, Err(StorageError::PreconditionFailed { .. })), "{missing:?}");
    assert!(matches!(storage.head("no-such").await, Err(StorageError::NotFound { .. })));
}

/// Eight writers each add 1 to a counter five times by read, compute, write-if-unchanged: any
/// lost update shows as a total under 40.
///
/// On the filesystem backend only. The S3 test server (s3s-fs 0.14) checks `If-Match` and then
/// writes, not atomically, so under load two writers holding the same etag can both succeed there
/// (seen: 37 of 40 with the whole suite running); AWS S3 and MinIO check and write atomically. The
/// S3 backend's conditional writes are checked one at a time by `replace_only_the_version_read`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_swap_loses_no_update_on_files() {
    let backend = fs_backend();
    concurrent_compare_and_swap_loses_no_update(&*backend.storage).await;
}

async fn concurrent_compare_and_swap_loses_no_update(storage: &dyn Storage) {
    const WRITERS: usize = 8;
    const INCREMENTS: usize = 5;
    storage.put_bytes("counter", Bytes::from_static(b"0"), WriteCondition::IfAbsent).await.unwrap();
    let conflicts = std::sync::atomic::AtomicUsize::new(0);
    let writer = || async {
        for _ in 0..INCREMENTS {
            loop {
                let (bytes, meta) = storage.get_bytes("counter", 64).await.unwrap();
                let value: usize = std::str::from_utf8(&bytes).unwrap().parse().unwrap();
                let next = Bytes::from((value + 1).to_string());
                match storage.put_bytes("counter", next, WriteCondition::IfMatch(meta.etag)).await {
                    Ok(_) => break,
                    Err(StorageError::PreconditionFailed { .. }) => {
                        conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(other) => panic!("{other}"),
                }
            }
        }
    };
    futures_util::future::join_all((0..WRITERS).map(|_| writer())).await;
    let (bytes, _) = storage.get_bytes("counter", 64).await.unwrap();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), (WRITERS * INCREMENTS).to_string());
    println!("{} conflicts resolved by retrying", conflicts.into_inner());
}

/// 20 MiB in 1 MiB chunks: on S3 a multipart upload of three parts.
async fn large_bodies_stream_in_parts(storage: &dyn Storage) {
    let body = patterned(20 * 1024 * 1024 + 123);
    let meta = storage.put_stream("big/video.bin", chunked(&body, 1024 * 1024), WriteCondition::None).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(storage.head("big/video.bin").await.unwrap().size, body.len() as u64);
    let read = read_all(storage, "big/video.bin").await;
    assert!(read == body, "content differs ({} bytes read)", read.len());
    // A stream that fails part-way leaves no object behind.
    let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 9 * 1024 * 1024])),
        Err(StorageError::backend("test", "big/broken", "the upload broke")),
    ]));
    assert!(storage.put_stream("big/broken", failing, WriteCondition::None).await.is_err());
    assert!(matches!(storage.head("big/broken").await, Err(StorageError::NotFound { .. })));
}

async fn files_upload_streaming(storage: &dyn Storage) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.bin");
    let body = patterned(9 * 1024 * 1024 + 7);
    std::fs::write(&path, &body).unwrap();
    let meta = storage.put_file("uploads/input.bin", &path).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
    assert!(read_all(storage, "uploads/input.bin").await == body);
    let missing = storage.put_file("uploads/none", &dir.path().join("none")).await;
    assert!(matches!(missing, Err(StorageError::Backend { .. })), "{missing:?}");
}

async fn listing_pages_in_key_order(storage: &dyn Storage) {
    let mut expected: Vec<String> = (0..7).map(|i| format!("list/item-{i}")).collect();
    expected.push("list/sub/deep".into());
    expected.push("list/item-1.json".into());
    for key in &expected {
        storage.put_bytes(key, Bytes::from(key.clone()), WriteCondition::None).await.unwrap();
    }
    storage.put_bytes("listing-elsewhere", Bytes::from_static(b"x"), WriteCondition::None).await.unwrap();
    expected.sort();
    let mut seen = Vec::new();
    let mut start_after = None;
    let mut pages = 0;
    loop {
        let page =
            storage.list("list/", ListRequest { start_after: start_after.clone(), limit: 3, shallow: false }).await;
        let page = page.unwrap();
        assert!(page.objects.len() <= 3);
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        pages += 1;
        match page.next_start_after {
            Some(next) => start_after = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    let sized = storage.list("list/item-1", ListRequest::default()).await.unwrap();
    let keys: Vec<&str> = sized.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["list/item-1", "list/item-1.json"]);
    assert_eq!(sized.objects[0].size, "list/item-1".len() as u64);
    assert!(storage.list("nothing/", ListRequest::default()).await.unwrap().objects.is_empty());
}

async fn shallow_listing_skips_deeper_objects(storage: &dyn Storage) {
    for key in ["jobs/a.json", "jobs/a/inputs/target.png", "jobs/a/result.png", "jobs/b.json", "jobs/c/x"] {
        storage.put_bytes(key, Bytes::from_static(b"x"), WriteCondition::None).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut start_after = None;
    loop {
        let request = ListRequest { start_after: start_after.clone(), limit: 1, shallow: true };
        let page = storage.list("jobs/", request).await.unwrap();
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        match page.next_start_after {
            Some(next) => start_after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["jobs/a.json", "jobs/b.json"]);
}

async fn delete_removes_and_is_idempotent(storage: &dyn Storage) {
    storage.put_bytes("d/one", Bytes::from_static(b"1"), WriteCondition::None).await.unwrap();
    storage.put_bytes("d/two", Bytes::from_static(b"2"), WriteCondition::None).await.unwrap();
    storage.delete("d/one").await.unwrap();
    storage.delete("d/one").await.unwrap();
    storage.delete("never/existed").await.unwrap();
    assert!(matches!(storage.head("d/one").await, Err(StorageError::NotFound { .. })));
    let keys: Vec<String> =
        storage.list("d/", ListRequest::default()).await.unwrap().objects.into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["d/two"]);
}

async fn get_bytes_refuses_oversized_objects(storage: &dyn Storage) {
    storage.put_bytes("sized", Bytes::from(vec![7u8; 1000]), WriteCondition::None).await.unwrap();
    assert!(matches!(storage.get_bytes("sized", 999).await, Err(StorageError::TooLarge { limit: 999, .. })));
    let (bytes, meta) = storage.get_bytes("sized", 1000).await.unwrap();
    assert_eq!((bytes.len(), meta.size), (1000, 1000));
}

async fn presigned_urls_work_where_offered(storage: &dyn Storage) {
    storage.put_bytes("shared/photo.png", Bytes::from_static(b"png bytes"), WriteCondition::None).await.unwrap();
    let get_url = storage.presign_get("shared/photo.png", Duration::from_secs(300)).await.unwrap();
    let content = PutContent { content_type: "application/octet-stream".into(), length: 8 };
    let put_url = storage.presign_put("shared/upload.bin", Duration::from_secs(300), &content).await.unwrap();
    match storage.kind() {
        "fs" => assert_eq!((get_url, put_url), (None, None)),
        "s3" => {
            let (get_url, put_url) = (get_url.expect("S3 presigns GET"), put_url.expect("S3 presigns PUT"));
            assert!(get_url.contains("X-Amz-Signature="), "{get_url}");
            let body = tokio::task::spawn_blocking(move || {
                ureq::get(&get_url).call().expect("presigned GET").body_mut().read_to_vec().expect("body")
            })
            .await
            .unwrap();
            assert_eq!(body, b"png bytes");
            // The type and length are signed: another length is refused, the granted one stored.
            assert!(put_url.contains("content-length%3Bcontent-type%3Bhost"), "{put_url}");
            let put = |body: &'static [u8]| {
                let url = put_url.clone();
                tokio::task::spawn_blocking(move || {
                    ureq::put(&url).header("Content-Type", "application/octet-stream").send(body)
                })
            };
            assert!(put(b"uploaded, and more").await.unwrap().is_err(), "a PUT of another length was accepted");
            put(b"uploaded").await.unwrap().expect("presigned PUT");
            assert_eq!(storage.get_bytes("shared/upload.bin", 100).await.unwrap().0, &b"uploaded"[..]);
            // A tampered signature is refused: the server really checks it.
            let forged = storage.presign_get("shared/photo.png", Duration::from_secs(300)).await.unwrap().unwrap();
            let forged = forged.replace("X-Amz-Signature=", "X-Amz-Signature=0");
            let refused = tokio::task::spawn_blocking(move || ureq::get(&forged).call()).await.unwrap();
            assert!(refused.is_err(), "a forged signature was accepted");
        }
        other => panic!("unknown backend {other}"),
    }
}

async fn invalid_keys_are_rejected_before_any_call(storage: &dyn Storage) {
    for key in ["", "../escape", "a//b", "/abs", "a/./b", ".ff-locks/000.lock"] {
        let put = storage.put_bytes(key, Bytes::from_static(b"x"), WriteCondition::None).await;
        assert!(matches!(put, Err(StorageError::InvalidKey { .. })), "{key:?}: {put:?}");
        assert!(matches!(storage.get(key).await, Err(StorageError::InvalidKey { .. })), "{key:?}");
        assert!(matches!(storage.delete(key).await, Err(StorageError::InvalidKey { .. })), "{key:?}");
    }
    assert!(matches!(storage.list("../", ListRequest::default()).await, Err(StorageError::InvalidKey { .. })));
}

/// The filesystem backend keeps every object inside its directory, whatever the key.
#[tokio::test]
async fn fs_objects_stay_inside_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path().join("data"));
    storage.put_bytes("x/y.txt", Bytes::from_static(b"in"), WriteCondition::None).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("data/x/y.txt")).unwrap(), b"in");
    let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["data"]);
}

/// Deleting the last object of a folder removes the empty folder, so the tree does not fill up.
#[tokio::test]
async fn fs_delete_prunes_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    storage.put_bytes("jobs/1/inputs/a.png", Bytes::from_static(b"a"), WriteCondition::None).await.unwrap();
    storage.delete("jobs/1/inputs/a.png").await.unwrap();
    assert!(!dir.path().join("jobs").exists());
}

/// Two backends over one directory (two processes sharing FF_DATA_DIR) still serialise their
/// compare-and-swaps through the lock files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_two_instances_on_one_directory_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let first = FsStorage::new(dir.path());
    let second = FsStorage::new(dir.path());
    first.put_bytes("n", Bytes::from_static(b"0"), WriteCondition::IfAbsent).await.unwrap();
    let add = |storage: FsStorage| async move {
        for _ in 0..20 {
            loop {
                let (bytes, meta) = storage.get_bytes("n", 16).await.unwrap();
                let value: u32 = std::str::from_utf8(&bytes).unwrap().parse().unwrap();
                let next = Bytes::from((value + 1).to_string());
                if storage.put_bytes("n", next, WriteCondition::IfMatch(meta.etag)).await.is_ok() {
                    break;
                }
            }
        }
    };
    tokio::join!(add(first.clone()), add(second));
    assert_eq!(first.get_bytes("n", 16).await.unwrap().0, &b"40"[..]);
}

/// A stalled storage call ends with `Timeout`, not a hang: here a lock held by another writer.
#[tokio::test]
async fn fs_a_call_that_cannot_finish_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).with_call_timeout(Duration::from_millis(200));
    storage.put_bytes("k", Bytes::from_static(b"v"), WriteCondition::None).await.unwrap();
    // Hold every stripe lock, as a stuck writer in another process would.
    let held: Vec<std::fs::File> = std::fs::read_dir(dir.path().join(".ff-locks"))
        .unwrap()
        .map(|entry| {
            let file = std::fs::OpenOptions::new().write(true).open(entry.unwrap().path()).unwrap();
            file.lock().unwrap();
            file
        })
        .collect();
    assert!(!held.is_empty());
    let started = std::time::Instant::now();
    let result = storage.put_bytes("k", Bytes::from_static(b"w"), WriteCondition::None).await;
    assert!(matches!(result, Err(StorageError::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(held);
    storage.put_bytes("k", Bytes::from_static(b"w"), WriteCondition::None).await.unwrap();
}

#[test]
fn storage_settings_come_from_ff_variables() {
    let parse = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ServiceConfig::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let defaults = parse(&[]).unwrap();
    assert_eq!(defaults.data_dir, std::path::PathBuf::from(".data"));
    assert_eq!((defaults.s3_bucket, defaults.s3_endpoint, defaults.s3_force_path_style), (None, None, false));
    assert_eq!((defaults.workers, defaults.job_queue_length), (1, 64));
    let minio = parse(&[
        ("FF_S3_BUCKET", "ff-jobs"),
        ("FF_S3_PREFIX", "/tenant/a/"),
        ("FF_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("FF_WORKERS", "0"),
        ("FF_JOB_QUEUE_LENGTH", "5"),
        ("FF_DATA_DIR", "/var/ff"),
    ])
    .unwrap();
    assert_eq!(minio.s3_bucket.as_deref(), Some("ff-jobs"));
    assert_eq!(minio.s3_prefix, "tenant/a");
    assert!(minio.s3_force_path_style, "path style is the default with a custom endpoint");
    assert_eq!((minio.workers, minio.job_queue_length), (0, 5));
    assert_eq!(minio.data_dir, std::path::PathBuf::from("/var/ff"));
    let explicit = parse(&[("FF_S3_ENDPOINT", "https://s3.example"), ("FF_S3_FORCE_PATH_STYLE", "false")]).unwrap();
    assert!(!explicit.s3_force_path_style);
    for (variable, value) in [
        ("FF_S3_BUCKET", "Bad_Bucket"),
        ("FF_S3_BUCKET", "ab"),
        ("FF_S3_PREFIX", "a/../b"),
        ("FF_S3_ENDPOINT", "127.0.0.1:9000"),
        ("FF_S3_ENDPOINT", "http://"),
        ("FF_S3_FORCE_PATH_STYLE", "sometimes"),
        ("FF_WORKERS", "65"),
        ("FF_JOB_QUEUE_LENGTH", "0"),
    ] {
        let error = parse(&[(variable, value)]).unwrap_err();
        assert_eq!(error.variable, variable, "{value}");
    }
    assert_eq!(DEFAULT_CALL_TIMEOUT, Duration::from_secs(60));
}
