//! What a result is encoded as, typed from the moment a client names it to the moment the bytes
//! leave: an image format, or a video container.

use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::media::{Container, MediaKind};
use ff_pipeline::video::VIDEO_FORMATS;

use crate::error::ApiError;

/// What a client may ask a result to be encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Image(ImageFormat),
    /// One of FaceFusion's video containers ([`Container::WRITABLE`]).
    Video(Container),
}

impl OutputFormat {
    /// `jpg`, `png`, …, `mp4`, `mov`, …, case-insensitively.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let name = text.trim().to_ascii_lowercase();
        let plain = !name.contains('.');
        if let Some(format) = ImageFormat::from_name(&name).filter(|_| plain) {
            return Ok(Self::Image(format));
        }
        if let Some(container) = Container::from_name(&name).filter(|_| plain) {
            return Ok(Self::Video(container));
        }
        Err(ApiError::InvalidOption {
            option: "output_format".into(),
            reason: format!(
                "`{text}` is not one of jpg, jpeg, png, webp, bmp (images) or {}",
                VIDEO_FORMATS.join(", ")
            ),
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Image(format) => format.extension(),
            Self::Video(container) => container.extension(),
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Image(format) => format.mime(),
            Self::Video(container) => container.mime(),
        }
    }
}

/// The MIME type of a stored result, from the extension its key ends in.
pub fn mime_of(extension: &str) -> &'static str {
    if let Some(format) = ImageFormat::from_name(extension) {
        return format.mime();
    }
    Container::from_name(extension).map_or("application/octet-stream", Container::mime)
}

/// The extension for a MIME type [`mime_of`] gives; `None` for others.
pub fn extension_of_mime(mime: &str) -> Option<&'static str> {
    let mime = mime.split(';').next().unwrap_or("").trim();
    let images = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp, ImageFormat::Bmp].map(OutputFormat::Image);
    // MP4 before M4V: both are `video/mp4`, and `.mp4` is what people expect.
    let videos = [Container::Mp4].into_iter().chain(Container::WRITABLE).map(OutputFormat::Video);
    images.into_iter().chain(videos).find(|format| format.mime() == mime).map(OutputFormat::extension)
}

/// The extension an input is stored under (job inputs): what its bytes are, not what it was called.
pub fn stored_extension(field: &str, kind: Option<MediaKind>) -> Result<&'static str, ApiError> {
    kind.map(MediaKind::extension)
        .ok_or_else(|| ApiError::UnsupportedMedia(format!("`{field}` is not an image, a video or audio file")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_formats_are_images_or_video_containers() {
        assert_eq!(OutputFormat::parse("JPEG").unwrap(), OutputFormat::Image(ImageFormat::Jpeg));
        assert_eq!(OutputFormat::parse("mov").unwrap(), OutputFormat::Video(Container::Mov));
        assert_eq!(OutputFormat::parse("gif").unwrap_err().code(), "invalid_option");
        assert!(OutputFormat::parse("a.png").is_err());
        assert!(OutputFormat::parse("flv").is_err(), "FaceFusion does not write FLV");
    }

    #[test]
    fn mime_types_round_trip() {
        for extension in ["jpg", "png", "mp4", "mov", "mkv", "webm", "avi"] {
            assert_eq!(extension_of_mime(mime_of(extension)), Some(extension), "{extension}");
        }
        assert_eq!(mime_of("MP4"), "video/mp4");
        assert_eq!(extension_of_mime("text/plain"), None);
    }
}
