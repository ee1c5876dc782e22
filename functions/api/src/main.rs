//! `ff`: FaceFusion 3.5.3's processing as a CLI (`ff process`, same flags as `facefusion.py
//! headless-run`), an HTTP server (`ff serve`) and model management (`ff models`).
//!
//! Started by the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` set), `ff` is instead one Lambda function,
//! whatever its arguments: the whole /api/v1 router for function-URL requests, the job worker for
//! S3 events.

mod models_cmd;
mod process_cmd;
mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ff", version, about = "FaceFusion 3.5.3-compatible face processing on CPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process one target with the given sources, like `facefusion.py headless-run`.
    #[command(disable_help_flag = false)]
    Process(process_cmd::ProcessArgs),
    /// Serve the HTTP API (/api/v1).
    Serve(serve::ServeArgs),
    /// List or download models.
    Models {
        #[command(subcommand)]
        command: models_cmd::ModelsCommand,
    },
}

fn main() -> Result<()> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return run_as_lambda();
    }
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Process(args) => process_cmd::run(args),
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

/// Human-readable logs on a terminal, JSON lines elsewhere (Lambda, containers). `RUST_LOG` filters.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}
