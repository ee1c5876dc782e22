//! How much work one input buys: a video is measured on the frames the decoder really produces
//! (timestamp gaps filled by the fps filter included), and a decoder that produces more than that
//! is stopped. Needs ffmpeg and ffprobe (FF_FFMPEG/FF_FFPROBE or PATH).

use ff_pipeline::testing::{assets_dir, sparse_video};
use ff_pipeline::video::{FrameReader, ReadOptions, Toolchain};
use ff_pipeline::{MediaFailure, PipelineError};

fn count_frames(reader: FrameReader) -> u64 {
    let mut frames = 0;
    for frame in reader {
        frame.expect("the frame decodes");
        frames += 1;
    }
    frames
}

#[test]
fn a_sparse_video_plans_the_frames_its_decoder_fills_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = sparse_video(dir.path(), 51, 60);
    let tools = Toolchain::from_env();
    let info = tools.probe(&path).unwrap();
    assert_eq!(info.frame_count, 51, "the header counts only the stored frames");
    assert!((info.duration - 60.04).abs() < 0.01, "{}", info.duration);

    let trim = info.trim_range(None, None).unwrap();
    let planned = info.decoded_frames(trim, info.fps);
    assert_eq!(planned, 1501, "60.04 s at 25 fps");
    let reader = FrameReader::open(&tools, &path, &info, &ReadOptions::default()).unwrap();
    assert_eq!(reader.expected_frames(), planned);
    assert_eq!(count_frames(reader), planned, "the plan is what the decoder produces");
}

#[test]
fn a_regular_video_plans_exactly_what_it_decodes_at_a_lower_fps() {
    let path = assets_dir().join("video/short_hamilton_clip.mp4");
    let tools = Toolchain::from_env();
    let info = tools.probe(&path).unwrap();
    assert!(!info.has_timestamp_gaps());
    let trim = info.trim_range(Some(30), Some(90)).unwrap();
    let fps = info.decode_fps(Some(10.0));
    let options =
        ReadOptions { trim_frame_start: Some(30), trim_frame_end: Some(90), fps: Some(fps), ..ReadOptions::default() };
    let reader = FrameReader::open(&tools, &path, &info, &options).unwrap();
    assert_eq!(reader.expected_frames(), info.decoded_frames(trim, fps));
    assert_eq!(count_frames(reader), info.decoded_frames(trim, fps));
}

/// A header that understates the stream (here: the probe's duration replaced, as a crafted file
/// could state it) does not buy more frames than it announced: the reader stops with
/// `video_too_long` just past the announced count.
#[test]
fn a_decoder_producing_more_than_announced_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = sparse_video(dir.path(), 51, 60);
    let tools = Toolchain::from_env();
    let mut info = tools.probe(&path).unwrap();
    info.duration = 2.04;
    assert!(!info.has_timestamp_gaps());
    let mut reader = FrameReader::open(&tools, &path, &info, &ReadOptions::default()).unwrap();
    assert_eq!(reader.expected_frames(), 51);
    let mut read = 0;
    let error = loop {
        match reader.next_frame() {
            Ok(Some(_)) => read += 1,
            Ok(None) => panic!("the whole stream was read: {read} frames"),
            Err(error) => break error,
        }
    };
    assert!(matches!(error, PipelineError::Media { kind: MediaFailure::VideoTooLong, .. }), "{error}");
    assert!(read <= 51 + 51 / 50 + 3, "{read} frames read");
}

fn engine() -> ff_pipeline::Engine {
    ff_pipeline::Engine::new(ff_pipeline::testing::stand_in_config("light")).unwrap()
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(assets_dir().join("images").join(name)).unwrap()
}

fn swap_request(options: ff_pipeline::options::ProcessOptions) -> ff_pipeline::ImageRequest {
    ff_pipeline::ImageRequest {
        sources: vec![image("obama.jpg")],
        target: image("biden.jpg"),
        options,
        output_format: Some(ff_pipeline::image_io::ImageFormat::Png),
    }
}

fn is_cancelled(error: &PipelineError) -> bool {
    matches!(error, PipelineError::Media { kind: MediaFailure::Cancelled, .. })
}

/// A run whose caller already went away does no processing: the engine stops before the first
/// stage, and the chain stops before its first processor.
#[test]
fn a_cancelled_image_run_stops_without_running_processors() {
    use std::sync::atomic::AtomicBool;
    let engine = engine();
    let options = ff_pipeline::options::ProcessOptions::default();
    let cancelled = AtomicBool::new(true);
    let error = engine.process_image_with_cancel(swap_request(options.clone()), &cancelled).err().unwrap();
    assert!(is_cancelled(&error), "{error}");

    let request = swap_request(options.clone());
    let prepared = engine.decode(&request).unwrap();
    let mut timings = ff_pipeline::engine::StageTimings::default();
    let error = engine.process_frames(&prepared, &options, &cancelled, &mut timings).err().unwrap();
    assert!(is_cancelled(&error), "{error}");
    assert!(timings.processors.is_empty(), "processors ran: {:?}", timings.processors);

    let running = AtomicBool::new(false);
    let output = engine.process_image_with_cancel(swap_request(options), &running).unwrap();
    assert_eq!(output.faces_processed, 1);
}

/// output_image_scale=8 on a 2048² target would make a 16384² frame (268 M pixels): refused before
/// it is allocated, naming the option.
#[test]
fn an_output_scale_over_the_pixel_limit_is_refused_up_front() {
    let engine = engine();
    let pairs = [("output_image_scale".to_string(), vec!["8".to_string()])];
    let options = ff_pipeline::options::ProcessOptions::from_pairs(&pairs).unwrap();
    let mut target = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(2048, 2048))
        .write_to(&mut std::io::Cursor::new(&mut target), image::ImageFormat::Png)
        .unwrap();
    let request = ff_pipeline::ImageRequest { target, ..swap_request(options) };
    let error = engine.process_image(request).err().unwrap();
    assert!(matches!(error, PipelineError::OutputTooLarge { width: 16384, height: 16384, .. }), "{error}");
    assert!(error.to_string().contains("output_image_scale"), "{error}");
}
