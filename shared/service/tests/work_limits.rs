//! What one small request can make the server do: videos measured on the frames they decode to,
//! output sizes and source counts bounded before any work, forms bounded while they are read,
//! images checked at job creation as on /process, and photo formats we do not read answered 415.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Request, StatusCode};
use axum::Router;
use ff_pipeline::testing::sparse_video;
use ff_pipeline::video::Toolchain;
use ff_service::batch::{process_inbox_object, BatchOutcome};
use ff_service::storage::WriteCondition;
use ff_service::{router, AppState, X_FRAMES_PROCESSED};

mod common;
use common::{asset, blank_png, fs_backend, send, Form};

fn app(overrides: &[(&str, &str)]) -> Router {
    let state = AppState::new(common::test_config(overrides, &[("FF_WORKERS", "0")])).expect("engine builds");
    router(state.with_storage(fs_backend().storage))
}

fn json_job(body: serde_json::Value) -> Request<Body> {
    Request::post("/api/v1/jobs").header(CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

/// 51 frames whose last one is at 60 s: "2 s" by its frame count, 1,501 frames once decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_measures_a_sparse_video_on_the_frames_it_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = sparse_video(dir.path(), 51, 60);
    let info = Toolchain::from_env().probe(&sparse).unwrap();
    assert_eq!(info.frame_count, 51);
    assert!((info.duration - 60.04).abs() < 0.01, "{}", info.duration);
    let router = app(&[]);
    let form = Form::default().file("source", "obama.jpg", &asset("obama.jpg")).file(
        "target",
        "sparse.mp4",
        &std::fs::read(&sparse).unwrap(),
    );
    let message =
        send(&router, form.post("/api/v1/process")).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "video_too_long");
    assert!(message.contains("1501 frames"), "{message}");

    // The same 51 frames without the gap: 2 s, processed frame for frame.
    let regular_dir = tempfile::tempdir().unwrap();
    let regular = std::fs::read(sparse_video(regular_dir.path(), 51, 2)).unwrap();
    let form = Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "regular.mp4", &regular)
        .text("output_video_preset", "ultrafast");
    let answer = send(&router, form.post("/api/v1/process")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.headers[X_FRAMES_PROCESSED], "51");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_sizes_over_the_pixel_limit_are_refused_before_any_work() {
    let router = app(&[]);
    let scaled = Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "big.png", &blank_png(2048, 2048))
        .text("output_image_scale", "8");
    let message = send(&router, scaled.post("/api/v1/process"))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large");
    assert!(message.contains("output_image_scale"), "{message}");

    let small_limit = app(&[("FF_MAX_IMAGE_PIXELS", "1000000")]);
    let enhanced = || {
        Form::default()
            .file("target", "square.png", &blank_png(600, 600))
            .text("processors", "frame_enhancer")
            .text("frame_enhancer_model", "clear_reality_x4")
    };
    let message = send(&small_limit, enhanced().post("/api/v1/process"))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large");
    assert!(message.contains("frame_enhancer_model"), "{message}");
    // A job is refused at creation the same way.
    send(&small_limit, enhanced().post("/api/v1/jobs"))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_bounded_on_every_entry_point() {
    let router = app(&[("FF_MAX_SOURCES", "2")]);
    let three = || {
        Form::default()
            .file("source", "a.jpg", &asset("obama.jpg"))
            .file("source", "b.jpg", &asset("obama.jpg"))
            .file("source", "c.jpg", &asset("obama.jpg"))
            .file("target", "biden.jpg", &asset("biden.jpg"))
    };
    for path in ["/api/v1/process", "/api/v1/jobs"] {
        let message = send(&router, three().post(path)).await.assert_error(StatusCode::BAD_REQUEST, "too_many_sources");
        assert!(message.contains("FF_MAX_SOURCES"), "{path}: {message}");
    }
    let keys = serde_json::json!({"sources": ["s/a.jpg", "s/b.jpg", "s/c.jpg"], "target": "t/x.jpg"});
    send(&router, json_job(keys)).await.assert_error(StatusCode::BAD_REQUEST, "too_many_sources");
    let repeated = serde_json::json!({"sources": ["s/a.jpg", "s/a.jpg"], "target": "t/x.jpg"});
    let message = send(&router, json_job(repeated)).await.assert_error(StatusCode::BAD_REQUEST, "duplicate_source");
    assert!(message.contains("s/a.jpg"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_are_bounded_while_they_are_read() {
    let router = app(&[]);
    let mut many = Form::default().file("target", "biden.jpg", &asset("biden.jpg"));
    for _ in 0..300 {
        many = many.text("face_selector_mode", "one");
    }
    let message =
        send(&router, many.post("/api/v1/process")).await.assert_error(StatusCode::BAD_REQUEST, "form_too_large");
    assert!(message.contains("256"), "{message}");

    let long_value = "x".repeat(64 * 1024 + 1);
    let long = Form::default().file("target", "biden.jpg", &asset("biden.jpg")).text("options", &long_value);
    let message =
        send(&router, long.post("/api/v1/jobs")).await.assert_error(StatusCode::BAD_REQUEST, "form_too_large");
    assert!(message.contains("`options`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_formats_we_do_not_read_are_unsupported_media() {
    let router = app(&[]);
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.resize(4096, 0);
    let mut avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec();
    avif.resize(4096, 0);
    let gif =
        b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;"
            .to_vec();
    let tiff = b"II*\0\x08\0\0\0\0\0".to_vec();
    for (name, bytes) in [("photo.heic", heic), ("photo.avif", avif), ("anim.gif", gif), ("scan.tiff", tiff)] {
        let form = Form::default().file("source", "obama.jpg", &asset("obama.jpg")).file("target", name, &bytes);
        let message = send(&router, form.post("/api/v1/process"))
            .await
            .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
        assert!(message.contains("JPEG, PNG, WebP or BMP"), "{name}: {message}");
    }
}

/// What /process refuses at once, job creation refuses too, instead of a 202 and a failed job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_refuse_undecodable_or_oversized_images_at_creation() {
    // biden.jpg (910x1137) fits; the blank PNG below (1500x1400) does not.
    let router = app(&[("FF_MAX_IMAGE_PIXELS", "2000000")]);
    let mut broken = asset("biden.jpg")[..2].to_vec();
    broken.extend(std::iter::repeat_n(0u8, 512));
    let mut broken_png = blank_png(8, 8)[..16].to_vec();
    broken_png.extend(std::iter::repeat_n(0u8, 64));
    for path in ["/api/v1/process", "/api/v1/jobs"] {
        let form =
            Form::default().file("source", "obama.jpg", &asset("obama.jpg")).file("target", "x.png", &broken_png);
        let message =
            send(&router, form.post(path)).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
        assert!(message.contains("`target`"), "{path}: {message}");
        let form =
            Form::default().file("source", "broken.jpg", &broken).file("target", "biden.jpg", &asset("biden.jpg"));
        let message =
            send(&router, form.post(path)).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
        assert!(message.contains("`source` 0"), "{path}: {message}");
    }
    let big = Form::default().file("source", "obama.jpg", &asset("obama.jpg")).file(
        "target",
        "big.png",
        &blank_png(1500, 1400),
    );
    send(&router, big.post("/api/v1/jobs")).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large");
}

/// A batch sidecar naming too many sources, or one twice, fails to a report with its code before
/// any source is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_documents_are_bounded_like_jobs() {
    let backend = fs_backend();
    let state = AppState::new(common::test_config(&[("FF_MAX_SOURCES", "2")], &[("FF_WORKERS", "0")]))
        .expect("engine builds")
        .with_storage(std::sync::Arc::clone(&backend.storage));
    let storage = &backend.storage;
    let put = |key: String, bytes: Vec<u8>| async move {
        storage.put_bytes(&key, bytes.into(), WriteCondition::None).await.expect("stored")
    };
    put("sources/obama.jpg".into(), asset("obama.jpg")).await;
    for (name, sources, code) in [
        ("three", serde_json::json!(["sources/obama.jpg", "sources/b.jpg", "sources/c.jpg"]), "too_many_sources"),
        ("twice", serde_json::json!(["sources/obama.jpg", "sources/obama.jpg"]), "duplicate_source"),
    ] {
        let key = format!("inbox/{name}.jpg");
        put(format!("{key}.json"), serde_json::json!({"sources": sources}).to_string().into_bytes()).await;
        put(key.clone(), asset("biden.jpg")).await;
        let outcome = process_inbox_object(&state, &key).await.expect("storage works");
        assert!(matches!(&outcome, BatchOutcome::Failed { code: found, .. } if found == code), "{name}: {outcome:?}");
    }
}
