//! What every handler shares.

use super::db::Db;
use std::sync::Arc;

/// The service's shared state: cheap to clone (a pool and `Arc`s).
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    /// `/openapi.json` and `/docs`, rendered once at start.
    pub docs: Arc<Docs>,
    /// The slot-token secret, read from `settings` at first use.
    pub booking_secret: Arc<tokio::sync::OnceCell<Vec<u8>>>,
    /// The mobile-sync cookie key and epoch, read from `settings` at first use.
    pub sync_cookie: Arc<tokio::sync::OnceCell<super::sync::SyncCookie>>,
    /// Settings and technicians as slot searches read them, parsed once per change.
    pub operation_cache: Arc<super::operation_cache::OperationCache>,
    /// The /dispatch page's tile server (`despacho serve --map-tiles`), if any.
    pub map_tiles: Option<Arc<super::map_tiles::MapTiles>>,
    /// Networks webhook endpoints may be in besides the public internet.
    pub webhook_targets: super::notify::targets::WebhookTargets,
}

/// The API's description, rendered once.
#[derive(Debug)]
pub struct Docs {
    pub openapi_json: String,
    pub html: String,
}

impl AppState {
    pub fn new(db: Db) -> Self {
        let openapi = super::openapi::document();
        let html = super::openapi::docs_html(&openapi);
        let openapi_json =
            serde_json::to_string_pretty(&openapi).expect("an OpenAPI document always serialises");
        AppState {
            db,
            docs: Arc::new(Docs { openapi_json, html }),
            booking_secret: Arc::default(),
            sync_cookie: Arc::default(),
            operation_cache: Arc::default(),
            map_tiles: None,
            webhook_targets: Default::default(),
        }
    }
}
