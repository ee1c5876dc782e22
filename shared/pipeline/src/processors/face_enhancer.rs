//! face_enhancer (spec §8.2): GFPGAN, CodeFormer, GPEN-BFR and RestoreFormer++ face restoration,
//! pasted back through the box (and occlusion) mask and blended over the running frame.

use std::sync::Arc;

use crate::error::{PipelineError, Result};
use crate::face::Face;
use crate::geometry::{paste_back_u8, warp_face_by_landmark_5, WarpTemplate};
use crate::mask::{combine_masks_min, create_box_mask, create_occlusion_mask, occluder_models};
use crate::options::{FaceEnhancerOptions, MaskOptions, MaskType};
use crate::processors::add_weighted;
use crate::raster::{Frame, Mask};
use crate::runtime::{Input, ModelSession};
use crate::sessions::ModelRegistry;

/// FaceFusion's template and crop size per enhancer model.
pub fn enhancer_model(name: &str) -> Option<(WarpTemplate, usize)> {
    Some(match name {
        "codeformer" | "gfpgan_1.2" | "gfpgan_1.3" | "gfpgan_1.4" | "gpen_bfr_512" | "restoreformer_plus_plus" => {
            (WarpTemplate::Ffhq512, 512)
        }
        // The only enhancer on the arcface template.
        "gpen_bfr_256" => (WarpTemplate::Arcface128, 256),
        "gpen_bfr_1024" => (WarpTemplate::Ffhq512, 1024),
        "gpen_bfr_2048" => (WarpTemplate::Ffhq512, 2048),
        _ => return None,
    })
}

pub struct FaceEnhancer<'a> {
    registry: &'a ModelRegistry,
    session: Arc<ModelSession>,
    name: String,
    template: WarpTemplate,
    size: usize,
    /// CodeFormer's fidelity input; fed only when the model declares a `weight` input, as FaceFusion does.
    weight: Option<f64>,
    blend: f32,
}

impl<'a> FaceEnhancer<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &FaceEnhancerOptions) -> Result<Self> {
        let (template, size) = enhancer_model(&options.model).ok_or_else(|| {
            PipelineError::invalid_option("face_enhancer_model", format!("unknown model {}", options.model))
        })?;
        let session = registry.get(&options.model)?;
        // FaceFusion passes the option (a Python float) as numpy double.
        let weight = session.has_input("weight").then_some(options.weight as f64);
        Ok(Self {
            registry,
            session,
            name: options.model.clone(),
            template,
            size,
            weight,
            blend: options.blend as f32 / 100.0,
        })
    }

    /// Enhances one face (already scaled to `frame`) and blends the result over `frame`.
    pub fn enhance(&self, frame: &Frame, face: &Face, masks: &MaskOptions) -> Result<Frame> {
        let size = self.size;
        let (crop, affine) = warp_face_by_landmark_5(frame, &face.landmark_5_68, self.template, (size, size));
        // The enhancer ignores the padding option: its box always reaches the crop edge.
        let mut crop_masks: Vec<Mask> = vec![create_box_mask(size, size, masks.blur as f64, [0.0; 4])];
        if masks.types.contains(&MaskType::Occlusion) {
            crop_masks.push(create_occlusion_mask(self.registry, &crop, &masks.occluder_model)?);
        }
        let enhanced = self.forward(&crop)?;
        let mask = combine_masks_min(&crop_masks.iter().collect::<Vec<_>>());
        let pasted = paste_back_u8(frame, &enhanced, &mask, &affine);
        // FaceFusion: blend_frame(temp, paste, 1 − (1 − blend/100)), i.e. addWeighted(temp, 1 − b, paste, b).
        let factor = 1.0 - (1.0 - self.blend as f64);
        Ok(add_weighted(frame, 1.0 - factor, &pasted, factor))
    }

    /// BGR crop → RGB [−1, 1] → model → clip, (x + 1) / 2 · 255, round → BGR u8.
    fn forward(&self, crop: &Frame) -> Result<Frame> {
        let n = self.size;
        let plane = n * n;
        let mut tensor = vec![0.0f32; 3 * plane];
        for (i, px) in crop.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // numpy computes this in float64 before the float32 cast.
                tensor[c * plane + i] = ((px[2 - c] as f64 / 255.0 - 0.5) / 0.5) as f32;
            }
        }
        let mut inputs = vec![Input::f32("input", &[1, 3, n, n], tensor)];
        if let Some(weight) = self.weight {
            inputs.push(Input::f64("weight", &[1], vec![weight]));
        }
        let outputs = self.session.run(inputs)?;
        let output = outputs.into_iter().next().filter(|o| o.data.len() == 3 * plane).ok_or_else(|| {
            PipelineError::ModelContract { name: self.name.clone(), reason: format!("expected a (1,3,{n},{n}) output") }
        })?;
        let mut enhanced = Frame::new(n, n, 3);
        for (c, values) in output.data.chunks_exact(plane).enumerate() {
            for (i, &v) in values.iter().enumerate() {
                // float32 throughout, as numpy keeps the model's dtype; round half to even, then
                // the uint8 cast (values are already within 0..255).
                let v = (v.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0;
                enhanced.data[i * 3 + 2 - c] = v.round_ties_even() as u8;
            }
        }
        Ok(enhanced)
    }
}

/// Every model the enhancer loads (the occluder only when the occlusion mask is on).
pub fn required_models(options: &FaceEnhancerOptions, masks: &MaskOptions) -> Vec<String> {
    let mut models = vec![options.model.clone()];
    if masks.types.contains(&MaskType::Occlusion) {
        models.extend(occluder_models(&masks.occluder_model).into_iter().map(str::to_string));
    }
    models
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_enhancer_has_settings_matching_the_catalogue() {
        for name in crate::options::FACE_ENHANCER_MODELS {
            let (template, size) = enhancer_model(name).unwrap();
            let entry = crate::models::catalogue().get(name).unwrap();
            assert_eq!(entry.size, Some([size as u32; 2]), "{name}");
            assert_eq!(entry.template.as_deref(), Some(template.name()), "{name}");
        }
    }
}
