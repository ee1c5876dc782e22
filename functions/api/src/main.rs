//! `ff`: FaceFusion 3.5.3's processing as a CLI (`ff process`, same flags as `facefusion.py
//! headless-run`), a look at a target's faces (`ff faces`), an HTTP server (`ff serve`) and model
//! management (`ff models`).
//!
//! Started by the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` set), `ff` is instead one Lambda function,
//! whatever its arguments: the whole /api/v1 router for function-URL requests, the job worker for
//! S3 events.

mod faces_cmd;
mod models_cmd;
mod process_cmd;
mod serve;
mod terminal;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ff", version, about = "FaceFusion 3.5.3-compatible face processing on CPU")]
struct Cli {
    /// `auto`: readable lines and a progress bar on a terminal, JSON lines elsewhere.
    #[arg(long, global = true, value_enum, default_value_t = terminal::LogFormat::Auto)]
    log_format: terminal::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process one target with the given sources, like `facefusion.py headless-run`.
    #[command(disable_help_flag = false)]
    Process(process_cmd::ProcessArgs),
    /// The faces of an image, or the people of a video, before processing (as POST /api/v1/faces).
    Faces(faces_cmd::FacesArgs),
    /// Serve the HTTP API (/api/v1).
    Serve(serve::ServeArgs),
    /// List or download models.
    Models {
        #[command(subcommand)]
        command: models_cmd::ModelsCommand,
    },
}

fn main() -> Result<()> {
    ff_pipeline::allocator::keep_large_buffers_out_of_the_heap();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return run_as_lambda();
    }
    let cli = Cli::parse();
    let terminal = terminal::init(cli.log_format);
    match cli.command {
        Command::Process(args) => process_cmd::run(args, &terminal),
        Command::Faces(args) => faces_cmd::run(args),
        Command::Serve(args) => tokio::runtime::Runtime::new()?.block_on(serve::run(args)),
        Command::Models { command } => models_cmd::run(command, &ff_pipeline::models::default_models_dir()),
    }
}

/// Everything as one Lambda function: the whole API for function-URL requests and the job worker
/// for S3 events, with the same FF_* settings and JSON logs as the functions of `functions/`.
fn run_as_lambda() -> Result<()> {
    ff_lambda::init_tracing();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let state = ff_lambda::state_from_env().map_err(|error| anyhow::anyhow!(error))?;
        ff_lambda::run_all_in_one(state).await.map_err(|error| anyhow::anyhow!(error))
    })
}
