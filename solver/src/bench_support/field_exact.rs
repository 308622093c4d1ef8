//! Tiny random field-service problems solved exactly (MILP) and by the search, for the
//! match rate of docs/milp.md: `solver/tests/solver/field_exact.rs` (100 problems in CI) and
//! the `field_exact` bench runner (1 000 problems, results in `benches/results/`).

use crate::field::check::check_plan;
use crate::field::compile::compile;
use crate::field::input::ProblemInput;
use crate::field::solve::{build_plan, solve_field};
use crate::{solve_exact_field, SolverConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration as Wall, Instant};

/// A random tiny São Paulo day: 2–3 technicians with their own skills, shifts, homes
/// (sometimes another start or end place), rates and overtime; 4–8 jobs with one
/// window each, required skills, durations by level, priorities and preferences.
/// Only what `solve_exact_field` models: no breaks, SLAs, loads, relations, balance.
pub fn random_problem(seed: u64) -> ProblemInput {
    let mut rng = fastrand::Rng::with_seed(seed);
    let place = |rng: &mut fastrand::Rng| json!({"lat": -23.55 + (rng.f64() - 0.5) * 0.12, "lon": -46.63 + (rng.f64() - 0.5) * 0.12});
    let skills = ["fiber", "copper"];
    let technicians: Vec<Value> = (0..rng.usize(2..=3))
        .map(|i| {
            let mut tech_skills = serde_json::Map::new();
            for s in skills {
                if rng.bool() {
                    tech_skills.insert(s.into(), json!(rng.u8(1..=3)));
                }
            }
            let start_hour = 7 + rng.u32(0..=2);
            let mut shift = json!({
                "date": "2025-03-10",
                "start": format!("{start_hour:02}:00:00"),
                "end": format!("{:02}:30:00", start_hour + 4 + rng.u32(0..=4)),
            });
            if rng.u8(0..4) == 0 {
                shift["overtime_minutes"] = json!(60);
                shift["overtime_cost_per_hour"] = json!(rng.u32(10..=40));
            }
            if rng.u8(0..4) == 0 {
                shift["end_place"] = place(&mut rng);
            }
            let mut tech = json!({
                "id": format!("t{i}"),
                "skills": tech_skills,
                "home": place(&mut rng),
                "shifts": [shift],
                "cost_per_hour": 15.0 + rng.u32(0..=15) as f64,
                "cost_per_km": 0.25 * rng.u32(1..=4) as f64,
            });
            if rng.u8(0..4) == 0 {
                tech["max_jobs_per_day"] = json!(3);
            }
            tech
        })
        .collect();
    let n_tech = technicians.len();
    let jobs: Vec<Value> = (0..rng.usize(4..=8))
        .map(|j| {
            let open = 8 * 60 + 15 * rng.u32(0..=24); // 08:00 to 14:00
            let close = open + 60 * rng.u32(1..=4);
            let at = |m: u32| format!("2025-03-10T{:02}:{:02}:00-03:00", m / 60, m % 60);
            let mut job = json!({
                "id": format!("j{j}"),
                "kind": "repair",
                "place": place(&mut rng),
                "duration_minutes": 5 * rng.u32(4..=18),
                "windows": [{"start": at(open), "end": at(close)}],
                "priority": rng.u8(1..=5),
            });
            if rng.bool() {
                let skill = skills[rng.usize(0..2)];
                job["required_skills"] = json!({ skill: rng.u8(1..=2) });
                if rng.bool() {
                    job["duration_by_level"] = json!({"3": 5 * rng.u32(3..=8)});
                }
            }
            if rng.u8(0..4) == 0 {
                job["preferred_technician"] = json!(format!("t{}", rng.usize(0..n_tech)));
            }
            job
        })
        .collect();
    // Either unplanned jobs dominate (the defaults) or they are cheap enough that
    // leaving one out can be the optimum.
    let unassigned = if rng.bool() { 100_000.0 } else { 20.0 };
    serde_json::from_value(json!({
        "version": 1,
        "time_zone": "America/Sao_Paulo",
        "technicians": technicians,
        "jobs": jobs,
        "objective": {"unassigned_per_priority": unassigned, "balance_per_hour_squared": 0.0},
    }))
    .expect("a valid problem")
}

/// How the search did against the proven optimum on `cases` random problems.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub iterations: u64,
    pub cases: usize,
    /// Problems where the search's cost is the proven optimum.
    pub matched: usize,
    /// Seed and relative excess of the search over the optimum, where they differ.
    pub gaps: Vec<(u64, f64)>,
    /// Wall time of the exact solves and of the searches, seconds.
    pub exact_seconds: f64,
    pub search_seconds: f64,
}

impl Comparison {
    pub fn match_rate(&self) -> f64 {
        self.matched as f64 / self.cases.max(1) as f64
    }

    /// The largest relative excess (0 when every problem matched).
    pub fn worst_gap(&self) -> f64 {
        self.gaps.iter().map(|g| g.1).fold(0.0, f64::max)
    }

    pub fn report(&self) -> String {
        format!(
            "search ({} iterations) = proven optimum on {}/{} tiny field problems; \
             worst excess {:.2} %; seeds and excesses: {:?}",
            self.iterations,
            self.matched,
            self.cases,
            100.0 * self.worst_gap(),
            self.gaps
        )
    }
}

/// The checker's total for a plan must be the exact model's cost (currency units;
/// rates are rounded to 0.00001 per metre or second when compiled).
pub fn same_cost(checked: f64, exact: f64) -> bool {
    (checked - exact).abs() <= 0.01 + 1e-3 * exact.abs()
}

/// Solves each seed's [`random_problem`] exactly and by the search (`iterations`,
/// the seed as the search's seed). Every plan goes through the field checker. An error
/// names the seed when something is wrong beyond a miss: the exact model unproven or
/// rejected by the checker or priced differently, a search plan rejected, or a search
/// cost below the proven optimum (a bug in the model, the evaluator or the checker).
pub fn compare_with_search(
    seeds: std::ops::Range<u64>,
    iterations: u64,
) -> Result<Comparison, String> {
    let mut c = Comparison {
        iterations,
        cases: 0,
        matched: 0,
        gaps: Vec::new(),
        exact_seconds: 0.0,
        search_seconds: 0.0,
    };
    for seed in seeds {
        let input = random_problem(seed);
        let compiled = compile(&input, &HashMap::new()).map_err(|e| format!("seed {seed}: {e}"))?;
        let started = Instant::now();
        let exact = solve_exact_field(&compiled.problem, Wall::from_secs(30))
            .map_err(|e| format!("seed {seed}: {e}"))?;
        c.exact_seconds += started.elapsed().as_secs_f64();
        if !exact.proven_optimal {
            return Err(format!(
                "seed {seed}: the exact answer is not proven optimal"
            ));
        }
        let plan = build_plan(&input, &compiled, &exact.solution);
        let report = check_plan(&input, &plan).map_err(|e| format!("seed {seed}: {e}"))?;
        if !report.is_feasible() {
            return Err(format!(
                "seed {seed}: the checker rejects the exact plan: {:?}",
                report.violations
            ));
        }
        if !same_cost(report.cost, compiled.currency(exact.cost)) {
            return Err(format!(
                "seed {seed}: the checker's cost {} is not the exact model's {}",
                report.cost,
                compiled.currency(exact.cost)
            ));
        }

        let config = SolverConfig {
            seed,
            max_iterations: Some(iterations),
            time_limit: None,
            ..SolverConfig::default()
        };
        let started = Instant::now();
        let search = solve_field(&input, None, &config).map_err(|e| format!("seed {seed}: {e}"))?;
        c.search_seconds += started.elapsed().as_secs_f64();
        let checked = check_plan(&input, &search.plan).map_err(|e| format!("seed {seed}: {e}"))?;
        if !checked.is_feasible() {
            return Err(format!(
                "seed {seed}: the checker rejects the search's plan: {:?}",
                checked.violations
            ));
        }
        if search.result.cost < exact.cost || checked.cost < report.cost - 0.01 {
            return Err(format!(
                "seed {seed}: the search's {} is below the proven optimum {}",
                search.result.cost.get(),
                exact.cost.get()
            ));
        }
        c.cases += 1;
        if search.result.cost == exact.cost {
            c.matched += 1;
        } else {
            let excess = (search.result.cost - exact.cost).get() as f64;
            c.gaps.push((seed, excess / exact.cost.get().max(1) as f64));
        }
    }
    Ok(c)
}
