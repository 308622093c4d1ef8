//! Every unassigned-job reason, each from a problem built to cause it; and stability:
//! re-planning against a previous plan keeps jobs where they were.

use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::plan::{Plan, UnassignedReason};
use despacho_solver::field::solve::solve_field;
use despacho_solver::SolverConfig;
use serde_json::{json, Value};

const DAY: &str = "2026-12-01";

fn config() -> SolverConfig {
    SolverConfig {
        max_iterations: Some(200),
        time_limit: None,
        ..SolverConfig::default()
    }
}

/// One technician at Praça da Sé (08:00–12:00, PPPoE + fibre level 2, van of 2) and
/// the given jobs; `edit` adjusts the technician.
fn problem(jobs: Vec<Value>, edit: impl FnOnce(&mut Value)) -> ProblemInput {
    let mut tech = json!({
        "id": "ana", "skills": {"pppoe": 1, "fiber_splicing": 2},
        "home": {"lat": -23.5503, "lon": -46.6339},
        "shifts": [{"date": DAY, "start": "08:00:00", "end": "12:00:00"}],
        "cost_per_hour": 30.0, "cost_per_km": 0.5, "van_capacity": 2
    });
    edit(&mut tech);
    serde_json::from_value(json!({
        "version": 1, "time_zone": "America/Sao_Paulo",
        "skills": ["pppoe", "fiber_splicing", "iptv"],
        "technicians": [tech], "jobs": jobs
    }))
    .unwrap()
}

/// A job next door (a few hundred metres away) with a morning window.
fn job(id: &str, extra: Value) -> Value {
    let mut j = json!({
        "id": id, "kind": "repair", "place": {"lat": -23.552, "lon": -46.634},
        "duration_minutes": 60,
        "windows": [{"start": format!("{DAY}T08:00:00-03:00"), "end": format!("{DAY}T12:00:00-03:00")}],
        "required_skills": {"pppoe": 1}
    });
    for (k, v) in extra.as_object().unwrap() {
        j[k] = v.clone();
    }
    j
}

fn reason_of(input: &ProblemInput, job: &str) -> Option<UnassignedReason> {
    let plan = solve_field(input, None, &config()).unwrap().plan;
    plan.unassigned
        .iter()
        .find(|u| u.job == job)
        .map(|u| u.reason)
}

#[test]
fn each_reason_from_its_cause() {
    use UnassignedReason::*;
    let cases: Vec<(&str, ProblemInput, UnassignedReason)> = vec![
        (
            "skill level",
            problem(
                vec![job("x", json!({"required_skills": {"fiber_splicing": 3}}))],
                |_| {},
            ),
            NoSkilledTechnician,
        ),
        (
            "skill nobody has",
            problem(
                vec![job("x", json!({"required_skills": {"iptv": 1}}))],
                |_| {},
            ),
            NoSkilledTechnician,
        ),
        (
            "territory",
            problem(vec![job("x", json!({}))], |t| {
                // A square far north of the job.
                t["territory"] = json!({"type": "Polygon", "coordinates": [[
                    [-46.70, -23.40], [-46.60, -23.40], [-46.60, -23.45], [-46.70, -23.45], [-46.70, -23.40]]]});
            }),
            OutsideTerritory,
        ),
        (
            "no shift that day",
            problem(
                vec![job(
                    "x",
                    json!({"windows": [{"start": "2026-12-02T08:00:00-03:00", "end": "2026-12-02T12:00:00-03:00"}]}),
                )],
                |_| {},
            ),
            NoShiftThatDay,
        ),
        (
            "van too small",
            problem(vec![job("x", json!({"equipment": {"collect": 3}}))], |_| {}),
            CapacityExceeded,
        ),
        (
            "pinned technician lacks the skill",
            problem(
                vec![job(
                    "x",
                    json!({"pinned_technician": "ana", "required_skills": {"iptv": 1}}),
                )],
                |_| {},
            ),
            PinnedConflict,
        ),
        (
            "pinned start before the shift",
            problem(
                vec![job(
                    "x",
                    json!({
                    "pinned_start": format!("{DAY}T07:00:00-03:00"),
                    "windows": [{"start": format!("{DAY}T06:00:00-03:00"), "end": format!("{DAY}T12:00:00-03:00")}]}),
                )],
                |_| {},
            ),
            PinnedConflict,
        ),
        (
            // 30 km away: about 2 hours of urban driving; the window closes at 08:30.
            "window unreachable",
            problem(
                vec![job(
                    "x",
                    json!({
                    "place": {"lat": -23.82, "lon": -46.6339},
                    "windows": [{"start": format!("{DAY}T08:00:00-03:00"), "end": format!("{DAY}T08:30:00-03:00")}]}),
                )],
                |_| {},
            ),
            WindowUnreachable,
        ),
        (
            // 4 hours of shift, three 100-minute jobs: one must go, the least important.
            "displaced",
            problem(
                vec![
                    job("a", json!({"duration_minutes": 100, "priority": 8})),
                    job("b", json!({"duration_minutes": 100, "priority": 7})),
                    job("x", json!({"duration_minutes": 100, "priority": 2})),
                ],
                |_| {},
            ),
            DisplacedByHigherPriority,
        ),
        (
            // Same, all of equal priority: whichever is left out has no room left.
            "no capacity left",
            problem(
                vec![
                    job("x", json!({"duration_minutes": 100, "priority": 5})),
                    job("y", json!({"duration_minutes": 100, "priority": 5})),
                    job("z", json!({"duration_minutes": 100, "priority": 5})),
                ],
                |_| {},
            ),
            NoCapacityLeft,
        ),
    ];
    for (name, input, want) in cases {
        let plan = solve_field(&input, None, &config()).unwrap().plan;
        let got: Vec<UnassignedReason> = plan.unassigned.iter().map(|u| u.reason).collect();
        if name == "no capacity left" {
            assert_eq!(got, vec![want], "{name}");
        } else {
            assert_eq!(reason_of(&input, "x"), Some(want), "{name}: {got:?}");
        }
    }
}

/// Three technicians a couple of kilometres apart and `jobs` jobs around them.
fn three_technicians(jobs: usize, seed: u64) -> ProblemInput {
    let mut rng = fastrand::Rng::with_seed(seed);
    let techs: Vec<Value> = (0..3)
        .map(|k| {
            json!({
                "id": format!("t{k}"), "skills": {"pppoe": 1},
                "home": {"lat": -23.55 + 0.02 * k as f64, "lon": -46.63},
                "shifts": [{"date": DAY, "start": "08:00:00", "end": "18:00:00"}],
                "cost_per_hour": 30.0, "cost_per_km": 0.5
            })
        })
        .collect();
    let jobs: Vec<Value> = (0..jobs)
        .map(|k| {
            json!({
                "id": format!("j{k}"), "kind": "repair",
                "place": {"lat": -23.56 + 0.05 * rng.f64(), "lon": -46.66 + 0.06 * rng.f64()},
                "duration_minutes": 30,
                "windows": [{"start": format!("{DAY}T08:00:00-03:00"), "end": format!("{DAY}T17:00:00-03:00")}]
            })
        })
        .collect();
    serde_json::from_value(json!({
        "version": 1, "time_zone": "America/Sao_Paulo", "technicians": techs, "jobs": jobs
    }))
    .unwrap()
}

fn assignment(plan: &Plan) -> std::collections::HashMap<String, String> {
    plan.routes
        .iter()
        .flat_map(|r| {
            r.stops
                .iter()
                .map(|s| (s.job.clone(), r.technician.clone()))
        })
        .collect()
}

#[test]
fn replanning_against_the_previous_plan_keeps_jobs_with_their_technician() {
    let mut moved_with = 0;
    let mut moved_without = 0;
    for seed in 0..4 {
        let before = three_technicians(18, seed);
        let first = solve_field(&before, None, &config()).unwrap().plan;
        assert!(first.unassigned.is_empty());
        // The next morning's change: a new job and a different seed for the search.
        let mut after = three_technicians(19, seed);
        after.objective.stability_change = 1_000.0;
        let replanned_config = SolverConfig {
            seed: seed + 100,
            ..config()
        };
        let with = solve_field(&after, Some(&first), &replanned_config)
            .unwrap()
            .plan;
        let without = solve_field(&after, None, &replanned_config).unwrap().plan;
        let old = assignment(&first);
        let moved = |plan: &Plan| {
            let now = assignment(plan);
            old.iter().filter(|(j, t)| now.get(*j) != Some(*t)).count()
        };
        moved_with += moved(&with);
        moved_without += moved(&without);
        assert!(with.cost.stability >= 0.0);
        assert_eq!(
            with.cost.stability,
            moved(&with) as f64 * 1_000.0,
            "seed {seed}: stability cost counts the moved jobs"
        );
    }
    assert!(
        moved_with * 4 <= moved_without,
        "with the previous plan {moved_with} jobs moved, without {moved_without}"
    );
    assert!(moved_with <= 2, "{moved_with} jobs moved");
}

#[test]
fn preferred_technician_is_used_when_it_costs_little() {
    // Three technicians at the same place; the job prefers the second.
    let mut input = three_technicians(1, 7);
    for k in 1..3 {
        input.technicians[k].home = input.technicians[0].home.clone();
    }
    input.jobs[0].preferred_technician = Some("t1".into());
    let plan = solve_field(&input, None, &config()).unwrap().plan;
    assert_eq!(plan.routes.len(), 1);
    assert_eq!(plan.routes[0].technician, "t1");
}

#[test]
fn random_job_relations_hold_in_checked_plans() {
    use despacho_solver::field::check::check_plan;
    let mut kept = 0;
    for seed in 0..12 {
        let mut input = three_technicians(14, seed);
        let mut rng = fastrand::Rng::with_seed(seed);
        for k in 1..input.jobs.len() {
            match rng.usize(0..4) {
                // Only earlier jobs, so there is no cycle.
                0 => input.jobs[k].after_job = Some(input.jobs[rng.usize(0..k)].id.clone()),
                1 => {
                    input.jobs[k].same_technician_as = Some(input.jobs[rng.usize(0..k)].id.clone())
                }
                _ => {}
            }
        }
        let plan = solve_field(&input, None, &config()).unwrap().plan;
        let check = check_plan(&input, &plan).unwrap();
        assert!(check.is_feasible(), "seed {seed}: {:?}", check.violations);
        let planned: std::collections::HashSet<&str> = plan
            .routes
            .iter()
            .flat_map(|r| r.stops.iter().map(|s| s.job.as_str()))
            .collect();
        kept += input
            .jobs
            .iter()
            .filter(|j| {
                let other = j.after_job.as_deref().or(j.same_technician_as.as_deref());
                other.is_some_and(|o| planned.contains(o)) && planned.contains(j.id.as_str())
            })
            .count();
    }
    assert!(kept >= 30, "only {kept} relations planned on both ends");
}
