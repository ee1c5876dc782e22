//! Image swap benchmark: obama.jpg → biden.jpg with the `costed` stand-ins (realistic compute).
//! Prints per-stage wall time, the time spent inside ONNX Runtime for the same calls, and peak RSS.
//!
//! `cargo bench -p ff-pipeline --bench image_swap` (FF_TEST_ASSETS points at ../shared/assets;
//! FF_BENCH_RUNS sets the number of measured runs, default 3, after one warm-up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_pipeline::face::detector;
use ff_pipeline::face::{classifier, landmarker, recognizer, Face};
use ff_pipeline::geometry::paste_back;
use ff_pipeline::image_io::{self, ImageFormat};
use ff_pipeline::models::ModelStore;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::processors::face_swapper::{FaceSwapper, SourceFace};
use ff_pipeline::sessions::ModelRegistry;
use ff_pipeline::testing::{assets_dir, inference_snapshot, ms_per_run, print_inference_summary};
use ff_pipeline::Frame;

const STAGES: [&str; 7] = ["decode", "detect", "landmark", "embed", "swap", "paste", "encode"];

#[derive(Default, Clone)]
struct Timings([Duration; 7]);

impl Timings {
    fn time<T>(&mut self, stage: usize, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        self.0[stage] += started.elapsed();
        result
    }
}

fn main() {
    let runs: usize = std::env::var("FF_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let store = Arc::new(ModelStore::new(assets_dir().join("standins/costed"), false));
    let registry = ModelRegistry::new(Arc::new(move |name: &str| store.ensure(name)), threads, 1);
    let options = options();
    let source_bytes = std::fs::read(assets_dir().join("images/obama.jpg")).expect("obama.jpg");
    let target_bytes = std::fs::read(assets_dir().join("images/biden.jpg")).expect("biden.jpg");

    run_once(&registry, &options, &source_bytes, &target_bytes);
    let ort_before = inference_snapshot(&registry);
    let mut total = Timings::default();
    for _ in 0..runs {
        let timings = run_once(&registry, &options, &source_bytes, &target_bytes);
        total.0.iter_mut().zip(timings.0).for_each(|(t, d)| *t += d);
    }
    let ort_after = inference_snapshot(&registry);
    print_table(&total, runs, &ort_before, &ort_after, threads);
}

fn options() -> ProcessOptions {
    let pairs = vec![("face_swapper_model".to_string(), vec!["inswapper_128".to_string()])];
    ProcessOptions::from_pairs(&pairs).expect("valid options")
}

/// One swap, stage by stage, through the same functions the engine runs.
fn run_once(registry: &ModelRegistry, options: &ProcessOptions, source: &[u8], target: &[u8]) -> Timings {
    let mut t = Timings::default();
    let (source, target) = t.time(0, || {
        (
            image_io::decode(source, u64::MAX).expect("source").frame,
            image_io::decode(target, u64::MAX).expect("target").frame,
        )
    });
    let source_face = analyse(registry, options, &source, &mut t);
    let target_face = analyse(registry, options, &target, &mut t);
    let swapper = t.time(4, || {
        let source = SourceFace::average(std::slice::from_ref(&source), &[Some(source_face)]).expect("source face");
        FaceSwapper::new(registry, &options.swapper, &source).expect("swapper")
    });
    let swapped = t.time(4, || swapper.swap_crop(&target, &target_face, &options.masks).expect("swap"));
    let output = t.time(5, || paste_back(&target, &swapped.crop, &swapped.mask, &swapped.affine));
    t.time(6, || image_io::encode(&output, None, ImageFormat::Jpeg, 80).expect("encode"));
    t
}

fn analyse(registry: &ModelRegistry, options: &ProcessOptions, frame: &Frame, t: &mut Timings) -> Face {
    let detection = t.time(1, || {
        detector::detect(registry, frame, &options.detector).expect("detect").into_iter().next().expect("a face")
    });
    let (landmark_68_5, landmark_68, score) = t.time(2, || {
        let landmark_68_5 = landmarker::estimate_68_from_5(registry, &detection.landmark_5).expect("fan_68_5");
        let angle = landmarker::estimate_face_angle(&landmark_68_5);
        let (landmark_68, score) =
            landmarker::detect_68(registry, frame, &detection.bounding_box, angle, options.landmarker.model)
                .expect("2dfan4");
        (landmark_68_5, landmark_68, score)
    });
    let landmark_5_68 = landmarker::landmark_5_from_68(&landmark_68);
    let ((embedding, embedding_norm), class) = t.time(3, || {
        (
            recognizer::embed(registry, frame, &landmark_5_68).expect("arcface"),
            classifier::classify(registry, frame, &landmark_5_68).expect("fairface"),
        )
    });
    Face {
        bounding_box: detection.bounding_box,
        detector_score: detection.score,
        landmarker_score: score,
        landmark_5: detection.landmark_5,
        landmark_5_68,
        landmark_68,
        landmark_68_5,
        angle: 0,
        embedding,
        embedding_norm,
        gender: class.gender,
        age: class.age,
        race: class.race,
    }
}

fn print_table(
    total: &Timings,
    runs: usize,
    before: &[(String, u64, Duration)],
    after: &[(String, u64, Duration)],
    threads: usize,
) {
    println!("image swap obama.jpg -> biden.jpg, inswapper_128, costed stand-ins, {threads} ORT threads, mean of {runs} runs");
    println!("{:<10} {:>10}", "stage", "ms");
    for (stage, duration) in STAGES.iter().zip(total.0) {
        println!("{stage:<10} {:>10.1}", ms_per_run(duration, runs));
    }
    let wall: Duration = total.0.iter().sum();
    println!("{:<10} {:>10.1}", "total", ms_per_run(wall, runs));
    println!();
    print_inference_summary(before, after, runs, wall);
}
