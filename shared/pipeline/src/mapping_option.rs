//! The `face_mappings` option as given: which source images go to which target person (a survey
//! person id, an embedding, or a face's frame and position), parsed from its JSON. What the
//! mappings do to frames is the face mapping module's.

use serde::Deserialize;

use crate::error::{PipelineError, Result};

pub const OPTION: &str = "face_mappings";
/// The most mappings one run takes.
pub const MAX_MAPPINGS: usize = 16;
/// ArcFace's embedding length.
pub const EMBEDDING_LEN: usize = 512;

/// One mapping as given.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceMapping {
    /// Indices among the run's source images; several are averaged, as FaceFusion averages all.
    pub sources: Vec<usize>,
    pub target: MappingTarget,
}

/// Who a mapping's source goes to.
#[derive(Clone, Debug, PartialEq)]
pub enum MappingTarget {
    /// A person id of the target's face survey, made with the run's options.
    Person(usize),
    /// A 512-value ArcFace embedding (a person's `embedding` from the survey).
    Embedding(Vec<f32>),
    /// The face at `position` (selector order) in frame `frame` (0 for an image).
    Face { frame: u64, position: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    source: RawSources,
    target: RawTarget,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSources {
    One(usize),
    Many(Vec<usize>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTarget {
    Person(usize),
    Embedding(Vec<f32>),
    Face {
        #[serde(default)]
        frame: u64,
        position: usize,
    },
}

/// Parses the option's JSON text: an array of `{"source": i | [i, ...], "target": person id |
/// [512 floats] | {"frame": n, "position": p}}`. Empty text means no mappings.
pub fn parse(text: &str) -> Result<Vec<FaceMapping>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let invalid = |reason: String| PipelineError::invalid_option(OPTION, reason);
    let raw: Vec<RawMapping> = serde_json::from_str(text).map_err(|error| {
        invalid(format!(
            "expected a JSON array of {{\"source\": index, \"target\": person id | embedding | {{\"frame\", \"position\"}}}}: {error}"
        ))
    })?;
    if raw.len() > MAX_MAPPINGS {
        return Err(invalid(format!("at most {MAX_MAPPINGS} mappings")));
    }
    raw.into_iter()
        .map(|mapping| {
            let sources = match mapping.source {
                RawSources::One(index) => vec![index],
                RawSources::Many(indices) if !indices.is_empty() => indices,
                RawSources::Many(_) => return Err(invalid("a mapping needs at least one source".into())),
            };
            let target = match mapping.target {
                RawTarget::Person(id) => MappingTarget::Person(id),
                RawTarget::Embedding(values) => MappingTarget::Embedding(checked_embedding(values)?),
                RawTarget::Face { frame, position } => MappingTarget::Face { frame, position },
            };
            Ok(FaceMapping { sources, target })
        })
        .collect()
}

fn checked_embedding(values: Vec<f32>) -> Result<Vec<f32>> {
    let norm = values.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
    if values.len() != EMBEDDING_LEN || !norm.is_finite() || norm == 0.0 {
        return Err(PipelineError::invalid_option(
            OPTION,
            format!("an embedding target is {EMBEDDING_LEN} finite numbers, not all zero"),
        ));
    }
    Ok(values.into_iter().map(|v| (f64::from(v) / norm) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_of_target() {
        let embedding: Vec<String> = (0..512).map(|i| if i == 3 { "2.0".into() } else { "0".into() }).collect();
        let text = format!(
            r#"[{{"source": 0, "target": 1}}, {{"source": [1, 2], "target": {{"frame": 30, "position": 1}}}},
               {{"source": 2, "target": [{}]}}, {{"source": 0, "target": {{"position": 0}}}}]"#,
            embedding.join(",")
        );
        let mappings = parse(&text).unwrap();
        assert_eq!(mappings[0], FaceMapping { sources: vec![0], target: MappingTarget::Person(1) });
        assert_eq!(mappings[1].sources, [1, 2]);
        assert_eq!(mappings[1].target, MappingTarget::Face { frame: 30, position: 1 });
        match &mappings[2].target {
            MappingTarget::Embedding(values) => assert_eq!((values[3], values.len()), (1.0, 512)),
            other => panic!("{other:?}"),
        }
        assert_eq!(mappings[3].target, MappingTarget::Face { frame: 0, position: 0 });
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_cannot_be_a_mapping() {
        for bad in [
            "{}",
            "[1]",
            r#"[{"source": 0}]"#,
            r#"[{"source": [], "target": 0}]"#,
            r#"[{"source": -1, "target": 0}]"#,
            r#"[{"source": 0, "target": [1.0, 2.0]}]"#,
            r#"[{"source": 0, "target": 0, "weight": 1}]"#,
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.to_string().contains("face_mappings"), "{bad}: {error}");
        }
        let many = format!("[{}]", vec![r#"{"source": 0, "target": 0}"#; 17].join(","));
        assert!(parse(&many).is_err());
    }
}
