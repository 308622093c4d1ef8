//! MILP backends compared on the same recombination models (issue 4, "Backends").
//!
//! ```text
//! # 1. pools from real searches (once; default build): the search with recombination
//! #    on, every recombine input shown to a hook, the last (largest) pool of each instance kept
//! cargo run --release -p despacho-benches --bin milp_backends -- pools
//! # 2. the same pools under each backend (appends to <dir>/times-<backend>.csv)
//! cargo run --release -p despacho-benches --bin milp_backends -- time
//! cargo run --release -p despacho-benches --bin milp_backends --features highs -- time
//! # 3. both backends side by side, as Markdown
//! cargo run --release -p despacho-benches --bin milp_backends -- table
//! ```
//!
//! Pools come from `solve` with `recombine_every` set and a `SolverConfig::on_recombine`
//! hook that keeps the last pool it is shown: the route pool lives inside the search
//! and is out of reach otherwise. Pool files are data, not results: they go to
//! `<workspace>/target/milp-backends/` by default.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use despacho_benches::names::{self, InstanceFile};
use despacho_solver::{
    check, read_solomon, recombine, solve, Cost, PoolRoute, Problem, RecombinationOutcome,
    RecombineHook, SolverConfig, MILP_BACKEND,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "milp_backends")]
struct Args {
    /// Folder for pool files and timings [default: <workspace>/target/milp-backends]
    #[arg(long, value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the search with recombination on each instance and keeps its last pool.
    Pools {
        /// Gehring–Homberger instances (file stems; `_2_` = 200 customers, `_10_` = 1000).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "c1_2_1,r1_2_1,rc2_2_1,r2_2_1,r1_10_1,c2_10_1"
        )]
        instances: Vec<String>,
        /// Search time for 200-customer instances, seconds.
        #[arg(long, default_value_t = 30.0)]
        seconds_200: f64,
        /// Search time for 1000-customer instances, seconds.
        #[arg(long, default_value_t = 60.0)]
        seconds_1000: f64,
        #[arg(long, default_value_t = 5000)]
        recombine_every: u64,
        /// Seeds of the searches: the first one's last pool is `<instance>.pool` (what
        /// the search itself recombines); with more, the union of every seed's last
        /// pool is `<instance>-union<N>.pool` (a larger, more diverse pool), its
        /// incumbent the best seed's.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
        seeds: Vec<u64>,
        /// Benchmark data folder [default: <workspace>/../shared/benchmarks]
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
    /// Solves every saved pool with the backend compiled in; appends to times-<backend>.csv.
    Time {
        /// Time limit per model, seconds.
        #[arg(long, default_value_t = 10.0)]
        limit: f64,
        /// Runs per pool (the median is kept); a run that reaches the limit is not repeated.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
    /// Prints the Markdown table of the timings of both backends.
    Table,
}

fn main() {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/milp-backends")
    });
    let result = match &args.command {
        Command::Pools {
            instances,
            seconds_200,
            seconds_1000,
            recombine_every,
            seeds,
            data,
        } => build_pools(
            &dir,
            data.as_deref(),
            instances,
            (*seconds_200, *seconds_1000),
            *recombine_every,
            seeds,
        ),
        Command::Time {
            limit,
            repeat,
            data,
        } => time_pools(&dir, data.as_deref(), *limit, (*repeat).max(1)),
        Command::Table => print_table(&dir),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn find_instance(data: Option<&Path>, name: &str) -> Result<InstanceFile> {
    let data = data.map_or_else(despacho_benches::default_data_dir, Path::to_path_buf);
    let size = if name.contains("_10_") { "1000" } else { "200" };
    let all = names::list_instances(&data.join("homberger").join(size))?;
    let found = names::select_by_name(&all, &[name.to_string()])?;
    found
        .into_iter()
        .next()
        .with_context(|| format!("instance {name} not found"))
}

fn load_problem(data: Option<&Path>, name: &str) -> Result<Problem> {
    let file = find_instance(data, name)?;
    let instance =
        read_solomon(&file.path).with_context(|| format!("cannot read {}", file.path.display()))?;
    Ok(instance.problem)
}

/// A pool shown to the recombination hook: the incumbent (indices) and the routes.
struct SavedPool {
    jobs: usize,
    incumbent: Vec<usize>,
    routes: Vec<PoolRoute>,
}

fn parse_pool(text: &str) -> Result<SavedPool> {
    let mut lines = text.lines();
    ensure!(
        lines.next() == Some("# despacho recombination pool v1"),
        "not a recombination pool file (v1)"
    );
    let jobs = lines
        .next()
        .and_then(|l| l.strip_prefix("jobs "))
        .context("missing `jobs` line")?
        .parse()?;
    let incumbent = lines
        .next()
        .and_then(|l| l.strip_prefix("incumbent"))
        .context("missing `incumbent` line")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<usize>, _>>()?;
    let mut routes = Vec::new();
    for line in lines {
        let numbers = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<i64>, _>>()?;
        ensure!(numbers.len() >= 2, "route line too short: {line:?}");
        routes.push(PoolRoute {
            vehicle_type: usize::try_from(numbers[0])?,
            cost: Cost(numbers[1]),
            jobs: numbers[2..]
                .iter()
                .map(|&j| usize::try_from(j))
                .collect::<Result<_, _>>()?,
        });
    }
    Ok(SavedPool {
        jobs,
        incumbent,
        routes,
    })
}

fn pool_text(pool: &SavedPool) -> String {
    let mut text = format!(
        "# despacho recombination pool v1\njobs {}\nincumbent",
        pool.jobs
    );
    for r in &pool.incumbent {
        let _ = write!(text, " {r}");
    }
    text.push('\n');
    for route in &pool.routes {
        let _ = write!(text, "{} {}", route.vehicle_type, route.cost.get());
        for j in &route.jobs {
            let _ = write!(text, " {j}");
        }
        text.push('\n');
    }
    text
}

/// Runs the search with recombination and the hook on; returns the last pool.
fn search_pool(
    name: &str,
    problem: &Problem,
    config: &SolverConfig,
) -> Result<(SavedPool, String)> {
    // The last pool shown and how many recombinations the search made.
    let seen: Arc<Mutex<(Option<SavedPool>, usize)>> = Arc::default();
    let keep = Arc::clone(&seen);
    let jobs = problem.jobs().len();
    let config = SolverConfig {
        on_recombine: Some(RecombineHook::new(move |routes, incumbent| {
            let mut seen = keep.lock().expect("no panic while holding it");
            seen.0 = Some(SavedPool {
                jobs,
                incumbent: incumbent.to_vec(),
                routes: routes.to_vec(),
            });
            seen.1 += 1;
        })),
        ..config.clone()
    };
    let result = solve(problem, &config);
    let (pool, calls) = std::mem::take(&mut *seen.lock().expect("the search is over"));
    let pool = pool.with_context(|| format!("{name}: the search made no recombination call"))?;
    let summary = format!(
        "{:11} {:9} {:6}",
        result.iterations,
        result.cost.get(),
        calls
    );
    Ok((pool, summary))
}

fn build_pools(
    dir: &Path,
    data: Option<&Path>,
    instances: &[String],
    (seconds_200, seconds_1000): (f64, f64),
    recombine_every: u64,
    seeds: &[u64],
) -> Result<()> {
    ensure!(!seeds.is_empty(), "give at least one seed");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    println!(
        "pools: search with recombination every {recombine_every} iterations, \
         backend {MILP_BACKEND} during the search"
    );
    println!("instance  seed seconds  iterations      cost  calls  pool routes");
    for name in instances {
        let problem = load_problem(data, name)?;
        let seconds = if name.contains("_10_") {
            seconds_1000
        } else {
            seconds_200
        };
        let mut union = SavedPool {
            jobs: problem.jobs().len(),
            incumbent: Vec::new(),
            routes: Vec::new(),
        };
        let mut index: BTreeMap<(usize, Vec<usize>), usize> = BTreeMap::new();
        let mut best_incumbent: Option<i64> = None;
        for &seed in seeds {
            let config = SolverConfig {
                seed,
                time_limit: Some(Duration::from_secs_f64(seconds)),
                recombine_every: Some(recombine_every),
                ..SolverConfig::default()
            };
            let (pool, summary) = search_pool(name, &problem, &config)?;
            println!(
                "{name:9} {seed:4} {seconds:7} {summary} {:12}",
                pool.routes.len()
            );
            if seed == seeds[0] {
                std::fs::write(dir.join(format!("{name}.pool")), pool_text(&pool))?;
            }
            let mut map = Vec::with_capacity(pool.routes.len());
            for route in &pool.routes {
                let key = (route.vehicle_type, route.jobs.clone());
                let k = *index.entry(key).or_insert_with(|| {
                    union.routes.push(route.clone());
                    union.routes.len() - 1
                });
                map.push(k);
            }
            let cost: i64 = pool
                .incumbent
                .iter()
                .map(|&r| pool.routes[r].cost.get())
                .sum();
            if best_incumbent.is_none_or(|c| cost < c) {
                best_incumbent = Some(cost);
                union.incumbent = pool.incumbent.iter().map(|&r| map[r]).collect();
            }
        }
        if seeds.len() > 1 {
            std::fs::write(
                dir.join(format!("{name}-union{}.pool", seeds.len())),
                pool_text(&union),
            )?;
            println!(
                "{name:9} union of {} seeds: {} routes",
                seeds.len(),
                union.routes.len()
            );
        }
    }
    Ok(())
}

/// One timed recombination, as a CSV line.
struct Timing {
    instance: String,
    backend: String,
    jobs: usize,
    routes: usize,
    incumbent: i64,
    cost: i64,
    outcome: String,
    seconds: f64,
    limit: f64,
}

const CSV_HEADER: &str = "instance,backend,jobs,routes,incumbent,cost,outcome,seconds,limit";

impl Timing {
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{:.3},{}",
            self.instance,
            self.backend,
            self.jobs,
            self.routes,
            self.incumbent,
            self.cost,
            self.outcome,
            self.seconds,
            self.limit
        )
    }

    fn parse(line: &str) -> Result<Self> {
        let f: Vec<&str> = line.split(',').collect();
        ensure!(f.len() == 9, "bad timing line {line:?}");
        Ok(Self {
            instance: f[0].to_string(),
            backend: f[1].to_string(),
            jobs: f[2].parse()?,
            routes: f[3].parse()?,
            incumbent: f[4].parse()?,
            cost: f[5].parse()?,
            outcome: f[6].to_string(),
            seconds: f[7].parse()?,
            limit: f[8].parse()?,
        })
    }
}

fn saved_pools(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut pools: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {} (run `pools` first)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pool"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.clone())))
        .collect();
    pools.sort_by(|a, b| size_then_name(&a.0, &b.0));
    if pools.is_empty() {
        bail!("no *.pool files in {} (run `pools` first)", dir.display());
    }
    Ok(pools)
}

/// 200-customer instances first, then by name.
fn size_then_name(a: &str, b: &str) -> std::cmp::Ordering {
    (a.contains("_10_"), a).cmp(&(b.contains("_10_"), b))
}

fn time_pools(dir: &Path, data: Option<&Path>, limit: f64, repeat: usize) -> Result<()> {
    let csv_path = dir.join(format!("times-{MILP_BACKEND}.csv"));
    let mut csv = if csv_path.exists() {
        std::fs::read_to_string(&csv_path)?
    } else {
        format!("{CSV_HEADER}\n")
    };
    println!("backend {MILP_BACKEND}, limit {limit} s, median of up to {repeat} runs");
    println!("instance   jobs  routes  incumbent       cost  outcome         seconds");
    for (name, path) in saved_pools(dir)? {
        // `<instance>.pool` or `<instance>-union<N>.pool`
        let instance = name.split('-').next().unwrap_or(&name);
        let problem = load_problem(data, instance)?;
        let pool = parse_pool(&std::fs::read_to_string(&path)?)?;
        ensure!(
            pool.jobs == problem.jobs().len(),
            "{name}: pool for another instance"
        );
        let incumbent: i64 = pool
            .incumbent
            .iter()
            .map(|&r| pool.routes[r].cost.get())
            .sum();
        let mut runs = Vec::new();
        for _ in 0..repeat {
            let started = Instant::now();
            let result = recombine(
                &problem,
                &pool.routes,
                &pool.incumbent,
                Duration::from_secs_f64(limit),
            )?;
            let seconds = started.elapsed().as_secs_f64();
            // The independent checker must agree with the pool costs.
            let report = check(&problem, &result.solution(&pool.routes), true);
            ensure!(
                report.is_feasible() && report.cost == result.cost,
                "{name}: the recombined plan does not check (cost {} vs {})",
                report.cost,
                result.cost
            );
            let outcome = match &result.outcome {
                RecombinationOutcome::Optimal => "optimal".to_string(),
                RecombinationOutcome::StoppedAtTimeLimit => "time-limit".to_string(),
                RecombinationOutcome::KeptIncumbent { reason } => {
                    eprintln!("{name}: kept the incumbent: {reason}");
                    "kept-incumbent".to_string()
                }
                other => format!("{other:?}").replace(',', ";"),
            };
            let stopped = outcome != "optimal";
            runs.push((seconds, result.cost.get(), outcome));
            if stopped && seconds >= limit * 0.9 {
                break;
            }
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (seconds, cost, outcome) = runs[runs.len() / 2].clone();
        let timing = Timing {
            instance: name.clone(),
            backend: MILP_BACKEND.to_string(),
            jobs: pool.jobs,
            routes: pool.routes.len(),
            incumbent,
            cost,
            outcome,
            seconds,
            limit,
        };
        println!(
            "{name:9} {:5} {:7} {incumbent:10} {cost:10}  {:14} {seconds:8.3}",
            timing.jobs, timing.routes, timing.outcome
        );
        csv.push_str(&timing.csv());
        csv.push('\n');
        std::fs::write(&csv_path, &csv)?;
    }
    println!("appended to {}", csv_path.display());
    Ok(())
}

fn read_timings(dir: &Path) -> Result<Vec<Timing>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_times = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("times-") && n.ends_with(".csv"));
        if !is_times {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines().skip(1) {
            if !line.trim().is_empty() {
                all.push(Timing::parse(line)?);
            }
        }
    }
    Ok(all)
}

/// `<instance>.pool` is one search's pool, `<instance>-union<N>.pool` the union of N.
fn describe_pool(stem: &str) -> (&str, String) {
    match stem.split_once('-') {
        Some((instance, kind)) => match kind.strip_prefix("union") {
            Some(n) => (instance, format!("union of {n} searches")),
            None => (instance, kind.to_string()),
        },
        None => (stem, "one search".to_string()),
    }
}

fn print_table(dir: &Path) -> Result<()> {
    let timings = read_timings(dir)?;
    ensure!(
        !timings.is_empty(),
        "no times-*.csv in {} (run `time` first)",
        dir.display()
    );
    // Latest timing per (pool, backend).
    let mut latest: BTreeMap<(String, String), &Timing> = BTreeMap::new();
    for t in &timings {
        latest.insert((t.instance.clone(), t.backend.clone()), t);
    }
    let mut backends: Vec<String> = latest.keys().map(|(_, b)| b.clone()).collect();
    // The default backend first.
    backends.sort_by_key(|b| (b != "microlp", b.clone()));
    backends.dedup();
    let mut pools: Vec<String> = latest.keys().map(|(i, _)| i.clone()).collect();
    pools.sort_by(|a, b| size_then_name(a, b));
    pools.dedup();

    let mut out = String::from("| instance | pool | routes | incumbent | best cover |");
    for b in &backends {
        let _ = write!(out, " {b}: seconds | {b}: cost | {b}: outcome |");
    }
    out.push_str("\n|---|---|---:|---:|---:|");
    for _ in &backends {
        out.push_str("---:|---:|:---|");
    }
    out.push('\n');
    for stem in &pools {
        let rows: Vec<&Timing> = backends
            .iter()
            .filter_map(|b| latest.get(&(stem.clone(), b.clone())).copied())
            .collect();
        let Some(first) = rows.first() else { continue };
        let best = rows.iter().map(|t| t.cost).min().unwrap_or(first.cost);
        let proven = rows.iter().any(|t| t.outcome == "optimal");
        let (instance, kind) = describe_pool(stem);
        let _ = write!(
            out,
            "| {instance} | {kind} | {} | {} | {best}{} |",
            first.routes,
            first.incumbent,
            if proven { "" } else { " (no proof)" }
        );
        for b in &backends {
            match latest.get(&(stem.clone(), b.clone())) {
                Some(t) => {
                    let seconds = if t.outcome == "optimal" {
                        format!("{:.3}", t.seconds)
                    } else {
                        format!("{:.1} (limit)", t.seconds)
                    };
                    // Gap at the stop: above the best cover either backend found
                    // (the proven optimum when one of them proved it).
                    let cost = if t.cost == best {
                        format!("{}", t.cost)
                    } else {
                        let gap = 100.0 * (t.cost - best) as f64 / best as f64;
                        format!("{} (+{gap:.2} %)", t.cost)
                    };
                    let _ = write!(out, " {seconds} | {cost} | {} |", t.outcome);
                }
                None => out.push_str(" – | – | – |"),
            }
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
