//! KPIs of a day plan, for the day and per technician, read from the solver's
//! evaluation (the plan document: its routes' times, travel and overtime, and its
//! day KPIs) and the day's problem (shift lengths, windows), never re-derived by hand
//! where the solver reports the number.

use crate::server::catalog::upsells::{UpsellFigures, UpsellReportRow};
use crate::server::dispatch::plan_eval::Violation;
use chrono::{DateTime, FixedOffset};
use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::plan::{Kpis, Plan, PlannedRoute};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use utoipa::ToSchema;

/// The day's KPIs.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DayKpis {
    /// The solver's day KPIs (jobs, travel km and hours, work hours, utilisation of the
    /// technician-days used, overtime, SLA hits and misses).
    #[schema(value_type = Object)]
    pub solver: Kpis,
    /// Visits that start inside a window of their job and by their SLA due time, %.
    pub on_time_pct: f64,
    pub waiting_hours: f64,
    /// Unplanned jobs by reason code.
    pub unassigned_by_reason: BTreeMap<String, usize>,
    /// Planned visits that start after their SLA due time, or less than
    /// [`SLA_MARGIN_MINUTES`] before it, least slack first.
    pub sla_at_risk: Vec<SlaRisk>,
    pub technicians: Vec<TechnicianKpis>,
    /// Upsell offers of the day and the revenue they added, for the day and per
    /// technician ([`with_upsells`]).
    pub upsells: UpsellKpis,
}

/// How close to its SLA due time a visit may start before it counts as at risk: a
/// late traffic jam or a longer previous visit would break it.
pub const SLA_MARGIN_MINUTES: f64 = 30.0;

/// A visit whose SLA is missed or nearly missed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SlaRisk {
    pub job: String,
    pub technician: String,
    /// Planned start and the SLA due time (RFC 3339, local offset).
    pub start: String,
    pub sla_due: String,
    /// Minutes from the planned start to the due time: negative = late already.
    pub slack_minutes: f64,
}

/// One technician's day.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TechnicianKpis {
    pub technician: String,
    pub name: Option<String>,
    pub jobs: usize,
    pub travel_km: f64,
    pub travel_hours: f64,
    pub work_hours: f64,
    pub waiting_hours: f64,
    /// Hours on site ÷ regular shift hours.
    pub utilisation: f64,
    pub on_time_pct: f64,
    pub overtime_minutes: f64,
    /// Violations on this route (window missed, shift overrun…).
    pub violations: usize,
    /// Visits of this route at risk of their SLA (see [`DayKpis::sla_at_risk`]).
    pub sla_at_risk: usize,
}

fn parse(t: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(t).ok()
}

fn hours(minutes: f64) -> f64 {
    round2(minutes / 60.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        round2(100.0 * part as f64 / whole as f64)
    }
}

/// KPIs of `plan` (evaluated against `input`), `violations` the checker's.
pub fn day_kpis(input: &ProblemInput, plan: &Plan, violations: &[Violation]) -> DayKpis {
    let late: HashSet<&str> = violations
        .iter()
        .filter(|v| v.code == "window_missed")
        .filter_map(|v| v.job.as_deref())
        .collect();
    let mut technicians = Vec::new();
    let (mut visits, mut on_time, mut waiting) = (0, 0, 0.0);
    for route in &plan.routes {
        let t = technician_kpis(input, route, &late, violations);
        visits += t.jobs;
        on_time += (t.on_time_pct * t.jobs as f64 / 100.0).round() as usize;
        waiting += t.waiting_hours;
        technicians.push(t);
    }
    // Technicians working that day without a visit, for a complete picture.
    for tech in &input.technicians {
        if !plan.routes.iter().any(|r| r.technician == tech.id) {
            technicians.push(TechnicianKpis {
                technician: tech.id.clone(),
                name: tech.name.clone(),
                jobs: 0,
                travel_km: 0.0,
                travel_hours: 0.0,
                work_hours: 0.0,
                waiting_hours: 0.0,
                utilisation: 0.0,
                on_time_pct: 100.0,
                overtime_minutes: 0.0,
                violations: 0,
                sla_at_risk: 0,
            });
        }
    }
    let mut unassigned_by_reason = BTreeMap::new();
    for u in &plan.unassigned {
        let code = serde_json::to_value(u.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *unassigned_by_reason.entry(code).or_insert(0) += 1;
    }
    let risks = sla_at_risk(input, plan);
    for t in &mut technicians {
        t.sla_at_risk = risks
            .iter()
            .filter(|r| r.technician == t.technician)
            .count();
    }
    DayKpis {
        sla_at_risk: risks,
        solver: plan.kpis.clone(),
        on_time_pct: pct(on_time, visits),
        waiting_hours: round2(waiting),
        unassigned_by_reason,
        technicians,
        upsells: UpsellKpis::default(),
    }
}

fn technician_kpis(
    input: &ProblemInput,
    route: &PlannedRoute,
    late: &HashSet<&str>,
    violations: &[Violation],
) -> TechnicianKpis {
    let tech = input.technicians.iter().find(|t| t.id == route.technician);
    let shift = tech.and_then(|t| t.shifts.iter().find(|s| s.date == route.date));
    let regular_minutes = shift.map_or(0.0, |s| {
        let d = s.end - s.start;
        d.num_seconds() as f64 / 60.0
    });
    let mut work = 0.0;
    let mut travel = route.return_travel_minutes;
    let mut waiting = 0.0;
    let mut on_time = 0;
    for stop in &route.stops {
        if let (Some(a), Some(b)) = (parse(&stop.start), parse(&stop.end)) {
            work += (b - a).num_seconds() as f64 / 60.0;
        }
        travel += stop.travel_minutes;
        waiting += stop.waiting_minutes;
        if stop.sla_late_minutes == 0.0 && !late.contains(stop.job.as_str()) {
            on_time += 1;
        }
    }
    TechnicianKpis {
        technician: route.technician.clone(),
        name: tech.and_then(|t| t.name.clone()),
        jobs: route.stops.len(),
        travel_km: route.distance_km,
        travel_hours: hours(travel),
        work_hours: hours(work),
        waiting_hours: hours(waiting),
        utilisation: if regular_minutes > 0.0 {
            round2(work / regular_minutes)
        } else {
            0.0
        },
        on_time_pct: pct(on_time, route.stops.len()),
        overtime_minutes: route.overtime_minutes,
        violations: violations
            .iter()
            .filter(|v| v.technician.as_deref() == Some(route.technician.as_str()))
            .count(),
        sla_at_risk: 0, // filled in by `day_kpis`
    }
}

/// The day's upsells: offers, conversion and revenue added (cents), for the day and by
/// technician. They come from the offers the phones recorded (upsells.rs), not from the
/// solver, so they are added to the plan's KPIs apart.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct UpsellKpis {
    #[serde(flatten)]
    pub day: UpsellFigures,
    /// Technicians with offers that day.
    pub technicians: BTreeMap<String, UpsellFigures>,
}

/// `kpis` with the upsell figures of its day (`rows`: [`crate::server::catalog::upsells::figures_in`]
/// for that day).
pub fn with_upsells(mut kpis: DayKpis, rows: &[UpsellReportRow]) -> DayKpis {
    kpis.upsells = UpsellKpis {
        day: crate::server::catalog::upsells::total(rows),
        technicians: rows
            .iter()
            .map(|r| (r.technician.clone(), r.figures.clone()))
            .collect(),
    };
    kpis
}

/// The plan's visits that start after, or within [`SLA_MARGIN_MINUTES`] of, their
/// job's SLA due time (see [`SlaRisk`]).
pub fn sla_at_risk(input: &ProblemInput, plan: &Plan) -> Vec<SlaRisk> {
    let mut out = Vec::new();
    for route in &plan.routes {
        for stop in &route.stops {
            let due = input
                .jobs
                .iter()
                .find(|j| j.id == stop.job)
                .and_then(|j| j.sla_due);
            let (Some(due), Some(start)) = (due, parse(&stop.start)) else {
                continue;
            };
            let slack = (due - start).num_seconds() as f64 / 60.0;
            if slack < SLA_MARGIN_MINUTES {
                out.push(SlaRisk {
                    job: stop.job.clone(),
                    technician: route.technician.clone(),
                    start: stop.start.clone(),
                    sla_due: due.to_rfc3339(),
                    slack_minutes: round2(slack),
                });
            }
        }
    }
    out.sort_by(|a, b| {
        a.slack_minutes
            .total_cmp(&b.slack_minutes)
            .then(a.job.cmp(&b.job))
    });
    out
}
