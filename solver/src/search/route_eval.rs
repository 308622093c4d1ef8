//! Route evaluation under field-service rules, in O(route length): compatibility,
//! per-technician service times, the break placed in the best gap, equipment load
//! profile (deliveries leave the van, pickups enter it), overtime, SLA lateness,
//! stability, preferences and workload balance.
//!
//! The break trick: a break of length `d` that must start in `[a, b]`, taken in the
//! gap between stops X and Y (travel `t`), behaves exactly like a stop at X with
//! window `[a - t, b]` followed by the travel to Y: the technician may drive part of
//! the way before stopping, so the next stop is ready at `max(end_X + t, a) + d`
//! whenever `max(end_X, a) <= b`. That keeps the break inside the duration-segment
//! algebra, so every gap is priced in O(1) from prefix and suffix segments.
//!
//! The same function prices routes during the search and schedules the final plan,
//! so the plan's times are exactly what the search optimised.

use super::segment::DurationSegment;
use crate::model::Problem;
use crate::units::{Cost, Distance, Duration, Load};
use std::cell::RefCell;

/// Cost of a route that breaks a compatibility rule (never accepted).
pub const INCOMPATIBLE: Cost = Cost(i64::MAX / 64);

/// A route's cost parts under rules. Penalty weights are applied by [`Self::cost`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteEval {
    /// Fixed, distance, duration, overtime, lateness, stability, preference and balance costs.
    pub base: Cost,
    pub time_warp: Duration,
    /// Load above capacity at the fullest point, plus jobs above the daily maximum.
    pub excess: Load,
    pub distance: Distance,
    pub incompatible: bool,
}

impl RouteEval {
    #[inline]
    pub fn cost(&self, time_warp_weight: i64, excess_weight: i64) -> Cost {
        if self.incompatible {
            return INCOMPATIBLE;
        }
        self.base + self.time_warp.cost(time_warp_weight) + self.excess.cost(excess_weight)
    }
    pub fn is_feasible(&self) -> bool {
        !self.incompatible && self.time_warp == Duration::ZERO && self.excess == Load::ZERO
    }
}

/// One visit of a scheduled route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledStop {
    pub job: usize,
    pub arrival: Duration,
    pub start: Duration,
    pub end: Duration,
    pub waiting: Duration,
    /// Travel time from the previous place.
    pub travel: Duration,
    pub travel_distance: Distance,
    /// Index of the job's time window the visit uses.
    pub window: usize,
    /// How late the service starts after the job's SLA due time.
    pub sla_lateness: Duration,
    /// Equipment in the van when leaving this stop.
    pub load_after: Load,
}

/// The break as placed: after stop `after_stop` (0 = before the first job).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledBreak {
    pub after_stop: usize,
    pub start: Duration,
    pub end: Duration,
}

/// The timed plan of one route, as the search evaluates it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteSchedule {
    pub departure: Duration,
    pub return_arrival: Duration,
    pub return_travel: Duration,
    pub return_distance: Distance,
    pub stops: Vec<ScheduledStop>,
    pub break_taken: Option<ScheduledBreak>,
    pub distance: Distance,
    /// From departure to return, waiting and break included.
    pub duration: Duration,
    pub overtime: Duration,
    pub time_warp: Duration,
    pub peak_load: Load,
    pub start_load: Load,
}

#[derive(Default)]
struct Scratch {
    stops: Vec<DurationSegment>,
    windows: Vec<usize>,
    fwd: Vec<DurationSegment>,
    bwd: Vec<DurationSegment>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Evaluates vehicle type `vt` serving `jobs` in order; fills `schedule` when given.
/// The problem must have rules.
pub fn evaluate(
    problem: &Problem,
    vt: usize,
    jobs: &[usize],
    schedule: Option<&mut RouteSchedule>,
) -> RouteEval {
    debug_assert!(problem.rules().is_some(), "route_eval needs rules");
    if jobs.is_empty() {
        if let Some(s) = schedule {
            *s = RouteSchedule::default();
        }
        return RouteEval::default();
    }
    if jobs.iter().any(|&j| !problem.allows(j, vt)) {
        return RouteEval {
            incompatible: true,
            ..RouteEval::default()
        };
    }
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        evaluate_with(problem, vt, jobs, schedule, &mut scratch)
    })
}

fn evaluate_with(
    problem: &Problem,
    vt_index: usize,
    jobs: &[usize],
    schedule: Option<&mut RouteSchedule>,
    s: &mut Scratch,
) -> RouteEval {
    let rules = problem.rules().expect("checked by caller");
    let vt = &problem.vehicle_types()[vt_index];
    let vr = &rules.vehicles[vt_index];
    let all_jobs = problem.jobs();
    let n = jobs.len();
    let loc = |p: usize| {
        if p == 0 {
            vt.start
        } else if p == n + 1 {
            vt.end
        } else {
            all_jobs[jobs[p - 1]].location
        }
    };

    // Stops, each job aiming for the first window still open on its earliest arrival.
    s.stops.clear();
    s.windows.clear();
    s.stops.push(DurationSegment::stop(
        vt.start,
        Duration::ZERO,
        vt.shift.start,
        vt.shift.end,
    ));
    let mut distance = Distance::ZERO;
    let (mut t, mut at) = (vt.shift.start, vt.start);
    for &j in jobs {
        let job = &all_jobs[j];
        distance += problem.distance(at, job.location);
        t += problem.duration(at, job.location);
        let w = job
            .windows
            .iter()
            .position(|w| t <= w.end)
            .unwrap_or(job.windows.len() - 1);
        let window = job.windows[w];
        let service = problem.service_on(j, vt_index);
        t = t.max(window.start) + service;
        at = job.location;
        s.windows.push(w);
        s.stops.push(DurationSegment::stop(
            job.location,
            service,
            window.start,
            window.end,
        ));
    }
    distance += problem.distance(at, vt.end);
    s.stops.push(DurationSegment::stop(
        vt.end,
        Duration::ZERO,
        vt.shift.start,
        vt.shift.end,
    ));

    s.fwd.clear();
    s.fwd.push(s.stops[0]);
    for p in 1..n + 2 {
        let seg = s.fwd[p - 1].then(problem, &s.stops[p]);
        s.fwd.push(seg);
    }
    let overtime_of = |seg: &DurationSegment| match vr.regular_end {
        Some(end) => (seg.earliest + seg.duration - seg.time_warp - end).positive_part(),
        None => Duration::ZERO,
    };
    let duration_cost = |seg: &DurationSegment| {
        seg.duration.cost(vt.cost_per_duration) + overtime_of(seg).cost(vr.overtime_cost)
    };

    // The break goes into the gap with the least time warp, then the least cost.
    let (seg, break_gap) = match vr.break_spec {
        None => (s.fwd[n + 1], None),
        Some(b) => {
            s.bwd.clear();
            s.bwd.resize(n + 2, s.stops[n + 1]);
            for p in (0..n + 1).rev() {
                s.bwd[p] = s.stops[p].then(problem, &s.bwd[p + 1]);
            }
            let mut best: Option<(Duration, Cost, usize, DurationSegment)> = None;
            for k in 0..=n {
                let brk = break_stop(problem, loc(k), loc(k + 1), &b);
                let seg = s.fwd[k].then(problem, &brk).then(problem, &s.bwd[k + 1]);
                let key = (seg.time_warp, duration_cost(&seg));
                if best.is_none_or(|(w, c, _, _)| key < (w, c)) {
                    best = Some((key.0, key.1, k, seg));
                }
            }
            let (_, _, k, seg) = best.expect("at least one gap");
            (seg, Some(k))
        }
    };
    let overtime = overtime_of(&seg);

    // Forward pass from the earliest departure: SLA lateness and, when asked, the schedule.
    let departure = seg.earliest;
    let mut schedule = schedule;
    if let Some(out) = schedule.as_deref_mut() {
        out.stops.clear();
        out.break_taken = None;
        out.departure = departure;
    }
    let mut lateness_cost = Cost::ZERO;
    let mut ready = departure; // when the technician can leave the current place
    let mut load: Load = jobs.iter().map(|&j| all_jobs[j].demand).sum();
    let start_load = load;
    let mut peak = load;
    for k in 0..=n {
        let (from, to) = (loc(k), loc(k + 1));
        let travel = problem.duration(from, to);
        let mut arrival = ready + travel;
        if break_gap == Some(k) {
            let b = vr.break_spec.expect("gap implies a break");
            let model_start = ready.max(b.start.start - travel).min(b.start.end);
            arrival = model_start + b.duration + travel;
            if let Some(out) = schedule.as_deref_mut() {
                let start = ready.max(b.start.start).min(b.start.end);
                out.break_taken = Some(ScheduledBreak {
                    after_stop: k,
                    start,
                    end: start + b.duration,
                });
            }
        }
        if k == n {
            if let Some(out) = schedule.as_deref_mut() {
                out.return_arrival = arrival.min(vt.shift.end);
                out.return_travel = travel;
                out.return_distance = problem.distance(from, to);
            }
            break;
        }
        let j = jobs[k];
        let stop = &s.stops[k + 1];
        let start = arrival.max(stop.earliest).min(stop.latest);
        let jr = &rules.jobs[j];
        let late = jr
            .due
            .map_or(Duration::ZERO, |due| (start - due).positive_part());
        lateness_cost += late.cost(jr.lateness_cost);
        load = load - all_jobs[j].demand + jr.pickup;
        peak = peak.max(load);
        ready = start + stop.duration;
        if let Some(out) = schedule.as_deref_mut() {
            out.stops.push(ScheduledStop {
                job: j,
                arrival,
                start,
                end: ready,
                waiting: (start - arrival).positive_part(),
                travel,
                travel_distance: problem.distance(from, to),
                window: s.windows[k],
                sla_lateness: late,
                load_after: load,
            });
        }
    }

    let mut soft = Cost::ZERO;
    for &j in jobs {
        let jr = &rules.jobs[j];
        if !jr.previous.is_empty() && jr.previous.binary_search(&vt_index).is_err() {
            soft += Cost(jr.change_cost);
        }
        if !jr.preferred.is_empty() && !jr.preferred.contains(&vt_index) {
            soft += Cost(jr.not_preferred_cost);
        }
    }
    let balance = balance_cost(rules, seg.duration);
    let extra_jobs = vr.max_jobs.map_or(0, |m| n.saturating_sub(m) as i64);
    let excess = (peak - vt.capacity).positive_part() + Load(extra_jobs);

    if let Some(out) = schedule {
        out.distance = distance;
        out.duration = seg.duration;
        out.overtime = overtime;
        out.time_warp = seg.time_warp;
        out.peak_load = peak;
        out.start_load = start_load;
    }
    RouteEval {
        base: Cost(vt.fixed_cost)
            + distance.cost(vt.cost_per_distance)
            + duration_cost(&seg)
            + lateness_cost
            + soft
            + balance,
        time_warp: seg.time_warp,
        excess,
        distance,
        incompatible: false,
    }
}

/// A lower bound of [`evaluate`]'s penalised cost for a route of type `vt` with
/// `jobs` jobs, distance `dist`, delivered load `load` and at least `min_duration`
/// of travel and service (the break is added here): every term of the cost is
/// monotone in the duration, so pricing it at the least duration bounds it.
#[inline]
pub fn cost_lower_bound(
    problem: &Problem,
    vt_index: usize,
    jobs: usize,
    dist: Distance,
    load: Load,
    min_duration: Duration,
    excess_weight: i64,
) -> Cost {
    if jobs == 0 {
        return Cost::ZERO;
    }
    let rules = problem.rules().expect("route_eval needs rules");
    let vt = &problem.vehicle_types()[vt_index];
    let vr = &rules.vehicles[vt_index];
    let duration = min_duration + vr.break_spec.map_or(Duration::ZERO, |b| b.duration);
    let overtime = vr.regular_end.map_or(Duration::ZERO, |end| {
        (vt.shift.start + duration - end).positive_part()
    });
    let extra_jobs = vr.max_jobs.map_or(0, |m| jobs.saturating_sub(m) as i64);
    Cost(vt.fixed_cost)
        + dist.cost(vt.cost_per_distance)
        + duration.cost(vt.cost_per_duration)
        + overtime.cost(vr.overtime_cost)
        + balance_cost(rules, duration)
        + ((load - vt.capacity).positive_part() + Load(extra_jobs)).cost(excess_weight)
}

fn balance_cost(rules: &crate::rules::Rules, duration: Duration) -> Cost {
    if rules.balance_per_hour_squared <= 0 {
        return Cost::ZERO;
    }
    let d = duration.get() as i128;
    let uph = rules.units_per_hour as i128;
    Cost((rules.balance_per_hour_squared as i128 * d * d / (uph * uph)) as i64)
}

/// The break as a stop at `from` (see the module comment), before travelling to `to`.
#[inline]
fn break_stop(
    problem: &Problem,
    from: crate::model::Location,
    to: crate::model::Location,
    b: &crate::rules::BreakSpec,
) -> DurationSegment {
    let travel = problem.duration(from, to);
    DurationSegment::stop(from, b.duration, b.start.start - travel, b.start.end)
}
