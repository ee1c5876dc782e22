//! The multipart form of `/api/v1/process` and of job creation: its fields, read once and turned
//! into a [`Submission`].
//!
//! Field names: `source` (repeatable file), `target` (file), `output_format`, and either FaceFusion
//! options as individual fields (`face_swapper_model=inswapper_128`; list options repeated or
//! space-separated, as on FaceFusion's command line and in its ini file) or a single `options`
//! field holding a JSON object. Option names and values are validated by the pipeline's
//! `ProcessOptions`, the one place that knows them.

use axum::extract::Multipart;
use ff_pipeline::frame_size::check_frame_sizes;
use ff_pipeline::image_io::read_dimensions;
use ff_pipeline::media::{sniff, sniff_named, MediaKind};
use ff_pipeline::PipelineError;

use crate::document::OptionsDocument;
use crate::error::ApiError;
use crate::plan::Plan;
use crate::sources::check_source_count;
use crate::webhooks::target::WebhookRequest;

/// The longest download name we derive from the target's file name.
const MAX_STEM_CHARS: usize = 64;

/// The most parts a form may have: every option plus the files fit many times over; more is an
/// attempt to make the server parse and hold many small parts.
pub const MAX_FORM_FIELDS: usize = 256;

/// The largest text field (an option value, the `options` JSON): far above any real option list.
pub const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

/// What a form may hold besides the body limit.
#[derive(Clone, Copy, Debug)]
pub struct FormLimits {
    /// FF_MAX_UPLOAD_SIZE_MB, in bytes (enforced by the body layer, reported here).
    pub body_bytes: usize,
    /// FF_MAX_SOURCES.
    pub max_sources: usize,
}

/// One uploaded file part.
#[derive(Debug)]
pub struct Upload {
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// The form's fields as sent, before validation.
#[derive(Debug, Default)]
pub struct ProcessForm {
    sources: Vec<Vec<u8>>,
    target: Option<Upload>,
    output_format: Option<String>,
    options_json: Option<String>,
    /// Option fields in arrival order, one entry per field.
    option_fields: Vec<(String, String)>,
    /// `webhook` and `webhook_events_filter` (jobs only).
    webhook: Option<String>,
    webhook_events: Option<Vec<String>>,
}

/// A validated form: the files, the options document, and the name the result is offered under.
#[derive(Debug)]
pub struct Submission {
    /// Images (faces) or audio (speech for lip_syncer).
    pub sources: Vec<Vec<u8>>,
    /// An image or a video.
    pub target: Vec<u8>,
    pub target_name: Option<String>,
    /// What each file is, from its first bytes (the target's also from its name): sniffed once.
    pub source_kinds: Vec<Option<MediaKind>>,
    pub target_kind: Option<MediaKind>,
    pub document: OptionsDocument,
    pub download_stem: String,
    /// The webhook a job should call, unchecked (job creation checks it; /process refuses it).
    pub webhook: Option<WebhookRequest>,
}

impl Submission {
    /// Image or video processing, from what the files are.
    pub fn plan(&self) -> Result<Plan, ApiError> {
        Plan::decide(&self.source_kinds, self.target_kind, &self.document.options, self.document.output_format)
    }

    /// Refuses image inputs the run would refuse, from their headers (no pixel is decoded): an
    /// image that cannot be read (415), one over `max_pixels`, or an image target whose output
    /// (`output_image_scale`, the frame enhancer) would be over it (413). `/process` and job
    /// creation both call it, so a job is refused at once rather than failing in the worker.
    pub fn check_images(&self, plan: &Plan, max_pixels: u64) -> Result<(), ApiError> {
        for (index, (bytes, kind)) in self.sources.iter().zip(&self.source_kinds).enumerate() {
            if kind.is_some_and(MediaKind::is_image) {
                read_dimensions(bytes, max_pixels).map_err(|error| in_field(&format!("`source` {index}"), error))?;
            }
        }
        if !self.target_kind.is_some_and(MediaKind::is_image) {
            return Ok(());
        }
        let (width, height) = read_dimensions(&self.target, max_pixels).map_err(|error| in_field("`target`", error))?;
        if let Plan::Image { .. } = plan {
            let options = &self.document.options;
            let size = (width as usize, height as usize);
            check_frame_sizes(size, options.output.image_scale, "output_image_scale", options, max_pixels)?;
        }
        Ok(())
    }
}

/// A pipeline error about one input, its message prefixed with the field it came from.
fn in_field(field: &str, error: PipelineError) -> ApiError {
    match ApiError::from(error) {
        ApiError::UnsupportedMedia(message) => ApiError::UnsupportedMedia(format!("{field}: {message}")),
        ApiError::ImageTooLarge(message) => ApiError::ImageTooLarge(format!("{field}: {message}")),
        other => other,
    }
}

impl ProcessForm {
    /// Reads every part. The body limit surfaces here as `payload_too_large`; too many parts, a text
    /// field over [`MAX_TEXT_FIELD_BYTES`] or more sources than FF_MAX_SOURCES stop the reading at
    /// once (400), before the rest of the body is taken in.
    pub async fn read(mut multipart: Multipart, limits: FormLimits) -> Result<Self, ApiError> {
        let body_error = |e| ApiError::from_multipart(e, limits.body_bytes);
        let mut form = Self::default();
        let mut fields = 0;
        while let Some(mut field) = multipart.next_field().await.map_err(body_error)? {
            fields += 1;
            if fields > MAX_FORM_FIELDS {
                return Err(ApiError::FormTooLarge(format!("the form has more than {MAX_FORM_FIELDS} fields")));
            }
            let name = field.name().map(str::to_owned);
            let file_name = field.file_name().map(str::to_owned);
            let bytes = if is_file_field(name.as_deref(), file_name.as_deref()) {
                Vec::from(field.bytes().await.map_err(body_error)?)
            } else {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(body_error)? {
                    check_text_size(name.as_deref(), text.len() + chunk.len())?;
                    text.extend_from_slice(&chunk);
                }
                text
            };
            form.accept(name, file_name, bytes)?;
            check_source_count(form.sources.len(), limits.max_sources)?;
        }
        Ok(form)
    }

    /// Files one part under its field name.
    pub fn accept(&mut self, name: Option<String>, file_name: Option<String>, bytes: Vec<u8>) -> Result<(), ApiError> {
        let Some(name) = name else {
            return Err(ApiError::BadRequest("a multipart field has no name".into()));
        };
        match name.as_str() {
            "source" => self.sources.push(bytes),
            // `media` is what POST /api/v1/faces calls its one file.
            "target" | "media" => set_once(&mut self.target, Upload { file_name, bytes }, "target")?,
            "output_format" => set_once(&mut self.output_format, into_text(&name, bytes)?, &name)?,
            "options" => set_once(&mut self.options_json, into_text(&name, bytes)?, &name)?,
            "webhook" => set_once(&mut self.webhook, into_text(&name, bytes)?, &name)?,
            // Repeated, or several in one field separated by spaces or commas.
            "webhook_events_filter" => {
                let text = into_text(&name, bytes)?;
                let events = self.webhook_events.get_or_insert_with(Vec::new);
                events.extend(text.split([' ', ',']).filter(|e| !e.is_empty()).map(str::to_string));
            }
            _ if file_name.is_some() => {
                return Err(ApiError::InvalidOption {
                    option: name,
                    reason: "unknown file field; files go in `source` or `target`".into(),
                })
            }
            _ => {
                let value = into_text(&name, bytes)?;
                self.option_fields.push((name, value));
            }
        }
        Ok(())
    }

    /// Validates everything the form says.
    pub fn into_submission(self) -> Result<Submission, ApiError> {
        let Some(target) = self.target else {
            return Err(ApiError::BadRequest("missing `target` file".into()));
        };
        let document =
            options_document(self.options_json.as_deref(), self.option_fields, self.output_format.as_deref())?;
        let webhook = match (self.webhook, self.webhook_events) {
            (Some(url), events) => Some(WebhookRequest { url, events }),
            (None, Some(_)) => return Err(ApiError::BadRequest("`webhook_events_filter` needs a `webhook`".into())),
            (None, None) => None,
        };
        Ok(Submission {
            webhook,
            download_stem: download_stem(target.file_name.as_deref()),
            source_kinds: self.sources.iter().map(|bytes| sniff(bytes)).collect(),
            target_kind: sniff_named(&target.bytes, target.file_name.as_deref()),
            sources: self.sources,
            target: target.bytes,
            target_name: target.file_name,
            document,
        })
    }
}

/// Files go in `source` and `target`; any other part with a file name is refused by `accept`.
fn is_file_field(name: Option<&str>, file_name: Option<&str>) -> bool {
    matches!(name, Some("source" | "target" | "media")) || file_name.is_some()
}

fn check_text_size(name: Option<&str>, bytes: usize) -> Result<(), ApiError> {
    if bytes > MAX_TEXT_FIELD_BYTES {
        return Err(ApiError::FormTooLarge(format!(
            "field `{}` is longer than {MAX_TEXT_FIELD_BYTES} bytes",
            name.unwrap_or_default()
        )));
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(ApiError::BadRequest(format!("field `{name}` was given more than once")));
    }
    *slot = Some(value);
    Ok(())
}

fn into_text(name: &str, bytes: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|_| ApiError::BadRequest(format!("field `{name}` must be UTF-8 text")))
}

/// Options come either as one JSON object or as fields, never both: merging the two would
/// make it unclear which one wins.
fn options_document(
    json: Option<&str>,
    fields: Vec<(String, String)>,
    output_format: Option<&str>,
) -> Result<OptionsDocument, ApiError> {
    match json {
        Some(_) if !fields.is_empty() => Err(ApiError::BadRequest(format!(
            "give options either as form fields or as one `options` JSON field, not both (got `options` and `{}`)",
            fields[0].0
        ))),
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| ApiError::BadRequest(format!("field `options` is not valid JSON: {e}")))?;
            OptionsDocument::from_json(value, output_format)
        }
        None => OptionsDocument::from_fields(fields, output_format),
    }
}

/// The target's file name without directory or extension, reduced to characters that are safe
/// in a quoted `Content-Disposition` filename.
pub fn download_stem(file_name: Option<&str>) -> String {
    let base = file_name.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let stem = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
    let safe: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .take(MAX_STEM_CHARS)
        .collect();
    if safe.trim_matches(['.', '_']).is_empty() {
        "output".into()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn text(name: &str, value: &str) -> (Option<String>, Option<String>, Vec<u8>) {
        (Some(name.into()), None, value.as_bytes().to_vec())
    }

    fn form(parts: Vec<(Option<String>, Option<String>, Vec<u8>)>) -> Result<ProcessForm, ApiError> {
        let mut form = ProcessForm::default();
        for (name, file_name, bytes) in parts {
            form.accept(name, file_name, bytes)?;
        }
        Ok(form)
    }

    fn target() -> (Option<String>, Option<String>, Vec<u8>) {
        (Some("target".into()), Some("photo.jpg".into()), vec![1, 2, 3])
    }

    #[test]
    fn sources_accumulate_and_the_target_keeps_its_name() {
        let source = (Some("source".into()), Some("a.png".into()), vec![9]);
        let form = form(vec![source.clone(), source, target()]).unwrap();
        assert_eq!(form.sources.len(), 2);
        assert_eq!(form.target.unwrap().file_name.as_deref(), Some("photo.jpg"));
    }

    #[test]
    fn a_second_target_is_rejected() {
        let error = form(vec![target(), target()]).unwrap_err();
        assert_eq!(error.code(), "bad_request");
        assert!(error.to_string().contains("`target`"));
    }

    #[test]
    fn an_unknown_file_field_names_the_field() {
        let error = form(vec![(Some("picture".into()), Some("x.png".into()), vec![])]).unwrap_err();
        assert_eq!((error.status(), error.code()), (StatusCode::BAD_REQUEST, "invalid_option"));
        assert!(error.to_string().contains("`picture`"));
    }

    #[test]
    fn non_utf8_text_fields_are_rejected() {
        let error = form(vec![(Some("face_swapper_model".into()), None, vec![0xff, 0xfe])]).unwrap_err();
        assert_eq!(error.code(), "bad_request");
    }

    #[test]
    fn a_nameless_part_is_rejected() {
        assert_eq!(form(vec![(None, None, vec![])]).unwrap_err().code(), "bad_request");
    }

    #[test]
    fn a_missing_target_is_reported_before_options_are_parsed() {
        let error = form(vec![text("face_swapper_model", "inswapper_128")]).unwrap().into_submission().err().unwrap();
        assert_eq!(error.to_string(), "missing `target` file");
    }

    #[test]
    fn output_format_accepts_the_documented_names_only() {
        use crate::format::OutputFormat;
        for name in ["jpg", "jpeg", "PNG", "webp", "bmp", "mp4", "mov", "webm"] {
            assert!(OutputFormat::parse(name).is_ok(), "{name}");
        }
        let error = OutputFormat::parse("gif").unwrap_err();
        assert_eq!(error.code(), "invalid_option");
        assert!(error.to_string().contains("output_format"));
    }

    #[test]
    fn options_json_and_option_fields_together_are_rejected() {
        let fields = vec![("face_swapper_model".to_string(), "inswapper_128".to_string())];
        let error = options_document(Some("{}"), fields, None).unwrap_err();
        assert_eq!(error.code(), "bad_request");
    }

    #[test]
    fn malformed_options_json_is_a_bad_request() {
        let error = options_document(Some("{not json"), Vec::new(), None).unwrap_err();
        assert!(error.to_string().starts_with("field `options` is not valid JSON"));
    }

    #[test]
    fn download_stem_is_safe_for_a_header() {
        assert_eq!(download_stem(Some("holiday.photo.JPG")), "holiday.photo");
        assert_eq!(download_stem(Some("C:\\Users\\me\\pic.png")), "pic");
        assert_eq!(download_stem(Some("../../etc/passwd")), "passwd");
        assert_eq!(download_stem(Some("a \"quoted\";name.png")), "a__quoted__name");
        assert_eq!(download_stem(Some("été.png")), "_t_");
        assert_eq!(download_stem(Some("...")), "output");
        assert_eq!(download_stem(None), "output");
        assert_eq!(download_stem(Some(&"x".repeat(500))).len(), MAX_STEM_CHARS);
    }
}
