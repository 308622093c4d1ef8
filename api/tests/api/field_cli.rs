//! Field-service commands end to end: generate → solve → check through the binary,
//! refusal of bad input with paths, and the committed JSON Schemas being current.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn despacho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_despacho"))
        .args(args)
        .output()
        .expect("the despacho binary runs")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("despacho-field-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn generate_solve_and_check_round_trip() {
    let problem = temp("p.json");
    let out = despacho(&[
        "fixtures",
        "generate",
        "--technicians",
        "4",
        "--jobs",
        "20",
        "--seed",
        "2",
        "--city",
        "lisbon",
        "--out",
        path_str(&problem),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = despacho(&[
        "solve",
        "--problem",
        path_str(&problem),
        "--seconds",
        "1",
        "--iterations",
        "200",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned: usize = plan["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stops"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        planned + plan["unassigned"].as_array().unwrap().len(),
        20,
        "every job is planned or explained"
    );
    assert_eq!(
        plan["kpis"]["jobs_assigned"].as_u64().unwrap() as usize,
        planned
    );
    let plan_path = temp("plan.json");
    std::fs::write(&plan_path, &out.stdout).unwrap();
    let out = despacho(&[
        "check",
        "--problem",
        path_str(&problem),
        "--plan",
        path_str(&plan_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["feasible"], Value::Bool(true));

    // A tampered plan fails the check with exit code 1 and names the place.
    let mut bad = plan.clone();
    let first = &mut bad["routes"][0]["stops"][0];
    first["start"] = Value::String("2000-01-01T00:00:00+00:00".into());
    std::fs::write(&plan_path, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = despacho(&[
        "check",
        "--problem",
        path_str(&problem),
        "--plan",
        path_str(&plan_path),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.starts_with("$.routes[0].stops[0]")),
        "{paths:?}"
    );
}

#[test]
fn solve_prints_a_lower_bound_next_to_the_cost_of_a_tiny_day() {
    let problem = temp("tiny.json");
    let out = despacho(&[
        "fixtures",
        "generate",
        "--technicians",
        "2",
        "--jobs",
        "8",
        "--seed",
        "3",
        "--out",
        path_str(&problem),
    ]);
    assert!(out.status.success());
    let out = despacho(&[
        "solve",
        "--problem",
        path_str(&problem),
        "--seconds",
        "5",
        "--iterations",
        "500",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // "...; cost 1234.56 (lower bound 1100.00: at most 12.2 % above the optimum)"
    let bound: f64 = stderr
        .split("(lower bound ")
        .nth(1)
        .and_then(|rest| rest.split([':', ')']).next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no lower bound in {stderr}"));
    let cost = plan["cost"]["total"].as_f64().unwrap();
    assert!(bound > 0.0 && bound <= cost, "bound {bound}, cost {cost}");
}

#[test]
fn a_bad_problem_is_refused_with_every_mistake_listed() {
    let problem = temp("bad.json");
    let out = despacho(&[
        "fixtures",
        "generate",
        "--technicians",
        "2",
        "--jobs",
        "3",
        "--out",
        path_str(&problem),
    ]);
    assert!(out.status.success());
    let mut p: Value = serde_json::from_str(&std::fs::read_to_string(&problem).unwrap()).unwrap();
    p["jobs"][1]["place"]["lat"] = Value::from(123.0);
    p["jobs"][2]["id"] = p["jobs"][0]["id"].clone();
    std::fs::write(&problem, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = despacho(&["solve", "--problem", path_str(&problem), "--seconds", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("$.jobs[1].place"), "{stderr}");
    assert!(stderr.contains("coordinates_out_of_range"), "{stderr}");
    assert!(
        stderr.contains("$.jobs[2].id") && stderr.contains("duplicate_id"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no plan for a bad problem");
}

#[test]
fn committed_schemas_match_the_types() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schema");
    for kind in ["problem", "plan"] {
        let out = despacho(&["schema", kind]);
        assert!(out.status.success());
        let committed = std::fs::read_to_string(docs.join(format!("{kind}.schema.json"))).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            committed,
            "docs/schema/{kind}.schema.json is stale: run `despacho schema {kind} > docs/schema/{kind}.schema.json`"
        );
    }
}
