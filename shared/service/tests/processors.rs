//! The processors added last through the service's three ways in: FaceFusion 3.5.3's parity cases
//! 11-16 through POST /api/v1/process, case 17 (a video) as a job, a transparent PNG through batch,
//! and a three-processor chain. Light stand-ins; thresholds as in the pipeline's parity tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::Router;
use ff_pipeline::testing::{decode_video, diff_box, parity_case, psnr, read_bgr, read_bgra, ParityCase};
use ff_pipeline::video::ReadOptions;
use ff_pipeline::{image_io, Frame, Raster};
use ff_service::batch::{process_inbox_object, BatchOutcome};
use ff_service::jobs::{JobStatus, Workers};
use ff_service::storage::WriteCondition;
use ff_service::{router, AppState, X_FACES_PROCESSED};

mod common;
use common::{asset, fs_backend, get, send, Backend, Form};

fn app(backend: &Backend, workers: &str) -> (AppState, Router) {
    let config = common::test_config(&[("FF_WORKERS", workers)], &[]);
    let state = AppState::new(config).expect("engine builds").with_storage(Arc::clone(&backend.storage));
    (state.clone(), router(state))
}

/// The case's FaceFusion options as the `options` JSON field: flag names become option names.
fn options_json(case: &ParityCase) -> String {
    let object: serde_json::Map<String, serde_json::Value> = case
        .pairs
        .iter()
        .map(|(flag, values)| (flag.trim_start_matches('-').replace('-', "_"), serde_json::json!(values)))
        .collect();
    serde_json::Value::Object(object).to_string()
}

fn case_form(case: &ParityCase) -> Form {
    let mut form = Form::default();
    for source in &case.sources {
        form = form.file("source", "source.png", &std::fs::read(source).unwrap());
    }
    form.file("target", "target.png", &std::fs::read(&case.target).unwrap()).text("options", &options_json(case))
}

/// PSNR of our PNG against FaceFusion's output inside the box where FaceFusion changed the target.
fn region_psnr(ours: &Frame, case: &ParityCase) -> f64 {
    let golden = read_bgr(&case.dir.join("output.png"));
    let target = read_bgr(&case.target);
    let region = diff_box(&golden, &target);
    psnr(ours, &golden, region)
}

fn decode_png(bytes: &[u8]) -> (Frame, Option<Raster<u8>>) {
    let decoded = image_io::decode(bytes, u64::MAX).expect("the answer decodes");
    (decoded.frame, decoded.alpha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_cases_11_to_16_through_process() {
    let backend = fs_backend();
    let (_, router) = app(&backend, "0");
    for name in [
        "11_age_modifier_obama_older_60",
        "12_swap_then_expression_restorer_lower_face",
        "13_face_editor_obama_sliders",
        "14_deep_swapper_two_people_morph_80",
        "15_frame_colorizer_ddcolor_192_blend_80",
        "16_background_remover_rmbg_green_alpha",
    ] {
        let case = parity_case(name);
        let answer = send(&router, case_form(&case).post("/api/v1/process")).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.headers[CONTENT_TYPE], "image/png", "{name}");
        let (ours, alpha) = decode_png(&answer.body);
        let value = region_psnr(&ours, &case);
        println!("{name} through /process: {value:.2} dB");
        assert!(value >= 40.0, "{name}: {value:.2} dB");
        if name.starts_with("16_") {
            let (_, golden_alpha) = read_bgra(&case.dir.join("output.png"));
            let alpha = alpha.expect("the background remover's PNG keeps its alpha");
            assert!(psnr(&alpha, &golden_alpha, None) >= 40.0, "{name}: alpha");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_case_17_as_a_video_job() {
    let backend = fs_backend();
    let (state, router) = app(&backend, "1");
    let workers = Workers::start(&state);
    let case = parity_case("17_video_frame_colorizer_deoldify_20f");
    let form = Form::default()
        .file("target", "clip.mp4", &std::fs::read(&case.target).unwrap())
        .text("options", &options_json(&case));
    let answer = send(&router, form.post("/api/v1/jobs")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&answer.body));
    let id = answer.job().id;

    let started = Instant::now();
    let job = loop {
        let job = send(&router, get(&format!("/api/v1/jobs/{id}"))).await.job();
        if job.status.is_final() {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "job still {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let result = send(&router, get(&format!("/api/v1/jobs/{id}/result"))).await;
    assert_eq!(result.status, StatusCode::OK);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("result.mp4");
    std::fs::write(&output, &result.body).unwrap();

    let ours = decode_video(&output, &ReadOptions::default());
    let golden = decode_video(&case.dir.join("output.mp4"), &ReadOptions::default());
    assert_eq!((ours.len(), golden.len()), (20, 20));
    let lowest = ours.iter().zip(&golden).map(|(ours, golden)| psnr(ours, golden, None)).fold(f64::INFINITY, f64::min);
    println!("case 17 as a job: lowest frame {lowest:.2} dB");
    assert!(lowest >= 35.0, "case 17: lowest frame {lowest:.2} dB");
    workers.shutdown(Duration::from_secs(10)).await;
}

/// Case 16's PNG dropped into the inbox with a sidecar holding the case's options comes out of the
/// outbox with FaceFusion's alpha.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_png_through_the_background_remover_keeps_its_transparency() {
    let backend = fs_backend();
    let (state, _) = app(&backend, "0");
    let storage = &backend.storage;
    let case = parity_case("16_background_remover_rmbg_green_alpha");
    let sidecar = options_json(&case).into_bytes();
    storage.put_bytes("inbox/person.png.json", sidecar.into(), WriteCondition::None).await.unwrap();
    storage
        .put_bytes("inbox/person.png", std::fs::read(&case.target).unwrap().into(), WriteCondition::None)
        .await
        .unwrap();

    let outcome = process_inbox_object(&state, "inbox/person.png").await.expect("storage works");
    assert_eq!(outcome, BatchOutcome::Completed { output: "outbox/person.png".into() });
    let (bytes, _) = storage.get_bytes("outbox/person.png", 1 << 30).await.unwrap();
    let (ours, alpha) = decode_png(&bytes);
    let (_, golden_alpha) = read_bgra(&case.dir.join("output.png"));
    let alpha = alpha.expect("the outbox PNG has an alpha channel");
    let (frame_psnr, alpha_psnr) = (region_psnr(&ours, &case), psnr(&alpha, &golden_alpha, None));
    println!("case 16 through batch: frame {frame_psnr:.2} dB, alpha {alpha_psnr:.2} dB");
    assert!(frame_psnr >= 40.0 && alpha_psnr >= 40.0);
}

/// face_swapper → expression_restorer → face_enhancer: the restorer runs between the two (its
/// output differs from the chain without it) and the result still carries one processed face.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_restore_enhance_chains() {
    let backend = fs_backend();
    let (_, router) = app(&backend, "0");
    let run = |processors: &'static str| {
        let router = router.clone();
        async move {
            let form = Form::default()
                .file("source", "obama.jpg", &asset("obama.jpg"))
                .file("target", "biden.jpg", &asset("biden.jpg"))
                .text("processors", processors)
                .text("output_format", "png");
            let answer = send(&router, form.post("/api/v1/process")).await;
            assert_eq!(answer.status, StatusCode::OK, "{processors}: {}", String::from_utf8_lossy(&answer.body));
            assert_eq!(answer.headers[X_FACES_PROCESSED], "1", "{processors}");
            decode_png(&answer.body).0
        }
    };
    let chained = run("face_swapper expression_restorer face_enhancer").await;
    let without_restorer = run("face_swapper face_enhancer").await;
    let target = image_io::decode(&asset("biden.jpg"), u64::MAX).unwrap().frame;
    assert_eq!((chained.width, chained.height), (target.width, target.height));
    let face = diff_box(&without_restorer, &target).expect("the swap changed the face");
    let restored = psnr(&chained, &without_restorer, Some(face));
    println!("chain with the restorer against without, inside the face: {restored:.2} dB");
    assert!(restored.is_finite() && restored < 60.0, "the restorer changed the swapped face: {restored:.2} dB");
}
