//! `/dispatch`: the dispatcher's web page (docs/dispatch.md). Static HTML, JavaScript
//! and CSS compiled into the binary (`include_str!`): no CDN, no build step, nothing
//! fetched from the internet (unless `despacho serve --map-tiles` names a tile server
//! for the map, [`crate::server::dispatch::map_tiles`]). The page calls the plan endpoints with a dispatcher key
//! typed into it (kept in the tab's `sessionStorage`); the assets need no key.

use crate::server::dispatch::map_tiles::MapTiles;
use crate::server::http::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dispatch", get(index))
        .route("/dispatch/app.js", get(script))
        .route("/dispatch/style.css", get(style))
        .route("/dispatch/config.json", get(config))
}

/// The page may only load its own script and style and talk to this server; images
/// also from the tile server when one is configured.
fn csp(tiles: Option<&MapTiles>) -> String {
    let tile_origin = tiles.map(|t| format!(" {}", t.origin)).unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data:{tile_origin}; object-src 'none'; base-uri 'none'"
    )
}

async fn index(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                csp(state.map_tiles.as_deref()),
            ),
        ],
        INDEX,
    )
}

/// What the page needs to know of the server before a key is typed: the tile server.
async fn config(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({ "map_tiles": state.map_tiles.as_deref() }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_allows_images_from_the_tile_origin_only_when_configured() {
        assert_eq!(
            csp(None),
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"
        );
        let tiles = MapTiles::parse("https://t.example.org:8443/{z}/{x}/{y}.png", "").unwrap();
        assert_eq!(
            csp(Some(&tiles)),
            "default-src 'self'; img-src 'self' data: https://t.example.org:8443; object-src 'none'; base-uri 'none'"
        );
    }
}
