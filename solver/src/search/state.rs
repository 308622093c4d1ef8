//! The search's working plan: routes with their caches, where each job is, and
//! which of its time windows each job currently uses.

use super::penalties::Penalties;
use super::route::RouteState;
use super::segment::DurationSegment;
use crate::model::Problem;
use crate::solution::{Route, Solution};
use crate::units::{Cost, Duration};

pub const UNASSIGNED: usize = usize::MAX;

#[derive(Clone, Debug)]
pub struct SearchState {
    pub routes: Vec<RouteState>,
    /// Route index of each job, or [`UNASSIGNED`].
    pub route_of: Vec<usize>,
    /// Position of each job in its route (1-based; 0 and len+1 are the depots).
    pub position_of: Vec<usize>,
    /// Which window of the job the plan aims for (multi-window jobs choose at insertion).
    pub window_of: Vec<usize>,
    /// Stop segment of each job for its chosen window.
    pub stops: Vec<DurationSegment>,
}

impl SearchState {
    /// A plan with every job unassigned and no routes.
    pub fn empty(problem: &Problem) -> Self {
        let n = problem.jobs().len();
        let mut s = Self {
            routes: Vec::new(),
            route_of: vec![UNASSIGNED; n],
            position_of: vec![0; n],
            window_of: vec![0; n],
            stops: Vec::with_capacity(n),
        };
        for j in 0..n {
            s.stops.push(stop_for(problem, j, 0));
        }
        s
    }

    /// The plan of `solution`, each job aiming for the first window still open when
    /// the route reaches it (the earliest-start rule the checker also uses).
    pub fn from_solution(problem: &Problem, solution: &Solution) -> Self {
        let mut state = Self::empty(problem);
        for route in solution.routes.iter().filter(|r| !r.jobs.is_empty()) {
            let windows = problem.earliest_start_windows(route.vehicle_type, &route.jobs);
            for (&j, w) in route.jobs.iter().zip(windows) {
                state.set_window(problem, j, w);
            }
            let mut r = RouteState::new(problem, route.vehicle_type);
            r.jobs = route.jobs.clone();
            state.routes.push(r);
        }
        for r in 0..state.routes.len() {
            state.refresh_route(problem, r, 0);
        }
        state.normalise_routes(problem);
        state
    }

    /// Rebuilds route `r` after its `jobs` changed, stamping it with `step`.
    pub fn refresh_route(&mut self, problem: &Problem, r: usize, step: u64) {
        let route = &mut self.routes[r];
        route.rebuild(problem, &self.stops);
        route.modified_at = step;
        for (k, &j) in route.jobs.iter().enumerate() {
            self.route_of[j] = r;
            self.position_of[j] = k + 1;
        }
    }

    pub fn set_window(&mut self, problem: &Problem, job: usize, window: usize) {
        self.window_of[job] = window;
        self.stops[job] = stop_for(problem, job, window);
    }

    /// Takes `job` out of its route without rebuilding the route's caches.
    pub fn detach(&mut self, job: usize) -> usize {
        let r = self.route_of[job];
        let route = &mut self.routes[r];
        let p = route
            .jobs
            .iter()
            .position(|&j| j == job)
            .expect("job is in its route");
        route.jobs.remove(p);
        self.route_of[job] = UNASSIGNED;
        r
    }

    pub fn route_cost(&self, problem: &Problem, r: usize, pen: &Penalties) -> Cost {
        let route = &self.routes[r];
        if let Some(e) = &route.eval {
            return e.cost(pen.time_warp, pen.excess_load);
        }
        let vt = &problem.vehicle_types()[route.vehicle_type];
        pen.route_cost(
            vt,
            route.len(),
            route.distance(),
            route.load(),
            route.segment(),
        )
    }

    /// Penalised cost: routes, the cost of unplanned optional jobs, and broken job
    /// relations (priced like time warp).
    pub fn cost(&self, problem: &Problem, pen: &Penalties) -> Cost {
        self.routes_cost(problem, pen)
            + self.unassigned_cost(problem)
            + self.relation_violation(problem).cost(pen.time_warp)
    }

    /// How far the plan is from keeping its job relations: for each "after" pair, how
    /// long the later job starts before the earlier ends (an hour when the earlier is
    /// unplanned), and an hour per "same technician" pair split between technicians.
    pub fn relation_violation(&self, problem: &Problem) -> Duration {
        if !problem.has_relations() {
            return Duration::ZERO;
        }
        let rules = problem.rules().expect("relations come with rules");
        let hour = Duration(rules.units_per_hour.max(1));
        let times = |j: usize| self.routes[self.route_of[j]].times[self.position_of[j] - 1];
        let mut v = Duration::ZERO;
        for (a, jr) in rules.jobs.iter().enumerate() {
            let ra = self.route_of[a];
            if ra == UNASSIGNED {
                continue;
            }
            for &x in &jr.after {
                v += if self.route_of[x] == UNASSIGNED {
                    hour
                } else {
                    (times(x).1 - times(a).0).positive_part()
                };
            }
            for &b in &jr.same_group_as {
                let rb = self.route_of[b];
                if rb != UNASSIGNED
                    && rules.group(self.routes[ra].vehicle_type)
                        != rules.group(self.routes[rb].vehicle_type)
                {
                    v += hour;
                }
            }
        }
        v
    }

    pub fn routes_cost(&self, problem: &Problem, pen: &Penalties) -> Cost {
        (0..self.routes.len())
            .map(|r| self.route_cost(problem, r, pen))
            .sum()
    }

    /// What leaving the currently unplanned jobs out costs (optional jobs only).
    pub fn unassigned_cost(&self, problem: &Problem) -> Cost {
        let Some(rules) = problem.rules() else {
            return Cost::ZERO;
        };
        self.unassigned()
            .filter_map(|j| rules.jobs[j].unassigned_cost)
            .sum()
    }

    pub fn unassigned(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.route_of.len()).filter(|&j| self.route_of[j] == UNASSIGNED)
    }

    pub fn time_warp(&self) -> Duration {
        self.routes
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| r.time_warp())
            .sum()
    }

    pub fn is_time_feasible(&self, problem: &Problem) -> bool {
        self.time_warp() == Duration::ZERO && self.relation_violation(problem) == Duration::ZERO
    }

    pub fn is_load_feasible(&self, problem: &Problem) -> bool {
        self.routes.iter().all(|r| r.is_load_feasible(problem))
    }

    pub fn is_feasible(&self, problem: &Problem) -> bool {
        self.is_time_feasible(problem) && self.is_load_feasible(problem)
    }

    /// Drops empty routes, then keeps exactly one empty route per vehicle type that
    /// still has a vehicle free, so moves can always open a new route.
    pub fn normalise_routes(&mut self, problem: &Problem) {
        self.routes.retain(|r| !r.is_empty());
        let types = problem.vehicle_types();
        let mut used = vec![0usize; types.len()];
        for r in &self.routes {
            used[r.vehicle_type] += 1;
        }
        for (k, vt) in types.iter().enumerate() {
            if vt.count.is_none_or(|c| used[k] < c) {
                self.routes.push(RouteState::new(problem, k));
            }
        }
        for r in 0..self.routes.len() {
            for (p, &j) in self.routes[r].jobs.iter().enumerate() {
                self.route_of[j] = r;
                self.position_of[j] = p + 1;
            }
        }
    }

    pub fn to_solution(&self) -> Solution {
        Solution {
            routes: self
                .routes
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| Route {
                    vehicle_type: r.vehicle_type,
                    jobs: r.jobs.clone(),
                })
                .collect(),
        }
    }
}

/// The stop segment of `job` aiming for its `window`-th time window. Under field rules
/// the service is the job's shortest on any technician, so the route caches are an
/// optimistic summary (the route evaluator prices the real thing).
pub fn stop_for(problem: &Problem, job: usize, window: usize) -> DurationSegment {
    let j = &problem.jobs()[job];
    let w = j.windows[window];
    DurationSegment::stop(j.location, problem.min_service(job), w.start, w.end)
}
