//! Models kept in storage (FF_MODELS_S3_PREFIX), on both backends: POST /api/v1/models/download
//! puts the models it has into the prefix once; a service with an empty models directory and
//! downloads off then copies every model a run needs from there, verified, and processes.
//!
//! The run removes a background rather than swapping a face: the copy is checked against the
//! catalogue's published size and SHA-256 where there is one, which the stand-ins of the real
//! detector, landmarker and recognizer do not match (their real files would), so a run whose
//! models publish no digest is what the stand-ins can carry through a bucket.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{asset, fs_backend, s3_backend, send, test_config, Backend, Form};
use ff_pipeline::models::ModelSource;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::assets_dir;
use ff_pipeline::Engine;
use ff_service::models_bucket::{BucketModels, Published};
use ff_service::{router, AppState};

const PREFIX: &str = "models/";

/// The models a background removal with modnet loads (the NSFW gate's three and modnet).
fn run_models(engine: &Engine) -> Vec<String> {
    let options = ProcessOptions::from_json(&serde_json::json!({
        "processors": ["background_remover"],
        "background_remover_model": "modnet",
    }))
    .expect("valid options");
    engine.required_models(&options)
}

async fn models_travel_through_the_bucket(backend: Backend) {
    let bucket = Arc::new(BucketModels::new(Arc::clone(&backend.storage), PREFIX, tokio::runtime::Handle::current()));

    // A service over the stand-ins fills the prefix through the API, once.
    let light = test_config(&[("FF_ALLOW_MODEL_DOWNLOAD", "true")], &[]);
    let filler = AppState::new(light).unwrap().with_storage(Arc::clone(&backend.storage));
    let filler = filler.with_models_bucket(Arc::clone(&bucket));
    let names = run_models(filler.engine());
    assert!(names.len() >= 4 && names.contains(&"modnet".to_string()), "{names:?}");
    let body = serde_json::to_string(&names).unwrap();
    let request = axum::http::Request::post("/api/v1/models/download")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.clone()))
        .unwrap();
    let answer = send(&router(filler.clone()), request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    for result in answer.json()["results"].as_array().unwrap() {
        assert_eq!(
            (result["status"].as_str(), result["bucket"].as_str()),
            (Some("present"), Some("uploaded")),
            "{result}"
        );
    }
    // Unchanged models are not uploaded again.
    let light_dir = assets_dir().join("standins/light");
    assert_eq!(bucket.publish(&light_dir, &names[0]).await.unwrap(), Published::Present);
    let stored = backend.storage.head(&bucket.key("modnet.onnx")).await.unwrap();
    assert_eq!(stored.size, std::fs::metadata(light_dir.join("modnet.onnx")).unwrap().len());

    // A fresh environment: no models, downloads off. Everything comes from the bucket.
    let models = tempfile::tempdir().unwrap();
    let models_dir = models.path().to_string_lossy().into_owned();
    let config = test_config(&[("FF_MODELS_DIR", &models_dir), ("FF_ALLOW_MODEL_DOWNLOAD", "false")], &[]);
    let source = Arc::clone(&bucket) as Arc<dyn ModelSource>;
    let engine = Engine::with_model_source(config.to_engine_config(), Some(source)).unwrap();
    assert_eq!(engine.store().source_location(), Some(format!("{}://{PREFIX}", backend.storage.kind())));
    let state = AppState::with_engine(Arc::new(engine), config).with_storage(Arc::clone(&backend.storage));
    let form = Form::default()
        .file("target", "biden.jpg", &asset("biden.jpg"))
        .text("processors", "background_remover")
        .text("background_remover_model", "modnet");
    let answer = send(&router(state.clone()), form.post("/api/v1/process")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&answer.body));
    for name in &names {
        let status = state.engine().store().status(name).unwrap();
        assert!(status.verified, "{name} was not copied and verified: {status:?}");
    }

    // A model the bucket does not have fails with downloads off, naming the bucket.
    let error =
        tokio::task::spawn_blocking(move || state.engine().store().ensure("gfpgan_1.4").unwrap_err()).await.unwrap();
    assert!(error.to_string().contains("does not have gfpgan_1.4"), "{error}");
}

on_both_backends!(models_travel_through_the_bucket);
