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
//!
//! **Break** (the vehicle type's `BreakSpec` in the problem's rules, as in the field
//! model): taken in one gap — before the first visit, between two visits or after the
//! last — and it may split the drive, so the next place is reached at
//! `max(ready + travel, break_open) + duration` and the break starts at
//! `max(ready, break_open)`, which should be by the break's latest start (later is a
//! [`TimingViolation::BreakLate`], weighted like lateness). Each of the `n + 1` gaps is
//! timed with its own LP, in which the break adds the variable `β ≥ max(ready, open)`,
//! `S_next ≥ β + duration` and `S_next ≥ ready + travel + duration`; the cheapest gap
//! wins. Waiting is then the idle time of every gap (neither driving, on break nor
//! serving), so it stays linear: `S_next − ready − travel − duration`.

use super::backend::Model;
use super::MilpError;
use crate::model::Problem;
use crate::rules::BreakSpec;
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
    /// The break starts `by` after its latest start.
    BreakLate { by: Duration },
}

/// When the break is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakTiming {
    /// The break follows this many stops (0 = before the first visit).
    pub after_stop: usize,
    pub start: Duration,
    pub end: Duration,
    /// Idle time before the break (e.g. arrived early and waiting for the break to open).
    pub waiting: Duration,
    /// How long after its latest start the break starts (zero if on time).
    pub lateness: Duration,
}

/// A timed route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedRouteTiming {
    /// When the vehicle leaves its start.
    pub departure: Duration,
    pub stops: Vec<StopTiming>,
    /// The break, when the vehicle type has one and the route serves a job.
    pub break_taken: Option<BreakTiming>,
    /// When the vehicle reaches its end.
    pub return_time: Duration,
    pub overtime: Duration,
    /// Lateness of the stops (the break's own is in `break_taken`).
    pub total_lateness: Duration,
    /// Idle time of the stops and before the break.
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

    let spec = problem
        .rules()
        .and_then(|r| r.vehicles[vehicle_type].break_spec);
    // Every gap is timed exactly; the break goes where the route costs least.
    let gaps: Vec<Option<Break>> = match spec {
        Some(spec) if !jobs.is_empty() => (0..=jobs.len())
            .map(|gap| Some(Break { spec, gap }))
            .collect(),
        _ => vec![None],
    };
    let mut best: Option<FixedRouteTiming> = None;
    for brk in gaps {
        let windows = earliest_windows(problem, vehicle_type, jobs, brk);
        let route = Route {
            problem,
            vehicle_type,
            jobs,
            windows: &windows,
            brk,
            weights,
        };
        let at_shift_start = route.simulate(vt.shift.start);
        let timed = if jobs.is_empty() {
            at_shift_start
        } else {
            let optimal = route.simulate(route.optimal_departure()?);
            if optimal.penalty <= at_shift_start.penalty {
                optimal
            } else {
                at_shift_start
            }
        };
        if best.as_ref().is_none_or(|b| timed.penalty < b.penalty) {
            best = Some(timed);
        }
    }
    Ok(best.expect("at least one gap"))
}

/// The break and the gap it is taken in (0 = before the first stop, n = after the last).
#[derive(Clone, Copy, Debug)]
struct Break {
    spec: BreakSpec,
    gap: usize,
}

impl Break {
    /// From `ready` at the place before the gap, `travel` to the next one: when the
    /// break starts, when the next place is reached, and the idle time before the break.
    fn take(&self, ready: Duration, travel: Duration) -> (Duration, Duration, Duration) {
        let open = self.spec.start.start;
        let start = ready.max(open);
        let arrival = (ready + travel).max(open) + self.spec.duration;
        (start, arrival, (open - ready - travel).positive_part())
    }
}

/// Per stop, the window aimed at: simulate leaving at the shift start, as early as
/// possible (with the break in its gap), and take the first window still open.
fn earliest_windows(
    problem: &Problem,
    vehicle_type: usize,
    jobs: &[usize],
    brk: Option<Break>,
) -> Vec<usize> {
    let vt = &problem.vehicle_types()[vehicle_type];
    let (mut ready, mut at) = (vt.shift.start, vt.start);
    jobs.iter()
        .enumerate()
        .map(|(k, &j)| {
            let job = &problem.jobs()[j];
            let travel = problem.duration(at, job.location);
            let arrival = match brk.filter(|b| b.gap == k) {
                Some(b) => b.take(ready, travel).1,
                None => ready + travel,
            };
            let w = job
                .windows
                .iter()
                .position(|w| arrival <= w.end)
                .unwrap_or(job.windows.len().saturating_sub(1));
            let open = job.windows.get(w).map_or(arrival, |w| w.start);
            ready = arrival.max(open) + problem.service_on(j, vehicle_type);
            at = job.location;
            w
        })
        .collect()
}

/// One route to time, with its windows chosen and its break (if any) in one gap.
struct Route<'a> {
    problem: &'a Problem,
    vehicle_type: usize,
    jobs: &'a [usize],
    windows: &'a [usize],
    brk: Option<Break>,
    weights: TimingWeights,
}

impl Route<'_> {
    /// The departure time of the LP optimum.
    fn optimal_departure(&self) -> Result<Duration, MilpError> {
        let Self {
            problem,
            vehicle_type,
            jobs,
            windows,
            brk,
            weights,
        } = *self;
        let vt = &problem.vehicle_types()[vehicle_type];
        let n = jobs.len();
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
        // The break's start and lateness; the return time when the break is last.
        let brk_vars = brk.map(|b| {
            (
                vars.add(variable().min(b.spec.start.start.get() as f64)),
                vars.add(variable().min(0)),
            )
        });
        let back = brk.filter(|b| b.gap == n).map(|_| vars.add(variable()));

        // Per gap k (before stop k; k = n is the way back): when the vehicle is ready to
        // leave, the travel, and the break's duration if it is taken there.
        let mut constraints = Vec::new();
        let mut idle: Vec<Expression> = Vec::with_capacity(n + 1);
        let mut at = vt.start;
        let mut ready: Expression = d.into();
        let mut return_time: Expression = Expression::from(0.0);
        for k in 0..=n {
            let to = if k < n {
                problem.jobs()[jobs[k]].location
            } else {
                vt.end
            };
            let travel = problem.duration(at, to).get() as f64;
            let in_gap = brk.filter(|b| b.gap == k);
            let pause = in_gap.map_or(0.0, |b| b.spec.duration.get() as f64);
            let next: Expression = if k < n {
                starts[k].into()
            } else if let Some(r) = back {
                r.into()
            } else {
                ready.clone() + travel
            };
            constraints.push((next.clone() - ready.clone()).geq(travel + pause));
            if let (Some(_), Some((beta, _))) = (in_gap, brk_vars) {
                constraints.push((beta - ready.clone()).geq(0));
                constraints.push((next.clone() - beta).geq(pause));
            }
            if k < n || back.is_some() {
                idle.push(next.clone() - ready.clone() - (travel + pause));
            }
            if k < n {
                let j = jobs[k];
                ready = starts[k] + problem.service_on(j, vehicle_type).get() as f64;
                at = to;
            } else {
                return_time = next;
            }
        }

        let waiting: Expression = idle.into_iter().sum();
        let lateness: Expression = late.iter().copied().sum::<Expression>()
            + brk_vars.map_or(Expression::from(0.0), |(_, bl)| bl.into());
        let objective = weights.lateness as f64 * lateness
            + weights.waiting as f64 * waiting
            + weights.overtime as f64 * over;
        let mut model = Model::new(vars, objective);
        for c in constraints {
            model.add(c);
        }
        for (k, (&j, &w)) in jobs.iter().zip(windows).enumerate() {
            if let Some(window) = problem.jobs()[j].windows.get(w) {
                model.add((late[k] - starts[k]).geq(-(window.end.get() as f64)));
            }
        }
        if let (Some(b), Some((beta, bl))) = (brk, brk_vars) {
            model.add((bl - beta).geq(-(b.spec.start.end.get() as f64)));
        }
        model.add((over - return_time).geq(-(vt.shift.end.get() as f64)));
        let solved = model.solve()?;
        let value = solved.values.value(d);
        if !value.is_finite() {
            return Err(MilpError::Inconsistent {
                reason: format!("the LP's departure time is {value}"),
            });
        }
        Ok(Duration((value.round() as i64).max(vt.shift.start.get())))
    }

    /// Leaves at `departure` and starts each service (and the break) as early as
    /// its window allows.
    fn simulate(&self, departure: Duration) -> FixedRouteTiming {
        let Self {
            problem,
            vehicle_type,
            jobs,
            windows,
            brk,
            weights,
        } = *self;
        let vt = &problem.vehicle_types()[vehicle_type];
        let n = jobs.len();
        let mut ready = departure;
        let mut at = vt.start;
        let mut stops = Vec::with_capacity(n);
        let mut violations = Vec::new();
        let mut break_taken = None;
        let mut return_time = departure;
        for k in 0..=n {
            let to = if k < n {
                problem.jobs()[jobs[k]].location
            } else {
                vt.end
            };
            let travel = problem.duration(at, to);
            let mut arrival = ready + travel;
            if let Some(b) = brk.filter(|b| b.gap == k) {
                let (start, reached, waiting) = b.take(ready, travel);
                let lateness = (start - b.spec.start.end).positive_part();
                if lateness > Duration::ZERO {
                    violations.push(TimingViolation::BreakLate { by: lateness });
                }
                break_taken = Some(BreakTiming {
                    after_stop: k,
                    start,
                    end: start + b.spec.duration,
                    waiting,
                    lateness,
                });
                arrival = reached;
            }
            if k == n {
                return_time = arrival;
                break;
            }
            let (j, w) = (jobs[k], windows[k]);
            let job = &problem.jobs()[j];
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
            ready = start + problem.service_on(j, vehicle_type);
            at = to;
        }
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
        let total_waiting: Duration = stops.iter().map(|s| s.waiting).sum::<Duration>()
            + break_taken.map_or(Duration::ZERO, |b| b.waiting);
        let break_late = break_taken.map_or(Duration::ZERO, |b| b.lateness);
        let penalty = (total_lateness + break_late).cost(weights.lateness)
            + total_waiting.cost(weights.waiting)
            + overtime.cost(weights.overtime);
        FixedRouteTiming {
            departure,
            stops,
            break_taken,
            return_time,
            overtime,
            total_lateness,
            total_waiting,
            penalty,
            violations,
        }
    }
}
