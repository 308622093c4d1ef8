//! Stored day plans: versions, their routes, publishing, and the audit log
//! (tables of migration 0008).
//!
//! A version is written once and never edited (only its state moves draft → published
//! → superseded): an optimisation or a manual change inserts version `max + 1` of the
//! day, so two dispatchers changing the same version at once cannot both win (the
//! `UNIQUE (date, version)` index refuses the second, a 409).

use crate::server::dispatch::plan_eval::{DayRoutes, Evaluated, RouteStop, Violation};
use crate::server::http::auth::Auth;
use crate::server::http::error::ApiError;
use crate::server::store::db::{is_unique_violation, on_tx, Tx};
use crate::server::store::ids::new_id;
use chrono::{DateTime, NaiveDate, Utc};
use despacho_solver::field::plan::Plan;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One version of a day's plan.
#[derive(Clone, Debug, Serialize)]
pub struct StoredPlan {
    pub id: String,
    pub date: NaiveDate,
    pub territory: Option<String>,
    pub version: i32,
    /// `draft`, `published` or `superseded`.
    pub state: String,
    /// `optimize` or `change`.
    pub origin: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub document: Plan,
    #[serde(skip)]
    pub violations: Vec<Violation>,
    #[serde(skip)]
    pub routes: DayRoutes,
}

/// One line of the audit log.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub date: NaiveDate,
    pub plan_id: Option<String>,
    pub version: Option<i32>,
    /// The API key's id, name and role.
    pub actor_key: String,
    pub actor_name: String,
    pub actor_role: String,
    /// `optimize`, `change`, `publish`.
    pub action: String,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: String,
    date: String,
    territory: Option<String>,
    version: i32,
    state: String,
    origin: String,
    document: String,
    violations: String,
    created_by: String,
    created_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct StopRow {
    technician_id: String,
    job_id: String,
    locked: bool,
    not_before: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    date: String,
    plan_id: Option<String>,
    version: Option<i32>,
    actor_key: String,
    actor_name: String,
    actor_role: String,
    action: String,
    at: DateTime<Utc>,
    details: String,
}

const PLAN_COLUMNS: &str = "id, date, territory, version, state, origin, document, violations, \
                            created_by, created_at, published_at";

fn stored(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("a stored {what} is not valid: {e}"))
}

/// The day's latest version (`published_only`: the latest published one), with routes.
pub async fn latest(
    tx: &mut Tx,
    date: NaiveDate,
    published_only: bool,
) -> Result<Option<StoredPlan>, ApiError> {
    let sql = format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE date = $1 {} ORDER BY version DESC LIMIT 1",
        if published_only {
            "AND state = 'published'"
        } else {
            ""
        }
    );
    let day = date.to_string();
    let row: Option<PlanRow> = on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(&day)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let Some(row) = row else { return Ok(None) };
    let stops: Vec<StopRow> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT technician_id, job_id, locked, not_before FROM plan_stops WHERE plan_id = $1 \
             ORDER BY technician_id, position",
        )
        .bind(&row.id)
        .fetch_all(&mut *conn)
        .await
    })?;
    let mut routes = DayRoutes::new();
    for s in stops {
        routes.entry(s.technician_id).or_default().push(RouteStop {
            job: s.job_id,
            locked: s.locked,
            not_before: s.not_before,
        });
    }
    Ok(Some(StoredPlan {
        date: row.date.parse().map_err(|e| stored("plan date", e))?,
        document: serde_json::from_str(&row.document).map_err(|e| stored("plan", e))?,
        violations: serde_json::from_str(&row.violations)
            .map_err(|e| stored("plan's violations", e))?,
        id: row.id,
        territory: row.territory,
        version: row.version,
        state: row.state,
        origin: row.origin,
        created_by: row.created_by,
        created_at: row.created_at,
        published_at: row.published_at,
        routes,
    }))
}

/// Inserts version `max + 1` of the day as a draft. With `expected`, refuses (409
/// `plan_changed`) unless the day's latest version is `expected`.
#[allow(clippy::too_many_arguments)]
pub async fn insert_version(
    tx: &mut Tx,
    date: NaiveDate,
    origin: &'static str,
    evaluated: &Evaluated,
    routes: &DayRoutes,
    auth: &Auth,
    expected: Option<i32>,
    now: DateTime<Utc>,
) -> Result<StoredPlan, ApiError> {
    let day = date.to_string();
    let current: Option<i32> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT MAX(version) FROM plans WHERE date = $1")
            .bind(&day)
            .fetch_one(&mut *conn)
            .await
    })?;
    if let Some(expected) = expected {
        if current != Some(expected) {
            return Err(ApiError::conflict(
                "plan_changed",
                format!(
                    "the plan of {date} is at version {}, not {expected}; read it again",
                    current.unwrap_or(0)
                ),
            ));
        }
    }
    let version = current.unwrap_or(0) + 1;
    let id = new_id::<8>("plan")?;
    let document = serde_json::to_string(&evaluated.plan)
        .map_err(|e| ApiError::Internal(format!("cannot write the plan: {e}")))?;
    let violations = serde_json::to_string(&evaluated.violations)
        .map_err(|e| ApiError::Internal(format!("cannot write the violations: {e}")))?;
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO plans (id, date, territory, version, state, origin, document, \
             violations, created_by, created_at, published_at) \
             VALUES ($1, $2, NULL, $3, 'draft', $4, $5, $6, $7, $8, NULL)",
        )
        .bind(&id)
        .bind(&day)
        .bind(version)
        .bind(origin)
        .bind(&document)
        .bind(&violations)
        .bind(&auth.key_name)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    });
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(
                "plan_changed",
                format!("the plan of {date} was changed at the same time; read it again"),
            ))
        }
        other => other?,
    };
    // Planned times per visit, from the evaluation.
    let times: std::collections::HashMap<&str, (&str, &str)> = evaluated
        .plan
        .routes
        .iter()
        .flat_map(|r| r.stops.iter())
        .map(|s| (s.job.as_str(), (s.start.as_str(), s.end.as_str())))
        .collect();
    for (technician, stops) in routes {
        for (position, stop) in stops.iter().enumerate() {
            let Some(&(start, end)) = times.get(stop.job.as_str()) else {
                continue; // a job the day no longer has
            };
            let parse = |t: &str| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| ApiError::Internal(format!("a planned time is not valid: {e}")))
            };
            let (start, end) = (parse(start)?, parse(end)?);
            let position = i32::try_from(position)
                .map_err(|_| ApiError::Internal("too many visits in a route".into()))?;
            on_tx!(tx, |conn| {
                sqlx::query(
                    "INSERT INTO plan_stops (plan_id, technician_id, position, job_id, \
                     planned_start, planned_end, locked, not_before) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&id)
                .bind(technician)
                .bind(position)
                .bind(&stop.job)
                .bind(start)
                .bind(end)
                .bind(stop.locked)
                .bind(stop.not_before)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
    }
    let mut routes = routes.clone();
    for stops in routes.values_mut() {
        stops.retain(|s| times.contains_key(s.job.as_str()));
    }
    routes.retain(|_, stops| !stops.is_empty());
    Ok(StoredPlan {
        id,
        date,
        territory: None,
        version,
        state: "draft".into(),
        origin: origin.into(),
        created_by: auth.key_name.clone(),
        created_at: now,
        published_at: None,
        document: evaluated.plan.clone(),
        violations: evaluated.violations.clone(),
        routes,
    })
}

/// Marks the day's latest version published and the one published before superseded.
/// Returns the published plan id and version.
pub async fn publish(
    tx: &mut Tx,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(String, i32), ApiError> {
    let day = date.to_string();
    let latest: Option<(String, i32, String, String)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT id, version, state, violations FROM plans WHERE date = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(&day)
        .fetch_optional(&mut *conn)
        .await
    })?;
    let Some((id, version, state, violations)) = latest else {
        return Err(ApiError::not_found("plan for the date", day));
    };
    if state != "draft" {
        return Err(ApiError::conflict(
            "already_published",
            format!("version {version} of {date} is already published; change it first"),
        ));
    }
    let violations: Vec<Violation> =
        serde_json::from_str(&violations).map_err(|e| stored("plan's violations", e))?;
    if !violations.is_empty() {
        return Err(infeasible(
            &format!("version {version} of {date}"),
            &violations,
        ));
    }
    mark_published(tx, date, &id, now).await?;
    Ok((id, version))
}

/// 409 `plan_infeasible` listing `violations` of `what`.
pub fn infeasible(what: &str, violations: &[Violation]) -> ApiError {
    ApiError::Conflict {
        code: "plan_infeasible",
        message: format!(
            "{what} has {} violation(s); fix them before publishing",
            violations.len()
        ),
        details: violations
            .iter()
            .map(|v| {
                crate::server::http::error::ErrorDetail::new(
                    v.path.clone(),
                    v.code.clone(),
                    v.message.clone(),
                )
            })
            .collect(),
    }
}

/// Version `id` of the day becomes the published one; the one published before it is
/// superseded. The caller has checked it may be published.
pub async fn mark_published(
    tx: &mut Tx,
    date: NaiveDate,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let day = date.to_string();
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE plans SET state = 'superseded' WHERE date = $1 AND state = 'published'")
            .bind(&day)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE plans SET state = 'published', published_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Appends a line to the audit log.
#[allow(clippy::too_many_arguments)]
pub async fn audit(
    tx: &mut Tx,
    date: NaiveDate,
    plan: Option<(&str, i32)>,
    auth: &Auth,
    action: &str,
    details: &Value,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let day = date.to_string();
    let details = details.to_string();
    let (plan_id, version) = plan.unzip();
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO plan_audit (date, plan_id, version, actor_key, actor_name, actor_role, \
             action, at, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&day)
        .bind(plan_id)
        .bind(version)
        .bind(&auth.key_id)
        .bind(&auth.key_name)
        .bind(auth.role.as_str())
        .bind(action)
        .bind(now)
        .bind(&details)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The day's audit log, oldest first; `after_version`: only lines of later versions
/// (and publishing), for "changes since publishing".
pub async fn audit_log(
    tx: &mut Tx,
    date: NaiveDate,
    after_version: Option<i32>,
) -> Result<Vec<AuditEntry>, ApiError> {
    let day = date.to_string();
    let after = after_version.unwrap_or(0);
    let rows: Vec<AuditRow> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT seq, date, plan_id, version, actor_key, actor_name, actor_role, action, at, \
             details FROM plan_audit WHERE date = $1 AND COALESCE(version, 0) > $2 ORDER BY seq",
        )
        .bind(&day)
        .bind(after)
        .fetch_all(&mut *conn)
        .await
    })?;
    rows.into_iter()
        .map(|r| {
            Ok(AuditEntry {
                seq: r.seq,
                date: r.date.parse().map_err(|e| stored("audit date", e))?,
                plan_id: r.plan_id,
                version: r.version,
                actor_key: r.actor_key,
                actor_name: r.actor_name,
                actor_role: r.actor_role,
                action: r.action,
                at: r.at,
                details: serde_json::from_str(&r.details).map_err(|e| stored("audit line", e))?,
            })
        })
        .collect()
}
