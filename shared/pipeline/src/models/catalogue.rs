//! The FaceFusion 3.5.3 model catalogue: every downloadable model file, where it is served from and
//! the model-set metadata FaceFusion attaches to it.
//!
//! The data lives in `models/catalogue.json` at the repository root, generated from
//! `create_static_model_set()` of every FaceFusion 3.5.3 module. It is compiled into the binary so a
//! deployed function never depends on a data file beside it.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};

const CATALOGUE_JSON: &str = include_str!("../../../../models/catalogue.json");

/// The whole catalogue: download providers plus one [`ModelEntry`] per file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// The FaceFusion release the catalogue mirrors (`3.5.3`).
    pub facefusion_version: String,
    /// Free-text field notes kept in the JSON for readers of the data file.
    #[serde(default)]
    pub about: Vec<String>,
    /// Official download locations, tried in this order.
    pub providers: Vec<Provider>,
    models: Vec<ModelEntry>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

/// One official download location: `url` is a template with `{base_name}` and `{file_name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// FaceFusion's provider name (`github`, `huggingface`); several URLs may share one name.
    pub name: String,
    pub url: String,
}

/// FaceFusion's `--download-scope`: `lite` leaves out the 133 non-iperov deep swapper models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadScope {
    #[default]
    Lite,
    Full,
}

/// The frame enhancer's tiling: tile size, pad and overlap in pixels (FaceFusion's `size` triple).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tile {
    pub size: u32,
    pub pad: u32,
    pub overlap: u32,
}

/// One model file. Metadata fields are those of the FaceFusion model-set entry that loads the file
/// as its main source; embedding converters (`crossface_*`) carry none because FaceFusion keeps
/// the metadata on the swapper they serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The file stem, or `scope/name` for deep swapper models: the id used everywhere in `ff`.
    pub name: String,
    /// Path of the model inside the models directory (`inswapper_128.onnx`, `iperov/x_224.dfm`).
    pub file: String,
    /// Path of the CRC32 sidecar inside the models directory.
    pub hash_file: String,
    /// Release tag or Hugging Face repository the file is published under (`models-3.0.0`).
    pub base_name: String,
    /// Providers allowed to serve the file; empty means every provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// FaceFusion modules or processors that load the file, e.g. `face_detector`, `face_swapper`.
    pub modules: Vec<String>,
    /// FaceFusion model-set keys (option values) whose sources include the file, e.g. `yolo_face`.
    pub choices: Vec<String>,
    /// The file's key in those model sets' `sources` (`face_swapper`, `embedding_converter`, ...).
    pub role: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Crop templates when one file is cropped several ways: keyed by processor (live_portrait)
    /// or by model input (age_modifier).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    /// Model input size (width, height).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<[u32; 2]>,
    /// Input sizes keyed by model input (age_modifier).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sizes: BTreeMap<String, [u32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<[f32; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_deviation: Option<[f32; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<Tile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// The face swapper's `--face-swapper-pixel-boost` choices, native size first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pixel_boost_sizes: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<u16>,
    #[serde(default)]
    pub download_scope: DownloadScope,
    /// Published byte size of the release asset, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Published SHA-256 of the release asset, when known (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ModelEntry {
    /// The first module that loads the file: the one to show when only one fits.
    pub fn module(&self) -> &str {
        self.modules.first().map(String::as_str).unwrap_or("")
    }

    /// The name the file has in its release: the last path component (deep swapper models are
    /// stored under their scope but published flat).
    pub fn url_file_name(&self) -> &str {
        last_component(&self.file)
    }

    pub fn hash_url_file_name(&self) -> &str {
        last_component(&self.hash_file)
    }

    /// Whether a provider of this name may serve the file.
    pub fn served_by(&self, provider: &str) -> bool {
        self.providers.is_empty() || self.providers.iter().any(|p| p == provider)
    }

    /// The crop template `module` uses with this model, if it crops at all.
    pub fn template_for(&self, module: &str) -> Option<&str> {
        self.template.as_deref().or_else(|| self.templates.get(module).map(String::as_str))
    }
}

fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The compiled-in catalogue, parsed on first use.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    // The JSON is part of the source tree and checked by a unit test, so a failure here is a
    // build defect, not an input error: there is nothing a caller could do about it.
    CATALOGUE.get_or_init(|| {
        Catalogue::parse(CATALOGUE_JSON).unwrap_or_else(|error| panic!("models/catalogue.json: {error}"))
    })
}

impl Catalogue {
    /// Parses and checks a catalogue: names unique, paths relative and free of `..`.
    pub fn parse(json: &str) -> Result<Self> {
        let invalid = |reason: String| PipelineError::invalid_option("catalogue", reason);
        let mut catalogue: Catalogue =
            serde_json::from_str(json).map_err(|error| invalid(format!("not a valid catalogue: {error}")))?;
        if catalogue.providers.is_empty() {
            return Err(invalid("no download providers".into()));
        }
        for provider in &catalogue.providers {
            if !provider.url.contains("{file_name}") {
                return Err(invalid(format!("provider URL {} has no {{file_name}}", provider.url)));
            }
        }
        let mut index = HashMap::with_capacity(catalogue.models.len());
        for (position, entry) in catalogue.models.iter().enumerate() {
            for path in [&entry.file, &entry.hash_file] {
                let safe = !path.is_empty()
                    && !path.starts_with('/')
                    && !path.contains('\\')
                    && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
                if !safe {
                    return Err(invalid(format!("model `{}` has an unsafe path `{path}`", entry.name)));
                }
            }
            if entry.modules.is_empty() {
                return Err(invalid(format!("model `{}` names no module", entry.name)));
            }
            if index.insert(entry.name.clone(), position).is_some() {
                return Err(invalid(format!("model `{}` is listed twice", entry.name)));
            }
        }
        catalogue.index = index;
        Ok(catalogue)
    }

    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.index.get(name).map(|&position| &self.models[position])
    }

    /// Like [`Catalogue::get`], with the error the rest of the pipeline reports.
    pub fn entry(&self, name: &str) -> Result<&ModelEntry> {
        self.get(name).ok_or_else(|| PipelineError::UnknownModel { name: name.to_string() })
    }

    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    /// Every file a module or processor can load (`face_detector`, `face_swapper`, ...).
    pub fn for_processor(&self, name: &str) -> Vec<&ModelEntry> {
        self.models.iter().filter(|entry| entry.modules.iter().any(|m| m == name)).collect()
    }

    /// The files one option value needs, e.g. (`face_swapper`, `ghost_1_256`) gives the swapper and
    /// its `crossface_ghost` converter; (`face_editor`, `live_portrait`) gives six files.
    pub fn for_choice(&self, module: &str, choice: &str) -> Vec<&ModelEntry> {
        self.models
            .iter()
            .filter(|entry| entry.modules.iter().any(|m| m == module) && entry.choices.iter().any(|c| c == choice))
            .collect()
    }

    /// Module and processor names, in catalogue order.
    pub fn module_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for entry in &self.models {
            for module in &entry.modules {
                if !names.contains(&module.as_str()) {
                    names.push(module);
                }
            }
        }
        names
    }

    /// What a user means by `name`: a model, every file of an option value (`yolo_face`,
    /// `ghost_1_256` with its converter, `live_portrait`), every file of a module or processor, or
    /// `all`. Module and `all` expansions honour `scope`, as FaceFusion's force-download does; a
    /// model or option value named explicitly is always included. Empty when nothing matches.
    pub fn resolve(&self, name: &str, scope: DownloadScope) -> Vec<&ModelEntry> {
        let in_scope = |entry: &ModelEntry| scope == DownloadScope::Full || entry.download_scope == DownloadScope::Lite;
        self.models
            .iter()
            .filter(|entry| {
                entry.name == name
                    || entry.choices.iter().any(|c| c == name)
                    || ((name == "all" || entry.modules.iter().any(|m| m == name)) && in_scope(entry))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_catalogue_parses_and_covers_every_module() {
        let catalogue = catalogue();
        assert_eq!(catalogue.facefusion_version, "3.5.3");
        assert_eq!(catalogue.models().len(), 249);
        let modules = catalogue.module_names();
        for module in [
            "content_analyser",
            "face_classifier",
            "face_detector",
            "face_landmarker",
            "face_masker",
            "face_recognizer",
            "voice_extractor",
            "age_modifier",
            "background_remover",
            "deep_swapper",
            "expression_restorer",
            "face_editor",
            "face_enhancer",
            "face_swapper",
            "frame_colorizer",
            "frame_enhancer",
            "lip_syncer",
        ] {
            assert!(modules.contains(&module), "{module} missing");
        }
        assert_eq!(catalogue.for_processor("deep_swapper").len(), 157);
        assert_eq!(catalogue.for_processor("face_swapper").len(), 16);
        assert_eq!(catalogue.for_processor("frame_enhancer").len(), 19);
        assert_eq!(catalogue.for_processor("background_remover").len(), 13);
        assert_eq!(catalogue.for_processor("face_enhancer").len(), 9);
    }

    #[test]
    fn entries_carry_facefusion_metadata() {
        let catalogue = catalogue();
        let hyperswap = catalogue.get("hyperswap_1a_256").unwrap();
        assert_eq!(hyperswap.base_name, "models-3.3.0");
        assert_eq!(hyperswap.model_type.as_deref(), Some("hyperswap"));
        assert_eq!(hyperswap.template.as_deref(), Some("arcface_128"));
        assert_eq!(hyperswap.size, Some([256, 256]));
        assert_eq!(hyperswap.mean, Some([0.5; 3]));
        assert_eq!(hyperswap.pixel_boost_sizes, vec![256, 512, 768, 1024]);

        let detector = catalogue.get("yoloface_8n").unwrap();
        assert_eq!(detector.choices, vec!["yolo_face"]);
        assert_eq!(detector.bytes, Some(12_659_761));

        let enhancer = catalogue.get("ultra_sharp_2_x4").unwrap();
        assert_eq!(enhancer.tile, Some(Tile { size: 1024, pad: 64, overlap: 32 }));
        assert_eq!(enhancer.scale, Some(4));

        let generator = catalogue.get("live_portrait_generator").unwrap();
        assert_eq!(generator.template_for("expression_restorer"), Some("arcface_128"));
        assert_eq!(generator.template_for("face_editor"), Some("ffhq_512"));

        let deep = catalogue.get("iperov/elon_musk_224").unwrap();
        assert_eq!(deep.url_file_name(), "elon_musk_224.dfm");
        assert_eq!(deep.hash_url_file_name(), "elon_musk_224.hash");
        assert_eq!(deep.base_name, "deepfacelive-models-iperov");
        assert!(deep.served_by("huggingface") && !deep.served_by("github"));
        assert_eq!(catalogue.get("druuzil/adam_levine_320").unwrap().download_scope, DownloadScope::Full);
    }

    #[test]
    fn resolve_expands_choices_modules_and_scope() {
        let catalogue = catalogue();
        let names = |found: Vec<&ModelEntry>| found.into_iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(catalogue.resolve("ghost_1_256", DownloadScope::Lite)), ["ghost_1_256", "crossface_ghost"]);
        assert_eq!(names(catalogue.resolve("yolo_face", DownloadScope::Lite)), ["yoloface_8n"]);
        assert_eq!(catalogue.resolve("live_portrait", DownloadScope::Lite).len(), 6);
        assert_eq!(catalogue.for_choice("expression_restorer", "live_portrait").len(), 3);
        assert_eq!(catalogue.resolve("deep_swapper", DownloadScope::Lite).len(), 24);
        assert_eq!(catalogue.resolve("deep_swapper", DownloadScope::Full).len(), 157);
        assert_eq!(catalogue.resolve("druuzil/adam_levine_320", DownloadScope::Lite).len(), 1);
        assert_eq!(catalogue.resolve("all", DownloadScope::Lite).len(), 249 - 133);
        assert!(catalogue.resolve("no_such_model", DownloadScope::Full).is_empty());
    }

    #[test]
    fn parse_rejects_unsafe_paths_and_duplicates() {
        let with_models = |models: &str| {
            format!(
                r#"{{"facefusion_version": "3.5.3", "providers": [{{"name": "x", "url": "http://x/{{base_name}}/{{file_name}}"}}], "models": [{models}]}}"#
            )
        };
        let entry = |name: &str, file: &str| {
            format!(
                r#"{{"name": "{name}", "file": "{file}", "hash_file": "{name}.hash", "base_name": "b", "modules": ["m"], "choices": [], "role": "r"}}"#
            )
        };
        assert!(Catalogue::parse(&with_models(&entry("a", "a.onnx"))).is_ok());
        assert!(Catalogue::parse(&with_models(&entry("a", "../a.onnx"))).is_err());
        assert!(Catalogue::parse(&with_models(&entry("a", "/etc/a.onnx"))).is_err());
        let twice = format!("{},{}", entry("a", "a.onnx"), entry("a", "b.onnx"));
        assert!(Catalogue::parse(&with_models(&twice)).is_err());
    }
}
