//! A dispatcher's manual change to a day plan — move, unassign, lock, unlock, swap —
//! and its immediate answer: feasibility (the violations of the changed routes) and
//! the cost and ETA delta, from the solver's fixed-order route evaluation of the
//! changed routes (no search).

use crate::server::dispatch::plan_eval::{DayModel, DayRoutes, RouteStop, Violation};
use crate::server::http::error::{ApiError, ErrorDetail};
use chrono::{DateTime, NaiveDate, Utc};
use despacho_solver::field::plan::Plan;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use utoipa::ToSchema;

/// `{"move": {"job", "to", "position", "start"}}`: the job goes to technician `to` at
/// `position` (0 = first visit; the route's length = last). The job may be unplanned.
/// With `start` (RFC 3339, in the plan's day) the visit starts no earlier than that
/// time (it waits if the technician is there sooner), and, without `position`, goes
/// where that time falls among the route's planned starts. A move without `start`
/// drops an earlier time pin of the job.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveJob {
    pub job: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// Earliest start of the visit, RFC 3339 with an offset (`2026-03-02T14:00:00+01:00`),
    /// on the plan's date in the day's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    pub job: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapJobs {
    pub a: String,
    pub b: String,
}

/// Exactly one of `move`, `unassign`, `lock`, `unlock`, `swap`; `version`: the version
/// the change was made on (409 `plan_changed` when the day has moved on); `dry_run`:
/// answer without storing.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    #[serde(rename = "move", default, skip_serializing_if = "Option::is_none")]
    pub move_job: Option<MoveJob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unassign: Option<JobRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<JobRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock: Option<JobRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapJobs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    #[serde(default)]
    pub dry_run: bool,
}

/// One change, parsed.
#[derive(Clone, Debug)]
pub enum Change {
    Move(MoveJob),
    Unassign(String),
    Lock(String, bool),
    Swap(String, String),
}

impl ChangeRequest {
    /// The request's one change (422 naming the field otherwise).
    pub fn change(&self) -> Result<Change, ApiError> {
        let request = self;
        let mut given = Vec::new();
        if let Some(m) = &request.move_job {
            given.push(Change::Move(m.clone()));
        }
        if let Some(j) = &request.unassign {
            given.push(Change::Unassign(j.job.clone()));
        }
        if let Some(j) = &request.lock {
            given.push(Change::Lock(j.job.clone(), true));
        }
        if let Some(j) = &request.unlock {
            given.push(Change::Lock(j.job.clone(), false));
        }
        if let Some(s) = &request.swap {
            given.push(Change::Swap(s.a.clone(), s.b.clone()));
        }
        if given.len() != 1 {
            return Err(ApiError::validation(vec![ErrorDetail::new(
                "$",
                "one_change",
                format!(
                    "give exactly one of `move`, `unassign`, `lock`, `unlock`, `swap` ({} given)",
                    given.len()
                ),
            )]));
        }
        Ok(given.pop().expect("one change"))
    }

    /// The JSON path of the change's first field, for errors.
    fn base(change: &Change) -> &'static str {
        match change {
            Change::Move(_) => "$.move",
            Change::Unassign(_) => "$.unassign",
            Change::Lock(_, true) => "$.lock",
            Change::Lock(_, false) => "$.unlock",
            Change::Swap(..) => "$.swap",
        }
    }
}

/// Where a job is in `routes`: (technician, position).
fn find(routes: &DayRoutes, job: &str) -> Option<(String, usize)> {
    routes.iter().find_map(|(t, stops)| {
        stops
            .iter()
            .position(|s| s.job == job)
            .map(|p| (t.clone(), p))
    })
}

fn invalid(path: String, code: &str, message: String) -> ApiError {
    ApiError::validation(vec![ErrorDetail::new(path, code, message)])
}

/// The `start` of a move: an instant on `date` in the day's time zone (422 naming
/// `$.move.start` otherwise).
fn requested_start(
    model: &DayModel,
    date: NaiveDate,
    start: &str,
) -> Result<DateTime<Utc>, ApiError> {
    let path = "$.move.start".to_owned();
    let at = DateTime::parse_from_rfc3339(start).map_err(|e| {
        invalid(
            path.clone(),
            "invalid_time",
            format!(
                "`{start}` is not an RFC 3339 time with an offset (2026-03-02T14:00:00+01:00): {e}"
            ),
        )
    })?;
    let local = match model.input.time_zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => at.with_timezone(&tz).date_naive(),
        Err(_) => at.date_naive(),
    };
    if local != date {
        return Err(invalid(
            path,
            "other_day",
            format!(
                "`{start}` is on {local} in the day's time zone ({}); the plan is for {date}",
                model.input.time_zone
            ),
        ));
    }
    Ok(at.with_timezone(&Utc))
}

/// Applies `change` to a copy of `routes` (`before`: their evaluation, for the
/// position a move's `start` falls at); returns the new routes and the technicians
/// whose routes changed.
pub fn apply(
    model: &DayModel,
    date: NaiveDate,
    routes: &DayRoutes,
    before: &Plan,
    change: &Change,
) -> Result<(DayRoutes, BTreeSet<String>), ApiError> {
    let base = ChangeRequest::base(change);
    let known_job = |job: &str, field: &str| {
        if model.job.contains_key(job) {
            Ok(())
        } else {
            Err(invalid(
                format!("{base}.{field}"),
                "unknown_job",
                format!("`{job}` is not an open job or booking of this day"),
            ))
        }
    };
    let planned = |job: &str, field: &str| {
        find(routes, job).ok_or_else(|| {
            invalid(
                format!("{base}.{field}"),
                "job_not_planned",
                format!("`{job}` is not in any route of this plan"),
            )
        })
    };
    let mut new = routes.clone();
    let mut changed = BTreeSet::new();
    match change {
        Change::Move(m) => {
            known_job(&m.job, "job")?;
            if !model.vehicle.contains_key(&m.to) {
                return Err(invalid(
                    format!("{base}.to"),
                    "unknown_technician",
                    format!("`{}` is not a technician working this day", m.to),
                ));
            }
            let pin = m
                .start
                .as_deref()
                .map(|s| requested_start(model, date, s))
                .transpose()?;
            let mut locked = false;
            if let Some((from, p)) = find(&new, &m.job) {
                locked = new.get_mut(&from).expect("found").remove(p).locked;
                changed.insert(from);
            }
            let target = new.entry(m.to.clone()).or_default();
            let position = match m.position {
                Some(p) if p > target.len() => {
                    return Err(invalid(
                        format!("{base}.position"),
                        "out_of_range",
                        format!(
                            "{p}: the route of `{}` has {} other visit(s); use 0–{}",
                            m.to,
                            target.len(),
                            target.len()
                        ),
                    ))
                }
                Some(p) => p,
                // Before the first visit planned to start at or after the time asked.
                None => match pin {
                    Some(pin) => {
                        let starts: HashMap<&str, DateTime<Utc>> = before
                            .routes
                            .iter()
                            .flat_map(|r| r.stops.iter())
                            .filter_map(|s| {
                                let t = DateTime::parse_from_rfc3339(&s.start).ok()?;
                                Some((s.job.as_str(), t.with_timezone(&Utc)))
                            })
                            .collect();
                        target
                            .iter()
                            .position(|s| starts.get(s.job.as_str()).is_some_and(|&t| t >= pin))
                            .unwrap_or(target.len())
                    }
                    None => target.len(),
                },
            };
            target.insert(
                position,
                RouteStop {
                    job: m.job.clone(),
                    locked,
                    not_before: pin,
                },
            );
            changed.insert(m.to.clone());
        }
        Change::Unassign(job) => {
            known_job(job, "job")?;
            let (from, p) = planned(job, "job")?;
            new.get_mut(&from).expect("found").remove(p);
            changed.insert(from);
        }
        Change::Lock(job, lock) => {
            let (t, p) = planned(job, "job")?;
            new.get_mut(&t).expect("found")[p].locked = *lock;
        }
        Change::Swap(a, b) => {
            known_job(a, "a")?;
            known_job(b, "b")?;
            if a == b {
                return Err(invalid(
                    format!("{base}.b"),
                    "same_job",
                    "swap two different jobs".into(),
                ));
            }
            let (ta, pa) = planned(a, "a")?;
            let (tb, pb) = planned(b, "b")?;
            let stop_a = new[&ta][pa].clone();
            let stop_b = new[&tb][pb].clone();
            new.get_mut(&ta).expect("found")[pa] = stop_b;
            new.get_mut(&tb).expect("found")[pb] = stop_a;
            changed.insert(ta);
            changed.insert(tb);
        }
    }
    new.retain(|_, stops| !stops.is_empty());
    Ok((new, changed))
}

/// How a visit's time moves with the change.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EtaChange {
    pub job: String,
    pub technician: String,
    /// Start before the change (none: not planned before).
    pub start_before: Option<String>,
    pub start_after: String,
    /// Minutes later (negative: earlier); none when not planned before.
    pub minutes: Option<f64>,
}

/// One changed route's evaluation by the solver.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RouteDelta {
    pub technician: String,
    /// The solver's route cost (currency units) before and after.
    pub cost_before: f64,
    pub cost_after: f64,
    /// Minutes the route would have to go back in time to keep every window and the
    /// shift (0 when it is feasible), after the change.
    pub time_warp_minutes: f64,
}

/// The answer to a change.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChangeAnswer {
    /// Stored as a new draft version (false for `dry_run` and for a refused change).
    pub applied: bool,
    /// The version the answer is about (the new one when applied).
    pub version: i32,
    /// No violation in the changed routes.
    pub feasible: bool,
    /// Problems of the changed routes after the change.
    pub violations: Vec<Violation>,
    /// Change of the day's objective (currency units; positive: worse): changed routes
    /// plus jobs planned or unplanned by the change. None when the change is refused
    /// (a visit the technician may not do at all: never stored).
    pub cost_delta: Option<f64>,
    pub routes: Vec<RouteDelta>,
    pub eta_changes: Vec<EtaChange>,
}

/// Prices and times the change: `before` is the stored plan, `after` the evaluation of
/// the new routes; `model` times the routes after the change, `before_model` those
/// before (they differ when the change pins or unpins a start).
#[allow(clippy::too_many_arguments)]
pub fn answer(
    before_model: &DayModel,
    model: &DayModel,
    before_routes: &DayRoutes,
    before: &Plan,
    after_routes: &DayRoutes,
    after: &Plan,
    after_violations: &[Violation],
    changed: &BTreeSet<String>,
) -> ChangeAnswer {
    let empty = Vec::new();
    let mut cost_delta = 0.0;
    let mut routes = Vec::new();
    for t in changed {
        let (cost_before, _) = before_model.route_cost(t, before_routes.get(t).unwrap_or(&empty));
        let (cost_after, warp) = model.route_cost(t, after_routes.get(t).unwrap_or(&empty));
        cost_delta += cost_after - cost_before;
        routes.push(RouteDelta {
            technician: t.clone(),
            cost_before: round2(cost_before),
            cost_after: round2(cost_after),
            time_warp_minutes: round2(warp as f64 / 60.0),
        });
    }
    // Jobs planned or unplanned by the change.
    let planned = |r: &DayRoutes| -> BTreeSet<String> {
        r.values()
            .flat_map(|s| s.iter().map(|s| s.job.clone()))
            .filter(|j| model.job.contains_key(j))
            .collect()
    };
    let (was, is) = (planned(before_routes), planned(after_routes));
    for j in was.difference(&is) {
        cost_delta += model.unassigned_cost(j);
    }
    for j in is.difference(&was) {
        cost_delta -= model.unassigned_cost(j);
    }
    let starts: HashMap<&str, &str> = before
        .routes
        .iter()
        .flat_map(|r| r.stops.iter())
        .map(|s| (s.job.as_str(), s.start.as_str()))
        .collect();
    let mut eta_changes = Vec::new();
    for route in after
        .routes
        .iter()
        .filter(|r| changed.contains(&r.technician))
    {
        for stop in &route.stops {
            let old = starts.get(stop.job.as_str()).copied();
            if old == Some(stop.start.as_str()) {
                continue;
            }
            let minutes = old.and_then(|o| {
                let a = chrono::DateTime::parse_from_rfc3339(o).ok()?;
                let b = chrono::DateTime::parse_from_rfc3339(&stop.start).ok()?;
                Some(round2((b - a).num_seconds() as f64 / 60.0))
            });
            eta_changes.push(EtaChange {
                job: stop.job.clone(),
                technician: route.technician.clone(),
                start_before: old.map(str::to_owned),
                start_after: stop.start.clone(),
                minutes,
            });
        }
    }
    let violations: Vec<Violation> = after_violations
        .iter()
        .filter(|v| v.technician.as_ref().is_some_and(|t| changed.contains(t)))
        .cloned()
        .collect();
    ChangeAnswer {
        applied: false,
        version: 0,
        feasible: violations.is_empty(),
        violations,
        cost_delta: Some(round2(cost_delta)),
        routes,
        eta_changes,
    }
}

impl ChangeAnswer {
    /// The answer to a change the solver cannot time (a visit its technician may not
    /// do): not applied, with the reasons.
    pub fn refused(version: i32, violations: Vec<Violation>) -> ChangeAnswer {
        ChangeAnswer {
            applied: false,
            version,
            feasible: false,
            violations,
            cost_delta: None,
            routes: Vec::new(),
            eta_changes: Vec::new(),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
