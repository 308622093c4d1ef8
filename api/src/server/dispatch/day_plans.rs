//! The dispatcher's day plans (docs/dispatch.md):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/plans/{date}/optimize` | queue a run that solves the day (locked visits kept) into a new draft version |
//! | `GET /v1/plans/{date}` | the day's latest version: routes, times, unassigned with reasons, violations, KPIs |
//! | `POST /v1/plans/{date}/changes` | move (optionally in time) / unassign / lock / unlock / swap, answered with feasibility and delta |
//! | `POST /v1/plans/{date}/publish` | the latest draft (or one territory of it) becomes the published plan |
//! | `GET /v1/plans/{date}/audit` | who changed what, when |
//!
//! Optimising queues a background run ([`crate::server::dispatch::plan_runs`]); the problem is built as
//! `POST /v1/plans/solve` builds it ([`day_problem`]: bookings keep their promised
//! windows), and the previous published plan is the solver's stability reference.

use crate::server::catalog::territories::{Scope, TerritoryQuery};
use crate::server::dispatch::kpis::{day_kpis, with_upsells, DayKpis};
use crate::server::dispatch::plan_changes::{answer, apply, ChangeAnswer, ChangeRequest};
use crate::server::dispatch::plan_eval::{DayModel, RouteStop, Violation};
use crate::server::dispatch::plan_publish;
use crate::server::dispatch::plan_runs::{self, RunWorker, RunWorkerConfig};
use crate::server::dispatch::plan_store::{self, AuditEntry, StoredPlan};
use crate::server::dispatch::plans::{day_problem, day_problem_and_territories, MAX_SECONDS};
use crate::server::dispatch::territory_publish::publish_territory;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{Body, Query};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::store::db::now;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::plan::Plan;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/plans/{date}", get(read))
        .route("/v1/plans/{date}/optimize", post(optimize))
        .route("/v1/plans/{date}/changes", post(change))
        .route("/v1/plans/{date}/publish", post(publish))
        .route("/v1/plans/{date}/audit", get(audit))
}

/// The `{date}` of the path (422 naming `date` when it is not YYYY-MM-DD).
fn parse_date(date: &str) -> Result<NaiveDate, ApiError> {
    date.parse().map_err(|_| {
        ApiError::validation(vec![ErrorDetail::new(
            "date",
            "invalid_date",
            format!("`{date}`: the date must be YYYY-MM-DD"),
        )])
    })
}

/// How long to search, and with which seed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizeRequest {
    /// Search time, 1–60 seconds (default 5).
    #[serde(default)]
    pub seconds: Option<i64>,
    /// Seed of the search, 0 or more (default 1).
    #[serde(default)]
    pub seed: Option<i64>,
    /// Wait for the run and answer with the stored version (200) instead of the queued
    /// run (202). For scripts and tests; the page polls the run instead.
    #[serde(default)]
    pub wait: bool,
    /// Re-plan only this territory's technicians and jobs; the other routes stay as they
    /// are in the latest version when the run ends. Default: the whole day.
    #[serde(default)]
    pub territory: Option<String>,
}

/// A place on the map.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MapPoint {
    pub lat: f64,
    pub lon: f64,
}

/// A day's plan as the dispatcher sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub date: NaiveDate,
    pub territory: Option<String>,
    pub version: i32,
    /// `draft`, `published` or `superseded`.
    pub state: String,
    /// `optimize` or `change`.
    pub origin: String,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub published_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The version the phones have (none: nothing published yet).
    pub published_version: Option<i32>,
    /// With a territory: whether its routes in this version are those the phones have
    /// (it may have been published on its own while the day is a draft).
    pub territory_published: Option<bool>,
    /// Audit lines of the versions made after the published one.
    pub changes_since_publish: Vec<AuditEntry>,
    /// The solver's evaluation: routes with per-stop arrival, start, end, waiting and
    /// travel, the break, unassigned jobs with reasons, the day's KPIs and cost.
    #[schema(value_type = Object)]
    pub plan: Plan,
    /// Locked visits (job ids).
    pub locked: Vec<String>,
    /// What the checker found wrong (empty when the plan is feasible).
    pub violations: Vec<Violation>,
    pub kpis: DayKpis,
    /// Coordinates of the jobs and of each technician's start place, for the map.
    pub places: Places,
}

#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Places {
    pub jobs: BTreeMap<String, MapPoint>,
    pub technicians: BTreeMap<String, MapPoint>,
}

fn places(input: &ProblemInput) -> Places {
    let mut p = Places::default();
    for j in &input.jobs {
        p.jobs.insert(
            j.id.clone(),
            MapPoint {
                lat: j.place.lat,
                lon: j.place.lon,
            },
        );
    }
    for t in &input.technicians {
        let start = t
            .shifts
            .first()
            .and_then(|s| s.start_place.as_ref())
            .unwrap_or(&t.home);
        p.technicians.insert(
            t.id.clone(),
            MapPoint {
                lat: start.lat,
                lon: start.lon,
            },
        );
    }
    p
}

async fn view(
    state: &AppState,
    input: &ProblemInput,
    stored: StoredPlan,
    scope: Option<&Scope>,
) -> Result<PlanView, ApiError> {
    let scoped;
    let (input, stored) = match scope {
        None => (input, stored),
        Some(scope) => {
            scoped = scope.problem(input);
            let stored = territory_plan(scope, &scoped, stored).await?;
            (&scoped, stored)
        }
    };
    let mut tx = state.db.begin_read().await?;
    let published = plan_store::latest(&mut tx, stored.date, true).await?;
    // A territory's routes may be published while the day's latest version is a draft.
    let territory_published = scope.map(|scope| {
        published
            .as_ref()
            .is_some_and(|p| scope.routes(&p.routes) == stored.routes)
    });
    let published_version = published.map(|p| p.version);
    let changes_since_publish = match published_version {
        Some(v) => plan_store::audit_log(&mut tx, stored.date, Some(v)).await?,
        None => Vec::new(),
    };
    let mut upsells =
        crate::server::catalog::upsells::figures_in(&mut tx, stored.date, stored.date, None)
            .await?;
    tx.rollback().await?;
    if let Some(scope) = scope {
        upsells.retain(|row| scope.has_technician(&row.technician));
    }
    let locked = stored
        .routes
        .values()
        .flatten()
        .filter(|s| s.locked)
        .map(|s| s.job.clone())
        .collect();
    Ok(PlanView {
        kpis: with_upsells(
            day_kpis(input, &stored.document, &stored.violations),
            &upsells,
        ),
        places: places(input),
        id: stored.id,
        date: stored.date,
        territory: stored.territory,
        version: stored.version,
        state: stored.state,
        origin: stored.origin,
        created_by: stored.created_by,
        created_at: stored.created_at,
        published_at: stored.published_at,
        published_version,
        territory_published,
        changes_since_publish,
        plan: stored.document,
        locked,
        violations: stored.violations,
    })
}

/// `stored` seen from one territory: its technicians' routes evaluated against the
/// territory's part of the day (`scoped`), so routes, unassigned jobs, violations and
/// KPIs are the territory's own.
async fn territory_plan(
    scope: &Scope,
    scoped: &ProblemInput,
    stored: StoredPlan,
) -> Result<StoredPlan, ApiError> {
    scope.require_technicians(stored.date)?;
    let routes = scope.routes(&stored.routes);
    let input = scoped.clone();
    let (evaluated, routes) = tokio::task::spawn_blocking(move || {
        let model = DayModel::with_pins(input, &DayModel::pins(&routes))?;
        Ok::<_, ApiError>((model.evaluate(&routes)?, routes))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the evaluation failed: {e}")))??;
    Ok(StoredPlan {
        territory: Some(scope.territory.clone()),
        document: evaluated.plan,
        violations: evaluated.violations,
        routes,
        ..stored
    })
}

#[utoipa::path(post, path = "/v1/plans/{date}/optimize", tag = "dispatch", security(("bearer" = [])),
    description = "Queues a background optimisation run of the day (202 with the run; follow it with \
        `GET /v1/plan-runs/{id}`). Any node's run worker solves it within the time budget and stores the \
        result as a new draft version. Locked visits stay with their technician and in their order; \
        bookings keep their promised windows; the published plan, if any, is the stability reference. \
        With `\"wait\": true` the request waits for the run and answers 200 with the new version, as \
        `GET /v1/plans/{date}` does. An empty body (no bytes at all) means every default, so a \
        plain `curl -X POST` re-optimises the whole day; any other body must be a JSON object. \
        Roles: admin, dispatcher.",
    params(("date" = String, Path, description = "YYYY-MM-DD")),
    request_body = OptimizeRequest,
    responses((status = 202, body = crate::server::dispatch::plan_runs::PlanRun),
        (status = 200, body = PlanView, description = "with `wait`: the stored version"),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 409, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn optimize(
    State(state): State<AppState>,
    auth: Auth,
    Path(date): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    auth.require(roles::STAFF)?;
    let date = parse_date(&date)?;
    // Deliberately unlike other routes: no body at all means "all defaults" (documented).
    let request: OptimizeRequest = if body.bytes.is_empty() {
        OptimizeRequest::default()
    } else {
        body.json_object()?
    };
    let mut run_request =
        plan_runs::checked_request(date, request.seconds, request.seed, MAX_SECONDS)?;
    // The day must make a problem at all (settings, technicians' data) before a run is
    // queued; the solver's own validation happens in the run.
    let (input, territories) = day_problem_and_territories(&state, date).await?;
    if let Some(t) = &request.territory {
        if !territories.contains(t) {
            return Err(ApiError::validation(vec![ErrorDetail::new(
                "$.territory",
                "unknown_territory",
                format!("there is no territory `{t}` (see GET /v1/territories)"),
            )]));
        }
    }
    run_request.territory = request.territory.clone();
    let run = plan_runs::queue(&state.db, run_request, &auth).await?;
    if !request.wait {
        return Ok((StatusCode::ACCEPTED, Json(run)).into_response());
    }
    // Waiting: run it here unless a worker was quicker, then wait for its end.
    let worker = RunWorker::new(state.clone(), RunWorkerConfig::default());
    if let Some(claim) = worker.claim(Some(&run.id)).await? {
        worker.execute(claim).await?;
    }
    let run = loop {
        let run = plan_runs::get_run(&state.db, &run.id).await?;
        if !matches!(run.state.as_str(), "queued" | "running") {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if run.state != "succeeded" {
        return Err(ApiError::conflict(
            "run_failed",
            format!(
                "run `{}` ended {}: {}",
                run.id,
                run.state,
                run.error.as_deref().unwrap_or("cancelled")
            ),
        ));
    }
    let mut tx = state.db.begin_read().await?;
    let stored = plan_store::latest(&mut tx, date, false).await?;
    tx.rollback().await?;
    let stored =
        stored.ok_or_else(|| ApiError::not_found("plan for the date", date.to_string()))?;
    let scope = match &request.territory {
        Some(t) => Some(Scope::new(&territories, t, &input, &stored.routes)?),
        None => None,
    };
    Ok(Json(view(&state, &input, stored, scope.as_ref()).await?).into_response())
}

#[utoipa::path(get, path = "/v1/plans/{date}", tag = "dispatch", security(("bearer" = [])),
    description = "The day's latest plan version with its routes, times, unassigned jobs and reasons, violations and KPIs. \
        With `territory`, only that territory's technicians and jobs, evaluated and measured on their own \
        (404 for an unknown territory, 409 `no_technicians_in_territory` when none of its members works that day). \
        Roles: admin, dispatcher.",
    params(("date" = String, Path, description = "YYYY-MM-DD"), TerritoryQuery),
    responses((status = 200, body = PlanView),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(date): Path<String>,
    Query(query): Query<TerritoryQuery>,
) -> Result<Json<PlanView>, ApiError> {
    auth.require(roles::STAFF)?;
    let date = parse_date(&date)?;
    let mut tx = state.db.begin_read().await?;
    let stored = plan_store::latest(&mut tx, date, false).await?;
    tx.rollback().await?;
    let stored =
        stored.ok_or_else(|| ApiError::not_found("plan for the date", date.to_string()))?;
    let (input, territories) = day_problem_and_territories(&state, date).await?;
    let scope = match &query.territory {
        Some(t) => Some(Scope::new(&territories, t, &input, &stored.routes)?),
        None => None,
    };
    Ok(Json(view(&state, &input, stored, scope.as_ref()).await?))
}

#[utoipa::path(post, path = "/v1/plans/{date}/changes", tag = "dispatch", security(("bearer" = [])),
    description = "One manual change (`move`, `unassign`, `lock`, `unlock` or `swap`), answered at once with the \
        violations of the changed routes and the cost and ETA delta from the solver's route evaluation (no re-solve). \
        A `move` with `start` (RFC 3339, on the plan's date) pins the visit's earliest start: it waits until then, \
        goes where that time falls on the route (without `position`) and keeps the pin in later changes. \
        Stored as a new draft version unless `dry_run`. Roles: admin, dispatcher.",
    params(("date" = String, Path, description = "YYYY-MM-DD")),
    request_body = ChangeRequest,
    responses((status = 200, body = ChangeAnswer),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody), (status = 409, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn change(
    State(state): State<AppState>,
    auth: Auth,
    Path(date): Path<String>,
    body: Body,
) -> Result<Json<ChangeAnswer>, ApiError> {
    auth.require(roles::STAFF)?;
    let date = parse_date(&date)?;
    let request: ChangeRequest = body.json_object()?;
    let change = request.change()?;
    let mut tx = state.db.begin_read().await?;
    let current = plan_store::latest(&mut tx, date, false).await?;
    tx.rollback().await?;
    let current = current.ok_or_else(|| {
        ApiError::not_found(
            "plan for the date (optimise the day first)",
            date.to_string(),
        )
    })?;
    if let Some(v) = request.version {
        if v != current.version {
            return Err(ApiError::conflict(
                "plan_changed",
                format!(
                    "the plan of {date} is at version {}, not {v}; read it again",
                    current.version
                ),
            ));
        }
    }
    let input = day_problem(&state, date).await?;
    let before_routes = current.routes.clone();
    let before_plan = current.document.clone();
    let current_version = current.version;
    let (evaluated, routes, mut answer) = tokio::task::spawn_blocking(move || {
        // Visits moved in time keep their pin (`RouteStop::not_before`) in every
        // evaluation: the model of each set of routes is compiled with its pins.
        let before_pins = DayModel::pins(&before_routes);
        let before_model = DayModel::with_pins(input.clone(), &before_pins)?;
        let (routes, changed) = apply(&before_model, date, &before_routes, &before_plan, &change)?;
        let after_pins = DayModel::pins(&routes);
        let after_model = if after_pins == before_pins {
            None
        } else {
            Some(DayModel::with_pins(input.clone(), &after_pins)?)
        };
        let model = after_model.as_ref().unwrap_or(&before_model);
        let mut impossible: Vec<Violation> = changed
            .iter()
            .flat_map(|t| model.incompatible(t, routes.get(t).map_or(&[][..], |r| r)))
            .collect();
        if !impossible.is_empty() && !after_pins.is_empty() {
            // A visit pinned so late that it cannot end within the shift (overtime
            // included) is refused too; say so rather than blame skills or territory.
            let plain = DayModel::new(input)?;
            for v in &mut impossible {
                let (Some(t), Some(job)) = (&v.technician, &v.job) else {
                    continue;
                };
                let Some(pin) = after_pins.get(job) else {
                    continue;
                };
                let stop = [RouteStop {
                    job: job.clone(),
                    locked: false,
                    not_before: None,
                }];
                if plain.incompatible(t, &stop).is_empty() {
                    v.code = "shift_overrun".into();
                    v.check_code = "pinned_start_after_shift".into();
                    v.message = format!(
                        "`{t}` cannot start `{job}` at {} or later and finish it within the shift \
                         (overtime included)",
                        pin.to_rfc3339()
                    );
                }
            }
        }
        if !impossible.is_empty() {
            // No timing exists for a visit the technician may not do: answered, not stored.
            return Ok((
                None,
                routes,
                ChangeAnswer::refused(current_version, impossible),
            ));
        }
        let evaluated = model.evaluate(&routes)?;
        let answer = answer(
            &before_model,
            model,
            &before_routes,
            &before_plan,
            &routes,
            &evaluated.plan,
            &evaluated.violations,
            &changed,
        );
        Ok::<_, ApiError>((Some(evaluated), routes, answer))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the evaluation failed: {e}")))??;
    answer.version = current.version;
    let Some(evaluated) = evaluated.filter(|_| !request.dry_run) else {
        return Ok(Json(answer));
    };
    let actor = auth.clone();
    let at = now();
    let expected = current.version;
    let details = json!({
        "change": request,
        "feasible": answer.feasible,
        "violations": answer.violations,
        "cost_delta": answer.cost_delta,
    });
    let stored = state
        .db
        .write(move |tx| {
            let (evaluated, routes, auth, details) = (
                evaluated.clone(),
                routes.clone(),
                actor.clone(),
                details.clone(),
            );
            Box::pin(async move {
                let stored = plan_store::insert_version(
                    tx,
                    date,
                    "change",
                    &evaluated,
                    &routes,
                    &auth,
                    Some(expected),
                    at,
                )
                .await?;
                plan_store::audit(
                    tx,
                    date,
                    Some((&stored.id, stored.version)),
                    &auth,
                    "change",
                    &details,
                    at,
                )
                .await?;
                Ok(stored)
            })
        })
        .await?;
    answer.applied = true;
    answer.version = stored.version;
    Ok(Json(answer))
}

/// What publishing did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Published {
    pub plan_id: String,
    pub version: i32,
    pub state: String,
    pub published_at: chrono::DateTime<chrono::Utc>,
    /// The territory published (absent: the whole day).
    pub territory: Option<String>,
    /// After a territory's publishing: the draft version that keeps the other
    /// territories' unpublished changes (absent when there were none).
    pub draft_version: Option<i32>,
}

#[utoipa::path(post, path = "/v1/plans/{date}/publish", tag = "dispatch", security(("bearer" = [])),
    description = "The day's latest draft becomes the published plan (what the technicians' phones receive). \
        409 `already_published`, or `plan_infeasible` with the violations. \
        With `territory`, only that territory's routes are published (its violations only block it): \
        the published version is the last published one with the territory's routes from the draft, \
        and the draft's other changes are kept as a new draft (`draft_version`). Roles: admin, dispatcher.",
    params(("date" = String, Path, description = "YYYY-MM-DD"), TerritoryQuery),
    responses((status = 200, body = Published),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody), (status = 409, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn publish(
    State(state): State<AppState>,
    auth: Auth,
    Path(date): Path<String>,
    Query(query): Query<TerritoryQuery>,
) -> Result<Json<Published>, ApiError> {
    auth.require(roles::STAFF)?;
    let date = parse_date(&date)?;
    if let Some(territory) = query.territory {
        let done = publish_territory(&state, &auth, date, &territory).await?;
        return Ok(Json(Published {
            plan_id: done.plan_id,
            version: done.version,
            state: "published".into(),
            published_at: done.at,
            territory: Some(territory),
            draft_version: done.draft_version,
        }));
    }
    let at = now();
    let actor = auth.clone();
    let (plan_id, version) = state
        .db
        .write(move |tx| {
            let auth = actor.clone();
            Box::pin(async move {
                let previous = plan_store::latest(tx, date, true).await?;
                let (id, version) = plan_store::publish(tx, date, at).await?;
                // The phones get exactly the published plan, in this transaction.
                let published = plan_store::latest(tx, date, true).await?.ok_or_else(|| {
                    ApiError::Internal(format!("version {version} of {date} is not published"))
                })?;
                plan_publish::hand_to_phones(tx, &published, previous.as_ref(), at).await?;
                plan_store::audit(
                    tx,
                    date,
                    Some((&id, version)),
                    &auth,
                    "publish",
                    &json!({}),
                    at,
                )
                .await?;
                Ok((id, version))
            })
        })
        .await?;
    Ok(Json(Published {
        plan_id,
        version,
        state: "published".into(),
        published_at: at,
        territory: None,
        draft_version: None,
    }))
}

/// The day's audit log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
}

#[utoipa::path(get, path = "/v1/plans/{date}/audit", tag = "dispatch", security(("bearer" = [])),
    description = "Who optimised, changed and published the day's plan, and when, oldest first. Roles: admin, dispatcher.",
    params(("date" = String, Path, description = "YYYY-MM-DD")),
    responses((status = 200, body = AuditLog),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    auth: Auth,
    Path(date): Path<String>,
) -> Result<Json<AuditLog>, ApiError> {
    auth.require(roles::STAFF)?;
    let date = parse_date(&date)?;
    let mut tx = state.db.begin_read().await?;
    let entries = plan_store::audit_log(&mut tx, date, None).await?;
    tx.rollback().await?;
    Ok(Json(AuditLog { entries }))
}
