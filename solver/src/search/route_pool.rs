//! A bounded pool of distinct feasible routes seen by the search, recombined by a
//! set-partitioning MILP ([`crate::milp::recombine`]): the best plan that can be
//! assembled from routes of many different plans.

use super::penalties::Penalties;
use super::state::SearchState;
use crate::milp::{recombine, PoolRoute};
use crate::model::Problem;
use crate::units::Cost;
use std::collections::HashMap;
use std::sync::Arc;

/// Called with the pool and the incumbent (indices into the pool) just before each
/// recombination ([`super::SolverConfig::on_recombine`]): how a benchmark gets the
/// pools a real search builds, which live inside `solve` otherwise.
#[derive(Clone)]
pub struct RecombineHook(pub Arc<RecombineFn>);

/// What a [`RecombineHook`] calls: `(pool, incumbent)`.
pub type RecombineFn = dyn Fn(&[PoolRoute], &[usize]) + Send + Sync;

impl RecombineHook {
    pub fn new(f: impl Fn(&[PoolRoute], &[usize]) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for RecombineHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecombineHook(..)")
    }
}

pub struct RoutePool {
    routes: Vec<PoolRoute>,
    index: HashMap<(usize, Vec<usize>), usize>,
    capacity: usize,
    /// Slot overwritten next once the pool is full (oldest first).
    next_evict: usize,
}

impl RoutePool {
    pub fn new(capacity: usize) -> Self {
        Self {
            routes: Vec::new(),
            index: HashMap::new(),
            capacity: capacity.max(1),
            next_evict: 0,
        }
    }

    /// Adds every feasible, non-empty route of `state`.
    pub fn add_state(&mut self, problem: &Problem, state: &SearchState) {
        let zero = Penalties {
            time_warp: 0,
            excess_load: 0,
        };
        for (r, route) in state.routes.iter().enumerate() {
            let vt = &problem.vehicle_types()[route.vehicle_type];
            if route.is_empty() || route.segment().time_warp.get() > 0 || route.load() > vt.capacity
            {
                continue;
            }
            self.add(
                route.vehicle_type,
                &route.jobs,
                state.route_cost(problem, r, &zero),
            );
        }
    }

    fn add(&mut self, vehicle_type: usize, jobs: &[usize], cost: Cost) -> usize {
        if let Some(&k) = self.index.get(&(vehicle_type, jobs.to_vec())) {
            return k;
        }
        let route = PoolRoute {
            vehicle_type,
            jobs: jobs.to_vec(),
            cost,
        };
        let k = if self.routes.len() < self.capacity {
            self.routes.push(route);
            self.routes.len() - 1
        } else {
            let k = self.next_evict;
            self.next_evict = (k + 1) % self.capacity;
            let old = std::mem::replace(&mut self.routes[k], route);
            self.index.remove(&(old.vehicle_type, old.jobs));
            k
        };
        self.index.insert((vehicle_type, jobs.to_vec()), k);
        k
    }

    /// The cheapest plan made of pool routes, if it beats `best` (whose routes are
    /// added to the pool first, so the MILP starts from it).
    pub fn recombine(
        &mut self,
        problem: &Problem,
        best: &SearchState,
        time_limit: std::time::Duration,
        hook: Option<&RecombineHook>,
    ) -> Option<SearchState> {
        let zero = Penalties {
            time_warp: 0,
            excess_load: 0,
        };
        let incumbent: Vec<usize> = (0..best.routes.len())
            .filter(|&r| !best.routes[r].is_empty())
            .map(|r| {
                let route = &best.routes[r];
                self.add(
                    route.vehicle_type,
                    &route.jobs,
                    best.route_cost(problem, r, &zero),
                )
            })
            .collect();
        if let Some(hook) = hook {
            (hook.0)(&self.routes, &incumbent);
        }
        let result = recombine(problem, &self.routes, &incumbent, time_limit).ok()?;
        let incumbent_cost: Cost = incumbent.iter().map(|&k| self.routes[k].cost).sum();
        if result.cost >= incumbent_cost {
            return None;
        }
        let state = SearchState::from_solution(problem, &result.solution(&self.routes));
        state.is_feasible(problem).then_some(state)
    }
}
