//! Jobs: visits to plan, each the solver's [`JobInput`] (kind, place, duration, required
//! skills, windows, priority, SLA, pins, equipment) plus its customer and status.
//!
//! Dispatchers and admins create and list them; a technician key sees only the jobs
//! pinned to its technician (`pinned_technician`) — the booking layer will widen this to
//! the jobs booked for them.

use super::auth::{roles, Auth};
use super::body::{Body, Query};
use super::customers;
use super::db::{on_pool, on_tx, Db, Tx};
use super::error::{ApiError, ErrorDetail};
use super::openapi::JobInputDoc;
use super::pagination::{Page, DEFAULT_LIMIT, MAX_LIMIT};
use super::settings::settings_in;
use super::state::AppState;
use super::technicians;
use super::validation::{check_jobs, Base};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use despacho_solver::field::input::JobInput;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list).post(create))
        .route("/v1/jobs/{id}", get(read))
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// To be planned (no booking yet).
    Open,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Open => "open",
        }
    }
}

impl TryFrom<String> for JobStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "open" => Ok(JobStatus::Open),
            other => Err(format!("unknown job status `{other}`")),
        }
    }
}

/// A job to create.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// The customer visited (a stored customer id), if known.
    #[serde(default)]
    pub customer_id: Option<String>,
    #[schema(value_type = JobInputDoc)]
    pub job: JobInput,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobRecord {
    pub id: String,
    pub customer_id: Option<String>,
    pub status: JobStatus,
    #[schema(value_type = JobInputDoc)]
    pub job: JobInput,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub items: Vec<JobRecord>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Items per page, 1 to 1000; default 100.
    pub limit: Option<u32>,
    /// Return jobs whose id sorts after this one (the `next_after` of the previous page).
    pub after: Option<String>,
    /// Only this customer's jobs.
    pub customer_id: Option<String>,
    /// Only jobs pinned to this technician (a technician key always gets only its own).
    pub technician_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    description = "Creates a job. Roles: admin, dispatcher.",
    request_body = NewJob,
    responses((status = 201, body = JobRecord),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "every problem, with its JSON path")))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    auth.require(roles::STAFF)?;
    let new: NewJob = body.json_object()?;
    let record = state
        .db
        .write(move |tx| {
            let new = new.clone();
            Box::pin(async move {
                let mut problems = Vec::new();
                if let Some(c) = &new.customer_id {
                    if !customers::exists(tx, c).await? {
                        problems.push(ErrorDetail::new(
                            "$.customer_id",
                            "unknown_customer",
                            format!("there is no customer with id `{c}`"),
                        ));
                    }
                }
                problems.extend(
                    validate_in(tx, std::slice::from_ref(&new.job), Base::Single("$.job")).await?,
                );
                if !problems.is_empty() {
                    return Err(ApiError::validation(problems));
                }
                let now = super::db::now();
                if !insert(tx, &new.job, new.customer_id.as_deref(), now).await? {
                    return Err(ApiError::Conflict {
                        code: "already_exists",
                        message: format!("there is already a job with id `{}`", new.job.id),
                        details: vec![ErrorDetail::new(
                            "$.job.id",
                            "already_exists",
                            "this id is taken",
                        )],
                    });
                }
                Ok(JobRecord {
                    id: new.job.id.clone(),
                    customer_id: new.customer_id,
                    status: JobStatus::Open,
                    job: new.job,
                    created_at: now,
                    updated_at: now,
                })
            })
        })
        .await?;
    tracing::info!(job = %record.id, by = %auth.key_id, "job created");
    Ok((StatusCode::CREATED, Json(record)))
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    description = "Lists jobs by id, a page at a time. Roles: admin, dispatcher; technician (only jobs pinned to them).",
    params(JobQuery),
    responses((status = 200, body = JobList),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<JobQuery>,
) -> Result<Json<JobList>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let limit = super::pagination::ListQuery {
        limit: query.limit,
        after: None,
    }
    .limit()?;
    let technician = match auth.technician_scope()? {
        Some(own) => Some(own.to_owned()),
        None => query.technician_id.clone(),
    };
    let page = state
        .db
        .list_jobs(&JobFilter {
            after: query.after.clone(),
            customer_id: query.customer_id.clone(),
            technician_id: technician,
            limit,
        })
        .await?;
    Ok(Json(JobList {
        items: page.items,
        next_after: page.next_after,
    }))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    description = "One job. Roles: admin, dispatcher; technician (404 for jobs not pinned to them).",
    params(("id" = String, Path)),
    responses((status = 200, body = JobRecord),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let record = state.db.job(&id).await?;
    // A technician does not learn whether another technician's job exists.
    let visible = |r: &JobRecord| match auth.technician_scope() {
        Ok(Some(own)) => r.job.pinned_technician.as_deref() == Some(own),
        Ok(None) => true,
        Err(_) => false,
    };
    match record {
        Some(r) if visible(&r) => Ok(Json(r)),
        _ => Err(ApiError::not_found("job", id)),
    }
}

/// Problems of `jobs` (paths under `base`) under the stored settings, technicians and
/// the stored jobs they refer to.
pub async fn validate_in(
    tx: &mut Tx,
    jobs: &[JobInput],
    base: Base<'_>,
) -> Result<Vec<ErrorDetail>, ApiError> {
    let settings = settings_in(tx).await?;
    let technician_ids = technicians::ids(tx).await?;
    let referenced: BTreeSet<&str> = jobs
        .iter()
        .flat_map(|j| [j.after_job.as_deref(), j.same_technician_as.as_deref()])
        .flatten()
        .filter(|id| !jobs.iter().any(|j| j.id == *id))
        .collect();
    let mut job_ids = Vec::new();
    for id in referenced {
        if exists(tx, id).await? {
            job_ids.push(id.to_owned());
        }
    }
    Ok(check_jobs(jobs, &settings, &technician_ids, &job_ids, base))
}

// ---------------------------------------------------------------------------------------
// Store

/// Which jobs [`Db::list_jobs`] returns.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub after: Option<String>,
    pub customer_id: Option<String>,
    pub technician_id: Option<String>,
    pub limit: u32,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    customer_id: Option<String>,
    status: String,
    data: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for JobRecord {
    type Error = ApiError;

    fn try_from(row: Row) -> Result<Self, ApiError> {
        let bad = |what: String| ApiError::Internal(format!("stored job `{}`: {what}", row.id));
        let job = serde_json::from_str(&row.data).map_err(|e| bad(e.to_string()))?;
        let status = JobStatus::try_from(row.status.clone()).map_err(bad)?;
        Ok(JobRecord {
            id: row.id,
            customer_id: row.customer_id,
            status,
            job,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, customer_id, status, data, created_at, updated_at";

/// Inserts `job` (status `open`); `false` when the id is taken.
pub async fn insert(
    tx: &mut Tx,
    job: &JobInput,
    customer_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "INSERT INTO jobs \
        (id, customer_id, kind, pinned_technician, status, data, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING";
    let data = serde_json::to_string(job).expect("a job serialises");
    let kind = serde_json::to_value(job.kind).expect("a job kind serialises");
    let done = on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(&job.id)
            .bind(customer_id)
            .bind(kind.as_str())
            .bind(job.pinned_technician.as_deref())
            .bind(JobStatus::Open.as_str())
            .bind(&data)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// Whether job `id` is stored.
pub async fn exists(tx: &mut Tx, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    Ok(found.is_some())
}

impl Db {
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, ApiError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        row.map(TryInto::try_into).transpose()
    }

    /// Jobs matching `filter`, by id.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Page<JobRecord>, ApiError> {
        let limit = filter.limit.clamp(1, MAX_LIMIT);
        let limit = if filter.limit == 0 {
            DEFAULT_LIMIT
        } else {
            limit
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs \
             WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR customer_id = $2) \
             AND ($3 IS NULL OR pinned_technician = $3) \
             ORDER BY id LIMIT $4"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(filter.after.as_deref())
                .bind(filter.customer_id.as_deref())
                .bind(filter.technician_id.as_deref())
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
        })?;
        let items = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<Vec<JobRecord>, _>>()?;
        Ok(Page::new(items, limit, |r| r.id.clone()))
    }
}
