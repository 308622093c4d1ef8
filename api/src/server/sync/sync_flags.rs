//! The dispatchers' queue of sync flags: what a technician recorded that the server
//! kept but could not square with what it knows (table `sync_flags`, docs/sync.md).
//!
//! A fact is never dropped for a conflict: it is stored, and a flag says what to look
//! at. Flags come from `despacho_mobile_sync::merge` (work on a cancelled job, facts from
//! a former technician, duplicate serials, wrong clocks) and from the checks of the
//! field facts against the server's records (`upsells.rs`, `equipment.rs`,
//! `job_lifecycle.rs`): an unknown upsell product, an unknown serial collected, a serial
//! installed at another customer, a visit event the booking refused.
//!
//! - `GET /v1/sync/flags?status=open|resolved|all&job_id=&kind=&limit=`: oldest first.
//! - `POST /v1/sync/flags/{id}/resolve {resolution?}`: marks one worked; again → the same.

use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{Body, Query};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::server::http::state::AppState;
use crate::server::store::db::{now, on_pool, on_tx, Tx};
use crate::server::store::ids::new_id;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// The longest resolution note.
pub const MAX_RESOLUTION_CHARS: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sync/flags", get(list))
        .route("/v1/sync/flags/{id}/resolve", post(resolve))
}

/// Adds `flag` (a JSON object whose `flag` member is its kind) on job `job` to the queue,
/// once per job and flag: raising the same flag again changes nothing.
pub async fn raise(
    tx: &mut Tx,
    job: &str,
    flag: &Value,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    const SQL: &str = "INSERT INTO sync_flags (id, job_id, kind, flag, raised_at) \
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, flag) DO NOTHING";
    let kind = flag["flag"].as_str().unwrap_or("").to_owned();
    let id = new_id::<12>("flg")?;
    let text = flag.to_string();
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(&id)
            .bind(job)
            .bind(&kind)
            .bind(&text)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// One flag of the queue.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncFlag {
    pub id: String,
    pub job_id: String,
    /// `work_on_cancelled_job`, `fact_from_former_technician`, `duplicate_serial`,
    /// `device_clock_off`, `unknown_upsell_product`, `inactive_upsell_product`,
    /// `upsell_terms_differ`, `unknown_serial`, `serial_of_another_customer`,
    /// `serial_installed_elsewhere`, `visit_event_refused`, `visit_failed`.
    pub kind: String,
    /// The flag's facts: which fact, serial, product, technician… (`flag` repeats `kind`).
    #[schema(value_type = Object)]
    pub flag: Value,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The API key that resolved it.
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncFlagList {
    pub items: Vec<SyncFlag>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagQuery {
    /// `open` (default), `resolved` or `all`.
    pub status: Option<String>,
    /// Only this job's flags.
    pub job_id: Option<String>,
    /// Only flags of this kind.
    pub kind: Option<String>,
    /// 1 to 1000; default 100.
    pub limit: Option<u32>,
}

type Row = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
);

const COLUMNS: &str = "id, job_id, kind, flag, raised_at, resolved_at, resolved_by, resolution";

fn from_row(r: Row) -> Result<SyncFlag, ApiError> {
    let flag = serde_json::from_str(&r.3)
        .map_err(|e| ApiError::Internal(format!("stored flag {} is not JSON: {e}", r.0)))?;
    Ok(SyncFlag {
        id: r.0,
        job_id: r.1,
        kind: r.2,
        flag,
        raised_at: r.4,
        resolved_at: r.5,
        resolved_by: r.6,
        resolution: r.7,
    })
}

fn bad_query(param: &str, message: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        message: message.clone(),
        details: vec![ErrorDetail::new(param, "invalid_value", message)],
    }
}

#[utoipa::path(get, path = "/v1/sync/flags", tag = "sync", security(("bearer" = [])),
    description = "The dispatchers' queue of sync flags, oldest first: facts the server kept but could not square with its \
        records (duplicate or unknown serials, unknown upsell products, work on cancelled jobs, visit events a booking \
        refused…). Roles: admin, dispatcher.",
    params(FlagQuery),
    responses((status = 200, body = SyncFlagList),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<FlagQuery>,
) -> Result<Json<SyncFlagList>, ApiError> {
    auth.require(roles::STAFF)?;
    let status = match query.status.as_deref().unwrap_or("open") {
        "open" => "resolved_at IS NULL",
        "resolved" => "resolved_at IS NOT NULL",
        "all" => "TRUE",
        other => {
            return Err(bad_query(
                "status",
                format!("status `{other}`: use open, resolved or all"),
            ))
        }
    };
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(bad_query(
                "limit",
                format!("limit {n} is not between 1 and {MAX_LIMIT}"),
            ))
        }
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM sync_flags WHERE {status} \
         AND ($1 IS NULL OR job_id = $1) AND ($2 IS NULL OR kind = $2) \
         ORDER BY raised_at, id LIMIT $3"
    );
    let rows: Vec<Row> = on_pool!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(query.job_id.as_deref())
            .bind(query.kind.as_deref())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
    })?;
    let items = rows
        .into_iter()
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(SyncFlagList { items }))
}

/// How a flag was worked.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveFlag {
    /// What was done, at most 500 characters.
    #[serde(default)]
    pub resolution: Option<String>,
}

#[utoipa::path(post, path = "/v1/sync/flags/{id}/resolve", tag = "sync", security(("bearer" = [])),
    description = "Marks a flag as worked, with an optional note. A flag already resolved is answered as it is \
        (the first resolution stays). Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    request_body = ResolveFlag,
    responses((status = 200, body = SyncFlag),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<SyncFlag>, ApiError> {
    auth.require(roles::STAFF)?;
    // An empty body is "no note".
    let input: ResolveFlag = if body.bytes.iter().all(u8::is_ascii_whitespace) {
        ResolveFlag::default()
    } else {
        body.json_object()?
    };
    let resolution = match input.resolution.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) if r.chars().count() > MAX_RESOLUTION_CHARS => {
            return Err(ApiError::validation(vec![ErrorDetail::new(
                "$.resolution",
                "too_long",
                format!("a resolution is at most {MAX_RESOLUTION_CHARS} characters"),
            )]))
        }
        Some(r) => Some(r.to_owned()),
    };
    let by = auth.key_id.clone();
    let flag = state
        .db
        .write(move |tx| {
            let (id, resolution, by) = (id.clone(), resolution.clone(), by.clone());
            Box::pin(async move {
                const SET: &str = "UPDATE sync_flags SET resolved_at = $2, resolved_by = $3, \
                    resolution = $4 WHERE id = $1 AND resolved_at IS NULL";
                on_tx!(tx, |conn| {
                    sqlx::query(SET)
                        .bind(&id)
                        .bind(now())
                        .bind(&by)
                        .bind(resolution.as_deref())
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                let sql = format!("SELECT {COLUMNS} FROM sync_flags WHERE id = $1");
                let row: Option<Row> = on_tx!(tx, |conn| {
                    sqlx::query_as(&sql)
                        .bind(&id)
                        .fetch_optional(&mut *conn)
                        .await
                })?;
                row.map(from_row)
                    .transpose()?
                    .ok_or_else(|| ApiError::not_found("sync flag", id))
            })
        })
        .await?;
    tracing::info!(flag = %flag.id, kind = %flag.kind, by = %auth.key_id, "sync flag resolved");
    Ok(Json(flag))
}

/// Every flag of job `job`, open or resolved, oldest first.
pub async fn of_job(tx: &mut Tx, job: &str) -> Result<Vec<SyncFlag>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM sync_flags WHERE job_id = $1 ORDER BY raised_at, id");
    let rows: Vec<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(&sql).bind(job).fetch_all(&mut *conn).await
    })?;
    rows.into_iter().map(from_row).collect()
}
