//! The search: a greedy construction, then iterated ruin-and-recreate (SISR string
//! removal, greedy insertion with blinks) followed by granular local search, with
//! simulated-annealing acceptance over a penalised objective whose weights adapt.
//!
//! Deterministic for a seed and an iteration budget; a wall-clock budget is optional.

mod local_search;
mod neighbours;
mod penalties;
mod pieces;
mod recreate;
mod route;
mod route_eval;
mod route_pool;
mod ruin;
mod segment;
mod state;
#[cfg(test)]
mod tests;

pub use local_search::OperatorStats;
pub use route_eval::{RouteEval, RouteSchedule, ScheduledBreak, ScheduledStop};
pub use route_pool::RecombineHook;

/// The timed schedule of `jobs` served in this order by `vehicle_type`, exactly as the
/// search prices it (break placement, window choice, SLA lateness), with its cost parts.
/// `None` when the problem has no field rules.
pub fn schedule_route(
    problem: &Problem,
    vehicle_type: usize,
    jobs: &[usize],
) -> Option<(RouteSchedule, RouteEval)> {
    problem.rules()?;
    let mut schedule = RouteSchedule::default();
    let eval = route_eval::evaluate(problem, vehicle_type, jobs, Some(&mut schedule));
    Some((schedule, eval))
}

use crate::model::Problem;
use crate::solution::Solution;
use crate::units::Cost;
use local_search::LocalSearch;
use penalties::{Penalties, PenaltyManager};
use recreate::{recreate, RecreateParams};
use ruin::{ruin, RuinParams};
use state::SearchState;
use std::time::Instant;

/// How long and how to search.
#[derive(Clone, Debug)]
pub struct SolverConfig {
    pub seed: u64,
    /// Stop after this many iterations (deterministic for a seed).
    pub max_iterations: Option<u64>,
    /// Stop after this much wall-clock time.
    pub time_limit: Option<std::time::Duration>,
    /// Size of each job's granular neighbourhood.
    pub neighbours: usize,
    /// Start and end temperature of the acceptance, as fractions of the average cost per job.
    pub start_temperature: f64,
    pub end_temperature: f64,
    /// Every this many iterations (and once at the end), recombine the pool of routes
    /// seen so far with a set-partitioning MILP. `None` turns recombination off.
    pub recombine_every: Option<u64>,
    /// Shown every recombination's input (pool and incumbent) first; for benchmarks.
    pub on_recombine: Option<RecombineHook>,
    /// A way to stop the search early and to watch it (background runs). `None`: the
    /// search is exactly as without it.
    pub control: Option<SolveControl>,
}

/// What a [`SolveControl`] calls with the search's progress (from the solving thread).
pub type ProgressCallback = std::sync::Arc<dyn Fn(&SearchProgress) + Send + Sync>;

/// Stops a running search and reports its progress. The stop flag is read once per
/// iteration; on stop the search returns the best plan found so far.
#[derive(Clone, Default)]
pub struct SolveControl {
    /// Set to `true` (from any thread) to end the search at its next iteration.
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Called at most once per `progress_every` (and once at the end of the loop).
    pub on_progress: Option<ProgressCallback>,
    pub progress_every: std::time::Duration,
}

impl std::fmt::Debug for SolveControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolveControl")
            .field("stop", &self.stop)
            .field("on_progress", &self.on_progress.is_some())
            .field("progress_every", &self.progress_every)
            .finish()
    }
}

impl SolveControl {
    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How far a search has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchProgress {
    pub iterations: u64,
    pub elapsed: std::time::Duration,
    /// Objective of the best feasible plan so far (none found yet: `None`).
    pub best_cost: Option<Cost>,
    /// Jobs planned in that plan.
    pub jobs_planned: Option<usize>,
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            max_iterations: None,
            time_limit: Some(std::time::Duration::from_secs(10)),
            neighbours: 40,
            start_temperature: 0.2,
            end_temperature: 0.002,
            recombine_every: None,
            on_recombine: None,
            control: None,
        }
    }
}

/// The best plan found and how the search went.
#[derive(Clone, Debug)]
pub struct SolveResult {
    pub solution: Solution,
    /// Objective of `solution` (the checker computes the same).
    pub cost: Cost,
    /// Whether `solution` meets every time window and capacity.
    pub feasible: bool,
    pub iterations: u64,
    pub elapsed: std::time::Duration,
    pub stats: OperatorStats,
}

/// Solves `problem` within the budget of `config` (iterations, time, or both; with
/// neither, 1000 iterations).
pub fn solve(problem: &Problem, config: &SolverConfig) -> SolveResult {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let max_iterations = match (config.max_iterations, config.time_limit) {
        (None, None) => Some(1000),
        (m, _) => m,
    };
    let n = problem.jobs().len();
    let mut ls = LocalSearch::new(neighbours::granular(problem, config.neighbours));
    let nearest = neighbours::nearest(problem, 100);
    let mut penalty_manager = initial_penalties(problem);
    let ruin_params = RuinParams::default();
    let recreate_params = RecreateParams::default();

    let mut current = SearchState::empty(problem);
    current.normalise_routes(problem);
    // Construction under prohibitive penalties, so the first plan is feasible whenever
    // each job can be served alone; then a descent under the same penalties.
    let strict = penalty_manager.penalties().scaled(1000);
    recreate(
        problem,
        &mut current,
        (0..n).collect(),
        ls.neighbours(),
        &strict,
        &recreate_params,
        ls.step,
        &mut rng,
    );
    let all: Vec<usize> = (0..n).collect();
    ls.run(problem, &mut current, &strict, &mut rng, &all);
    let mut best = Best::default();
    best.offer(problem, &current);
    // Set partitioning must cover every job, which optional jobs do not allow.
    let mut pool = config
        .recombine_every
        .filter(|_| problem.rules().is_none())
        .map(|_| route_pool::RoutePool::new(POOL_CAPACITY));

    let scale =
        (current.routes_cost(problem, &zero_penalties()).get() as f64 / n.max(1) as f64).max(1.0);
    let (t_start, t_end) = (
        config.start_temperature * scale,
        config.end_temperature * scale,
    );

    // Under field rules, the last 1 % of the time is kept for the final sweep of
    // unplanned jobs, so the whole solve stays inside the budget.
    let mut loop_config = config.clone();
    if problem.rules().is_some() {
        loop_config.time_limit = config.time_limit.map(|t| t.mul_f64(0.99));
    }
    let mut iterations = 0u64;
    let mut last_report = Instant::now();
    loop {
        let progress = progress(&loop_config, max_iterations, iterations, started);
        if progress >= 1.0 || n == 0 {
            break;
        }
        if let Some(control) = &config.control {
            if last_report.elapsed() >= control.progress_every {
                last_report = Instant::now();
                report(control, problem, &best, iterations, started);
            }
            if control.stopped() {
                break;
            }
        }
        iterations += 1;
        let temperature = t_start * (t_end / t_start).powf(progress);
        let pen = penalty_manager.penalties();

        let mut candidate = current.clone();
        ls.step += 1;
        let removal = ruin(problem, &mut candidate, &nearest, &ruin_params, &mut rng);
        for &r in &removal.routes {
            candidate.refresh_route(problem, r, ls.step);
        }
        candidate.normalise_routes(problem);
        let mut reinsert = removal.removed.clone();
        retry_unassigned(&candidate, &removal.removed, &mut reinsert, &mut rng);
        recreate(
            problem,
            &mut candidate,
            reinsert,
            ls.neighbours(),
            &pen,
            &recreate_params,
            ls.step,
            &mut rng,
        );
        // Search around the reinserted jobs and around the gaps they left.
        for &j in removal.removed.iter().chain(&removal.boundary) {
            ls.activate_around(&candidate, j);
        }
        ls.run(problem, &mut candidate, &pen, &mut rng, &[]);

        let time_ok = candidate.is_time_feasible(problem);
        let load_ok = candidate.is_load_feasible(problem);
        if time_ok && load_ok {
            best.offer(problem, &candidate);
        } else if rng.bool() {
            // Repair a copy with stronger penalties (HGS): it may be the best feasible plan yet.
            let mut repaired = candidate.clone();
            ls.step += 1;
            let strong = pen.scaled(10);
            let zero = zero_penalties();
            let broken: Vec<usize> = (0..repaired.routes.len())
                .filter(|&r| {
                    repaired.route_cost(problem, r, &strong)
                        != repaired.route_cost(problem, r, &zero)
                })
                .flat_map(|r| repaired.routes[r].jobs.clone())
                .collect();
            ls.run(problem, &mut repaired, &strong, &mut rng, &broken);
            if repaired.is_feasible(problem) {
                best.offer(problem, &repaired);
            }
        }
        penalty_manager.record(time_ok, load_ok);

        // Simulated annealing on the penalised cost.
        let threshold =
            current.cost(problem, &pen).get() as f64 - temperature * rng.f64().max(1e-12).ln();
        if (candidate.cost(problem, &pen).get() as f64) < threshold {
            current = candidate;
            if let Some(pool) = pool.as_mut() {
                pool.add_state(problem, &current);
            }
        }
        if let (Some(pool), Some(every)) = (pool.as_mut(), config.recombine_every) {
            if iterations.is_multiple_of(every.max(1)) {
                recombine_into(problem, pool, &mut best, &mut current, config, started);
            }
        }
    }
    if let Some(pool) = pool.as_mut() {
        recombine_into(problem, pool, &mut best, &mut current, config, started);
    }
    if let Some(control) = &config.control {
        report(control, problem, &best, iterations, started);
    }
    if let Some(mut state) = best.state.clone() {
        if state.unassigned().next().is_some() {
            // Last look for unplanned jobs that fit the final plan somewhere: every
            // route, every position, no blinks (the loop only samples a few per step).
            let pen = penalty_manager.penalties();
            let unassigned: Vec<usize> = state.unassigned().collect();
            let sweep = RecreateParams {
                blink_rate: 0.0,
                every_route: true,
            };
            recreate(
                problem,
                &mut state,
                unassigned,
                ls.neighbours(),
                &pen,
                &sweep,
                ls.step,
                &mut rng,
            );
            // Kept only if it is still feasible (job relations are checked plan-wide).
            best.offer(problem, &state);
        }
    }

    let (solution, cost, feasible) = match best.state {
        Some(s) => (s.to_solution(), best.cost, true),
        None => {
            let zero = zero_penalties();
            (current.to_solution(), current.cost(problem, &zero), false)
        }
    };
    SolveResult {
        solution,
        cost,
        feasible,
        iterations,
        elapsed: started.elapsed(),
        stats: ls.stats.clone(),
    }
}

/// Tells the control's callback (if any) how the search stands.
fn report(
    control: &SolveControl,
    problem: &Problem,
    best: &Best,
    iterations: u64,
    started: Instant,
) {
    if let Some(callback) = &control.on_progress {
        let n = problem.jobs().len();
        callback(&SearchProgress {
            iterations,
            elapsed: started.elapsed(),
            best_cost: best.state.as_ref().map(|_| best.cost),
            jobs_planned: best.state.as_ref().map(|s| n - s.unassigned().count()),
        });
    }
}

/// Adds a few of the plan's unplanned optional jobs (not just ruined) to `reinsert`,
/// so that jobs left out earlier get another chance as the plan changes.
fn retry_unassigned(
    state: &SearchState,
    removed: &[usize],
    reinsert: &mut Vec<usize>,
    rng: &mut fastrand::Rng,
) {
    let mut out: Vec<usize> = state
        .unassigned()
        .filter(|j| !removed.contains(j))
        .collect();
    if out.is_empty() {
        return;
    }
    let take = removed.len().max(5).min(out.len());
    rng.shuffle(&mut out);
    reinsert.extend_from_slice(&out[..take]);
}

/// Routes kept for recombination (about 100 bytes plus the jobs each).
const POOL_CAPACITY: usize = 20_000;

/// Replaces the best plan (and the current one) by the pool's recombination when cheaper.
fn recombine_into(
    problem: &Problem,
    pool: &mut route_pool::RoutePool,
    best: &mut Best,
    current: &mut SearchState,
    config: &SolverConfig,
    started: Instant,
) {
    let Some(incumbent) = best.state.as_ref() else {
        return;
    };
    // A small slice of the budget, and never far past its end: recombination must
    // not eat the search's time.
    let limit = config
        .time_limit
        .map_or(std::time::Duration::from_secs(1), |t| {
            let left = t.saturating_sub(started.elapsed());
            (t / 50)
                .min(std::time::Duration::from_secs(2))
                .min(left.max(std::time::Duration::from_millis(100)))
        });
    if let Some(better) = pool.recombine(problem, incumbent, limit, config.on_recombine.as_ref()) {
        best.offer(problem, &better);
        *current = better;
    }
}

/// The plain objective: no penalty for time warp or excess load.
fn zero_penalties() -> Penalties {
    Penalties {
        time_warp: 0,
        excess_load: 0,
    }
}

/// Fraction of the budget used, in `[0, 1]`.
fn progress(
    config: &SolverConfig,
    max_iterations: Option<u64>,
    iterations: u64,
    started: Instant,
) -> f64 {
    let mut p: f64 = 0.0;
    if let Some(m) = max_iterations {
        p = p.max(iterations as f64 / m.max(1) as f64);
    }
    if let Some(t) = config.time_limit {
        p = p.max(started.elapsed().as_secs_f64() / t.as_secs_f64().max(1e-9));
    }
    p.min(1.0)
}

/// Starting weights: a unit of time warp costs about what a unit of travel does, a unit
/// of excess load about what serving an average job costs in travel.
fn initial_penalties(problem: &Problem) -> PenaltyManager {
    let jobs = problem.jobs();
    let n = jobs.len().max(1) as f64;
    let vt = &problem.vehicle_types()[0];
    let avg_travel: f64 = jobs
        .iter()
        .map(|j| problem.distance(vt.start, j.location).get() as f64)
        .sum::<f64>()
        / n;
    let avg_demand = (jobs.iter().map(|j| j.demand.get() as f64).sum::<f64>() / n).max(1.0);
    let mut time_warp = vt.cost_per_distance.max(1) as f64;
    if let Some(rules) = problem.rules() {
        // A second of time warp must cost more than any second it could save: of
        // working time, of overtime or of SLA lateness.
        let per_second = problem
            .vehicle_types()
            .iter()
            .zip(&rules.vehicles)
            .map(|(v, r)| v.cost_per_duration + r.overtime_cost)
            .chain(rules.jobs.iter().map(|j| j.lateness_cost))
            .max()
            .unwrap_or(1);
        time_warp = time_warp.max(10.0 * per_second as f64);
    }
    PenaltyManager::new(time_warp, avg_travel / avg_demand)
}

/// The best feasible plan seen.
#[derive(Default)]
struct Best {
    state: Option<SearchState>,
    cost: Cost,
}

impl Best {
    fn offer(&mut self, problem: &Problem, candidate: &SearchState) {
        if !candidate.is_feasible(problem) {
            return;
        }
        let cost = candidate.cost(problem, &zero_penalties());
        if self.state.is_none() || cost < self.cost {
            self.state = Some(candidate.clone());
            self.cost = cost;
        }
    }
}

/// What [`crate::bench_support`] times.
pub(crate) mod internals {
    use super::local_search::LocalSearch;
    use super::local_search::Move;
    use super::penalties::Penalties;
    use super::pieces::cost_of;
    use super::recreate::{recreate, RecreateParams};
    use super::state::SearchState;
    use super::{initial_penalties, neighbours};
    use crate::model::Problem;
    use crate::units::Cost;

    pub struct Evaluator {
        state: SearchState,
        neighbours: Vec<Vec<usize>>,
        pen: Penalties,
        seed: u64,
    }

    impl Evaluator {
        pub fn new(problem: &Problem, seed: u64) -> Self {
            let mut rng = fastrand::Rng::with_seed(seed);
            let neighbours = neighbours::granular(problem, 40);
            let pen = initial_penalties(problem).penalties();
            let mut state = SearchState::empty(problem);
            state.normalise_routes(problem);
            let all = (0..problem.jobs().len()).collect();
            recreate(
                problem,
                &mut state,
                all,
                &neighbours,
                &pen,
                &RecreateParams::default(),
                1,
                &mut rng,
            );
            Self {
                state,
                neighbours,
                pen,
                seed,
            }
        }

        pub fn evaluate_relocates(&self, problem: &Problem) -> usize {
            let s = &self.state;
            let mut improving = 0;
            for u in 0..self.neighbours.len() {
                let (r1, i) = (s.route_of[u], s.position_of[u]);
                for &v in &self.neighbours[u] {
                    let (r2, j) = (s.route_of[v], s.position_of[v]);
                    if r1 == r2 {
                        continue;
                    }
                    let old =
                        s.route_cost(problem, r1, &self.pen) + s.route_cost(problem, r2, &self.pen);
                    let m = Move::relocate(r1, i, 1, r2, j);
                    let new: Cost = (0..m.count)
                        .map(|k| {
                            let route = s.routes[m.routes[k]].vehicle_type;
                            cost_of(problem, s, route, &m.pieces[k][..m.lens[k]], &self.pen)
                        })
                        .sum();
                    improving += usize::from(new < old);
                }
            }
            improving
        }

        pub fn local_search_pass(&self, problem: &Problem) -> Cost {
            let mut rng = fastrand::Rng::with_seed(self.seed);
            let mut state = self.state.clone();
            let mut ls = LocalSearch::new(self.neighbours.clone());
            let all: Vec<usize> = (0..problem.jobs().len()).collect();
            ls.run(problem, &mut state, &self.pen, &mut rng, &all);
            state.cost(problem, &self.pen)
        }
    }
}
