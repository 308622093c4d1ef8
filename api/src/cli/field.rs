//! Field-service commands: `solve --problem`, `check`, `fixtures generate`, `schema`.
//!
//! A plan is printed only after the independent plan checker accepted it; a problem
//! with mistakes is refused with every mistake listed (JSON path, code, message).

use clap::{Args, Subcommand, ValueEnum};
use despacho_solver::field::check::{check_plan, PlanCheck};
use despacho_solver::field::generate::{generate, City, GeneratorConfig};
use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::plan::Plan;
use despacho_solver::field::solve::solve_field;
use despacho_solver::field::validate::ValidationErrors;
use despacho_solver::{field_lower_bound, SolverConfig, MAX_EXACT_FIELD_JOBS};
use std::path::{Path, PathBuf};

/// Why a field command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid {what}: {source}", path.display())]
    Json {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} has {} problem(s):\n{errors}", path.display(), errors.0.len())]
    Invalid {
        path: PathBuf,
        errors: ValidationErrors,
    },
    #[error("the plan checker cannot read the problem: {0}")]
    Checker(String),
    #[error("the solver's plan failed the independent check ({} violations): {}", check.violations.len(), first_violations(check))]
    PlanRejected { check: Box<PlanCheck> },
    #[error("the plan breaks {0} rule(s) (listed in the report on stdout)")]
    Violations(usize),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn first_violations(check: &PlanCheck) -> String {
    check
        .violations
        .iter()
        .take(5)
        .map(|v| format!("{} [{}] {}", v.path, v.code, v.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, FieldError> {
    let text = std::fs::read_to_string(path).map_err(|source| FieldError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| FieldError::Json {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// The largest jobs² × technician-days for which `solve --problem` prints a bound.
const MAX_BOUND_ARCS: usize = 12 * 12 * 50;

/// What `despacho solve --problem` found.
#[derive(Debug)]
pub struct SolvedProblem {
    /// The plan, accepted by the independent checker.
    pub plan: Plan,
    /// For tiny problems (`solver::field_lower_bound`, up to `MAX_EXACT_FIELD_JOBS`
    /// jobs and [`MAX_BOUND_ARCS`]): no plan costs less than this, currency units.
    pub lower_bound: Option<f64>,
}

/// `despacho solve --problem p.json`: the checked plan.
pub fn solve_problem(
    problem: &Path,
    previous: Option<&Path>,
    config: &SolverConfig,
) -> Result<SolvedProblem, FieldError> {
    let input: ProblemInput = read_json(problem, "problem (see `despacho schema problem`)")?;
    let previous: Option<Plan> = previous
        .map(|p| read_json(p, "plan (see `despacho schema plan`)"))
        .transpose()?;
    let solved =
        solve_field(&input, previous.as_ref(), config).map_err(|errors| FieldError::Invalid {
            path: problem.to_path_buf(),
            errors,
        })?;
    let check = check_plan(&input, &solved.plan).map_err(|e| FieldError::Checker(e.to_string()))?;
    if !check.is_feasible() {
        return Err(FieldError::PlanRejected {
            check: Box::new(check),
        });
    }
    // Cheap only for tiny problems: the LP has about jobs² × technician-days columns
    // (12 jobs × 50 technician-days: 0.5 s with microlp; × 200: 2.4 s).
    let compiled = &solved.compiled;
    let jobs = compiled.problem.jobs().len();
    let cheap = jobs <= MAX_EXACT_FIELD_JOBS
        && jobs * jobs * compiled.problem.vehicle_types().len() <= MAX_BOUND_ARCS;
    let lower_bound = cheap
        .then(|| field_lower_bound(&compiled.problem).ok())
        .flatten()
        .map(|bound| compiled.currency(bound));
    Ok(SolvedProblem {
        plan: solved.plan,
        lower_bound,
    })
}

/// Arguments of `despacho check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The problem the plan is for.
    #[arg(long, value_name = "PATH")]
    pub problem: PathBuf,
    /// The plan to check.
    #[arg(long, value_name = "PATH")]
    pub plan: PathBuf,
}

/// The report `despacho check` prints.
#[derive(Debug, serde::Serialize)]
pub struct CheckReport {
    pub feasible: bool,
    pub cost: f64,
    pub jobs_assigned: usize,
    pub jobs_unassigned: usize,
    pub violations: Vec<despacho_solver::field::check::PlanViolation>,
}

pub fn check(args: &CheckArgs) -> Result<CheckReport, FieldError> {
    let input: ProblemInput = read_json(&args.problem, "problem")?;
    let plan: Plan = read_json(&args.plan, "plan")?;
    let c = check_plan(&input, &plan).map_err(|e| FieldError::Checker(e.to_string()))?;
    Ok(CheckReport {
        feasible: c.is_feasible(),
        cost: c.cost,
        jobs_assigned: c.jobs_assigned,
        jobs_unassigned: c.jobs_unassigned,
        violations: c.violations,
    })
}

/// `despacho fixtures …`
#[derive(Debug, Clone, Subcommand)]
pub enum FixturesCommand {
    /// Generate a realistic ISP problem (clustered demand in a real metro area).
    Generate(GenerateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[arg(long, value_name = "N")]
    pub technicians: usize,
    #[arg(long, value_name = "M")]
    pub jobs: usize,
    #[arg(long, value_name = "D", default_value_t = 1)]
    pub days: usize,
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// sao-paulo, recife or lisbon.
    #[arg(long, value_name = "NAME", default_value = "sao-paulo")]
    pub city: City,
    /// First planning day (default: 2026-12-01).
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-12-01")]
    pub start_date: chrono::NaiveDate,
    /// Write here instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

pub fn generate_fixture(args: &GenerateArgs) -> Result<Option<String>, FieldError> {
    let input = generate(&GeneratorConfig {
        technicians: args.technicians,
        jobs: args.jobs,
        days: args.days,
        seed: args.seed,
        city: args.city,
        start_date: args.start_date,
    });
    let json = serde_json::to_string_pretty(&input).expect("problems always serialise");
    match &args.out {
        Some(path) => {
            std::fs::write(path, json + "\n").map_err(|source| FieldError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(None)
        }
        None => Ok(Some(json)),
    }
}

/// Which JSON Schema `despacho schema` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    Problem,
    Plan,
}

pub fn schema(kind: SchemaKind) -> String {
    let schema = match kind {
        SchemaKind::Problem => schemars::schema_for!(ProblemInput),
        SchemaKind::Plan => schemars::schema_for!(Plan),
    };
    serde_json::to_string_pretty(&schema).expect("schemas always serialise")
}

/// A few human lines about a plan (printed on stderr; the JSON goes to stdout), with
/// the lower bound next to the cost when there is one.
pub fn summary(plan: &Plan, lower_bound: Option<f64>) -> String {
    let k = &plan.kpis;
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for u in &plan.unassigned {
        let code = serde_json::to_value(u.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *reasons.entry(code).or_default() += 1;
    }
    let mut text = format!(
        "planned {} of {} jobs on {} of {} technician-days; travel {:.1} h ({:.0} km), on site {:.1} h, utilisation {:.0} %, overtime {:.0} min; SLA {}/{} on time; cost {:.2}",
        k.jobs_assigned,
        k.jobs_total,
        k.routes_used,
        k.shifts_available,
        k.travel_hours,
        k.travel_km,
        k.work_hours,
        k.utilisation * 100.0,
        k.overtime_minutes,
        k.sla_hits,
        k.sla_jobs,
        plan.cost.total,
    );
    if let Some(bound) = lower_bound {
        text.push_str(&format!(" (lower bound {bound:.2}"));
        if bound > 0.0 {
            let above = 100.0 * (plan.cost.total - bound).max(0.0) / bound;
            text.push_str(&format!(": at most {above:.1} % above the optimum"));
        }
        text.push(')');
    }
    if !reasons.is_empty() {
        let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        text.push_str(&format!("\nunplanned: {}", list.join(", ")));
    }
    text
}
