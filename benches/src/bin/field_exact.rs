//! The search against the proven optimum on tiny field-service problems (issue 4;
//! docs/milp.md, "Field-service problems"): each problem is solved exactly by the MILP
//! and by the search at each iteration budget; every plan goes through the field plan
//! checker, and a search cost below a proven optimum stops the run as a bug.
//!
//! `cargo run --release -p despacho-benches --bin field_exact -- --problems 1000 --iterations 300,3000`
//!
//! Prints a Markdown table and writes it (with a CSV) to `benches/results/`.

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use despacho_benches::output::write_results;
use despacho_solver::bench_support::field_exact::compare_with_search;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "Search against the proven optimum on tiny field-service problems")]
struct Args {
    /// How many random problems (2–3 technicians, 4–8 jobs each).
    #[arg(long, default_value_t = 1000)]
    problems: u64,
    /// The first problem's seed; the CI property test uses seeds 0–99.
    #[arg(long, default_value_t = 1000)]
    first_seed: u64,
    /// Search iteration budgets, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "300,3000")]
    iterations: Vec<u64>,
    /// Where to write results (default benches/results).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only; write no files.
    #[arg(long)]
    no_save: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.problems > 0, "--problems must be at least 1");
    anyhow::ensure!(!args.iterations.is_empty(), "--iterations needs a budget");
    let seeds = args.first_seed..args.first_seed + args.problems;
    let mut table = String::from(
        "| iterations | problems | at the optimum | match rate | misses | worst excess | mean excess of misses | exact s (total) | search s (total) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut csv = String::from(
        "iterations,problems,matched,match_rate,worst_excess,mean_excess_of_misses,exact_seconds,search_seconds\n",
    );
    let mut misses = String::new();
    for &iterations in &args.iterations {
        eprintln!("{} problems at {iterations} iterations…", args.problems);
        let c = compare_with_search(seeds.clone(), iterations).map_err(|e| anyhow!(e))?;
        let mean_miss = if c.gaps.is_empty() {
            0.0
        } else {
            c.gaps.iter().map(|g| g.1).sum::<f64>() / c.gaps.len() as f64
        };
        writeln!(
            table,
            "| {iterations} | {} | {} | {:.1} % | {} | {:.2} % | {:.2} % | {:.1} | {:.1} |",
            c.cases,
            c.matched,
            100.0 * c.match_rate(),
            c.gaps.len(),
            100.0 * c.worst_gap(),
            100.0 * mean_miss,
            c.exact_seconds,
            c.search_seconds
        )?;
        writeln!(
            csv,
            "{iterations},{},{},{:.4},{:.6},{:.6},{:.3},{:.3}",
            c.cases,
            c.matched,
            c.match_rate(),
            c.worst_gap(),
            mean_miss,
            c.exact_seconds,
            c.search_seconds
        )?;
        let listed: Vec<String> = c
            .gaps
            .iter()
            .map(|(seed, gap)| format!("{seed} (+{:.2} %)", 100.0 * gap))
            .collect();
        writeln!(misses, "- {iterations} iterations: {}", listed.join(", "))?;
    }
    println!("\n{table}\nMisses (seed, excess over the optimum):\n{misses}");
    if !args.no_save {
        let dir = args
            .out
            .unwrap_or_else(despacho_benches::default_results_dir);
        let now = chrono::Local::now();
        let header = format!(
            "# Search against the proven optimum, tiny field-service problems ({})\n\n\
             Seeds {}–{} of `despacho_solver::bench_support::field_exact::random_problem` \
             (2–3 technicians with own skills, shifts, homes, rates and overtime; 4–8 jobs \
             with one window, skills, durations by level, priorities, preferences). Each is \
             solved exactly (MILP, proven optimal, checked by the field plan checker at the \
             same cost) and by the search with the seed as its seed and the iteration budget \
             below (no time limit; one thread). The search was never below the optimum (the \
             run stops if it is). Excesses of hundreds or thousands of per cent are a job the \
             search left unplanned (half the problems price that at 100 000 per priority \
             unit) that the optimum plans. `exact s` / `search s`: total wall time of all \
             problems.\n\n",
            now.format("%Y-%m-%d %H:%M"),
            seeds.start,
            seeds.end - 1
        );
        let markdown = header + &table + "\nMisses (seed, excess over the optimum):\n\n" + &misses;
        let (md_path, csv_path) =
            write_results(&dir, "field-exact", &markdown, &csv).context("writing the results")?;
        println!("wrote {} and {}", md_path.display(), csv_path.display());
    }
    Ok(())
}
