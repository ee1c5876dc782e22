//! The TCP side of `ff serve`: accepting connections and handing them to hyper, with the bounds
//! `axum::serve` leaves open. axum's server sets no hyper timer, so hyper's header read timeout
//! never fires and a client that sends half a request line keeps its connection (and its task)
//! forever; nor does it cap how many connections are open at once. Here every connection must
//! deliver its request headers within [`ServerLimits::header_read_timeout`] (idle keep-alive
//! connections included, since hyper starts that clock while it waits for the next request), and
//! at most [`ServerLimits::max_connections`] are served at once; further ones are closed at accept.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client may take to send its request line and headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Connections served at once: far more than the processing slots (health checks, job polling and
/// result downloads need none), few enough that file descriptors and task memory stay small.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a failed `accept` (file descriptors exhausted, say) waits before the next one, so the
/// loop does not spin while the cause lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// After shutdown is signalled, how long connections in flight may take to finish.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            drain_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets the
/// connections in flight finish (at most `limits.drain_timeout`).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let builder = http_builder(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Dropping the stream closes it: the client learns at once instead of waiting in a backlog.
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::debug!(limit = limits.max_connections, "connection refused: too many open connections");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?limits.drain_timeout, "connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// HTTP/1.1 and HTTP/2 (prior knowledge), both with a timer so hyper's timeouts take effect.
fn http_builder(header_read_timeout: Duration) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(header_read_timeout);
    builder
}
