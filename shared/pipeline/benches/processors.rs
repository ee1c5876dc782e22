//! One image per processor added last (age_modifier, expression_restorer, face_editor, deep_swapper,
//! frame_colorizer, background_remover), each with its parity case's exact FaceFusion command
//! (../shared/parity cases 11-16) on the `costed` stand-ins, through `Engine::process_image`.
//!
//! Each case runs in its own child process (this binary again, with FF_BENCH_CASE set), so its peak
//! RSS is its own and not the high-water mark of the cases before it. Per case it prints per-stage
//! wall time and the time inside ONNX Runtime per model; at the end a summary table.
//!
//! `cargo bench -p ff-pipeline --bench processors` (FF_TEST_ASSETS points at ../shared/assets;
//! FF_BENCH_RUNS sets the measured runs per case, default 2, after one warm-up; FF_BENCH_CASE=<name>
//! runs one case in this process).

use std::process::Command;
use std::time::Duration;

use ff_pipeline::engine::StageTimings;
use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{
    env_number, inference_snapshot, ms_per_run, parity_case, peak_rss_kib, print_inference_table, stand_in_config,
};
use ff_pipeline::{Engine, EngineConfig, ImageRequest};

/// The parity case behind each processor: its FaceFusion command line is the workload.
const CASES: &[(&str, &str)] = &[
    ("age_modifier", "11_age_modifier_obama_older_60"),
    ("face_swapper + expression_restorer", "12_swap_then_expression_restorer_lower_face"),
    ("face_editor", "13_face_editor_obama_sliders"),
    ("deep_swapper (2 faces)", "14_deep_swapper_two_people_morph_80"),
    ("frame_colorizer ddcolor", "15_frame_colorizer_ddcolor_192_blend_80"),
    ("background_remover rmbg_2.0", "16_background_remover_rmbg_green_alpha"),
];

/// The child's one-line result for the parent's summary, after this prefix.
const SUMMARY_PREFIX: &str = "summary\t";

fn main() {
    match std::env::var("FF_BENCH_CASE") {
        Ok(case) => run_case(&case),
        Err(_) => run_all(),
    }
}

/// Runs every case in a child process and prints their summaries as one table.
fn run_all() {
    let exe = std::env::current_exe().expect("this benchmark's path");
    let mut rows = Vec::new();
    for (label, case) in CASES {
        let output = Command::new(&exe).env("FF_BENCH_CASE", case).output().expect("run a case");
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            panic!("{case} failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
        }
        println!("== {label} ({case})");
        for line in stdout.lines().filter(|line| !line.starts_with(SUMMARY_PREFIX)) {
            println!("{line}");
        }
        println!();
        let summary = stdout.lines().find_map(|line| line.strip_prefix(SUMMARY_PREFIX)).expect("summary line");
        rows.push((label, summary.to_string()));
    }
    println!(
        "{:<38} {:>10} {:>12} {:>10} {:>14}",
        "processor (image, costed)", "total ms", "processor ms", "ORT ms", "peak RSS MiB"
    );
    for (label, summary) in rows {
        let fields: Vec<&str> = summary.split('\t').collect();
        println!("{label:<38} {:>10} {:>12} {:>10} {:>14}", fields[0], fields[1], fields[2], fields[3]);
    }
}

/// One case in this process: a warm-up, then the measured runs.
fn run_case(name: &str) {
    let runs = env_number("FF_BENCH_RUNS", 2).max(1);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let engine = Engine::new(EngineConfig { intra_threads: threads, ..stand_in_config("costed") }).expect("engine");
    let case = parity_case(name);
    let sources: Vec<Vec<u8>> = case.sources.iter().map(|p| std::fs::read(p).expect("source")).collect();
    let target = std::fs::read(&case.target).expect("target");
    let options = ProcessOptions::from_pairs(&case.pairs).expect("the case's options");
    let run = || {
        let request = ImageRequest {
            sources: sources.clone(),
            target: target.clone(),
            options: options.clone(),
            output_format: Some(ImageFormat::Png),
        };
        engine.process_image(request).expect("the case runs").timings
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

    println!("{threads} ORT threads, mean of {runs} runs after one warm-up");
    println!("{:<20} {:>12}", "stage", "ms per run");
    for (stage, duration) in &total {
        println!("{stage:<20} {:>12.1}", ms_per_run(*duration, runs));
    }
    let wall: Duration = total.iter().map(|(_, d)| *d).sum();
    println!("{:<20} {:>12.1}", "total", ms_per_run(wall, runs));
    println!();
    let ort = print_inference_table(&before, &after, runs);
    let processing: Duration = total.iter().filter(|(stage, _)| is_processor(stage)).map(|(_, d)| *d).sum();
    println!(
        "{SUMMARY_PREFIX}{:.1}\t{:.1}\t{:.1}\t{}",
        ms_per_run(wall, runs),
        ms_per_run(processing, runs),
        ms_per_run(ort, runs),
        peak_rss_kib() / 1024
    );
}

/// Stages that are not one of the processors.
const COMMON_STAGES: &[&str] = &["decode", "nsfw gate", "face analysis", "encode"];

fn is_processor(stage: &str) -> bool {
    !COMMON_STAGES.contains(&stage)
}

/// The engine's stages, with the processing split per processor.
fn stages(timings: &StageTimings) -> Vec<(String, Duration)> {
    let mut stages: Vec<(String, Duration)> = COMMON_STAGES[..3]
        .iter()
        .zip([timings.decode, timings.content, timings.analyse])
        .map(|(name, time)| (name.to_string(), time))
        .collect();
    stages.extend(timings.processors.iter().cloned());
    stages.push((COMMON_STAGES[3].to_string(), timings.encode));
    stages
}
