//! FaceFusion 3.5.3's frame_colorizer (spec §8.9): the frame is turned grey, a DDColor or
//! DeOldify model predicts its colours at a square size, and the colours are merged with the frame's
//! lightness and blended over it.

use crate::error::{PipelineError, Result};
use crate::imgproc::color::{bgr_to_gray_u8, lab_to_rgb_f32, lab_to_rgb_u8, rgb_to_lab_f32, rgb_to_lab_u8};
use crate::imgproc::resize::{resize_linear, resize_linear_f32};
use crate::options::FrameColorizerOptions;
use crate::processors::add_weighted;
use crate::raster::{Frame, Raster};
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

/// The two model families: they differ in what they take and give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// Takes grey RGB in 0..1 made from the L channel alone; gives Lab a and b.
    Ddcolor,
    /// Takes grey RGB in 0..255; gives RGB in 0..255.
    Deoldify,
}

fn family(model: &str) -> Result<Family> {
    match model {
        "ddcolor" | "ddcolor_artistic" => Ok(Family::Ddcolor),
        "deoldify" | "deoldify_artistic" | "deoldify_stable" => Ok(Family::Deoldify),
        other => Err(PipelineError::invalid_option("frame_colorizer_model", format!("`{other}` is not a colorizer"))),
    }
}

/// The colorizer loads only its own model.
pub fn required_models(options: &FrameColorizerOptions) -> Vec<String> {
    vec![options.model.clone()]
}

pub struct FrameColorizer<'a> {
    registry: &'a ModelRegistry,
    model: String,
    family: Family,
    size: usize,
    blend: f64,
}

impl<'a> FrameColorizer<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &FrameColorizerOptions) -> Result<Self> {
        Ok(Self {
            registry,
            model: options.model.clone(),
            family: family(&options.model)?,
            size: options.size,
            blend: options.blend as f64 / 100.0,
        })
    }

    /// Colorizes a BGR frame and blends the colours over it.
    pub fn colorize(&self, frame: &Frame) -> Result<Frame> {
        let input = self.prepare(frame);
        let output = self.forward(input)?;
        let color = match self.family {
            Family::Ddcolor => merge_ddcolor(frame, output, self.size),
            Family::Deoldify => merge_deoldify(frame, output, self.size),
        };
        // FaceFusion: blend_frame(frame, color, 1 − (1 − blend/100)).
        let factor = 1.0 - (1.0 - self.blend);
        Ok(add_weighted(frame, 1.0 - factor, &color, factor))
    }

    /// The model input (1,3,S,S): the frame in grey, as RGB.
    pub fn prepare(&self, frame: &Frame) -> Vec<f32> {
        let gray = bgr_to_gray_u8(frame);
        let size = self.size;
        match self.family {
            Family::Ddcolor => {
                // Grey RGB /255 → Lab, keep L with a = b = 0 → RGB: the model sees only lightness.
                let data = gray
                    .data
                    .iter()
                    .flat_map(|&g| {
                        let v = (g as f64 / 255.0) as f32;
                        let [l, _, _] = rgb_to_lab_f32([v; 3]);
                        lab_to_rgb_f32([l, 0.0, 0.0])
                    })
                    .collect();
                let rgb = Raster::from_vec(frame.width, frame.height, 3, data);
                planar(&resize_linear_f32(&rgb, size, size))
            }
            Family::Deoldify => {
                let rgb =
                    Raster::from_vec(gray.width, gray.height, 3, gray.data.iter().flat_map(|&g| [g; 3]).collect());
                let resized = resize_linear(&rgb, size, size);
                let floats = Raster::from_vec(size, size, 3, resized.data.iter().map(|&v| v as f32).collect());
                planar(&floats)
            }
        }
    }

    /// Runs the model: (2,S,S) ab for DDColor, (3,S,S) RGB for DeOldify.
    pub fn forward(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        let size = self.size;
        let session = self.registry.get(&self.model)?;
        let outputs = session.run(vec![Input::f32("input", &[1, 3, size, size], input)])?;
        let channels = match self.family {
            Family::Ddcolor => 2,
            Family::Deoldify => 3,
        };
        outputs.into_iter().next().map(|o| o.data).filter(|data| data.len() == channels * size * size).ok_or_else(
            || PipelineError::ModelContract {
                name: self.model.clone(),
                reason: format!("expected a (1,{channels},{size},{size}) output"),
            },
        )
    }
}

/// NCHW planes of an interleaved float raster.
fn planar(src: &Raster<f32>) -> Vec<f32> {
    let plane = src.width * src.height;
    let mut out = vec![0.0f32; src.channels * plane];
    for (i, px) in src.data.chunks_exact(src.channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
    out
}

/// Interleaved channels of (C,S,S) planes, resized to the frame.
fn interleaved(planes: &[f32], channels: usize, size: usize, width: usize, height: usize) -> Raster<f32> {
    let plane = size * size;
    let mut data = vec![0.0f32; channels * plane];
    for (c, values) in planes.chunks_exact(plane).enumerate() {
        for (i, &v) in values.iter().enumerate() {
            data[i * channels + c] = v;
        }
    }
    resize_linear_f32(&Raster::from_vec(size, size, channels, data), width, height)
}

/// The frame's own lightness (BGR/255 → Lab L) with the predicted a and b, back to 8-bit BGR.
fn merge_ddcolor(frame: &Frame, output: Vec<f32>, size: usize) -> Frame {
    let ab = interleaved(&output, 2, size, frame.width, frame.height);
    let data = frame
        .data
        .chunks_exact(3)
        .zip(ab.data.chunks_exact(2))
        .flat_map(|(px, ab)| {
            let rgb = [px[2], px[1], px[0]].map(|v| (v as f64 / 255.0) as f32);
            let [l, _, _] = rgb_to_lab_f32(rgb);
            let [r, g, b] = lab_to_rgb_f32([l, ab[0], ab[1]]);
            [b, g, r].map(|v| (v * 255.0).round_ties_even().clamp(0.0, 255.0) as u8)
        })
        .collect();
    Frame::from_vec(frame.width, frame.height, 3, data)
}

/// DeOldify's colours with FaceFusion's L: its RGB output is cast to 8-bit (truncating) and taken as
/// BGR into Lab, whose L is then replaced by the frame's **blue** channel (FaceFusion splits the BGR
/// frame and keeps its first plane), and converted back to BGR.
fn merge_deoldify(frame: &Frame, output: Vec<f32>, size: usize) -> Frame {
    let rgb = interleaved(&output, 3, size, frame.width, frame.height);
    // cvtColor(BGR2RGB) on the RGB output makes it BGR; `rgb_to_lab_u8` wants RGB order, which is
    // the model's own order.
    let rgb_u8 = Frame::from_vec(frame.width, frame.height, 3, rgb.data.iter().map(|&v| v as u8).collect());
    let mut lab = rgb_to_lab_u8(&rgb_u8);
    for (lab_px, px) in lab.data.chunks_exact_mut(3).zip(frame.data.chunks_exact(3)) {
        lab_px[0] = px[0];
    }
    let mut bgr = lab_to_rgb_u8(&lab);
    bgr.data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
    bgr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_colorizer_has_a_family() {
        for name in crate::options::FRAME_COLORIZER_MODELS {
            assert!(family(name).is_ok(), "{name}");
        }
        assert!(family("colorize_9000").is_err());
    }

    #[test]
    fn grey_round_trips_through_lab_without_colour() {
        for v in [0.0f32, 0.2, 0.5, 1.0] {
            let [l, a, b] = rgb_to_lab_f32([v; 3]);
            assert!(a.abs() < 1e-3 && b.abs() < 1e-3, "{v}: {a} {b}");
            let back = lab_to_rgb_f32([l, 0.0, 0.0]);
            assert!(back.iter().all(|c| (c - v).abs() < 1e-3), "{v}: {back:?}");
        }
    }

    #[test]
    fn planes_and_pixels_are_inverse() {
        let src = Raster::from_vec(2, 2, 2, (0..8).map(|v| v as f32).collect());
        let planes = planar(&src);
        assert_eq!(planes, [0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]);
        assert_eq!(interleaved(&planes, 2, 2, 2, 2), src);
    }
}
