//! What every handler shares.

use crate::server::store::db::Db;
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
    pub sync_cookie: Arc<tokio::sync::OnceCell<crate::server::sync::push_pull::SyncCookie>>,
    /// Settings and technicians as slot searches read them, parsed once per change.
    pub operation_cache: Arc<crate::server::catalog::operation_cache::OperationCache>,
    /// The /dispatch page's tile server (`despacho serve --map-tiles`), if any.
    pub map_tiles: Option<Arc<crate::server::dispatch::map_tiles::MapTiles>>,
    /// Networks webhook endpoints may be in besides the public internet.
    pub webhook_targets: crate::server::messages::notify::targets::WebhookTargets,
}

/// The API's description, rendered once.
#[derive(Debug)]
pub struct Docs {
    pub openapi_json: String,
    pub html: String,
}

impl AppState {
    /// The state of a service on `db` whose API description is `docs` (rendered by the
    /// composition root, [`crate::server::openapi::rendered`], which knows every route).
    pub fn new(db: Db, docs: Docs) -> Self {
        AppState {
            db,
            docs: Arc::new(docs),
            booking_secret: Arc::default(),
            sync_cookie: Arc::default(),
            operation_cache: Arc::default(),
            map_tiles: None,
            webhook_targets: Default::default(),
        }
    }
}
