//! Lip sync benchmark: the sample speech onto the 5 s lip-sync target (wav2lip_sample_target.mp4)
//! with the `costed` stand-ins (wav2lip_gan_96, kim_vocal_2), through `Engine::process_video`.
//! Prints frames per second, per-stage time (voice extraction included), the time inside ONNX Runtime
//! for the same calls, peak RSS, and the bytes written to disk besides the output.
//!
//! `cargo bench -p ff-pipeline --bench lip_sync` (FF_TEST_ASSETS points at ../shared/assets).
//! FF_BENCH_FRAMES: frames from the start (default 0 = the whole 5 s, 150 frames);
//! FF_BENCH_WORKERS / FF_BENCH_INTRA: frames at once / ONNX Runtime threads per session.

fn main() {
    ff_pipeline::testing::run_video_benchmark(
        "lip sync wav2lip_sample_speech.wav -> wav2lip_sample_target.mp4, wav2lip_gan_96 + kim_vocal_2",
        &["audio/wav2lip_sample_speech.wav"],
        "video/wav2lip_sample_target.mp4",
        &[("processors", "lip_syncer")],
        0,
    );
}
