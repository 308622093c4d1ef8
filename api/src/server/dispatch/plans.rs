//! Re-optimising a day: `POST /v1/plans/solve`.
//!
//! The problem is built from what is stored: the technicians working that date (only
//! that shift), the open jobs that may be done that date, and every active booking of
//! the date. A booking is a promise: it enters as a job whose only window is the
//! promised one (a hard window for the solver), at the highest priority, preferring
//! the technician it was booked with; the plan is checked before it is returned.

use crate::server::booking::bookings::active_visits;
use crate::server::catalog::settings::settings_in;
use crate::server::catalog::territories::TerritoryMap;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Body;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::store::db::now;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::NaiveDate;
use despacho_solver::field::check::check_plan;
use despacho_solver::field::input::{JobInput, ProblemInput, Technician, PROBLEM_VERSION};
use despacho_solver::field::plan::Plan;
use despacho_solver::field::solve::solve_field;
use despacho_solver::field::validate::MAX_PRIORITY;
use despacho_solver::SolverConfig;
use serde::Deserialize;
use std::time::Duration;
use utoipa::ToSchema;

/// Longest search a request may ask for, seconds.
pub const MAX_SECONDS: u32 = 60;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/plans/solve", post(solve))
}

/// Which day to plan, and how long to search.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SolveRequest {
    /// The local date of the operation to plan.
    pub date: NaiveDate,
    /// Search time, 1–60 seconds (default 5).
    #[serde(default)]
    pub seconds: Option<u32>,
    /// Seed of the search (default 1): the same data, seed and time give a similar plan.
    #[serde(default)]
    pub seed: Option<u64>,
}

#[utoipa::path(post, path = "/v1/plans/solve", tag = "plans", security(("bearer" = [])),
    description = "Plans one day from the stored technicians, open jobs and active bookings; every booking stays inside its promised window. Roles: admin, dispatcher.",
    request_body = SolveRequest,
    responses((status = 200, description = "The plan (see `despacho schema plan`)", body = Object),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn solve(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<Plan>, ApiError> {
    auth.require(roles::STAFF)?;
    let request: SolveRequest = body.json_object()?;
    let seconds = request.seconds.unwrap_or(5);
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$.seconds",
            "out_of_range",
            format!("{seconds}: must be between 1 and {MAX_SECONDS}"),
        )]));
    }
    let input = day_problem(&state, request.date).await?;
    let config = SolverConfig {
        seed: request.seed.unwrap_or(1),
        time_limit: Some(Duration::from_secs(u64::from(seconds))),
        ..SolverConfig::default()
    };
    let plan = tokio::task::spawn_blocking(move || {
        let solved = solve_field(&input, None, &config).map_err(ApiError::from)?;
        // Never hand out a plan that breaks a window, a shift or a skill.
        let check = check_plan(&input, &solved.plan)
            .map_err(|e| ApiError::Internal(format!("cannot check the plan: {e}")))?;
        if !check.is_feasible() {
            return Err(ApiError::Internal(format!(
                "the solver's plan failed its check: {:?}",
                check.violations
            )));
        }
        Ok(solved.plan)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the solve failed: {e}")))??;
    tracing::info!(date = %request.date, routes = plan.routes.len(),
        unassigned = plan.unassigned.len(), "day planned");
    Ok(Json(plan))
}

/// The stored operation of `date` as a problem (see the module's comment).
pub async fn day_problem(state: &AppState, date: NaiveDate) -> Result<ProblemInput, ApiError> {
    Ok(day_problem_and_territories(state, date).await?.0)
}

/// [`day_problem`] and the territories, read in one transaction. Members of a named
/// territory without an own territory polygon work inside its area.
pub async fn day_problem_and_territories(
    state: &AppState,
    date: NaiveDate,
) -> Result<(ProblemInput, TerritoryMap), ApiError> {
    let mut tx = state.db.begin_read().await?;
    let territories = TerritoryMap::load(&mut tx).await?;
    let settings = settings_in(&mut tx).await?;
    let technicians: Vec<String> = crate::server::store::db::on_tx!(&mut tx, |conn| {
        sqlx::query_scalar("SELECT data FROM technicians ORDER BY id")
            .fetch_all(&mut *conn)
            .await
    })?;
    let jobs: Vec<String> = crate::server::store::db::on_tx!(&mut tx, |conn| {
        sqlx::query_scalar("SELECT data FROM jobs WHERE status = 'open' ORDER BY id")
            .fetch_all(&mut *conn)
            .await
    })?;
    let bookings = active_visits(&mut tx, date, date, None, now()).await?;
    tx.rollback().await?;
    let stored = |what: &str, e: serde_json::Error| {
        ApiError::Internal(format!("a stored {what} is not valid: {e}"))
    };
    let mut techs = Vec::new();
    for data in &technicians {
        let mut t: Technician = serde_json::from_str(data).map_err(|e| stored("technician", e))?;
        t.shifts.retain(|s| s.date == date);
        if !t.shifts.is_empty() {
            techs.push(t);
        }
    }
    territories.apply_areas(&mut techs);
    let tz: chrono_tz::Tz = settings.time_zone.parse().map_err(|_| {
        ApiError::Internal(format!(
            "stored time zone `{}` is unknown",
            settings.time_zone
        ))
    })?;
    let mut job_inputs = Vec::new();
    for data in &jobs {
        let job: JobInput = serde_json::from_str(data).map_err(|e| stored("job", e))?;
        let today = job.windows.is_empty()
            || job
                .windows
                .iter()
                .any(|w| w.start.with_timezone(&tz).date_naive() == date);
        if today {
            job_inputs.push(job);
        }
    }
    for (id, visit) in bookings {
        let mut job = visit.job;
        job.id = id;
        job.priority = MAX_PRIORITY;
        job.pinned_technician = None;
        job.preferred_technician = Some(visit.technician);
        job_inputs.push(job);
    }
    let input = ProblemInput {
        version: PROBLEM_VERSION,
        time_zone: settings.time_zone,
        skills: None,
        technicians: techs,
        jobs: job_inputs,
        travel: settings.travel,
        objective: Default::default(),
    };
    Ok((input, territories))
}
