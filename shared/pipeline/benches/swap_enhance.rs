//! Swap + enhance benchmark: obama.jpg → biden.jpg through the engine (NSFW gate, face analysis,
//! hyperswap_1a_256, gfpgan_1.4) with the `costed` stand-ins, whose compute approximates the real
//! models. Prints per-stage wall time, the time inside ONNX Runtime per model, and peak RSS.
//!
//! `cargo bench -p ff-pipeline --bench swap_enhance` (FF_TEST_ASSETS points at ../shared/assets;
//! FF_BENCH_RUNS sets the number of measured runs, default 2, after one warm-up).

use std::time::Duration;

use ff_pipeline::engine::StageTimings;
use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, inference_snapshot, ms_per_run, print_inference_summary, stand_in_config};
use ff_pipeline::{Engine, EngineConfig, ImageRequest};

fn main() {
    let runs: usize = std::env::var("FF_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2).max(1);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let engine = Engine::new(EngineConfig { intra_threads: threads, ..stand_in_config("costed") }).expect("engine");
    let source = std::fs::read(assets_dir().join("images/obama.jpg")).expect("obama.jpg");
    let target = std::fs::read(assets_dir().join("images/biden.jpg")).expect("biden.jpg");
    let options = ProcessOptions::from_pairs(&[(
        "processors".to_string(),
        vec!["face_swapper".to_string(), "face_enhancer".to_string()],
    )])
    .expect("valid options");
    let run = || {
        let request = ImageRequest {
            sources: vec![source.clone()],
            target: target.clone(),
            options: options.clone(),
            output_format: Some(ImageFormat::Jpeg),
        };
        engine.process_image(request).expect("swap + enhance").timings
    };

    run();
    let before = inference_snapshot(engine.registry());
    let mut total: Vec<(String, Duration)> = Vec::new();
    for _ in 0..runs {
        for (stage, time) in stages(&run()) {
            match total.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, sum)) => *sum += time,
                None => total.push((stage, time)),
            }
        }
    }
    let after = inference_snapshot(engine.registry());
    print_table(&total, runs, &before, &after, threads);
}

/// The engine's stages, with the processing split per processor.
fn stages(timings: &StageTimings) -> Vec<(String, Duration)> {
    let mut stages = vec![
        ("decode".to_string(), timings.decode),
        ("nsfw gate".to_string(), timings.content),
        ("face analysis".to_string(), timings.analyse),
    ];
    stages.extend(timings.processors.iter().cloned());
    stages.push(("encode".to_string(), timings.encode));
    stages
}

fn print_table(
    total: &[(String, Duration)],
    runs: usize,
    before: &[(String, u64, Duration)],
    after: &[(String, u64, Duration)],
    threads: usize,
) {
    println!(
        "swap + enhance obama.jpg -> biden.jpg, hyperswap_1a_256 + gfpgan_1.4, costed stand-ins, \
         {threads} ORT threads, mean of {runs} runs"
    );
    println!("{:<16} {:>10}", "stage", "ms");
    for (stage, duration) in total {
        println!("{stage:<16} {:>10.1}", ms_per_run(*duration, runs));
    }
    let wall: Duration = total.iter().map(|(_, d)| *d).sum();
    println!("{:<16} {:>10.1}", "total", ms_per_run(wall, runs));
    println!();
    print_inference_summary(before, after, runs, wall);
}
