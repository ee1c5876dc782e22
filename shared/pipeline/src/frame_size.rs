//! How large a run's frames get, known before any is made: `output_image_scale` /
//! `output_video_scale` (up to 8, so 64× the pixels) and the frame enhancer's model scale (up to 8×
//! per side) multiply a target's pixels, so a small request could otherwise buy gigabytes. The
//! largest frame is checked against the host's pixel limit (FF_MAX_IMAGE_PIXELS) up front.

use crate::error::{PipelineError, Result};
use crate::image_io::scaled_resolution;
use crate::options::ProcessOptions;
use crate::processor::Processor;
use crate::processors::frame_enhancer;

/// The largest frame a run over a `width`×`height` target makes, and the option that makes it:
/// the frame processed (the target, shrunk first when `scale` < 1, as FaceFusion's temp copy), the
/// frame enhancer's enlargement of it, and the output at `scale`.
pub fn largest_frame(
    (width, height): (usize, usize),
    scale: f32,
    scale_option: &'static str,
    options: &ProcessOptions,
) -> Result<((usize, usize), &'static str)> {
    let scaled = scaled_resolution(width, height, scale);
    let processed = if scale < 1.0 { scaled } else { (width, height) };
    let mut largest = (processed, "the target");
    let mut consider = |size: (usize, usize), cause: &'static str| {
        if pixels(size) > pixels(largest.0) {
            largest = (size, cause);
        }
    };
    if options.uses(Processor::FrameEnhancer) {
        let factor = frame_enhancer::tiling(&options.frame_enhancer.model)?.scale;
        consider((processed.0.saturating_mul(factor), processed.1.saturating_mul(factor)), "frame_enhancer_model");
    }
    if scale > 1.0 {
        consider(scaled, scale_option);
    }
    Ok(largest)
}

/// Refuses a run whose largest frame (see [`largest_frame`]) is over `max_pixels`, before it is
/// allocated.
pub fn check_frame_sizes(
    size: (usize, usize),
    scale: f32,
    scale_option: &'static str,
    options: &ProcessOptions,
    max_pixels: u64,
) -> Result<()> {
    let ((width, height), cause) = largest_frame(size, scale, scale_option, options)?;
    if pixels((width, height)) > max_pixels {
        return Err(PipelineError::OutputTooLarge {
            width: width.min(u32::MAX as usize) as u32,
            height: height.min(u32::MAX as usize) as u32,
            cause,
            limit: max_pixels,
        });
    }
    Ok(())
}

fn pixels((width, height): (usize, usize)) -> u64 {
    (width as u64).saturating_mul(height as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> ProcessOptions {
        let pairs: Vec<(String, Vec<String>)> =
            pairs.iter().map(|(n, v)| (n.to_string(), v.split_whitespace().map(str::to_string).collect())).collect();
        ProcessOptions::from_pairs(&pairs).unwrap()
    }

    #[test]
    fn the_output_scale_multiplies_the_pixels() {
        let plain = options(&[]);
        let eight = largest_frame((2048, 2048), 8.0, "output_image_scale", &plain).unwrap();
        assert_eq!(eight, ((16384, 16384), "output_image_scale"));
        assert!(check_frame_sizes((2048, 2048), 8.0, "output_image_scale", &plain, 50_000_000).is_err());
        assert!(check_frame_sizes((2048, 2048), 1.0, "output_image_scale", &plain, 50_000_000).is_ok());
        assert_eq!(largest_frame((2048, 2048), 0.5, "s", &plain).unwrap(), ((1024, 1024), "the target"));
    }

    #[test]
    fn the_frame_enhancer_scales_the_processed_frame() {
        let enhance = options(&[("processors", "frame_enhancer"), ("frame_enhancer_model", "span_kendata_x4")]);
        assert_eq!(largest_frame((1000, 1000), 1.0, "s", &enhance).unwrap(), ((4000, 4000), "frame_enhancer_model"));
        // Shrunk first, then enlarged: 500 · 4.
        assert_eq!(largest_frame((1000, 1000), 0.5, "s", &enhance).unwrap().0, (2000, 2000));
        let error = check_frame_sizes((4000, 4000), 1.0, "s", &enhance, 50_000_000).unwrap_err();
        assert!(error.to_string().contains("frame_enhancer_model"), "{error}");
    }
}
