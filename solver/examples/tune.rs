//! Quick tuning loop: `cargo run --release -p despacho-solver --example tune -- SECONDS SEED FILE...`
//! prints one line per instance with the checker's distance.
use despacho_solver::{check, read_solomon, solve, SolverConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args[1].parse().unwrap();
    let seed: u64 = args[2].parse().unwrap();
    for path in &args[3..] {
        let inst = read_solomon(std::path::Path::new(path)).unwrap();
        let config = SolverConfig {
            seed,
            time_limit: Some(std::time::Duration::from_secs_f64(seconds)),
            ..SolverConfig::default()
        };
        let result = solve(&inst.problem, &config);
        let report = check(&inst.problem, &result.solution, true);
        println!(
            "{} dist {:.1} veh {} iters {} feasible {} cost_agrees {} stats {:?}",
            inst.name,
            report.distance.get() as f64 / 10.0,
            report.vehicles,
            result.iterations,
            report.is_feasible(),
            report.cost == result.cost,
            result.stats
        );
    }
}
