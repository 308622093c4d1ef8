//! Quick tuning loop: `cargo run --release -p despacho-solver --example tune -- SECONDS SEED FILE...`
//! prints one line per instance with the checker's distance.
use despacho_solver::{check, read_solomon, solve, SolverConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args[1].parse().unwrap();
    let seed: u64 = args[2].parse().unwrap();
    let bks_text = std::fs::read_to_string("../shared/benchmarks/bks.csv").unwrap();
    let bks = |name: &str| -> f64 {
        bks_text
            .lines()
            .find(|l| {
                l.starts_with(&format!("{},", name.to_uppercase())) && l.contains("dimacs2021")
            })
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .unwrap_or(f64::NAN)
    };
    let mut gaps = Vec::new();
    for path in &args[3..] {
        let inst = read_solomon(std::path::Path::new(path)).unwrap();
        let config = SolverConfig {
            seed,
            time_limit: Some(std::time::Duration::from_secs_f64(seconds)),
            ..SolverConfig::default()
        };
        let mut config = config;
        if let Ok(v) = std::env::var("T0") {
            config.start_temperature = v.parse().unwrap();
        }
        if let Ok(v) = std::env::var("RECOMBINE") {
            config.recombine_every = Some(v.parse().unwrap());
        }
        if let Ok(v) = std::env::var("TF") {
            config.end_temperature = v.parse().unwrap();
        }
        let result = solve(&inst.problem, &config);
        let report = check(&inst.problem, &result.solution, true);
        let d = report.distance.get() as f64 / 10.0;
        let gap = 100.0 * (d - bks(&inst.name)) / bks(&inst.name);
        gaps.push(gap);
        println!(
            "{} gap {:.2} dist {:.1} veh {} iters {} feasible {} cost_agrees {} stats {:?}",
            inst.name,
            gap,
            d,
            report.vehicles,
            result.iterations,
            report.is_feasible(),
            report.cost == result.cost,
            result.stats
        );
    }
    println!(
        "MEAN GAP {:.3}",
        gaps.iter().sum::<f64>() / gaps.len() as f64
    );
}
