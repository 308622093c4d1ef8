//! Solving a field problem end to end: compile, search, and write the plan (times from
//! the route evaluator, reasons for unplanned jobs, KPIs, cost in currency units).

use super::compile::{compile, Compiled, PreviousAssignment};
use super::input::ProblemInput;
use super::plan::{
    CostBreakdown, Kpis, Plan, PlannedBreak, PlannedRoute, PlannedStop, SolverInfo, UnassignedJob,
    PLAN_VERSION,
};
use super::reasons::unassigned_reason;
use super::validate::ValidationErrors;
use crate::search::{schedule_route, solve, SolveResult, SolverConfig};
use crate::solution::Solution;
use crate::units::{Cost, Distance, Duration};
use chrono::SecondsFormat;
use std::collections::HashMap;

/// A solved field problem: the plan, and the search's own account of it.
pub struct FieldSolution {
    pub plan: Plan,
    pub result: SolveResult,
    pub compiled: Compiled,
}

/// Where each job was in `previous` (for the stability cost of re-planning).
pub fn previous_assignments(previous: &Plan) -> HashMap<String, PreviousAssignment> {
    let mut out = HashMap::new();
    for route in &previous.routes {
        for stop in &route.stops {
            out.insert(
                stop.job.clone(),
                PreviousAssignment {
                    technician: route.technician.clone(),
                    date: route.date,
                },
            );
        }
    }
    out
}

/// Validates, compiles and solves `input`; `previous` is the published plan to stay close to.
pub fn solve_field(
    input: &ProblemInput,
    previous: Option<&Plan>,
    config: &SolverConfig,
) -> Result<FieldSolution, ValidationErrors> {
    let previous = previous.map(previous_assignments).unwrap_or_default();
    let compiled = compile(input, &previous)?;
    let result = solve(&compiled.problem, config);
    let mut plan = build_plan(input, &compiled, &result.solution);
    plan.solver = Some(SolverInfo {
        seed: config.seed,
        iterations: result.iterations,
        seconds: result.elapsed.as_secs_f64(),
    });
    Ok(FieldSolution {
        plan,
        result,
        compiled,
    })
}

/// The plan of `solution` (core indices) in users' terms.
pub fn build_plan(input: &ProblemInput, compiled: &Compiled, solution: &Solution) -> Plan {
    let problem = &compiled.problem;
    let units = compiled.cost_units_per_currency as f64;
    let time = |t: Duration| {
        compiled
            .to_local(t)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    };
    let mut routes = Vec::new();
    let mut kpis = Kpis {
        jobs_total: input.jobs.len(),
        shifts_available: compiled.vehicles.len(),
        ..Kpis::default()
    };
    let mut routes_cost = Cost::ZERO;
    let (mut travel, mut service, mut regular) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut distance = Distance::ZERO;
    let mut overtime = Duration::ZERO;
    let mut planned = vec![false; input.jobs.len()];
    let mut stability = Cost::ZERO;
    for route in solution.used_routes() {
        let (s, eval) = schedule_route(problem, route.vehicle_type, &route.jobs)
            .expect("compiled problems have rules");
        routes_cost += eval.cost(0, 0);
        let vref = compiled.vehicles[route.vehicle_type];
        let technician = &input.technicians[vref.technician];
        let shift = &technician.shifts[vref.shift];
        let vt = &problem.vehicle_types()[route.vehicle_type];
        let rules = problem.rules().expect("compiled problems have rules");
        regular += rules.vehicles[route.vehicle_type]
            .regular_end
            .unwrap_or(vt.shift.end)
            - vt.shift.start;
        for &j in &route.jobs {
            let jr = &rules.jobs[j];
            if !jr.previous.is_empty() && !jr.previous.contains(&route.vehicle_type) {
                stability += Cost(jr.change_cost);
            }
        }
        let mut stops = Vec::with_capacity(s.stops.len());
        for stop in &s.stops {
            planned[stop.job] = true;
            travel += stop.travel;
            service += stop.end - stop.start;
            let job = &input.jobs[stop.job];
            if job.sla_due.is_some() {
                kpis.sla_jobs += 1;
                if stop.sla_lateness == Duration::ZERO {
                    kpis.sla_hits += 1;
                } else {
                    kpis.sla_misses += 1;
                }
            }
            stops.push(PlannedStop {
                job: job.id.clone(),
                arrival: time(stop.arrival),
                start: time(stop.start),
                end: time(stop.end),
                waiting_minutes: minutes(stop.waiting),
                travel_minutes: minutes(stop.travel),
                travel_km: km(stop.travel_distance),
                sla_late_minutes: minutes(stop.sla_lateness),
            });
        }
        travel += s.return_travel;
        distance += s.distance;
        overtime += s.overtime;
        let break_taken = s.break_taken.map(|b| PlannedBreak {
            start: time(b.start),
            end: time(b.end),
            after_job: (b.after_stop > 0)
                .then(|| input.jobs[route.jobs[b.after_stop - 1]].id.clone()),
        });
        routes.push(PlannedRoute {
            technician: technician.id.clone(),
            date: shift.date,
            start: time(s.departure),
            end: time(s.return_arrival),
            stops,
            break_taken,
            return_travel_minutes: minutes(s.return_travel),
            return_travel_km: km(s.return_distance),
            distance_km: km(s.distance),
            duration_minutes: minutes(s.duration),
            overtime_minutes: minutes(s.overtime),
            start_load: s.start_load.get(),
            peak_load: s.peak_load.get(),
        });
    }
    routes.sort_by(|a, b| (a.date, &a.technician).cmp(&(b.date, &b.technician)));

    let rules = problem.rules().expect("compiled problems have rules");
    let mut unassigned = Vec::new();
    let mut unassigned_cost = Cost::ZERO;
    for (j, &done) in planned.iter().enumerate() {
        if done {
            continue;
        }
        unassigned_cost += rules.jobs[j].unassigned_cost.unwrap_or(Cost::ZERO);
        let reason = unassigned_reason(input, compiled, solution, j);
        unassigned.push(UnassignedJob {
            job: input.jobs[j].id.clone(),
            reason,
            message: reason.message().to_string(),
        });
    }
    kpis.jobs_assigned = planned.iter().filter(|&&p| p).count();
    kpis.jobs_unassigned = unassigned.len();
    kpis.routes_used = routes.len();
    kpis.travel_km = km(distance);
    kpis.travel_hours = round2(travel.get() as f64 / 3600.0);
    kpis.work_hours = round2(service.get() as f64 / 3600.0);
    kpis.utilisation = if regular.get() > 0 {
        round2(service.get() as f64 / regular.get() as f64)
    } else {
        0.0
    };
    kpis.overtime_minutes = minutes(overtime);
    Plan {
        version: PLAN_VERSION,
        time_zone: input.time_zone.clone(),
        routes,
        unassigned,
        kpis,
        cost: CostBreakdown {
            total: round2((routes_cost + unassigned_cost).get() as f64 / units),
            unassigned: round2(unassigned_cost.get() as f64 / units),
            routes: round2(routes_cost.get() as f64 / units),
            stability: round2(stability.get() as f64 / units),
        },
        solver: None,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn minutes(d: Duration) -> f64 {
    round2(d.get() as f64 / 60.0)
}

fn km(d: Distance) -> f64 {
    round2(d.get() as f64 / 1000.0)
}
