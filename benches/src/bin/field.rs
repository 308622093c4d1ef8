//! Field-service benchmark: generated ISP days (technicians × jobs), solved within a
//! budget, against the naive dispatcher (each job, in booking order, to the nearest
//! technician who can still fit it). Both plans go through the independent plan
//! checker; a plan it rejects is reported as invalid, never as a result.
//!
//! `cargo run --release -p despacho-benches --bin field -- --cases 50x600:10,200x2000:60`
//!
//! Prints a Markdown table and writes it (with a CSV) to `benches/results/`.

use anyhow::{bail, Context, Result};
use clap::Parser;
use despacho_benches::output::write_results;
use despacho_solver::field::baseline::naive_dispatch;
use despacho_solver::field::check::check_plan;
use despacho_solver::field::compile::compile;
use despacho_solver::field::generate::{generate, City, GeneratorConfig};
use despacho_solver::field::plan::Plan;
use despacho_solver::field::reasons::fits_into_plan;
use despacho_solver::field::solve::build_plan;
use despacho_solver::{solve, SolverConfig};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Field-service benchmark against a naive dispatcher")]
struct Args {
    /// Cases as TECHNICIANSxJOBS:SECONDS, comma-separated.
    #[arg(long, default_value = "50x600:10,200x2000:60")]
    cases: String,
    /// Days per case.
    #[arg(long, default_value_t = 1)]
    days: usize,
    /// Generator and solver seeds (one run per seed), comma-separated.
    #[arg(long, default_value = "1")]
    seeds: String,
    #[arg(long, default_value = "sao-paulo")]
    city: City,
    /// Where to write results (default benches/results).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only; write no files.
    #[arg(long)]
    no_save: bool,
}

struct Case {
    technicians: usize,
    jobs: usize,
    seconds: f64,
}

fn parse_cases(text: &str) -> Result<Vec<Case>> {
    text.split(',')
        .map(|c| {
            let (size, secs) = c
                .split_once(':')
                .with_context(|| format!("case {c:?}: expected TxJ:SECONDS"))?;
            let (t, j) = size
                .split_once('x')
                .with_context(|| format!("case {c:?}: expected TxJ"))?;
            Ok(Case {
                technicians: t.trim().parse().context("technicians")?,
                jobs: j.trim().parse().context("jobs")?,
                seconds: secs.trim().parse().context("seconds")?,
            })
        })
        .collect()
}

/// What a row reports of one plan.
struct Side {
    valid: bool,
    assigned: usize,
    travel_hours: f64,
    travel_km: f64,
    overtime_min: f64,
    sla_misses: usize,
    cost: f64,
}

fn side(plan: &Plan, valid: bool) -> Side {
    Side {
        valid,
        assigned: plan.kpis.jobs_assigned,
        travel_hours: plan.kpis.travel_hours,
        travel_km: plan.kpis.travel_km,
        overtime_min: plan.kpis.overtime_minutes,
        sla_misses: plan.kpis.sla_misses,
        cost: plan.cost.total,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cases = parse_cases(&args.cases)?;
    let seeds: Vec<u64> = args
        .seeds
        .split(',')
        .map(|s| s.trim().parse().context("seed"))
        .collect::<Result<_>>()?;
    let mut table = String::new();
    writeln!(
        table,
        "| case | seed | budget s | compile s | solve s | iterations | valid (ours/naive) | assigned ours | assigned naive | avoidable unassigned (ours) | unassigned reasons (ours) | travel h ours | travel h naive | travel ratio | km ours | km naive | overtime min ours | overtime min naive | SLA misses ours/naive |"
    )?;
    writeln!(table, "|{}", "---|".repeat(19))?;
    let mut csv = String::from("technicians,jobs,days,seed,budget_s,compile_s,solve_s,iterations,valid,naive_valid,assigned,naive_assigned,avoidable,travel_h,naive_travel_h,km,naive_km,overtime_min,naive_overtime_min,sla_misses,naive_sla_misses,cost,naive_cost\n");
    for case in &cases {
        for &seed in &seeds {
            let input = generate(&GeneratorConfig {
                technicians: case.technicians,
                jobs: case.jobs,
                days: args.days,
                seed,
                city: args.city,
                start_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("valid date"),
            });
            let started = Instant::now();
            let compiled = compile(&input, &HashMap::new())
                .map_err(|e| anyhow::anyhow!("generated problem is invalid: {e}"))?;
            let compile_s = started.elapsed().as_secs_f64();

            let naive = naive_dispatch(&compiled);
            let naive_plan = build_plan(&input, &compiled, &naive);
            let naive_check =
                check_plan(&input, &naive_plan).map_err(|e| anyhow::anyhow!("checker: {e}"))?;

            let config = SolverConfig {
                seed,
                time_limit: Some(Duration::from_secs_f64((case.seconds - compile_s).max(0.5))),
                ..SolverConfig::default()
            };
            let started = Instant::now();
            let result = solve(&compiled.problem, &config);
            let plan = build_plan(&input, &compiled, &result.solution);
            let solve_s = started.elapsed().as_secs_f64() + compile_s;
            let check = check_plan(&input, &plan).map_err(|e| anyhow::anyhow!("checker: {e}"))?;
            if !check.is_feasible() {
                eprintln!(
                    "case {}x{} seed {seed}: the checker rejects our plan: {:?}",
                    case.technicians,
                    case.jobs,
                    check.violations.iter().take(3).collect::<Vec<_>>()
                );
            }
            let ours = side(&plan, check.is_feasible());
            // Unplanned jobs that would still fit the final plan as it stands.
            let avoidable = (0..input.jobs.len())
                .filter(|&j| {
                    !result.solution.used_routes().any(|r| r.jobs.contains(&j))
                        && fits_into_plan(&compiled, &result.solution, j)
                })
                .count();
            let base = side(&naive_plan, naive_check.is_feasible());
            let mut reasons: HashMap<String, usize> = HashMap::new();
            for u in &plan.unassigned {
                *reasons
                    .entry(
                        serde_json::to_value(u.reason)?
                            .as_str()
                            .unwrap_or("?")
                            .to_string(),
                    )
                    .or_default() += 1;
            }
            let mut reasons: Vec<_> = reasons.into_iter().collect();
            reasons.sort();
            let reasons = if reasons.is_empty() {
                "—".to_string()
            } else {
                reasons
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let ratio = if base.travel_hours > 0.0 {
                ours.travel_hours / base.travel_hours
            } else {
                f64::NAN
            };
            let row = format!(
                "| {}x{} | {seed} | {} | {compile_s:.2} | {solve_s:.2} | {} | {}/{} | {} | {} | {avoidable} | {reasons} | {:.1} | {:.1} | {ratio:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {}/{} |",
                case.technicians,
                case.jobs,
                case.seconds,
                result.iterations,
                yes(ours.valid),
                yes(base.valid),
                ours.assigned,
                base.assigned,
                ours.travel_hours,
                base.travel_hours,
                ours.travel_km,
                base.travel_km,
                ours.overtime_min,
                base.overtime_min,
                ours.sla_misses,
                base.sla_misses,
            );
            println!("{row}");
            writeln!(table, "{row}")?;
            writeln!(
                csv,
                "{},{},{},{seed},{},{compile_s:.3},{solve_s:.3},{},{},{},{},{},{avoidable},{},{},{},{},{},{},{},{},{},{}",
                case.technicians,
                case.jobs,
                args.days,
                case.seconds,
                result.iterations,
                ours.valid,
                base.valid,
                ours.assigned,
                base.assigned,
                ours.travel_hours,
                base.travel_hours,
                ours.travel_km,
                base.travel_km,
                ours.overtime_min,
                base.overtime_min,
                ours.sla_misses,
                base.sla_misses,
                ours.cost,
                base.cost,
            )?;
            if !ours.valid {
                bail!("our plan failed the independent check");
            }
        }
    }
    println!("\n{table}");
    if !args.no_save {
        let dir = args
            .out
            .unwrap_or_else(despacho_benches::default_results_dir);
        let now = chrono::Local::now();
        let header = format!(
            "# Field-service benchmark ({}, {} day(s), city {:?})\n\nOne thread per solve; `solve s` includes compiling the problem (travel matrices). Both plans passed through the independent plan checker (`valid`).\n\n",
            now.format("%Y-%m-%d %H:%M"),
            args.days,
            args.city
        );
        let (md_path, csv_path) = write_results(&dir, "field", &(header + &table), &csv)?;
        println!("wrote {} and {}", md_path.display(), csv_path.display());
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}
