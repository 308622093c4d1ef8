//! Named territories: a part of the operator's area (a GeoJSON polygon) and the
//! technicians who work it (tables of migration 0013, docs/dispatch.md "Territories").
//!
//! - `POST /v1/territories`, `GET` (list), `GET|PUT|DELETE /v1/territories/{id}` (admin,
//!   dispatcher). A technician is a member of at most one territory: listing one that is
//!   in another territory is refused naming both, so a move is explicit.
//! - [`TerritoryMap`]: what the day's plans need. A member without an own territory
//!   polygon works inside the territory's area (the solver's territory rule); a job
//!   belongs to the first territory, by id, whose area covers its place.
//! - [`Scope`]: one territory of a day plan, for `GET /v1/plans/{date}?territory=` and
//!   for optimisation runs of one territory, which re-plan only its technicians and jobs.

use crate::server::catalog::validation::MAX_NAME_CHARS;
use crate::server::dispatch::plan_eval::DayRoutes;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Body;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::store::db::{now, on_pool, on_tx, Tx};
use crate::server::store::ids::check_id;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use despacho_solver::field::area::Area;
use despacho_solver::field::input::{Place, ProblemInput, Technician, Territory};
use despacho_solver::field::validate::territory_errors;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/territories", get(list).post(create))
        .route(
            "/v1/territories/{id}",
            get(read).put(replace).delete(remove),
        )
}

/// A territory to create or replace.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerritoryInput {
    /// 1 to 100 letters, digits or `._:-` (the id rule of every resource).
    pub id: String,
    pub name: String,
    /// GeoJSON `Polygon` or `MultiPolygon` with `[lon, lat]` positions.
    #[schema(value_type = Object)]
    pub area: Territory,
    /// The member technicians (each in no other territory). Default: none.
    #[serde(default)]
    pub technicians: Vec<String>,
}

/// A stored territory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TerritoryRecord {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub area: Territory,
    /// Member technicians, by id.
    pub technicians: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TerritoryList {
    /// By id.
    pub items: Vec<TerritoryRecord>,
}

impl TerritoryInput {
    /// Problems found without the database, by path.
    fn check(&self) -> Vec<ErrorDetail> {
        let mut problems = Vec::new();
        problems.extend(check_id("$.id", &self.id, "a territory id"));
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            problems.push(ErrorDetail::new(
                "$.name",
                "invalid_name",
                format!("a name is 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        for e in territory_errors("$.area", &self.area) {
            problems.push(ErrorDetail::new(e.path, e.code, e.message));
        }
        let mut seen = HashSet::new();
        for (i, t) in self.technicians.iter().enumerate() {
            if !seen.insert(t) {
                problems.push(ErrorDetail::new(
                    format!("$.technicians[{i}]"),
                    "duplicate",
                    format!("technician `{t}` is listed twice"),
                ));
            }
        }
        problems
    }

    /// Problems that need the stored technicians and memberships: unknown technicians,
    /// technicians that are members of another territory.
    async fn check_members(&self, tx: &mut Tx) -> Result<Vec<ErrorDetail>, ApiError> {
        let mut problems = Vec::new();
        for (i, t) in self.technicians.iter().enumerate() {
            let known: Option<String> = on_tx!(tx, |conn| {
                sqlx::query_scalar("SELECT id FROM technicians WHERE id = $1")
                    .bind(t)
                    .fetch_optional(&mut *conn)
                    .await
            })?;
            if known.is_none() {
                problems.push(ErrorDetail::new(
                    format!("$.technicians[{i}]"),
                    "unknown_technician",
                    format!("there is no technician `{t}`"),
                ));
                continue;
            }
            let other: Option<String> = on_tx!(tx, |conn| {
                sqlx::query_scalar(
                    "SELECT territory_id FROM territory_members \
                     WHERE technician_id = $1 AND territory_id <> $2",
                )
                .bind(t)
                .bind(&self.id)
                .fetch_optional(&mut *conn)
                .await
            })?;
            if let Some(other) = other {
                problems.push(ErrorDetail::new(
                    format!("$.technicians[{i}]"),
                    "in_other_territory",
                    format!(
                        "technician `{t}` is a member of territory `{other}`; remove it there first"
                    ),
                ));
            }
        }
        Ok(problems)
    }
}

type TerritoryRow = (String, String, String, DateTime<Utc>, DateTime<Utc>);
const COLUMNS: &str = "id, name, area, created_at, updated_at";

async fn members_in(tx: &mut Tx, id: &str) -> Result<Vec<String>, ApiError> {
    Ok(on_tx!(tx, |conn| {
        sqlx::query_scalar(
            "SELECT technician_id FROM territory_members WHERE territory_id = $1 \
             ORDER BY technician_id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await
    })?)
}

fn record(row: TerritoryRow, technicians: Vec<String>) -> Result<TerritoryRecord, ApiError> {
    let area = serde_json::from_str(&row.2).map_err(|e| {
        ApiError::Internal(format!(
            "the stored area of territory {} is not valid: {e}",
            row.0
        ))
    })?;
    Ok(TerritoryRecord {
        id: row.0,
        name: row.1,
        area,
        technicians,
        created_at: row.3,
        updated_at: row.4,
    })
}

async fn territory_in(tx: &mut Tx, id: &str) -> Result<Option<TerritoryRecord>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM territories WHERE id = $1");
    let row: Option<TerritoryRow> = on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    match row {
        None => Ok(None),
        Some(row) => {
            let members = members_in(tx, &row.0).await?;
            record(row, members).map(Some)
        }
    }
}

/// Stores `input` (created or replaced) with exactly its members (checked already).
pub async fn upsert(
    tx: &mut Tx,
    input: &TerritoryInput,
    at: DateTime<Utc>,
) -> Result<TerritoryRecord, ApiError> {
    let area = serde_json::to_string(&input.area)
        .map_err(|e| ApiError::Internal(format!("cannot store the area: {e}")))?;
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO territories (id, name, area, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, area = excluded.area, \
             updated_at = excluded.updated_at",
        )
        .bind(&input.id)
        .bind(input.name.trim())
        .bind(&area)
        .bind(at)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    on_tx!(tx, |conn| {
        sqlx::query("DELETE FROM territory_members WHERE territory_id = $1")
            .bind(&input.id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    for t in &input.technicians {
        on_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO territory_members (technician_id, territory_id) VALUES ($1, $2)",
            )
            .bind(t)
            .bind(&input.id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
    }
    territory_in(tx, &input.id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("territory {} vanished", input.id)))
}

/// Checks `input` fully (both steps) inside `tx`.
async fn checked(tx: &mut Tx, input: &TerritoryInput) -> Result<(), ApiError> {
    let mut problems = input.check();
    problems.extend(input.check_members(tx).await?);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(problems))
    }
}

#[utoipa::path(post, path = "/v1/territories", tag = "territories", security(("bearer" = [])),
    description = "Creates a territory: an area and its member technicians. Roles: admin, dispatcher.",
    request_body = TerritoryInput,
    responses((status = 201, body = TerritoryRecord),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 409, body = crate::server::http::error::ErrorBody, description = "`already_exists`"),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path")))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<TerritoryRecord>), ApiError> {
    auth.require(roles::STAFF)?;
    let input: TerritoryInput = body.json_object()?;
    let stored = state
        .db
        .write(move |tx| {
            let input = input.clone();
            Box::pin(async move {
                if input.check().is_empty() && territory_in(tx, &input.id).await?.is_some() {
                    return Err(ApiError::Conflict {
                        code: "already_exists",
                        message: format!(
                            "there is already a territory `{}`; use PUT /v1/territories/{} to change it",
                            input.id, input.id
                        ),
                        details: vec![ErrorDetail::new("$.id", "already_exists", "this id is taken")],
                    });
                }
                checked(tx, &input).await?;
                upsert(tx, &input, now()).await
            })
        })
        .await?;
    tracing::info!(territory = %stored.id, by = %auth.key_id, "territory created");
    Ok((StatusCode::CREATED, Json(stored)))
}

#[utoipa::path(put, path = "/v1/territories/{id}", tag = "territories", security(("bearer" = [])),
    description = "Creates (201) or replaces (200) a territory, its area and exactly the members listed; \
        the body's `id` must be the URL's. Stored plans are not changed; the next optimisation uses the \
        new area. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    request_body = TerritoryInput,
    responses((status = 200, body = TerritoryRecord), (status = 201, body = TerritoryRecord),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<TerritoryRecord>), ApiError> {
    auth.require(roles::STAFF)?;
    let input: TerritoryInput = body.json_object()?;
    let mut problems = input.check();
    if input.id != id {
        problems.push(ErrorDetail::new(
            "$.id",
            "id_mismatch",
            format!(
                "the body's id `{}` is not the id in the URL (`{id}`); they must be equal",
                input.id
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let (created, stored) = state
        .db
        .write(move |tx| {
            let input = input.clone();
            Box::pin(async move {
                checked(tx, &input).await?;
                let created = territory_in(tx, &input.id).await?.is_none();
                Ok((created, upsert(tx, &input, now()).await?))
            })
        })
        .await?;
    tracing::info!(territory = %stored.id, created, by = %auth.key_id, "territory stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored)))
}

#[utoipa::path(get, path = "/v1/territories", tag = "territories", security(("bearer" = [])),
    description = "Every territory with its members, by id. Roles: admin, dispatcher.",
    responses((status = 200, body = TerritoryList),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<TerritoryList>, ApiError> {
    auth.require(roles::STAFF)?;
    let sql = format!("SELECT {COLUMNS} FROM territories ORDER BY id");
    let rows: Vec<TerritoryRow> =
        on_pool!(&state.db, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
    let members: Vec<(String, String)> = on_pool!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT territory_id, technician_id FROM territory_members \
             ORDER BY territory_id, technician_id",
        )
        .fetch_all(pool)
        .await
    })?;
    let mut by_territory: HashMap<String, Vec<String>> = HashMap::new();
    for (territory, technician) in members {
        by_territory.entry(territory).or_default().push(technician);
    }
    let items = rows
        .into_iter()
        .map(|row| {
            let members = by_territory.remove(&row.0).unwrap_or_default();
            record(row, members)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(TerritoryList { items }))
}

#[utoipa::path(get, path = "/v1/territories/{id}", tag = "territories", security(("bearer" = [])),
    description = "One territory with its members. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    responses((status = 200, body = TerritoryRecord),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TerritoryRecord>, ApiError> {
    auth.require(roles::STAFF)?;
    let mut tx = state.db.begin_read().await?;
    let found = territory_in(&mut tx, &id).await;
    tx.rollback().await?;
    found?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("territory", id))
}

#[utoipa::path(delete, path = "/v1/territories/{id}", tag = "territories", security(("bearer" = [])),
    description = "Deletes a territory; its technicians become members of none. Stored plans keep their \
        routes. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(roles::STAFF)?;
    let deleted = id.clone();
    state
        .db
        .write(move |tx| {
            let id = id.clone();
            Box::pin(async move {
                // Members first: SQLite enforces the cascade only with foreign keys on.
                on_tx!(tx, |conn| {
                    sqlx::query("DELETE FROM territory_members WHERE territory_id = $1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                let n = on_tx!(tx, |conn| {
                    sqlx::query("DELETE FROM territories WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                if n == 0 {
                    return Err(ApiError::not_found("territory", id));
                }
                Ok(())
            })
        })
        .await?;
    tracing::info!(territory = %deleted, by = %auth.key_id, "territory deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Territories of a day plan

/// One territory ready for point tests.
struct Entry {
    id: String,
    territory: Territory,
    area: Area,
}

/// Every territory and membership, as the day's plans use them.
#[derive(Default)]
pub struct TerritoryMap {
    /// By id: a job covered by two areas belongs to the first.
    entries: Vec<Entry>,
    member_of: HashMap<String, String>,
}

impl TerritoryMap {
    pub async fn load(tx: &mut Tx) -> Result<TerritoryMap, ApiError> {
        let rows: Vec<(String, String)> = on_tx!(tx, |conn| {
            sqlx::query_as("SELECT id, area FROM territories ORDER BY id")
                .fetch_all(&mut *conn)
                .await
        })?;
        let mut entries = Vec::with_capacity(rows.len());
        for (id, area) in rows {
            let territory: Territory = serde_json::from_str(&area).map_err(|e| {
                ApiError::Internal(format!(
                    "the stored area of territory {id} is not valid: {e}"
                ))
            })?;
            entries.push(Entry {
                area: Area::of(&territory),
                territory,
                id,
            });
        }
        let members: Vec<(String, String)> = on_tx!(tx, |conn| {
            sqlx::query_as("SELECT technician_id, territory_id FROM territory_members")
                .fetch_all(&mut *conn)
                .await
        })?;
        Ok(TerritoryMap {
            entries,
            member_of: members.into_iter().collect(),
        })
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// The territory `technician` is a member of.
    pub fn of_technician(&self, technician: &str) -> Option<&str> {
        self.member_of.get(technician).map(String::as_str)
    }

    /// The first territory (by id) whose area covers `place`.
    pub fn of_place(&self, place: &Place) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.area.covers_place(place))
            .map(|e| e.id.as_str())
    }

    /// Gives each member without an own territory polygon its territory's area, so the
    /// solver keeps it inside.
    pub fn apply_areas(&self, technicians: &mut [Technician]) {
        for t in technicians.iter_mut().filter(|t| t.territory.is_none()) {
            let Some(id) = self.member_of.get(&t.id) else {
                continue;
            };
            if let Some(e) = self.entries.iter().find(|e| &e.id == id) {
                t.territory = Some(e.territory.clone());
            }
        }
    }
}

/// One territory of a day: its technicians, and the jobs it plans: those on its
/// technicians' routes, and those whose place is in its area unless another
/// territory's technician has them on a route (a dispatcher put them there).
#[derive(Clone, Debug)]
pub struct Scope {
    pub territory: String,
    technicians: HashSet<String>,
    jobs: HashSet<String>,
    /// Jobs on this territory's routes.
    routed: HashSet<String>,
}

impl Scope {
    /// 404 when there is no territory `id`.
    pub fn new(
        map: &TerritoryMap,
        id: &str,
        input: &ProblemInput,
        routes: &DayRoutes,
    ) -> Result<Scope, ApiError> {
        if !map.contains(id) {
            return Err(ApiError::not_found("territory", id));
        }
        let technicians: HashSet<String> = input
            .technicians
            .iter()
            .filter(|t| map.of_technician(&t.id) == Some(id))
            .map(|t| t.id.clone())
            .collect();
        let mut on_route: HashMap<&str, &str> = HashMap::new();
        for (technician, stops) in routes {
            for s in stops {
                on_route.insert(&s.job, technician);
            }
        }
        let routed: HashSet<String> = on_route
            .iter()
            .filter(|(_, t)| technicians.contains(**t))
            .map(|(j, _)| (*j).to_owned())
            .collect();
        let jobs = input
            .jobs
            .iter()
            .filter(|j| match on_route.get(j.id.as_str()) {
                Some(t) => technicians.contains(*t),
                None => map.of_place(&j.place) == Some(id),
            })
            .map(|j| j.id.clone())
            .collect();
        Ok(Scope {
            territory: id.to_owned(),
            technicians,
            jobs,
            routed,
        })
    }

    /// 409 `no_technicians_in_territory` when none of its members works on `date` (the
    /// day's problem has no shift of theirs): nothing to show, solve or publish.
    pub fn require_technicians(&self, date: chrono::NaiveDate) -> Result<(), ApiError> {
        if self.technicians.is_empty() {
            return Err(ApiError::conflict(
                "no_technicians_in_territory",
                format!(
                    "no technician of territory `{}` works on {date}; add members or shifts, or use the whole day",
                    self.territory
                ),
            ));
        }
        Ok(())
    }

    pub fn has_technician(&self, id: &str) -> bool {
        self.technicians.contains(id)
    }

    pub fn has_job(&self, id: &str) -> bool {
        self.jobs.contains(id)
    }

    /// The day's problem cut to this territory. An unplanned job pinned to a technician
    /// of another territory is left out (that territory plans it); links to jobs outside
    /// (`after_job`, `same_technician_as`) and technicians outside (preferred, or the pin
    /// of a job a dispatcher put on this territory's route) are dropped, as the
    /// territory cannot honour them.
    pub fn problem(&self, input: &ProblemInput) -> ProblemInput {
        let mut cut = input.clone();
        cut.technicians.retain(|t| self.has_technician(&t.id));
        cut.jobs.retain(|j| {
            self.routed.contains(&j.id)
                || (self.has_job(&j.id)
                    && j.pinned_technician
                        .as_deref()
                        .is_none_or(|t| self.has_technician(t)))
        });
        let kept: HashSet<String> = cut.jobs.iter().map(|j| j.id.clone()).collect();
        for job in &mut cut.jobs {
            keep_if(&mut job.pinned_technician, |t| self.has_technician(t));
            keep_if(&mut job.after_job, |j| kept.contains(j));
            keep_if(&mut job.same_technician_as, |j| kept.contains(j));
            keep_if(&mut job.preferred_technician, |t| self.has_technician(t));
        }
        cut
    }

    /// The routes of this territory's technicians.
    pub fn routes(&self, routes: &DayRoutes) -> DayRoutes {
        routes
            .iter()
            .filter(|(t, _)| self.has_technician(t))
            .map(|(t, stops)| (t.clone(), stops.clone()))
            .collect::<BTreeMap<_, _>>()
    }

    /// `latest` with this territory's routes replaced by `solved`. A job that `latest`
    /// has on another territory's route (moved there while the run solved) stays there.
    pub fn merge(&self, latest: &DayRoutes, solved: &DayRoutes) -> DayRoutes {
        let mut merged: DayRoutes = latest
            .iter()
            .filter(|(t, _)| !self.has_technician(t))
            .map(|(t, stops)| (t.clone(), stops.clone()))
            .collect();
        let elsewhere: HashSet<&str> = merged.values().flatten().map(|s| s.job.as_str()).collect();
        let mut mine = DayRoutes::new();
        for (t, stops) in solved.iter().filter(|(t, _)| self.has_technician(t)) {
            let kept: Vec<_> = stops
                .iter()
                .filter(|s| !elsewhere.contains(s.job.as_str()))
                .cloned()
                .collect();
            if !kept.is_empty() {
                mine.insert(t.clone(), kept);
            }
        }
        merged.extend(mine);
        merged
    }
}

fn keep_if(field: &mut Option<String>, keep: impl Fn(&str) -> bool) {
    if field.as_deref().is_some_and(|v| !keep(v)) {
        *field = None;
    }
}

/// `GET /v1/plans/{date}?territory=`: the territory to show (absent: the whole day).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TerritoryQuery {
    /// Only this territory's technicians, jobs, violations and KPIs.
    pub territory: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::dispatch::plan_eval::RouteStop;

    fn stops(jobs: &[&str]) -> Vec<RouteStop> {
        jobs.iter()
            .map(|j| RouteStop {
                job: (*j).into(),
                locked: false,
                not_before: None,
            })
            .collect()
    }

    fn day(routes: &[(&str, &[&str])]) -> DayRoutes {
        routes
            .iter()
            .map(|(t, jobs)| ((*t).to_owned(), stops(jobs)))
            .collect()
    }

    fn west() -> Scope {
        Scope {
            territory: "west".into(),
            technicians: ["w1", "w2"].into_iter().map(String::from).collect(),
            jobs: ["a", "b", "c"].into_iter().map(String::from).collect(),
            routed: ["a", "b"].into_iter().map(String::from).collect(),
        }
    }

    #[test]
    fn merge_replaces_only_the_territorys_routes() {
        let latest = day(&[("w1", &["a", "b"]), ("e1", &["x", "y"]), ("w2", &["c"])]);
        let solved = day(&[("w1", &["c", "b"]), ("w2", &["a"])]);
        let merged = west().merge(&latest, &solved);
        assert_eq!(
            merged,
            day(&[("e1", &["x", "y"]), ("w1", &["c", "b"]), ("w2", &["a"])])
        );
    }

    #[test]
    fn a_job_moved_to_another_territory_while_solving_stays_there() {
        // `b` went to e1 after the run started: the run's copy of it is dropped, and a
        // route left empty disappears.
        let latest = day(&[("w1", &["a"]), ("e1", &["x", "b"])]);
        let solved = day(&[("w1", &["a"]), ("w2", &["b"])]);
        let merged = west().merge(&latest, &solved);
        assert_eq!(merged, day(&[("e1", &["x", "b"]), ("w1", &["a"])]));
    }

    #[test]
    fn routes_keeps_the_territorys_technicians() {
        let latest = day(&[("w1", &["a"]), ("e1", &["x"])]);
        assert_eq!(west().routes(&latest), day(&[("w1", &["a"])]));
    }
}
