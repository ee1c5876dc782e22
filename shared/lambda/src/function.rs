//! Which routes each Lambda function answers: one function per group of the service's routes
//! ([`Function`] is the service's `Endpoints`), so `shared/lambda` keeps no route table of its own.

use axum::Router;
use ff_service::http::app;
pub use ff_service::http::Endpoints as Function;
use ff_service::AppState;

/// The function's routes under the service's layers, so the handlers, limits, timeout and error
/// mapping are exactly those of `ff serve`. Another route is the same JSON 404 (unknown path) or
/// 405 (known path, other method) as anywhere else. Each function gets its own URL, memory, timeout
/// and permissions in `template.yaml`.
pub fn function_router(function: Function, state: AppState) -> Router {
    let router = app(&[function], state.clone());
    match function {
        // Only /process answers with files; job results already redirect to presigned URLs.
        Function::Process => crate::with_large_response_offload(router, &state),
        _ => router,
    }
}
