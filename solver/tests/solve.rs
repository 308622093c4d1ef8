//! End-to-end behaviour of the search, judged by the independent checker.

use despacho_solver::{
    check, parse_solomon, solve, Distance, Duration, Job, Load, Matrix, Problem, Route, Solution,
    SolverConfig, TimeWindow, VehicleType,
};

fn random_problem(seed: u64, jobs: usize, capacity: i64) -> Problem {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = jobs + 1;
    let xy: Vec<(f64, f64)> = (0..n)
        .map(|_| (rng.f64() * 100.0, rng.f64() * 100.0))
        .collect();
    let d = |i: usize, j: usize| {
        let (dx, dy) = (xy[i].0 - xy[j].0, xy[i].1 - xy[j].1);
        (10.0 * (dx * dx + dy * dy).sqrt()) as i64
    };
    let horizon = 5000;
    let jobs = (1..n)
        .map(|k| {
            let start = rng.i64(d(0, k)..horizon - 2 * d(0, k) - 100);
            Job {
                location: k,
                service: Duration(rng.i64(0..100)),
                demand: Load(rng.i64(1..20)),
                windows: vec![TimeWindow::new(
                    Duration(start),
                    Duration(start + rng.i64(50..1500)),
                )],
            }
        })
        .collect();
    Problem::new(
        Matrix::from_fn(n, |i, j| Distance(d(i, j))),
        Matrix::from_fn(n, |i, j| Duration(d(i, j))),
        vec![VehicleType::distance_only(
            0,
            TimeWindow::new(Duration(0), Duration(horizon)),
            Load(capacity),
        )],
        jobs,
    )
    .unwrap()
}

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

/// Every way to split `jobs` into ordered routes: the optimum by brute force.
fn brute_force_optimum(problem: &Problem) -> i64 {
    let n = problem.jobs().len();
    let mut best = i64::MAX;
    let mut perm: Vec<usize> = (0..n).collect();
    permute(&mut perm, 0, &mut |p| {
        for cuts in 0u32..(1 << (n - 1)) {
            let mut routes = vec![Route {
                vehicle_type: 0,
                jobs: vec![p[0]],
            }];
            for k in 1..n {
                if cuts & (1 << (k - 1)) != 0 {
                    routes.push(Route {
                        vehicle_type: 0,
                        jobs: vec![],
                    });
                }
                routes.last_mut().unwrap().jobs.push(p[k]);
            }
            let report = check(problem, &Solution { routes }, true);
            if report.is_feasible() {
                best = best.min(report.cost.get());
            }
        }
    });
    best
}

fn permute(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permute(v, k + 1, f);
        v.swap(k, i);
    }
}

#[test]
fn tiny_instances_are_solved_to_their_brute_force_optimum() {
    for seed in 0..4 {
        let problem = random_problem(100 + seed, 7, 30);
        let optimum = brute_force_optimum(&problem);
        let result = solve(&problem, &config(seed, 300));
        let report = check(&problem, &result.solution, true);
        assert!(report.is_feasible());
        assert_eq!(report.cost.get(), optimum, "seed {seed}");
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
