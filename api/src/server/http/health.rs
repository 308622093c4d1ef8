//! Probes for orchestrators, without authentication: `/healthz` (the process answers)
//! and `/readyz` (the database answers too).

use crate::server::http::state::AppState;
use crate::server::store::db::Backend;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// `sqlite` or `postgres` (readyz only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    description = "200 while the process runs. No key needed.",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        database: None,
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    description = "200 when the database answers, 503 otherwise. No key needed.",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = Some(
        match state.db.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .to_owned(),
    );
    match tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(Health {
                status: "ready".to_owned(),
                database,
            }),
        ),
        outcome => {
            let error = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable".to_owned(),
                    database,
                }),
            )
        }
    }
}
