//! Tests of the search internals against brute-force recomputation.

use super::penalties::Penalties;
use super::pieces::{assemble, jobs_of, Piece};
use super::state::SearchState;
use crate::model::Problem;
use crate::units::{Distance, Duration, Load};
use proptest::prelude::*;

fn random_problem(seed: u64, jobs: usize) -> Problem {
    crate::generate::random_vrptw(seed, jobs, 60)
}

/// Forward simulation with time warp: leave as early as possible, wait when early,
/// warp back to the window end when late.
fn simulate(problem: &Problem, jobs: &[usize]) -> (Distance, Load, Duration) {
    let vt = &problem.vehicle_types()[0];
    let mut t = vt.shift.start;
    let mut at = vt.start;
    let mut warp = Duration::ZERO;
    let mut dist = Distance::ZERO;
    let mut load = Load::ZERO;
    for &j in jobs {
        let job = &problem.jobs()[j];
        dist += problem.distance(at, job.location);
        t += problem.duration(at, job.location);
        let w = job.windows[0];
        t = t.max(w.start);
        if t > w.end {
            warp += t - w.end;
            t = w.end;
        }
        t += job.service;
        at = job.location;
        load += job.demand;
    }
    dist += problem.distance(at, vt.end);
    t += problem.duration(at, vt.end);
    if t > vt.shift.end {
        warp += t - vt.shift.end;
    }
    (dist, load, warp)
}

/// Splits a shuffled job list into `routes` routes.
fn state_with_routes(problem: &Problem, seed: u64, routes: usize) -> SearchState {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut order: Vec<usize> = (0..problem.jobs().len()).collect();
    rng.shuffle(&mut order);
    let mut state = SearchState::empty(problem);
    state.normalise_routes(problem);
    for (k, j) in order.into_iter().enumerate() {
        let r = k % routes;
        while state.routes.len() <= r {
            state.routes.push(super::route::RouteState::new(problem, 0));
        }
        state.routes[r].jobs.push(j);
    }
    for r in 0..state.routes.len() {
        state.refresh_route(problem, r, 1);
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any concatenation of route slices is priced exactly as a from-scratch simulation.
    #[test]
    fn move_evaluation_agrees_with_brute_force(seed in 0u64..10_000, a in 0usize..50, b in 0usize..50, c in 0usize..50, d in 0usize..50) {
        let problem = random_problem(seed, 24);
        let state = state_with_routes(&problem, seed + 1, 3);
        let (r1, r2) = (0, 1);
        let (l1, l2) = (state.routes[r1].len(), state.routes[r2].len());
        let i = 1 + a % l1;
        let k = i + b % (l1 - i + 1);
        let j = c % (l2 + 1);
        let m = 1 + d % l2;
        let (lo, hi) = (j.min(m), j.max(m));
        let candidates: Vec<Vec<Piece>> = vec![
            // Relocate chain i..=k of r1 after position j of r2.
            vec![Piece::Prefix { route: r2, to: j }, Piece::Range { route: r1, from: i, to: k }, Piece::Suffix { route: r2, from: j + 1 }],
            // Tails exchange.
            vec![Piece::Prefix { route: r1, to: i }, Piece::Suffix { route: r2, from: j + 1 }],
            // Reversal inside r2.
            vec![Piece::Prefix { route: r2, to: lo.max(1) - 1 }, Piece::Reversed { route: r2, from: lo.max(1), to: hi }, Piece::Suffix { route: r2, from: hi + 1 }],
            // Removal of a chain from r1.
            vec![Piece::Prefix { route: r1, to: i - 1 }, Piece::Suffix { route: r1, from: k + 1 }],
        ];
        for pieces in candidates {
            let jobs = jobs_of(&state, &pieces);
            let got = assemble(&problem, &state, &pieces);
            let (dist, load, warp) = simulate(&problem, &jobs);
            prop_assert_eq!(got.dist, dist, "distance of {:?}", pieces);
            prop_assert_eq!(got.load, load);
            prop_assert_eq!(got.jobs, jobs.len());
            prop_assert_eq!(got.seg.time_warp, warp, "time warp of {:?}", pieces);
            if warp == Duration::ZERO {
                // The checker's shortest duration of the same route.
                let sol = crate::Solution { routes: vec![crate::Route { vehicle_type: 0, jobs: jobs.clone() }] };
                let report = crate::check(&problem, &sol, false);
                if !jobs.is_empty() {
                    prop_assert_eq!(got.seg.duration, report.duration);
                }
            }
        }
    }
}

#[test]
fn penalised_cost_of_a_feasible_state_is_its_distance() {
    let problem = random_problem(7, 30);
    let state = state_with_routes(&problem, 3, 30);
    let pen = Penalties {
        time_warp: 1000,
        excess_load: 1000,
    };
    assert!(state.is_feasible(&problem));
    let report = crate::check(&problem, &state.to_solution(), true);
    assert_eq!(state.cost(&problem, &pen), report.cost);
}
