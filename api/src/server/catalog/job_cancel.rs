//! Cancelling a job, and taking a cancellation back.
//!
//! `POST /v1/jobs/{id}/cancel` makes the job `cancelled`: day problems take open jobs
//! only, so it is no longer planned, and (in the same transaction) its holder's phone
//! shows it cancelled at the next pull (`cancelled` is a dispatcher field of the sync
//! record, mobile-sync's merge rules). What the technician records on it afterwards —
//! typically work done offline before the phone heard of the cancellation — is kept and
//! flagged `work_on_cancelled_job` for the dispatchers, never refused (RELIABILITY.md's
//! conflict rule). `POST /v1/jobs/{id}/reinstate` makes it open again.
//!
//! Both are idempotent: cancelling a cancelled job changes nothing and answers the job.

use crate::server::catalog::jobs::{JobRecord, JobStatus};
use crate::server::http::auth::{roles, Auth};
use crate::server::http::error::ApiError;
use crate::server::http::state::AppState;
use crate::server::store::db::{now, on_tx, Tx};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use despacho_mobile_sync::DispatchChange;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/reinstate", post(reinstate))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])),
    description = "Cancels the job: it is no longer planned, and its technician's phone shows it \
        cancelled at the next pull. Work the technician records on it afterwards (e.g. done offline) \
        is kept and flagged `work_on_cancelled_job` for the dispatchers. Cancelling a cancelled job \
        changes nothing. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    responses((status = 200, body = JobRecord),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    set_status(state, auth, id, JobStatus::Cancelled).await
}

#[utoipa::path(post, path = "/v1/jobs/{id}/reinstate", tag = "jobs", security(("bearer" = [])),
    description = "Takes a cancellation back: the job is open (planned again) and its technician's \
        phone shows it active at the next pull. Reinstating an open job changes nothing. Roles: \
        admin, dispatcher.",
    params(("id" = String, Path)),
    responses((status = 200, body = JobRecord),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn reinstate(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    set_status(state, auth, id, JobStatus::Open).await
}

async fn set_status(
    state: AppState,
    auth: Auth,
    id: String,
    status: JobStatus,
) -> Result<Json<JobRecord>, ApiError> {
    auth.require(roles::STAFF)?;
    let changed = state
        .db
        .write({
            let id = id.clone();
            move |tx| {
                let id = id.clone();
                Box::pin(async move { set_status_in(tx, &id, status, now()).await })
            }
        })
        .await?;
    let record = state
        .db
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("job", &id))?;
    tracing::info!(job = %id, status = status.as_str(), changed, by = %auth.key_id, "job status set");
    Ok(Json(record))
}

/// Sets job `id`'s status in `tx` and, when it changed, the `cancelled` field of its sync
/// record (the holder's scope gets the new view). `false` when it already had `status`.
pub async fn set_status_in(
    tx: &mut Tx,
    id: &str,
    status: JobStatus,
    at: DateTime<Utc>,
) -> Result<bool, ApiError> {
    // Locked on PostgreSQL, so two dispatchers' calls do not both apply the change.
    let sql = match tx.backend() {
        crate::server::Backend::Postgres => "SELECT status FROM jobs WHERE id = $1 FOR UPDATE",
        crate::server::Backend::Sqlite => "SELECT status FROM jobs WHERE id = $1",
    };
    let current: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let current = current.ok_or_else(|| ApiError::not_found("job", id))?;
    if current == status.as_str() {
        return Ok(false);
    }
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE jobs SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(status.as_str())
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    let change = match status {
        JobStatus::Cancelled => DispatchChange::Cancel,
        JobStatus::Open => DispatchChange::Reinstate,
    };
    crate::server::sync::push_pull::dispatcher_edit(tx, id, vec![change], at).await?;
    Ok(true)
}
