//! FaceFusion 3.5.3's options: one table of names, defaults and ranges that the CLI, the HTTP API
//! and `/processors` all read, and the typed, validated `ProcessOptions` built from it.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::deep_swapper_models::DEEP_SWAPPER_MODELS;
use crate::error::{PipelineError, Result};
use crate::mapping_option::{self, FaceMapping};
use crate::processor::Processor;

/// How an option's value is written and checked.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptionKind {
    /// One value out of `choices`.
    Choice {
        choices: &'static [&'static str],
    },
    /// Any number of values out of `choices`.
    Choices {
        choices: &'static [&'static str],
    },
    Float {
        min: f64,
        max: f64,
        step: f64,
    },
    Int {
        min: i64,
        max: i64,
    },
    /// 1 to 4 integers in 0..=100, expanded CSS-style (top, right, bottom, left).
    Sides,
    /// 1 to 4 integers in 0..=255 (red, green, blue, alpha), expanded as FaceFusion does: one value is
    /// a grey, two alternate, three are opaque RGB.
    Color,
    /// A switch without a value.
    Flag,
    /// Free text (paths and the like).
    Text,
}

/// Where an option stands in this engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Implemented with FaceFusion's semantics.
    Supported,
    /// Accepted for command-line compatibility but has no effect here (the reason says why).
    Ignored(&'static str),
}

#[derive(Clone, Debug, Serialize)]
pub struct OptionSpec {
    /// FaceFusion's name in snake_case; the CLI flag is the kebab-case form.
    pub name: &'static str,
    /// The processor the option belongs to, or `None` for options shared by all.
    pub processor: Option<&'static str>,
    pub kind: OptionKind,
    /// FaceFusion's default as it would be typed on the command line; empty for none.
    pub default: &'static str,
    pub support: Support,
    pub help: &'static str,
}

/// The names of [`Processor::ALL`], for the option table's choices.
pub const PROCESSORS: &[&str] = &[
    "age_modifier",
    "background_remover",
    "deep_swapper",
    "expression_restorer",
    "face_debugger",
    "face_editor",
    "face_enhancer",
    "face_swapper",
    "frame_colorizer",
    "frame_enhancer",
    "lip_syncer",
];

pub const AGE_MODIFIER_MODELS: &[&str] = &["styleganex_age"];

pub const LIVE_PORTRAIT_MODELS: &[&str] = &["live_portrait"];

pub const EXPRESSION_RESTORER_AREAS: &[&str] = &["upper-face", "lower-face"];

pub const FRAME_COLORIZER_MODELS: &[&str] =
    &["ddcolor", "ddcolor_artistic", "deoldify", "deoldify_artistic", "deoldify_stable"];

pub const FRAME_COLORIZER_SIZES: &[&str] = &["192x192", "256x256", "384x384", "512x512"];

pub const BACKGROUND_REMOVER_MODELS: &[&str] = &[
    "ben_2",
    "birefnet_general",
    "birefnet_portrait",
    "isnet_general",
    "modnet",
    "ormbg",
    "rmbg_1.4",
    "rmbg_2.0",
    "silueta",
    "u2net_cloth",
    "u2net_general",
    "u2net_human",
    "u2netp",
];

/// The prefix of deep swapper models a user drops into the models directory's `custom/` folder.
pub const CUSTOM_MODEL_PREFIX: &str = "custom/";

pub const FACE_ENHANCER_MODELS: &[&str] = &[
    "codeformer",
    "gfpgan_1.2",
    "gfpgan_1.3",
    "gfpgan_1.4",
    "gpen_bfr_256",
    "gpen_bfr_512",
    "gpen_bfr_1024",
    "gpen_bfr_2048",
    "restoreformer_plus_plus",
];

/// FaceFusion's `frame_enhancer_models` minus `lsdir_x4`, which 3.5.3 lists as a choice but has no
/// model entry for (selecting it crashes FaceFusion), so offering it would only fail later.
pub const LIP_SYNCER_MODELS: &[&str] = &["edtalk_256", "wav2lip_96", "wav2lip_gan_96"];

pub const VOICE_EXTRACTOR_MODELS: &[&str] = &["kim_vocal_1", "kim_vocal_2", "uvr_mdxnet"];

pub const FRAME_ENHANCER_MODELS: &[&str] = &[
    "clear_reality_x4",
    "face_dat_x4",
    "nomos8k_sc_x4",
    "real_esrgan_x2",
    "real_esrgan_x2_fp16",
    "real_esrgan_x4",
    "real_esrgan_x4_fp16",
    "real_esrgan_x8",
    "real_esrgan_x8_fp16",
    "real_hatgan_x4",
    "real_web_photo_x4",
    "realistic_rescaler_x4",
    "remacri_x4",
    "siax_x4",
    "span_kendata_x4",
    "swin2_sr_x4",
    "tghq_face_x8",
    "ultra_sharp_x4",
    "ultra_sharp_2_x4",
];

/// FaceFusion's `output_video_encoders`, in its preference order (the local ffmpeg decides which work).
pub const VIDEO_ENCODERS: &[&str] = &[
    "libx264",
    "libx264rgb",
    "libx265",
    "libvpx-vp9",
    "h264_nvenc",
    "hevc_nvenc",
    "h264_amf",
    "hevc_amf",
    "h264_qsv",
    "hevc_qsv",
    "h264_videotoolbox",
    "hevc_videotoolbox",
    "rawvideo",
];

/// FaceFusion's `output_audio_encoders`.
pub const AUDIO_ENCODERS: &[&str] = &["flac", "aac", "libmp3lame", "libopus", "libvorbis", "pcm_s16le", "pcm_s32le"];

pub const VIDEO_PRESETS: &[&str] =
    &["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"];

pub const FACE_DEBUGGER_ITEMS: &[&str] =
    &["bounding-box", "face-landmark-5", "face-landmark-5/68", "face-landmark-68", "face-landmark-68/5", "face-mask"];

pub const FACE_SWAPPER_MODELS: &[&str] = &[
    "blendswap_256",
    "ghost_1_256",
    "ghost_2_256",
    "ghost_3_256",
    "hififace_unofficial_256",
    "hyperswap_1a_256",
    "hyperswap_1b_256",
    "hyperswap_1c_256",
    "inswapper_128",
    "inswapper_128_fp16",
    "simswap_256",
    "simswap_unofficial_512",
    "uniface_256",
];

const DETECTOR_SIZES: &[&str] = &["160x160", "320x320", "480x480", "512x512", "640x640"];
const PIXEL_BOOSTS: &[&str] = &["128x128", "256x256", "384x384", "512x512", "768x768", "1024x1024"];
const ORDERS: &[&str] =
    &["left-right", "right-left", "top-bottom", "bottom-top", "small-large", "large-small", "best-worst", "worst-best"];
const MASK_REGIONS: &[&str] = &[
    "skin",
    "left-eyebrow",
    "right-eyebrow",
    "left-eye",
    "right-eye",
    "glasses",
    "nose",
    "mouth",
    "upper-lip",
    "lower-lip",
];
const MASK_AREAS: &[&str] = &["upper-face", "lower-face", "mouth"];
const RACES: &[&str] = &["white", "black", "latino", "asian", "indian", "arabic"];

const fn opt(name: &'static str, kind: OptionKind, default: &'static str, help: &'static str) -> OptionSpec {
    OptionSpec { name, processor: None, kind, default, support: Support::Supported, help }
}

const fn ignored(name: &'static str, kind: OptionKind, default: &'static str, why: &'static str) -> OptionSpec {
    OptionSpec { name, processor: None, kind, default, support: Support::Ignored(why), help: why }
}

const fn swapper(name: &'static str, kind: OptionKind, default: &'static str, help: &'static str) -> OptionSpec {
    OptionSpec { name, processor: Some("face_swapper"), kind, default, support: Support::Supported, help }
}

const fn processor(
    processor: &'static str,
    name: &'static str,
    kind: OptionKind,
    default: &'static str,
    help: &'static str,
) -> OptionSpec {
    OptionSpec { name, processor: Some(processor), kind, default, support: Support::Supported, help }
}

/// One of the face editor's sliders: −1..1 in steps of 0.05, 0 leaves the face as it is.
const fn editor(name: &'static str, help: &'static str) -> OptionSpec {
    processor("face_editor", name, float(-1.0, 1.0, 0.05), "0", help)
}

const fn float(min: f64, max: f64, step: f64) -> OptionKind {
    OptionKind::Float { min, max, step }
}

/// Every option `ff process` and `POST /api/v1/process` accept, in FaceFusion's order.
pub static OPTIONS: &[OptionSpec] = &[
    opt("processors", OptionKind::Choices { choices: PROCESSORS }, "face_swapper", "processors to run, in order"),
    opt(
        "face_detector_model",
        OptionKind::Choice { choices: &["many", "retinaface", "scrfd", "yolo_face", "yunet"] },
        "yolo_face",
        "face detector",
    ),
    opt(
        "face_detector_size",
        OptionKind::Choice { choices: DETECTOR_SIZES },
        "640x640",
        "detector input size (retinaface/scrfd accept all, the others 640x640)",
    ),
    opt(
        "face_detector_margin",
        OptionKind::Sides,
        "0 0 0 0",
        "zero padding around the frame before detection, percent of 0.5·side (top right bottom left)",
    ),
    opt(
        "face_detector_angles",
        OptionKind::Choices { choices: &["0", "90", "180", "270"] },
        "0",
        "rotations the detector also tries",
    ),
    opt("face_detector_score", float(0.0, 1.0, 0.05), "0.5", "minimum detector score"),
    opt(
        "face_landmarker_model",
        OptionKind::Choice { choices: &["many", "2dfan4", "peppa_wutz"] },
        "2dfan4",
        "68-point landmarker",
    ),
    opt(
        "face_landmarker_score",
        float(0.0, 1.0, 0.05),
        "0.5",
        "minimum landmarker score to trust its points (0 disables it)",
    ),
    opt(
        "face_selector_mode",
        OptionKind::Choice { choices: &["many", "one", "reference"] },
        "reference",
        "which target faces to process",
    ),
    opt("face_selector_order", OptionKind::Choice { choices: ORDERS }, "large-small", "face order"),
    opt(
        "face_selector_age_start",
        OptionKind::Int { min: 0, max: 100 },
        "",
        "keep faces whose age range reaches this age",
    ),
    opt(
        "face_selector_age_end",
        OptionKind::Int { min: 0, max: 100 },
        "",
        "keep faces whose age range starts before this age",
    ),
    opt("face_selector_gender", OptionKind::Choice { choices: &["female", "male"] }, "", "keep faces of this gender"),
    opt("face_selector_race", OptionKind::Choice { choices: RACES }, "", "keep faces of this race"),
    opt(
        "reference_face_position",
        OptionKind::Int { min: 0, max: i64::MAX },
        "0",
        "position of the reference face in the reference frame",
    ),
    opt("reference_face_distance", float(0.0, 1.0, 0.05), "0.3", "maximum distance to the reference face"),
    opt(
        "face_mappings",
        OptionKind::Text,
        "",
        "ff only: JSON list of {\"source\": index | [indices], \"target\": person id | embedding | {\"frame\", \"position\"}}; each mapped person gets their own source, other faces are left alone",
    ),
    opt(
        "reference_frame_number",
        OptionKind::Int { min: 0, max: i64::MAX },
        "0",
        "frame of a video target to take the reference face from",
    ),
    opt(
        "face_tracker_score",
        float(0.0, 0.5, 0.05),
        "0",
        "video: link faces across ±2 frames by box overlap above this score and refill faces the detector \
         missed (FaceFusion 3.7's tracker; 0 = off)",
    ),
    opt(
        "face_detector_interval",
        OptionKind::Int { min: 1, max: 10 },
        "1",
        "video: run the detector every N frames and follow the faces between with the landmarker (ff's fast \
         mode; 1 = every frame)",
    ),
    opt(
        "face_occluder_model",
        OptionKind::Choice { choices: &["many", "xseg_1", "xseg_2", "xseg_3"] },
        "xseg_1",
        "occlusion mask model",
    ),
    opt(
        "face_parser_model",
        OptionKind::Choice { choices: &["bisenet_resnet_18", "bisenet_resnet_34"] },
        "bisenet_resnet_34",
        "region mask model",
    ),
    opt(
        "face_mask_types",
        OptionKind::Choices { choices: &["box", "occlusion", "area", "region"] },
        "box",
        "masks combined by minimum",
    ),
    opt(
        "face_mask_areas",
        OptionKind::Choices { choices: MASK_AREAS },
        "upper-face lower-face mouth",
        "areas of the area mask",
    ),
    opt(
        "face_mask_regions",
        OptionKind::Choices { choices: MASK_REGIONS },
        "skin left-eyebrow right-eyebrow left-eye right-eye glasses nose mouth upper-lip lower-lip",
        "regions of the region mask",
    ),
    opt("face_mask_blur", float(0.0, 1.0, 0.05), "0.3", "box mask blur"),
    opt("face_mask_padding", OptionKind::Sides, "0 0 0 0", "box mask padding in percent (top right bottom left)"),
    opt("output_image_quality", OptionKind::Int { min: 0, max: 100 }, "80", "JPEG/WebP output quality"),
    opt("output_image_scale", float(0.25, 8.0, 0.25), "1.0", "output size relative to the target"),
    opt(
        "trim_frame_start",
        OptionKind::Int { min: 0, max: i64::MAX },
        "",
        "first frame of a video target to process (clamped to the frame count)",
    ),
    opt(
        "trim_frame_end",
        OptionKind::Int { min: 0, max: i64::MAX },
        "",
        "frame of a video target to stop before (default: the frame count)",
    ),
    opt(
        "output_audio_encoder",
        OptionKind::Choice { choices: AUDIO_ENCODERS },
        "",
        "audio encoder (default: aac, fixed per container as FaceFusion does; FaceFusion's own default, \
         the first available (flac), is refused in MP4 and silently loses the audio)",
    ),
    opt("output_audio_quality", OptionKind::Int { min: 0, max: 100 }, "80", "audio quality"),
    opt("output_audio_volume", OptionKind::Int { min: 0, max: 100 }, "100", "audio volume, percent; 0 drops the audio"),
    opt(
        "output_video_encoder",
        OptionKind::Choice { choices: VIDEO_ENCODERS },
        "",
        "video encoder (default: the first of these the local ffmpeg offers)",
    ),
    opt("output_video_preset", OptionKind::Choice { choices: VIDEO_PRESETS }, "veryfast", "encoder speed preset"),
    opt("output_video_quality", OptionKind::Int { min: 0, max: 100 }, "80", "video quality, mapped to CRF/CQ"),
    opt("output_video_scale", float(0.25, 8.0, 0.25), "1.0", "output size relative to the target"),
    opt(
        "output_video_fps",
        float(0.0, 1000.0, 0.01),
        "",
        "output frame rate, clamped to 1..60 (default: the target's)",
    ),
    swapper(
        "face_swapper_model",
        OptionKind::Choice { choices: FACE_SWAPPER_MODELS },
        "hyperswap_1a_256",
        "face swapper model",
    ),
    swapper(
        "face_swapper_pixel_boost",
        OptionKind::Choice { choices: PIXEL_BOOSTS },
        "",
        "swap at this crop size (default: the model's native size)",
    ),
    swapper(
        "face_swapper_weight",
        float(0.0, 1.0, 0.05),
        "0.5",
        "0 pulls the identity towards the target, 1 away from it",
    ),
    processor(
        "face_enhancer",
        "face_enhancer_model",
        OptionKind::Choice { choices: FACE_ENHANCER_MODELS },
        "gfpgan_1.4",
        "face enhancer model",
    ),
    processor(
        "face_enhancer",
        "face_enhancer_blend",
        OptionKind::Int { min: 0, max: 100 },
        "80",
        "how much of the enhanced face is blended over the frame, percent",
    ),
    processor(
        "face_enhancer",
        "face_enhancer_weight",
        float(0.0, 1.0, 0.05),
        "0.5",
        "fidelity weight of models with a weight input (codeformer)",
    ),
    processor(
        "frame_enhancer",
        "frame_enhancer_model",
        OptionKind::Choice { choices: FRAME_ENHANCER_MODELS },
        "span_kendata_x4",
        "frame upscaler model",
    ),
    processor(
        "frame_enhancer",
        "frame_enhancer_blend",
        OptionKind::Int { min: 0, max: 100 },
        "80",
        "how much of the upscaled frame is blended over the resized original, percent",
    ),
    processor(
        "lip_syncer",
        "lip_syncer_model",
        OptionKind::Choice { choices: LIP_SYNCER_MODELS },
        "wav2lip_gan_96",
        "lip syncer model",
    ),
    processor(
        "lip_syncer",
        "lip_syncer_weight",
        float(0.0, 1.0, 0.05),
        "0.5",
        "how strongly the mouth follows the speech (0.5 is neutral)",
    ),
    processor(
        "lip_syncer",
        "voice_extractor_model",
        OptionKind::Choice { choices: VOICE_EXTRACTOR_MODELS },
        "kim_vocal_2",
        "separates the voice from the source audio before the mel spectrogram",
    ),
    processor(
        "age_modifier",
        "age_modifier_model",
        OptionKind::Choice { choices: AGE_MODIFIER_MODELS },
        "styleganex_age",
        "age modifier model",
    ),
    processor(
        "age_modifier",
        "age_modifier_direction",
        OptionKind::Int { min: -100, max: 100 },
        "0",
        "negative makes the face younger, positive older",
    ),
    processor(
        "background_remover",
        "background_remover_model",
        OptionKind::Choice { choices: BACKGROUND_REMOVER_MODELS },
        "rmbg_2.0",
        "background matting model",
    ),
    processor(
        "background_remover",
        "background_remover_color",
        OptionKind::Color,
        "0 0 0 0",
        "what replaces the background, R G B A; the matte also becomes the output's alpha where the format \
         has one (PNG, WebP, webm)",
    ),
    processor(
        "deep_swapper",
        "deep_swapper_model",
        OptionKind::Choice { choices: DEEP_SWAPPER_MODELS },
        "iperov/elon_musk_224",
        "DeepFaceLive model, or custom/<file stem> for a .dfm in the models directory's custom/ folder",
    ),
    processor(
        "deep_swapper",
        "deep_swapper_morph",
        OptionKind::Int { min: 0, max: 100 },
        "100",
        "how far the face is morphed towards the model's identity, percent",
    ),
    processor(
        "expression_restorer",
        "expression_restorer_model",
        OptionKind::Choice { choices: LIVE_PORTRAIT_MODELS },
        "live_portrait",
        "expression restorer model",
    ),
    processor(
        "expression_restorer",
        "expression_restorer_factor",
        OptionKind::Int { min: 0, max: 100 },
        "80",
        "how much of the target's original expression comes back, percent",
    ),
    processor(
        "expression_restorer",
        "expression_restorer_areas",
        OptionKind::Choices { choices: EXPRESSION_RESTORER_AREAS },
        "upper-face lower-face",
        "face areas whose expression is restored",
    ),
    processor(
        "face_editor",
        "face_editor_model",
        OptionKind::Choice { choices: LIVE_PORTRAIT_MODELS },
        "live_portrait",
        "face editor model",
    ),
    editor("face_editor_eyebrow_direction", "raise (+) or lower (−) the eyebrows"),
    editor("face_editor_eye_gaze_horizontal", "look right (+) or left (−)"),
    editor("face_editor_eye_gaze_vertical", "look up (+) or down (−)"),
    editor("face_editor_eye_open_ratio", "open (+) or close (−) the eyes"),
    editor("face_editor_lip_open_ratio", "open (+) or close (−) the lips"),
    editor("face_editor_mouth_grim", "grim mouth"),
    editor("face_editor_mouth_pout", "pouting mouth"),
    editor("face_editor_mouth_purse", "pursed mouth"),
    editor("face_editor_mouth_smile", "smile (+) or frown (−)"),
    editor("face_editor_mouth_position_horizontal", "move the mouth sideways"),
    editor("face_editor_mouth_position_vertical", "move the mouth up or down"),
    editor("face_editor_head_pitch", "tilt the head up or down"),
    editor("face_editor_head_yaw", "turn the head sideways"),
    editor("face_editor_head_roll", "roll the head"),
    processor(
        "frame_colorizer",
        "frame_colorizer_model",
        OptionKind::Choice { choices: FRAME_COLORIZER_MODELS },
        "ddcolor",
        "colorizer model",
    ),
    processor(
        "frame_colorizer",
        "frame_colorizer_size",
        OptionKind::Choice { choices: FRAME_COLORIZER_SIZES },
        "256x256",
        "size the frame is colorized at",
    ),
    processor(
        "frame_colorizer",
        "frame_colorizer_blend",
        OptionKind::Int { min: 0, max: 100 },
        "100",
        "how much of the colorized frame is blended over the original, percent",
    ),
    processor(
        "face_debugger",
        "face_debugger_items",
        OptionKind::Choices { choices: FACE_DEBUGGER_ITEMS },
        "face-landmark-5/68 face-mask",
        "what the debugger draws on each face",
    ),
    ignored(
        "execution_providers",
        OptionKind::Choices { choices: &["cpu"] },
        "cpu",
        "this engine runs on the CPU execution provider only",
    ),
    ignored("execution_device_ids", OptionKind::Text, "0", "no GPU devices on CPU"),
    ignored(
        "execution_thread_count",
        OptionKind::Int { min: 1, max: 32 },
        "8",
        "set by the host (FF_EXECUTION_THREAD_COUNT), not per request",
    ),
    ignored(
        "video_memory_strategy",
        OptionKind::Choice { choices: &["strict", "moderate", "tolerant"] },
        "strict",
        "set by the host (FF_VIDEO_MEMORY_STRATEGY)",
    ),
    ignored("system_memory_limit", OptionKind::Int { min: 0, max: 128 }, "0", "set by the host"),
    ignored(
        "log_level",
        OptionKind::Choice { choices: &["error", "warn", "info", "debug"] },
        "info",
        "logging is configured with RUST_LOG",
    ),
    ignored("temp_path", OptionKind::Text, "", "frames are streamed in memory; nothing is written to a temp dir"),
    ignored(
        "temp_frame_format",
        OptionKind::Choice { choices: &["bmp", "jpeg", "png", "tiff"] },
        "png",
        "frames are streamed in memory; there are no temp frames",
    ),
    ignored("keep_temp", OptionKind::Flag, "", "there is no temp dir to keep"),
    ignored("halt_on_error", OptionKind::Flag, "", "a single run always stops at the first error"),
    ignored(
        "download_providers",
        OptionKind::Choices { choices: &["github", "huggingface"] },
        "github huggingface",
        "both providers are tried in order",
    ),
    ignored(
        "download_scope",
        OptionKind::Choice { choices: &["lite", "full"] },
        "lite",
        "models are downloaded on demand",
    ),
];

pub fn spec(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.name == name)
}

/// Whether the option's value is free text (JSON for `face_mappings`), kept whole: other values
/// are split on whitespace, as FaceFusion's command line splits lists.
pub fn is_free_text(name: &str) -> bool {
    spec(name).is_some_and(|spec| matches!(spec.kind, OptionKind::Text))
}

/// The option's canonical name: kebab-case and leading dashes are accepted.
pub fn canonical_name(name: &str) -> String {
    name.trim_start_matches('-').replace('-', "_")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectorModel {
    Many,
    Retinaface,
    Scrfd,
    YoloFace,
    Yunet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandmarkerModel {
    Many,
    Fan2d4,
    PeppaWutz,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorMode {
    Many,
    One,
    Reference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaceOrder {
    LeftRight,
    RightLeft,
    TopBottom,
    BottomTop,
    SmallLarge,
    LargeSmall,
    BestWorst,
    WorstBest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Race {
    White,
    Black,
    Latino,
    Asian,
    Indian,
    Arabic,
}

impl Gender {
    /// The option value that selects it (`face_selector_gender`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
        }
    }
}

impl Race {
    /// The option value that selects it (`face_selector_race`).
    pub fn name(self) -> &'static str {
        RACES[self as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskType {
    Box,
    Occlusion,
    Area,
    Region,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DetectorOptions {
    pub model: DetectorModel,
    pub size: usize,
    /// top, right, bottom, left, percent.
    pub margin: [u32; 4],
    pub angles: Vec<u32>,
    pub score: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LandmarkerOptions {
    pub model: LandmarkerModel,
    pub score: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SelectorOptions {
    pub mode: SelectorMode,
    pub order: FaceOrder,
    pub age_start: Option<u32>,
    pub age_end: Option<u32>,
    pub gender: Option<Gender>,
    pub race: Option<Race>,
    pub reference_face_position: usize,
    pub reference_face_distance: f32,
    pub reference_frame_number: usize,
}

/// How a video's faces are followed from frame to frame (not in FaceFusion 3.5.3).
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerOptions {
    /// FaceFusion 3.7's `--face-tracker-score`: the box overlap that links faces; 0 is off.
    pub score: f32,
    /// Frames per detection; the faces of the frames between follow the last detection.
    pub detector_interval: usize,
}

impl TrackerOptions {
    /// Whether a video's faces are analysed ahead of processing, for the tracker or the interval.
    pub fn active(&self) -> bool {
        self.score > 0.0 || self.detector_interval > 1
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MaskOptions {
    pub types: Vec<MaskType>,
    pub occluder_model: String,
    pub parser_model: String,
    pub areas: Vec<String>,
    pub regions: Vec<String>,
    pub blur: f32,
    /// top, right, bottom, left, percent.
    pub padding: [u32; 4],
}

#[derive(Clone, Debug, PartialEq)]
pub struct SwapperOptions {
    pub model: String,
    /// Crop size the swap runs at; a multiple of the model's native size.
    pub pixel_boost: usize,
    pub weight: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaceEnhancerOptions {
    pub model: String,
    /// 0..=100.
    pub blend: u8,
    pub weight: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FrameEnhancerOptions {
    pub model: String,
    /// 0..=100.
    pub blend: u8,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LipSyncerOptions {
    pub model: String,
    /// 0..=1; wav2lip scales its audio input by 2·weight, edtalk takes it as an input.
    pub weight: f32,
    /// The MDX-Net model that isolates the voice before the mel spectrogram.
    pub voice_extractor_model: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgeModifierOptions {
    pub model: String,
    /// −100..=100: negative younger, positive older.
    pub direction: f32,
}

/// The face areas whose original expression the expression restorer brings back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestorerArea {
    UpperFace,
    LowerFace,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExpressionRestorerOptions {
    pub model: String,
    /// 0..=100.
    pub factor: f32,
    pub areas: Vec<RestorerArea>,
}

/// The face editor's sliders, each −1..=1 (0 leaves that feature alone).
#[derive(Clone, Debug, PartialEq)]
pub struct FaceEditorOptions {
    pub model: String,
    pub eyebrow_direction: f32,
    pub eye_gaze_horizontal: f32,
    pub eye_gaze_vertical: f32,
    pub eye_open_ratio: f32,
    pub lip_open_ratio: f32,
    pub mouth_grim: f32,
    pub mouth_pout: f32,
    pub mouth_purse: f32,
    pub mouth_smile: f32,
    pub mouth_position_horizontal: f32,
    pub mouth_position_vertical: f32,
    pub head_pitch: f32,
    pub head_yaw: f32,
    pub head_roll: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeepSwapperOptions {
    /// A catalogue id (`iperov/elon_musk_224`) or `custom/<stem>`.
    pub model: String,
    /// 0..=100.
    pub morph: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FrameColorizerOptions {
    pub model: String,
    /// The square side the model runs at.
    pub size: usize,
    /// 0..=100.
    pub blend: u8,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BackgroundRemoverOptions {
    pub model: String,
    /// Red, green, blue, alpha.
    pub color: [u8; 4],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebuggerItem {
    BoundingBox,
    Landmark5,
    Landmark5From68,
    Landmark68,
    Landmark68From5,
    FaceMask,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputOptions {
    pub image_quality: u8,
    pub image_scale: f32,
    pub video: VideoOutputOptions,
}

/// The video target options (spec §2.4). Encoder names are checked against the local ffmpeg when a
/// video runs, since which exist depends on its build.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoOutputOptions {
    pub trim_frame_start: Option<u64>,
    pub trim_frame_end: Option<u64>,
    /// `None`: the first encoder of FaceFusion's list the local ffmpeg has.
    pub video_encoder: Option<String>,
    pub video_preset: String,
    /// 0..=100.
    pub video_quality: u8,
    pub video_scale: f32,
    /// As given (FaceFusion clamps it to 1..60 when used); `None` keeps the target's fps.
    pub video_fps: Option<f64>,
    /// `None`: aac (see the option's help).
    pub audio_encoder: Option<String>,
    /// 0..=100.
    pub audio_quality: u8,
    /// 0..=100; 0 drops the audio.
    pub audio_volume: u8,
}

/// Validated, typed options for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessOptions {
    /// In the order they run; validated, so only processors this engine has.
    pub processors: Vec<Processor>,
    /// ff's source-to-person mappings; empty: FaceFusion's selection and one averaged source.
    pub face_mappings: Vec<FaceMapping>,
    pub detector: DetectorOptions,
    pub landmarker: LandmarkerOptions,
    pub selector: SelectorOptions,
    pub tracker: TrackerOptions,
    pub masks: MaskOptions,
    pub swapper: SwapperOptions,
    pub face_enhancer: FaceEnhancerOptions,
    pub frame_enhancer: FrameEnhancerOptions,
    pub lip_syncer: LipSyncerOptions,
    pub debugger_items: Vec<DebuggerItem>,
    pub age_modifier: AgeModifierOptions,
    pub expression_restorer: ExpressionRestorerOptions,
    pub face_editor: FaceEditorOptions,
    pub deep_swapper: DeepSwapperOptions,
    pub frame_colorizer: FrameColorizerOptions,
    pub background_remover: BackgroundRemoverOptions,
    pub output: OutputOptions,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self::from_pairs(&[]).expect("FaceFusion's defaults are valid")
    }
}

impl ProcessOptions {
    /// Whether `processor` is among the processors to run.
    pub fn uses(&self, processor: Processor) -> bool {
        self.processors.contains(&processor)
    }

    /// Whether any processor to run works on faces (and so needs face analysis).
    pub fn uses_faces(&self) -> bool {
        self.processors.iter().any(|processor| processor.works_on_faces())
    }

    /// From (name, values) pairs; names in FaceFusion's snake_case or kebab-case form. An option given
    /// twice keeps its last value, as argparse does.
    pub fn from_pairs(pairs: &[(String, Vec<String>)]) -> Result<Self> {
        let mut values = RawValues::defaults();
        for (name, given) in pairs {
            values.set(&canonical_name(name), given.clone())?;
        }
        values.into_options()
    }

    /// From a JSON object of FaceFusion option names to values (strings, numbers, booleans or arrays).
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let object = value.as_object().ok_or_else(|| {
            PipelineError::invalid_option("options", "must be a JSON object of option names to values")
        })?;
        let pairs = object
            .iter()
            .map(|(name, value)| Ok((name.clone(), json_values(name, value)?)))
            .collect::<Result<Vec<_>>>()?;
        Self::from_pairs(&pairs)
    }
}

fn json_values(name: &str, value: &serde_json::Value) -> Result<Vec<String>> {
    use serde_json::Value;
    if is_free_text(&canonical_name(name)) {
        // Free text stays whole; a JSON value (face mappings as an array) is kept as its text.
        return Ok(match value {
            Value::Null => Vec::new(),
            Value::String(text) => vec![text.clone()],
            other => vec![other.to_string()],
        });
    }
    let scalar = |value: &Value| match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(PipelineError::invalid_option(name, "expected a string, number, boolean or array of them")),
    };
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        Value::String(text) => Ok(text.split_whitespace().map(str::to_string).collect()),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![scalar(other)?]),
    }
}

/// Option values as text, defaults first, each checked against its spec when set.
struct RawValues(BTreeMap<&'static str, Vec<String>>);

impl RawValues {
    fn defaults() -> Self {
        let map = OPTIONS
            .iter()
            .map(|spec| (spec.name, spec.default.split_whitespace().map(str::to_string).collect()))
            .collect();
        Self(map)
    }

    fn set(&mut self, name: &str, given: Vec<String>) -> Result<()> {
        let Some(spec) = spec(name) else {
            return Err(unknown_option(name));
        };
        // A single form field may carry a space-separated list.
        let given: Vec<String> = given.iter().flat_map(|v| v.split_whitespace()).map(str::to_string).collect();
        check_value(spec, &given)?;
        self.0.insert(spec.name, given);
        Ok(())
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|values| values.first()).map(String::as_str)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn float(&self, name: &str) -> f32 {
        self.one(name).and_then(|v| v.parse().ok()).unwrap_or_default()
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.one(name).and_then(|v| v.parse().ok())
    }

    fn sides(&self, name: &str) -> [u32; 4] {
        let numbers: Vec<u32> = self.list(name).iter().filter_map(|v| v.parse().ok()).collect();
        expand_sides(&numbers)
    }

    /// A single-valued option's text; the table gives every such option a default.
    fn text(&self, name: &str) -> String {
        self.one(name).unwrap_or_default().to_string()
    }

    fn face_editor(&self) -> FaceEditorOptions {
        let slider = |name: &str| self.float(&format!("face_editor_{name}"));
        FaceEditorOptions {
            model: self.text("face_editor_model"),
            eyebrow_direction: slider("eyebrow_direction"),
            eye_gaze_horizontal: slider("eye_gaze_horizontal"),
            eye_gaze_vertical: slider("eye_gaze_vertical"),
            eye_open_ratio: slider("eye_open_ratio"),
            lip_open_ratio: slider("lip_open_ratio"),
            mouth_grim: slider("mouth_grim"),
            mouth_pout: slider("mouth_pout"),
            mouth_purse: slider("mouth_purse"),
            mouth_smile: slider("mouth_smile"),
            mouth_position_horizontal: slider("mouth_position_horizontal"),
            mouth_position_vertical: slider("mouth_position_vertical"),
            head_pitch: slider("head_pitch"),
            head_yaw: slider("head_yaw"),
            head_roll: slider("head_roll"),
        }
    }

    fn into_options(self) -> Result<ProcessOptions> {
        let processors: Vec<Processor> =
            self.list("processors").iter().filter_map(|name| Processor::from_name(name)).collect();
        if processors.is_empty() {
            return Err(PipelineError::invalid_option("processors", "at least one processor is required"));
        }
        let swapper_model = self.one("face_swapper_model").unwrap_or("hyperswap_1a_256").to_string();
        let pixel_boost = pixel_boost(&swapper_model, self.one("face_swapper_pixel_boost"))?;
        let detector = DetectorOptions {
            model: detector_model(self.one("face_detector_model").unwrap_or("yolo_face")),
            size: detector_size(self.one("face_detector_model"), self.one("face_detector_size"))?,
            margin: self.sides("face_detector_margin"),
            angles: self.list("face_detector_angles").iter().filter_map(|v| v.parse().ok()).collect(),
            score: self.float("face_detector_score"),
        };
        let (age_start, age_end) = (self.int("face_selector_age_start"), self.int("face_selector_age_end"));
        let selector = SelectorOptions {
            mode: match self.one("face_selector_mode") {
                Some("many") => SelectorMode::Many,
                Some("one") => SelectorMode::One,
                _ => SelectorMode::Reference,
            },
            order: face_order(self.one("face_selector_order").unwrap_or("large-small")),
            age_start: age_start.map(|v| v as u32),
            age_end: age_end.map(|v| v as u32),
            gender: self.one("face_selector_gender").map(|g| if g == "female" { Gender::Female } else { Gender::Male }),
            race: self.one("face_selector_race").map(race),
            reference_face_position: self.int("reference_face_position").unwrap_or(0) as usize,
            reference_face_distance: self.float("reference_face_distance"),
            reference_frame_number: self.int("reference_frame_number").unwrap_or(0) as usize,
        };
        let mask_types = self.list("face_mask_types");
        let masks = MaskOptions {
            types: mask_types.iter().map(|t| mask_type(t)).collect(),
            occluder_model: self.one("face_occluder_model").unwrap_or("xseg_1").to_string(),
            parser_model: self.one("face_parser_model").unwrap_or("bisenet_resnet_34").to_string(),
            areas: self.list("face_mask_areas"),
            regions: self.list("face_mask_regions"),
            blur: self.float("face_mask_blur"),
            padding: self.sides("face_mask_padding"),
        };
        Ok(ProcessOptions {
            face_mappings: mapping_option::parse(&self.list("face_mappings").join(" "))?,
            processors,
            detector,
            landmarker: LandmarkerOptions {
                model: match self.one("face_landmarker_model") {
                    Some("many") => LandmarkerModel::Many,
                    Some("peppa_wutz") => LandmarkerModel::PeppaWutz,
                    _ => LandmarkerModel::Fan2d4,
                },
                score: self.float("face_landmarker_score"),
            },
            selector,
            tracker: TrackerOptions {
                score: self.float("face_tracker_score"),
                detector_interval: self.int("face_detector_interval").unwrap_or(1).max(1) as usize,
            },
            masks,
            swapper: SwapperOptions { model: swapper_model, pixel_boost, weight: self.float("face_swapper_weight") },
            face_enhancer: FaceEnhancerOptions {
                model: self.one("face_enhancer_model").unwrap_or("gfpgan_1.4").to_string(),
                blend: self.int("face_enhancer_blend").unwrap_or(80).clamp(0, 100) as u8,
                weight: self.float("face_enhancer_weight"),
            },
            frame_enhancer: FrameEnhancerOptions {
                model: self.one("frame_enhancer_model").unwrap_or("span_kendata_x4").to_string(),
                blend: self.int("frame_enhancer_blend").unwrap_or(80).clamp(0, 100) as u8,
            },
            lip_syncer: LipSyncerOptions {
                model: self.one("lip_syncer_model").unwrap_or("wav2lip_gan_96").to_string(),
                weight: self.float("lip_syncer_weight"),
                voice_extractor_model: self.one("voice_extractor_model").unwrap_or("kim_vocal_2").to_string(),
            },
            debugger_items: self.list("face_debugger_items").iter().filter_map(|i| debugger_item(i)).collect(),
            age_modifier: AgeModifierOptions {
                model: self.text("age_modifier_model"),
                direction: self.float("age_modifier_direction"),
            },
            expression_restorer: ExpressionRestorerOptions {
                model: self.text("expression_restorer_model"),
                factor: self.float("expression_restorer_factor"),
                areas: self
                    .list("expression_restorer_areas")
                    .iter()
                    .map(|area| if area == "upper-face" { RestorerArea::UpperFace } else { RestorerArea::LowerFace })
                    .collect(),
            },
            face_editor: self.face_editor(),
            deep_swapper: DeepSwapperOptions {
                model: self.text("deep_swapper_model"),
                morph: self.float("deep_swapper_morph"),
            },
            frame_colorizer: FrameColorizerOptions {
                model: self.text("frame_colorizer_model"),
                size: self.one("frame_colorizer_size").and_then(parse_square).unwrap_or(256),
                blend: self.int("frame_colorizer_blend").unwrap_or(100).clamp(0, 100) as u8,
            },
            background_remover: BackgroundRemoverOptions {
                model: self.text("background_remover_model"),
                color: expand_color(
                    &self.list("background_remover_color").iter().filter_map(|v| v.parse().ok()).collect::<Vec<_>>(),
                ),
            },
            output: OutputOptions {
                image_quality: self.int("output_image_quality").unwrap_or(80) as u8,
                image_scale: self.float("output_image_scale"),
                video: VideoOutputOptions {
                    trim_frame_start: self.int("trim_frame_start").map(|v| v.max(0) as u64),
                    trim_frame_end: self.int("trim_frame_end").map(|v| v.max(0) as u64),
                    video_encoder: self.one("output_video_encoder").map(str::to_string),
                    video_preset: self.one("output_video_preset").unwrap_or("veryfast").to_string(),
                    video_quality: self.int("output_video_quality").unwrap_or(80).clamp(0, 100) as u8,
                    video_scale: self.float("output_video_scale"),
                    video_fps: self.one("output_video_fps").and_then(|v| v.parse().ok()),
                    audio_encoder: self.one("output_audio_encoder").map(str::to_string),
                    audio_quality: self.int("output_audio_quality").unwrap_or(80).clamp(0, 100) as u8,
                    audio_volume: self.int("output_audio_volume").unwrap_or(100).clamp(0, 100) as u8,
                },
            },
        })
    }
}

fn unknown_option(name: &str) -> PipelineError {
    if name == "config_path" {
        // An ini file is a file on the machine that runs ff: only its own command line may name one.
        return PipelineError::invalid_option(name, "is read by the `ff process` command line only");
    }
    PipelineError::invalid_option(name, "not a FaceFusion 3.5.3 option")
}

fn check_value(spec: &OptionSpec, given: &[String]) -> Result<()> {
    let fail = |reason: String| Err(PipelineError::invalid_option(spec.name, reason));
    match &spec.kind {
        OptionKind::Flag => match given {
            [] => Ok(()),
            [value] if matches!(value.as_str(), "true" | "false") => Ok(()),
            _ => fail("is a switch and takes no value".into()),
        },
        OptionKind::Text => Ok(()),
        _ if given.is_empty() => fail("needs a value".into()),
        OptionKind::Choice { choices } => match given {
            [value] if choices.contains(&value.as_str()) => Ok(()),
            [value] if spec.name == "deep_swapper_model" && custom_model_stem(value).is_some() => Ok(()),
            [value] => fail(format!("`{value}` is not one of: {}", choices.join(", "))),
            _ => fail("takes a single value".into()),
        },
        OptionKind::Choices { choices } => {
            if spec.name == "processors" {
                return check_processors(given);
            }
            match given.iter().find(|value| !choices.contains(&value.as_str())) {
                Some(value) => fail(format!("`{value}` is not one of: {}", choices.join(", "))),
                None => Ok(()),
            }
        }
        OptionKind::Float { min, max, .. } => match given {
            [value] => match value.parse::<f64>() {
                Ok(number) if number.is_finite() && number >= *min && number <= *max => Ok(()),
                _ => fail(format!("`{value}` is not a number in {min}..{max}")),
            },
            _ => fail("takes a single number".into()),
        },
        OptionKind::Int { min, max } => match given {
            [value] => match value.parse::<i64>() {
                Ok(number) if number >= *min && number <= *max => Ok(()),
                _ if *max == i64::MAX => fail(format!("`{value}` is not an integer ≥ {min}")),
                _ => fail(format!("`{value}` is not an integer in {min}..{max}")),
            },
            _ => fail("takes a single integer".into()),
        },
        OptionKind::Sides => {
            if given.len() > 4 {
                return fail("takes 1 to 4 integers (top right bottom left)".into());
            }
            match given.iter().find(|value| value.parse::<u32>().is_err()) {
                Some(value) => fail(format!("`{value}` is not a non-negative integer")),
                None => Ok(()),
            }
        }
        OptionKind::Color => {
            if given.len() > 4 {
                return fail("takes 1 to 4 integers (red green blue alpha)".into());
            }
            match given.iter().find(|value| value.parse::<u8>().is_err()) {
                Some(value) => fail(format!("`{value}` is not an integer in 0..255")),
                None => Ok(()),
            }
        }
    }
}

/// A `deep_swapper_model` outside the catalogue: `custom/<stem>` naming a `.dfm` file in the models
/// directory's `custom/` folder; the one check the options and the model store share. The stem is
/// one plain file name, so it cannot reach elsewhere, and not one FaceFusion skips when it lists the
/// folder (a leading `.` or `__`).
pub fn custom_model_stem(name: &str) -> Option<&str> {
    let stem = name.strip_prefix(CUSTOM_MODEL_PREFIX)?;
    let plain = !stem.is_empty()
        && stem.len() <= 128
        && !stem.starts_with('.')
        && !stem.starts_with("__")
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    plain.then_some(stem)
}

/// Each processor at most once: FaceFusion would run a repeated one again, which only multiplies
/// the work of a request (a 26 KB form could ask for thousands of swaps).
fn check_processors(given: &[String]) -> Result<()> {
    for (index, name) in given.iter().enumerate() {
        if !PROCESSORS.contains(&name.as_str()) {
            let reason = format!("`{name}` is not a FaceFusion processor (available: {})", PROCESSORS.join(", "));
            return Err(PipelineError::invalid_option("processors", reason));
        }
        if given[..index].contains(name) {
            return Err(PipelineError::invalid_option("processors", format!("`{name}` is named twice")));
        }
    }
    Ok(())
}

/// FaceFusion's colour expansion (R, G, B, A): one value is an opaque grey, two alternate red/blue
/// and green, three are an opaque colour; none is transparent black.
pub fn expand_color(values: &[u8]) -> [u8; 4] {
    match values {
        [] => [0; 4],
        [v] => [*v, *v, *v, 255],
        [a, b] => [*a, *b, *a, 255],
        [r, g, b] => [*r, *g, *b, 255],
        [r, g, b, a, ..] => [*r, *g, *b, *a],
    }
}

/// FaceFusion expands 1-4 values CSS-style; values outside 0..=100 become 0.
pub fn expand_sides(values: &[u32]) -> [u32; 4] {
    let clean: Vec<u32> = values.iter().map(|&v| if v <= 100 { v } else { 0 }).collect();
    match clean.as_slice() {
        [] => [0; 4],
        [a] => [*a; 4],
        [a, b] => [*a, *b, *a, *b],
        [a, b, c] => [*a, *b, *c, *b],
        [a, b, c, d, ..] => [*a, *b, *c, *d],
    }
}

fn detector_model(name: &str) -> DetectorModel {
    match name {
        "many" => DetectorModel::Many,
        "retinaface" => DetectorModel::Retinaface,
        "scrfd" => DetectorModel::Scrfd,
        "yunet" => DetectorModel::Yunet,
        _ => DetectorModel::YoloFace,
    }
}

fn detector_size(model: Option<&str>, size: Option<&str>) -> Result<usize> {
    let size = size.unwrap_or("640x640");
    let flexible = matches!(model, Some("retinaface") | Some("scrfd"));
    if !flexible && size != "640x640" {
        return Err(PipelineError::invalid_option(
            "face_detector_size",
            format!("{} only runs at 640x640", model.unwrap_or("yolo_face")),
        ));
    }
    Ok(parse_square(size).unwrap_or(640))
}

fn parse_square(size: &str) -> Option<usize> {
    let (w, h) = size.split_once('x')?;
    let (w, h): (usize, usize) = (w.parse().ok()?, h.parse().ok()?);
    (w == h).then_some(w)
}

/// The pixel-boost sizes FaceFusion lists for each swapper; the first is the model's native size.
pub fn swapper_pixel_boosts(model: &str) -> &'static [usize] {
    match model {
        "blendswap_256" => &[256, 384, 512, 768, 1024],
        "inswapper_128" | "inswapper_128_fp16" => &[128, 256, 384, 512, 768, 1024],
        "simswap_unofficial_512" => &[512, 768, 1024],
        _ => &[256, 512, 768, 1024],
    }
}

fn pixel_boost(model: &str, given: Option<&str>) -> Result<usize> {
    let sizes = swapper_pixel_boosts(model);
    let Some(given) = given else { return Ok(sizes[0]) };
    match parse_square(given) {
        Some(size) if sizes.contains(&size) => Ok(size),
        _ => {
            let listed: Vec<String> = sizes.iter().map(|s| format!("{s}x{s}")).collect();
            Err(PipelineError::invalid_option(
                "face_swapper_pixel_boost",
                format!("{model} supports {}", listed.join(", ")),
            ))
        }
    }
}

fn face_order(name: &str) -> FaceOrder {
    match name {
        "left-right" => FaceOrder::LeftRight,
        "right-left" => FaceOrder::RightLeft,
        "top-bottom" => FaceOrder::TopBottom,
        "bottom-top" => FaceOrder::BottomTop,
        "small-large" => FaceOrder::SmallLarge,
        "best-worst" => FaceOrder::BestWorst,
        "worst-best" => FaceOrder::WorstBest,
        _ => FaceOrder::LargeSmall,
    }
}

fn race(name: &str) -> Race {
    match name {
        "black" => Race::Black,
        "latino" => Race::Latino,
        "asian" => Race::Asian,
        "indian" => Race::Indian,
        "arabic" => Race::Arabic,
        _ => Race::White,
    }
}

fn debugger_item(name: &str) -> Option<DebuggerItem> {
    Some(match name {
        "bounding-box" => DebuggerItem::BoundingBox,
        "face-landmark-5" => DebuggerItem::Landmark5,
        "face-landmark-5/68" => DebuggerItem::Landmark5From68,
        "face-landmark-68" => DebuggerItem::Landmark68,
        "face-landmark-68/5" => DebuggerItem::Landmark68From5,
        "face-mask" => DebuggerItem::FaceMask,
        _ => return None,
    })
}

fn mask_type(name: &str) -> MaskType {
    match name {
        "occlusion" => MaskType::Occlusion,
        "area" => MaskType::Area,
        "region" => MaskType::Region,
        _ => MaskType::Box,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, Vec<String>)> {
        items.iter().map(|(n, v)| (n.to_string(), v.split_whitespace().map(str::to_string).collect())).collect()
    }

    #[test]
    fn defaults_match_facefusion() {
        let options = ProcessOptions::default();
        assert_eq!(options.processors, ["face_swapper"]);
        let names: Vec<&str> = Processor::ALL.iter().map(|processor| processor.name()).collect();
        assert_eq!(names, PROCESSORS, "the option's choices are the processors");
        assert_eq!(options.detector.model, DetectorModel::YoloFace);
        assert_eq!(options.detector.size, 640);
        assert_eq!(options.detector.score, 0.5);
        assert_eq!(options.detector.angles, [0]);
        assert_eq!(options.landmarker.model, LandmarkerModel::Fan2d4);
        assert_eq!(options.selector.mode, SelectorMode::Reference);
        assert_eq!(options.selector.order, FaceOrder::LargeSmall);
        assert_eq!(options.selector.reference_face_distance, 0.3);
        assert_eq!(options.masks.types, [MaskType::Box]);
        assert_eq!(options.masks.blur, 0.3);
        assert_eq!(options.masks.regions.len(), 10);
        assert_eq!(options.swapper.model, "hyperswap_1a_256");
        assert_eq!(options.swapper.pixel_boost, 256);
        assert_eq!(options.swapper.weight, 0.5);
        assert_eq!(options.output.image_quality, 80);
        assert_eq!(options.face_enhancer, FaceEnhancerOptions { model: "gfpgan_1.4".into(), blend: 80, weight: 0.5 });
        assert_eq!(options.frame_enhancer, FrameEnhancerOptions { model: "span_kendata_x4".into(), blend: 80 });
        assert_eq!(options.debugger_items, [DebuggerItem::Landmark5From68, DebuggerItem::FaceMask]);
    }

    #[test]
    fn every_mask_type_and_the_new_processors_are_accepted() {
        let options = ProcessOptions::from_pairs(&pairs(&[
            ("processors", "face_swapper face_enhancer frame_enhancer face_debugger"),
            ("face_mask_types", "box occlusion area region"),
            ("face_enhancer_model", "codeformer"),
            ("face_enhancer_weight", "0.7"),
            ("frame_enhancer_model", "clear_reality_x4"),
            ("frame_enhancer_blend", "100"),
            ("face_debugger_items", "bounding-box face-landmark-68"),
        ]))
        .unwrap();
        assert_eq!(options.masks.types, [MaskType::Box, MaskType::Occlusion, MaskType::Area, MaskType::Region]);
        assert_eq!(options.face_enhancer.model, "codeformer");
        assert_eq!(options.face_enhancer.weight, 0.7);
        assert_eq!(options.frame_enhancer.blend, 100);
        assert_eq!(options.debugger_items, [DebuggerItem::BoundingBox, DebuggerItem::Landmark68]);
        for model in FACE_ENHANCER_MODELS.iter().chain(FRAME_ENHANCER_MODELS) {
            assert!(crate::models::catalogue().get(model).is_some(), "{model} has no catalogue entry");
        }
    }

    #[test]
    fn kebab_and_snake_names_are_the_same_option() {
        let options = ProcessOptions::from_pairs(&pairs(&[
            ("--face-swapper-model", "inswapper_128"),
            ("face_selector_mode", "many"),
        ]))
        .unwrap();
        assert_eq!(options.swapper.model, "inswapper_128");
        assert_eq!(options.swapper.pixel_boost, 128);
        assert_eq!(options.selector.mode, SelectorMode::Many);
    }

    #[test]
    fn out_of_range_and_unknown_values_are_rejected() {
        let cases = [
            ("face_detector_score", "1.5"),
            ("face_swapper_model", "nope"),
            ("face_swapper_pixel_boost", "100x100"),
            ("face_detector_size", "320x320"),
            ("no_such_option", "1"),
            ("face_enhancer_model", "gfpgan_9"),
            ("face_enhancer_blend", "101"),
            ("frame_enhancer_model", "lsdir_x4"),
            ("face_debugger_items", "scores"),
            ("lip_syncer_model", "wav2lip_97"),
            ("processors", "face_morpher"),
            ("processors", "face_swapper face_swapper"),
            ("age_modifier_direction", "101"),
            ("expression_restorer_areas", "mouth"),
            ("face_editor_head_yaw", "1.5"),
            ("deep_swapper_model", "iperov/nobody_224"),
            ("deep_swapper_model", "custom/../etc"),
            ("frame_colorizer_size", "100x100"),
            ("background_remover_model", "rmbg_3.0"),
            ("background_remover_color", "0 256"),
            ("background_remover_color", "1 2 3 4 5"),
            ("config_path", "facefusion.ini"),
            ("face_mask_padding", "1 2 3 4 5"),
            ("face_mask_types", "box hair"),
            ("output_video_encoder", "libx266"),
            ("output_video_preset", "quick"),
            ("output_video_quality", "101"),
            ("output_video_scale", "0.1"),
            ("output_video_fps", "-5"),
            ("output_audio_encoder", "mp3"),
            ("output_audio_volume", "200"),
            ("trim_frame_start", "-1"),
        ];
        for (name, value) in cases {
            let error = ProcessOptions::from_pairs(&pairs(&[(name, value)])).unwrap_err();
            assert!(matches!(error, PipelineError::InvalidOption { .. }), "{name}={value}: {error}");
        }
    }

    #[test]
    fn later_processors_have_facefusions_defaults() {
        let options = ProcessOptions::default();
        assert_eq!(options.age_modifier, AgeModifierOptions { model: "styleganex_age".into(), direction: 0.0 });
        assert_eq!(options.expression_restorer.factor, 80.0);
        assert_eq!(options.expression_restorer.areas, [RestorerArea::UpperFace, RestorerArea::LowerFace]);
        assert_eq!(options.face_editor.model, "live_portrait");
        assert_eq!(options.face_editor.head_yaw, 0.0);
        assert_eq!(options.deep_swapper, DeepSwapperOptions { model: "iperov/elon_musk_224".into(), morph: 100.0 });
        assert_eq!(options.frame_colorizer, FrameColorizerOptions { model: "ddcolor".into(), size: 256, blend: 100 });
        assert_eq!(options.background_remover, BackgroundRemoverOptions { model: "rmbg_2.0".into(), color: [0; 4] });
    }

    #[test]
    fn background_colours_expand_as_in_facefusion() {
        assert_eq!(expand_color(&[7]), [7, 7, 7, 255]);
        assert_eq!(expand_color(&[1, 2]), [1, 2, 1, 255]);
        assert_eq!(expand_color(&[1, 2, 3]), [1, 2, 3, 255]);
        assert_eq!(expand_color(&[0, 255, 0, 128]), [0, 255, 0, 128]);
        let options = ProcessOptions::from_pairs(&pairs(&[("background_remover_color", "0 255 0 255")])).unwrap();
        assert_eq!(options.background_remover.color, [0, 255, 0, 255]);
    }

    #[test]
    fn custom_deep_swapper_models_are_plain_file_stems() {
        assert_eq!(custom_model_stem("custom/my_face-2.v1"), Some("my_face-2.v1"));
        for bad in ["custom/", "custom/../x", "custom/a/b", "custom/.hidden", "iperov/elon_musk_224"] {
            assert_eq!(custom_model_stem(bad), None, "{bad}");
        }
        let options = ProcessOptions::from_pairs(&pairs(&[("deep_swapper_model", "custom/mine")])).unwrap();
        assert_eq!(options.deep_swapper.model, "custom/mine");
    }

    #[test]
    fn every_deep_swapper_choice_is_in_the_catalogue() {
        let catalogue = crate::models::catalogue();
        let listed: Vec<&str> =
            catalogue.for_processor("deep_swapper").into_iter().map(|entry| entry.name.as_str()).collect();
        let mut choices = DEEP_SWAPPER_MODELS.to_vec();
        choices.sort_unstable();
        let mut listed = listed;
        listed.sort_unstable();
        assert_eq!(choices, listed);
        for model in FRAME_COLORIZER_MODELS.iter().chain(BACKGROUND_REMOVER_MODELS).chain(AGE_MODIFIER_MODELS) {
            assert!(catalogue.get(model).is_some(), "{model} has no catalogue entry");
        }
    }

    #[test]
    fn video_options_have_facefusions_defaults_and_values() {
        let video = ProcessOptions::default().output.video;
        assert_eq!((video.trim_frame_start, video.trim_frame_end), (None, None));
        assert_eq!((video.video_encoder, video.audio_encoder), (None, None));
        assert_eq!((video.video_preset.as_str(), video.video_quality, video.video_scale), ("veryfast", 80, 1.0));
        assert_eq!((video.video_fps, video.audio_quality, video.audio_volume), (None, 80, 100));
        let video = ProcessOptions::from_pairs(&pairs(&[
            ("--trim-frame-start", "120"),
            ("--trim-frame-end", "180"),
            ("--output-video-encoder", "libx265"),
            ("--output-video-preset", "slow"),
            ("--output-video-quality", "50"),
            ("--output-video-scale", "0.5"),
            ("--output-video-fps", "90"),
            ("--output-audio-encoder", "libopus"),
            ("--output-audio-quality", "10"),
            ("--output-audio-volume", "0"),
        ]))
        .unwrap()
        .output
        .video;
        assert_eq!((video.trim_frame_start, video.trim_frame_end), (Some(120), Some(180)));
        assert_eq!(video.video_encoder.as_deref(), Some("libx265"));
        assert_eq!((video.video_preset.as_str(), video.video_quality, video.video_scale), ("slow", 50, 0.5));
        // Kept as given; the engine clamps it to 1..60 as FaceFusion does.
        assert_eq!(video.video_fps, Some(90.0));
        assert_eq!(video.audio_encoder.as_deref(), Some("libopus"));
        assert_eq!((video.audio_quality, video.audio_volume), (10, 0));
        // The temp options stay accepted without effect.
        ProcessOptions::from_pairs(&pairs(&[("temp_frame_format", "jpeg"), ("keep_temp", "true")])).unwrap();
    }

    #[test]
    fn encoder_choices_match_the_video_module() {
        use crate::video::{AudioEncoder, VideoEncoder, VideoPreset};
        let video: Vec<&str> = VideoEncoder::ALL.iter().map(|e| e.name()).collect();
        let audio: Vec<&str> = AudioEncoder::ALL.iter().map(|e| e.name()).collect();
        let presets: Vec<&str> = VideoPreset::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(
            (VIDEO_ENCODERS, AUDIO_ENCODERS, VIDEO_PRESETS),
            (video.as_slice(), audio.as_slice(), presets.as_slice())
        );
    }

    #[test]
    fn sides_expand_css_style() {
        assert_eq!(expand_sides(&[5]), [5, 5, 5, 5]);
        assert_eq!(expand_sides(&[1, 2]), [1, 2, 1, 2]);
        assert_eq!(expand_sides(&[1, 2, 3]), [1, 2, 3, 2]);
        assert_eq!(expand_sides(&[1, 200, 3, 4]), [1, 0, 3, 4]);
    }

    #[test]
    fn json_options_accept_lists_numbers_and_strings() {
        let value = serde_json::json!({
            "face_swapper_model": "inswapper_128",
            "face_mask_types": ["box"],
            "face_detector_score": 0.6,
            "face_swapper_pixel_boost": "256x256"
        });
        let options = ProcessOptions::from_json(&value).unwrap();
        assert_eq!(options.masks.types, [MaskType::Box]);
        assert_eq!(options.detector.score, 0.6);
        assert_eq!(options.swapper.pixel_boost, 256);
    }
}
