//! What a run makes, decided once from what its files are and what the client asked for: image in,
//! image out in memory, or a video encoded on disk. The kinds come from the files' first bytes
//! (`ff_pipeline::media::sniff`), never from content types a client sends.

use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::media::{produces_video, Container, MediaKind};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::processor::Processor;
use ff_pipeline::video::VIDEO_FORMATS;

use crate::error::ApiError;
use crate::format::OutputFormat;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Image in, image out; `None` keeps the target's format.
    Image { output_format: Option<ImageFormat> },
    /// A video comes out of `target` (a video, or a photo the lip syncer makes speak), encoded in
    /// `container`.
    Video { target: MediaKind, container: Container },
}

impl Plan {
    /// Decides the plan and refuses what cannot work: bytes that are no known medium (415), an
    /// audio target or a video source (415), audio sources that nothing would speak (400), an
    /// output format of the wrong kind (400).
    pub fn decide(
        sources: &[Option<MediaKind>],
        target: Option<MediaKind>,
        options: &ProcessOptions,
        output_format: Option<OutputFormat>,
    ) -> Result<Self, ApiError> {
        let target = match target {
            None => {
                return Err(ApiError::UnsupportedMedia(
                    "`target` is not a JPEG, PNG, WebP or BMP image nor a video container ffmpeg reads".into(),
                ))
            }
            Some(MediaKind::Audio(_)) => {
                return Err(ApiError::UnsupportedMedia("`target` is audio; a target is an image or a video".into()))
            }
            Some(kind) => kind,
        };
        let mut source_kinds = Vec::with_capacity(sources.len());
        for (index, kind) in sources.iter().enumerate() {
            match kind {
                None => {
                    return Err(ApiError::UnsupportedMedia(format!(
                        "`source` {index} is neither an image (JPEG, PNG, WebP, BMP) nor audio"
                    )))
                }
                Some(MediaKind::Video(_)) => {
                    return Err(ApiError::UnsupportedMedia(format!(
                        "`source` {index} is a video; sources are images (faces) or audio (speech for lip_syncer)"
                    )))
                }
                Some(kind) => source_kinds.push(*kind),
            }
        }
        let image_output = matches!(output_format, Some(OutputFormat::Image(_)));
        if !produces_video(target, &source_kinds, options, image_output) {
            return image_plan(&source_kinds, options, output_format);
        }
        let container = match (output_format, target) {
            (Some(OutputFormat::Video(container)), _) => container,
            (Some(OutputFormat::Image(format)), _) => {
                return Err(ApiError::InvalidOption {
                    option: "output_format".into(),
                    reason: format!(
                        "`{}` is an image format, but a video target gives a video: use one of {}",
                        format.extension(),
                        VIDEO_FORMATS.join(", ")
                    ),
                })
            }
            (None, MediaKind::Video(container)) => container.for_output(),
            (None, _) => Container::Mp4,
        };
        Ok(Self::Video { target, container })
    }
}

/// Image in, image out. An audio source needs the lip syncer, which on an image result keeps
/// FaceFusion's image workflow (one frame, a silent mouth; see the README's compatibility notes).
fn image_plan(
    sources: &[MediaKind],
    options: &ProcessOptions,
    output_format: Option<OutputFormat>,
) -> Result<Plan, ApiError> {
    if sources.iter().any(|kind| kind.is_audio()) && !options.uses(Processor::LipSyncer) {
        return Err(ApiError::BadRequest(
            "an audio source is only spoken by lip_syncer: add lip_syncer to the processors (with no image \
             output_format, a photo target becomes a video as long as the audio)"
                .into(),
        ));
    }
    match output_format {
        Some(OutputFormat::Video(container)) => Err(ApiError::InvalidOption {
            option: "output_format".into(),
            reason: format!("`{}` is a video container, but this request produces an image", container.extension()),
        }),
        Some(OutputFormat::Image(format)) => Ok(Plan::Image { output_format: Some(format) }),
        None => Ok(Plan::Image { output_format: None }),
    }
}

#[cfg(test)]
mod tests {
    use ff_pipeline::media::{sniff, sniff_named};
    use ff_pipeline::testing::padded;

    use super::*;

    /// [`Plan::decide`] on files in memory, the target's name read as the service reads it.
    fn planned(
        sources: &[Vec<u8>],
        target: &[u8],
        target_name: Option<&str>,
        options: &ProcessOptions,
        output_format: Option<OutputFormat>,
    ) -> Result<Plan, ApiError> {
        let source_kinds: Vec<Option<MediaKind>> = sources.iter().map(|bytes| sniff(bytes)).collect();
        Plan::decide(&source_kinds, sniff_named(target, target_name), options, output_format)
    }

    fn png() -> Vec<u8> {
        padded(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR")
    }

    fn mp4() -> Vec<u8> {
        padded(b"\0\0\0\x20ftypisom")
    }

    fn wav() -> Vec<u8> {
        padded(b"RIFF\0\0\0\0WAVEfmt ")
    }

    #[test]
    fn images_stay_images_and_videos_keep_their_container() {
        let options = ProcessOptions::default();
        assert_eq!(planned(&[png()], &png(), None, &options, None).unwrap(), Plan::Image { output_format: None });
        assert_eq!(
            planned(&[png()], &mp4(), Some("clip.MOV"), &options, None).unwrap(),
            Plan::Video { target: MediaKind::Video(Container::Mov), container: Container::Mov }
        );
        assert_eq!(
            planned(&[png()], &mp4(), None, &options, Some(OutputFormat::Video(Container::Mkv))).unwrap(),
            Plan::Video { target: MediaKind::Video(Container::Mp4), container: Container::Mkv }
        );
    }

    #[test]
    fn wrong_kinds_are_refused_with_their_status() {
        let options = ProcessOptions::default();
        let code = |result: Result<Plan, ApiError>| result.unwrap_err().code();
        assert_eq!(code(planned(&[png()], b"GIF89a", None, &options, None)), "unsupported_media");
        assert_eq!(code(planned(&[png()], &wav(), None, &options, None)), "unsupported_media");
        let video_source = planned(&[mp4()], &png(), None, &options, None).unwrap_err();
        assert_eq!(video_source.code(), "unsupported_media");
        assert!(video_source.to_string().contains("is a video"), "{video_source}");
        assert_eq!(code(planned(&[wav()], &png(), None, &options, None)), "bad_request");
        let png_out = Some(OutputFormat::Image(ImageFormat::Png));
        assert_eq!(code(planned(&[png()], &mp4(), None, &options, png_out)), "invalid_option");
        let mp4_out = Some(OutputFormat::Video(Container::Mp4));
        assert_eq!(code(planned(&[png()], &png(), None, &options, mp4_out)), "invalid_option");
    }

    #[test]
    fn an_image_spoken_by_lip_syncer_becomes_an_mp4() {
        let options = ProcessOptions { processors: vec![Processor::LipSyncer], ..ProcessOptions::default() };
        assert_eq!(
            planned(&[wav()], &png(), None, &options, None).unwrap(),
            Plan::Video { target: MediaKind::Image(ImageFormat::Png), container: Container::Mp4 }
        );
        // With an image output, FaceFusion's image workflow: one frame with a silent mouth.
        let png_out = Some(OutputFormat::Image(ImageFormat::Png));
        assert_eq!(
            planned(&[wav()], &png(), None, &options, png_out).unwrap(),
            Plan::Image { output_format: Some(ImageFormat::Png) }
        );
    }
}
