//! FaceFusion 3.5.3's options (being written).

use crate::error::Result;

/// Validated, typed options for one run.
#[derive(Clone, Debug, Default)]
pub struct ProcessOptions {}

impl ProcessOptions {
    /// From (name, values) pairs; names in FaceFusion's snake_case or kebab-case form.
    pub fn from_pairs(_pairs: &[(String, Vec<String>)]) -> Result<Self> {
        todo!("being written")
    }

    /// From a JSON object of FaceFusion option names to values (strings, numbers or arrays).
    pub fn from_json(_value: &serde_json::Value) -> Result<Self> {
        todo!("being written")
    }
}
