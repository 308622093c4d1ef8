//! Exact answers for tiny field-service problems (issue 4, part 2): the MILP of
//! `solve_exact_field` against the field plan checker, and the heuristic search
//! against the proven optimum on random problems with skills, shifts and windows.

use despacho_solver::bench_support::field_exact::{compare_with_search, random_problem};
use despacho_solver::field::check::check_plan;
use despacho_solver::field::compile::compile;
use despacho_solver::field::generate::{generate, GeneratorConfig};
use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::solve::{build_plan, solve_field};
use despacho_solver::{field_lower_bound, solve_exact_field, MilpError, SolverConfig};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration as Wall;

/// The checker's total for a plan must be the exact model's cost (currency units;
/// rates are rounded to 0.00001 per metre or second when compiled).
fn assert_same_cost(checked: f64, exact: f64, what: &str) {
    let tolerance = 0.01 + 1e-3 * exact.abs();
    assert!(
        (checked - exact).abs() <= tolerance,
        "{what}: the checker's cost {checked} is not the exact model's {exact}"
    );
}

#[test]
fn heuristic_matches_the_proven_optimum_of_tiny_field_problems() {
    let c = compare_with_search(0..100, 300).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", c.report());
    assert_eq!(c.cases, 100);
    assert!(
        c.matched * 10 >= c.cases * 9,
        "match rate {}/{} is below 90 %",
        c.matched,
        c.cases
    );
}

/// The match rates of docs/milp.md on 1 000 other problems are measured by the
/// `field_exact` bench runner (results in benches/results/); this is its quick check.
#[test]
#[ignore = "about two minutes; `cargo run --release -p despacho-benches --bin field_exact` records the rates"]
fn match_rate_on_1000_tiny_field_problems() {
    for iterations in [300, 3000] {
        let c = compare_with_search(1000..2000, iterations).unwrap_or_else(|e| panic!("{e}"));
        println!("{}", c.report());
        assert!(c.matched * 10 >= c.cases * 9);
    }
}

#[test]
fn the_lower_bound_is_below_the_proven_optimum() {
    for seed in 0..8 {
        let input = random_problem(seed);
        let compiled = compile(&input, &HashMap::new()).expect("compiles");
        let exact = solve_exact_field(&compiled.problem, Wall::from_secs(30)).expect("solves");
        let bound = field_lower_bound(&compiled.problem).expect("bound");
        assert!(
            bound <= exact.cost,
            "seed {seed}: bound {} above the optimum {}",
            bound.get(),
            exact.cost.get()
        );
    }
}

#[test]
fn the_lower_bound_holds_on_generated_days_with_breaks_slas_and_balance() {
    // The generator's ISP days have lunch breaks, SLAs, equipment, balance, several
    // windows: everything the exact model refuses and the bound relaxes.
    let mut covered_breaks = false;
    let mut covered_slas = false;
    for seed in 0..6 {
        let input = generate(&GeneratorConfig {
            technicians: 3,
            jobs: 10,
            seed,
            ..GeneratorConfig::default()
        });
        let compiled = compile(&input, &HashMap::new()).expect("compiles");
        let rules = compiled.problem.rules().expect("field rules");
        assert!(rules.balance_per_hour_squared > 0);
        covered_breaks |= rules.vehicles.iter().any(|v| v.break_spec.is_some());
        covered_slas |= rules.jobs.iter().any(|j| j.due.is_some());
        let bound = field_lower_bound(&compiled.problem).expect("a bound");
        let config = SolverConfig {
            seed,
            max_iterations: Some(2000),
            time_limit: None,
            ..SolverConfig::default()
        };
        let heuristic = solve_field(&input, None, &config).expect("solves");
        assert!(
            bound <= heuristic.result.cost,
            "seed {seed}: bound {} above a plan's cost {}",
            bound.get(),
            heuristic.result.cost.get()
        );
        assert!(bound.get() > 0, "seed {seed}: a bound of nothing");
        println!(
            "seed {seed}: bound {:.2}, heuristic {:.2}",
            compiled.currency(bound),
            compiled.currency(heuristic.result.cost)
        );
    }
    assert!(covered_breaks && covered_slas);
}

/// Two technicians, two jobs: "fiber" is only Ana's, and Bob is much closer to both.
fn two_technicians() -> ProblemInput {
    serde_json::from_value(json!({
        "version": 1,
        "time_zone": "America/Sao_Paulo",
        "technicians": [
            {"id": "ana", "skills": {"fiber": 2}, "home": {"lat": -23.50, "lon": -46.70},
             "shifts": [{"date": "2025-03-10", "start": "08:00:00", "end": "17:00:00"}],
             "cost_per_hour": 20.0, "cost_per_km": 0.5},
            {"id": "bob", "home": {"lat": -23.55, "lon": -46.63},
             "shifts": [{"date": "2025-03-10", "start": "08:00:00", "end": "17:00:00"}],
             "cost_per_hour": 20.0, "cost_per_km": 0.5}
        ],
        "jobs": [
            {"id": "fiber-job", "kind": "installation", "place": {"lat": -23.551, "lon": -46.631},
             "duration_minutes": 60, "required_skills": {"fiber": 1},
             "windows": [{"start": "2025-03-10T13:00:00-03:00", "end": "2025-03-10T15:00:00-03:00"}]},
            {"id": "plain-job", "kind": "repair", "place": {"lat": -23.552, "lon": -46.632},
             "duration_minutes": 30,
             "windows": [{"start": "2025-03-10T08:00:00-03:00", "end": "2025-03-10T09:00:00-03:00"}]}
        ],
        "objective": {"balance_per_hour_squared": 0.0}
    }))
    .unwrap()
}

#[test]
fn a_job_goes_only_to_a_qualified_technician() {
    let input = two_technicians();
    let compiled = compile(&input, &HashMap::new()).unwrap();
    let exact = solve_exact_field(&compiled.problem, Wall::from_secs(10)).unwrap();
    let plan = build_plan(&input, &compiled, &exact.solution);
    let who = |job: &str| {
        plan.routes
            .iter()
            .find(|r| r.stops.iter().any(|s| s.job == job))
            .map(|r| r.technician.as_str())
    };
    assert_eq!(who("fiber-job"), Some("ana"));
    // Bob lives next door, and Ana would wait four paid hours between the two visits.
    assert_eq!(who("plain-job"), Some("bob"));
    assert!(exact.unassigned.is_empty());
    let report = check_plan(&input, &plan).unwrap();
    assert!(report.is_feasible(), "{:?}", report.violations);
    assert_same_cost(
        report.cost,
        compiled.currency(exact.cost),
        "two technicians",
    );
}

#[test]
fn a_job_cheaper_to_leave_out_is_left_out() {
    let mut input = two_technicians();
    input.objective.unassigned_per_priority = 0.01;
    let compiled = compile(&input, &HashMap::new()).unwrap();
    let exact = solve_exact_field(&compiled.problem, Wall::from_secs(10)).unwrap();
    assert!(exact.solution.routes.is_empty());
    assert_eq!(exact.unassigned, vec![0, 1]);
    let plan = build_plan(&input, &compiled, &exact.solution);
    let report = check_plan(&input, &plan).unwrap();
    assert!(report.is_feasible(), "{:?}", report.violations);
    assert_same_cost(report.cost, compiled.currency(exact.cost), "all unplanned");
}

#[test]
fn the_lower_bound_keeps_every_window_of_a_job() {
    // The plain job's first window closes before anyone starts work; its second one
    // is the one the plan uses. A bound that saw only the first would charge the job
    // as unplanned (500 000) and rise above the plan.
    let mut input = two_technicians();
    let mut early = input.jobs[1].windows[0].clone();
    early.start = "2025-03-10T06:00:00-03:00".parse().unwrap();
    early.end = "2025-03-10T06:30:00-03:00".parse().unwrap();
    input.jobs[1].windows.insert(0, early);
    let compiled = compile(&input, &HashMap::new()).unwrap();
    assert!(matches!(
        solve_exact_field(&compiled.problem, Wall::from_secs(10)),
        Err(MilpError::Unsupported { .. })
    ));
    let bound = field_lower_bound(&compiled.problem).unwrap();
    let config = SolverConfig {
        max_iterations: Some(500),
        time_limit: None,
        ..SolverConfig::default()
    };
    let heuristic = solve_field(&input, None, &config).unwrap();
    assert!(heuristic.plan.unassigned.is_empty());
    assert!(
        bound <= heuristic.result.cost,
        "{bound:?} > {:?}",
        heuristic.result.cost
    );
}

#[test]
fn refuses_what_it_does_not_model_naming_the_feature() {
    type Mutation = fn(&mut ProblemInput);
    let cases: [(&str, Mutation); 5] = [
        ("breaks", |p| {
            p.technicians[0].shifts[0].break_rule = Some(
                serde_json::from_value(json!({"duration_minutes": 30,
                    "earliest_start": "11:30:00", "latest_end": "13:30:00"}))
                .unwrap(),
            )
        }),
        ("SLA due times", |p| {
            p.jobs[0].sla_due = Some("2025-03-10T09:00:00-03:00".parse().unwrap())
        }),
        ("several windows", |p| {
            let mut later = p.jobs[0].windows[0].clone();
            later.start = "2025-03-10T16:00:00-03:00".parse().unwrap();
            later.end = "2025-03-10T16:30:00-03:00".parse().unwrap();
            p.jobs[0].windows.push(later);
        }),
        ("workload balance", |p| {
            p.objective.balance_per_hour_squared = 0.5
        }),
        ("relations between jobs", |p| {
            p.jobs[1].after_job = Some("fiber-job".into())
        }),
    ];
    for (feature, mutate) in cases {
        let mut input = two_technicians();
        mutate(&mut input);
        let compiled = compile(&input, &HashMap::new()).unwrap();
        match solve_exact_field(&compiled.problem, Wall::from_secs(10)) {
            Err(MilpError::Unsupported { reason }) => {
                assert!(reason.contains(feature), "{feature}: {reason}")
            }
            other => panic!("{feature}: expected Unsupported, got {other:?}"),
        }
    }
    let mut input = two_technicians();
    input.technicians[0].van_capacity = Some(1);
    input.jobs[0].equipment.deliver = 1;
    input.jobs[1].equipment.collect = 1;
    let compiled = compile(&input, &HashMap::new()).unwrap();
    assert!(matches!(
        solve_exact_field(&compiled.problem, Wall::from_secs(10)),
        Err(MilpError::Unsupported { reason }) if reason.contains("equipment")
    ));
}
