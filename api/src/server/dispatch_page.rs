//! `/dispatch`: the dispatcher's web page (docs/dispatch.md). Static HTML, JavaScript
//! and CSS compiled into the binary (`include_str!`): no CDN, no build step, nothing
//! fetched from the internet. The page calls the plan endpoints with a dispatcher key
//! typed into it (kept in the tab's `sessionStorage`); the assets need no key.

use super::state::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("dispatch/index.html");
const SCRIPT: &str = include_str!("dispatch/app.js");
const STYLE: &str = include_str!("dispatch/style.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dispatch", get(index))
        .route("/dispatch/app.js", get(script))
        .route("/dispatch/style.css", get(style))
}

/// The page may only load its own script and style and talk to this server.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'";

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        INDEX,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
