//! Which routes each Lambda function answers.

use axum::http::Method;
use axum::Router;
use ff_service::http::{app, Endpoints};
use ff_service::AppState;

/// One Lambda function per handler: each gets its own URL, memory, timeout and permissions in
/// `template.yaml`, and answers only its own group of routes (plus GET /api/v1/health, so every URL
/// can be probed the same way): see [`Endpoints`] for each group's routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Process,
    JobCreate,
    JobStatus,
    JobResult,
    JobDelete,
    Models,
    System,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::Process,
        Function::JobCreate,
        Function::JobStatus,
        Function::JobResult,
        Function::JobDelete,
        Function::Models,
        Function::System,
    ];

    /// The name of the function's crate, binary and `events/` folder.
    pub fn name(self) -> &'static str {
        match self {
            Function::Process => "process",
            Function::JobCreate => "job-create",
            Function::JobStatus => "job-status",
            Function::JobResult => "job-result",
            Function::JobDelete => "job-delete",
            Function::Models => "models",
            Function::System => "system",
        }
    }

    /// The service's group of routes this function answers.
    pub fn endpoints(self) -> Endpoints {
        match self {
            Function::Process => Endpoints::Process,
            Function::JobCreate => Endpoints::JobCreate,
            Function::JobStatus => Endpoints::JobStatus,
            Function::JobResult => Endpoints::JobResult,
            Function::JobDelete => Endpoints::JobDelete,
            Function::Models => Endpoints::Models,
            Function::System => Endpoints::System,
        }
    }

    /// The (method, path) pairs the function answers besides health, in axum's path syntax.
    pub fn routes(self) -> &'static [(Method, &'static str)] {
        self.endpoints().routes()
    }
}

/// The function's routes under the service's layers, so the handlers, limits, timeout and error
/// mapping are exactly those of `ff serve`. Another route is the same JSON 404 (unknown path) or
/// 405 (known path, other method) as anywhere else.
pub fn function_router(function: Function, state: AppState) -> Router {
    let router = app(&[function.endpoints()], state.clone());
    match function {
        // Only /process answers with files; job results already redirect to presigned URLs.
        Function::Process => crate::with_large_response_offload(router, &state),
        _ => router,
    }
}
