//! API keys (admin only): create (the secret is shown once), list, revoke; and the
//! bootstrap admin key from `DESPACHO_ADMIN_KEY`.

use crate::server::http::auth::{hash_key, new_secret, roles, Auth, Role};
use crate::server::http::body::Body;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::store::db::{on_pool, on_tx, Db, Tx};
use crate::server::store::ids::new_id;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The shortest secret accepted in `DESPACHO_ADMIN_KEY`.
pub const MIN_ADMIN_KEY_LEN: usize = 16;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", get(list).post(create))
        .route("/v1/api-keys/{id}", delete(revoke))
}

/// A new key.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Who or what uses the key, e.g. "whatsapp bot" or "Ana's phone".
    pub name: String,
    pub role: Role,
    /// Required for the `technician` role (their technician id), absent otherwise.
    #[serde(default)]
    pub technician_id: Option<String>,
}

/// A key as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub technician_id: Option<String>,
    /// The first characters of the secret, to recognise a key.
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its secret is shown.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// Send as `Authorization: Bearer <secret>`. Shown once; only its hash is stored.
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKey>,
}

const SELECT: &str = "SELECT id, name, role, technician_id, key_prefix, created_at, revoked_at \
                      FROM api_keys";

#[utoipa::path(post, path = "/v1/api-keys", tag = "api keys", security(("bearer" = [])),
    description = "Creates an API key. Roles: admin. The secret is in this response only.",
    request_body = NewApiKey,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "invalid role / technician"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    auth.require(roles::ADMIN)?;
    let new: NewApiKey = body.json_object()?;
    let name = new.name.trim().to_owned();
    let mut details = Vec::new();
    if name.is_empty() || name.chars().count() > 200 {
        details.push(ErrorDetail::new(
            "$.name",
            "invalid_name",
            "give the key a name of 1 to 200 characters",
        ));
    }
    match (new.role, &new.technician_id) {
        (Role::Technician, None) => details.push(ErrorDetail::new(
            "$.technician_id",
            "missing_field",
            "a technician key needs the technician_id of its technician",
        )),
        (Role::Technician, Some(_)) | (_, None) => {}
        (role, Some(_)) => details.push(ErrorDetail::new(
            "$.technician_id",
            "unexpected_field",
            format!(
                "only technician keys name a technician; remove technician_id for a {role} key"
            ),
        )),
    }
    if !details.is_empty() {
        return Err(ApiError::validation(details));
    }
    let created = state
        .db
        .write(move |tx| {
            let (name, new) = (name.clone(), new.clone());
            Box::pin(async move {
                if let Some(t) = &new.technician_id {
                    if !technician_exists(tx, t).await? {
                        return Err(ApiError::validation(vec![ErrorDetail::new(
                            "$.technician_id",
                            "unknown_technician",
                            format!("there is no technician with id `{t}`"),
                        )]));
                    }
                }
                let secret = new_secret()?;
                let key =
                    insert_key(tx, &name, new.role, new.technician_id.as_deref(), &secret).await?;
                Ok(CreatedApiKey { key, secret })
            })
        })
        .await?;
    tracing::info!(key_id = %created.key.id, role = %created.key.role, by = %auth.key_id, "API key created");
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api keys", security(("bearer" = [])),
    description = "Lists every API key, revoked ones included, without secrets. Roles: admin.",
    responses((status = 200, body = ApiKeyList),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, auth: Auth) -> Result<Json<ApiKeyList>, ApiError> {
    auth.require(roles::ADMIN)?;
    let sql = format!("{SELECT} ORDER BY created_at, id");
    let items: Vec<ApiKey> = on_pool!(&state.db, |pool| {
        sqlx::query_as(&sql).fetch_all(pool).await
    })?;
    Ok(Json(ApiKeyList { items }))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api keys", security(("bearer" = [])),
    description = "Revokes a key: it stops working at once. Revoking a revoked key changes nothing. Roles: admin.",
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = ApiKey, description = "the key, now revoked"),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    auth.require(roles::ADMIN)?;
    let key = state
        .db
        .write(move |tx| {
            let id = id.clone();
            Box::pin(async move {
                revoke_key(tx, &id, crate::server::store::db::now())
                    .await?
                    .ok_or_else(|| ApiError::not_found("API key", id))
            })
        })
        .await?;
    tracing::info!(key_id = %key.id, by = %auth.key_id, "API key revoked");
    Ok(Json(key))
}

// ---------------------------------------------------------------------------------------
// Store

async fn technician_exists(tx: &mut Tx, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM technicians WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    Ok(found.is_some())
}

/// Stores a key whose secret is `secret` (only its hash and first characters are kept).
pub async fn insert_key(
    tx: &mut Tx,
    name: &str,
    role: Role,
    technician_id: Option<&str>,
    secret: &str,
) -> Result<ApiKey, ApiError> {
    const SQL: &str = "INSERT INTO api_keys \
        (id, name, role, technician_id, key_prefix, key_hash, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7) \
        RETURNING id, name, role, technician_id, key_prefix, created_at, revoked_at";
    let id = new_id::<8>("key")?;
    let prefix: String = secret.chars().take(12).collect();
    let hash = hash_key(secret);
    let now = crate::server::store::db::now();
    let key: ApiKey = on_tx!(tx, |conn| {
        sqlx::query_as(SQL)
            .bind(&id)
            .bind(name)
            .bind(role.as_str())
            .bind(technician_id)
            .bind(&prefix)
            .bind(&hash)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
    })?;
    Ok(key)
}

/// Revokes key `id` (keeps an earlier revocation time); `None` if there is no such key.
pub async fn revoke_key(
    tx: &mut Tx,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<ApiKey>, sqlx::Error> {
    const SQL: &str = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
        RETURNING id, name, role, technician_id, key_prefix, created_at, revoked_at";
    on_tx!(tx, |conn| {
        sqlx::query_as(SQL)
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
    })
}

/// Revokes every live key of `technician` (when the technician is deleted, so a key of
/// theirs cannot read the jobs of a technician created later with the same id).
pub async fn revoke_technician_keys(
    tx: &mut Tx,
    technician: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "UPDATE api_keys SET revoked_at = $2 \
        WHERE technician_id = $1 AND revoked_at IS NULL";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(technician)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })
}

/// What [`ensure_admin_key`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminKeyOutcome {
    Created,
    AlreadyPresent,
    /// The key exists but was revoked through the API; it stays revoked.
    Revoked,
}

/// Makes `secret` (from `DESPACHO_ADMIN_KEY`) a working admin key, unless it is one
/// already. Idempotent: restarting with the same secret adds nothing. A key revoked
/// through the API stays revoked (revocation wins; a warning is logged).
pub async fn ensure_admin_key(db: &Db, secret: &str) -> Result<AdminKeyOutcome, ApiError> {
    if secret.trim().len() < MIN_ADMIN_KEY_LEN || secret.trim() != secret {
        return Err(ApiError::Internal(format!(
            "DESPACHO_ADMIN_KEY must be at least {MIN_ADMIN_KEY_LEN} characters without surrounding spaces"
        )));
    }
    let secret = secret.to_owned();
    db.write(move |tx| {
        let secret = secret.clone();
        Box::pin(async move {
            let hash = hash_key(&secret);
            let existing: Option<(String, Option<DateTime<Utc>>)> = on_tx!(tx, |conn| {
                sqlx::query_as("SELECT role, revoked_at FROM api_keys WHERE key_hash = $1")
                    .bind(&hash)
                    .fetch_optional(&mut *conn)
                    .await
            })?;
            match existing {
                None => {
                    insert_key(tx, "admin (DESPACHO_ADMIN_KEY)", Role::Admin, None, &secret)
                        .await?;
                    Ok(AdminKeyOutcome::Created)
                }
                Some((role, _)) if role != Role::Admin.as_str() => Err(ApiError::Internal(
                    "DESPACHO_ADMIN_KEY is already the secret of a non-admin key; choose another"
                        .to_owned(),
                )),
                Some((_, Some(_))) => Ok(AdminKeyOutcome::Revoked),
                Some((_, None)) => Ok(AdminKeyOutcome::AlreadyPresent),
            }
        })
    })
    .await
}
