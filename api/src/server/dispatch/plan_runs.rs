//! Background optimisation runs (docs/dispatch.md, "Optimising"; table of migration
//! 0010):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/plans/{date}/optimize` | queues a run (in [`crate::server::dispatch::day_plans`]); 202 with the run |
//! | `GET /v1/plan-runs/{id}` | state, progress, the resulting plan version |
//! | `POST /v1/plan-runs/{id}/cancel` | stops it (a running solve stops at its next iteration) |
//!
//! A run is `queued` → `running` → `succeeded` | `failed` | `cancelled`. Any node's
//! [`RunWorker`] claims it the way the outbox worker claims messages: by lease, in one
//! statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL), with a token new per claim. While
//! the solver runs on a blocking thread, the worker writes its progress every
//! `progress_every`; that write renews the lease, and it is also how the worker learns of
//! a cancel (`cancel_requested`) or that its lease has gone to another worker (it then
//! stops and stores nothing). A run whose lease expired (its node died) is claimed again
//! and solved from the start; after `max_attempts` claims it ends `failed`.
//!
//! The result is stored as the day's next draft version in the same transaction that
//! marks the run `succeeded`, and only while the lease is still this claim's, so a run
//! never produces two versions.

use crate::server::catalog::territories::Scope;
use crate::server::dispatch::plan_eval::{
    evaluate_day, keep_pins, pinned_windows, routes_of, DayModel, DayRoutes,
};
use crate::server::dispatch::plan_store;
use crate::server::dispatch::plans::day_problem_and_territories;
use crate::server::http::auth::{roles, Auth, Role};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::store::clock::Clock;
use crate::server::store::db::{now, on_tx, Backend, Db};
use crate::server::store::ids::new_id;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use despacho_solver::field::compile::COST_UNITS_PER_CURRENCY;
use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::solve::solve_field;
use despacho_solver::{SearchProgress, SolveControl, SolverConfig};
use serde::Serialize;
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/plan-runs/{id}", get(read))
        .route("/v1/plan-runs/{id}/cancel", post(cancel))
}

/// How far a run has come (all `null` until its worker first reports).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunProgress {
    /// Seconds the solver has searched.
    pub elapsed_seconds: Option<f64>,
    /// Search iterations so far.
    pub iterations: Option<i64>,
    /// Cost of the best plan so far, in currency units (the solver's objective,
    /// penalties of unplanned jobs included); `null` until a feasible plan is found.
    pub best_cost: Option<f64>,
    /// Jobs planned in that plan.
    pub jobs_planned: Option<i32>,
}

/// One optimisation run.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlanRun {
    pub id: String,
    pub date: NaiveDate,
    /// The territory it re-plans (`null`: the whole day).
    pub territory: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// The search's time budget.
    pub seconds: i32,
    pub seed: i64,
    /// A cancel was asked for; a running run stops at its worker's next progress write.
    pub cancel_requested: bool,
    /// Workers that claimed it (more than 1: a node died while running it).
    pub attempts: i32,
    pub progress: RunProgress,
    /// The draft version the run stored (state `succeeded`).
    pub plan_id: Option<String>,
    pub plan_version: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// Name of the API key that asked for it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
struct RunRow {
    id: String,
    date: String,
    territory: Option<String>,
    seconds: i32,
    seed: i64,
    state: String,
    cancel_requested: bool,
    attempts: i32,
    lease_owner: Option<String>,
    elapsed_ms: Option<i64>,
    iterations: Option<i64>,
    best_cost: Option<f64>,
    jobs_planned: Option<i32>,
    plan_id: Option<String>,
    plan_version: Option<i32>,
    error: Option<String>,
    actor_key: String,
    actor_name: String,
    actor_role: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

const RUN_COLUMNS: &str = "id, date, territory, seconds, seed, state, cancel_requested, attempts, \
    lease_owner, elapsed_ms, iterations, best_cost, jobs_planned, plan_id, plan_version, \
    error, actor_key, actor_name, actor_role, created_at, started_at, finished_at";

impl RunRow {
    fn view(self) -> Result<PlanRun, ApiError> {
        Ok(PlanRun {
            date: self
                .date
                .parse()
                .map_err(|e| ApiError::Internal(format!("stored run date `{}`: {e}", self.date)))?,
            progress: RunProgress {
                elapsed_seconds: self.elapsed_ms.map(|ms| ms as f64 / 1000.0),
                iterations: self.iterations,
                best_cost: self.best_cost,
                jobs_planned: self.jobs_planned,
            },
            id: self.id,
            territory: self.territory,
            state: self.state,
            seconds: self.seconds,
            seed: self.seed,
            cancel_requested: self.cancel_requested,
            attempts: self.attempts,
            plan_id: self.plan_id,
            plan_version: self.plan_version,
            error: self.error,
            created_by: self.actor_name,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }

    /// The key that asked for the run: the plan version and the audit line are theirs.
    fn actor(&self) -> Result<Auth, ApiError> {
        let role: Role = self
            .actor_role
            .parse()
            .map_err(|e| ApiError::Internal(format!("stored run role: {e}")))?;
        Ok(Auth {
            key_id: self.actor_key.clone(),
            key_name: self.actor_name.clone(),
            role,
            technician_id: None,
        })
    }
}

/// What a caller asked for (already checked: seconds 1–60, seed within `i64`, the
/// territory known).
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub date: NaiveDate,
    pub seconds: u32,
    pub seed: i64,
    pub territory: Option<String>,
}

/// Stores a new `queued` run.
pub async fn queue(db: &Db, request: RunRequest, auth: &Auth) -> Result<PlanRun, ApiError> {
    let id = new_id::<8>("run")?;
    let at = now();
    let auth = auth.clone();
    let row = db
        .write(move |tx| {
            let (id, auth, request) = (id.clone(), auth.clone(), request.clone());
            Box::pin(async move {
                let sql = format!(
                    "INSERT INTO plan_runs (id, date, seconds, seed, state, actor_key, \
                     actor_name, actor_role, created_at, territory) \
                     VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9) RETURNING {RUN_COLUMNS}"
                );
                Ok(on_tx!(tx, |conn| {
                    sqlx::query_as::<_, RunRow>(&sql)
                        .bind(&id)
                        .bind(request.date.to_string())
                        .bind(request.seconds as i32)
                        .bind(request.seed)
                        .bind(&auth.key_id)
                        .bind(&auth.key_name)
                        .bind(auth.role.as_str())
                        .bind(at)
                        .bind(&request.territory)
                        .fetch_one(&mut *conn)
                        .await
                })?)
            })
        })
        .await?;
    row.view()
}

async fn load(db: &Db, id: &str) -> Result<Option<RunRow>, ApiError> {
    let mut tx = db.begin_read().await?;
    let sql = format!("SELECT {RUN_COLUMNS} FROM plan_runs WHERE id = $1");
    let row: Option<RunRow> = on_tx!(&mut tx, |conn| {
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    tx.rollback().await?;
    Ok(row)
}

/// The run `id` as the API shows it (404 naming the id when there is none).
pub async fn get_run(db: &Db, id: &str) -> Result<PlanRun, ApiError> {
    load(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("plan run", id))?
        .view()
}

#[utoipa::path(get, path = "/v1/plan-runs/{id}", tag = "dispatch", security(("bearer" = [])),
    description = "An optimisation run: its state (`queued`, `running`, `succeeded`, `failed`, `cancelled`), \
        progress (elapsed seconds, iterations, best cost so far, jobs planned) and, once succeeded, \
        the draft plan version it stored. Roles: admin, dispatcher.",
    params(("id" = String, Path, description = "the run's id (`run_…`)")),
    responses((status = 200, body = PlanRun),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<PlanRun>, ApiError> {
    auth.require(roles::STAFF)?;
    Ok(Json(get_run(&state.db, &id).await?))
}

#[utoipa::path(post, path = "/v1/plan-runs/{id}/cancel", tag = "dispatch", security(("bearer" = [])),
    description = "Cancels a run. A queued run (or one whose worker is gone) is `cancelled` at once; \
        a running one gets `cancel_requested` and its solver stops within about a second; \
        no plan version is stored. 409 `run_finished` when it had already ended. Roles: admin, dispatcher.",
    params(("id" = String, Path, description = "the run's id (`run_…`)")),
    responses((status = 200, body = PlanRun),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody), (status = 409, body = crate::server::http::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<PlanRun>, ApiError> {
    auth.require(roles::STAFF)?;
    let at = now();
    let run_id = id.clone();
    let changed = state
        .db
        .write(move |tx| {
            let id = run_id.clone();
            Box::pin(async move {
                // Nobody will see the flag of a run without a live lease: end it here.
                let sql = format!(
                    "UPDATE plan_runs SET cancel_requested = TRUE, \
                       state = CASE WHEN state = 'queued' OR lease_until <= $2 \
                         THEN 'cancelled' ELSE state END, \
                       finished_at = CASE WHEN state = 'queued' OR lease_until <= $2 \
                         THEN $2 ELSE finished_at END \
                     WHERE id = $1 AND state IN ('queued', 'running') RETURNING {RUN_COLUMNS}"
                );
                Ok(on_tx!(tx, |conn| {
                    sqlx::query_as::<_, RunRow>(&sql)
                        .bind(&id)
                        .bind(at)
                        .fetch_optional(&mut *conn)
                        .await
                })?)
            })
        })
        .await?;
    match changed {
        Some(row) => Ok(Json(row.view()?)),
        None => {
            let run = get_run(&state.db, &id).await?;
            Err(ApiError::conflict(
                "run_finished",
                format!("run `{id}` has already ended ({})", run.state),
            ))
        }
    }
}

/// How a run worker behaves.
#[derive(Clone)]
pub struct RunWorkerConfig {
    /// Names the worker in leases and logs (a random suffix is added per claim).
    pub name: String,
    /// How long a claim is this worker's alone without a progress write.
    pub lease: Duration,
    /// Progress (and lease renewal, and the cancel check) this often while solving.
    pub progress_every: Duration,
    /// Pause when no run was waiting.
    pub idle_poll: Duration,
    /// Claims before a run whose workers keep dying is `failed`.
    pub max_attempts: i32,
    pub clock: Clock,
}

impl std::fmt::Debug for RunWorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWorkerConfig")
            .field("name", &self.name)
            .field("lease", &self.lease)
            .field("progress_every", &self.progress_every)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Default for RunWorkerConfig {
    fn default() -> Self {
        RunWorkerConfig {
            name: "runs".to_owned(),
            lease: Duration::from_secs(30),
            progress_every: Duration::from_secs(1),
            idle_poll: Duration::from_secs(1),
            max_attempts: 3,
            clock: Arc::new(now),
        }
    }
}

/// A run claimed by a worker: its row and this claim's lease token.
#[derive(Clone, Debug)]
pub struct Claim {
    row: RunRow,
    pub run_id: String,
    pub lease_owner: String,
}

/// What became of a claimed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Stored as draft `plan_version`.
    Succeeded {
        plan_version: i32,
    },
    Cancelled,
    Failed {
        error: String,
    },
    /// Another worker holds the run now (this one was too slow to renew): nothing stored.
    LeaseLost,
}

/// Claims and executes optimisation runs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RunWorker {
    state: AppState,
    config: RunWorkerConfig,
}

impl RunWorker {
    pub fn new(state: AppState, config: RunWorkerConfig) -> RunWorker {
        RunWorker { state, config }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.config.clock)()
    }

    fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::MAX)
    }

    /// Claims the oldest waiting run (queued, or running with an expired lease); `only`:
    /// that run alone. Runs whose workers died `max_attempts` times are failed first.
    pub async fn claim(&self, only: Option<&str>) -> Result<Option<Claim>, ApiError> {
        let now = self.now();
        let owner = new_id::<6>(&self.config.name)?;
        let until = self.lease_until(now);
        let max_attempts = self.config.max_attempts;
        let pick = match self.state.db.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let only = only.map(str::to_owned);
        let claim_sql = format!(
            "UPDATE plan_runs SET state = 'running', lease_owner = $1, lease_until = $2, \
               attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
             WHERE id IN (SELECT id FROM plan_runs WHERE NOT cancel_requested \
               AND (state = 'queued' OR (state = 'running' AND lease_until <= $3)) \
               AND ($4 IS NULL OR id = $4) \
               ORDER BY created_at, id LIMIT 1 {pick}) \
             RETURNING {RUN_COLUMNS}"
        );
        let row = self
            .state
            .db
            .write(move |tx| {
                let (sql, owner, only) = (claim_sql.clone(), owner.clone(), only.clone());
                Box::pin(async move {
                    on_tx!(tx, |conn| {
                        sqlx::query(
                            "UPDATE plan_runs SET state = 'failed', finished_at = $1, \
                               error = 'its workers stopped ' || attempts || ' times without finishing' \
                             WHERE state = 'running' AND lease_until <= $1 AND attempts >= $2",
                        )
                        .bind(now)
                        .bind(max_attempts)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                    })?;
                    Ok(on_tx!(tx, |conn| {
                        sqlx::query_as::<_, RunRow>(&sql)
                            .bind(&owner)
                            .bind(until)
                            .bind(now)
                            .bind(only.as_deref())
                            .fetch_optional(&mut *conn)
                            .await
                    })?)
                })
            })
            .await?;
        Ok(row.map(|row| Claim {
            run_id: row.id.clone(),
            lease_owner: row.lease_owner.clone().unwrap_or_default(),
            row,
        }))
    }

    /// Claims one run and executes it; `None` when no run was waiting.
    pub async fn try_run_one(&self) -> Result<Option<(String, RunOutcome)>, ApiError> {
        let Some(claim) = self.claim(None).await? else {
            return Ok(None);
        };
        let id = claim.run_id.clone();
        Ok(Some((id, self.execute(claim).await?)))
    }

    /// Runs until `shutdown` turns true (or its sender is dropped); the run in progress
    /// is finished (or left to its lease) first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.config.name, "plan run worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let busy = match self.try_run_one().await {
                Ok(Some((id, outcome))) => {
                    tracing::info!(run = %id, ?outcome, "plan run ended");
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "plan run round failed");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    () = tokio::time::sleep(self.config.idle_poll) => {}
                    changed = shutdown.changed() => if changed.is_err() { break },
                }
            }
        }
        tracing::info!(worker = %self.config.name, "plan run worker stopped");
    }

    /// Solves the claimed run, writing progress, and stores its result (module docs).
    pub async fn execute(&self, claim: Claim) -> Result<RunOutcome, ApiError> {
        let date: NaiveDate = match claim.row.date.parse() {
            Ok(d) => d,
            Err(e) => return self.fail(&claim, format!("stored date: {e}")).await,
        };
        let (input, territories) = match day_problem_and_territories(&self.state, date).await {
            Ok(i) => i,
            Err(e) => return self.fail(&claim, e.to_string()).await,
        };
        let mut tx = self.state.db.begin_read().await?;
        let current = plan_store::latest(&mut tx, date, false).await?;
        let published = plan_store::latest(&mut tx, date, true).await?;
        tx.rollback().await?;
        let based_on = current.as_ref().map(|c| c.version);
        let current_routes = current.map(|c| c.routes).unwrap_or_default();
        // A territory's run solves its part of the day only (see `Scope`).
        let scope = match &claim.row.territory {
            None => None,
            Some(t) => match Scope::new(&territories, t, &input, &current_routes) {
                Ok(scope) => Some(scope),
                Err(e) => return self.fail(&claim, e.to_string()).await,
            },
        };
        if let Some(Err(e)) = scope.as_ref().map(|s| s.require_technicians(date)) {
            return self.fail(&claim, e.to_string()).await;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, mut progress_rx) = watch::channel(None::<SearchProgress>);
        let config = SolverConfig {
            seed: claim.row.seed as u64,
            time_limit: Some(Duration::from_secs(claim.row.seconds.max(1) as u64)),
            control: Some(SolveControl {
                stop: stop.clone(),
                on_progress: Some(Arc::new(move |p: &SearchProgress| {
                    progress_tx.send_replace(Some(p.clone()));
                })),
                progress_every: self.config.progress_every / 2,
            }),
            ..SolverConfig::default()
        };
        let previous = published.map(|p| p.document);
        let scope_for_solve = scope.clone();
        let mut solving = tokio::task::spawn_blocking(move || {
            optimise(
                input,
                scope_for_solve.as_ref(),
                &current_routes,
                previous.as_ref(),
                &config,
            )
        });
        // While it solves: write progress, renew the lease, listen for a cancel.
        let mut lease_lost = false;
        let mut cancelled = false;
        let solved = loop {
            tokio::select! {
                done = &mut solving => break done,
                () = tokio::time::sleep(self.config.progress_every) => {
                    let latest = progress_rx.borrow_and_update().clone();
                    match self.write_progress(&claim, latest.as_ref()).await {
                        Ok(Some(cancel)) => cancelled |= cancel,
                        Ok(None) => lease_lost = true,
                        Err(e) => tracing::warn!(run = %claim.run_id, error = %e, "cannot write run progress"),
                    }
                    if cancelled || lease_lost {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        let last = progress_rx.borrow().clone();
        if lease_lost {
            return Ok(RunOutcome::LeaseLost);
        }
        let solved = match solved {
            Ok(Ok(mut s)) => {
                if let Some(t) = &mut s.territory {
                    t.based_on = based_on;
                }
                s
            }
            Ok(Err(e)) => return self.fail(&claim, e.to_string()).await,
            Err(e) => return self.fail(&claim, format!("the solver stopped: {e}")).await,
        };
        if cancelled {
            return self.finish_cancelled(&claim, last.as_ref()).await;
        }
        self.store(&claim, date, solved, last.as_ref()).await
    }

    /// Progress write; also renews the lease. `Some(cancel_requested)` while the lease
    /// is this claim's, `None` once it is not.
    async fn write_progress(
        &self,
        claim: &Claim,
        progress: Option<&SearchProgress>,
    ) -> Result<Option<bool>, ApiError> {
        let until = self.lease_until(self.now());
        let (id, owner) = (claim.run_id.clone(), claim.lease_owner.clone());
        let p = progress.cloned();
        self.state
            .db
            .write(move |tx| {
                let (id, owner, p) = (id.clone(), owner.clone(), p.clone());
                Box::pin(async move {
                    let (elapsed, iterations, best, planned) = progress_columns(p.as_ref());
                    Ok(on_tx!(tx, |conn| {
                        sqlx::query_scalar::<_, bool>(
                            "UPDATE plan_runs SET lease_until = $3, \
                               elapsed_ms = COALESCE($4, elapsed_ms), \
                               iterations = COALESCE($5, iterations), \
                               best_cost = COALESCE($6, best_cost), \
                               jobs_planned = COALESCE($7, jobs_planned) \
                             WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
                             RETURNING cancel_requested",
                        )
                        .bind(&id)
                        .bind(&owner)
                        .bind(until)
                        .bind(elapsed)
                        .bind(iterations)
                        .bind(best)
                        .bind(planned)
                        .fetch_optional(&mut *conn)
                        .await
                    })?)
                })
            })
            .await
    }

    /// Ends the run `state` (with `error`) if the lease is still this claim's.
    async fn end(
        &self,
        claim: &Claim,
        state: &'static str,
        error: Option<String>,
        progress: Option<&SearchProgress>,
    ) -> Result<bool, ApiError> {
        let at = self.now();
        let (id, owner) = (claim.run_id.clone(), claim.lease_owner.clone());
        let p = progress.cloned();
        self.state
            .db
            .write(move |tx| {
                let (id, owner, p, error) = (id.clone(), owner.clone(), p.clone(), error.clone());
                Box::pin(async move {
                    let (elapsed, iterations, best, planned) = progress_columns(p.as_ref());
                    let n = on_tx!(tx, |conn| {
                        sqlx::query(
                            "UPDATE plan_runs SET state = $3, error = $4, finished_at = $5, \
                               elapsed_ms = COALESCE($6, elapsed_ms), \
                               iterations = COALESCE($7, iterations), \
                               best_cost = COALESCE($8, best_cost), \
                               jobs_planned = COALESCE($9, jobs_planned) \
                             WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
                        )
                        .bind(&id)
                        .bind(&owner)
                        .bind(state)
                        .bind(error.as_deref())
                        .bind(at)
                        .bind(elapsed)
                        .bind(iterations)
                        .bind(best)
                        .bind(planned)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                    })?;
                    Ok(n == 1)
                })
            })
            .await
    }

    async fn fail(&self, claim: &Claim, error: String) -> Result<RunOutcome, ApiError> {
        tracing::warn!(run = %claim.run_id, %error, "plan run failed");
        Ok(
            if self.end(claim, "failed", Some(error.clone()), None).await? {
                RunOutcome::Failed { error }
            } else {
                RunOutcome::LeaseLost
            },
        )
    }

    async fn finish_cancelled(
        &self,
        claim: &Claim,
        progress: Option<&SearchProgress>,
    ) -> Result<RunOutcome, ApiError> {
        Ok(if self.end(claim, "cancelled", None, progress).await? {
            RunOutcome::Cancelled
        } else {
            RunOutcome::LeaseLost
        })
    }

    /// Stores the solved plan as the day's next draft and marks the run `succeeded`, in
    /// one transaction, only while the lease is this claim's and no cancel came.
    async fn store(
        &self,
        claim: &Claim,
        date: NaiveDate,
        solved: Optimised,
        progress: Option<&SearchProgress>,
    ) -> Result<RunOutcome, ApiError> {
        let auth = claim.row.actor()?;
        let at = self.now();
        let (id, owner) = (claim.run_id.clone(), claim.lease_owner.clone());
        let (seconds, seed) = (claim.row.seconds, claim.row.seed);
        let p = progress.cloned();
        let solved = Arc::new(solved);
        let outcome = self
            .state
            .db
            .write(move |tx| {
                let (id, owner, auth, p, solved) = (
                    id.clone(),
                    owner.clone(),
                    auth.clone(),
                    p.clone(),
                    solved.clone(),
                );
                Box::pin(async move {
                    let (elapsed, iterations, best, planned) = progress_columns(p.as_ref());
                    // Taking the row first (a row lock on PostgreSQL) orders this after
                    // or before a concurrent cancel, never between.
                    let taken = on_tx!(tx, |conn| {
                        sqlx::query(
                            "UPDATE plan_runs SET state = 'succeeded', finished_at = $3, \
                               elapsed_ms = COALESCE($4, elapsed_ms), \
                               iterations = COALESCE($5, iterations), \
                               best_cost = COALESCE($6, best_cost), \
                               jobs_planned = COALESCE($7, jobs_planned) \
                             WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
                               AND NOT cancel_requested",
                        )
                        .bind(&id)
                        .bind(&owner)
                        .bind(at)
                        .bind(elapsed)
                        .bind(iterations)
                        .bind(best)
                        .bind(planned)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                    })?;
                    if taken == 0 {
                        return Ok(None);
                    }
                    // A territory's routes go into the day as it is now: a version made
                    // while the run solved (another territory's run, a manual change)
                    // keeps its other routes.
                    let remerged = match &solved.territory {
                        Some(t) => {
                            let latest = plan_store::latest(tx, date, false).await?;
                            let version = latest.as_ref().map(|l| l.version);
                            if version == t.based_on {
                                None
                            } else {
                                let routes = t.scope.merge(
                                    &latest.map(|l| l.routes).unwrap_or_default(),
                                    &t.solved,
                                );
                                let evaluated = evaluate_day(t.day.clone(), &routes)?;
                                Some((evaluated, routes))
                            }
                        }
                        None => None,
                    };
                    let (evaluated, routes) = match &remerged {
                        Some((e, r)) => (e, r),
                        None => (&solved.evaluated, &solved.routes),
                    };
                    let stored = plan_store::insert_version(
                        tx, date, "optimize", evaluated, routes, &auth, None, at,
                    )
                    .await?;
                    let details = json!({
                        "run": id, "seconds": seconds, "seed": seed,
                        "territory": solved.territory.as_ref().map(|t| &t.scope.territory),
                        "iterations": solved.iterations,
                        "cost": evaluated.plan.cost.total,
                        "jobs_assigned": evaluated.plan.kpis.jobs_assigned,
                        "jobs_unassigned": evaluated.plan.kpis.jobs_unassigned,
                        "violations": evaluated.violations.len(),
                        "locks_not_kept": solved.locks_not_kept,
                    });
                    plan_store::audit(
                        tx,
                        date,
                        Some((&stored.id, stored.version)),
                        &auth,
                        "optimize",
                        &details,
                        at,
                    )
                    .await?;
                    on_tx!(tx, |conn| {
                        sqlx::query(
                            "UPDATE plan_runs SET plan_id = $2, plan_version = $3 WHERE id = $1",
                        )
                        .bind(&id)
                        .bind(&stored.id)
                        .bind(stored.version)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                    })?;
                    Ok(Some(stored.version))
                })
            })
            .await?;
        match outcome {
            Some(plan_version) => {
                tracing::info!(%date, version = plan_version, run = %claim.run_id, "day optimised");
                Ok(RunOutcome::Succeeded { plan_version })
            }
            // A cancel that came after the solve ended, or the lease went elsewhere.
            None => match load(&self.state.db, &claim.run_id).await? {
                Some(row)
                    if row.cancel_requested
                        && row.state == "running"
                        && row.lease_owner.as_deref() == Some(&claim.lease_owner) =>
                {
                    self.finish_cancelled(claim, progress).await
                }
                _ => Ok(RunOutcome::LeaseLost),
            },
        }
    }
}

/// Columns of a progress report: elapsed ms, iterations, best cost (currency), jobs planned.
fn progress_columns(
    p: Option<&SearchProgress>,
) -> (Option<i64>, Option<i64>, Option<f64>, Option<i32>) {
    match p {
        None => (None, None, None, None),
        Some(p) => (
            Some(i64::try_from(p.elapsed.as_millis()).unwrap_or(i64::MAX)),
            Some(i64::try_from(p.iterations).unwrap_or(i64::MAX)),
            p.best_cost
                .map(|c| c.get() as f64 / COST_UNITS_PER_CURRENCY as f64),
            p.jobs_planned.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        ),
    }
}

/// A solved day, evaluated as every stored version is.
struct Optimised {
    evaluated: crate::server::dispatch::plan_eval::Evaluated,
    routes: DayRoutes,
    locks_not_kept: Vec<String>,
    iterations: u64,
    /// A territory's run: its scope, the solver's routes of that territory, the day's
    /// problem and the version the run started from, to merge again if the day moved on
    /// while it solved.
    territory: Option<TerritoryResult>,
}

struct TerritoryResult {
    scope: Scope,
    solved: DayRoutes,
    day: ProblemInput,
    based_on: Option<i32>,
}

/// Solves the day, or one territory's part of it (on a blocking thread): locked visits
/// pinned (see [`with_locks`]), visits moved in time kept at or after their time, the
/// published plan as the stability reference; a territory's routes replace its
/// technicians' routes of the current version. The routes are then evaluated against the
/// whole day without the lock rules, as every manual change is.
fn optimise(
    day_input: ProblemInput,
    scope: Option<&Scope>,
    current_routes: &DayRoutes,
    previous: Option<&despacho_solver::field::plan::Plan>,
    config: &SolverConfig,
) -> Result<Optimised, ApiError> {
    let pins = DayModel::pins(current_routes);
    let problem = match scope {
        Some(scope) => scope.problem(&day_input),
        None => day_input.clone(),
    };
    let mut locked_input = pinned_windows(&problem, &pins);
    let locked = with_locks(&mut locked_input, current_routes);
    let solved = solve_field(&locked_input, previous, config).map_err(ApiError::from)?;
    let mut routes = routes_of(&solved.plan, &locked);
    keep_pins(&mut routes, &pins);
    let kept: HashSet<&str> = routes.values().flatten().map(|s| s.job.as_str()).collect();
    let mut lost: Vec<String> = locked
        .iter()
        .filter(|j| !kept.contains(j.as_str()))
        .cloned()
        .collect();
    lost.sort();
    let territory = scope.map(|scope| TerritoryResult {
        scope: scope.clone(),
        solved: routes.clone(),
        day: day_input.clone(),
        based_on: None,
    });
    if let Some(scope) = scope {
        routes = scope.merge(current_routes, &routes);
    }
    let evaluated = evaluate_day(day_input, &routes)?;
    Ok(Optimised {
        evaluated,
        routes,
        locks_not_kept: lost,
        iterations: solved.result.iterations,
        territory,
    })
}

/// The day's input with each locked visit pinned to its technician and, on a route,
/// after the locked visit before it (so the order is kept). Returns the locked jobs.
fn with_locks(input: &mut ProblemInput, routes: &DayRoutes) -> HashSet<String> {
    let mut locked = HashSet::new();
    for (technician, stops) in routes {
        if !input.technicians.iter().any(|t| &t.id == technician) {
            continue; // not working that day any more: nothing to keep
        }
        let mut previous: Option<String> = None;
        for stop in stops.iter().filter(|s| s.locked) {
            let Some(job) = input.jobs.iter_mut().find(|j| j.id == stop.job) else {
                continue;
            };
            job.pinned_technician = Some(technician.clone());
            if job.after_job.is_none() {
                job.after_job = previous.clone();
            }
            previous = Some(job.id.clone());
            locked.insert(job.id.clone());
        }
    }
    locked
}

/// Checks the optimise request's fields: `seconds` 1–`max` (default 5), `seed` within
/// `i64` (default 1). Every problem found is listed, each naming its field.
pub fn checked_request(
    date: NaiveDate,
    seconds: Option<i64>,
    seed: Option<i64>,
    max: u32,
) -> Result<RunRequest, ApiError> {
    let mut details = Vec::new();
    let seconds = seconds.unwrap_or(5);
    if !(1..=i64::from(max)).contains(&seconds) {
        details.push(ErrorDetail::new(
            "$.seconds",
            "out_of_range",
            format!("{seconds}: the time budget must be between 1 and {max} seconds"),
        ));
    }
    let seed = seed.unwrap_or(1);
    if seed < 0 {
        details.push(ErrorDetail::new(
            "$.seed",
            "out_of_range",
            format!("{seed}: the seed must be 0 or more"),
        ));
    }
    if !details.is_empty() {
        return Err(ApiError::validation(details));
    }
    Ok(RunRequest {
        date,
        seconds: seconds as u32,
        seed,
        territory: None,
    })
}
