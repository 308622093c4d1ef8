//! Recreate: greedy insertion with blinks (SISR). Jobs are inserted one by one, in a
//! randomly chosen order (random, by demand, by distance from the depot, by window),
//! each at its cheapest position under the penalised cost; every position is skipped
//! with a small probability ("blink") so the search does not always rebuild the same plan.

use super::penalties::Penalties;
use super::route::RouteState;
use super::route_eval::{cost_lower_bound, evaluate};
use super::state::{stop_for, SearchState};
use crate::model::Problem;
use crate::units::{Cost, Duration, Load};

/// Above this many jobs, a job is only tried in routes that hold one of its neighbours.
const FULL_SCAN_LIMIT: usize = 300;

#[derive(Clone, Debug)]
pub struct RecreateParams {
    pub blink_rate: f64,
    /// Try every route for every job, however large the problem.
    pub every_route: bool,
}

impl Default for RecreateParams {
    fn default() -> Self {
        Self {
            blink_rate: 0.01,
            every_route: false,
        }
    }
}

#[derive(Clone, Copy)]
struct Insertion {
    route: usize,
    after: usize,
    window: usize,
    delta: Cost,
}

/// Inserts every job of `jobs` into `state` (opening routes as needed). Under field
/// rules, only routes whose technician may do the job are tried, and an optional job
/// stays unplanned when no insertion costs less than leaving it out.
pub fn recreate(
    problem: &Problem,
    state: &mut SearchState,
    mut jobs: Vec<usize>,
    neighbours: &[Vec<usize>],
    pen: &Penalties,
    params: &RecreateParams,
    step: u64,
    rng: &mut fastrand::Rng,
) {
    sort_for_insertion(problem, &mut jobs, rng);
    let full_scan = params.every_route || problem.jobs().len() <= FULL_SCAN_LIMIT;
    let mut candidates: Vec<usize> = Vec::new();
    for job in jobs {
        candidates.clear();
        if full_scan {
            candidates.extend(0..state.routes.len());
        } else {
            candidates.extend(
                neighbours[job]
                    .iter()
                    .map(|&v| state.route_of[v])
                    .filter(|&r| r != super::state::UNASSIGNED),
            );
            candidates.extend((0..state.routes.len()).filter(|&r| state.routes[r].is_empty()));
            candidates.sort_unstable();
            candidates.dedup();
            if candidates.is_empty() {
                candidates.extend(0..state.routes.len());
            }
        }
        let rules = problem.rules();
        if let Some(rules) = rules {
            candidates.retain(|&r| problem.allows(job, state.routes[r].vehicle_type));
            // "Same technician as": only the group of the partners already planned.
            for &p in &rules.jobs[job].same_group_as {
                let rp = state.route_of[p];
                if rp != super::state::UNASSIGNED {
                    let g = rules.group(state.routes[rp].vehicle_type);
                    candidates.retain(|&r| rules.group(state.routes[r].vehicle_type) == g);
                }
            }
        }
        let mut best: Option<Insertion> = None;
        for &r in &candidates {
            best_in_route(
                problem,
                state,
                &state.routes[r],
                r,
                job,
                pen,
                params,
                rng,
                &mut best,
            );
        }
        let unassigned_cost = rules.and_then(|r| r.jobs[job].unassigned_cost);
        let ins = match (best, unassigned_cost) {
            (Some(b), None) => b,
            (Some(b), Some(c)) if b.delta < c => b,
            (_, Some(_)) => continue,
            // Every position blinked: take the first route's first position.
            (None, None) => Insertion {
                route: 0,
                after: 0,
                window: 0,
                delta: Cost::ZERO,
            },
        };
        state.set_window(problem, job, ins.window);
        let was_empty = state.routes[ins.route].is_empty();
        state.routes[ins.route].jobs.insert(ins.after, job);
        state.refresh_route(problem, ins.route, step);
        if was_empty {
            state.normalise_routes(problem);
        }
    }
}

#[inline]
fn best_in_route(
    problem: &Problem,
    state: &SearchState,
    route: &RouteState,
    r: usize,
    job: usize,
    pen: &Penalties,
    params: &RecreateParams,
    rng: &mut fastrand::Rng,
    best: &mut Option<Insertion>,
) {
    if problem.rules().is_some() {
        return best_in_route_with_rules(problem, state, route, r, job, pen, params, rng, best);
    }
    let vt = &problem.vehicle_types()[route.vehicle_type];
    let old = state.route_cost(problem, r, pen);
    let j = &problem.jobs()[job];
    let load = route.load() + j.demand;
    let load_cost = (load - vt.capacity).positive_part().cost(pen.excess_load);
    let base = route.distance();
    for after in 0..=route.len() {
        if rng.f64() < params.blink_rate {
            continue;
        }
        let (a, b) = (route.location(after), route.location(after + 1));
        let dist = base + problem.distance(a, j.location) + problem.distance(j.location, b)
            - problem.distance(a, b);
        let bound = Cost(vt.fixed_cost) + dist.cost(vt.cost_per_distance) + load_cost - old;
        if best.is_some_and(|b| bound >= b.delta) {
            continue;
        }
        for window in 0..j.windows.len() {
            let stop = stop_for(problem, job, window);
            let seg = route
                .prefix(after)
                .then(problem, &stop)
                .then(problem, route.suffix(after + 1));
            let delta = pen.route_cost(vt, route.len() + 1, dist, load, &seg) - old;
            if best.is_none_or(|b| delta < b.delta) {
                *best = Some(Insertion {
                    route: r,
                    after,
                    window,
                    delta,
                });
            }
        }
    }
}

/// [`best_in_route`] under field rules: each position is priced by `route_eval`
/// (which also chooses the job's window and places the break).
#[inline]
fn best_in_route_with_rules(
    problem: &Problem,
    state: &SearchState,
    route: &RouteState,
    r: usize,
    job: usize,
    pen: &Penalties,
    params: &RecreateParams,
    rng: &mut fastrand::Rng,
    best: &mut Option<Insertion>,
) {
    let old = state.route_cost(problem, r, pen);
    let j = &problem.jobs()[job];
    let load = route.load() + j.demand;
    let base = route.distance();
    // Least duration with the job: the route's travel and service, the job's least
    // service, the break (waiting only adds); the travel detour is added per position.
    let base_duration = route.travel_between(0, route.end())
        + route.service_between(0, route.end())
        + problem.min_service(job);
    // An optional job only goes where it breaks nothing more: leaving it out is always
    // possible, so it must never buy its place with time warp or excess load.
    let optional = !problem.rules().is_some_and(|r| r.is_required(job));
    let (warp_before, excess_before) = route
        .eval
        .map_or((Duration::ZERO, Load::ZERO), |e| (e.time_warp, e.excess));
    // Without a break and with the shortest services, the cached segments can only
    // understate time warp: when even they show some, the real insertion has it too.
    let quick_reject =
        optional && warp_before == Duration::ZERO && route.single_windows && j.windows.len() == 1;
    let stop = stop_for(problem, job, 0);
    let mut jobs = Vec::with_capacity(route.len() + 1);
    // A job in an "after" relation is only placed where the order holds.
    let related = problem.has_relations()
        && (!problem
            .rules()
            .is_some_and(|r| r.jobs[job].after.is_empty())
            || !problem.successors(job).is_empty());
    let mut schedule = super::route_eval::RouteSchedule::default();
    for after in 0..=route.len() {
        if rng.f64() < params.blink_rate {
            continue;
        }
        if quick_reject
            && route
                .prefix(after)
                .then(problem, &stop)
                .then(problem, route.suffix(after + 1))
                .time_warp
                > Duration::ZERO
        {
            continue;
        }
        let (a, b) = (route.location(after), route.location(after + 1));
        let dist = base + problem.distance(a, j.location) + problem.distance(j.location, b)
            - problem.distance(a, b);
        let detour = problem.duration(a, j.location) + problem.duration(j.location, b)
            - problem.duration(a, b);
        let bound = cost_lower_bound(
            problem,
            route.vehicle_type,
            route.len() + 1,
            dist,
            load,
            base_duration + detour,
            pen.excess_load,
        ) - old;
        if best.is_some_and(|b| bound >= b.delta) {
            continue;
        }
        jobs.clear();
        jobs.extend_from_slice(&route.jobs[..after]);
        jobs.push(job);
        jobs.extend_from_slice(&route.jobs[after..]);
        let eval = if related {
            let e = evaluate(problem, route.vehicle_type, &jobs, Some(&mut schedule));
            if !keeps_order(problem, state, r, job, &schedule) {
                continue;
            }
            e
        } else {
            evaluate(problem, route.vehicle_type, &jobs, None)
        };
        if optional && (eval.time_warp > warp_before || eval.excess > excess_before) {
            continue;
        }
        let delta = eval.cost(pen.time_warp, pen.excess_load) - old;
        if best.is_none_or(|b| delta < b.delta) {
            *best = Some(Insertion {
                route: r,
                after,
                window: 0,
                delta,
            });
        }
    }
}

/// Whether inserting `job` into route `r` (as scheduled in `schedule`) keeps every
/// "after" relation of `job`: its predecessors are planned and end before it starts,
/// and its planned successors start after it ends (times of jobs on route `r` are taken
/// from the new schedule, the others from their routes).
fn keeps_order(
    problem: &Problem,
    state: &SearchState,
    r: usize,
    job: usize,
    schedule: &super::route_eval::RouteSchedule,
) -> bool {
    let rules = problem.rules().expect("relations come with rules");
    let in_new = |j: usize| {
        schedule
            .stops
            .iter()
            .find(|s| s.job == j)
            .map(|s| (s.start, s.end))
    };
    let times = |j: usize| {
        if state.route_of[j] == r {
            in_new(j)
        } else if state.route_of[j] == super::state::UNASSIGNED {
            None
        } else {
            state.routes[state.route_of[j]]
                .times
                .get(state.position_of[j] - 1)
                .copied()
        }
    };
    let Some((start, end)) = in_new(job) else {
        return false;
    };
    let predecessors_ok = rules.jobs[job]
        .after
        .iter()
        .all(|&x| times(x).is_some_and(|(_, x_end)| x_end <= start));
    let successors_ok = problem
        .successors(job)
        .iter()
        .all(|&s| times(s).is_none_or(|(s_start, _)| end <= s_start));
    predecessors_ok && successors_ok
}

/// SISR's insertion orders, plus two for time windows.
fn sort_for_insertion(problem: &Problem, jobs: &mut [usize], rng: &mut fastrand::Rng) {
    let js = problem.jobs();
    let depot = problem.vehicle_types()[0].start;
    let far = |j: usize| problem.distance(depot, js[j].location);
    match rng.usize(..13) {
        0..=3 => rng.shuffle(jobs),
        4..=7 => jobs.sort_by_key(|&j| std::cmp::Reverse(js[j].demand)),
        8..=9 => jobs.sort_by_key(|&j| std::cmp::Reverse(far(j))),
        10 => jobs.sort_by_key(|&j| far(j)),
        11 => jobs.sort_by_key(|&j| js[j].windows[0].start),
        _ => jobs
            .sort_by_key(|&j| js[j].windows[js[j].windows.len() - 1].end - js[j].windows[0].start),
    }
}
