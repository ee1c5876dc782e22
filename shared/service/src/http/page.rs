//! GET /: a page to try ff from a browser (upload sources and a target, see the people in it, map
//! sources to them, preview a frame, run a job, download the result). One self-contained file
//! built into the binary, fetching nothing from elsewhere; it calls only the public API, so it
//! doubles as an example of it.

use axum::response::Html;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub const PAGE_PATH: &str = "/";

pub fn router() -> Router<AppState> {
    Router::new().route(PAGE_PATH, get(page))
}

async fn page() -> Html<&'static str> {
    Html(include_str!("../../assets/index.html"))
}
