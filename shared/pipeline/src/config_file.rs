//! FaceFusion's `facefusion.ini` (`--config-path`): sections of `key = value` lines whose keys are
//! option names. An empty value means "use the default" and lists are space-separated, as there.

use ini::{Ini, ParseOption};

use crate::error::{PipelineError, Result};
use crate::options;

/// The ini keys that are paths rather than options; the command line decides what to do with them.
pub const PATH_KEYS: &[&str] = &["source_paths", "target_path", "output_path"];

/// The settings of one ini file, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigFile {
    /// Option names (snake_case) and their values, to go before the command line's own.
    pub options: Vec<(String, Vec<String>)>,
    /// `source_paths`, `target_path`, `output_path` when set.
    pub paths: Vec<(String, Vec<String>)>,
}

impl ConfigFile {
    /// Reads the ini text. Keys FaceFusion has but this engine does not take (UI, job and benchmark
    /// settings) are skipped, as they do not change a run here; an unknown key is an error, so a
    /// typo does not go unnoticed. `origin` names the file in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        // Python's configparser: `;` and `#` start comments, values are not unescaped or quoted.
        let parse_option = ParseOption { enabled_quote: false, enabled_escape: false, ..ParseOption::default() };
        let ini = Ini::load_from_str_opt(text, parse_option)
            .map_err(|e| PipelineError::invalid_option("config_path", format!("{origin}: {e}")))?;
        let mut config = ConfigFile::default();
        for (_, properties) in ini.iter() {
            for (key, value) in properties.iter() {
                let key = key.trim().to_lowercase();
                let values: Vec<String> = value.split_whitespace().map(str::to_string).collect();
                if values.is_empty() {
                    continue;
                }
                if PATH_KEYS.contains(&key.as_str()) {
                    config.paths.push((key, values));
                } else if options::spec(&key).is_some() {
                    config.options.push((key, values));
                } else if !FACEFUSION_ONLY_KEYS.contains(&key.as_str()) {
                    return Err(PipelineError::invalid_option(
                        "config_path",
                        format!("{origin}: `{key}` is not a FaceFusion 3.5.3 setting"),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// The value of a path key, if the file set it.
    pub fn path(&self, key: &str) -> Option<&[String]> {
        self.paths.iter().rev().find(|(name, _)| name == key).map(|(_, values)| values.as_slice())
    }
}

/// Settings of FaceFusion's ini that concern its UI, job store, benchmark or file patterns; they have
/// no meaning for one `ff process` run.
const FACEFUSION_ONLY_KEYS: &[&str] = &[
    "jobs_path",
    "source_pattern",
    "target_pattern",
    "output_pattern",
    "open_browser",
    "ui_layouts",
    "ui_workflow",
    "benchmark_mode",
    "benchmark_resolutions",
    "benchmark_cycle_count",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_facefusions_sections_and_skips_empty_values() {
        let text = "[paths]\ntarget_path = in.png\nsource_paths =\n\n[processors]\n\
                    background_remover_color = 0 255 0 255\n; a comment\nprocessors = background_remover\n\
                    [uis]\nopen_browser =\n";
        let config = ConfigFile::parse(text, "test.ini").unwrap();
        assert_eq!(
            config.options,
            [
                (
                    "background_remover_color".to_string(),
                    vec!["0", "255", "0", "255"].into_iter().map(String::from).collect()
                ),
                ("processors".to_string(), vec!["background_remover".to_string()]),
            ]
        );
        assert_eq!(config.path("target_path"), Some(&["in.png".to_string()][..]));
        assert_eq!(config.path("source_paths"), None);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let error = ConfigFile::parse("[misc]\nface_swaper_model = x\n", "my.ini").unwrap_err();
        assert!(error.to_string().contains("face_swaper_model"), "{error}");
    }
}
