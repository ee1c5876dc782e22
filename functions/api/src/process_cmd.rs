//! `ff process`: FaceFusion's `headless-run` flags, built from the pipeline's option table so the
//! CLI, the HTTP API and `/processors` can never disagree.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use ff_pipeline::config_file::ConfigFile;
use ff_pipeline::engine::VideoOutput;
use ff_pipeline::media::{sniff, sniff_named};
use ff_pipeline::options::{OptionKind, OptionSpec, ProcessOptions, Support, OPTIONS};
use ff_pipeline::video::AudioOutcome;
use ff_pipeline::{Engine, EngineConfig, ImageOutput};
use ff_service::format::OutputFormat;
use ff_service::plan::Plan;
use ff_service::probe::DurationLimit;
use ff_service::run::{execute, Product, Run, Target, VideoTarget};
use ff_service::workspace::Workspace;
use ff_service::ApiError;

use crate::terminal::Terminal;

/// A CLI run has no request budget; this only bounds a stuck ffmpeg.
const VIDEO_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub struct ProcessArgs {
    sources: Vec<PathBuf>,
    target: Option<PathBuf>,
    output: Option<PathBuf>,
    /// FaceFusion's `--config-path`: an ini file whose settings the flags override.
    config: Option<PathBuf>,
    options: Vec<(String, Vec<String>)>,
}

/// A facefusion.ini is a few KB; anything far larger is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Args for ProcessArgs {
    fn augment_args(command: Command) -> Command {
        let command =
            command
                .arg(
                    Arg::new("source_paths")
                        .short('s')
                        .long("source-paths")
                        .num_args(1..)
                        .help("source face images, and for lip_syncer a speech audio file"),
                )
                .arg(Arg::new("target_path").short('t').long("target-path").help("target image or video"))
                .arg(Arg::new("output_path").short('o').long("output-path").help(
                    "output image or video (a video from an image target when lip_syncer speaks an audio source)",
                ))
                .arg(Arg::new("config_path").long("config-path").help(
                    "FaceFusion ini file (facefusion.ini sections and keys); flags given here override its settings",
                ));
        OPTIONS.iter().fold(command, |command, spec| command.arg(option_arg(spec)))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for ProcessArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let paths = |id: &str| -> Vec<PathBuf> {
            matches.get_many::<String>(id).map(|v| v.map(PathBuf::from).collect()).unwrap_or_default()
        };
        let options = OPTIONS
            .iter()
            .filter_map(|spec| given_values(matches, spec).map(|values| (spec.name.to_string(), values)))
            .collect();
        Ok(Self {
            sources: paths("source_paths"),
            target: paths("target_path").pop(),
            output: paths("output_path").pop(),
            config: paths("config_path").pop(),
            options,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl ProcessArgs {
    /// Folds in the `--config-path` file as FaceFusion does: its settings are defaults that the
    /// command line's flags and paths override.
    fn with_config_file(mut self) -> Result<Self> {
        let Some(path) = self.config.take() else { return Ok(self) };
        let text = read_config(&path)?;
        let config = ConfigFile::parse(&text, &path.display().to_string())?;
        let mut options = config.options.clone();
        options.append(&mut self.options);
        self.options = options;
        let first = |key: &str| config.path(key).and_then(|values| values.first()).map(PathBuf::from);
        if self.sources.is_empty() {
            self.sources = config.path("source_paths").unwrap_or_default().iter().map(PathBuf::from).collect();
        }
        self.target = self.target.or_else(|| first("target_path"));
        self.output = self.output.or_else(|| first("output_path"));
        Ok(self)
    }
}

fn read_config(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {} (an ini file is text)", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        bail!("{} is larger than {} KiB; it is not a facefusion.ini", path.display(), MAX_CONFIG_BYTES / 1024);
    }
    Ok(text)
}

pub(crate) fn option_arg(spec: &'static OptionSpec) -> Arg {
    let arg = Arg::new(spec.name).long(spec.name.replace('_', "-")).help(help_text(spec));
    match spec.kind {
        OptionKind::Flag => arg.action(ArgAction::SetTrue),
        OptionKind::Choices { .. } | OptionKind::Sides | OptionKind::Color => arg.num_args(1..).action(ArgAction::Set),
        // `--age-modifier-direction -60`, `--face-editor-head-roll -0.3`.
        OptionKind::Float { .. } | OptionKind::Int { .. } => {
            arg.num_args(1).allow_negative_numbers(true).action(ArgAction::Set)
        }
        _ => arg.num_args(1).action(ArgAction::Set),
    }
}

fn help_text(spec: &OptionSpec) -> String {
    let range = match &spec.kind {
        OptionKind::Choice { choices } | OptionKind::Choices { choices } => {
            format!(" [choices: {}]", choices.join(", "))
        }
        OptionKind::Float { min, max, step } => format!(" [{min}..{max}, step {step}]"),
        OptionKind::Int { min, max } if *max == i64::MAX => format!(" [≥ {min}]"),
        OptionKind::Int { min, max } => format!(" [{min}..{max}]"),
        OptionKind::Sides => " [1-4 ints 0..100: top right bottom left]".to_string(),
        OptionKind::Color => " [1-4 ints 0..255: red green blue alpha]".to_string(),
        OptionKind::Flag | OptionKind::Text => String::new(),
    };
    let default = if spec.default.is_empty() { String::new() } else { format!(" [default: {}]", spec.default) };
    match spec.support {
        Support::Supported => format!("{}{range}{default}", spec.help),
        Support::Ignored(why) => format!("accepted for FaceFusion compatibility, no effect: {why}"),
    }
}

pub(crate) fn given_values(matches: &ArgMatches, spec: &OptionSpec) -> Option<Vec<String>> {
    if matches!(spec.kind, OptionKind::Flag) {
        return matches.get_flag(spec.name).then(Vec::new);
    }
    matches.get_many::<String>(spec.name).map(|values| values.cloned().collect())
}

/// One run through the service's processing path (`ff_service::run`), on the user's own files:
/// the target is judged by its bytes, the output format by the output's extension.
pub fn run(args: ProcessArgs, terminal: &Terminal) -> Result<()> {
    let args = args.with_config_file()?;
    let options = ProcessOptions::from_pairs(&args.options)?;
    let (Some(target_path), Some(output_path)) = (&args.target, &args.output) else {
        bail!("a target (-t) and an output (-o) are required, on the command line or in the --config-path file");
    };
    let output_name = output_path.to_string_lossy().into_owned();
    let output_format = OutputFormat::parse(output_name.rsplit('.').next().unwrap_or_default()).with_context(|| {
        format!("output {output_name}: use an image (.jpg, .png, .webp, .bmp) or a video file name")
    })?;
    let read = |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let sources: Vec<Vec<u8>> = args.sources.iter().map(read).collect::<Result<_>>()?;
    let source_kinds: Vec<_> = sources.iter().map(|bytes| sniff(bytes)).collect();
    let target_kind = sniff_named(&read_head(target_path)?, target_path.file_name().and_then(|n| n.to_str()));
    let plan = Plan::decide(&source_kinds, target_kind, &options, Some(output_format)).map_err(explained)?;
    let target = match plan {
        Plan::Image { output_format } => Target::Image { bytes: read(target_path)?, output_format },
        Plan::Video { target, container } => {
            let workspace = Workspace::in_place(target_path.clone(), output_path.clone(), container);
            let video = VideoTarget::new(workspace, DurationLimit::Unbounded, VIDEO_TIMEOUT);
            Target::Video(video.probe_blocking(target, &options).map_err(explained)?)
        }
    };
    let config = engine_config()?;
    let config = match &target {
        Target::Video(_) => config.for_one_video(),
        Target::Image { .. } => config,
    };
    let engine = Engine::new(config)?;
    let cancel = AtomicBool::new(false);
    let run = Run { sources, options, target };
    let product = execute(&engine, run, terminal.progress(), &cancel).map_err(explained);
    let result = match product {
        Ok(Product::Image(output)) => std::fs::write(output_path, &output.bytes)
            .with_context(|| format!("writing {}", output_path.display()))
            .map(|()| log_image(output_path, &output)),
        // The summary goes above the bar, which stays below it at its last state.
        Ok(Product::Video { output, .. }) => {
            log_video(&output);
            Ok(())
        }
        Err(error) => Err(error),
    };
    terminal.finish();
    result
}

/// A failure with the detail a server keeps for its log: on the command line, the user is the
/// operator.
fn explained(error: ApiError) -> anyhow::Error {
    match error.detail() {
        Some(detail) => anyhow::anyhow!("{error}: {detail}"),
        None => anyhow::anyhow!("{error}"),
    }
}

pub(crate) fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut head = Vec::with_capacity(4096);
    file.take(4096).read_to_end(&mut head).with_context(|| format!("reading {}", path.display()))?;
    Ok(head)
}

fn log_image(path: &Path, output: &ImageOutput) {
    tracing::info!(
        output = %path.display(),
        faces = output.faces_processed,
        decode_ms = output.timings.decode.as_millis() as u64,
        analyse_ms = output.timings.analyse.as_millis() as u64,
        process_ms = output.timings.process.as_millis() as u64,
        encode_ms = output.timings.encode.as_millis() as u64,
        "processed"
    );
}

fn log_video(output: &VideoOutput) {
    if let AudioOutcome::Skipped { reason } = &output.video.audio {
        tracing::warn!(%reason, "the video was written without audio");
    }
    tracing::info!(
        output = %output.video.path.display(),
        frames = output.frames,
        fps = format!("{:.2}", output.processing_fps),
        encoder = %output.video.encoder,
        audio = ?output.video.audio,
        faces = output.faces_processed,
        elapsed_ms = output.elapsed.as_millis() as u64,
        analyse_ms = output.timings.analyse.as_millis() as u64,
        process_ms = output.timings.process.as_millis() as u64,
        "processed"
    );
}

/// The CLI reads the same FF_* variables as the server; one image gets one session per model with
/// the execution thread count, one video the thread plan of `EngineConfig::for_one_video`.
pub(crate) fn engine_config() -> Result<EngineConfig> {
    let config = ff_service::config::ServiceConfig::from_env()?;
    Ok(EngineConfig { sessions_per_model: 1, ..config.to_engine_config() })
}
