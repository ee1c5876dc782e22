//! `ff process`: FaceFusion's `headless-run` flags, built from the pipeline's option table so the
//! CLI, the HTTP API and `/processors` can never disagree.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::options::{OptionKind, OptionSpec, ProcessOptions, Support, OPTIONS};
use ff_pipeline::{Engine, EngineConfig, ImageRequest};

pub struct ProcessArgs {
    sources: Vec<PathBuf>,
    target: PathBuf,
    output: PathBuf,
    options: Vec<(String, Vec<String>)>,
}

impl Args for ProcessArgs {
    fn augment_args(command: Command) -> Command {
        let command = command
            .arg(Arg::new("source_paths").short('s').long("source-paths").num_args(1..).help("source images"))
            .arg(Arg::new("target_path").short('t').long("target-path").required(true).help("target image"))
            .arg(Arg::new("output_path").short('o').long("output-path").required(true).help("output image"));
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
            target: paths("target_path").pop().unwrap_or_default(),
            output: paths("output_path").pop().unwrap_or_default(),
            options,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn option_arg(spec: &'static OptionSpec) -> Arg {
    let arg = Arg::new(spec.name).long(spec.name.replace('_', "-")).help(help_text(spec));
    match spec.kind {
        OptionKind::Flag => arg.action(ArgAction::SetTrue),
        OptionKind::Choices { .. } | OptionKind::Sides => arg.num_args(1..).action(ArgAction::Set),
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
        OptionKind::Flag | OptionKind::Text => String::new(),
    };
    let default = if spec.default.is_empty() { String::new() } else { format!(" [default: {}]", spec.default) };
    match spec.support {
        Support::Supported => format!("{}{range}{default}", spec.help),
        Support::Ignored(why) => format!("accepted for FaceFusion compatibility, no effect: {why}"),
    }
}

fn given_values(matches: &ArgMatches, spec: &OptionSpec) -> Option<Vec<String>> {
    if matches!(spec.kind, OptionKind::Flag) {
        return matches.get_flag(spec.name).then(Vec::new);
    }
    matches.get_many::<String>(spec.name).map(|values| values.cloned().collect())
}

pub fn run(args: ProcessArgs) -> Result<()> {
    let options = ProcessOptions::from_pairs(&args.options)?;
    let format = ImageFormat::from_name(&args.output.to_string_lossy())
        .with_context(|| format!("output {}: use a .jpg, .png, .webp or .bmp file name", args.output.display()))?;
    if args.target.as_os_str().is_empty() {
        bail!("a target is required (-t)");
    }
    let read = |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let request = ImageRequest {
        sources: args.sources.iter().map(read).collect::<Result<_>>()?,
        target: read(&args.target)?,
        options,
        output_format: Some(format),
    };
    let engine = Engine::new(engine_config()?)?;
    let output = engine.process_image(request)?;
    std::fs::write(&args.output, &output.bytes).with_context(|| format!("writing {}", args.output.display()))?;
    tracing::info!(
        output = %args.output.display(),
        faces = output.faces_processed,
        decode_ms = output.timings.decode.as_millis() as u64,
        analyse_ms = output.timings.analyse.as_millis() as u64,
        process_ms = output.timings.process.as_millis() as u64,
        encode_ms = output.timings.encode.as_millis() as u64,
        "processed"
    );
    Ok(())
}

/// The CLI reads the same FF_* variables as the server.
fn engine_config() -> Result<EngineConfig> {
    let config = ff_service::config::ServiceConfig::from_env()?;
    Ok(EngineConfig { sessions_per_model: 1, ..config.to_engine_config() })
}
