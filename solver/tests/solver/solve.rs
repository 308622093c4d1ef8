//! End-to-end behaviour of the search, judged by the independent checker.

use crate::common::brute_force_optimum;
use despacho_solver::generate::random_vrptw as random_problem;
use despacho_solver::{
    check, parse_solomon, solve, Distance, Duration, Job, Load, Matrix, Problem, Route,
    SolverConfig, TimeWindow, VehicleType,
};

fn config(seed: u64, iterations: u64) -> SolverConfig {
    SolverConfig {
        seed,
        max_iterations: Some(iterations),
        time_limit: None,
        ..SolverConfig::default()
    }
}

#[test]
fn checker_accepts_every_plan_on_random_instances_and_agrees_on_cost() {
    for seed in 0..12 {
        let problem = random_problem(seed, 20 + 5 * seed as usize, 50);
        let result = solve(&problem, &config(seed, 300));
        let report = check(&problem, &result.solution, true);
        assert!(report.is_feasible(), "seed {seed}: {:?}", report.violations);
        assert!(
            report.unassigned.is_empty(),
            "seed {seed}: every job is served"
        );
        assert!(result.feasible);
        assert_eq!(
            report.cost, result.cost,
            "seed {seed}: solver and checker disagree on cost"
        );
    }
}

#[test]
fn same_seed_and_iterations_give_the_same_plan() {
    let problem = random_problem(42, 40, 40);
    let a = solve(&problem, &config(9, 200));
    let b = solve(&problem, &config(9, 200));
    assert_eq!(a.solution, b.solution);
    assert_eq!(a.cost, b.cost);
}

#[test]
fn tiny_instances_are_solved_to_their_brute_force_optimum() {
    for seed in 0..4 {
        let problem = random_problem(100 + seed, 7, 30);
        let optimum = brute_force_optimum(&problem);
        let result = solve(&problem, &config(seed, 300));
        let report = check(&problem, &result.solution, true);
        assert!(report.is_feasible());
        assert_eq!(Some(report.cost), optimum, "seed {seed}");
    }
}

#[test]
fn solves_solomon_c101_to_its_proven_optimum() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/solomon/C101.txt"
    ))
    .unwrap();
    let instance = parse_solomon(&text).unwrap();
    let result = solve(&instance.problem, &config(1, 1500));
    let report = check(&instance.problem, &result.solution, true);
    assert!(report.is_feasible());
    // DIMACS optimum of C101: 827.3 (in tenths).
    assert_eq!(report.distance.get(), 8273);
}

#[test]
fn multi_window_jobs_are_served_inside_one_of_their_windows() {
    // One vehicle type; job 0 can only be served late (second window), job 1 early.
    let d = Matrix::from_fn(3, |i, j| if i == j { 0 } else { 10 });
    let problem = Problem::new(
        Matrix::from_fn(3, |i, j| Distance(d.get(i, j))),
        Matrix::from_fn(3, |i, j| Duration(d.get(i, j))),
        vec![VehicleType::distance_only(
            0,
            TimeWindow::new(Duration(0), Duration(1000)),
            Load(10),
        )],
        vec![
            Job {
                location: 1,
                service: Duration(5),
                demand: Load(1),
                windows: vec![
                    TimeWindow::new(Duration(0), Duration(5)),
                    TimeWindow::new(Duration(100), Duration(120)),
                ],
            },
            Job {
                location: 2,
                service: Duration(5),
                demand: Load(1),
                windows: vec![TimeWindow::new(Duration(0), Duration(30))],
            },
        ],
    )
    .unwrap();
    let result = solve(&problem, &config(3, 100));
    let report = check(&problem, &result.solution, true);
    assert!(report.is_feasible(), "{:?}", report.violations);
    // One route serves both: job 1 first, then job 0 in its second window.
    assert_eq!(
        result.solution.routes,
        vec![Route {
            vehicle_type: 0,
            jobs: vec![1, 0]
        }]
    );
}

#[test]
fn recombining_the_route_pool_keeps_plans_valid_and_costs_agreed() {
    for seed in 0..4 {
        let problem = random_problem(300 + seed, 40, 40);
        let config = SolverConfig {
            recombine_every: Some(25),
            ..config(seed, 200)
        };
        let result = solve(&problem, &config);
        let report = check(&problem, &result.solution, true);
        assert!(report.is_feasible(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.cost, result.cost, "seed {seed}");
    }
}

/// Background runs (issue 7): the stop flag ends the search early with its best plan,
/// the callback sees the progress, and a control that never stops changes nothing.
#[test]
fn a_stop_flag_ends_the_search_early_and_an_unused_control_changes_nothing() {
    use despacho_solver::{SearchProgress, SolveControl};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let problem = random_problem(7, 40, 50);
    let plain = solve(&problem, &config(7, 200));

    // Watched, never stopped: the same plan, and the last report is the loop's end.
    let seen: Arc<Mutex<Vec<SearchProgress>>> = Arc::default();
    let sink = seen.clone();
    let watched = SolverConfig {
        control: Some(SolveControl {
            stop: Arc::new(AtomicBool::new(false)),
            on_progress: Some(Arc::new(move |p: &SearchProgress| {
                sink.lock().unwrap().push(p.clone())
            })),
            progress_every: std::time::Duration::ZERO,
        }),
        ..config(7, 200)
    };
    let result = solve(&problem, &watched);
    assert_eq!(result.solution, plain.solution);
    assert_eq!(result.cost, plain.cost);
    let seen = seen.lock().unwrap();
    let last = seen.last().expect("progress was reported");
    assert_eq!(last.iterations, 200);
    assert_eq!(last.best_cost, Some(plain.cost));
    assert_eq!(last.jobs_planned, Some(40));

    // Stopped by the callback after 10 iterations of a 1,000,000-iteration budget.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let stopping = SolverConfig {
        control: Some(SolveControl {
            stop,
            on_progress: Some(Arc::new(move |p: &SearchProgress| {
                if p.iterations >= 10 {
                    flag.store(true, Ordering::Relaxed);
                }
            })),
            progress_every: std::time::Duration::ZERO,
        }),
        ..config(7, 1_000_000)
    };
    let result = solve(&problem, &stopping);
    assert_eq!(result.iterations, 10);
    assert!(result.feasible);
    assert!(check(&problem, &result.solution, true).is_feasible());
}
