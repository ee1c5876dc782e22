//! The options one batch input runs with: FF_BATCH_OPTIONS, or the input's `.json` sidecar.
//!
//! Both are a JSON object of FaceFusion option names (as `/process` takes them) plus two batch
//! keys: `sources`, the keys of source images already in the bucket (face_swapper needs at least
//! one), and `output_format` (jpg, png, webp or bmp). A sidecar replaces the defaults as a whole,
//! so what ran is always what one document says.

use ff_pipeline::image_io::ImageFormat;

use crate::document::OptionsDocument;

/// An options document, parsed and validated once: a bad FF_BATCH_OPTIONS stops start-up, a bad
/// sidecar fails its input before any work.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOptions {
    /// The FaceFusion options (without the two batch keys).
    pub options: OptionsDocument,
    /// Keys of the source images in the bucket.
    pub sources: Vec<String>,
    pub output_format: Option<ImageFormat>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self { options: OptionsDocument::empty(), sources: Vec::new(), output_format: None }
    }
}

impl BatchOptions {
    /// Parses an options document; the error is a message naming the bad part.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err("must be a JSON object of option names to values".into());
        };
        let sources = match object.remove("sources") {
            None => Vec::new(),
            Some(serde_json::Value::Array(items)) => {
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    let key = item.as_str().ok_or("`sources` must be an array of object keys (strings)")?;
                    crate::storage::validate_key(key).map_err(|e| format!("`sources`: {e}"))?;
                    keys.push(key.to_string());
                }
                keys
            }
            Some(_) => return Err("`sources` must be an array of object keys".into()),
        };
        let output_format = match object.remove("output_format") {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(
                value
                    .as_str()
                    .and_then(ImageFormat::from_name)
                    .ok_or("`output_format` must be jpg, png, webp or bmp")?,
            ),
        };
        let options = OptionsDocument::from_json(serde_json::Value::Object(object), None).map_err(|e| e.to_string())?;
        Ok(Self { options, sources, output_format })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_documents_are_checked() {
        let parsed = BatchOptions::parse(
            r#"{"face_swapper_model": "inswapper_128", "sources": ["s/a.jpg"], "output_format": "png"}"#,
        )
        .unwrap();
        assert_eq!(parsed.sources, ["s/a.jpg"]);
        assert_eq!(parsed.output_format, Some(ImageFormat::Png));
        assert!(parsed.options.raw.get("sources").is_none());
        for bad in ["[]", "{", r#"{"sources": "a"}"#, r#"{"sources": ["../a"]}"#, r#"{"output_format": "gif"}"#] {
            assert!(BatchOptions::parse(bad).is_err(), "{bad}");
        }
        assert!(BatchOptions::parse(r#"{"no_such_option": 1}"#).is_err());
    }
}
