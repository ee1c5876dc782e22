//! FaceFusion 3.5.3's background_remover (spec §8.10): a matting model gives a foreground matte;
//! the background is mixed towards the chosen colour by its alpha, and the matte becomes the frame's
//! alpha channel (kept by formats that have one).

use crate::error::{PipelineError, Result};
use crate::imgproc::resize::resize_linear;
use crate::models::catalogue;
use crate::options::BackgroundRemoverOptions;
use crate::raster::{Frame, Raster};
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

/// The remover loads only its own model.
pub fn required_models(options: &BackgroundRemoverOptions) -> Vec<String> {
    vec![options.model.clone()]
}

/// A matting model's input size and normalisation, from the catalogue.
#[derive(Clone, Debug, PartialEq)]
struct Matting {
    size: usize,
    mean: [f64; 3],
    standard_deviation: [f64; 3],
    /// u2net_cloth gives class logits (background, upper, lower, full body) instead of a matte.
    classes: bool,
}

fn matting(model: &str) -> Result<Matting> {
    let entry = catalogue().get(model).filter(|entry| entry.modules.iter().any(|m| m == "background_remover"));
    let invalid = || PipelineError::invalid_option("background_remover_model", format!("`{model}` is not a remover"));
    let entry = entry.ok_or_else(invalid)?;
    let (Some([width, _]), Some(mean), Some(deviation)) = (entry.size, entry.mean, entry.standard_deviation) else {
        return Err(invalid());
    };
    Ok(Matting {
        size: width as usize,
        mean: mean.map(f64::from),
        standard_deviation: deviation.map(f64::from),
        classes: model == "u2net_cloth",
    })
}

pub struct BackgroundRemover<'a> {
    registry: &'a ModelRegistry,
    model: String,
    matting: Matting,
    /// Red, green, blue, alpha.
    color: [u8; 4],
}

impl<'a> BackgroundRemover<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &BackgroundRemoverOptions) -> Result<Self> {
        Ok(Self { registry, model: options.model.clone(), matting: matting(&options.model)?, color: options.color })
    }

    /// The frame with its background mixed towards the colour, and its new alpha: the matte, never
    /// more opaque than the alpha the frame came with.
    pub fn remove(&self, frame: &Frame, alpha: Option<&Raster<u8>>) -> Result<(Frame, Raster<u8>)> {
        let matte = self.matte(frame)?;
        let composed = apply_background_color(frame, &matte, self.color);
        let alpha = match alpha {
            Some(alpha) => {
                let data = matte.data.iter().zip(&alpha.data).map(|(&m, &a)| m.min(a)).collect();
                Raster::from_vec(matte.width, matte.height, 1, data)
            }
            None => matte,
        };
        Ok((composed, alpha))
    }

    /// The foreground matte at the frame's size, 0 (background) to 255.
    pub fn matte(&self, frame: &Frame) -> Result<Raster<u8>> {
        let size = self.matting.size;
        let session = self.registry.get(&self.model)?;
        let input = self.prepare(frame);
        let outputs = session.run(vec![Input::f32("input", &[1, 3, size, size], input)])?;
        let planes = if self.matting.classes { 4 } else { 1 };
        let output = outputs.into_iter().next().filter(|o| o.data.len() == planes * size * size).ok_or_else(|| {
            PipelineError::ModelContract {
                name: self.model.clone(),
                reason: format!("expected a (1,{planes},{size},{size}) output"),
            }
        })?;
        let matte = if self.matting.classes { foreground_classes(&output.data, size) } else { to_u8(&output.data) };
        Ok(resize_linear(&Raster::from_vec(size, size, 1, matte), frame.width, frame.height))
    }

    /// (1,3,S,S): the frame resized (bilinear), RGB /255, normalised in double, then float.
    fn prepare(&self, frame: &Frame) -> Vec<f32> {
        let Matting { size, mean, standard_deviation, .. } = self.matting;
        let resized = resize_linear(frame, size, size);
        let plane = size * size;
        let mut tensor = vec![0.0f32; 3 * plane];
        for (i, px) in resized.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let value = px[2 - c] as f64 / 255.0;
                tensor[c * plane + i] = ((value - mean[c]) / standard_deviation[c]) as f32;
            }
        }
        tensor
    }
}

/// A matte in 0..1 as 8-bit: clipped, ×255, truncated.
fn to_u8(values: &[f32]) -> Vec<u8> {
    values.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8).collect()
}

/// u2net_cloth: the argmax over its four class planes; any clothing class is foreground (255). Ties
/// go to the first class, as numpy's argmax.
fn foreground_classes(logits: &[f32], size: usize) -> Vec<u8> {
    let plane = size * size;
    (0..plane)
        .map(|i| {
            let background = logits[i];
            let clothing = (1..4).any(|class| logits[class * plane + i] > background);
            if clothing {
                255
            } else {
                0
            }
        })
        .collect()
}

/// FaceFusion's `apply_background_color`: t = (1 − matte/255)·A/255 in float, then
/// frame·(1 − t) + colour·t, truncated to 8 bits.
fn apply_background_color(frame: &Frame, matte: &Raster<u8>, [r, g, b, a]: [u8; 4]) -> Frame {
    let color = [b, g, r].map(f32::from);
    let alpha = a as f32;
    let data = frame
        .data
        .chunks_exact(3)
        .zip(&matte.data)
        .flat_map(|(px, &m)| {
            let t = (1.0 - m as f32 / 255.0) * alpha / 255.0;
            [0, 1, 2].map(|c| (px[c] as f32 * (1.0 - t) + color[c] * t) as u8)
        })
        .collect();
    Frame::from_vec(frame.width, frame.height, 3, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_remover_has_its_catalogue_settings() {
        for name in crate::options::BACKGROUND_REMOVER_MODELS {
            let matting = matting(name).unwrap();
            assert!([320, 512, 768, 1024].contains(&matting.size), "{name}");
        }
        assert_eq!(matting("u2net_cloth").unwrap().size, 768);
        assert!(matting("u2net_cloth").unwrap().classes);
        assert!(matting("gfpgan_1.4").is_err());
    }

    #[test]
    fn the_colour_replaces_the_background_by_its_alpha() {
        let frame = Frame::filled(2, 1, 3, 100);
        let matte = Raster::from_vec(2, 1, 1, vec![0, 255]);
        let green = apply_background_color(&frame, &matte, [0, 255, 0, 255]);
        assert_eq!(green.data, [0, 255, 0, 100, 100, 100]);
        // A transparent colour leaves the pixels alone: only the alpha channel cuts the background.
        assert_eq!(apply_background_color(&frame, &matte, [0, 255, 0, 0]), frame);
    }

    #[test]
    fn cloth_classes_count_as_foreground() {
        // Two pixels: background wins, then the "upper" class wins.
        let logits = [1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0];
        let size_one = |pixel: usize| {
            let values: Vec<f32> = (0..4).map(|class| logits[class * 2 + pixel]).collect();
            foreground_classes(&values, 1)[0]
        };
        assert_eq!((size_one(0), size_one(1)), (0, 255));
    }
}
