//! The options of one run as a document: the client's FaceFusion options exactly as given (what a
//! job record keeps and a batch sidecar holds) together with the typed values parsed from them,
//! once, where the document enters the service.

use std::collections::HashMap;

use ff_pipeline::options::{canonical_name, is_free_text, ProcessOptions};
use serde_json::Value;

use crate::error::ApiError;
use crate::format::OutputFormat;

#[derive(Clone, Debug, PartialEq)]
pub struct OptionsDocument {
    /// As given: a JSON object of FaceFusion option names to values.
    pub raw: Value,
    /// The same, validated and typed.
    pub options: ProcessOptions,
    /// `None` keeps the target's format (a video's container).
    pub output_format: Option<OutputFormat>,
}

impl OptionsDocument {
    /// Options as one JSON object (`/process`'s `options` field, a JSON job, a sidecar, a record).
    pub fn from_json(raw: Value, output_format: Option<&str>) -> Result<Self, ApiError> {
        let options = ProcessOptions::from_json(&raw)?;
        Ok(Self { raw, options, output_format: output_format.map(OutputFormat::parse).transpose()? })
    }

    /// Options as form fields in arrival order. Repeated fields append and each value is split on
    /// whitespace, as on FaceFusion's command line, so `processors=face_swapper face_enhancer` and
    /// two `processors` fields mean the same; the raw document keeps one value as a string and
    /// several as an array.
    pub fn from_fields(fields: Vec<(String, String)>, output_format: Option<&str>) -> Result<Self, ApiError> {
        let pairs = group_option_fields(fields);
        let options = ProcessOptions::from_pairs(&pairs)?;
        let raw = options_object(pairs);
        Ok(Self { raw, options, output_format: output_format.map(OutputFormat::parse).transpose()? })
    }

    /// The default options, as an empty document.
    pub fn empty() -> Self {
        Self { raw: Value::Object(Default::default()), options: ProcessOptions::default(), output_format: None }
    }
}

/// One (name, values) pair per option, in first-seen order, under its canonical name: two spellings
/// of one option (`face-swapper-model`, `face_swapper_model`) are one option, so the raw document
/// (a JSON object, keys sorted) means what the fields meant. Linear in the number of fields (an
/// index by name), so a form of many distinct names costs no more than reading it.
pub fn group_option_fields(fields: Vec<(String, String)>) -> Vec<(String, Vec<String>)> {
    let mut pairs: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (name, value) in fields {
        let name = canonical_name(&name);
        let values: Vec<String> = match is_free_text(&name) {
            true => vec![value],
            false => value.split_whitespace().map(str::to_owned).collect(),
        };
        match index.get(&name) {
            Some(&at) => pairs[at].1.extend(values),
            None => {
                index.insert(name.clone(), pairs.len());
                pairs.push((name, values));
            }
        }
    }
    pairs
}

/// Grouped fields as one JSON object: a single value as a string, several as an array.
fn options_object(pairs: Vec<(String, Vec<String>)>) -> Value {
    let mut object = serde_json::Map::new();
    for (name, values) in pairs {
        let value = match values.as_slice() {
            [one] => Value::String(one.clone()),
            many => Value::Array(many.iter().cloned().map(Value::String).collect()),
        };
        object.insert(name, value);
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_space_separated_values_group_under_one_name() {
        let grouped = group_option_fields(vec![
            ("processors".into(), "face_swapper face_enhancer".into()),
            ("face_swapper_model".into(), "inswapper_128".into()),
            ("processors".into(), "frame_enhancer".into()),
        ]);
        assert_eq!(
            grouped,
            vec![
                (
                    "processors".to_string(),
                    vec!["face_swapper".into(), "face_enhancer".into(), "frame_enhancer".into()]
                ),
                ("face_swapper_model".to_string(), vec!["inswapper_128".into()]),
            ]
        );
    }

    #[test]
    fn option_fields_become_one_object_with_lists_for_repeats() {
        let document = OptionsDocument::from_fields(
            vec![("face_swapper_model".into(), "inswapper_128".into()), ("face_detector_margin".into(), "1 2".into())],
            None,
        )
        .unwrap();
        let object = document.raw;
        assert_eq!(
            object,
            serde_json::json!({"face_swapper_model": "inswapper_128", "face_detector_margin": ["1", "2"]})
        );
        assert_eq!(ProcessOptions::from_json(&object).unwrap(), document.options);
    }

    #[test]
    fn two_spellings_of_an_option_are_one_option_in_the_raw_document() {
        // Found while writing fuzz/options' round-trip invariant: the raw object sorted
        // `face_mask-padding` before `face_mask_padding`, so a job's worker re-read the first value
        // where the form meant the last.
        let fields = |a: &str, b: &str| vec![(a.to_string(), "1".to_string()), (b.to_string(), "2".to_string())];
        let document = OptionsDocument::from_fields(fields("face_mask_padding", "face_mask-padding"), None).unwrap();
        assert_eq!(document.raw, serde_json::json!({"face_mask_padding": ["1", "2"]}));
        assert_eq!(ProcessOptions::from_json(&document.raw).unwrap(), document.options);
        // A single-valued option given twice is refused whatever the spelling, as under one name.
        let error = OptionsDocument::from_fields(fields("face_swapper_weight", "face-swapper-weight"), None);
        assert_eq!(error.unwrap_err().code(), "invalid_option");
    }

    #[test]
    fn a_bad_output_format_or_option_is_refused() {
        assert_eq!(
            OptionsDocument::from_json(serde_json::json!({}), Some("gif")).unwrap_err().code(),
            "invalid_option"
        );
        let error = OptionsDocument::from_json(serde_json::json!({"no_such_option": 1}), None).unwrap_err();
        assert_eq!(error.code(), "invalid_option");
    }
}
