//! The search: construction, then ruin-and-recreate with local search and
//! simulated-annealing acceptance over a penalised objective.

mod route;
mod segment;

use crate::model::Problem;
use crate::solution::{Route, Solution};
use crate::units::Cost;

/// How long and how to search.
#[derive(Clone, Debug)]
pub struct SolverConfig {
    pub seed: u64,
    /// Stop after this many iterations (deterministic for a seed).
    pub max_iterations: Option<u64>,
    /// Stop after this much wall-clock time.
    pub time_limit: Option<std::time::Duration>,
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            max_iterations: None,
            time_limit: Some(std::time::Duration::from_secs(10)),
        }
    }
}

/// The best plan found and how the search went.
#[derive(Clone, Debug)]
pub struct SolveResult {
    pub solution: Solution,
    /// Objective of `solution` (as the checker computes it).
    pub cost: Cost,
    pub iterations: u64,
    pub elapsed: std::time::Duration,
}

/// Solves `problem`. Placeholder: one route per job (replaced by the real search).
pub fn solve(problem: &Problem, _config: &SolverConfig) -> SolveResult {
    let start = std::time::Instant::now();
    let solution = Solution {
        routes: (0..problem.jobs().len())
            .map(|j| Route { vehicle_type: 0, jobs: vec![j] })
            .collect(),
    };
    let cost = crate::checker::check(problem, &solution, true).cost;
    SolveResult { solution, cost, iterations: 0, elapsed: start.elapsed() }
}
