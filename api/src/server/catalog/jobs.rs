//! Jobs: visits to plan, each the solver's [`JobInput`] (kind, place, duration, required
//! skills, windows, priority, SLA, pins, equipment) plus its customer and status.
//!
//! Dispatchers and admins create, edit and list them; a technician key sees only the
//! jobs assigned (`POST /v1/jobs/{id}/assign`) or pinned to its technician.
//!
//! `PATCH /v1/jobs/{id}` changes what the technician needs to know (address, time window,
//! notes, serials to collect) or links the job to its booking (so the job's status
//! facts reach the customer, job_lifecycle.rs): in the same transaction the assigned
//! technician's sync scope gets the job's new view, so their next pull carries it.

use crate::server::catalog::customers;
use crate::server::catalog::settings::settings_in;
use crate::server::catalog::technicians;
use crate::server::catalog::validation::{check_jobs, Base};
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{Body, Query};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::pagination::{Page, DEFAULT_LIMIT, MAX_LIMIT};
use crate::server::http::solver_schemas::JobInputDoc;
use crate::server::http::state::AppState;
use crate::server::store::db::{on_pool, on_tx, Db, Tx};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use despacho_mobile_sync::DispatchChange;
use despacho_solver::field::input::{JobInput, WindowInput};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list).post(create))
        .route("/v1/jobs/{id}", get(read).patch(edit))
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// To be planned (no booking yet).
    Open,
    /// Cancelled by a dispatcher (job_cancel.rs): not planned; the phone shows it so.
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Open => "open",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl TryFrom<String> for JobStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "open" => Ok(JobStatus::Open),
            "cancelled" => Ok(JobStatus::Cancelled),
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
    /// The booking this job carries out (a stored booking, linked to no other job): the
    /// job's status facts become the booking's visit events (customer messages).
    #[serde(default)]
    pub booking_id: Option<String>,
    /// Words for the technician, at most 4000 characters.
    #[serde(default)]
    pub notes: Option<String>,
    /// Serials of the equipment to collect (at most 100, each 1 to 64 characters).
    #[serde(default)]
    pub collect_serials: Option<Vec<String>>,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobRecord {
    pub id: String,
    pub customer_id: Option<String>,
    pub status: JobStatus,
    #[schema(value_type = JobInputDoc)]
    pub job: JobInput,
    /// Who does it now (`POST /v1/jobs/{id}/assign`).
    pub assigned_technician: Option<String>,
    pub booking_id: Option<String>,
    pub notes: Option<String>,
    pub collect_serials: Vec<String>,
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
    /// Only jobs assigned or pinned to this technician (a technician key always gets
    /// only its own).
    pub technician: Option<String>,
    /// The same as `technician` (its former name).
    pub technician_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    description = "Creates a job. Roles: admin, dispatcher.",
    request_body = NewJob,
    responses((status = 201, body = JobRecord),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 409, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path")))]
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
                let notes = check_notes(new.notes.as_deref(), &mut problems);
                let serials = check_serials(new.collect_serials.as_deref(), &mut problems);
                if let Some(b) = &new.booking_id {
                    check_booking(tx, b, &new.job.id, &mut problems).await?;
                }
                if !problems.is_empty() {
                    return Err(ApiError::validation(problems));
                }
                let now = crate::server::store::db::now();
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
                let extras = Extras {
                    booking_id: new.booking_id.clone(),
                    notes,
                    collect_serials: serials.unwrap_or_default(),
                };
                if extras != Extras::default() {
                    set_extras(tx, &new.job.id, &extras, now).await?;
                }
                Ok(JobRecord {
                    id: new.job.id.clone(),
                    customer_id: new.customer_id,
                    status: JobStatus::Open,
                    job: new.job,
                    assigned_technician: None,
                    booking_id: extras.booking_id,
                    notes: extras.notes,
                    collect_serials: extras.collect_serials,
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
    description = "Lists jobs by id, a page at a time; `technician` keeps the jobs assigned or pinned to that technician. Roles: admin, dispatcher; technician (only jobs assigned or pinned to them).",
    params(JobQuery),
    responses((status = 200, body = JobList),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<JobQuery>,
) -> Result<Json<JobList>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let limit = crate::server::http::pagination::ListQuery {
        limit: query.limit,
        after: None,
    }
    .limit()?;
    let technician = match auth.technician_scope()? {
        Some(own) => Some(own.to_owned()),
        None => query
            .technician
            .clone()
            .or_else(|| query.technician_id.clone()),
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
    description = "One job. Roles: admin, dispatcher; technician (404 for jobs neither assigned nor pinned to them).",
    params(("id" = String, Path)),
    responses((status = 200, body = JobRecord),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let record = state.db.job(&id).await?;
    // A technician does not learn whether another technician's job exists.
    let visible = |r: &JobRecord| match auth.technician_scope() {
        Ok(Some(own)) => {
            r.job.pinned_technician.as_deref() == Some(own)
                || r.assigned_technician.as_deref() == Some(own)
        }
        Ok(None) => true,
        Err(_) => false,
    };
    match record {
        Some(r) if visible(&r) => Ok(Json(r)),
        _ => Err(ApiError::not_found("job", id)),
    }
}

// ---------------------------------------------------------------------------------------
// Editing a job (what reaches the technician's phone)

/// The longest notes and address.
pub const MAX_NOTES_CHARS: usize = 4_000;
pub const MAX_ADDRESS_CHARS: usize = 500;
/// The most serials to collect on one job.
pub const MAX_COLLECT_SERIALS: usize = 100;

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// What a dispatcher changes on a job; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobEdit {
    /// The address shown to the technician (1 to 500 characters); `null` shows the
    /// coordinates instead.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    /// The visit's time window `{start, end}` (RFC 3339 with offset); replaces the
    /// job's windows.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub window: Option<WindowInput>,
    /// Words for the technician (at most 4000 characters); `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    /// Serials of the equipment to collect (replaces the list).
    #[serde(default)]
    pub collect_serials: Option<Vec<String>>,
    /// The booking this job carries out; `null` unlinks it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub booking_id: Option<Option<String>>,
}

/// The job's columns besides its `JobInput`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Extras {
    booking_id: Option<String>,
    notes: Option<String>,
    collect_serials: Vec<String>,
}

async fn set_extras(
    tx: &mut Tx,
    id: &str,
    extras: &Extras,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    const SQL: &str = "UPDATE jobs SET booking_id = $2, notes = $3, collect_serials = $4, \
        updated_at = $5 WHERE id = $1";
    let serials = (!extras.collect_serials.is_empty())
        .then(|| serde_json::to_string(&extras.collect_serials).expect("strings serialise"));
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(id)
            .bind(extras.booking_id.as_deref())
            .bind(extras.notes.as_deref())
            .bind(serials.as_deref())
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Notes trimmed (none when empty), or a problem at `$.notes`.
fn check_notes(notes: Option<&str>, problems: &mut Vec<ErrorDetail>) -> Option<String> {
    let notes = notes.map(str::trim).filter(|n| !n.is_empty())?;
    if notes.chars().count() > MAX_NOTES_CHARS {
        problems.push(ErrorDetail::new(
            "$.notes",
            "too_long",
            format!("notes are at most {MAX_NOTES_CHARS} characters"),
        ));
        return None;
    }
    Some(notes.to_owned())
}

/// Serials normalised as the phones' facts are, or problems at `$.collect_serials[i]`.
fn check_serials(
    serials: Option<&[String]>,
    problems: &mut Vec<ErrorDetail>,
) -> Option<Vec<String>> {
    let serials = serials?;
    if serials.len() > MAX_COLLECT_SERIALS {
        problems.push(ErrorDetail::new(
            "$.collect_serials",
            "too_many",
            format!("at most {MAX_COLLECT_SERIALS} serials"),
        ));
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for (i, raw) in serials.iter().enumerate() {
        match crate::server::catalog::equipment::normalise_serial(raw) {
            Some(s) if out.contains(&s) => problems.push(ErrorDetail::new(
                format!("$.collect_serials[{i}]"),
                "duplicate_serial",
                format!("{s} is listed twice"),
            )),
            Some(s) => out.push(s),
            None => problems.push(ErrorDetail::new(
                format!("$.collect_serials[{i}]"),
                "invalid_serial",
                format!(
                    "a serial is 1 to {} characters",
                    crate::server::catalog::equipment::MAX_SERIAL_CHARS
                ),
            )),
        }
    }
    Some(out)
}

/// Problems of linking job `job` to booking `booking`: unknown, or another job's.
async fn check_booking(
    tx: &mut Tx,
    booking: &str,
    job: &str,
    problems: &mut Vec<ErrorDetail>,
) -> Result<(), ApiError> {
    let found: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM bookings WHERE id = $1")
            .bind(booking)
            .fetch_optional(&mut *conn)
            .await
    })?;
    if found.is_none() {
        problems.push(ErrorDetail::new(
            "$.booking_id",
            "unknown_booking",
            format!("there is no booking with id `{booking}`"),
        ));
        return Ok(());
    }
    let linked: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM jobs WHERE booking_id = $1 AND id <> $2")
            .bind(booking)
            .bind(job)
            .fetch_optional(&mut *conn)
            .await
    })?;
    if let Some(other) = linked {
        problems.push(ErrorDetail::new(
            "$.booking_id",
            "booking_already_linked",
            format!("booking `{booking}` is carried out by job `{other}`"),
        ));
    }
    Ok(())
}

#[utoipa::path(patch, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    description = "Changes a job's address, time window, notes or serials to collect, or links it to its booking. \
        In the same transaction the assigned technician's sync scope gets the job's new view: their next pull \
        carries the change. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    request_body = JobEdit,
    responses((status = 200, body = JobRecord),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path")))]
pub async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<JobRecord>, ApiError> {
    auth.require(roles::STAFF)?;
    let input: JobEdit = body.json_object()?;
    let record = state
        .db
        .write(move |tx| {
            let (id, input) = (id.clone(), input.clone());
            Box::pin(async move { edit_in(tx, &id, &input, crate::server::store::db::now()).await })
        })
        .await?;
    tracing::info!(job = %record.id, by = %auth.key_id, "job edited");
    Ok(Json(record))
}

/// Applies `edit` to job `id` in `tx` and puts the job's new view in its holder's scope.
pub async fn edit_in(
    tx: &mut Tx,
    id: &str,
    edit: &JobEdit,
    now: DateTime<Utc>,
) -> Result<JobRecord, ApiError> {
    let lock = match tx.backend() {
        crate::server::Backend::Postgres => " FOR UPDATE",
        crate::server::Backend::Sqlite => "",
    };
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1{lock}");
    let row: Option<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let current: JobRecord = row
        .ok_or_else(|| ApiError::not_found("job", id))?
        .try_into()?;
    let mut problems = Vec::new();
    if edit.address.is_none()
        && edit.window.is_none()
        && edit.notes.is_none()
        && edit.collect_serials.is_none()
        && edit.booking_id.is_none()
    {
        problems.push(ErrorDetail::new(
            "$",
            "nothing_to_change",
            "give at least one of address, window, notes, collect_serials, booking_id",
        ));
    }
    let mut job = current.job.clone();
    if let Some(address) = &edit.address {
        job.place.address = address.as_deref().map(str::trim).map(str::to_owned);
        if address
            .as_deref()
            .is_some_and(|a| a.trim().is_empty() || a.trim().chars().count() > MAX_ADDRESS_CHARS)
        {
            problems.push(ErrorDetail::new(
                "$.address",
                "invalid_address",
                format!("an address is 1 to {MAX_ADDRESS_CHARS} characters, or null"),
            ));
        }
    }
    if let Some(w) = &edit.window {
        if w.end <= w.start {
            problems.push(ErrorDetail::new(
                "$.window.end",
                "window_ends_before_start",
                "the window must end after it starts",
            ));
        }
        job.windows = vec![w.clone()];
    }
    if problems.is_empty() {
        // The solver's checks of the changed job, its paths turned into this body's.
        for mut p in validate_in(tx, std::slice::from_ref(&job), Base::Single("$")).await? {
            p.path = p
                .path
                .replace("$.windows[0]", "$.window")
                .replace("$.place.address", "$.address");
            problems.push(p);
        }
    }
    let mut extras = Extras {
        booking_id: current.booking_id.clone(),
        notes: current.notes.clone(),
        collect_serials: current.collect_serials.clone(),
    };
    if let Some(notes) = &edit.notes {
        extras.notes = check_notes(notes.as_deref(), &mut problems);
    }
    if let Some(serials) = &edit.collect_serials {
        extras.collect_serials = check_serials(Some(serials), &mut problems).unwrap_or_default();
    }
    if let Some(booking) = &edit.booking_id {
        if let Some(b) = booking {
            check_booking(tx, b, id, &mut problems).await?;
        }
        extras.booking_id = booking.clone();
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    const DATA: &str = "UPDATE jobs SET data = $2, updated_at = $3 WHERE id = $1";
    let data = serde_json::to_string(&job).expect("a job serialises");
    on_tx!(tx, |conn| {
        sqlx::query(DATA)
            .bind(id)
            .bind(&data)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    set_extras(tx, id, &extras, now).await?;
    // The phone's copy: window and address are dispatcher fields of the sync record.
    let fields = crate::server::sync::push_pull::dispatch_fields(&job)?;
    let changes = vec![
        DispatchChange::Window {
            window: fields.window,
        },
        DispatchChange::Address {
            address: fields.address,
        },
    ];
    crate::server::sync::push_pull::dispatcher_edit(tx, id, changes, now).await?;
    Ok(JobRecord {
        job,
        booking_id: extras.booking_id,
        notes: extras.notes,
        collect_serials: extras.collect_serials,
        updated_at: now,
        ..current
    })
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
    assigned_technician: Option<String>,
    booking_id: Option<String>,
    notes: Option<String>,
    collect_serials: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for JobRecord {
    type Error = ApiError;

    fn try_from(row: Row) -> Result<Self, ApiError> {
        let bad = |what: String| ApiError::Internal(format!("stored job `{}`: {what}", row.id));
        let job = serde_json::from_str(&row.data).map_err(|e| bad(e.to_string()))?;
        let status = JobStatus::try_from(row.status.clone()).map_err(bad)?;
        let collect_serials = row
            .collect_serials
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or_default();
        Ok(JobRecord {
            id: row.id,
            customer_id: row.customer_id,
            status,
            job,
            assigned_technician: row.assigned_technician,
            booking_id: row.booking_id,
            notes: row.notes,
            collect_serials,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, customer_id, status, data, assigned_technician, booking_id, notes, \
    collect_serials, created_at, updated_at";

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
             AND ($3 IS NULL OR pinned_technician = $3 OR assigned_technician = $3) \
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
