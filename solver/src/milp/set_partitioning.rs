//! Route-pool recombination: a set-partitioning MILP over routes the search has seen.
//!
//! One binary `y_r` per pool route `r`:
//!
//! ```text
//! minimise   Σ_r cost_r · y_r
//! subject to Σ_{r ∋ j} y_r = 1            for every job j        (served exactly once)
//!            Σ_{r of type k} y_r ≤ count_k for every type k with a count
//!            y_r ∈ {0, 1}
//! ```
//!
//! The incumbent (a set of pool routes that already is such a cover) is the warm
//! start and the fallback: whatever the backend does — fail, stop at the time
//! limit, or return something worse — the answer is never worse than it.
//!
//! Pool routes are trusted: each must be feasible on its own and carry its true
//! cost (the search's evaluation or [`crate::check`] of a one-route plan).

use super::backend::{is_one, Model};
use super::MilpError;
use crate::model::Problem;
use crate::solution::{Route, Solution};
use crate::units::Cost;
use good_lp::{variable, Expression, ProblemVariables};

/// A feasible route with its cost, as the search found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRoute {
    pub vehicle_type: usize,
    /// Indices into [`Problem::jobs`], in visiting order.
    pub jobs: Vec<usize>,
    pub cost: Cost,
}

/// How a recombination ended.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RecombinationOutcome {
    /// The backend proved that no cover of the pool is cheaper.
    Optimal,
    /// The time limit stopped the backend; its best cover is at least as good as the incumbent.
    StoppedAtTimeLimit,
    /// The incumbent is returned unchanged, for the reason given.
    KeptIncumbent { reason: String },
}

/// The routes chosen from the pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Recombination {
    /// Indices into the pool, in increasing order.
    pub routes: Vec<usize>,
    /// Sum of the chosen routes' pool costs; never above the incumbent's.
    pub cost: Cost,
    /// Whether no cover of the pool is cheaper.
    pub proven_optimal: bool,
    pub outcome: RecombinationOutcome,
}

impl Recombination {
    /// The chosen routes as a plan.
    pub fn solution(&self, pool: &[PoolRoute]) -> Solution {
        Solution {
            routes: self
                .routes
                .iter()
                .filter_map(|&r| pool.get(r))
                .map(|r| Route {
                    vehicle_type: r.vehicle_type,
                    jobs: r.jobs.clone(),
                })
                .collect(),
        }
    }
}

/// Chooses the cheapest set of pool routes that serves every job exactly once and
/// uses no more vehicles of a type than it has.
///
/// `incumbent` (indices into `pool`) must itself be such a cover; it warm-starts
/// the backend and is returned unchanged if the backend fails or cannot improve
/// on it within `time_limit`. Errors only on malformed input.
pub fn recombine(
    problem: &Problem,
    pool: &[PoolRoute],
    incumbent: &[usize],
    time_limit: std::time::Duration,
) -> Result<Recombination, MilpError> {
    validate_pool(problem, pool)?;
    let incumbent = normalise_incumbent(problem, pool, incumbent)?;
    let incumbent_cost: Cost = incumbent.iter().map(|&r| pool[r].cost).sum();
    let keep = |reason: String| Recombination {
        routes: incumbent.clone(),
        cost: incumbent_cost,
        proven_optimal: false,
        outcome: RecombinationOutcome::KeptIncumbent { reason },
    };

    let mut vars = ProblemVariables::new();
    let y: Vec<_> = (0..pool.len())
        .map(|_| vars.add(variable().binary()))
        .collect();
    let objective: Expression = pool
        .iter()
        .zip(&y)
        .map(|(r, &v)| r.cost.get() as f64 * v)
        .sum();
    let mut model = Model::new(vars, objective);

    let mut covering: Vec<Vec<usize>> = vec![Vec::new(); problem.jobs().len()];
    for (r, route) in pool.iter().enumerate() {
        for &j in &route.jobs {
            covering[j].push(r);
        }
    }
    for routes in &covering {
        let served: Expression = routes.iter().map(|&r| y[r]).sum();
        model.add(served.eq(1));
    }
    for (k, vt) in problem.vehicle_types().iter().enumerate() {
        if let Some(count) = vt.count {
            let used: Expression = (0..pool.len())
                .filter(|&r| pool[r].vehicle_type == k && !pool[r].jobs.is_empty())
                .map(|r| y[r])
                .sum();
            model.add(used.leq(count as f64));
        }
    }
    let mut chosen = vec![false; pool.len()];
    for &r in &incumbent {
        chosen[r] = true;
    }
    model.initial = y
        .iter()
        .zip(&chosen)
        .map(|(&v, &c)| (v, if c { 1.0 } else { 0.0 }))
        .collect();
    model.time_limit = Some(time_limit);

    let solved = match model.solve() {
        Ok(solved) => solved,
        Err(e) => return Ok(keep(e.to_string())),
    };
    let routes: Vec<usize> = (0..pool.len())
        .filter(|&r| is_one(solved.values.as_ref(), y[r]))
        .collect();
    if let Err(reason) = check_cover(problem, pool, &routes) {
        return Ok(keep(format!(
            "the backend's answer is not a cover: {reason}"
        )));
    }
    let cost: Cost = routes.iter().map(|&r| pool[r].cost).sum();
    if cost > incumbent_cost {
        return Ok(keep(format!(
            "the backend's best cover ({cost}) is worse than the incumbent ({incumbent_cost})"
        )));
    }
    Ok(Recombination {
        routes,
        cost,
        proven_optimal: solved.proven_optimal,
        outcome: if solved.proven_optimal {
            RecombinationOutcome::Optimal
        } else {
            RecombinationOutcome::StoppedAtTimeLimit
        },
    })
}

fn validate_pool(problem: &Problem, pool: &[PoolRoute]) -> Result<(), MilpError> {
    let n = problem.jobs().len();
    for (r, route) in pool.iter().enumerate() {
        if route.vehicle_type >= problem.vehicle_types().len() {
            return Err(MilpError::InvalidInput {
                reason: format!(
                    "pool route {r} uses vehicle type {}, but there are only {}",
                    route.vehicle_type,
                    problem.vehicle_types().len()
                ),
            });
        }
        let mut seen = vec![false; n];
        for &j in &route.jobs {
            if j >= n {
                return Err(MilpError::InvalidInput {
                    reason: format!("pool route {r} visits job {j}, but there are only {n}"),
                });
            }
            if std::mem::replace(&mut seen[j], true) {
                return Err(MilpError::InvalidInput {
                    reason: format!("pool route {r} visits job {j} twice"),
                });
            }
        }
    }
    Ok(())
}

/// Sorted, deduplicated incumbent that is checked to be a cover.
fn normalise_incumbent(
    problem: &Problem,
    pool: &[PoolRoute],
    incumbent: &[usize],
) -> Result<Vec<usize>, MilpError> {
    if let Some(&r) = incumbent.iter().find(|&&r| r >= pool.len()) {
        return Err(MilpError::InvalidInput {
            reason: format!(
                "incumbent refers to pool route {r}, but the pool has {}",
                pool.len()
            ),
        });
    }
    let mut routes = incumbent.to_vec();
    routes.sort_unstable();
    if routes.windows(2).any(|w| w[0] == w[1]) {
        return Err(MilpError::InvalidInput {
            reason: "incumbent lists a pool route twice".into(),
        });
    }
    check_cover(problem, pool, &routes).map_err(|reason| MilpError::InvalidInput {
        reason: format!("the incumbent is not a valid cover: {reason}"),
    })?;
    Ok(routes)
}

/// Every job exactly once, no type over its count.
fn check_cover(problem: &Problem, pool: &[PoolRoute], routes: &[usize]) -> Result<(), String> {
    let mut times = vec![0usize; problem.jobs().len()];
    let mut used = vec![0usize; problem.vehicle_types().len()];
    for &r in routes {
        for &j in &pool[r].jobs {
            times[j] += 1;
        }
        if !pool[r].jobs.is_empty() {
            used[pool[r].vehicle_type] += 1;
        }
    }
    if let Some(j) = times.iter().position(|&t| t != 1) {
        return Err(format!("job {j} is served {} times", times[j]));
    }
    for (k, vt) in problem.vehicle_types().iter().enumerate() {
        if let Some(count) = vt.count {
            if used[k] > count {
                return Err(format!(
                    "vehicle type {k} is used {} times but has {count}",
                    used[k]
                ));
            }
        }
    }
    Ok(())
}
