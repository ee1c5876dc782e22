//! Video swap benchmark: obama.jpg onto the talking clip (short_hamilton_clip.mp4) with the `costed`
//! stand-ins, through `Engine::process_video` (ffmpeg decode → processors → ffmpeg encode + audio).
//! Prints frames per second, per-stage time, the time inside ONNX Runtime for the same calls, peak
//! RSS, and the bytes this run wrote to disk besides the output (FaceFusion writes every frame twice).
//!
//! `cargo bench -p ff-pipeline --bench video_swap` (FF_TEST_ASSETS points at ../shared/assets).
//! FF_BENCH_FRAMES: frames (default 60; 0 = the whole clip, 275 frames) from FF_BENCH_START (default 0);
//! FF_BENCH_OPTIONS: extra options as `name=value` pairs separated by spaces;
//! FF_BENCH_WORKERS: frames processed at once (default: the cores); FF_BENCH_INTRA: ONNX Runtime
//! threads per session (default 1: the workers already fill the cores).

fn main() {
    ff_pipeline::testing::run_video_benchmark(
        "video swap obama.jpg -> short_hamilton_clip.mp4, inswapper_128",
        &["images/obama.jpg"],
        "video/short_hamilton_clip.mp4",
        &[("face_swapper_model", "inswapper_128"), ("output_video_preset", "veryfast")],
        60,
    );
}
