//! face_swapper (spec §8.1): every swapper family, pixel boost, weight, averaged source faces.

use std::sync::{Arc, OnceLock};

use crate::error::{PipelineError, Result};
use crate::face::recognizer::planar_rgb;
use crate::face::{interp, normalize, Face};
use crate::geometry::{paste_back, transform_points, warp_face_by_landmark_5, WarpTemplate};
use crate::mask::{combine_masks_min, create_area_mask, create_box_mask, create_occlusion_mask, create_region_mask};
use crate::onnx_initializer::last_initializer;
use crate::options::{MaskOptions, MaskType, SwapperOptions};
use crate::raster::{Frame, Mask, Raster};
use crate::runtime::{Input, ModelSession};
use crate::sessions::ModelRegistry;

/// How a swapper family wants its source and its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapperType {
    Blendswap,
    Ghost,
    Hififace,
    Hyperswap,
    Inswapper,
    Simswap,
    Uniface,
}

/// FaceFusion's per-model settings.
#[derive(Clone, Copy, Debug)]
pub struct SwapperModel {
    pub name: &'static str,
    pub kind: SwapperType,
    pub template: WarpTemplate,
    pub size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The crossface model that maps an arcface embedding into this swapper's identity space.
    pub converter: Option<&'static str>,
}

const ZERO: [f32; 3] = [0.0; 3];
const ONE: [f32; 3] = [1.0; 3];
const HALF: [f32; 3] = [0.5; 3];
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

pub fn swapper_model(name: &str) -> Option<SwapperModel> {
    use SwapperType::*;
    use WarpTemplate::*;
    let model = |name, kind, template, size, mean, std, converter| SwapperModel {
        name,
        kind,
        template,
        size,
        mean,
        std,
        converter,
    };
    Some(match name {
        "blendswap_256" => model("blendswap_256", Blendswap, Ffhq512, 256, ZERO, ONE, None),
        "ghost_1_256" => model("ghost_1_256", Ghost, Arcface112V1, 256, HALF, HALF, Some("crossface_ghost")),
        "ghost_2_256" => model("ghost_2_256", Ghost, Arcface112V1, 256, HALF, HALF, Some("crossface_ghost")),
        "ghost_3_256" => model("ghost_3_256", Ghost, Arcface112V1, 256, HALF, HALF, Some("crossface_ghost")),
        "hififace_unofficial_256" => {
            model("hififace_unofficial_256", Hififace, Mtcnn512, 256, HALF, HALF, Some("crossface_hififace"))
        }
        "hyperswap_1a_256" => model("hyperswap_1a_256", Hyperswap, Arcface128, 256, HALF, HALF, None),
        "hyperswap_1b_256" => model("hyperswap_1b_256", Hyperswap, Arcface128, 256, HALF, HALF, None),
        "hyperswap_1c_256" => model("hyperswap_1c_256", Hyperswap, Arcface128, 256, HALF, HALF, None),
        "inswapper_128" => model("inswapper_128", Inswapper, Arcface128, 128, ZERO, ONE, None),
        "inswapper_128_fp16" => model("inswapper_128_fp16", Inswapper, Arcface128, 128, ZERO, ONE, None),
        "simswap_256" => {
            model("simswap_256", Simswap, Arcface112V1, 256, IMAGENET_MEAN, IMAGENET_STD, Some("crossface_simswap"))
        }
        "simswap_unofficial_512" => {
            model("simswap_unofficial_512", Simswap, Arcface112V1, 512, ZERO, ONE, Some("crossface_simswap"))
        }
        "uniface_256" => model("uniface_256", Uniface, Ffhq512, 256, HALF, HALF, None),
        _ => return None,
    })
}

/// The identity every target face receives: the mean of the source faces, as FaceFusion averages
/// several source images.
#[derive(Clone, Debug)]
pub struct SourceFace {
    /// Mean of the raw embeddings.
    pub embedding: Vec<f32>,
    /// Mean of the normalised embeddings (not renormalised, as in FaceFusion).
    pub embedding_norm: Vec<f32>,
    /// The first source image and its face: blendswap and uniface take pixels, not an embedding.
    pub first_frame: Frame,
    pub first_face: Face,
}

impl SourceFace {
    /// `faces[i]` is the face chosen in `frames[i]`, or `None` when that image had none (skipped,
    /// as FaceFusion does). Fails only when no source image has a face.
    pub fn average(frames: &[Frame], faces: &[Option<Face>]) -> Result<SourceFace> {
        let found: Vec<(&Frame, &Face)> =
            frames.iter().zip(faces).filter_map(|(frame, face)| face.as_ref().map(|f| (frame, f))).collect();
        let Some(&(first_frame, first_face)) = found.first() else {
            return Err(PipelineError::NoSourceFace { index: 0 });
        };
        let mean = |pick: fn(&Face) -> &Vec<f32>| {
            let mut sum = vec![0.0f64; pick(first_face).len()];
            for (_, face) in &found {
                sum.iter_mut().zip(pick(face)).for_each(|(s, v)| *s += *v as f64);
            }
            sum.into_iter().map(|s| (s / found.len() as f64) as f32).collect::<Vec<f32>>()
        };
        Ok(SourceFace {
            embedding: mean(|f| &f.embedding),
            embedding_norm: mean(|f| &f.embedding_norm),
            first_frame: first_frame.clone(),
            first_face: first_face.clone(),
        })
    }
}

/// A swapped face crop ready to paste back.
pub struct SwappedCrop {
    /// BGR float 0..255.
    pub crop: Raster<f32>,
    pub mask: Mask,
    pub affine: crate::geometry::Affine,
}

/// A loaded swapper with its identity input prepared once per source.
pub struct FaceSwapper<'a> {
    /// For the occlusion and region mask models, loaded on first use.
    registry: &'a ModelRegistry,
    model: SwapperModel,
    session: Arc<ModelSession>,
    source_input: Vec<f32>,
    source_shape: Vec<usize>,
    pixel_boost: usize,
    weight: f32,
}

/// inswapper's emap, read once per process and model file.
static EMAPS: OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<Vec<f32>>>>> = OnceLock::new();

impl<'a> FaceSwapper<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &SwapperOptions, source: &SourceFace) -> Result<Self> {
        let model = swapper_model(&options.model).ok_or_else(|| {
            PipelineError::invalid_option("face_swapper_model", format!("unknown model {}", options.model))
        })?;
        let session = registry.get(model.name)?;
        let (source_input, source_shape) = prepare_source(registry, &model, &session, source)?;
        Ok(Self {
            registry,
            model,
            session,
            source_input,
            source_shape,
            pixel_boost: options.pixel_boost,
            weight: options.weight,
        })
    }

    /// Swaps one target face in `frame` (the running frame; the face already scaled to it).
    pub fn swap(&self, frame: &Frame, target: &Face, masks: &MaskOptions) -> Result<Frame> {
        let swapped = self.swap_crop(frame, target, masks)?;
        Ok(paste_back(frame, &swapped.crop, &swapped.mask, &swapped.affine))
    }

    /// The swapped crop at pixel-boost size, its mask and the frame→crop affine, before paste-back.
    pub fn swap_crop(&self, frame: &Frame, target: &Face, masks: &MaskOptions) -> Result<SwappedCrop> {
        let size = self.pixel_boost.max(self.model.size);
        let (crop, affine) = warp_face_by_landmark_5(frame, &target.landmark_5_68, self.model.template, (size, size));
        let mut crop_masks: Vec<Mask> = Vec::new();
        if masks.types.contains(&MaskType::Box) {
            let padding = masks.padding.map(|p| p as f64);
            crop_masks.push(create_box_mask(size, size, masks.blur as f64, padding));
        }
        // Box and occlusion judge the target as it is; area and region (below) the swapped face.
        if masks.types.contains(&MaskType::Occlusion) {
            crop_masks.push(create_occlusion_mask(self.registry, &crop, &masks.occluder_model)?);
        }
        let source = self.balanced_source(target);
        let tiles = implode(&crop, size / self.model.size);
        let swapped = tiles.iter().map(|tile| self.forward(tile, &source)).collect::<Result<Vec<_>>>()?;
        let crop = explode(&swapped, size / self.model.size);
        if masks.types.contains(&MaskType::Area) {
            let landmark_68 = transform_points(&target.landmark_68, &affine);
            crop_masks.push(create_area_mask(size, size, &landmark_68, &masks.areas));
        }
        if masks.types.contains(&MaskType::Region) {
            crop_masks.push(create_region_mask(self.registry, &crop, &masks.parser_model, &masks.regions)?);
        }
        let mask = match crop_masks.len() {
            0 => Raster::filled(size, size, 1, 1.0),
            _ => combine_masks_min(&crop_masks.iter().collect::<Vec<_>>()),
        };
        Ok(SwappedCrop { crop, mask, affine })
    }

    /// The source identity pulled towards or pushed away from the target's by the weight option.
    fn balanced_source(&self, target: &Face) -> Vec<f32> {
        let w = target_identity_share(self.weight);
        // A zero share leaves the source exactly (s · 1 + t · 0); the target's embedding is then not
        // computed at all (`reads_target_embedding`).
        if w == 0.0 || matches!(self.model.kind, SwapperType::Blendswap | SwapperType::Uniface) {
            return self.source_input.clone();
        }
        let target_embedding = match self.model.kind {
            SwapperType::Ghost => target.embedding.clone(),
            _ => normalize(&target.embedding),
        };
        self.source_input.iter().zip(target_embedding).map(|(s, t)| s * (1.0 - w) + t * w).collect()
    }

    /// One model call on a native-size tile: BGR crop in, BGR float 0..255 crop out.
    fn forward(&self, tile: &Frame, source: &[f32]) -> Result<Raster<f32>> {
        let n = self.model.size;
        let (mean, std) = (self.model.mean, self.model.std);
        let mut target = planar_rgb(tile, |v| v / 255.0);
        for (c, plane) in target.chunks_exact_mut(n * n).enumerate() {
            plane.iter_mut().for_each(|v| *v = (*v - mean[c]) / std[c]);
        }
        let inputs = vec![
            Input::f32("source", &self.source_shape, source.to_vec()),
            Input::f32("target", &[1, 3, n, n], target),
        ];
        let outputs = self.session.run(inputs)?;
        let output =
            outputs.first().filter(|o| o.data.len() == 3 * n * n).ok_or_else(|| PipelineError::ModelContract {
                name: self.model.name.to_string(),
                reason: format!("expected a (1,3,{n},{n}) output"),
            })?;
        let denormalize = matches!(
            self.model.kind,
            SwapperType::Ghost | SwapperType::Hififace | SwapperType::Hyperswap | SwapperType::Uniface
        );
        let mut crop = Raster::<f32>::new(n, n, 3);
        for (c, plane) in output.data.chunks_exact(n * n).enumerate() {
            // Output planes are RGB; the crop is BGR.
            let bgr = 2 - c;
            for (i, &value) in plane.iter().enumerate() {
                let value = if denormalize { value * std[c] + mean[c] } else { value };
                crop.data[i * 3 + bgr] = value.clamp(0.0, 1.0) * 255.0;
            }
        }
        Ok(crop)
    }
}

fn prepare_source(
    registry: &ModelRegistry,
    model: &SwapperModel,
    session: &ModelSession,
    source: &SourceFace,
) -> Result<(Vec<f32>, Vec<usize>)> {
    match model.kind {
        SwapperType::Blendswap | SwapperType::Uniface => {
            let (template, size) = if model.kind == SwapperType::Blendswap {
                (WarpTemplate::Arcface112V2, 112)
            } else {
                (WarpTemplate::Ffhq512, 256)
            };
            let (crop, _) =
                warp_face_by_landmark_5(&source.first_frame, &source.first_face.landmark_5_68, template, (size, size));
            Ok((planar_rgb(&crop, |v| v / 255.0), vec![1, 3, size, size]))
        }
        SwapperType::Hyperswap => Ok((source.embedding_norm.clone(), vec![1, source.embedding_norm.len()])),
        SwapperType::Inswapper => {
            let emap = inswapper_emap(session)?;
            Ok((apply_emap(&source.embedding, &emap), vec![1, source.embedding.len()]))
        }
        SwapperType::Ghost | SwapperType::Simswap | SwapperType::Hififace => {
            let converter = registry.get(model.converter.unwrap_or("crossface_simswap"))?;
            let len = source.embedding.len();
            let outputs = converter.run(vec![Input::f32("input", &[1, len], source.embedding.clone())])?;
            let converted = outputs.into_iter().next().map(|o| o.data).unwrap_or_default();
            let converted = if model.kind == SwapperType::Ghost { converted } else { normalize(&converted) };
            let shape = vec![1, converted.len()];
            Ok((converted, shape))
        }
    }
}

fn inswapper_emap(session: &ModelSession) -> Result<Arc<Vec<f32>>> {
    let cache = EMAPS.get_or_init(Default::default);
    let key = session.path().to_string_lossy().into_owned();
    if let Some(emap) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(emap.clone());
    }
    let initializer = last_initializer(session.path())?;
    if initializer.dims.len() != 2 || initializer.dims[0] != initializer.dims[1] {
        return Err(PipelineError::ModelContract {
            name: session.name().to_string(),
            reason: format!("the last initializer should be a square emap, found {:?}", initializer.dims),
        });
    }
    let emap = Arc::new(initializer.values);
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, emap.clone());
    Ok(emap)
}

/// How much of the target's own identity the weight option mixes into the source's: FaceFusion's
/// interpolation of the weight onto [0.35, −0.35], in float32 as it casts it. Exactly 0 at the
/// default weight 0.5.
fn target_identity_share(weight: f32) -> f32 {
    interp(weight as f64, [0.0, 1.0], [0.35, -0.35]) as f32
}

/// Whether the swap reads the target face's embedding. At a zero share the mix is the source
/// embedding exactly (s · 1 + t · 0), so the recognizer need not run on target faces; blendswap and
/// uniface take the source's pixels and never read it.
pub fn reads_target_embedding(options: &SwapperOptions) -> bool {
    let pixel_source = swapper_model(&options.model)
        .is_some_and(|model| matches!(model.kind, SwapperType::Blendswap | SwapperType::Uniface));
    !pixel_source && target_identity_share(options.weight) != 0.0
}

/// embedding · emap / ‖embedding‖ (row vector times matrix).
fn apply_emap(embedding: &[f32], emap: &[f32]) -> Vec<f32> {
    let n = embedding.len();
    let norm = embedding.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    let mut out = vec![0.0f64; n];
    for (i, &e) in embedding.iter().enumerate() {
        let row = &emap[i * n..(i + 1) * n];
        out.iter_mut().zip(row).for_each(|(o, m)| *o += e as f64 * *m as f64);
    }
    out.into_iter().map(|v| (v / norm) as f32).collect()
}

/// Splits a crop into total² polyphase sub-images: sub-image a·T + b takes crop pixel (y·T + a, x·T + b).
pub fn implode(crop: &Frame, total: usize) -> Vec<Frame> {
    if total <= 1 {
        return vec![crop.clone()];
    }
    let n = crop.width / total;
    let mut tiles = Vec::with_capacity(total * total);
    for a in 0..total {
        for b in 0..total {
            let mut tile = Frame::new(n, n, 3);
            for y in 0..n {
                let source = crop.row(y * total + a);
                let target = tile.row_mut(y);
                for x in 0..n {
                    let from = (x * total + b) * 3;
                    target[x * 3..x * 3 + 3].copy_from_slice(&source[from..from + 3]);
                }
            }
            tiles.push(tile);
        }
    }
    tiles
}

/// The inverse of `implode`.
pub fn explode(tiles: &[Raster<f32>], total: usize) -> Raster<f32> {
    if total <= 1 {
        return tiles[0].clone();
    }
    let n = tiles[0].width;
    let size = n * total;
    let mut crop = Raster::<f32>::new(size, size, 3);
    for a in 0..total {
        for b in 0..total {
            let tile = &tiles[a * total + b];
            for y in 0..n {
                let target = crop.row_mut(y * total + a);
                let source = tile.row(y);
                for x in 0..n {
                    let to = (x * total + b) * 3;
                    target[to..to + 3].copy_from_slice(&source[x * 3..x * 3 + 3]);
                }
            }
        }
    }
    crop
}

/// Every model the swapper loads besides face analysis.
pub fn required_models(options: &SwapperOptions) -> Vec<&'static str> {
    match swapper_model(&options.model) {
        Some(model) => std::iter::once(model.name).chain(model.converter).collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implode_then_explode_is_identity() {
        let mut crop = Frame::new(8, 8, 3);
        crop.data.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 251) as u8);
        let tiles = implode(&crop, 2);
        assert_eq!(tiles.len(), 4);
        assert_eq!(tiles[1].pixel(0, 0), crop.pixel(1, 0));
        assert_eq!(tiles[2].pixel(0, 0), crop.pixel(0, 1));
        let floats: Vec<Raster<f32>> = tiles
            .iter()
            .map(|t| Raster::from_vec(t.width, t.height, 3, t.data.iter().map(|&v| v as f32).collect()))
            .collect();
        let back = explode(&floats, 2);
        assert_eq!(back.data, crop.data.iter().map(|&v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn emap_product_divides_by_the_raw_norm() {
        let emap = vec![1.0, 0.0, 0.0, 2.0];
        assert_eq!(apply_emap(&[3.0, 4.0], &emap), vec![0.6, 1.6]);
    }

    #[test]
    fn every_listed_swapper_has_settings() {
        for name in crate::options::FACE_SWAPPER_MODELS {
            let model = swapper_model(name).unwrap();
            assert_eq!(crate::options::swapper_pixel_boosts(name)[0], model.size, "{name}");
        }
    }
}
