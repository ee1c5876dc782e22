//! `ff serve`: the /api/v1 HTTP API on a TCP port, until SIGINT or SIGTERM.

use std::net::IpAddr;

use anyhow::Context;
use ff_service::{AppState, ServiceConfig};

/// Where to listen. Everything else comes from FF_* variables (see `ff_service::config`), so the
/// same settings work for a container, a Lambda and a developer shell.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TCP port; 0 lets the OS pick a free one (the chosen address is logged).
    #[arg(long, env = "FF_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Address to bind; 0.0.0.0 serves every interface, 127.0.0.1 only this machine.
    #[arg(long, env = "FF_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServiceConfig::from_env().context("invalid service configuration")?;
    tracing::info!(?config, "service configuration");
    if config.api_keys.is_empty() && !args.host.is_loopback() {
        tracing::warn!(
            host = %args.host,
            "no API keys are configured (FF_API_KEYS, FF_API_KEYS_FILE) and the API listens beyond this machine: \
             anyone who can reach it can use it"
        );
    }
    let state = AppState::new(config).context("the processing engine failed to start")?;
    let listener = tokio::net::TcpListener::bind((args.host, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let address = listener.local_addr().context("the listener has no local address")?;
    tracing::info!(%address, "ff serve listening");
    ff_service::serve(listener, state, shutdown_signal()).await.context("the HTTP server failed")?;
    tracing::info!("ff serve stopped");
    Ok(())
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM (what containers and orchestrators send).
/// The server then stops accepting connections and lets requests in flight finish.
async fn shutdown_signal() {
    tokio::select! {
        () = interrupt() => tracing::info!("SIGINT received; finishing requests in flight"),
        () = terminate() => tracing::info!("SIGTERM received; finishing requests in flight"),
    }
}

async fn interrupt() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::warn!(%error, "cannot listen for SIGINT");
        std::future::pending::<()>().await;
    }
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            terminate.recv().await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}
