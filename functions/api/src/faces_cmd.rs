//! `ff faces IMAGE_OR_VIDEO`: the faces of an image, or the people of a video, as `POST
//! /api/v1/faces` answers them: a table, or the same JSON with `--json`; `--crops DIR` writes each
//! face's crop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use ff_pipeline::face_survey::{survey_image, survey_video, Survey, MAX_SAMPLED_FRAMES};
use ff_pipeline::media::{sniff_named, MediaKind};
use ff_pipeline::options::{ProcessOptions, OPTIONS};
use ff_pipeline::video::Toolchain;
use ff_pipeline::Engine;
use ff_service::faces::{FacesAnswer, MediaClass};

use crate::process_cmd::{engine_config, given_values, option_arg, read_head};

/// The options that change what a survey finds: detection, landmarks, the selector's order and
/// filters, and the trim range.
const SURVEY_OPTION_PREFIXES: [&str; 5] =
    ["face_detector_", "face_landmarker_", "face_selector_", "reference_face_distance", "trim_frame_"];

/// Bounds a stuck ffmpeg.
const VIDEO_TIMEOUT: Duration = Duration::from_secs(3600);

pub struct FacesArgs {
    media: PathBuf,
    json: bool,
    crops: Option<PathBuf>,
    options: Vec<(String, Vec<String>)>,
}

fn is_survey_option(name: &str) -> bool {
    SURVEY_OPTION_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

impl Args for FacesArgs {
    fn augment_args(command: Command) -> Command {
        let command = command
            .arg(Arg::new("media").required(true).help("an image or a video"))
            .arg(
                Arg::new("json")
                    .long("json")
                    .action(ArgAction::SetTrue)
                    .help("print JSON, as POST /api/v1/faces answers"),
            )
            .arg(Arg::new("crops").long("crops").help("write each face's crop to this directory as face-<id>.jpg"));
        OPTIONS
            .iter()
            .filter(|spec| is_survey_option(spec.name))
            .fold(command, |command, spec| command.arg(option_arg(spec)))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for FacesArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let options = OPTIONS
            .iter()
            .filter(|spec| is_survey_option(spec.name))
            .filter_map(|spec| given_values(matches, spec).map(|values| (spec.name.to_string(), values)))
            .collect();
        Ok(Self {
            media: matches.get_one::<String>("media").map(PathBuf::from).unwrap_or_default(),
            json: matches.get_flag("json"),
            crops: matches.get_one::<String>("crops").map(PathBuf::from),
            options,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

pub fn run(args: FacesArgs) -> Result<()> {
    let options = ProcessOptions::from_pairs(&args.options)?;
    let name = args.media.file_name().and_then(|name| name.to_str());
    let kind = sniff_named(&read_head(&args.media)?, name);
    let engine = Engine::new(engine_config()?)?;
    let registry = engine.registry();
    let (class, survey) = match kind {
        Some(MediaKind::Image(_)) => {
            let bytes = std::fs::read(&args.media).with_context(|| format!("reading {}", args.media.display()))?;
            (MediaClass::Image, survey_image(registry, &bytes, &options, engine.config().max_image_pixels)?)
        }
        Some(MediaKind::Video(_)) => {
            let toolchain = Toolchain::from_env();
            let info = toolchain.probe(&args.media)?;
            let survey =
                survey_video(registry, &toolchain, &args.media, &info, &options, MAX_SAMPLED_FRAMES, VIDEO_TIMEOUT)?;
            (MediaClass::Video, survey)
        }
        _ => bail!("{} is neither an image (JPEG, PNG, WebP, BMP) nor a video", args.media.display()),
    };
    if let Some(dir) = &args.crops {
        write_crops(dir, &survey)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&FacesAnswer::from_survey(class, &survey))?);
    } else {
        print_table(&survey);
    }
    Ok(())
}

fn write_crops(dir: &Path, survey: &Survey) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (id, face) in survey.faces.iter().enumerate() {
        let path = dir.join(format!("face-{id}.jpg"));
        std::fs::write(&path, &face.crop).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One line a face, then one a person.
fn print_table(survey: &Survey) {
    let person_of = survey.person_of_faces();
    println!(
        "{:>4} {:>6} {:>4} {:>6}  {:<25} {:>5}  {:<7} {:<6} {:<7}",
        "face", "frame", "pos", "person", "box", "score", "age", "gender", "race"
    );
    for (id, surveyed) in survey.faces.iter().enumerate() {
        let face = &surveyed.face;
        let b = &face.bounding_box;
        let bounds = format!("{:.0},{:.0} {:.0}x{:.0}", b.x1, b.y1, b.width(), b.height());
        let age = format!("{}-{}", face.age.0, face.age.1);
        println!(
            "{id:>4} {:>6} {:>4} {:>6}  {bounds:<25} {:>5.2}  {age:<7} {:<6} {:<7}",
            surveyed.frame,
            surveyed.position,
            person_of[id],
            face.detector_score,
            face.gender.name(),
            face.race.name()
        );
    }
    println!();
    println!("{} face(s) in {} frame(s); {} person(s):", survey.faces.len(), survey.frames.len(), survey.people.len());
    for (id, person) in survey.people.iter().enumerate() {
        let frames: Vec<String> = person.faces.iter().map(|&face| survey.faces[face].frame.to_string()).collect();
        println!("  person {id}: {} face(s), frames {}", person.faces.len(), frames.join(" "));
    }
    if survey.truncated {
        println!("(more faces were found than are listed)");
    }
}
