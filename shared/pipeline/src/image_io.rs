//! Image decoding and encoding: JPEG, PNG, WebP and BMP in (EXIF orientation applied, alpha kept
//! aside as FaceFusion's `temp_vision_mask`), the same formats out.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader};

use crate::error::{PipelineError, Result};
use crate::raster::{Frame, Raster};

/// Image containers the API reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
    Bmp,
}

impl ImageFormat {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Bmp => "image/bmp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Bmp => "bmp",
        }
    }

    /// From a file name or extension, case-insensitively (`out.JPG`, `jpeg`, `png`).
    pub fn from_name(name: &str) -> Option<Self> {
        let ext = name.rsplit('.').next()?.to_ascii_lowercase();
        match ext.as_str() {
            "jpg" | "jpeg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::Webp),
            "bmp" => Some(Self::Bmp),
            _ => None,
        }
    }

    fn from_image(format: image::ImageFormat) -> Option<Self> {
        match format {
            image::ImageFormat::Jpeg => Some(Self::Jpeg),
            image::ImageFormat::Png => Some(Self::Png),
            image::ImageFormat::WebP => Some(Self::Webp),
            image::ImageFormat::Bmp => Some(Self::Bmp),
            _ => None,
        }
    }

    fn keeps_alpha(self) -> bool {
        matches!(self, Self::Png | Self::Webp)
    }
}

/// A decoded image: the BGR frame every processor sees, and the alpha plane when the file had one.
#[derive(Clone, Debug)]
pub struct DecodedImage {
    pub frame: Frame,
    /// 255 where opaque; `None` for images without an alpha channel.
    pub alpha: Option<Raster<u8>>,
    pub format: ImageFormat,
}

/// The container format of `bytes`, from its magic numbers, if it is one we read.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    image::guess_format(bytes).ok().and_then(ImageFormat::from_image)
}

/// The stored size of an image from its header, without decoding its pixels: the same checks
/// [`decode`] makes first (a known format, a readable header, at most `max_pixels`), so a caller can
/// refuse an input at once, before queueing it.
pub fn read_dimensions(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32)> {
    let (_, decoder) = open_decoder(bytes, max_pixels)?;
    Ok(decoder.dimensions())
}

/// The format and a decoder past the header, refusing images larger than `max_pixels`.
fn open_decoder(bytes: &[u8], max_pixels: u64) -> Result<(ImageFormat, impl ImageDecoder + '_)> {
    let format = sniff(bytes)
        .ok_or_else(|| PipelineError::UnsupportedMedia("expected a JPEG, PNG, WebP or BMP image".into()))?;
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PipelineError::UnsupportedMedia(e.to_string()))?;
    let decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > max_pixels {
        return Err(PipelineError::ImageTooLarge { width, height, limit: max_pixels });
    }
    Ok((format, decoder))
}

/// Decodes `bytes`, refusing images larger than `max_pixels` before allocating their pixels.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<DecodedImage> {
    let (format, mut decoder) = open_decoder(bytes, max_pixels)?;
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    let (frame, alpha) = split_alpha(image);
    Ok(DecodedImage { frame, alpha, format })
}

fn unreadable(error: image::ImageError) -> PipelineError {
    PipelineError::UnsupportedMedia(format!("the image could not be decoded: {error}"))
}

fn split_alpha(image: DynamicImage) -> (Frame, Option<Raster<u8>>) {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if !image.color().has_alpha() {
        let mut data = image.into_rgb8().into_raw();
        data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
        return (Raster::from_vec(width, height, 3, data), None);
    }
    let rgba = image.into_rgba8().into_raw();
    let mut bgr = Vec::with_capacity(width * height * 3);
    let mut alpha = Vec::with_capacity(width * height);
    for px in rgba.chunks_exact(4) {
        bgr.extend_from_slice(&[px[2], px[1], px[0]]);
        alpha.push(px[3]);
    }
    (Raster::from_vec(width, height, 3, bgr), Some(Raster::from_vec(width, height, 1, alpha)))
}

/// Encodes a BGR frame. Alpha is merged back only when some pixel is not opaque (as FaceFusion does)
/// and the format can carry it. `quality` (0..=100) applies to JPEG; WebP is written lossless.
pub fn encode(frame: &Frame, alpha: Option<&Raster<u8>>, format: ImageFormat, quality: u8) -> Result<Vec<u8>> {
    let alpha = alpha.filter(|a| format.keeps_alpha() && a.data.iter().any(|&v| v < 255));
    let (pixels, color) = match alpha {
        Some(alpha) => (interleave_rgba(frame, alpha), image::ExtendedColorType::Rgba8),
        None => (to_rgb(frame), image::ExtendedColorType::Rgb8),
    };
    let (width, height) = (frame.width as u32, frame.height as u32);
    let mut out = Vec::new();
    let written = match format {
        ImageFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
            .write_image(&pixels, width, height, color),
        ImageFormat::Png => image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(&pixels, width, height, color),
        ImageFormat::Webp => {
            image::codecs::webp::WebPEncoder::new_lossless(&mut out).write_image(&pixels, width, height, color)
        }
        ImageFormat::Bmp => image::codecs::bmp::BmpEncoder::new(&mut out).write_image(&pixels, width, height, color),
    };
    written.map_err(|e| PipelineError::UnsupportedMedia(format!("could not encode {format:?}: {e}")))?;
    Ok(out)
}

fn to_rgb(frame: &Frame) -> Vec<u8> {
    let mut data = frame.data.clone();
    data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
    data
}

fn interleave_rgba(frame: &Frame, alpha: &Raster<u8>) -> Vec<u8> {
    frame.data.chunks_exact(3).zip(&alpha.data).flat_map(|(px, &a)| [px[2], px[1], px[0], a]).collect()
}

/// FaceFusion's scaled resolution: int(side·scale), each side rounded to even (half to even).
pub fn scaled_resolution(width: usize, height: usize, scale: f32) -> (usize, usize) {
    let even = |side: usize| {
        let scaled = (side as f64 * scale as f64).trunc();
        ((scaled / 2.0).round_ties_even() * 2.0).max(2.0) as usize
    };
    (even(width), even(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(width: u32, height: u32, rgba: bool) -> Vec<u8> {
        let image = if rgba {
            DynamicImage::ImageRgba8(image::RgbaImage::from_fn(width, height, |x, _| {
                image::Rgba([10, 20, 30, x as u8])
            }))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |_, _| image::Rgb([10, 20, 30])))
        };
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn decodes_to_bgr_and_keeps_alpha_aside() {
        let decoded = decode(&png_bytes(4, 2, true), 1_000).unwrap();
        assert_eq!(decoded.frame.pixel(0, 0), [30, 20, 10]);
        assert_eq!(decoded.alpha.unwrap().pixel(3, 1), [3]);
        assert_eq!(decoded.format, ImageFormat::Png);
    }

    #[test]
    fn rejects_non_images_and_oversized_images() {
        assert!(matches!(decode(b"hello world", 1_000), Err(PipelineError::UnsupportedMedia(_))));
        assert!(matches!(decode(&png_bytes(100, 100, false), 1_000), Err(PipelineError::ImageTooLarge { .. })));
        let mut truncated = png_bytes(50, 50, false);
        truncated.truncate(60);
        assert!(matches!(decode(&truncated, 1_000_000), Err(PipelineError::UnsupportedMedia(_))));
    }

    #[test]
    fn round_trips_png_with_alpha() {
        let decoded = decode(&png_bytes(4, 2, true), 1_000).unwrap();
        let bytes = encode(&decoded.frame, decoded.alpha.as_ref(), ImageFormat::Png, 80).unwrap();
        let again = decode(&bytes, 1_000).unwrap();
        assert_eq!(again.frame, decoded.frame);
        assert_eq!(again.alpha, decoded.alpha);
    }

    /// A JPEG whose EXIF says "rotate 90° clockwise" (orientation 6).
    fn rotated_jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([if x == 0 { 250 } else { 5 }; 3]));
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(picture).write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        let tiff: Vec<u8> = [
            &b"II*\0"[..],
            &8u32.to_le_bytes(),
            &1u16.to_le_bytes(),
            &0x0112u16.to_le_bytes(),
            &3u16.to_le_bytes(),
            &1u32.to_le_bytes(),
            &6u16.to_le_bytes(),
            &[0, 0],
            &0u32.to_le_bytes(),
        ]
        .concat();
        let payload = [&b"Exif\0\0"[..], &tiff].concat();
        let length = (payload.len() + 2) as u16;
        [&jpeg[..2], &[0xFF, 0xE1], &length.to_be_bytes(), &payload, &jpeg[2..]].concat()
    }

    #[test]
    fn exif_orientation_is_applied() {
        let decoded = decode(&rotated_jpeg(16, 8), 10_000).unwrap();
        assert_eq!((decoded.frame.width, decoded.frame.height), (8, 16));
        // The bright first column ends up as the first row once turned clockwise.
        assert!(decoded.frame.pixel(4, 0)[0] > 200 && decoded.frame.pixel(4, 15)[0] < 60);
    }

    #[test]
    fn scaled_resolution_rounds_to_even() {
        assert_eq!(scaled_resolution(1126, 661, 1.0), (1126, 660));
        assert_eq!(scaled_resolution(910, 1137, 0.5), (456, 568));
    }
}
