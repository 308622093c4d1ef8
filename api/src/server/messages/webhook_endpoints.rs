//! Webhook endpoints (admin only): where the chat platform integration receives customer
//! messages. Each has its own signing secret, made by the service and shown once.
//!
//! - `POST /v1/webhook-endpoints {url}` → 201 with the `secret`;
//! - `GET /v1/webhook-endpoints` → every endpoint, without secrets;
//! - `DELETE /v1/webhook-endpoints/{id}` → 204; messages go to the remaining ones.

use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Body;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::messages::notify::targets::WebhookTargets;
use crate::server::messages::notify::webhook::Endpoint;
use crate::server::store::db::{now, on_pool, on_tx, Db};
use crate::server::store::ids::new_id;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook-endpoints", get(list).post(create))
        .route("/v1/webhook-endpoints/{id}", delete(remove))
}

/// A new endpoint.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookEndpoint {
    /// `http://host[:port]/path` of the chat platform integration. This build has no TLS
    /// client: use plain HTTP on a private network, or a local TLS-terminating proxy.
    /// Loopback, link-local and private addresses are refused (`refused_target`) unless
    /// the operator allows their network (`despacho serve --webhook-allow-network`).
    pub url: String,
}

/// An endpoint as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// An endpoint just made: the only time its secret is shown.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhookEndpoint {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// Verify `Despacho-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`
    /// with it. Shown once.
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointList {
    pub items: Vec<WebhookEndpoint>,
}

fn check_url(url: &str, targets: &WebhookTargets) -> Result<String, ApiError> {
    let url = url.trim();
    let problem = |message: String| {
        ApiError::validation(vec![ErrorDetail::new("$.url", "invalid_url", message)])
    };
    if url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem(
            "the URL has spaces or is longer than 2000 characters".to_owned(),
        ));
    }
    if url.starts_with("https://") {
        return Err(problem(
            "this build has no TLS client: use an http:// URL on a private network or a local \
             TLS-terminating proxy"
                .to_owned(),
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(problem(format!("`{url}` is not an http:// URL")));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(problem(format!(
            "`{url}` has no host (or has credentials in it)"
        )));
    }
    targets.check_host(host).map_err(|why| {
        ApiError::validation(vec![ErrorDetail::new("$.url", "refused_target", why)])
    })?;
    Ok(url.to_owned())
}

#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "messages", security(("bearer" = [])),
    description = "Adds an endpoint of the chat platform integration; the answer holds its signing secret, shown once. Roles: admin.",
    request_body = NewWebhookEndpoint,
    responses((status = 201, body = CreatedWebhookEndpoint),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<CreatedWebhookEndpoint>), ApiError> {
    auth.require(roles::ADMIN)?;
    let input: NewWebhookEndpoint = body.json_object()?;
    let created = CreatedWebhookEndpoint {
        endpoint: WebhookEndpoint {
            id: new_id::<8>("whk")?,
            url: check_url(&input.url, &state.webhook_targets)?,
            active: true,
            created_at: now(),
        },
        secret: new_id::<32>("whsec")?,
    };
    let stored = created.clone();
    state
        .db
        .write(move |tx| {
            let c = stored.clone();
            Box::pin(async move {
                on_tx!(tx, |conn| {
                    sqlx::query(
                        "INSERT INTO webhook_endpoints (id, url, secret, active, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&c.endpoint.id)
                    .bind(&c.endpoint.url)
                    .bind(&c.secret)
                    .bind(c.endpoint.active)
                    .bind(c.endpoint.created_at)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
                })?;
                Ok(())
            })
        })
        .await?;
    tracing::info!(endpoint = %created.endpoint.id, by = %auth.key_id, "webhook endpoint created");
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "messages", security(("bearer" = [])),
    description = "Every webhook endpoint, without secrets. Roles: admin.",
    responses((status = 200, body = WebhookEndpointList),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<WebhookEndpointList>, ApiError> {
    auth.require(roles::ADMIN)?;
    let items: Vec<WebhookEndpoint> = on_pool!(&state.db, |pool| {
        sqlx::query_as("SELECT id, url, active, created_at FROM webhook_endpoints ORDER BY id")
            .fetch_all(pool)
            .await
    })?;
    Ok(Json(WebhookEndpointList { items }))
}

#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "messages", security(("bearer" = [])),
    description = "Removes a webhook endpoint. Roles: admin.",
    params(("id" = String, Path)),
    responses((status = 204),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(roles::ADMIN)?;
    let target = id.clone();
    let removed = state
        .db
        .write(move |tx| {
            let id = target.clone();
            Box::pin(async move {
                Ok(on_tx!(tx, |conn| {
                    sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?)
            })
        })
        .await?;
    if removed == 0 {
        return Err(ApiError::not_found("webhook endpoint", id));
    }
    tracing::info!(endpoint = %id, by = %auth.key_id, "webhook endpoint removed");
    Ok(StatusCode::NO_CONTENT)
}

/// The active endpoints, with their secrets (for the worker).
pub async fn active(db: &Db) -> Result<Vec<Endpoint>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = on_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT id, url, secret FROM webhook_endpoints WHERE active = $1 ORDER BY id",
        )
        .bind(true)
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, url, secret)| Endpoint { id, url, secret })
        .collect())
}
