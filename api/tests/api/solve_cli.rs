//! `despacho solve` end to end: runs the built binary and checks its output against
//! the instance file, recomputed here independently of the solver.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/solomon")
        .join(name)
}

fn despacho(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_despacho"))
        .args(args)
        .output()
        .expect("the despacho binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One customer row of a Solomon file: (CUST NO., x, y, ready, due, service).
#[derive(Clone, Copy, Debug)]
struct Row {
    number: u32,
    x: i64,
    y: i64,
    ready: i64,
    due: i64,
    service: i64,
}

/// The customer rows (depot first): every line of exactly seven integers.
fn rows_of(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| {
            let v: Vec<i64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            (v.len() == 7).then(|| Row {
                number: v[0] as u32,
                x: v[1],
                y: v[2],
                ready: v[4],
                due: v[5],
                service: v[6],
            })
        })
        .collect()
}

/// DIMACS rule in tenths: floor(10 * euclid).
fn tenths(a: Row, b: Row) -> i64 {
    let (dx, dy) = ((a.x - b.x) as f64, (a.y - b.y) as f64);
    (10.0 * (dx * dx + dy * dy).sqrt()).floor() as i64
}

fn solve_c101() -> (Output, Value) {
    let path = fixture("C101.txt");
    let out = despacho(&[
        "solve",
        "--solomon",
        path.to_str().unwrap(),
        "--iterations",
        "20",
        "--seconds",
        "5",
    ]);
    assert!(out.status.success(), "despacho failed: {}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    // Exactly one JSON object: from_str rejects anything after it.
    let json: Value = serde_json::from_str(&stdout).expect("stdout is one JSON object");
    (out, json)
}

#[test]
fn solve_prints_one_json_object_of_the_documented_shape() {
    let (out, json) = solve_c101();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");

    let object = json.as_object().expect("a JSON object");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = vec!["instance", "distance", "vehicles", "seconds", "routes"];
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);

    assert_eq!(json["instance"], "C101");
    assert!(json["distance"].as_f64().unwrap() > 0.0);
    let seconds = json["seconds"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&seconds), "seconds = {seconds}");
    let routes = json["routes"].as_array().unwrap();
    assert_eq!(json["vehicles"].as_u64().unwrap() as usize, routes.len());
    for r in routes {
        assert!(
            !r.as_array().unwrap().is_empty(),
            "empty routes are omitted"
        );
    }

    // The distance is printed with at most one decimal.
    let after = stdout.split("\"distance\":").nth(1).unwrap();
    let token: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let decimals = token.split('.').nth(1).map_or(0, str::len);
    assert!(decimals <= 1, "distance printed as {token}");
}

#[test]
fn solve_visits_every_customer_exactly_once() {
    let (_, json) = solve_c101();
    let mut seen: Vec<u64> = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=100).collect::<Vec<u64>>());
}

#[test]
fn solve_reports_the_distance_of_its_routes_and_meets_every_window() {
    let (_, json) = solve_c101();
    let rows = rows_of(&fixture("C101.txt"));
    assert_eq!(rows.len(), 101);
    let depot = rows[0];
    let by_number = |n: u64| *rows.iter().find(|r| r.number as u64 == n).unwrap();

    let mut total = 0;
    for route in json["routes"].as_array().unwrap() {
        let mut stops = vec![depot];
        stops.extend(
            route
                .as_array()
                .unwrap()
                .iter()
                .map(|c| by_number(c.as_u64().unwrap())),
        );
        stops.push(depot);
        // Travel time equals distance; times in tenths.
        let mut t = depot.ready * 10;
        for pair in stops.windows(2) {
            let d = tenths(pair[0], pair[1]);
            total += d;
            t += d;
            let next = pair[1];
            assert!(t <= next.due * 10, "customer {} reached late", next.number);
            t = t.max(next.ready * 10) + next.service * 10;
        }
    }
    let distance = json["distance"].as_f64().unwrap();
    assert_eq!(distance, total as f64 / 10.0, "recomputed {total} tenths");
}

#[test]
fn malformed_file_names_the_path_and_line() {
    let text = std::fs::read_to_string(fixture("C101.txt")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Line 11 is the row of customer 1 (line 10 is the depot).
    assert!(lines[10].trim_start().starts_with("1 "), "{}", lines[10]);
    lines[10] = "    1      45         oops       10        912        967         90".into();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("malformed_C101.txt");
    std::fs::write(&path, lines.join("\n")).unwrap();

    let out = despacho(&[
        "solve",
        "--solomon",
        path.to_str().unwrap(),
        "--seconds",
        "1",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("line 11"), "{err}");
    assert!(err.contains("oops"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = despacho(&["solve", "--solomon", "no/such/file.txt", "--seconds", "1"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(err.contains("cannot read no/such/file.txt"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn seconds_must_be_positive_and_finite() {
    let path = fixture("C101.txt");
    for bad in ["0", "-1", "nan", "inf", "ten"] {
        let out = despacho(&[
            "solve",
            "--solomon",
            path.to_str().unwrap(),
            "--seconds",
            bad,
        ]);
        let err = stderr(&out);
        assert!(!out.status.success(), "--seconds {bad} was accepted");
        assert!(out.stdout.is_empty());
        assert!(err.contains("--seconds"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn lower_bound_is_printed_on_request_and_bounds_the_distance() {
    let path = fixture("C101.txt");
    let out = despacho(&[
        "solve",
        "--solomon",
        path.to_str().unwrap(),
        "--iterations",
        "20",
        "--seconds",
        "5",
        "--lower-bound",
    ]);
    assert!(out.status.success(), "despacho failed: {}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let bound = json["lower_bound"]
        .as_f64()
        .expect("a bound for 100 customers");
    let distance = json["distance"].as_f64().unwrap();
    // C101's optimum is 827.3: a sound bound is at most that, and not trivial.
    assert!(bound > 0.0 && bound <= 827.3, "bound {bound}");
    assert!(
        bound <= distance,
        "bound {bound} above the plan's {distance}"
    );
}
