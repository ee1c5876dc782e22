//! Which routes each Lambda function answers.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use ff_service::{router, ApiError, AppState};

/// One Lambda function per handler: each gets its own URL, memory, timeout and permissions in
/// `template.yaml`, and answers only its own routes (plus GET /api/v1/health, so every URL can be
/// probed the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    /// POST /api/v1/process: one image or short video (FF_MAX_SYNC_VIDEO_SECS) in, one out.
    Process,
    /// POST /api/v1/jobs: stores the inputs and the job record; the worker function runs it.
    JobCreate,
    /// GET /api/v1/jobs, GET /api/v1/jobs/{id}.
    JobStatus,
    /// GET /api/v1/jobs/{id}/result: a redirect to a presigned URL on S3.
    JobResult,
    /// DELETE /api/v1/jobs/{id}: cancels and removes a job.
    JobDelete,
    /// GET /api/v1/models, POST /api/v1/models/download, GET /api/v1/processors.
    Models,
    /// GET /api/v1/system.
    System,
}

const HEALTH: (Method, &str) = (Method::GET, "/api/v1/health");

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

    /// The (method, path) pairs the function answers, in axum's path syntax.
    pub fn routes(self) -> Vec<(Method, &'static str)> {
        let own: &[(Method, &str)] = match self {
            Function::Process => &[(Method::POST, "/api/v1/process")],
            Function::JobCreate => &[(Method::POST, "/api/v1/jobs")],
            Function::JobStatus => &[(Method::GET, "/api/v1/jobs"), (Method::GET, "/api/v1/jobs/{id}")],
            Function::JobResult => &[(Method::GET, "/api/v1/jobs/{id}/result")],
            Function::JobDelete => &[(Method::DELETE, "/api/v1/jobs/{id}")],
            Function::Models => &[
                (Method::GET, "/api/v1/models"),
                (Method::POST, "/api/v1/models/download"),
                (Method::GET, "/api/v1/processors"),
            ],
            Function::System => &[(Method::GET, "/api/v1/system")],
        };
        own.iter().cloned().chain([HEALTH]).collect()
    }
}

/// The full API router behind a gate that lets through only the function's routes, so the
/// handlers, limits, timeout and error mapping are exactly those of `ff serve`. Another route is
/// the same JSON 404 (unknown path) or 405 (known path, other method) as anywhere else.
pub fn function_router(function: Function, state: AppState) -> Router {
    let routes = function.routes();
    let gate = move |request: Request, next: Next| {
        let admitted = admit(&routes, request.method(), request.uri().path());
        async move {
            match admitted {
                Admit::Yes => next.run(request).await,
                Admit::NotFound { method, path } => ApiError::NotFound { method, path }.into_response(),
                Admit::OtherMethod { method, path } => ApiError::MethodNotAllowed { method, path }.into_response(),
            }
        }
    };
    let gated = router(state.clone()).layer(axum::middleware::from_fn(gate));
    match function {
        // Only /process answers with files; job results already redirect to presigned URLs.
        Function::Process => crate::with_large_response_offload(gated, &state),
        _ => gated,
    }
}

enum Admit {
    Yes,
    NotFound { method: String, path: String },
    OtherMethod { method: String, path: String },
}

fn admit(routes: &[(Method, &str)], method: &Method, path: &str) -> Admit {
    let matching: Vec<&Method> =
        routes.iter().filter(|(_, route)| route_matches(route, path)).map(|(m, _)| m).collect();
    let (method_text, path_text) = (method.to_string(), path.to_string());
    if matching.contains(&method) {
        Admit::Yes
    } else if matching.is_empty() {
        Admit::NotFound { method: method_text, path: path_text }
    } else {
        Admit::OtherMethod { method: method_text, path: path_text }
    }
}

/// `route` in axum's syntax, where a `{name}` segment matches any one non-empty segment.
fn route_matches(route: &str, path: &str) -> bool {
    let (route, path): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    route.len() == path.len()
        && route.iter().zip(&path).all(|(r, p)| r == p || (r.starts_with('{') && r.ends_with('}') && !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_match_whole_segments() {
        assert!(route_matches("/api/v1/jobs/{id}", "/api/v1/jobs/abc"));
        assert!(!route_matches("/api/v1/jobs/{id}", "/api/v1/jobs/"));
        assert!(!route_matches("/api/v1/jobs/{id}", "/api/v1/jobs/abc/result"));
        assert!(route_matches("/api/v1/jobs", "/api/v1/jobs"));
        assert!(!route_matches("/api/v1/jobs", "/api/v1/jobsx"));
    }

    #[test]
    fn a_known_path_with_another_method_is_405_and_an_unknown_one_404() {
        let routes = Function::JobStatus.routes();
        assert!(matches!(admit(&routes, &Method::GET, "/api/v1/jobs/abc"), Admit::Yes));
        assert!(matches!(admit(&routes, &Method::DELETE, "/api/v1/jobs/abc"), Admit::OtherMethod { .. }));
        assert!(matches!(admit(&routes, &Method::POST, "/api/v1/process"), Admit::NotFound { .. }));
        assert!(matches!(admit(&routes, &Method::GET, "/api/v1/health"), Admit::Yes));
    }
}
