//! POST /api/v1/faces: the faces of a photo and the people of a video, from a form or from an
//! upload, and the refusals.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use ff_pipeline::testing::assets_dir;
use ff_service::storage::WriteCondition;
use ff_service::{router, AppState};
use serde_json::Value;

mod common;
use common::{asset, fs_backend, send, Backend, Form};

fn app(backend: &Backend) -> Router {
    let config = common::test_config(&[], &[("FF_WORKERS", "0")]);
    router(AppState::new(config).expect("engine builds").with_storage(Arc::clone(&backend.storage)))
}

fn clip() -> Vec<u8> {
    std::fs::read(assets_dir().join("video/short_hamilton_clip.mp4")).unwrap()
}

fn json_request(body: Value) -> Request<Body> {
    Request::post("/api/v1/faces").header(CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

/// Every face's crop is a JPEG, and every face belongs to the person that lists it.
fn assert_consistent(answer: &Value) {
    let faces = answer["faces"].as_array().unwrap();
    for (id, face) in faces.iter().enumerate() {
        assert_eq!(face["id"], id);
        let crop = STANDARD.decode(face["crop"].as_str().unwrap()).unwrap();
        assert_eq!(&crop[..2], &[0xFF, 0xD8], "a JPEG");
        let person = &answer["people"][face["person"].as_u64().unwrap() as usize];
        assert!(person["faces"].as_array().unwrap().contains(&Value::from(id)));
    }
    for person in answer["people"].as_array().unwrap() {
        assert_eq!(person["embedding"].as_array().unwrap().len(), 512);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_answers_its_faces_in_the_selectors_order() {
    let backend = fs_backend();
    let router = app(&backend);
    let form = Form::default().file("media", "two_people.jpg", &asset("two_people.jpg"));
    let answer = send(&router, form.post("/api/v1/faces")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&answer.body));
    let answer = answer.json();
    assert_eq!((answer["media"].as_str(), answer["frames"].as_array().map(Vec::len)), (Some("image"), Some(1)));
    let faces = answer["faces"].as_array().unwrap();
    assert_eq!((faces.len(), answer["people"].as_array().unwrap().len()), (2, 2));
    assert_eq!((faces[0]["position"].as_u64(), faces[1]["position"].as_u64()), (Some(0), Some(1)));
    for face in faces {
        assert_eq!(face["box"].as_array().unwrap().len(), 4);
        assert_eq!(face["landmarks_5"].as_array().unwrap().len(), 5);
        assert!(["female", "male"].contains(&face["gender"].as_str().unwrap()));
        assert!(face["race"].is_string() && face["age"].as_array().unwrap().len() == 2);
    }
    assert_consistent(&answer);

    // The selector's options order the faces, as they would pick them in a run.
    let left_right = Form::default()
        .file("media", "two_people.jpg", &asset("two_people.jpg"))
        .text("face_selector_order", "left-right")
        .post("/api/v1/faces");
    let ordered = send(&router, left_right).await.json();
    let x = |index: usize| ordered["faces"][index]["box"][0].as_f64().unwrap();
    assert!(x(0) < x(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_answers_the_people_of_frames_sampled_over_its_trim_range() {
    let backend = fs_backend();
    let router = app(&backend);
    let form = Form::default().file("media", "clip.mp4", &clip()).text("trim_frame_end", "120");
    let answer = send(&router, form.post("/api/v1/faces")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&answer.body));
    let answer = answer.json();
    assert_eq!(answer["media"], "video");
    let frames: Vec<u64> = answer["frames"].as_array().unwrap().iter().map(|f| f.as_u64().unwrap()).collect();
    assert!(frames.len() > 30 && frames.len() <= 48 && *frames.last().unwrap() < 120, "{frames:?}");
    let people = answer["people"].as_array().unwrap();
    assert!(!people.is_empty());
    assert!(people.iter().any(|p| p["frames"].as_array().unwrap().len() > 10), "someone is seen throughout");
    assert_consistent(&answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_surveyed_by_its_key_and_other_keys_are_refused() {
    let backend = fs_backend();
    let router = app(&backend);
    let key = "uploads/0123456789abcdef0123456789abcdef";
    backend.storage.put_bytes(key, Bytes::from(asset("obama.jpg")), WriteCondition::IfAbsent).await.unwrap();
    let answer =
        send(&router, json_request(serde_json::json!({"media": key, "options": {"face_detector_score": 0.5}}))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["faces"].as_array().map(Vec::len), Some(1));

    let other = send(&router, json_request(serde_json::json!({"media": "jobs/x/result.png"}))).await;
    other.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let missing = send(&router, json_request(serde_json::json!({"media": "uploads/none"}))).await;
    missing.assert_error(StatusCode::NOT_FOUND, "object_not_found");
    let text = Form::default().file("media", "notes.txt", b"plain text").post("/api/v1/faces");
    send(&router, text).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
    let with_source = Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("media", "biden.jpg", &asset("biden.jpg"))
        .post("/api/v1/faces");
    send(&router, with_source).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let bad_option = Form::default().file("media", "biden.jpg", &asset("biden.jpg")).text("face_detector_score", "7");
    send(&router, bad_option.post("/api/v1/faces")).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
}

/// The survey's person ids name people in `face_mappings`, as a form field of /process and as
/// an array in a JSON job's options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_ids_from_the_survey_map_sources_in_process_and_jobs() {
    let backend = fs_backend();
    let router = app(&backend);
    let mapped = |mappings: &str| {
        Form::default()
            .file("source", "obama.jpg", &asset("obama.jpg"))
            .file("source", "biden.jpg", &asset("biden.jpg"))
            .file("target", "two_people.jpg", &asset("two_people.jpg"))
            .text("face_swapper_model", "inswapper_128")
            .text("face_mappings", mappings)
            .post("/api/v1/process")
    };
    let one = send(&router, mapped(r#"[{"source": 1, "target": 0}]"#)).await;
    assert_eq!(one.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&one.body));
    assert_eq!(one.headers["x-faces-processed"], "1");
    let both = send(&router, mapped(r#"[{"source": 0, "target": 0}, {"source": 1, "target": 1}]"#)).await;
    assert_eq!(both.headers["x-faces-processed"], "2");
    send(&router, mapped(r#"[{"source": 0, "target": 9}]"#))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    send(&router, mapped("not json")).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");

    for key in ["uploads/00000000000000000000000000000001", "uploads/00000000000000000000000000000002"] {
        let name = if key.ends_with('1') { "obama.jpg" } else { "two_people.jpg" };
        backend.storage.put_bytes(key, Bytes::from(asset(name)), WriteCondition::IfAbsent).await.unwrap();
    }
    let job = serde_json::json!({
        "sources": ["uploads/00000000000000000000000000000001"],
        "target": "uploads/00000000000000000000000000000002",
        "options": {"face_swapper_model": "inswapper_128", "face_mappings": [{"source": 0, "target": 1}]},
    });
    let request = Request::post("/api/v1/jobs")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(job.to_string()))
        .unwrap();
    let created = send(&router, request).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:?}", String::from_utf8_lossy(&created.body));
    let options = &created.json()["options"];
    assert_eq!(options["face_mappings"][0]["target"], 1, "the record keeps the mappings as given: {options}");
}
