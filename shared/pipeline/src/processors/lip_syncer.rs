//! lip_syncer (spec §8.4): Wav2Lip (`wav2lip_96`, `wav2lip_gan_96`) and EDTalk (`edtalk_256`) redraw
//! the mouth of each face from the mel window of the frame's audio, pasted back through the
//! lower-face area mask (wav2lip) or the box mask (edtalk), plus occlusion when enabled.

use std::sync::Arc;

use crate::error::{PipelineError, Result};
use crate::face::Face;
use crate::geometry::{
    invert_affine, paste_back_u8, transform_points, warp_face_by_bounding_box, warp_face_by_landmark_5, Affine,
    WarpTemplate,
};
use crate::imgproc::resize::{resize_area, resize_cubic};
use crate::imgproc::warp::{warp_affine, Border};
use crate::mask::{combine_masks_min, create_area_mask, create_box_mask, create_occlusion_mask, occluder_models};
use crate::models::catalogue;
use crate::options::{LipSyncerOptions, MaskOptions, MaskType};
use crate::raster::{Frame, Mask, Raster};
use crate::runtime::{Input, ModelSession};
use crate::sessions::ModelRegistry;

/// Mel bands × spectrogram columns of one voice window (spec §9.5).
pub const VOICE_WINDOW_SHAPE: [usize; 2] = [80, 16];
const VOICE_WINDOW_LEN: usize = VOICE_WINDOW_SHAPE[0] * VOICE_WINDOW_SHAPE[1];

/// Every lip syncer first aligns the face on ffhq_512 at this size; the model crop is taken from it.
const CROP_SIZE: usize = 512;

/// How a lip syncer model takes its face and returns its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LipSyncerType {
    /// 96×96 crop of the 68-point bounding box, BGR, masked lower half stacked on the full crop.
    Wav2lip,
    /// The whole 512 crop at 256, RGB, with the weight as a model input.
    Edtalk,
}

/// FaceFusion's model settings, read from the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LipSyncerModel {
    pub name: String,
    pub kind: LipSyncerType,
    /// The model's square input size (96 or 256).
    pub size: usize,
}

/// The catalogue's type and size of a lip syncer model, `None` for anything else.
pub fn lip_syncer_model(name: &str) -> Option<LipSyncerModel> {
    let entry = catalogue().get(name).filter(|e| e.modules.iter().any(|m| m == "lip_syncer"))?;
    let kind = match entry.model_type.as_deref()? {
        "wav2lip" => LipSyncerType::Wav2lip,
        "edtalk" => LipSyncerType::Edtalk,
        _ => return None,
    };
    let [width, height] = entry.size?;
    (width == height && width > 0).then(|| LipSyncerModel { name: name.to_string(), kind, size: width as usize })
}

/// FaceFusion's `prepare_audio_frame` (§8.4 steps 1-4) on a raw (80, 16) mel window, row-major:
/// `max(x, 1e-5)`, `log10 · 1.6 + 3.2`, clipped to ±4, then for wav2lip `× weight × 2`.
///
/// numpy takes the first three steps in float64 (the floor is the float64 scalar
/// `exp(−5·ln 10)`, which promotes the float32 window) and casts to float32 after the clip; the
/// wav2lip scaling is float32, one multiplication at a time. Silence (all zeros) gives −4.
pub fn prepare_audio_frame(raw: &[f32], model_is_wav2lip: bool, weight: f32) -> Vec<f32> {
    let floor = (-5.0 * 10f64.ln()).exp();
    raw.iter()
        .map(|&x| {
            let v = ((x as f64).max(floor).log10() * 1.6 + 3.2).clamp(-4.0, 4.0) as f32;
            if model_is_wav2lip {
                v * weight * 2.0
            } else {
                v
            }
        })
        .collect()
}

/// Every model the lip syncer loads itself (the occluder only when the occlusion mask is on). The
/// face analysis and voice extractor models are the engine's.
pub fn required_models(options: &LipSyncerOptions, masks: &MaskOptions) -> Vec<String> {
    let mut models = vec![options.model.clone()];
    if masks.types.contains(&MaskType::Occlusion) {
        models.extend(occluder_models(&masks.occluder_model).into_iter().map(str::to_string));
    }
    models
}

/// A synced face crop before paste-back, with the model-side intermediates for inspection.
pub struct SyncedCrop {
    /// The face as warped from the frame (ffhq_512, 512×512).
    pub target_crop: Frame,
    /// The crop with the model's mouth, ready to paste (512×512).
    pub crop: Frame,
    /// The combined paste mask (512×512).
    pub mask: Mask,
    /// Frame → crop.
    pub affine: Affine,
    /// Present for wav2lip models.
    pub wav2lip: Option<Wav2lipCrop>,
}

/// The wav2lip model's own crop of the 512 crop and what the model made of it.
pub struct Wav2lipCrop {
    /// The 68 landmarks' bounding box in the 512 crop: x1, y1, x2, y2.
    pub bounding_box: [f64; 4],
    /// 512 crop → model crop.
    pub matrix: Affine,
    /// The model input crop (BGR).
    pub input: Frame,
    /// The model output as 8-bit BGR.
    pub output: Frame,
}

pub struct LipSyncer<'a> {
    /// For the occlusion model, loaded on first use.
    registry: &'a ModelRegistry,
    session: Arc<ModelSession>,
    model: LipSyncerModel,
    weight: f32,
}

impl<'a> LipSyncer<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &LipSyncerOptions) -> Result<Self> {
        let model = lip_syncer_model(&options.model).ok_or_else(|| {
            PipelineError::invalid_option("lip_syncer_model", format!("unknown model {}", options.model))
        })?;
        let session = registry.get(&model.name)?;
        Ok(Self { registry, session, model, weight: options.weight })
    }

    pub fn model(&self) -> &LipSyncerModel {
        &self.model
    }

    /// One face of one frame. `voice_window`: the raw (80,16) mel window for this frame, row-major
    /// 1280 f32 (before the §8.4 transform), or None for silence (FaceFusion's empty audio frame;
    /// also what FaceFusion uses for an image target).
    pub fn sync(&self, frame: &Frame, face: &Face, masks: &MaskOptions, voice_window: Option<&[f32]>) -> Result<Frame> {
        let synced = self.sync_crop(frame, face, masks, voice_window)?;
        Ok(paste_back_u8(frame, &synced.crop, &synced.mask, &synced.affine))
    }

    /// [`Self::sync`] up to, not including, the paste-back.
    pub fn sync_crop(
        &self,
        frame: &Frame,
        face: &Face,
        masks: &MaskOptions,
        voice_window: Option<&[f32]>,
    ) -> Result<SyncedCrop> {
        let audio = self.audio_input(voice_window)?;
        let size = (CROP_SIZE, CROP_SIZE);
        let (target_crop, affine) = warp_face_by_landmark_5(frame, &face.landmark_5_68, WarpTemplate::Ffhq512, size);
        let mut crop_masks: Vec<Mask> = Vec::with_capacity(2);
        if masks.types.contains(&MaskType::Occlusion) {
            crop_masks.push(create_occlusion_mask(self.registry, &target_crop, &masks.occluder_model)?);
        }
        let (crop, wav2lip) = match self.model.kind {
            LipSyncerType::Wav2lip => {
                let landmark_68 = transform_points(&face.landmark_68, &affine);
                crop_masks.push(create_area_mask(CROP_SIZE, CROP_SIZE, &landmark_68, &["lower-face".to_string()]));
                let bounding_box = bounding_box_of(&landmark_68);
                let n = self.model.size;
                let (input, matrix) = warp_face_by_bounding_box(&target_crop, bounding_box, (n, n));
                let output = self.run_wav2lip(audio, &input)?;
                let crop = warp_affine(&output, &invert_affine(&matrix), CROP_SIZE, CROP_SIZE, Border::Replicate);
                (crop, Some(Wav2lipCrop { bounding_box, matrix, input, output }))
            }
            LipSyncerType::Edtalk => {
                let padding = masks.padding.map(|p| p as f64);
                crop_masks.push(create_box_mask(CROP_SIZE, CROP_SIZE, masks.blur as f64, padding));
                (self.forward_edtalk(audio, &target_crop)?, None)
            }
        };
        // FaceFusion's numpy.minimum.reduce has no clip; every mask here is already within [0, 1].
        let mask = combine_masks_min(&crop_masks.iter().collect::<Vec<_>>());
        Ok(SyncedCrop { target_crop, crop, mask, affine, wav2lip })
    }

    /// The model's `source` input: the prepared window, or the prepared empty window for silence.
    fn audio_input(&self, voice_window: Option<&[f32]>) -> Result<Vec<f32>> {
        let silence;
        let raw = match voice_window {
            Some(window) if window.len() == VOICE_WINDOW_LEN => window,
            Some(window) => {
                return Err(PipelineError::MissingInput(format!(
                    "lip syncer voice window has {} values, expected {VOICE_WINDOW_LEN} (80×16)",
                    window.len()
                )))
            }
            None => {
                silence = [0.0f32; VOICE_WINDOW_LEN];
                &silence[..]
            }
        };
        Ok(prepare_audio_frame(raw, self.model.kind == LipSyncerType::Wav2lip, self.weight))
    }

    fn run(&self, inputs: Vec<Input>, channels: usize) -> Result<Vec<f32>> {
        let n = self.model.size;
        let outputs = self.session.run(inputs)?;
        outputs.into_iter().next().filter(|o| o.data.len() == channels * n * n).map(|o| o.data).ok_or_else(|| {
            PipelineError::ModelContract {
                name: self.model.name.clone(),
                reason: format!("expected a (1,{channels},{n},{n}) output"),
            }
        })
    }

    /// One wav2lip model call on its n×n BGR crop (the bounding-box warp of the 512 crop) with a raw
    /// mel window (None for silence): the model's output as 8-bit BGR.
    pub fn forward_wav2lip(&self, voice_window: Option<&[f32]>, input: &Frame) -> Result<Frame> {
        if self.model.kind != LipSyncerType::Wav2lip
            || (input.width, input.height) != (self.model.size, self.model.size)
        {
            return Err(PipelineError::invalid_option(
                "lip_syncer_model",
                format!("{} does not take a {}×{} wav2lip crop", self.model.name, input.width, input.height),
            ));
        }
        self.run_wav2lip(self.audio_input(voice_window)?, input)
    }

    fn run_wav2lip(&self, audio: Vec<f32>, input: &Frame) -> Result<Frame> {
        let n = self.model.size;
        let inputs = vec![
            Input::f32("source", &voice_input_shape(), audio),
            Input::f32("target", &[1, 6, n, n], prepare_wav2lip_target(input)),
        ];
        let output = self.run(inputs, 3)?;
        Ok(planar_to_frame(&output, n, false))
    }

    /// The 512 crop in, the model's face at 512 (BGR) out.
    fn forward_edtalk(&self, audio: Vec<f32>, crop: &Frame) -> Result<Frame> {
        let n = self.model.size;
        let inputs = vec![
            Input::f32("source", &voice_input_shape(), audio),
            Input::f32("target", &[1, 3, n, n], prepare_edtalk_target(crop, n)),
            // numpy.array([weight]).astype(float32).
            Input::f32("weight", &[1], vec![self.weight]),
        ];
        let output = self.run(inputs, 3)?;
        Ok(resize_cubic(&planar_to_frame(&output, n, true), CROP_SIZE, CROP_SIZE))
    }
}

fn voice_input_shape() -> [usize; 4] {
    [1, 1, VOICE_WINDOW_SHAPE[0], VOICE_WINDOW_SHAPE[1]]
}

/// FaceFusion's `create_bounding_box` of points: (min x, min y, max x, max y). No points give zeros.
pub fn bounding_box_of(points: &[[f64; 2]]) -> [f64; 4] {
    if points.is_empty() {
        return [0.0; 4];
    }
    points.iter().fold([f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], |b, p| {
        [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])]
    })
}

/// wav2lip's `target` (1, 6, n, n) from its n×n BGR crop, float32 `/ 255`, no channel swap:
/// channels 0-2 are the crop with rows n/2.. zeroed (the mouth the model redraws), 3-5 the crop.
pub fn prepare_wav2lip_target(crop: &Frame) -> Vec<f32> {
    let (width, height) = (crop.width, crop.height);
    let plane = width * height;
    let masked_from = height / 2 * width;
    let mut tensor = vec![0.0f32; 6 * plane];
    for (i, px) in crop.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let v = px[c] as f32 / 255.0;
            if i < masked_from {
                tensor[c * plane + i] = v;
            }
            tensor[(c + 3) * plane + i] = v;
        }
    }
    tensor
}

/// edtalk's `target` (1, 3, n, n): the 512 crop resized to n (INTER_AREA), RGB, `/ 255` in float64
/// (numpy divides the uint8 array by a Python float) then float32.
pub fn prepare_edtalk_target(crop: &Frame, n: usize) -> Vec<f32> {
    let resized = resize_area(crop, n, n);
    let plane = n * n;
    let mut tensor = vec![0.0f32; 3 * plane];
    for (i, px) in resized.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            tensor[c * plane + i] = (px[2 - c] as f64 / 255.0) as f32;
        }
    }
    tensor
}

/// A (1, 3, n, n) model output in [0, 1] to an 8-bit BGR frame: clip, `× 255` in float32, then
/// the uint8 cast, which truncates. `rgb` planes are swapped to BGR (edtalk); wav2lip's are BGR.
pub fn planar_to_frame(output: &[f32], n: usize, rgb: bool) -> Frame {
    let plane = n * n;
    let mut frame = Raster::new(n, n, 3);
    for (c, values) in output.chunks_exact(plane).take(3).enumerate() {
        let channel = if rgb { 2 - c } else { c };
        for (i, &v) in values.iter().enumerate() {
            // NaN clips to NaN in numpy and casts to 0 here, as the C cast does on x86.
            frame.data[i * 3 + channel] = (v.clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_gives_every_listed_model_its_type_and_size() {
        let expected = [
            ("edtalk_256", LipSyncerType::Edtalk, 256),
            ("wav2lip_96", LipSyncerType::Wav2lip, 96),
            ("wav2lip_gan_96", LipSyncerType::Wav2lip, 96),
        ];
        for (name, kind, size) in expected {
            assert!(crate::options::LIP_SYNCER_MODELS.contains(&name), "{name}");
            let model = lip_syncer_model(name).unwrap();
            assert_eq!((model.kind, model.size), (kind, size), "{name}");
        }
        assert_eq!(crate::options::LIP_SYNCER_MODELS.len(), expected.len());
        assert!(lip_syncer_model("gfpgan_1.4").is_none());
        assert!(lip_syncer_model("wav2lip_97").is_none());
    }

    #[test]
    fn audio_transform_follows_the_spec() {
        // Silence is −4 (times 2·weight for wav2lip); loud bins clip at 4.
        let silence = vec![0.0f32; VOICE_WINDOW_LEN];
        assert!(prepare_audio_frame(&silence, false, 0.9).iter().all(|&v| v == -4.0));
        assert!(prepare_audio_frame(&silence, true, 0.5).iter().all(|&v| v == -4.0));
        assert!(prepare_audio_frame(&silence, true, 0.25).iter().all(|&v| v == -2.0));
        assert_eq!(prepare_audio_frame(&[1e6], true, 0.5), vec![4.0]);
        // log10(1) · 1.6 + 3.2 = 3.2; the floor 1e-5 gives −4.8, clipped.
        assert_eq!(prepare_audio_frame(&[1.0, 1e-9], false, 0.0), vec![3.2, -4.0]);
        assert_eq!(prepare_audio_frame(&[1.0], true, 1.0), vec![3.2f32 * 2.0]);
    }

    #[test]
    fn wav2lip_target_stacks_the_masked_crop_on_the_full_crop() {
        let mut crop = Raster::new(4, 4, 3);
        crop.data.iter_mut().enumerate().for_each(|(i, v)| *v = (i * 5) as u8);
        let tensor = prepare_wav2lip_target(&crop);
        assert_eq!(tensor.len(), 6 * 16);
        for i in 0..16 {
            for c in 0..3 {
                let v = crop.data[i * 3 + c] as f32 / 255.0;
                // Rows 2 and 3 (pixels 8..16) of the first three channels are zeroed.
                assert_eq!(tensor[c * 16 + i], if i < 8 { v } else { 0.0 }, "masked c{c} px{i}");
                assert_eq!(tensor[(c + 3) * 16 + i], v, "full c{c} px{i}");
            }
        }
    }

    #[test]
    fn edtalk_target_is_rgb_at_model_size() {
        // A uniform 512 crop stays uniform through INTER_AREA; planes come out R, G, B.
        let mut crop = Raster::new(512, 512, 3);
        crop.data.chunks_exact_mut(3).for_each(|px| px.copy_from_slice(&[10, 20, 30]));
        let tensor = prepare_edtalk_target(&crop, 256);
        let plane = 256 * 256;
        assert_eq!(tensor.len(), 3 * plane);
        for (c, want) in [30u8, 20, 10].into_iter().enumerate() {
            let want = (want as f64 / 255.0) as f32;
            assert!(tensor[c * plane..(c + 1) * plane].iter().all(|&v| v == want), "plane {c}");
        }
    }

    #[test]
    fn model_outputs_clip_truncate_and_swap() {
        // Planes c0, c1, c2 of a 1×1 output.
        let output = [0.5f32, 1.7, -0.2];
        // 0.5 · 255 = 127.5 truncates to 127.
        assert_eq!(planar_to_frame(&output, 1, false).data, vec![127, 255, 0]);
        assert_eq!(planar_to_frame(&output, 1, true).data, vec![0, 255, 127]);
        assert_eq!(planar_to_frame(&[f32::NAN, 0.0, 1.0], 1, false).data, vec![0, 0, 255]);
    }

    #[test]
    fn bounding_box_spans_the_points() {
        assert_eq!(bounding_box_of(&[[3.0, 9.0], [1.5, 12.0], [7.0, 10.0]]), [1.5, 9.0, 7.0, 12.0]);
        assert_eq!(bounding_box_of(&[]), [0.0; 4]);
    }

    #[test]
    fn required_models_add_the_occluders_only_with_occlusion() {
        let options = LipSyncerOptions {
            model: "wav2lip_gan_96".into(),
            weight: 0.5,
            voice_extractor_model: "kim_vocal_2".into(),
        };
        let mut masks = MaskOptions {
            types: vec![MaskType::Box],
            occluder_model: "many".into(),
            parser_model: "bisenet_resnet_34".into(),
            areas: vec![],
            regions: vec![],
            blur: 0.3,
            padding: [0; 4],
        };
        assert_eq!(required_models(&options, &masks), vec!["wav2lip_gan_96".to_string()]);
        masks.types.push(MaskType::Occlusion);
        assert_eq!(required_models(&options, &masks), vec!["wav2lip_gan_96", "xseg_1", "xseg_2", "xseg_3"]);
    }
}
