//! frame_enhancer (spec §8.3): whole-frame super-resolution in overlapping tiles, blended over the
//! bilinearly enlarged original. The running frame becomes `scale`× larger.

use crate::error::{PipelineError, Result};
use crate::imgproc::resize::resize_linear;
use crate::models::catalogue;
use crate::options::FrameEnhancerOptions;
use crate::processors::add_weighted;
use crate::raster::{Frame, Raster};
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

/// Tile size, pad, overlap and scale of a frame enhancer model, from the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    pub size: usize,
    pub pad: usize,
    pub overlap: usize,
    pub scale: usize,
}

pub fn tiling(model: &str) -> Result<Tiling> {
    let entry = catalogue().entry(model)?;
    match (entry.tile, entry.scale) {
        (Some(tile), Some(scale)) if tile.size as usize > 2 * tile.overlap as usize && scale > 0 => Ok(Tiling {
            size: tile.size as usize,
            pad: tile.pad as usize,
            overlap: tile.overlap as usize,
            scale: scale as usize,
        }),
        _ => Err(PipelineError::invalid_option("frame_enhancer_model", format!("{model} is not a frame enhancer"))),
    }
}

/// The tiles of FaceFusion's `create_tile_frames`, with the padded size (width, height).
///
/// The frame is zero-padded by `pad + overlap` on the top and left, and on the bottom and right
/// by enough to make whole steps of `size − 2·overlap`; each tile is `size` pixels square.
pub fn create_tiles(frame: &Frame, tiling: Tiling) -> (Vec<Frame>, usize, usize) {
    let step = tiling.size - 2 * tiling.overlap;
    let top = tiling.pad + tiling.overlap;
    let bottom = top + step - (frame.height + 2 * tiling.pad) % step;
    let right = top + step - (frame.width + 2 * tiling.pad) % step;
    let (pad_width, pad_height) = (frame.width + top + right, frame.height + top + bottom);
    let channels = frame.channels;
    let mut padded = Frame::new(pad_width, pad_height, channels);
    for y in 0..frame.height {
        let row = &mut padded.row_mut(y + top)[top * channels..(top + frame.width) * channels];
        row.copy_from_slice(frame.row(y));
    }
    let mut tiles = Vec::new();
    let starts = |limit: usize| (tiling.overlap..limit - tiling.overlap).step_by(step);
    for row in starts(pad_height) {
        for column in starts(pad_width) {
            let (y0, x0) = (row - tiling.overlap, column - tiling.overlap);
            let mut tile = Frame::new(tiling.size, tiling.size, channels);
            for y in 0..tiling.size {
                let source = &padded.row(y0 + y)[x0 * channels..(x0 + tiling.size) * channels];
                tile.row_mut(y).copy_from_slice(source);
            }
            tiles.push(tile);
        }
    }
    (tiles, pad_width, pad_height)
}

/// FaceFusion's `merge_tile_frames`: each tile loses `overlap` pixels on every side and is placed
/// row-major on the padded canvas, which is then cropped at `pad` to `width × height`. All sizes
/// are the scaled ones.
pub fn merge_tiles(
    tiles: &[Frame],
    width: usize,
    height: usize,
    pad_width: usize,
    pad_height: usize,
    pad: usize,
    overlap: usize,
) -> Frame {
    let mut canvas = Frame::new(pad_width, pad_height, 3);
    let Some(first) = tiles.first() else { return Frame::new(width, height, 3) };
    let inner = first.width - 2 * overlap;
    let per_row = (pad_width / inner).min(tiles.len()).max(1);
    for (index, tile) in tiles.iter().enumerate() {
        let (top, left) = ((index / per_row) * inner, (index % per_row) * inner);
        for y in 0..inner {
            if top + y >= pad_height {
                break;
            }
            let source = &tile.row(y + overlap)[overlap * 3..(overlap + inner) * 3];
            let columns = inner.min(pad_width.saturating_sub(left));
            canvas.row_mut(top + y)[left * 3..(left + columns) * 3].copy_from_slice(&source[..columns * 3]);
        }
    }
    let mut merged = Frame::new(width, height, 3);
    for y in 0..height {
        let source = &canvas.row(y + pad)[pad * 3..(pad + width) * 3];
        merged.row_mut(y).copy_from_slice(source);
    }
    merged
}

pub struct FrameEnhancer<'a> {
    registry: &'a ModelRegistry,
    model: String,
    tiling: Tiling,
    blend: f64,
}

impl<'a> FrameEnhancer<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &FrameEnhancerOptions) -> Result<Self> {
        Ok(Self {
            registry,
            model: options.model.clone(),
            tiling: tiling(&options.model)?,
            blend: options.blend as f64 / 100.0,
        })
    }

    pub fn scale(&self) -> usize {
        self.tiling.scale
    }

    /// Upscales a BGR frame by the model's scale and blends it over the bilinearly enlarged input.
    pub fn enhance(&self, frame: &Frame) -> Result<Frame> {
        let Tiling { size, pad, overlap, scale } = self.tiling;
        let session = self.registry.get(&self.model)?;
        let (tiles, pad_width, pad_height) = create_tiles(frame, self.tiling);
        let out = size * scale;
        let plane = size * size;
        let mut enhanced = Vec::with_capacity(tiles.len());
        for tile in &tiles {
            let mut tensor = vec![0.0f32; 3 * plane];
            for (i, px) in tile.data.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    tensor[c * plane + i] = px[2 - c] as f32 / 255.0;
                }
            }
            let outputs = session.run(vec![Input::f32("input", &[1, 3, size, size], tensor)])?;
            let output = outputs.into_iter().next().filter(|o| o.data.len() == 3 * out * out).ok_or_else(|| {
                PipelineError::ModelContract {
                    name: self.model.clone(),
                    reason: format!("expected a (1,3,{out},{out}) output"),
                }
            })?;
            let mut upscaled = Frame::new(out, out, 3);
            for (c, values) in output.data.chunks_exact(out * out).enumerate() {
                for (i, &v) in values.iter().enumerate() {
                    // ×255, clip, then numpy's truncating uint8 cast.
                    upscaled.data[i * 3 + 2 - c] = (v * 255.0).clamp(0.0, 255.0) as u8;
                }
            }
            enhanced.push(upscaled);
        }
        let (width, height) = (frame.width * scale, frame.height * scale);
        let merged =
            merge_tiles(&enhanced, width, height, pad_width * scale, pad_height * scale, pad * scale, overlap * scale);
        let enlarged = resize_linear(frame, width, height);
        // FaceFusion: blend_frame(resized, merged, 1 − (1 − blend/100)).
        let factor = 1.0 - (1.0 - self.blend);
        Ok(add_weighted(&enlarged, 1.0 - factor, &merged, factor))
    }
}

/// The alpha channel follows the frame to its new size (bilinear, as FaceFusion resizes it).
pub fn resize_alpha(alpha: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
    resize_linear(alpha, width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_frame_and_merge_back_losslessly() {
        let tiling = Tiling { size: 16, pad: 2, overlap: 2, scale: 1 };
        let mut frame = Frame::new(23, 17, 3);
        frame.data.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 253) as u8);
        let (tiles, pad_width, pad_height) = create_tiles(&frame, tiling);
        // step 12: width 23 + 4 + 8 − 27 % 12 = 32 + ... rows/columns of whole steps.
        assert_eq!((pad_width - 2 * 2) % 12, 0);
        assert_eq!((pad_height - 2 * 2) % 12, 0);
        assert!(tiles.iter().all(|t| t.width == 16 && t.height == 16));
        let merged = merge_tiles(&tiles, 23, 17, pad_width, pad_height, 2, 2);
        assert_eq!(merged, frame);
    }

    #[test]
    fn every_listed_frame_enhancer_has_a_tiling() {
        for name in crate::options::FRAME_ENHANCER_MODELS {
            let tiling = tiling(name).unwrap();
            assert!(tiling.scale >= 2 && tiling.size > 2 * tiling.overlap, "{name}");
        }
    }
}
