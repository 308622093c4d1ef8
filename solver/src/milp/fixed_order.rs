//! Timing of a route whose order a dispatcher fixed: the start times that
//! minimise weighted lateness, waiting and overtime, with soft windows.
//!
//! With one window per job this is an LP over the departure `d` and the service
//! starts `S_k` of the stops `1..n`:
//!
//! ```text
//! minimise  w_late·Σ L_k + w_wait·Σ (S_k − A_k) + w_over·O
//! s.t.      d ≥ shift_start
//!           A_1 = d + time(start, 1),  A_k = S_(k−1) + service_(k−1) + time(k−1, k)
//!           S_k ≥ A_k,  S_k ≥ open_k
//!           L_k ≥ S_k − close_k,  L_k ≥ 0                  (lateness: soft window end)
//!           O ≥ S_n + service_n + time(n, end) − shift_end,  O ≥ 0   (overtime)
//! ```
//!
//! Its constraint matrix is a network matrix, so with integer data the optimum is
//! integral. The reported schedule is re-derived from the optimal departure by
//! plain simulation (start each service as early as its window allows), in
//! integers, and compared with leaving at the shift start; the better one is kept.
//!
//! **Several windows per job:** the window is chosen first, by the
//! earliest-start rule — simulate leaving at the shift start and take, at each
//! stop, the first window that has not closed on arrival (the last window if all
//! have closed, so the stop is late for it) — and then the LP above times the
//! route within those windows. This is the checker's rule and is optimal when
//! every window can be met; when some cannot, a later window might cost less,
//! which would need one binary per window (a MILP) and is not done yet.

use super::backend::Model;
use super::MilpError;
use crate::model::Problem;
use crate::units::{Cost, Duration, Load};
use good_lp::{variable, Expression, ProblemVariables, Variable};

/// Cost per unit of time of each kind of violation or waste.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimingWeights {
    /// Per unit of time a service starts after its window closed.
    pub lateness: i64,
    /// Per unit of time waited for a window to open.
    pub waiting: i64,
    /// Per unit of time the vehicle is back after its shift ends.
    pub overtime: i64,
}

impl Default for TimingWeights {
    /// Lateness at a customer weighs most, then overtime, then waiting.
    fn default() -> Self {
        Self {
            lateness: 10,
            waiting: 1,
            overtime: 5,
        }
    }
}

/// When one stop is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopTiming {
    pub job: usize,
    /// Index into the job's windows of the window aimed at.
    pub window: usize,
    pub arrival: Duration,
    /// When service starts.
    pub start: Duration,
    /// `start − arrival`.
    pub waiting: Duration,
    /// How long after the window's end service starts (zero if on time).
    pub lateness: Duration,
}

/// Something the timed route breaks; reported, never an error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimingViolation {
    /// Service at `job` starts `by` after its window closed.
    Late { job: usize, by: Duration },
    /// The vehicle is back `by` after its shift ends.
    Overtime { by: Duration },
    /// The route's jobs need more than the vehicle carries.
    OverCapacity { load: Load, capacity: Load },
}

/// A timed route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedRouteTiming {
    /// When the vehicle leaves its start.
    pub departure: Duration,
    pub stops: Vec<StopTiming>,
    /// When the vehicle reaches its end.
    pub return_time: Duration,
    pub overtime: Duration,
    pub total_lateness: Duration,
    pub total_waiting: Duration,
    /// The weighted sum that was minimised.
    pub penalty: Cost,
    pub violations: Vec<TimingViolation>,
}

impl FixedRouteTiming {
    /// Whether the route keeps every window, the shift and the capacity.
    pub fn is_feasible(&self) -> bool {
        self.violations.is_empty()
    }
}

/// [`time_fixed_route_weighted`] with the default [`TimingWeights`].
pub fn time_fixed_route(
    problem: &Problem,
    vehicle_type: usize,
    jobs: &[usize],
) -> Result<FixedRouteTiming, MilpError> {
    time_fixed_route_weighted(problem, vehicle_type, jobs, TimingWeights::default())
}

/// Times the route `jobs` (in this order) of a vehicle of `vehicle_type`.
/// Errors only on malformed input (unknown indices, a job twice, negative weights).
pub fn time_fixed_route_weighted(
    problem: &Problem,
    vehicle_type: usize,
    jobs: &[usize],
    weights: TimingWeights,
) -> Result<FixedRouteTiming, MilpError> {
    let Some(vt) = problem.vehicle_types().get(vehicle_type) else {
        return Err(MilpError::InvalidInput {
            reason: format!(
                "vehicle type {vehicle_type} does not exist (there are {})",
                problem.vehicle_types().len()
            ),
        });
    };
    let n_jobs = problem.jobs().len();
    let mut seen = vec![false; n_jobs];
    for &j in jobs {
        if j >= n_jobs {
            return Err(MilpError::InvalidInput {
                reason: format!("job {j} does not exist (there are {n_jobs})"),
            });
        }
        if std::mem::replace(&mut seen[j], true) {
            return Err(MilpError::InvalidInput {
                reason: format!("job {j} appears twice in the route"),
            });
        }
    }
    if weights.lateness < 0 || weights.waiting < 0 || weights.overtime < 0 {
        return Err(MilpError::InvalidInput {
            reason: format!("timing weights must not be negative: {weights:?}"),
        });
    }

    let windows = problem.earliest_start_windows(vehicle_type, jobs);
    let at_shift_start = simulate(
        problem,
        vehicle_type,
        jobs,
        &windows,
        vt.shift.start,
        weights,
    );
    if jobs.is_empty() {
        return Ok(at_shift_start);
    }
    let departure = optimal_departure(problem, vehicle_type, jobs, &windows, weights)?;
    let best = simulate(problem, vehicle_type, jobs, &windows, departure, weights);
    Ok(if best.penalty <= at_shift_start.penalty {
        best
    } else {
        at_shift_start
    })
}

/// The departure time of the LP optimum.
fn optimal_departure(
    problem: &Problem,
    vehicle_type: usize,
    jobs: &[usize],
    windows: &[usize],
    weights: TimingWeights,
) -> Result<Duration, MilpError> {
    let vt = &problem.vehicle_types()[vehicle_type];
    let mut vars = ProblemVariables::new();
    let d = vars.add(variable().min(vt.shift.start.get() as f64));
    let starts: Vec<Variable> = jobs
        .iter()
        .zip(windows)
        .map(|(&j, &w)| {
            let open = problem.jobs()[j]
                .windows
                .get(w)
                .map_or(f64::NEG_INFINITY, |w| w.start.get() as f64);
            vars.add(variable().min(open))
        })
        .collect();
    let late: Vec<Variable> = jobs.iter().map(|_| vars.add(variable().min(0))).collect();
    let over = vars.add(variable().min(0));

    let mut arrivals: Vec<Expression> = Vec::with_capacity(jobs.len());
    let mut at = vt.start;
    for (k, &j) in jobs.iter().enumerate() {
        let job = &problem.jobs()[j];
        let travel = problem.duration(at, job.location).get() as f64;
        arrivals.push(if k == 0 {
            d + travel
        } else {
            starts[k - 1] + (problem.jobs()[jobs[k - 1]].service.get() as f64 + travel)
        });
        at = job.location;
    }
    let Some(&last) = jobs.last() else {
        return Ok(vt.shift.start);
    };
    let back = problem.jobs()[last].service.get() as f64
        + problem
            .duration(problem.jobs()[last].location, vt.end)
            .get() as f64;

    let waiting: Expression = starts
        .iter()
        .zip(&arrivals)
        .map(|(&s, a)| s - a.clone())
        .sum();
    let lateness: Expression = late.iter().copied().sum();
    let objective = weights.lateness as f64 * lateness
        + weights.waiting as f64 * waiting
        + weights.overtime as f64 * over;
    let mut model = Model::new(vars, objective);
    for (k, (&j, &w)) in jobs.iter().zip(windows).enumerate() {
        model.add((starts[k] - arrivals[k].clone()).geq(0));
        if let Some(window) = problem.jobs()[j].windows.get(w) {
            model.add((late[k] - starts[k]).geq(-(window.end.get() as f64)));
        }
    }
    let n = jobs.len();
    model.add((over - starts[n - 1]).geq(back - vt.shift.end.get() as f64));
    let solved = model.solve()?;
    let value = solved.values.value(d);
    if !value.is_finite() {
        return Err(MilpError::Inconsistent {
            reason: format!("the LP's departure time is {value}"),
        });
    }
    Ok(Duration((value.round() as i64).max(vt.shift.start.get())))
}

/// Leaves at `departure` and starts each service as early as its window allows.
fn simulate(
    problem: &Problem,
    vehicle_type: usize,
    jobs: &[usize],
    windows: &[usize],
    departure: Duration,
    weights: TimingWeights,
) -> FixedRouteTiming {
    let vt = &problem.vehicle_types()[vehicle_type];
    let mut t = departure;
    let mut at = vt.start;
    let mut stops = Vec::with_capacity(jobs.len());
    let mut violations = Vec::new();
    for (&j, &w) in jobs.iter().zip(windows) {
        let job = &problem.jobs()[j];
        let arrival = t + problem.duration(at, job.location);
        let (start, lateness) = match job.windows.get(w) {
            Some(window) => {
                let start = arrival.max(window.start);
                (start, (start - window.end).positive_part())
            }
            None => (arrival, Duration::ZERO),
        };
        if lateness > Duration::ZERO {
            violations.push(TimingViolation::Late {
                job: j,
                by: lateness,
            });
        }
        stops.push(StopTiming {
            job: j,
            window: w,
            arrival,
            start,
            waiting: start - arrival,
            lateness,
        });
        t = start + job.service;
        at = job.location;
    }
    let return_time = t + problem.duration(at, vt.end);
    let overtime = (return_time - vt.shift.end).positive_part();
    if overtime > Duration::ZERO {
        violations.push(TimingViolation::Overtime { by: overtime });
    }
    let load: Load = jobs.iter().map(|&j| problem.jobs()[j].demand).sum();
    if load > vt.capacity {
        violations.push(TimingViolation::OverCapacity {
            load,
            capacity: vt.capacity,
        });
    }
    let total_lateness: Duration = stops.iter().map(|s| s.lateness).sum();
    let total_waiting: Duration = stops.iter().map(|s| s.waiting).sum();
    let penalty = total_lateness.cost(weights.lateness)
        + total_waiting.cost(weights.waiting)
        + overtime.cost(weights.overtime);
    FixedRouteTiming {
        departure,
        stops,
        return_time,
        overtime,
        total_lateness,
        total_waiting,
        penalty,
        violations,
    }
}
