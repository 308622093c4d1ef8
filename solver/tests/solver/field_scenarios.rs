//! Hand-checked scenarios (`fixtures/field/scenarios/*/`): each folder has a problem,
//! the plan worked out by hand (`expected.json`, reasoning in its README), and this
//! test solves the problem and compares routes, times, breaks and unassigned reasons.

use despacho_solver::field::check::check_plan;
use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::plan::Plan;
use despacho_solver::field::solve::solve_field;
use despacho_solver::SolverConfig;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
struct Expected {
    routes: Vec<ExpectedRoute>,
    unassigned: Vec<ExpectedUnassigned>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct ExpectedRoute {
    technician: String,
    date: String,
    jobs: Vec<String>,
    start: String,
    end: String,
    stop_starts: Vec<String>,
    #[serde(default)]
    break_after: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct ExpectedUnassigned {
    job: String,
    reason: String,
}

fn scenarios() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/field/scenarios");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("problem.json").exists())
        .collect();
    out.sort();
    out
}

fn actual_routes(plan: &Plan) -> Vec<ExpectedRoute> {
    plan.routes
        .iter()
        .map(|r| ExpectedRoute {
            technician: r.technician.clone(),
            date: r.date.to_string(),
            jobs: r.stops.iter().map(|s| s.job.clone()).collect(),
            start: r.start.clone(),
            end: r.end.clone(),
            stop_starts: r.stops.iter().map(|s| s.start.clone()).collect(),
            break_after: r.break_taken.as_ref().and_then(|b| b.after_job.clone()),
        })
        .collect()
}

#[test]
fn hand_checked_scenarios_give_the_expected_plans() {
    let all = scenarios();
    assert!(all.len() >= 5, "found {} scenarios", all.len());
    for dir in all {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let input: ProblemInput =
            serde_json::from_str(&std::fs::read_to_string(dir.join("problem.json")).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected: Expected =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let solved = solve_field(
            &input,
            None,
            &SolverConfig {
                max_iterations: Some(300),
                time_limit: None,
                ..SolverConfig::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let plan = &solved.plan;
        assert_eq!(actual_routes(plan), expected.routes, "{name}: routes");
        let mut unassigned: Vec<ExpectedUnassigned> = plan
            .unassigned
            .iter()
            .map(|u| ExpectedUnassigned {
                job: u.job.clone(),
                reason: serde_json::to_value(u.reason)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            })
            .collect();
        unassigned.sort();
        let mut want = expected.unassigned;
        want.sort();
        assert_eq!(unassigned, want, "{name}: unassigned");
        let check = check_plan(&input, plan).unwrap();
        assert!(check.is_feasible(), "{name}: {:?}", check.violations);
        assert!(
            (check.cost - plan.cost.total).abs() <= 0.01 * plan.cost.total.abs().max(1.0),
            "{name}: checker cost {} vs plan {}",
            check.cost,
            plan.cost.total
        );
    }
}

#[test]
fn generated_fixtures_are_current_and_solve_to_checked_plans() {
    use despacho_solver::field::generate::{generate, City, GeneratorConfig};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/field/generated");
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let cases = [
        (
            "small-10x60-sao-paulo.json",
            10,
            60,
            1,
            City::SaoPaulo,
            "2026-12-01",
        ),
        (
            "50x600-sao-paulo.json",
            50,
            600,
            1,
            City::SaoPaulo,
            "2026-12-01",
        ),
        (
            "200x2000-sao-paulo.json",
            200,
            2000,
            1,
            City::SaoPaulo,
            "2026-12-01",
        ),
        (
            "12x150-3days-lisbon-dst.json",
            12,
            150,
            3,
            City::Lisbon,
            "2026-03-27",
        ),
    ];
    for (file, technicians, jobs, days, city, start) in cases {
        let committed: ProblemInput =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let fresh = generate(&GeneratorConfig {
            technicians,
            jobs,
            days,
            seed: 1,
            city,
            start_date: date(start),
        });
        assert!(committed == fresh, "{file} is stale (see its README)");
    }
    // The small one and the multi-day DST one solve to plans the checker accepts.
    for file in ["small-10x60-sao-paulo.json", "12x150-3days-lisbon-dst.json"] {
        let input: ProblemInput =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let solved = solve_field(
            &input,
            None,
            &SolverConfig {
                max_iterations: Some(100),
                time_limit: None,
                ..SolverConfig::default()
            },
        )
        .unwrap();
        let check = check_plan(&input, &solved.plan).unwrap();
        assert!(check.is_feasible(), "{file}: {:?}", check.violations);
        assert!(
            solved.plan.kpis.jobs_assigned * 10 >= input.jobs.len() * 8,
            "{file}"
        );
    }
}
