//! Timings of the MILP models with the compiled-in backend, for `docs/milp.md`:
//! `cargo run --release -p despacho-solver --example milp_timing -- [LIMIT_SECONDS [INSTANCE...]]`
//!
//! Prints one line per run: the exact model on random tiny problems (the
//! generator of `solver/tests/solver/milp.rs`), its LP bound on larger ones, and set-partitioning
//! recombination over pools of heuristic routes on the Solomon fixtures
//! and on any further Solomon-format instances given (e.g. Gehring–Homberger).
use despacho_solver::generate::random_vrptw as random_problem;
use despacho_solver::{
    check, lower_bound, read_solomon, recombine, solve, solve_exact, Cost, PoolRoute, Problem,
    Route, Solution, SolverConfig, MILP_BACKEND,
};
use std::time::{Duration as Wall, Instant};

fn heuristic(problem: &Problem, seed: u64, iterations: u64) -> (Solution, Cost) {
    let result = solve(
        problem,
        &SolverConfig {
            seed,
            max_iterations: Some(iterations),
            time_limit: None,
            ..SolverConfig::default()
        },
    );
    let cost = check(problem, &result.solution, true).cost;
    (result.solution, cost)
}

fn main() {
    let limit = Wall::from_secs_f64(
        std::env::args()
            .nth(1)
            .map_or(10.0, |s| s.parse().expect("LIMIT_SECONDS is a number")),
    );
    println!("backend {MILP_BACKEND}, time limit {limit:?}");

    println!("\n## exact (random, capacity 30)\njobs seed   secs proven      cost heuristic  lp_bound lb_secs");
    for (jobs, seeds) in [(6, 3), (8, 3), (10, 3), (12, 3), (15, 3), (20, 2)] {
        for seed in 0..seeds {
            let problem = random_problem(1000 + seed, jobs, 30);
            let started = Instant::now();
            let exact = solve_exact(&problem, limit);
            let secs = started.elapsed().as_secs_f64();
            let started = Instant::now();
            let bound = lower_bound(&problem).map_or(-1, |c| c.get());
            let lb_secs = started.elapsed().as_secs_f64();
            let (_, h) = heuristic(&problem, 1, 200);
            match exact {
                Ok(e) => println!(
                    "{jobs:4} {seed:4} {secs:6.2} {:6} {:9} {:9} {bound:9} {lb_secs:7.3}",
                    e.proven_optimal, e.cost, h
                ),
                Err(e) => println!(
                    "{jobs:4} {seed:4} {secs:6.2} error: {e}; heuristic {h}, bound {bound}"
                ),
            }
        }
    }

    println!(
        "\n## lower bound only (random, capacity 30)\njobs  lp_bound heuristic    gap% lb_secs"
    );
    for jobs in [20, 50, 100] {
        let problem = random_problem(2000, jobs, 30);
        let started = Instant::now();
        let bound = lower_bound(&problem).map_or(-1, |c| c.get());
        let lb_secs = started.elapsed().as_secs_f64();
        let (_, h) = heuristic(&problem, 1, 1000);
        let gap = 100.0 * (h.get() - bound) as f64 / h.get() as f64;
        println!("{jobs:4} {bound:9} {h:9} {gap:7.1} {lb_secs:7.3}");
    }

    println!("\n## recombination (Solomon, pool = routes of 8 heuristic runs of 100..800 iterations)\ninstance pool incumbent  recombined  secs outcome");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/solomon/");
    let mut paths: Vec<String> = ["C101", "R101", "RC101", "R201"]
        .iter()
        .map(|name| format!("{dir}{name}.txt"))
        .collect();
    paths.extend(std::env::args().skip(2));
    for path in &paths {
        let name = std::path::Path::new(path)
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned());
        let instance = read_solomon(std::path::Path::new(path)).unwrap();
        let problem = &instance.problem;
        let mut pool: Vec<PoolRoute> = Vec::new();
        let mut best: Option<(Cost, Vec<usize>)> = None;
        for seed in 0..8 {
            let (solution, cost) = heuristic(problem, seed, 100 * (seed + 1));
            let first = pool.len();
            for route in solution.used_routes() {
                let one = Solution {
                    routes: vec![Route {
                        vehicle_type: route.vehicle_type,
                        jobs: route.jobs.clone(),
                    }],
                };
                pool.push(PoolRoute {
                    vehicle_type: route.vehicle_type,
                    jobs: route.jobs.clone(),
                    cost: check(problem, &one, false).cost,
                });
            }
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, (first..pool.len()).collect()));
            }
        }
        let (incumbent_cost, incumbent) = best.unwrap();
        let started = Instant::now();
        let result = recombine(problem, &pool, &incumbent, limit).unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name:8} {:5} {incumbent_cost:9} {:11} {secs:5.2} {:?}",
            pool.len(),
            result.cost,
            result.outcome
        );
    }
}
