//! VRPTW literature benchmark: solves Solomon or Gehring & Homberger instances,
//! validates every result with the independent checker, and compares the distance
//! with the best-known solutions of the DIMACS 2021 convention.
//!
//! ```text
//! cargo run --release -p despacho-benches --bin vrptw -- \
//!     --set solomon|homberger-200|homberger-1000 --seconds S [--instances R101,C201,...] \
//!     [--seed N] [--iterations N] [--recombine-every N] [--first-per-class] [--parallel P] [--data DIR] [--out DIR]
//! ```
//!
//! Prints one table row per instance as it finishes, then a per-class summary, and
//! writes `vrptw-{set}-{S}s-{date}-{host}.csv` and `.md` to `--out`.

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use despacho_benches::bks::{BksTable, DIMACS2021};
use despacho_benches::names::{self, InstanceFile};
use despacho_benches::output::{free_result_paths, hostname, seconds_label};
use despacho_benches::report::{self, RunRow, Status};
use despacho_solver::{check, read_solomon, solve, SolverConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Instance set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Set {
    /// Solomon, 100 customers (56 instances)
    Solomon,
    /// Gehring & Homberger, 200 customers (60 instances)
    #[value(name = "homberger-200")]
    Homberger200,
    /// Gehring & Homberger, 1000 customers (60 instances)
    #[value(name = "homberger-1000")]
    Homberger1000,
}

impl Set {
    fn name(self) -> &'static str {
        match self {
            Set::Solomon => "solomon",
            Set::Homberger200 => "homberger-200",
            Set::Homberger1000 => "homberger-1000",
        }
    }

    fn folder(self) -> &'static str {
        match self {
            Set::Solomon => "solomon",
            Set::Homberger200 => "homberger/200",
            Set::Homberger1000 => "homberger/1000",
        }
    }
}

/// Solves VRPTW benchmark instances and compares them with the best-known solutions
/// (DIMACS 2021 convention).
#[derive(Parser, Debug)]
#[command(name = "vrptw", version)]
struct Args {
    /// Instance set to run.
    #[arg(long, value_enum)]
    set: Set,
    /// Wall-clock time limit per instance, in seconds (may be fractional).
    #[arg(long, value_name = "S", value_parser = parse_seconds, allow_negative_numbers = true)]
    seconds: f64,
    /// Only these instances (comma-separated file stems, any case), e.g. R101,C201.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    instances: Vec<String>,
    /// Seed of every solve.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also stop each solve after this many iterations.
    #[arg(long, value_name = "N")]
    iterations: Option<u64>,
    /// Only the first instance (in natural order) of each class.
    #[arg(long)]
    first_per_class: bool,
    /// Recombine the route pool with the set-partitioning MILP every N iterations
    /// (and at the end); off by default, for the recombination ablation.
    #[arg(long, value_name = "N")]
    recombine_every: Option<u64>,
    /// Instances solved at once, each in its own thread (each solve is single-threaded).
    #[arg(long, value_name = "P", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    parallel: u32,
    /// Benchmark data folder (with bks.csv, solomon/, homberger/)
    /// [default: <workspace>/../shared/benchmarks]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Folder for the result files [default: <workspace>/benches/results]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e7 {
        return Err(format!(
            "{s:?}: the time limit must be positive (and at most 1e7)"
        ));
    }
    Ok(v)
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let data = args
        .data
        .clone()
        .unwrap_or_else(despacho_benches::default_data_dir);
    if !data.is_dir() {
        bail!(
            "benchmark data folder {} not found (pass --data DIR; it holds bks.csv, solomon/, homberger/)",
            data.display()
        );
    }
    let set_dir = data.join(args.set.folder());
    let all = names::list_instances(&set_dir)?;
    if all.is_empty() {
        bail!("no *.txt instance files in {}", set_dir.display());
    }
    let wanted: Vec<String> = args
        .instances
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut instances = if wanted.is_empty() {
        all
    } else {
        names::select_by_name(&all, &wanted)?
    };
    if args.first_per_class {
        instances = names::first_per_class(&instances);
    }

    let bks_path = data.join("bks.csv");
    let bks = BksTable::load(&bks_path, DIMACS2021)?;
    if bks.is_empty() {
        bail!(
            "{} has no rows of convention {DIMACS2021}",
            bks_path.display()
        );
    }
    let missing: Vec<&str> = instances
        .iter()
        .filter(|f| bks.get(&f.name).is_none())
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "warning: no {DIMACS2021} BKS for {} (no gap shown)",
            missing.join(", ")
        );
    }

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let parallel = (args.parallel as usize).min(instances.len());
    let budget = match args.iterations {
        Some(n) => format!("{} s or {n} iterations", seconds_label(args.seconds)),
        None => format!("{} s", seconds_label(args.seconds)),
    };
    println!(
        "vrptw: set {}, {} instance(s), {budget} each, seed {}, {} at once ({cores} cores)",
        args.set.name(),
        instances.len(),
        args.seed,
        args.parallel
    );
    println!("data: {}", data.display());
    println!(
        "note: each solve is single-threaded; measure one-thread targets with --parallel 1 \
         (or P <= cores = {cores}), since parallel solves share memory bandwidth and caches"
    );
    if args.parallel as usize > cores {
        eprintln!(
            "warning: --parallel {} exceeds the {cores} cores: solves get less than a core each",
            args.parallel
        );
    }
    println!();
    println!("{}", report::table_header());

    let config = solver_config(args);
    let rows = solve_all(&instances, &bks, &config, parallel)?;

    let summary = report::summarize(&rows);
    let summary_md = report::summary_markdown(&summary);
    println!();
    print!("{summary_md}");

    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(despacho_benches::default_results_dir);
    let (csv_path, md_path) = write_results(args, &rows, &summary_md, &out_dir, cores)?;
    println!(
        "\nwrote {}\n  and {}",
        csv_path.display(),
        md_path.display()
    );
    Ok(())
}

#[allow(clippy::needless_update)] // The search's config gains tuning fields; keep their defaults.
fn solver_config(args: &Args) -> SolverConfig {
    SolverConfig {
        seed: args.seed,
        max_iterations: args.iterations,
        time_limit: Some(Duration::from_secs_f64(args.seconds)),
        recombine_every: args.recombine_every,
        ..SolverConfig::default()
    }
}

/// Solves `instances` with `parallel` worker threads, printing each row as it
/// finishes; returns the rows in natural order. A file that cannot be read stops the
/// run with an error.
fn solve_all(
    instances: &[InstanceFile],
    bks: &BksTable,
    config: &SolverConfig,
    parallel: usize,
) -> Result<Vec<RunRow>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Result<RunRow>>();
    let mut rows = Vec::with_capacity(instances.len());
    let mut first_error = None;

    std::thread::scope(|scope| -> Result<()> {
        for w in 0..parallel.max(1) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            std::thread::Builder::new()
                .name(format!("solve-{w}"))
                .stack_size(64 << 20)
                .spawn_scoped(scope, move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = instances.get(i) else { break };
                        let result = solve_one(file, bks, config);
                        if result.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        if tx.send(result).is_err() {
                            break;
                        }
                    }
                })
                .context("cannot start a solver thread")?;
        }
        drop(tx);
        let stdout = std::io::stdout();
        for result in rx {
            match result {
                Ok(row) => {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{}", report::table_row(&row));
                    let _ = out.flush();
                    rows.push(row);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Ok(())
    })?;

    if let Some(e) = first_error {
        return Err(e);
    }
    rows.sort_by(|a, b| names::natural_cmp(&a.instance, &b.instance));
    Ok(rows)
}

/// Reads, solves and checks one instance.
fn solve_one(file: &InstanceFile, bks: &BksTable, config: &SolverConfig) -> Result<RunRow> {
    let instance = read_solomon(&file.path)
        .with_context(|| format!("cannot read instance {}", file.path.display()))?;
    let mut row = RunRow {
        instance: file.name.clone(),
        class: file.class(),
        vehicles: None,
        distance: None,
        bks: bks.get(&file.name).map(|b| b.distance),
        seconds: 0.0,
        iterations: None,
        status: Status::Panicked,
        seed: config.seed,
    };

    let started = Instant::now();
    let solved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        solve(&instance.problem, config)
    }));
    row.seconds = started.elapsed().as_secs_f64();
    let result = match solved {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            eprintln!("{}: the solver panicked: {message}", file.name);
            return Ok(row);
        }
    };

    let report = check(&instance.problem, &result.solution, true);
    row.vehicles = Some(report.vehicles);
    row.distance = Some(report.distance.get() as f64 / despacho_solver::SOLOMON_SCALE as f64);
    row.iterations = Some(result.iterations);
    row.status = if report.is_feasible() {
        Status::Valid
    } else {
        let shown: Vec<String> = report
            .violations
            .iter()
            .take(3)
            .map(|v| v.to_string())
            .collect();
        eprintln!(
            "{}: INVALID, {} violation(s): {}{}",
            file.name,
            report.violations.len(),
            shown.join("; "),
            if report.violations.len() > 3 {
                "; …"
            } else {
                ""
            }
        );
        Status::Invalid {
            violations: report.violations.len(),
        }
    };
    Ok(row)
}

/// Writes the CSV and the Markdown summary; returns their paths.
fn write_results(
    args: &Args,
    rows: &[RunRow],
    summary_md: &str,
    out_dir: &Path,
    cores: usize,
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create the results folder {}", out_dir.display()))?;
    let now = chrono::Local::now();
    let host = hostname();
    let stem = format!(
        "vrptw-{}-{}s-{}-{host}",
        args.set.name(),
        seconds_label(args.seconds),
        now.format("%Y-%m-%d")
    );
    let (csv_path, md_path) = free_result_paths(out_dir, &stem, &now.format("%H%M").to_string());

    let mut csv = Vec::new();
    report::write_csv(rows, &mut csv)?;
    std::fs::write(&csv_path, csv)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;

    let mut md = format!(
        "# VRPTW benchmark: {}, {} s per instance\n\n",
        args.set.name(),
        seconds_label(args.seconds)
    );
    md.push_str(&format!(
        "- date: {}\n- host: {host} ({cores} cores)\n- solver commit: {}\n- seed: {}\n- iterations limit: {}\n\
         - recombination: {}\n- parallel solves: {}\n- instances: {}{}\n- reference: BKS, convention {DIMACS2021}; \
         every result checked with `check(problem, solution, require_all = true)`\n- rows: `{}`\n\n",
        now.format("%Y-%m-%d %H:%M %z"),
        git_commit().unwrap_or_else(|| "unknown".to_string()),
        args.seed,
        args.iterations.map_or_else(|| "none".to_string(), |n| n.to_string()),
        args.recombine_every.map_or_else(|| "off".to_string(), |n| format!("every {n} iterations")),
        args.parallel,
        rows.len(),
        if args.first_per_class { " (first per class)" } else { "" },
        csv_path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
    ));
    md.push_str(summary_md);
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    Ok((csv_path, md_path))
}

/// The workspace's `git` commit (short), with `-dirty` if tracked files changed.
fn git_commit() -> Option<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&workspace)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).filter(|c| !c.is_empty())?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}
