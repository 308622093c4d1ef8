//! Technicians: the solver's [`Technician`] (skills with levels, home, shifts, breaks,
//! costs, territory, van capacity, max jobs per day), validated with the solver's rules
//! and stored as its JSON.
//!
//! `POST /v1/technicians` creates (409 if the id is taken), `PUT /v1/technicians/{id}`
//! creates or replaces, `DELETE` refuses (409) while jobs are pinned to the technician.
//! A technician key reads only its own record.

use crate::server::catalog::settings::settings_in;
use crate::server::catalog::validation::{check_technicians, Base};
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{Body, Query};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::pagination::{ListQuery, Page};
use crate::server::http::solver_schemas::TechnicianDoc;
use crate::server::http::state::AppState;
use crate::server::store::db::{on_pool, on_tx, Db, Tx};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use despacho_solver::field::input::Technician;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/technicians", get(list).post(create))
        .route(
            "/v1/technicians/{id}",
            get(read).put(replace).delete(remove),
        )
}

/// A stored technician.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TechnicianRecord {
    pub id: String,
    /// The technician as given (the body of `POST`/`PUT`).
    #[schema(value_type = TechnicianDoc)]
    pub technician: Technician,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TechnicianList {
    pub items: Vec<TechnicianRecord>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

#[utoipa::path(post, path = "/v1/technicians", tag = "technicians", security(("bearer" = [])),
    description = "Creates a technician. Roles: admin, dispatcher.",
    request_body = TechnicianDoc,
    responses((status = 201, body = TechnicianRecord),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 409, body = crate::server::http::error::ErrorBody, description = "the id is taken (`already_exists`)"),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path")))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<TechnicianRecord>), ApiError> {
    auth.require(roles::STAFF)?;
    let technician: Technician = body.json_object()?;
    let record = state
        .db
        .write(move |tx| {
            let technician = technician.clone();
            Box::pin(async move {
                validate_in(tx, &technician).await?;
                if exists(tx, &technician.id).await? {
                    return Err(already_exists(&technician.id));
                }
                upsert(tx, &technician, crate::server::store::db::now()).await
            })
        })
        .await?;
    tracing::info!(technician = %record.id, by = %auth.key_id, "technician created");
    Ok((StatusCode::CREATED, Json(record)))
}

#[utoipa::path(put, path = "/v1/technicians/{id}", tag = "technicians", security(("bearer" = [])),
    description = "Creates (201) or replaces (200) technician `id`; the body's `id` must be `id`. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    request_body = TechnicianDoc,
    responses((status = 200, body = TechnicianRecord), (status = 201, body = TechnicianRecord),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<TechnicianRecord>), ApiError> {
    auth.require(roles::STAFF)?;
    let technician: Technician = body.json_object()?;
    if technician.id != id {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$.id",
            "id_mismatch",
            format!(
                "the body's id `{}` is not the id in the URL (`{id}`); they must be equal",
                technician.id
            ),
        )]));
    }
    let (created, record) = state
        .db
        .write(move |tx| {
            let technician = technician.clone();
            Box::pin(async move {
                validate_in(tx, &technician).await?;
                let created = !exists(tx, &technician.id).await?;
                Ok((
                    created,
                    upsert(tx, &technician, crate::server::store::db::now()).await?,
                ))
            })
        })
        .await?;
    tracing::info!(technician = %record.id, created, by = %auth.key_id, "technician stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)))
}

#[utoipa::path(get, path = "/v1/technicians", tag = "technicians", security(("bearer" = [])),
    description = "Lists technicians by id, a page at a time. Roles: admin, dispatcher; technician (only their own record).",
    params(ListQuery),
    responses((status = 200, body = TechnicianList),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<ListQuery>,
) -> Result<Json<TechnicianList>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let limit = query.limit()?;
    let only = auth.technician_scope()?.map(str::to_owned);
    let page = state
        .db
        .list_technicians(query.after.as_deref(), limit, only.as_deref())
        .await?;
    Ok(Json(TechnicianList {
        items: page.items,
        next_after: page.next_after,
    }))
}

#[utoipa::path(get, path = "/v1/technicians/{id}", tag = "technicians", security(("bearer" = [])),
    description = "One technician. Roles: admin, dispatcher; technician (their own only).",
    params(("id" = String, Path)),
    responses((status = 200, body = TechnicianRecord),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TechnicianRecord>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    if auth.technician_scope()?.is_some_and(|own| own != id) {
        return Err(ApiError::Forbidden {
            role: auth.role,
            allowed: roles::STAFF,
        });
    }
    let record = state
        .db
        .technician(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("technician", id))?;
    Ok(Json(record))
}

#[utoipa::path(delete, path = "/v1/technicians/{id}", tag = "technicians", security(("bearer" = [])),
    description = "Deletes a technician and revokes their API keys. Refused (409 `technician_in_use`) while jobs are pinned to them. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody), (status = 409, body = crate::server::http::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(roles::STAFF)?;
    let deleted_id = id.clone();
    state
        .db
        .write(move |tx| {
            let id = id.clone();
            Box::pin(async move {
                let pinned: Option<String> = on_tx!(tx, |conn| {
                    sqlx::query_scalar("SELECT id FROM jobs WHERE pinned_technician = $1 LIMIT 1")
                        .bind(&id)
                        .fetch_optional(&mut *conn)
                        .await
                })?;
                if let Some(job) = pinned {
                    return Err(ApiError::conflict(
                        "technician_in_use",
                        format!("job `{job}` (and maybe others) is pinned to technician `{id}`; unpin or remove those jobs first"),
                    ));
                }
                let done = on_tx!(tx, |conn| {
                    sqlx::query("DELETE FROM technicians WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                if done == 0 {
                    return Err(ApiError::not_found("technician", id));
                }
                // Their keys die with them.
                crate::server::catalog::api_keys::revoke_technician_keys(tx, &id, crate::server::store::db::now()).await?;
                Ok(())
            })
        })
        .await?;
    tracing::info!(technician = %deleted_id, by = %auth.key_id, "technician deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn already_exists(id: &str) -> ApiError {
    ApiError::Conflict {
        code: "already_exists",
        message: format!("there is already a technician with id `{id}`; use PUT /v1/technicians/{id} to replace it"),
        details: vec![ErrorDetail::new("$.id", "already_exists", "this id is taken")],
    }
}

/// Checks `technician` with the solver's rules under the stored settings.
async fn validate_in(tx: &mut Tx, technician: &Technician) -> Result<(), ApiError> {
    let settings = settings_in(tx).await?;
    let problems = check_technicians(
        std::slice::from_ref(technician),
        &settings,
        Base::Single("$"),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(problems))
    }
}

// ---------------------------------------------------------------------------------------
// Store

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    data: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for TechnicianRecord {
    type Error = ApiError;

    fn try_from(row: Row) -> Result<Self, ApiError> {
        let technician = serde_json::from_str(&row.data).map_err(|e| {
            ApiError::Internal(format!("stored technician `{}` is not valid: {e}", row.id))
        })?;
        Ok(TechnicianRecord {
            id: row.id,
            technician,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, data, created_at, updated_at";

/// Whether technician `id` is stored.
pub async fn exists(tx: &mut Tx, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM technicians WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    Ok(found.is_some())
}

/// Every stored technician id.
pub async fn ids(tx: &mut Tx) -> Result<Vec<String>, sqlx::Error> {
    on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM technicians ORDER BY id")
            .fetch_all(&mut *conn)
            .await
    })
}

/// Inserts or replaces `technician` (keeping its creation time).
pub async fn upsert(
    tx: &mut Tx,
    technician: &Technician,
    now: DateTime<Utc>,
) -> Result<TechnicianRecord, ApiError> {
    const SQL: &str = "INSERT INTO technicians (id, name, data, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $4) \
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, data = excluded.data, \
        updated_at = excluded.updated_at \
        RETURNING id, data, created_at, updated_at";
    let data = serde_json::to_string(technician).expect("a technician serialises");
    let row: Row = on_tx!(tx, |conn| {
        sqlx::query_as(SQL)
            .bind(&technician.id)
            .bind(&technician.name)
            .bind(&data)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
    })?;
    row.try_into()
}

impl Db {
    pub async fn technician(&self, id: &str) -> Result<Option<TechnicianRecord>, ApiError> {
        let sql = format!("SELECT {COLUMNS} FROM technicians WHERE id = $1");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// Technicians with ids after `after`, by id; only technician `only` when given.
    pub async fn list_technicians(
        &self,
        after: Option<&str>,
        limit: u32,
        only: Option<&str>,
    ) -> Result<Page<TechnicianRecord>, ApiError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM technicians \
             WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR id = $2) \
             ORDER BY id LIMIT $3"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(after)
                .bind(only)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
        })?;
        let items = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<TechnicianRecord>, _>>()?;
        Ok(Page::new(items, limit, |r| r.id.clone()))
    }
}
