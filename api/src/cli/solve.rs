//! `despacho solve`: run the solver on a Solomon VRPTW file.
//!
//! Prints exactly one JSON object on stdout (other tools rely on this shape):
//!
//! ```json
//! {"instance": "R101", "distance": 1637.7, "vehicles": 20, "seconds": 10.0,
//!  "routes": [[2, 21, 73], ...]}
//! ```
//!
//! - `instance`: the file's name line;
//! - `distance`: the checker's total distance in file units (DIMACS rule
//!   `d = floor(10 * euclid) / 10`), exact to one decimal;
//! - `vehicles`: routes used;
//! - `seconds`: wall time of the search;
//! - `routes`: the file's CUST NO.s in visiting order, depot omitted, one list per
//!   used route;
//! - `lower_bound` (only with `--lower-bound`): no plan's distance can be below it
//!   (the LP relaxation of the exact arc model, `solver::lower_bound`), or `null` when
//!   the instance is too large or the model does not apply; `distance / lower_bound`
//!   bounds how far from optimal the plan can be.
//!
//! The plan always goes through the solver's independent checker first; a plan it
//! rejects is an error, never output.

use clap::Args;
use despacho_solver::{
    check, parse_solomon, solve, SolomonError, SolverConfig, Violation, SOLOMON_SCALE,
};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `despacho solve`.
#[derive(Debug, Clone, Args)]
pub struct SolveArgs {
    /// Solomon-format instance file (e.g. fixtures/solomon/R101.txt).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "problem",
        conflicts_with = "problem"
    )]
    pub solomon: Option<PathBuf>,
    /// Field-service problem JSON (see `despacho schema problem`).
    #[arg(long, value_name = "PATH", required_unless_present = "solomon")]
    pub problem: Option<PathBuf>,
    /// The previously published plan: moving its jobs to another technician or day costs
    /// `objective.stability_change` each (only with --problem).
    #[arg(long, value_name = "PATH", requires = "problem")]
    pub previous: Option<PathBuf>,
    /// Wall-clock budget in seconds (positive, may be fractional).
    #[arg(long, value_name = "S", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub seconds: Duration,
    /// Random seed; the same seed and iteration budget give the same plan.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many search iterations (whichever of this and --seconds comes first).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
    /// Also print `lower_bound`, an LP bound on the distance (Solomon files of up to
    /// 200 customers; not counted in `seconds`).
    #[arg(long, conflicts_with = "problem")]
    pub lower_bound: bool,
}

/// The JSON printed by `despacho solve`. Field order is part of the interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SolveReport {
    pub instance: String,
    pub distance: f64,
    pub vehicles: usize,
    pub seconds: f64,
    pub routes: Vec<Vec<u32>>,
    /// With `--lower-bound`: `Some(None)` when no bound could be computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_bound: Option<Option<f64>>,
}

/// Why `despacho solve` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid Solomon file {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: SolomonError,
    },
    #[error(
        "the solver returned a plan for {instance} that the checker rejects ({} violations): {}",
        violations.len(),
        summarize(violations)
    )]
    Infeasible {
        instance: String,
        violations: Vec<Violation>,
    },
}

impl SolveArgs {
    /// The search budget and seed these arguments ask for.
    pub fn config(&self) -> SolverConfig {
        SolverConfig {
            seed: self.seed,
            max_iterations: self.iterations,
            time_limit: Some(self.seconds),
            ..SolverConfig::default()
        }
    }
}

/// Reads the instance, solves it within the budget, checks the plan and reports it.
pub fn run(args: &SolveArgs) -> Result<SolveReport, SolveError> {
    let path = args.solomon.clone().unwrap_or_default();
    let text = std::fs::read_to_string(&path).map_err(|source| SolveError::Read {
        path: path.clone(),
        source,
    })?;
    let instance = parse_solomon(&text).map_err(|source| SolveError::Parse {
        path: path.clone(),
        source,
    })?;
    let config = args.config();

    let started = Instant::now();
    let result = solve(&instance.problem, &config);
    let seconds = started.elapsed();

    let report = check(&instance.problem, &result.solution, true);
    if !report.is_feasible() {
        return Err(SolveError::Infeasible {
            instance: instance.name,
            violations: report.violations,
        });
    }
    let routes = result
        .solution
        .used_routes()
        .map(|r| {
            r.jobs
                .iter()
                .map(|&j| instance.customer_numbers[j])
                .collect()
        })
        .collect();
    // The objective of a Solomon problem is its distance, so the bound is one too.
    let lower_bound = args.lower_bound.then(|| {
        despacho_solver::lower_bound(&instance.problem)
            .ok()
            .map(|c| tenths_to_units(c.get()))
    });
    Ok(SolveReport {
        instance: instance.name,
        distance: tenths_to_units(report.distance.get()),
        vehicles: report.vehicles,
        seconds: millis_to_seconds(seconds),
        routes,
        lower_bound,
    })
}

/// Integer tenths to file units. Dividing by 10 (not multiplying by 0.1) gives the
/// double nearest to the decimal, so 16377 prints as `1637.7`, never `1637.6999…`.
pub fn tenths_to_units(tenths: i64) -> f64 {
    debug_assert_eq!(SOLOMON_SCALE, 10);
    tenths as f64 / SOLOMON_SCALE as f64
}

/// Wall time in seconds, to the millisecond (short and exact when printed).
fn millis_to_seconds(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// `--seconds`: a positive, finite number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let s: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, found {text:?}"))?;
    if !s.is_finite() || s <= 0.0 {
        return Err(format!(
            "must be a positive, finite number of seconds, found {text:?}"
        ));
    }
    Duration::try_from_secs_f64(s).map_err(|_| format!("{text} seconds is too long a budget"))
}

fn summarize(violations: &[Violation]) -> String {
    const SHOWN: usize = 5;
    let mut text = violations
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > SHOWN {
        text.push_str(&format!("; and {} more", violations.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_print_with_one_exact_decimal() {
        for tenths in (0..200_000).chain([16377, 123_456_789, 900_719_925_474_099]) {
            let printed = serde_json::to_string(&tenths_to_units(tenths)).unwrap();
            assert_eq!(printed, format!("{}.{}", tenths / 10, tenths % 10));
        }
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in [
            "0", "-1", "-0.0", "nan", "NaN", "inf", "-inf", "abc", "", "1e400",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_seconds("1e30").unwrap_err().contains("too long"));
    }

    #[test]
    fn infeasible_plans_list_their_first_violations() {
        let violations = (0..7).map(|job| Violation::JobUnassigned { job }).collect();
        let e = SolveError::Infeasible {
            instance: "T1".into(),
            violations,
        };
        let text = e.to_string();
        assert!(
            text.contains("T1") && text.contains("7 violations"),
            "{text}"
        );
        assert!(
            text.contains("job 4 is in no route") && text.contains("and 2 more"),
            "{text}"
        );
    }
}
