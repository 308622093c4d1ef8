//! Exact answers for tiny field-service problems: a three-index MILP over the core
//! problem that `field::compile` produces (one vehicle type per technician shift,
//! each with its own start and end place, shift, rates; jobs allowed on some of them
//! only; service time per technician; optional jobs with a cost for leaving them out).
//!
//! With `x_ijk` = vehicle type `k` goes from `i` to `j` (`s_k`, `e_k` its start and
//! end places), `T_j` the service start, `D_k`/`R_k` departure and return, `O_k`
//! overtime, `in_jk = Σ_i x_ijk`:
//!
//! ```text
//! minimise  Σ_k [ fixed_k Σ_j x_s_k j k + dist_rate_k Σ d_ij x_ijk
//!                 + time_rate_k (R_k − D_k) + overtime_rate_k O_k + Σ_j soft_jk in_jk ]
//!           + Σ_j unassigned_j (1 − Σ_k in_jk)
//! s.t.      Σ_i x_ijk = Σ_l x_jlk  (flow, per job and k);  Σ_k in_jk ≤ 1  (= 1 if required)
//!           Σ_j x_s_k j k ≤ 1;  Σ_j in_jk ≤ max_jobs_k
//!           T_j ≥ D_k + t(s_k, j) − M (1 − x_s_k j k)
//!           T_j ≥ T_i + service_ik + t_ij − M (1 − x_ijk)                (big-M, tightest M)
//!           R_k ≥ T_i + service_ik + t(i, e_k) − M (1 − x_i e_k k)
//!           shift_start_k ≤ D_k ≤ R_k ≤ shift_end_k;  O_k ≥ R_k − regular_end_k, O_k ≥ 0
//!           window_start_j ≤ T_j ≤ window_end_j
//! ```
//!
//! `soft_jk` is the stability and preference cost of serving `j` on `k`. One `T_j` is
//! enough (a job is on one vehicle type at most); time grows along every arc with
//! positive service or travel, which rules out subtours, and arcs where both are zero
//! get position (MTZ) constraints.
//!
//! Why the objective is the route evaluator's (and the field checker's) cost: for a
//! fixed order with one window per job, the evaluator leaves at the latest time that
//! keeps the shortest duration and serves each visit as early as it can, which gives
//! the shortest duration *and* the earliest return at once; the MILP minimises
//! `time_rate·(R − D) + overtime_rate·O`, whose minimum is that same schedule. The
//! answer is re-priced by the evaluator and refused ([`MilpError::Inconsistent`]) if
//! the two differ.
//!
//! Not modelled, each refused as [`MilpError::Unsupported`] naming the feature: breaks,
//! SLA due times (the evaluator's lateness follows its shortest-duration schedule, not
//! the cheapest one), jobs with several windows (the evaluator takes the first window
//! still open on arrival, the MILP would take the best), equipment loads that can bind,
//! relations between jobs, workload balance (quadratic), vehicle types with a count
//! other than one.
//!
//! [`field_lower_bound`] is the LP relaxation, and it covers every compiled field
//! problem by relaxing what the exact model refuses — each change can only lower the
//! optimum, so the bound stays sound: a job's windows become their hull; SLA lateness
//! is `L_j ≥ T_j − due` (switched off for unplanned jobs); the break only lengthens
//! the route (`R_k − D_k ≥ travel + service + break`); balance is under-estimated by
//! tangents of `hours²`; loads and relations are dropped.

use super::backend::{is_one, Model};
use super::MilpError;
use crate::model::Problem;
use crate::rules::Rules;
use crate::search::schedule_route;
use crate::solution::{Route, Solution};
use crate::units::{Cost, Duration, Load};
use good_lp::{variable, Expression, ProblemVariables, Variable};

/// The largest field problem [`solve_exact_field`] accepts. With microlp, 8 jobs on 3
/// technicians take well under a second; the model has about `jobs² × technicians`
/// binaries, so beyond a dozen jobs use the search.
pub const MAX_EXACT_FIELD_JOBS: usize = 12;

/// A provably optimal field plan (or the best one found in time), in core terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactFieldResult {
    /// One route per vehicle type that serves at least one job.
    pub solution: Solution,
    /// Jobs left unplanned (each costs its `unassigned_cost`).
    pub unassigned: Vec<usize>,
    /// The route evaluator's cost of `solution` plus the unassigned costs: the same
    /// number the search reports for that plan, and the MILP's objective.
    pub cost: Cost,
    /// Whether the backend proved that no plan is cheaper.
    pub proven_optimal: bool,
}

/// Solves a tiny field problem exactly (see the module doc for what is modelled).
pub fn solve_exact_field(
    problem: &Problem,
    time_limit: std::time::Duration,
) -> Result<ExactFieldResult, MilpError> {
    let rules = supported(problem, Mode::Exact)?;
    let mut built = FieldModel::build(problem, rules, Mode::Exact)?;
    built.model.time_limit = Some(time_limit);
    let FieldModel {
        model,
        arcs,
        objective,
        constant,
    } = built;
    let solved = model.solve()?;
    let values = solved.values.as_ref();
    let objective_value = constant
        + objective
            .iter()
            .map(|&(v, c)| c * values.value(v))
            .sum::<f64>();

    let n = problem.jobs().len();
    let mut on_route = vec![false; n];
    let mut routes = Vec::new();
    for (k, vehicle) in arcs.iter().enumerate() {
        let Some(first) =
            (0..n).find(|&j| vehicle.from_start[j].is_some_and(|v| is_one(values, v)))
        else {
            continue;
        };
        let mut jobs = vec![first];
        on_route[first] = true;
        let mut at = first;
        while let Some(next) =
            (0..n).find(|&l| vehicle.between[at][l].is_some_and(|v| is_one(values, v)))
        {
            if on_route[next] {
                return Err(MilpError::Inconsistent {
                    reason: format!("job {next} is reached twice"),
                });
            }
            on_route[next] = true;
            jobs.push(next);
            at = next;
        }
        routes.push(Route {
            vehicle_type: k,
            jobs,
        });
    }
    // A job served in the model but on no route from a start place sits on a subtour.
    for (j, &planned) in on_route.iter().enumerate() {
        let served = arcs.iter().any(|vehicle| {
            vehicle.from_start[j].is_some_and(|v| is_one(values, v))
                || (0..n).any(|i| vehicle.between[i][j].is_some_and(|v| is_one(values, v)))
        });
        if served != planned {
            return Err(MilpError::Inconsistent {
                reason: format!("job {j} is on a subtour"),
            });
        }
    }

    // Re-price with the route evaluator: the plan's cost is the search's number.
    let mut cost = Cost::ZERO;
    for route in &routes {
        let (_, eval) =
            schedule_route(problem, route.vehicle_type, &route.jobs).expect("rules checked");
        if !eval.is_feasible() {
            return Err(MilpError::Inconsistent {
                reason: format!(
                    "the route evaluator finds vehicle type {}'s route {:?} infeasible",
                    route.vehicle_type, route.jobs
                ),
            });
        }
        cost += eval.cost(0, 0);
    }
    let unassigned: Vec<usize> = (0..n).filter(|&j| !on_route[j]).collect();
    for &j in &unassigned {
        cost += rules.jobs[j]
            .unassigned_cost
            .ok_or(MilpError::Inconsistent {
                reason: format!("required job {j} is left out"),
            })?;
    }
    // Integer data: the evaluator's cost of the MILP's routes is the MILP's objective,
    // up to the backend's floating point.
    let tolerance = 1.0 + 1e-7 * objective_value.abs();
    if (cost.get() as f64 - objective_value).abs() > tolerance {
        return Err(MilpError::Inconsistent {
            reason: format!(
                "the route evaluator prices the plan at {} but the model at {objective_value}",
                cost.get()
            ),
        });
    }
    Ok(ExactFieldResult {
        solution: Solution { routes },
        unassigned,
        cost,
        proven_optimal: solved.proven_optimal,
    })
}

/// A lower bound on the cost of any plan of a field problem: the LP relaxation of the
/// model of [`solve_exact_field`], with the features it does not model relaxed (see
/// the module doc), rounded up. Sound; weak when windows are wide.
pub fn field_lower_bound(problem: &Problem) -> Result<Cost, MilpError> {
    let rules = supported(problem, Mode::Bound)?;
    let FieldModel {
        model,
        objective,
        constant,
        ..
    } = FieldModel::build(problem, rules, Mode::Bound)?;
    let solved = model.solve()?;
    let value = constant
        + objective
            .iter()
            .map(|&(v, c)| c * solved.values.value(v))
            .sum::<f64>();
    if !value.is_finite() {
        return Err(MilpError::Inconsistent {
            reason: format!("the LP bound is {value}"),
        });
    }
    // Integer data: round up, with a tolerance for the LP's floating point.
    Ok(Cost((value - 1e-6 * value.abs().max(1.0)).ceil() as i64))
}

/// Exact MILP, or its LP relaxation with the unmodelled features relaxed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exact,
    Bound,
}

/// The problem's rules when the model covers every feature it uses (in `Bound` mode,
/// everything but the shape is relaxed instead).
fn supported(problem: &Problem, mode: Mode) -> Result<&Rules, MilpError> {
    let unsupported = |reason: String| Err(MilpError::Unsupported { reason });
    let Some(rules) = problem.rules() else {
        return unsupported(
            "a problem without field rules: use solve_exact for the core model".into(),
        );
    };
    let n = problem.jobs().len();
    if n > MAX_EXACT_FIELD_JOBS {
        return Err(MilpError::TooLarge {
            jobs: n,
            max: MAX_EXACT_FIELD_JOBS,
        });
    }
    for (k, vt) in problem.vehicle_types().iter().enumerate() {
        if vt.count != Some(1) {
            return unsupported(format!(
                "vehicle types used more than once or without limit (vehicle type {k})"
            ));
        }
    }
    if mode == Mode::Bound {
        return Ok(rules);
    }
    if rules.balance_per_hour_squared > 0 {
        return unsupported("workload balance (a quadratic cost of route hours)".into());
    }
    if rules.has_relations() {
        return unsupported("relations between jobs (same technician, after job)".into());
    }
    for (k, (vt, vr)) in problem
        .vehicle_types()
        .iter()
        .zip(&rules.vehicles)
        .enumerate()
    {
        if vr.break_spec.is_some() {
            return unsupported(format!("breaks (vehicle type {k} has one)"));
        }
        // Deliveries leave the van and pickups enter it: the load can never exceed
        // everything the vehicle may carry for its allowed jobs together.
        let most: Load = (0..n)
            .filter(|&j| problem.allows(j, k))
            .map(|j| problem.jobs()[j].demand + rules.jobs[j].pickup)
            .sum();
        if most > vt.capacity {
            return unsupported(format!(
                "equipment loads that can exceed a van's capacity (vehicle type {k})"
            ));
        }
    }
    for (j, (job, jr)) in problem.jobs().iter().zip(&rules.jobs).enumerate() {
        if jr.due.is_some() && jr.lateness_cost > 0 {
            return unsupported(format!("SLA due times (job {j} has one)"));
        }
        if job.windows.len() != 1 {
            return unsupported(format!(
                "jobs with several windows (job {j} has {})",
                job.windows.len()
            ));
        }
    }
    Ok(rules)
}

/// One vehicle type's arc variables (`None`: the arc cannot be part of a feasible route).
struct VehicleArcs {
    from_start: Vec<Option<Variable>>,
    to_end: Vec<Option<Variable>>,
    between: Vec<Vec<Option<Variable>>>,
}

struct FieldModel {
    model: Model,
    arcs: Vec<VehicleArcs>,
    /// Objective terms (variable, coefficient) and the constant (every job unassigned).
    objective: Vec<(Variable, f64)>,
    constant: f64,
}

/// Shortest travel times between all locations (a matrix need not obey the triangle
/// inequality, so bounds derived from direct travel could cut feasible routes).
fn shortest_times(problem: &Problem) -> Vec<Vec<Duration>> {
    let size = problem.num_locations();
    let mut t: Vec<Vec<Duration>> = (0..size)
        .map(|a| (0..size).map(|b| problem.duration(a, b)).collect())
        .collect();
    for k in 0..size {
        for a in 0..size {
            for b in 0..size {
                let via = t[a][k] + t[k][b];
                if via < t[a][b] {
                    t[a][b] = via;
                }
            }
        }
    }
    t
}

impl FieldModel {
    fn build(problem: &Problem, rules: &Rules, mode: Mode) -> Result<Self, MilpError> {
        let relax = mode == Mode::Bound;
        let jobs = problem.jobs();
        let types = problem.vehicle_types();
        let n = jobs.len();
        let sp = shortest_times(problem);
        let time = |a, b| problem.duration(a, b).get() as f64;
        let service = |j: usize, k: usize| problem.service_on(j, k).get() as f64;

        // One window (exact), or the hull of all of them (bound).
        let window: Vec<(f64, f64)> = jobs
            .iter()
            .map(|job| {
                let (first, last) = (job.windows[0], job.windows[job.windows.len() - 1]);
                (first.start.get() as f64, last.end.get() as f64)
            })
            .collect();
        // Per job and vehicle type, the earliest and latest service start any route
        // could have; `None` when the vehicle type cannot do the job at all.
        let span: Vec<Vec<Option<(f64, f64)>>> = (0..n)
            .map(|j| {
                types
                    .iter()
                    .enumerate()
                    .map(|(k, vt)| {
                        if !problem.allows(j, k) {
                            return None;
                        }
                        let here = jobs[j].location;
                        let earliest = window[j]
                            .0
                            .max((vt.shift.start + sp[vt.start][here]).get() as f64);
                        let latest = window[j].1.min(
                            (vt.shift.end - problem.service_on(j, k) - sp[here][vt.end]).get()
                                as f64,
                        );
                        (earliest <= latest).then_some((earliest, latest))
                    })
                    .collect()
            })
            .collect();
        // T_j's box: the union over vehicle types (a job unserved keeps its window).
        let bounds: Vec<(f64, f64)> = (0..n)
            .map(|j| {
                span[j]
                    .iter()
                    .flatten()
                    .fold(None, |acc: Option<(f64, f64)>, &(e, l)| {
                        Some(acc.map_or((e, l), |(a, b)| (a.min(e), b.max(l))))
                    })
                    .unwrap_or(window[j])
            })
            .collect();
        for (j, jr) in rules.jobs.iter().enumerate() {
            if jr.unassigned_cost.is_none() && span[j].iter().all(Option::is_none) {
                return Err(MilpError::Infeasible);
            }
        }

        let mut vars = ProblemVariables::new();
        let binary = |vars: &mut ProblemVariables| {
            vars.add(if relax {
                variable().min(0).max(1)
            } else {
                variable().binary()
            })
        };
        let mut objective = Vec::new();
        let mut constant = 0.0;
        let unassigned: Vec<f64> = rules
            .jobs
            .iter()
            .map(|jr| jr.unassigned_cost.map_or(0.0, |c| c.get() as f64))
            .collect();
        constant += unassigned.iter().sum::<f64>();
        // Cost of serving j on k beyond travel and time: soft rules, minus the
        // unassigned cost it saves.
        let serve_cost = |j: usize, k: usize| {
            let jr = &rules.jobs[j];
            let mut c = -unassigned[j];
            if !jr.previous.is_empty() && !jr.previous.contains(&k) {
                c += jr.change_cost as f64;
            }
            if !jr.preferred.is_empty() && !jr.preferred.contains(&k) {
                c += jr.not_preferred_cost as f64;
            }
            c
        };

        let mut arcs = Vec::with_capacity(types.len());
        for (k, vt) in types.iter().enumerate() {
            let rate = vt.cost_per_distance as f64;
            let dist = |a, b| problem.distance(a, b).get() as f64 * rate;
            let mut from_start = vec![None; n];
            let mut to_end = vec![None; n];
            let mut between = vec![vec![None; n]; n];
            for j in 0..n {
                if span[j][k].is_none() {
                    continue;
                }
                let here = jobs[j].location;
                // In-arcs carry the cost of serving j on k.
                let v = binary(&mut vars);
                objective.push((
                    v,
                    vt.fixed_cost as f64 + dist(vt.start, here) + serve_cost(j, k),
                ));
                from_start[j] = Some(v);
                let v = binary(&mut vars);
                objective.push((v, dist(here, vt.end)));
                to_end[j] = Some(v);
            }
            for i in 0..n {
                let Some((earliest_i, _)) = span[i][k] else {
                    continue;
                };
                for j in 0..n {
                    let Some((_, latest_j)) = span[j][k] else {
                        continue;
                    };
                    let (a, b) = (jobs[i].location, jobs[j].location);
                    if i != j && earliest_i + service(i, k) + time(a, b) <= latest_j {
                        let v = binary(&mut vars);
                        objective.push((v, dist(a, b) + serve_cost(j, k)));
                        between[i][j] = Some(v);
                    }
                }
            }
            arcs.push(VehicleArcs {
                from_start,
                to_end,
                between,
            });
        }
        let t: Vec<Variable> = bounds
            .iter()
            .map(|&(e, l)| vars.add(variable().min(e).max(l)))
            .collect();
        let mut departure = Vec::new();
        let mut back = Vec::new();
        let mut overtime = Vec::new();
        for (k, vt) in types.iter().enumerate() {
            let (start, end) = (vt.shift.start.get() as f64, vt.shift.end.get() as f64);
            let d = vars.add(variable().min(start).max(end));
            let r = vars.add(variable().min(start).max(end));
            let rate = vt.cost_per_duration as f64;
            objective.push((d, -rate));
            objective.push((r, rate));
            departure.push(d);
            back.push(r);
            let regular_end = rules.vehicles[k].regular_end.map(|e| e.get() as f64);
            overtime.push(match regular_end {
                Some(regular) if regular < end => {
                    let o = vars.add(variable().min(0).max(end - regular));
                    objective.push((o, rules.vehicles[k].overtime_cost as f64));
                    Some((o, regular))
                }
                _ => None,
            });
        }
        // Arcs along which time need not grow get positions (MTZ) against subtours.
        let zero_arc = |i: usize, j: usize, k: usize| {
            service(i, k) + time(jobs[i].location, jobs[j].location) <= 0.0
        };
        let needs_positions = arcs.iter().enumerate().any(|(k, a)| {
            (0..n).any(|i| (0..n).any(|j| a.between[i][j].is_some() && zero_arc(i, j, k)))
        });
        let positions: Vec<Variable> = if needs_positions {
            (0..n)
                .map(|_| vars.add(variable().min(1).max(n as f64)))
                .collect()
        } else {
            Vec::new()
        };

        // Bound mode only: SLA lateness of served jobs, balance under its tangents.
        let lateness: Vec<Option<(Variable, f64)>> = rules
            .jobs
            .iter()
            .zip(&bounds)
            .map(|(jr, &(_, latest))| match jr.due {
                Some(due) if relax && jr.lateness_cost > 0 && latest > due.get() as f64 => {
                    let l = vars.add(variable().min(0));
                    objective.push((l, jr.lateness_cost as f64));
                    Some((l, due.get() as f64))
                }
                _ => None,
            })
            .collect();
        let balance: Vec<Option<Variable>> = types
            .iter()
            .map(|_| {
                (relax && rules.balance_per_hour_squared > 0).then(|| {
                    let b = vars.add(variable().min(0));
                    objective.push((b, 1.0));
                    b
                })
            })
            .collect();

        let objective_expr: Expression = objective.iter().map(|&(v, c)| c * v).sum();
        let mut model = Model::new(vars, objective_expr);

        for j in 0..n {
            let mut served = Expression::from(0.0);
            for a in &arcs {
                let into: Expression = (0..n)
                    .filter_map(|i| a.between[i][j])
                    .chain(a.from_start[j])
                    .sum();
                let out: Expression = (0..n)
                    .filter_map(|l| a.between[j][l])
                    .chain(a.to_end[j])
                    .sum();
                served += into.clone();
                model.add((into - out).eq(0));
            }
            if let Some((l, due)) = lateness[j] {
                // L_j ≥ T_j − due when served; void otherwise (T_j ≤ its latest).
                let big_m = bounds[j].1 - due;
                model.add((l - t[j] - big_m * served.clone()).geq(-due - big_m));
            }
            if rules.jobs[j].unassigned_cost.is_none() {
                model.add(served.eq(1));
            } else {
                model.add(served.leq(1));
            }
        }
        for (k, (vt, a)) in types.iter().zip(&arcs).enumerate() {
            let leaves: Expression = a.from_start.iter().flatten().copied().sum();
            let returns: Expression = a.to_end.iter().flatten().copied().sum();
            model.add(leaves.clone().leq(1));
            model.add((leaves - returns).eq(0));
            if let Some(max) = rules.vehicles[k].max_jobs {
                let count: Expression = (0..n)
                    .flat_map(|j| (0..n).filter_map(move |i| a.between[i][j]))
                    .chain(a.from_start.iter().flatten().copied())
                    .sum();
                model.add(count.leq(max as f64));
            }
            let (d, r) = (departure[k], back[k]);
            // The route lasts at least its travel and service: implied by the time
            // constraints when x is integral, but it is what makes the LP relaxation
            // price time at all (big-M constraints alone let it use R = D).
            let mut busy = Expression::from(0.0);
            for j in 0..n {
                let here = jobs[j].location;
                if let Some(x) = a.from_start[j] {
                    busy += time(vt.start, here) * x;
                }
                if let Some(x) = a.to_end[j] {
                    busy += (service(j, k) + time(here, vt.end)) * x;
                }
                for l in 0..n {
                    if let Some(x) = a.between[j][l] {
                        busy += (service(j, k) + time(here, jobs[l].location)) * x;
                    }
                }
            }
            // The break only lengthens a used route (bound mode; exact has none).
            if let Some(b) = rules.vehicles[k].break_spec {
                let leaves: Expression = a.from_start.iter().flatten().copied().sum();
                busy += b.duration.get() as f64 * leaves;
            }
            model.add((r - d - busy).geq(0));
            if let Some(b) = balance[k] {
                // Tangents of bal·(hours)² every half hour up to 16 h, each lowered by
                // one unit for the evaluator's rounding down.
                let bal = rules.balance_per_hour_squared as f64;
                let uph = rules.units_per_hour as f64;
                for half_hours in 1..=32 {
                    let x0 = half_hours as f64 * uph / 2.0;
                    let slope = bal * 2.0 * x0 / (uph * uph);
                    let at_x0 = bal * x0 * x0 / (uph * uph);
                    model.add((b - slope * r + slope * d).geq(-at_x0 - 1.0));
                }
            }
            if let Some((o, regular)) = overtime[k] {
                model.add((o - r).geq(-regular));
            }
            let shift_start = vt.shift.start.get() as f64;
            let shift_end = vt.shift.end.get() as f64;
            for j in 0..n {
                let here = jobs[j].location;
                if let Some(x) = a.from_start[j] {
                    // T_j ≥ D_k + travel when x = 1; D_k ≤ shift_end otherwise.
                    let gap = time(vt.start, here);
                    let big_m = shift_end + gap - bounds[j].0;
                    if big_m > 0.0 {
                        model.add((t[j] - d - big_m * x).geq(gap - big_m));
                    }
                }
                if let Some(x) = a.to_end[j] {
                    // R_k ≥ T_j + service + travel when x = 1; R_k ≥ shift_start otherwise.
                    let gap = service(j, k) + time(here, vt.end);
                    let big_m = bounds[j].1 + gap - shift_start;
                    if big_m > 0.0 {
                        model.add((r - t[j] - big_m * x).geq(gap - big_m));
                    }
                }
            }
            for i in 0..n {
                for j in 0..n {
                    let Some(x) = a.between[i][j] else { continue };
                    let gap = service(i, k) + time(jobs[i].location, jobs[j].location);
                    let big_m = bounds[i].1 + gap - bounds[j].0;
                    if big_m > 0.0 {
                        model.add((t[j] - t[i] - big_m * x).geq(gap - big_m));
                    }
                }
            }
        }
        if needs_positions {
            for i in 0..n {
                for j in 0..n {
                    let used: Vec<Variable> = arcs
                        .iter()
                        .enumerate()
                        .filter(|&(k, a)| a.between[i][j].is_some() && zero_arc(i, j, k))
                        .filter_map(|(_, a)| a.between[i][j])
                        .collect();
                    if used.is_empty() {
                        continue;
                    }
                    let m = n as f64;
                    let x: Expression = used.into_iter().sum();
                    model.add((positions[j] - positions[i] - m * x).geq(1.0 - m));
                }
            }
        }
        Ok(Self {
            model,
            arcs,
            objective,
            constant,
        })
    }
}
