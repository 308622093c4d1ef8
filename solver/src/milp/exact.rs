//! Exact answers for tiny problems: a two-index arc formulation with big-M time
//! windows, solved to proven optimality, and its LP relaxation as a lower bound.
//!
//! For one vehicle type (start `s`, end `e`) and jobs `J`, with arcs that can be
//! part of some feasible route only (time windows and capacity prune the rest):
//!
//! ```text
//! minimise  Σ_(i,j) rate·dist_ij·x_ij + fixed·Σ_j x_sj
//! s.t.      Σ_i x_ij = 1, Σ_k x_jk = 1                       every job j (in and out)
//!           ⌈Σ q / Q⌉ ≤ Σ_j x_sj ≤ count                         vehicles used
//!           T_j ≥ shift_start + time_sj − M_sj (1 − x_sj)         time from the start
//!           T_j ≥ T_i + service_i + time_ij − M_ij (1 − x_ij)    time along arcs (big-M)
//!           T_i + service_i + time_ie ≤ shift_end + M_ie (1 − x_ie)
//!           earliest_j ≤ T_j ≤ latest_j  (one binary per window picks it if several)
//!           u_j ≥ u_i + q_j − Q (1 − x_ij),  q_j ≤ u_j ≤ Q          load (MTZ), if it binds
//! ```
//!
//! `M_ij` is the smallest value that makes the constraint void when `x_ij = 0`
//! (constraints that the bounds already imply are left out). The bounds use
//! shortest travel times, since a matrix need not obey the triangle inequality.
//! Time and load both grow along every arc with positive travel+service time or
//! positive demand, which rules out subtours; arcs where both are zero get MTZ
//! position constraints as well. Costs are the checker's: the objective counts
//! distance and fixed cost, so problems with a duration rate, or with several
//! vehicle types, are [`MilpError::Unsupported`] for now.

use super::backend::{is_one, Model};
use super::MilpError;
use crate::model::Problem;
use crate::solution::{Route, Solution};
use crate::units::{Cost, Duration};
use good_lp::{variable, Expression, ProblemVariables, Variable};

/// The largest problem [`solve_exact`] accepts. With microlp, up to 10 jobs are
/// proven optimal well under a second and 15 in a few seconds; 20 usually runs
/// into a 10 s limit (see `docs/milp.md`).
pub const MAX_EXACT_JOBS: usize = 20;
/// The largest problem [`lower_bound`] accepts (the LP has about `n²` columns;
/// 100 jobs take about 0.2 s, 200 about 3 s with microlp).
pub const MAX_LOWER_BOUND_JOBS: usize = 200;

/// A provably optimal plan (or the best one found in time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactResult {
    pub solution: Solution,
    /// The checker's cost of `solution`.
    pub cost: Cost,
    /// Whether the backend proved that no plan is cheaper.
    pub proven_optimal: bool,
}

/// Solves a tiny problem exactly. Serves every job; errors if that is impossible
/// ([`MilpError::Infeasible`]) or if no plan was found within `time_limit`.
pub fn solve_exact(
    problem: &Problem,
    time_limit: std::time::Duration,
) -> Result<ExactResult, MilpError> {
    let n = problem.jobs().len();
    if n > MAX_EXACT_JOBS {
        return Err(MilpError::TooLarge {
            jobs: n,
            max: MAX_EXACT_JOBS,
        });
    }
    supported(problem)?;
    if n == 0 {
        return Ok(ExactResult {
            solution: Solution::default(),
            cost: Cost::ZERO,
            proven_optimal: true,
        });
    }
    let arcs = ArcModel::build(problem, false)?;
    let mut model = arcs.model;
    model.time_limit = Some(time_limit);
    let solved = model.solve()?;
    let values = solved.values.as_ref();

    // Follow each route from the start depot.
    let mut routes = Vec::new();
    let mut visited = vec![false; n];
    for (j, &xs) in arcs.from_start.iter().enumerate() {
        if !is_one(values, xs) {
            continue;
        }
        let mut jobs = vec![j];
        visited[j] = true;
        let mut at = j;
        while let Some(next) =
            (0..n).find(|&k| arcs.between[at][k].is_some_and(|v| is_one(values, v)))
        {
            if visited[next] {
                return Err(MilpError::Inconsistent {
                    reason: format!("job {next} is reached twice"),
                });
            }
            visited[next] = true;
            jobs.push(next);
            at = next;
        }
        routes.push(Route {
            vehicle_type: 0,
            jobs,
        });
    }
    if let Some(j) = visited.iter().position(|&v| !v) {
        return Err(MilpError::Inconsistent {
            reason: format!("job {j} is on no route from the depot (a subtour)"),
        });
    }
    let solution = Solution { routes };
    let report = crate::check(problem, &solution, true);
    if !report.is_feasible() {
        return Err(MilpError::Inconsistent {
            reason: format!("the checker rejects the plan: {:?}", report.violations),
        });
    }
    Ok(ExactResult {
        solution,
        cost: report.cost,
        proven_optimal: solved.proven_optimal,
    })
}

/// A lower bound on the cost of any plan that serves every job: the LP relaxation
/// of the arc model, rounded up. Weak (big-M relaxations are), but cheap and sound.
pub fn lower_bound(problem: &Problem) -> Result<Cost, MilpError> {
    let n = problem.jobs().len();
    if n > MAX_LOWER_BOUND_JOBS {
        return Err(MilpError::TooLarge {
            jobs: n,
            max: MAX_LOWER_BOUND_JOBS,
        });
    }
    supported(problem)?;
    if n == 0 {
        return Ok(Cost::ZERO);
    }
    let arcs = ArcModel::build(problem, true)?;
    let objective = arcs.objective.clone();
    let solved = arcs.model.solve()?;
    let value: f64 = objective
        .iter()
        .map(|&(v, c)| c * solved.values.value(v))
        .sum();
    if !value.is_finite() {
        return Err(MilpError::Inconsistent {
            reason: format!("the LP bound is {value}"),
        });
    }
    // Integer data: round up, with a tolerance for the LP's floating point.
    Ok(Cost((value - 1e-6).ceil() as i64))
}

fn supported(problem: &Problem) -> Result<(), MilpError> {
    let types = problem.vehicle_types();
    if types.len() != 1 {
        return Err(MilpError::Unsupported {
            reason: format!(
                "the exact model handles one vehicle type; this problem has {}",
                types.len()
            ),
        });
    }
    if types[0].cost_per_duration != 0 {
        return Err(MilpError::Unsupported {
            reason: "the exact model's objective is distance and fixed cost; \
                     a cost per unit of duration is not modelled yet"
                .into(),
        });
    }
    Ok(())
}

/// Per job, the shortest travel time from the vehicle's start to it and from it to
/// the vehicle's end, over paths through other jobs (their service ignored: a lower
/// bound on any route's timing, which is all the pruning needs).
fn shortest_times(problem: &Problem) -> (Vec<Duration>, Vec<Duration>) {
    let vt = &problem.vehicle_types()[0];
    let jobs = problem.jobs();
    // Nodes: jobs 0..n, then start n, then end n + 1.
    let n = jobs.len();
    let place = |k: usize| match k {
        k if k < n => jobs[k].location,
        k if k == n => vt.start,
        _ => vt.end,
    };
    let mut t: Vec<Vec<Duration>> = (0..n + 2)
        .map(|a| {
            (0..n + 2)
                .map(|b| problem.duration(place(a), place(b)))
                .collect()
        })
        .collect();
    for k in 0..n {
        for a in 0..n + 2 {
            for b in 0..n + 2 {
                let via = t[a][k] + t[k][b];
                if via < t[a][b] {
                    t[a][b] = via;
                }
            }
        }
    }
    (
        (0..n).map(|j| t[n][j]).collect(),
        (0..n).map(|j| t[j][n + 1]).collect(),
    )
}

/// The arc model and the variables needed to read its answer.
struct ArcModel {
    model: Model,
    /// `x_sj`: the arc start → job j.
    from_start: Vec<Variable>,
    /// `x_ij` between jobs.
    between: Vec<Vec<Option<Variable>>>,
    /// Objective terms (variable, coefficient).
    objective: Vec<(Variable, f64)>,
}

impl ArcModel {
    fn build(problem: &Problem, relax: bool) -> Result<Self, MilpError> {
        let jobs = problem.jobs();
        let vt = &problem.vehicle_types()[0];
        let n = jobs.len();
        let shift_end = vt.shift.end.get() as f64;
        let cap = vt.capacity.get() as f64;
        let time = |a, b| problem.duration(a, b).get() as f64;
        let dist = |a, b| problem.distance(a, b).get() as f64 * vt.cost_per_distance as f64;
        let service = |j: usize| jobs[j].service.get() as f64;
        let demand = |j: usize| jobs[j].demand.get() as f64;

        // Earliest and latest service start per job; prune what no route can do.
        // Shortest travel times, because a matrix need not obey the triangle
        // inequality (rounded Euclidean distances break it by one unit).
        let (from_start, to_end) = shortest_times(problem);
        let mut earliest = vec![0.0; n];
        let mut latest = vec![0.0; n];
        for (j, job) in jobs.iter().enumerate() {
            let arrival = vt.shift.start + from_start[j];
            let Some(w) = job.windows.iter().find(|w| w.end >= arrival) else {
                return Err(MilpError::Infeasible);
            };
            earliest[j] = arrival.max(w.start).get() as f64;
            let last_start = vt.shift.end - job.service - to_end[j];
            let Some(w) = job.windows.iter().rev().find(|w| w.start <= last_start) else {
                return Err(MilpError::Infeasible);
            };
            latest[j] = last_start.min(w.end).get() as f64;
            if latest[j] < earliest[j] || job.demand > vt.capacity {
                return Err(MilpError::Infeasible);
            }
        }

        let mut vars = ProblemVariables::new();
        let arc = |vars: &mut ProblemVariables| {
            vars.add(if relax {
                variable().min(0).max(1)
            } else {
                variable().binary()
            })
        };
        let mut objective = Vec::new();
        let from_start: Vec<Variable> = (0..n)
            .map(|j| {
                let v = arc(&mut vars);
                objective.push((v, dist(vt.start, jobs[j].location) + vt.fixed_cost as f64));
                v
            })
            .collect();
        let to_end: Vec<Variable> = (0..n)
            .map(|i| {
                let v = arc(&mut vars);
                objective.push((v, dist(jobs[i].location, vt.end)));
                v
            })
            .collect();
        let total_demand: f64 = (0..n).map(demand).sum();
        let mut between = vec![vec![None; n]; n];
        for i in 0..n {
            for j in 0..n {
                let possible = i != j
                    && earliest[i] + service(i) + time(jobs[i].location, jobs[j].location)
                        <= latest[j]
                    && demand(i) + demand(j) <= cap;
                if possible {
                    let v = arc(&mut vars);
                    objective.push((v, dist(jobs[i].location, jobs[j].location)));
                    between[i][j] = Some(v);
                }
            }
        }
        let t: Vec<Variable> = (0..n)
            .map(|j| vars.add(variable().min(earliest[j]).max(latest[j])))
            .collect();
        let load_binds = total_demand > cap;
        let u: Vec<Variable> = if load_binds {
            (0..n)
                .map(|j| vars.add(variable().min(demand(j)).max(cap)))
                .collect()
        } else {
            Vec::new()
        };
        // Arcs along which neither time nor load must grow: those need positions.
        let zero_arc = |i: usize, j: usize| {
            service(i) + time(jobs[i].location, jobs[j].location) <= 0.0
                && (!load_binds || demand(j) <= 0.0)
        };
        let needs_positions =
            (0..n).any(|i| (0..n).any(|j| between[i][j].is_some() && zero_arc(i, j)));
        let p: Vec<Variable> = if needs_positions {
            (0..n)
                .map(|_| vars.add(variable().min(1).max(n as f64)))
                .collect()
        } else {
            Vec::new()
        };
        // Window choice for jobs with several windows that fit [earliest, latest].
        let mut window_choice = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            let usable: Vec<_> = job
                .windows
                .iter()
                .filter(|w| w.end.get() as f64 >= earliest[j] && w.start.get() as f64 <= latest[j])
                .copied()
                .collect();
            if usable.is_empty() {
                return Err(MilpError::Infeasible);
            }
            if usable.len() > 1 {
                let z: Vec<Variable> = usable
                    .iter()
                    .map(|_| {
                        vars.add(if relax {
                            variable().min(0).max(1)
                        } else {
                            variable().binary()
                        })
                    })
                    .collect();
                window_choice.push((j, usable, z));
            }
        }

        let objective_expr: Expression = objective.iter().map(|&(v, c)| c * v).sum();
        let mut model = Model::new(vars, objective_expr);

        for j in 0..n {
            let into: Expression =
                (0..n).filter_map(|i| between[i][j]).sum::<Expression>() + from_start[j];
            model.add(into.eq(1));
            let out: Expression =
                (0..n).filter_map(|k| between[j][k]).sum::<Expression>() + to_end[j];
            model.add(out.eq(1));
        }
        let vehicles: Expression = from_start.iter().copied().sum();
        if let Some(count) = vt.count {
            model.add(vehicles.clone().leq(count as f64));
        }
        if cap > 0.0 {
            model.add(vehicles.geq((total_demand / cap).ceil().max(1.0)));
        }
        for i in 0..n {
            for j in 0..n {
                let Some(x) = between[i][j] else { continue };
                let gap = service(i) + time(jobs[i].location, jobs[j].location);
                let big_m = latest[i] + gap - earliest[j];
                if big_m > 0.0 {
                    model.add((t[j] - t[i] - big_m * x).geq(gap - big_m));
                }
                if load_binds {
                    model.add((u[j] - u[i] - cap * x).geq(demand(j) - cap));
                }
                if needs_positions && zero_arc(i, j) {
                    let m = n as f64;
                    model.add((p[j] - p[i] - m * x).geq(1.0 - m));
                }
            }
        }
        for j in 0..n {
            // Leaving at the shift start, by the direct arc (the bound `earliest`
            // covers it unless a path through other jobs is quicker).
            let direct = vt.shift.start.get() as f64 + time(vt.start, jobs[j].location);
            let big_m = direct - earliest[j];
            if big_m > 0.0 {
                model.add((t[j] - big_m * from_start[j]).geq(direct - big_m));
            }
        }
        for i in 0..n {
            let back = service(i) + time(jobs[i].location, vt.end);
            let big_m = latest[i] + back - shift_end;
            if big_m > 0.0 {
                model.add((t[i] + big_m * to_end[i]).leq(shift_end - back + big_m));
            }
        }
        for (j, windows, z) in &window_choice {
            let one: Expression = z.iter().copied().sum();
            model.add(one.eq(1));
            let open: Expression = windows
                .iter()
                .zip(z)
                .map(|(w, &v)| w.start.get() as f64 * v)
                .sum();
            let close: Expression = windows
                .iter()
                .zip(z)
                .map(|(w, &v)| w.end.get() as f64 * v)
                .sum();
            model.add((t[*j] - open).geq(0));
            model.add((t[*j] - close).leq(0));
        }
        Ok(Self {
            model,
            from_start,
            between,
            objective,
        })
    }
}
