//! A day's routes as the dispatcher holds them (technician → ordered jobs, some locked)
//! evaluated by the solver: the field plan is compiled once, the routes become a core
//! [`Solution`], each route is timed by the solver's fixed-order route evaluation
//! ([`schedule_route`], through [`build_plan`]) and the result is checked by the
//! independent checker ([`check_plan`]). Nothing here searches: an order given is the
//! order evaluated, feasible or not.

use crate::server::http::error::ApiError;
use chrono::{DateTime, Utc};
use despacho_solver::field::check::{check_plan, PlanViolation};
use despacho_solver::field::compile::{compile, Compiled};
use despacho_solver::field::input::{ProblemInput, WindowInput};
use despacho_solver::field::plan::Plan;
use despacho_solver::field::solve::build_plan;
use despacho_solver::{schedule_route, Cost, Route, Solution};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

/// One visit of a stored route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RouteStop {
    pub job: String,
    /// Kept with this technician, in this order, when the day is optimised again.
    pub locked: bool,
    /// The dispatcher moved the visit in time: it starts no earlier than this (it waits
    /// if the technician is there sooner). Kept by every later change of the day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// A day's routes: technician id → visits in order (technicians without visits absent).
pub type DayRoutes = BTreeMap<String, Vec<RouteStop>>;

/// One problem of a plan, in the dispatcher's words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Violation {
    /// `window_missed`, `shift_overrun`, `skill_missing`, `break`, `capacity`,
    /// `too_many_jobs`, `outside_territory`, `pinned`, `relation`, or the checker's own code.
    pub code: String,
    pub technician: Option<String>,
    pub job: Option<String>,
    pub message: String,
    /// The checker's code and path into the plan document.
    pub check_code: String,
    pub path: String,
}

/// The routes of a day, evaluated.
#[derive(Clone, Debug)]
pub struct Evaluated {
    pub plan: Plan,
    pub violations: Vec<Violation>,
}

/// The whole day's evaluation of `routes`, their time pins included.
pub fn evaluate_day(input: ProblemInput, routes: &DayRoutes) -> Result<Evaluated, ApiError> {
    DayModel::with_pins(input, &DayModel::pins(routes))?.evaluate(routes)
}

/// A compiled day and the index maps to read the stored routes into core terms.
pub struct DayModel {
    pub input: ProblemInput,
    pub compiled: Compiled,
    /// Technician id → core vehicle type (the technician's shift that day).
    pub vehicle: HashMap<String, usize>,
    /// Job id → core job index.
    pub job: HashMap<String, usize>,
}

impl DayModel {
    /// Compiles the day's problem (validation, travel matrices).
    pub fn new(input: ProblemInput) -> Result<DayModel, ApiError> {
        DayModel::with_pins(input, &BTreeMap::new())
    }

    /// The visits of `routes` moved in time: job id → earliest start.
    pub fn pins(routes: &DayRoutes) -> BTreeMap<String, DateTime<Utc>> {
        routes
            .values()
            .flatten()
            .filter_map(|s| Some((s.job.clone(), s.not_before?)))
            .collect()
    }

    /// Compiles the day with each pinned job's start no earlier than its pin.
    ///
    /// The solver's route evaluation knows time windows but no "start no earlier than"
    /// (its `pinned_start` is an exact start). So, for the timing only, each pinned
    /// job's windows are cut to start at the pin: windows that end before it are
    /// dropped, and when none is left the job gets the single window `[pin, pin + 1 min]`
    /// (the visit then starts at the pin, or is late like any visit arriving after its
    /// window). A job whose own input pins an exact start keeps it. `input`, kept as given, is what the checker judges the plan against,
    /// so a pin after the job's promised window shows as `window_missed`.
    pub fn with_pins(
        input: ProblemInput,
        pins: &BTreeMap<String, DateTime<Utc>>,
    ) -> Result<DayModel, ApiError> {
        let compiled = if pins.is_empty() {
            compile(&input, &HashMap::new())
        } else {
            compile(&pinned_windows(&input, pins), &HashMap::new())
        }
        .map_err(ApiError::from)?;
        let vehicle = compiled
            .vehicles
            .iter()
            .enumerate()
            .map(|(vt, v)| (input.technicians[v.technician].id.clone(), vt))
            .collect();
        let job = input
            .jobs
            .iter()
            .enumerate()
            .map(|(k, j)| (j.id.clone(), k))
            .collect();
        Ok(DayModel {
            input,
            compiled,
            vehicle,
            job,
        })
    }

    /// The core route of a technician's visits; jobs or technicians the day no longer
    /// has (a job cancelled since, a shift removed) are left out.
    pub fn core_route(&self, technician: &str, stops: &[RouteStop]) -> Option<Route> {
        let vehicle_type = *self.vehicle.get(technician)?;
        let jobs = stops
            .iter()
            .filter_map(|s| self.job.get(&s.job).copied())
            .collect();
        Some(Route { vehicle_type, jobs })
    }

    /// The solver's objective of one route (currency units, time warp not included),
    /// and its time warp in seconds (0 when every window and the shift are kept).
    pub fn route_cost(&self, technician: &str, stops: &[RouteStop]) -> (f64, i64) {
        let Some(route) = self.core_route(technician, stops) else {
            return (0.0, 0);
        };
        if route.jobs.is_empty() {
            return (0.0, 0);
        }
        match schedule_route(&self.compiled.problem, route.vehicle_type, &route.jobs) {
            Some((schedule, eval)) => (
                self.compiled.currency(eval.cost(0, 0)),
                schedule.time_warp.get(),
            ),
            None => (0.0, 0),
        }
    }

    /// The visits of `stops` that `technician` may not do at all (the solver's
    /// compatibility: skills and levels, territory, pinned technician, van capacity),
    /// each as a violation. Such a route has no timing: the change is refused.
    pub fn incompatible(&self, technician: &str, stops: &[RouteStop]) -> Vec<Violation> {
        let Some(&vt) = self.vehicle.get(technician) else {
            return Vec::new();
        };
        let tech = &self.input.technicians[self.compiled.vehicles[vt].technician];
        stops
            .iter()
            .filter_map(|s| {
                let &k = self.job.get(&s.job)?;
                if self.compiled.problem.allows(k, vt) {
                    return None;
                }
                let job = &self.input.jobs[k];
                let missing: Vec<String> = job
                    .required_skills
                    .iter()
                    .filter(|(skill, &level)| tech.skills.get(*skill).is_none_or(|&l| l < level))
                    .map(|(skill, level)| format!("{skill} (level {level})"))
                    .collect();
                let (code, message) = if missing.is_empty() {
                    (
                        "not_allowed",
                        format!(
                            "`{technician}` may not do `{}` (territory, pinned technician or van capacity)",
                            s.job
                        ),
                    )
                } else {
                    (
                        "skill_missing",
                        format!("`{technician}` lacks {} for `{}`", missing.join(", "), s.job),
                    )
                };
                Some(Violation {
                    code: code.into(),
                    technician: Some(technician.to_owned()),
                    job: Some(s.job.clone()),
                    message,
                    check_code: "incompatible".into(),
                    path: format!("$.routes[\"{technician}\"]"),
                })
            })
            .collect()
    }

    /// What leaving `job` unplanned costs (currency units).
    pub fn unassigned_cost(&self, job: &str) -> f64 {
        let Some(&k) = self.job.get(job) else {
            return 0.0;
        };
        let cost = self
            .compiled
            .problem
            .rules()
            .and_then(|r| r.jobs[k].unassigned_cost)
            .unwrap_or(Cost::ZERO);
        self.compiled.currency(cost)
    }

    /// The whole day evaluated: plan document and violations.
    pub fn evaluate(&self, routes: &DayRoutes) -> Result<Evaluated, ApiError> {
        let solution = Solution {
            routes: routes
                .iter()
                .filter_map(|(t, stops)| self.core_route(t, stops))
                .collect(),
        };
        let plan = build_plan(&self.input, &self.compiled, &solution);
        let check = check_plan(&self.input, &plan)
            .map_err(|e| ApiError::Internal(format!("cannot check the plan: {e}")))?;
        let violations = check
            .violations
            .iter()
            .filter(|v| !matches!(v.code, "cost_mismatch" | "kpi_mismatch" | "reported_value"))
            .map(|v| describe(&plan, v))
            .collect();
        Ok(Evaluated { plan, violations })
    }
}

/// The checker's violation in dispatcher terms: which technician and job, and a code
/// a person reads (`window_missed` rather than `start_before_arrival`).
fn describe(plan: &Plan, v: &PlanViolation) -> Violation {
    let index = |key: &str| -> Option<usize> {
        let rest = v.path.split(key).nth(1)?;
        rest.split(']').next()?.parse().ok()
    };
    let route = index("routes[").and_then(|r| plan.routes.get(r));
    let job = route
        .and_then(|r| index("stops[").and_then(|s| r.stops.get(s)))
        .map(|s| s.job.clone());
    let code = match v.code {
        "window" | "start_before_arrival" | "travel_time" => "window_missed",
        "shift" => "shift_overrun",
        "missing_skill" => "skill_missing",
        "break" | "missing_break" => "break",
        "pinned_technician" | "pinned_start" => "pinned",
        "same_technician" | "after_job" => "relation",
        other => other,
    };
    Violation {
        code: code.to_owned(),
        technician: route.map(|r| r.technician.clone()),
        job,
        message: v.message.clone(),
        check_code: v.code.to_owned(),
        path: v.path.clone(),
    }
}

/// The routes of a solver plan, every visit unlocked unless in `locked`.
pub fn routes_of(plan: &Plan, locked: &std::collections::HashSet<String>) -> DayRoutes {
    plan.routes
        .iter()
        .map(|r| {
            (
                r.technician.clone(),
                r.stops
                    .iter()
                    .map(|s| RouteStop {
                        job: s.job.clone(),
                        locked: locked.contains(&s.job),
                        not_before: None,
                    })
                    .collect(),
            )
        })
        .collect()
}

/// `input` with each pinned job's windows cut to start at its pin (see
/// [`DayModel::with_pins`]): what the route evaluation times, and what a re-optimisation
/// searches with, so a visit moved in time stays at or after that time.
pub fn pinned_windows(
    input: &ProblemInput,
    pins: &BTreeMap<String, DateTime<Utc>>,
) -> ProblemInput {
    let mut timed = input.clone();
    for job in &mut timed.jobs {
        let Some(&pin) = pins.get(&job.id) else {
            continue;
        };
        if job.pinned_start.is_some() {
            continue; // an exact start pinned in the job itself wins
        }
        let offset = job.windows.first().map_or_else(
            || chrono::FixedOffset::east_opt(0).expect("UTC"),
            |w| *w.start.offset(),
        );
        let pin = pin.with_timezone(&offset);
        job.windows.retain(|w| w.end > pin);
        for w in &mut job.windows {
            w.start = w.start.max(pin);
        }
        if job.windows.is_empty() {
            job.windows.push(WindowInput {
                start: pin,
                end: pin + chrono::Duration::minutes(1),
            });
        }
    }
    timed
}

/// Gives each stop of `routes` whose job has a pin in `pins` that pin again (a
/// re-optimisation moves visits, the dispatcher's time stays with the visit).
pub fn keep_pins(routes: &mut DayRoutes, pins: &BTreeMap<String, DateTime<Utc>>) {
    for stop in routes.values_mut().flatten() {
        if let Some(&pin) = pins.get(&stop.job) {
            stop.not_before = Some(pin);
        }
    }
}
