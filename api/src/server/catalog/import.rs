//! Bulk import: all or nothing, every problem listed by path.
//!
//! - `POST /v1/import/technicians`: a JSON array of technicians; creates new ones and
//!   replaces those whose id is stored (an HR system re-sending next week's shifts).
//! - `POST /v1/import/jobs`: a JSON array of jobs, or CSV (`Content-Type: text/csv`)
//!   with a header line: `id,kind,lat,lon,duration_minutes,window_start,window_end`
//!   and optionally `priority`, `required_skills` (`skill:level;skill:level`). Jobs are
//!   only created: an id that is already stored is a problem of the import.
//!
//! The whole body is read and checked first — shape (each element on its own, so every
//! element's problem is listed), then the solver's rules, then ids against the
//! database — and the rows are written in one transaction, or none is.

use crate::server::catalog::jobs;
use crate::server::catalog::settings::settings_in;
use crate::server::catalog::technicians;
use crate::server::catalog::validation::{check_technicians, Base};
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{from_value, is_refused_control, member, Body, MediaType};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::solver_schemas::{JobInputDoc, TechnicianDoc};
use crate::server::http::state::AppState;
use crate::server::store::db::{on_tx, Tx};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::DateTime;
use despacho_solver::field::input::{JobInput, JobKind, Place, Technician, WindowInput};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use utoipa::ToSchema;

/// The most records one import may hold.
pub const MAX_IMPORT: usize = 20_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/import/technicians", post(import_technicians))
        .route("/v1/import/jobs", post(import_jobs))
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub created: usize,
    /// Records replaced (technicians only; a job import only creates).
    pub updated: usize,
}

#[utoipa::path(post, path = "/v1/import/technicians", tag = "import", security(("bearer" = [])),
    description = "Creates or replaces technicians from a JSON array, all or nothing. Roles: admin, dispatcher.",
    request_body(content = Vec<TechnicianDoc>, content_type = "application/json"),
    responses((status = 200, body = ImportResult),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its path `$[i]…`")))]
pub async fn import_technicians(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<ImportResult>, ApiError> {
    auth.require(roles::STAFF)?;
    let technicians: Vec<Technician> = json_array(&body)?;
    let result = state
        .db
        .write(move |tx| {
            let technicians = technicians.clone();
            Box::pin(async move {
                let settings = settings_in(tx).await?;
                let problems = check_technicians(&technicians, &settings, Base::Array);
                if !problems.is_empty() {
                    return Err(ApiError::validation(problems));
                }
                let stored: HashSet<String> = technicians::ids(tx).await?.into_iter().collect();
                let now = crate::server::store::db::now();
                let mut result = ImportResult {
                    created: 0,
                    updated: 0,
                };
                for t in &technicians {
                    technicians::upsert(tx, t, now).await?;
                    if stored.contains(&t.id) {
                        result.updated += 1;
                    } else {
                        result.created += 1;
                    }
                }
                Ok(result)
            })
        })
        .await?;
    tracing::info!(created = result.created, updated = result.updated, by = %auth.key_id, "technicians imported");
    Ok(Json(result))
}

#[utoipa::path(post, path = "/v1/import/jobs", tag = "import", security(("bearer" = [])),
    description = "Creates jobs from a JSON array or CSV (`text/csv`; header `id,kind,lat,lon,duration_minutes,window_start,window_end[,priority][,required_skills]`, \
        skills as `skill:level;skill:level`, windows RFC 3339), all or nothing; an id already stored is a problem. Roles: admin, dispatcher.",
    request_body(content((Vec<JobInputDoc> = "application/json"), (String = "text/csv"))),
    responses((status = 200, body = ImportResult),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 415, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its path `$[i]…` (CSV: row i after the header)")))]
pub async fn import_jobs(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<ImportResult>, ApiError> {
    auth.require(roles::STAFF)?;
    let jobs: Vec<JobInput> = match body.media_type {
        MediaType::Csv => jobs_from_csv(&body.bytes)?,
        _ => json_array(&body)?,
    };
    let result = state
        .db
        .write(move |tx| {
            let jobs = jobs.clone();
            Box::pin(async move {
                let mut problems = jobs::validate_in(tx, &jobs, Base::Array).await?;
                problems.extend(stored_ids(tx, &jobs).await?);
                if !problems.is_empty() {
                    problems.sort_by_key(|p| row_of(&p.path));
                    return Err(ApiError::validation(problems));
                }
                let now = crate::server::store::db::now();
                for job in &jobs {
                    if !jobs::insert(tx, job, None, now).await? {
                        // Created meanwhile by someone else (PostgreSQL, READ COMMITTED).
                        return Err(ApiError::conflict(
                            "already_exists",
                            format!("job `{}` was created while importing; retry", job.id),
                        ));
                    }
                }
                Ok(ImportResult {
                    created: jobs.len(),
                    updated: 0,
                })
            })
        })
        .await?;
    tracing::info!(created = result.created, by = %auth.key_id, "jobs imported");
    Ok(Json(result))
}

/// The row index of a path `$[i]…`, for sorting problems by row.
fn row_of(path: &str) -> usize {
    path.strip_prefix("$[")
        .and_then(|r| r.split(']').next())
        .and_then(|i| i.parse().ok())
        .unwrap_or(usize::MAX)
}

/// A problem for every job whose id is already stored.
async fn stored_ids(tx: &mut Tx, jobs: &[JobInput]) -> Result<Vec<ErrorDetail>, sqlx::Error> {
    let mut stored = HashSet::new();
    for chunk in jobs.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id FROM jobs WHERE id IN ({})",
            placeholders.join(", ")
        );
        let found: Vec<String> = on_tx!(tx, |conn| {
            let mut query = sqlx::query_scalar(&sql);
            for job in chunk {
                query = query.bind(&job.id);
            }
            query.fetch_all(&mut *conn).await
        })?;
        stored.extend(found);
    }
    Ok(jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| stored.contains(&j.id))
        .map(|(i, j)| {
            ErrorDetail::new(
                format!("$[{i}].id"),
                "already_exists",
                format!(
                    "there is already a job with id `{}`; an import only creates jobs",
                    j.id
                ),
            )
        })
        .collect())
}

/// A JSON array of `T`: every element's shape problem listed (one per element).
fn json_array<T: DeserializeOwned>(body: &Body) -> Result<Vec<T>, ApiError> {
    let values: Vec<serde_json::Value> = body.json_array()?;
    if values.is_empty() {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$",
            "empty_import",
            "the array is empty; there is nothing to import",
        )]));
    }
    if values.len() > MAX_IMPORT {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$",
            "too_many_records",
            format!(
                "{} records; import at most {MAX_IMPORT} at a time",
                values.len()
            ),
        )]));
    }
    let mut items = Vec::with_capacity(values.len());
    let mut problems = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        match from_value(value, &format!("$[{i}]")) {
            Ok(item) => items.push(item),
            Err(detail) => problems.push(detail),
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(ApiError::InvalidBody {
            message: format!(
                "{} record(s) of the wrong shape; see details",
                problems.len()
            ),
            details: problems,
        })
    }
}

// ---------------------------------------------------------------------------------------
// CSV

const REQUIRED_COLUMNS: [&str; 7] = [
    "id",
    "kind",
    "lat",
    "lon",
    "duration_minutes",
    "window_start",
    "window_end",
];
const OPTIONAL_COLUMNS: [&str; 2] = ["priority", "required_skills"];

/// Jobs from CSV with a header line; every cell's problem listed as `$[row].column`
/// (row 0 is the first line after the header).
pub fn jobs_from_csv(bytes: &[u8]) -> Result<Vec<JobInput>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(&e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut problems = Vec::new();
    let mut column = BTreeMap::new();
    for (j, name) in header.iter().enumerate() {
        if !REQUIRED_COLUMNS.contains(&name.as_str()) && !OPTIONAL_COLUMNS.contains(&name.as_str())
        {
            problems.push(ErrorDetail::new(
                "$",
                "unknown_column",
                format!(
                    "column {} of the header, `{name}`, is not one of {}",
                    j + 1,
                    REQUIRED_COLUMNS
                        .iter()
                        .chain(&OPTIONAL_COLUMNS)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        } else if column.insert(name.as_str(), j).is_some() {
            problems.push(ErrorDetail::new(
                "$",
                "duplicate_column",
                format!("column `{name}` appears twice in the header"),
            ));
        }
    }
    for name in REQUIRED_COLUMNS {
        if !column.contains_key(name) {
            problems.push(ErrorDetail::new(
                "$",
                "missing_column",
                format!("the header has no `{name}` column"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }

    let mut jobs = Vec::new();
    for (i, record) in reader.records().enumerate() {
        if i >= MAX_IMPORT {
            return Err(ApiError::validation(vec![ErrorDetail::new(
                "$",
                "too_many_records",
                format!("more than {MAX_IMPORT} rows; import at most {MAX_IMPORT} at a time"),
            )]));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(ErrorDetail::new(
                    format!("$[{i}]"),
                    "malformed_csv",
                    csv_error(&e).to_string(),
                ));
                continue;
            }
        };
        let line = record.position().map_or(i as u64 + 2, |p| p.line());
        // The same rule as JSON bodies: no NUL or other control character in a cell.
        for (j, cell) in record.iter().enumerate() {
            if let Some(c) = cell.chars().find(|&c| is_refused_control(c)) {
                let name = header.get(j).map_or("?", String::as_str);
                problems.push(ErrorDetail::new(
                    member(&format!("$[{i}]"), name),
                    "control_character",
                    format!(
                        "line {line}: the cell holds the control character U+{:04X}",
                        c as u32
                    ),
                ));
            }
        }
        let mut row = RowParser {
            row: i,
            line,
            record: &record,
            column: &column,
            problems: &mut problems,
        };
        let job = row.job();
        jobs.extend(job);
    }
    if !problems.is_empty() {
        return Err(ApiError::InvalidBody {
            message: format!("{} problem(s) in the CSV; see details", problems.len()),
            details: problems,
        });
    }
    if jobs.is_empty() {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$",
            "empty_import",
            "the CSV has no row after the header; there is nothing to import",
        )]));
    }
    Ok(jobs)
}

struct RowParser<'a> {
    row: usize,
    line: u64,
    record: &'a csv::StringRecord,
    column: &'a BTreeMap<&'a str, usize>,
    problems: &'a mut Vec<ErrorDetail>,
}

impl RowParser<'_> {
    fn cell(&self, name: &str) -> &str {
        self.column
            .get(name)
            .and_then(|&j| self.record.get(j))
            .unwrap_or("")
    }

    /// The job of this row; `None` after recording the problem of every bad cell.
    fn job(&mut self) -> Option<JobInput> {
        let id = self.cell("id").to_owned();
        let kind = self.parse("kind", |s| {
            serde_json::from_value::<JobKind>(serde_json::Value::String(s.to_owned())).map_err(
                |_| {
                    "one of installation, repair, equipment_return, maintenance, site_survey"
                        .to_owned()
                },
            )
        });
        let lat = self.parse("lat", parse_number::<f64>);
        let lon = self.parse("lon", parse_number::<f64>);
        let duration = self.parse("duration_minutes", parse_number::<u32>);
        let start = self.parse("window_start", parse_time);
        let end = self.parse("window_end", parse_time);
        let priority = match self.cell("priority") {
            "" => Some(5),
            _ => self.parse("priority", parse_number::<u8>),
        };
        let skills = self.parse("required_skills", parse_skills);
        Some(JobInput {
            id,
            kind: kind?,
            tier: Default::default(),
            place: Place {
                lat: lat?,
                lon: lon?,
                address: None,
                location_id: None,
            },
            duration_minutes: duration?,
            duration_by_level: BTreeMap::new(),
            required_skills: skills?,
            windows: vec![WindowInput {
                start: start?,
                end: end?,
            }],
            priority: priority?,
            sla_due: None,
            pinned_technician: None,
            pinned_start: None,
            preferred_technician: None,
            equipment: Default::default(),
            same_technician_as: None,
            after_job: None,
        })
    }

    fn parse<T>(
        &mut self,
        column: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let cell = self.cell(column).to_owned();
        match parse(&cell) {
            Ok(v) => Some(v),
            Err(expected) => {
                self.problems.push(ErrorDetail::new(
                    format!("$[{}].{column}", self.row),
                    "invalid_value",
                    format!("line {}: `{cell}` is not {expected}", self.line),
                ));
                None
            }
        }
    }
}

fn parse_number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| {
        format!(
            "a valid {}",
            if std::any::type_name::<T>() == "f64" {
                "number"
            } else {
                "whole number in range"
            }
        )
    })
}

fn parse_time(s: &str) -> Result<DateTime<chrono::FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s).map_err(|_| {
        "an RFC 3339 date-time with an offset, e.g. 2026-03-02T08:00:00-03:00".to_owned()
    })
}

/// `skill:level;skill:level` (blank: none).
fn parse_skills(s: &str) -> Result<BTreeMap<String, u8>, String> {
    let mut skills = BTreeMap::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let expected =
            || "a list of skill:level separated by `;`, e.g. fiber_splicing:2;pppoe:1".to_owned();
        let (name, level) = part.split_once(':').ok_or_else(expected)?;
        let level: u8 = level.trim().parse().map_err(|_| expected())?;
        let name = name.trim();
        if name.is_empty() || skills.insert(name.to_owned(), level).is_some() {
            return Err(expected());
        }
    }
    Ok(skills)
}

fn csv_error(e: &csv::Error) -> ApiError {
    ApiError::bad_request("malformed_csv", format!("the CSV cannot be read: {e}"))
}
