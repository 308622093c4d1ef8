//! The dispatcher's day plans (issue 7): optimise into a stored draft, read it with KPIs
//! and unassigned reasons, manual changes answered with feasibility and delta, locks
//! kept across re-optimisation, publishing, the audit log and roles; each on SQLite and
//! PostgreSQL.

use crate::common::*;
use axum::http::StatusCode;
use despacho_api::server::Role;
use serde_json::{json, Value};

const DAY: &str = "2026-03-02";

/// t1 splices fibre and configures PPPoE; t2 only configures PPPoE. Both work
/// 08:00–17:00 on 2026-03-02 with a 45-minute lunch break.
fn technicians() -> Vec<Value> {
    let t1 = technician("t1");
    let mut t2 = technician("t2");
    t2["skills"] = json!({"pppoe": 2});
    t2["home"] = json!({"lat": -23.57, "lon": -46.66});
    vec![t1, t2]
}

/// A 60-minute job needing `skill`, at a place near Av. Paulista, startable in
/// `window` (local hours on 2026-03-02).
fn day_job(id: &str, skill: &str, window: (u32, u32), k: f64) -> Value {
    json!({
        "id": id,
        "kind": "repair",
        "place": {"lat": -23.55 - 0.004 * k, "lon": -46.63 - 0.003 * k},
        "duration_minutes": 60,
        "required_skills": {skill: 1},
        "windows": [{"start": format!("{DAY}T{:02}:00:00-03:00", window.0),
                     "end": format!("{DAY}T{:02}:00:00-03:00", window.1)}],
        "priority": 5
    })
}

/// Two technicians, 2 fibre jobs, 4 PPPoE jobs (one due 08:00–09:00), one job needing
/// a skill nobody has. Returns a dispatcher key.
async fn setup(s: &TestServer) -> String {
    let settings = json!({"time_zone": "America/Sao_Paulo"});
    let r = s.put("/v1/settings", Some(&s.admin_key), &settings).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for t in technicians() {
        let r = s.post("/v1/technicians", Some(&s.admin_key), &t).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let jobs = [
        day_job("f1", "fiber_splicing", (8, 16), 1.0),
        day_job("f2", "fiber_splicing", (8, 16), 2.0),
        day_job("p1", "pppoe", (8, 16), 3.0),
        day_job("p2", "pppoe", (8, 16), 4.0),
        day_job("p3", "pppoe", (8, 16), 5.0),
        day_job("early", "pppoe", (8, 9), 0.5),
        day_job("x1", "copper", (8, 16), 1.5),
    ];
    for j in jobs {
        let r = s
            .post("/v1/jobs", Some(&s.admin_key), &json!({"job": j}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    s.key(Role::Dispatcher, None).await.1
}

async fn optimize(s: &TestServer, key: &str, seed: u64) -> Value {
    let r = s
        .post(
            &format!("/v1/plans/{DAY}/optimize"),
            Some(key),
            &json!({"seconds": 1, "seed": seed, "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn change(s: &TestServer, key: &str, body: Value) -> Value {
    let r = s
        .post(&format!("/v1/plans/{DAY}/changes"), Some(key), &body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn read(s: &TestServer, key: &str) -> Value {
    let r = s.get(&format!("/v1/plans/{DAY}"), Some(key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

/// Technician id → its jobs in order.
fn routes(view: &Value) -> Vec<(String, Vec<String>)> {
    view["plan"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["technician"].as_str().unwrap().to_owned(),
                r["stops"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["job"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn route_of(view: &Value, technician: &str) -> Vec<String> {
    routes(view)
        .into_iter()
        .find(|(t, _)| t == technician)
        .map(|(_, jobs)| jobs)
        .unwrap_or_default()
}

fn technician_of(view: &Value, job: &str) -> Option<String> {
    routes(view)
        .into_iter()
        .find(|(_, jobs)| jobs.iter().any(|j| j == job))
        .map(|(t, _)| t)
}

async fn optimize_stores_a_draft_with_kpis_and_reasons(s: TestServer) {
    let key = setup(&s).await;
    let view = optimize(&s, &key, 1).await;
    assert_eq!(view["state"], "draft");
    assert_eq!(view["version"], 1);
    assert_eq!(view["origin"], "optimize");
    assert!(view["violations"].as_array().unwrap().is_empty(), "{view}");
    // Fibre jobs only with t1; every job but x1 planned.
    assert_eq!(technician_of(&view, "f1").as_deref(), Some("t1"));
    assert_eq!(technician_of(&view, "f2").as_deref(), Some("t1"));
    let unassigned = view["plan"]["unassigned"].as_array().unwrap();
    assert_eq!(unassigned.len(), 1, "{view}");
    assert_eq!(unassigned[0]["job"], "x1");
    assert_eq!(unassigned[0]["reason"], "no_skilled_technician");
    assert_eq!(
        view["kpis"]["unassigned_by_reason"]["no_skilled_technician"],
        1
    );
    // Per-stop times, travel and the break come from the solver's evaluation.
    let route = &view["plan"]["routes"][0];
    assert!(route["stops"][0]["start"]
        .as_str()
        .unwrap()
        .starts_with(DAY));
    assert!(route["stops"][0]["travel_km"].as_f64().unwrap() > 0.0);
    assert!(route["break_taken"]["start"].is_string(), "{route}");
    // KPIs: the day's (the solver's) and one entry per technician working that day.
    assert_eq!(view["kpis"]["solver"]["jobs_assigned"], 6);
    assert_eq!(view["kpis"]["on_time_pct"], 100.0);
    let techs = view["kpis"]["technicians"].as_array().unwrap();
    assert_eq!(techs.len(), 2);
    let jobs: u64 = techs.iter().map(|t| t["jobs"].as_u64().unwrap()).sum();
    assert_eq!(jobs, 6);
    for t in techs.iter().filter(|t| t["jobs"].as_u64().unwrap() > 0) {
        assert!(t["travel_km"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["utilisation"].as_f64().unwrap() > 0.0, "{t}");
        assert_eq!(t["on_time_pct"], 100.0);
    }
    assert!(view["places"]["jobs"]["f1"]["lat"].is_f64());
    assert!(view["places"]["technicians"]["t2"]["lon"].is_f64());

    // Stored: GET gives the same version; the routes table has one row per visit.
    let read_back = read(&s, &key).await;
    assert_eq!(read_back["id"], view["id"]);
    assert_eq!(read_back["plan"], view["plan"]);
    let stops: i64 = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM plan_stops WHERE plan_id = $1")
            .bind(view["id"].as_str().unwrap())
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(stops, 6);
    // A second optimisation is a new version.
    let again = optimize(&s, &key, 2).await;
    assert_eq!(again["version"], 2);
}
both_backends!(optimize_stores_a_draft_with_kpis_and_reasons);

async fn a_feasible_move_answers_with_delta_and_is_stored(s: TestServer) {
    let key = setup(&s).await;
    let view = optimize(&s, &key, 1).await;
    // A PPPoE job moves to the other technician, last in the route.
    let (job, from) = ["p1", "p2", "p3"]
        .iter()
        .map(|j| (j.to_string(), technician_of(&view, j).unwrap()))
        .next()
        .unwrap();
    let to = if from == "t1" { "t2" } else { "t1" };
    let body = json!({"move": {"job": job, "to": to}, "version": 1});
    // A dry run answers without storing.
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    let preview = change(&s, &key, dry).await;
    assert_eq!(preview["applied"], false);
    assert_eq!(read(&s, &key).await["version"], 1);

    let answer = change(&s, &key, body).await;
    assert_eq!(answer["applied"], true);
    assert_eq!(answer["version"], 2);
    assert_eq!(answer["feasible"], true, "{answer}");
    assert!(answer["violations"].as_array().unwrap().is_empty());
    assert_eq!(answer["cost_delta"], preview["cost_delta"]);
    // Both routes changed and were priced by the solver.
    let priced: Vec<&str> = answer["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["technician"].as_str().unwrap())
        .collect();
    assert_eq!(priced.len(), 2, "{answer}");
    let delta: f64 = answer["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost_after"].as_f64().unwrap() - r["cost_before"].as_f64().unwrap())
        .sum();
    assert!(
        (delta - answer["cost_delta"].as_f64().unwrap()).abs() < 0.02,
        "{answer}"
    );
    // The solver's plan was locally optimal, so a forced move does not make it cheaper.
    assert!(answer["cost_delta"].as_f64().unwrap() >= -0.01, "{answer}");
    // The moved job has a new ETA.
    let eta = answer["eta_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job"] == job.as_str())
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(eta["technician"], to);
    assert!(eta["start_after"].is_string());

    let now = read(&s, &key).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["origin"], "change");
    assert_eq!(route_of(&now, to)[0], job);

    // A change made on an old version is refused.
    let stale = s
        .post(
            &format!("/v1/plans/{DAY}/changes"),
            Some(&key),
            &json!({"unassign": {"job": job}, "version": 1}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.text);
    assert_eq!(stale.code(), "plan_changed");

    // Unassigning costs the job's unplanned penalty (priority 5 × 100 000 by default).
    let unassigned = change(&s, &key, json!({"unassign": {"job": job}})).await;
    assert!(
        unassigned["cost_delta"].as_f64().unwrap() > 400_000.0,
        "{unassigned}"
    );
    let now = read(&s, &key).await;
    assert!(technician_of(&now, &job).is_none());
    assert!(now["plan"]["unassigned"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["job"] == job.as_str()));
}
both_backends!(a_feasible_move_answers_with_delta_and_is_stored);

async fn an_infeasible_move_lists_its_violations(s: TestServer) {
    let key = setup(&s).await;
    let view = optimize(&s, &key, 1).await;
    // Fibre splicing to a technician who cannot splice: answered, never stored.
    let answer = change(
        &s,
        &key,
        json!({"move": {"job": "f1", "to": "t2", "position": 0}}),
    )
    .await;
    assert_eq!(answer["feasible"], false, "{answer}");
    assert_eq!(answer["applied"], false, "{answer}");
    assert!(answer["cost_delta"].is_null());
    let v = &answer["violations"][0];
    assert_eq!(v["code"], "skill_missing", "{answer}");
    assert_eq!(v["technician"], "t2");
    assert_eq!(v["job"], "f1");
    assert!(v["message"].as_str().unwrap().contains("fiber_splicing"));
    assert_eq!(read(&s, &key).await["version"], 1);

    // The 08:00–09:00 job put last on the longest route misses its window.
    let (tech, jobs) = routes(&view)
        .into_iter()
        .max_by_key(|(_, j)| j.len())
        .unwrap();
    let position = jobs.iter().filter(|j| *j != "early").count();
    let answer = change(
        &s,
        &key,
        json!({"move": {"job": "early", "to": tech, "position": position}}),
    )
    .await;
    assert_eq!(answer["feasible"], false, "{answer}");
    assert_eq!(answer["applied"], true);
    let codes: Vec<&str> = answer["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"window_missed"), "{answer}");
    assert!(answer["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["job"] == "early"));
    let late = answer["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["technician"] == tech.as_str())
        .unwrap();
    assert!(
        late["time_warp_minutes"].as_f64().unwrap() > 0.0,
        "{answer}"
    );

    // The stored draft shows the violation and its KPIs count the late visit; it cannot
    // be published as it is.
    let now = read(&s, &key).await;
    assert!(!now["violations"].as_array().unwrap().is_empty());
    assert!(
        now["kpis"]["on_time_pct"].as_f64().unwrap() < 100.0,
        "{now}"
    );
    let r = s
        .post(&format!("/v1/plans/{DAY}/publish"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "plan_infeasible");
}
both_backends!(an_infeasible_move_lists_its_violations);

/// The stop of `job` in the plan of `view` (or of a change's evaluation).
fn stop_of(view: &Value, job: &str) -> Value {
    view["plan"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["stops"].as_array().unwrap().iter())
        .find(|s| s["job"] == job)
        .cloned()
        .unwrap_or_else(|| panic!("{job} is not planned: {view}"))
}

/// How many visits of the stored version `view` have a pinned earliest start.
async fn pinned_stops(s: &TestServer, view: &Value) -> i64 {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM plan_stops WHERE plan_id = $1 AND not_before IS NOT NULL",
        )
        .bind(view["id"].as_str().unwrap())
        .fetch_one(pool)
        .await
    })
    .unwrap()
}

fn instant(t: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap()
}

async fn a_move_in_time_starts_no_earlier_and_keeps_its_pin(s: TestServer) {
    let key = setup(&s).await;
    optimize(&s, &key, 1).await;
    let pin = json!(format!("{DAY}T14:30:00-03:00"));
    // p1 (08:00–16:00) to t2 at 14:30: placed among t2's visits by that time, no
    // position given.
    let answer = change(
        &s,
        &key,
        json!({"move": {"job": "p1", "to": "t2", "start": pin}}),
    )
    .await;
    assert_eq!(answer["applied"], true, "{answer}");
    assert_eq!(answer["feasible"], true, "{answer}");
    assert!(answer["violations"].as_array().unwrap().is_empty());
    assert!(answer["cost_delta"].is_f64(), "{answer}");
    let eta = answer["eta_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job"] == "p1")
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(eta["technician"], "t2");
    assert!(instant(&eta["start_after"]) >= instant(&pin), "{answer}");

    let view = read(&s, &key).await;
    let t2 = route_of(&view, "t2");
    let at = t2.iter().position(|j| j == "p1").unwrap();
    let p1 = stop_of(&view, "p1");
    assert!(instant(&p1["start"]) >= instant(&pin), "{p1}");
    // Visits before p1 on t2 start before the time asked, those after it later.
    for (i, job) in t2.iter().enumerate().filter(|(i, _)| *i != at) {
        let start = instant(&stop_of(&view, job)["start"]);
        assert_eq!(i < at, start < instant(&pin), "{job} at {i}: {t2:?}");
    }
    assert!(view["violations"].as_array().unwrap().is_empty(), "{view}");

    // With a position given, p1 goes there (first) and still starts no earlier than
    // 14:30; a later change that does not name a time (a lock) keeps the pin.
    let a = change(
        &s,
        &key,
        json!({"move": {"job": "p1", "to": "t2", "start": pin, "position": 0}}),
    )
    .await;
    assert_eq!(a["applied"], true, "{a}");
    let first = stop_of(&read(&s, &key).await, "p1");
    assert_eq!(route_of(&read(&s, &key).await, "t2")[0], "p1");
    assert!(instant(&first["start"]) >= instant(&pin), "{first}");
    change(&s, &key, json!({"lock": {"job": "p1"}})).await;
    let locked = read(&s, &key).await;
    assert!(instant(&stop_of(&locked, "p1")["start"]) >= instant(&pin));
    assert_eq!(pinned_stops(&s, &locked).await, 1);
    // A move without `start` drops the pin.
    change(
        &s,
        &key,
        json!({"move": {"job": "p1", "to": "t2", "position": 0}}),
    )
    .await;
    assert_eq!(pinned_stops(&s, &read(&s, &key).await).await, 0);
}
both_backends!(a_move_in_time_starts_no_earlier_and_keeps_its_pin);

async fn a_move_in_time_past_the_window_or_shift_is_infeasible(s: TestServer) {
    let key = setup(&s).await;
    let view = optimize(&s, &key, 1).await;
    let tech = technician_of(&view, "early").unwrap();
    // `early` may start 08:00–09:00; asked for 11:00 it misses its window.
    let late = json!(format!("{DAY}T11:00:00-03:00"));
    let dry = change(
        &s,
        &key,
        json!({"move": {"job": "early", "to": tech, "start": late}, "dry_run": true}),
    )
    .await;
    assert_eq!(dry["applied"], false);
    assert_eq!(dry["feasible"], false, "{dry}");
    assert!(
        dry["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["code"] == "window_missed" && v["job"] == "early"),
        "{dry}"
    );
    assert!(dry["cost_delta"].is_f64(), "{dry}");
    assert_eq!(read(&s, &key).await["version"], 1);

    let answer = change(
        &s,
        &key,
        json!({"move": {"job": "early", "to": tech, "start": late}}),
    )
    .await;
    assert_eq!(answer["applied"], true);
    assert_eq!(answer["feasible"], false);
    assert_eq!(answer["violations"], dry["violations"]);
    let stored = read(&s, &key).await;
    assert!(instant(&stop_of(&stored, "early")["start"]) >= instant(&late));
    assert!(stored["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["code"] == "window_missed" && v["job"] == "early"));
    // A later, unrelated change still judges `early` at 11:00.
    let other = change(&s, &key, json!({"lock": {"job": "f1"}})).await;
    assert_eq!(other["applied"], true);
    assert!(read(&s, &key).await["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["code"] == "window_missed" && v["job"] == "early"));

    // At 16:30 the visit (window until 16:00) misses its window; it still ends within
    // the shift's overtime, so only the window is broken.
    let answer = change(
        &s,
        &key,
        json!({"move": {"job": "p1", "to": "t2", "start": format!("{DAY}T16:30:00-03:00")},
               "dry_run": true}),
    )
    .await;
    assert_eq!(answer["feasible"], false, "{answer}");
    let codes: Vec<&str> = answer["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"window_missed"), "{answer}");
    assert!(answer["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["job"] == "p1" && v["code"] == "window_missed"));
    // 22:00 local is 01:00 UTC the next day, still the plan's day in São Paulo; no
    // visit can start then and end within the shift: refused, never stored.
    let version = read(&s, &key).await["version"].clone();
    let answer = change(
        &s,
        &key,
        json!({"move": {"job": "p1", "to": "t2", "start": "2026-03-03T01:00:00Z"}}),
    )
    .await;
    assert_eq!(answer["applied"], false, "{answer}");
    assert_eq!(answer["feasible"], false, "{answer}");
    assert_eq!(answer["violations"][0]["code"], "shift_overrun", "{answer}");
    assert_eq!(answer["violations"][0]["job"], "p1", "{answer}");
    assert_eq!(read(&s, &key).await["version"], version);
}
both_backends!(a_move_in_time_past_the_window_or_shift_is_infeasible);

async fn a_move_in_time_with_a_bad_start_is_a_422_naming_it(s: TestServer) {
    let key = setup(&s).await;
    optimize(&s, &key, 1).await;
    let changes = format!("/v1/plans/{DAY}/changes");
    let cases = [
        (json!("14:30"), "invalid_time"),
        (json!("2026-03-02T14:30:00"), "invalid_time"),
        (json!("2026-03-03T10:00:00-03:00"), "other_day"),
        // 02:00 UTC on the plan's date is still 1 March in São Paulo.
        (json!("2026-03-02T02:00:00Z"), "other_day"),
    ];
    for (start, code) in cases {
        let body = json!({"move": {"job": "p1", "to": "t2", "start": start}});
        let r = s.post(&changes, Some(&key), &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.paths(), ["$.move.start"], "{body}: {}", r.text);
        assert!(r.text.contains(code), "{body}: {}", r.text);
    }
    let r = s
        .post(
            &changes,
            Some(&key),
            &json!({"move": {"job": "p1", "to": "t2", "start": 1430}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("start"), "{}", r.text);
    assert_eq!(read(&s, &key).await["version"], 1);
}
both_backends!(a_move_in_time_with_a_bad_start_is_a_422_naming_it);

/// A visit moved in time keeps its time when the day is optimised again: the search
/// sees the pin as the start of the job's windows, and the new version keeps the pin.
async fn a_move_in_time_survives_reoptimisation(s: TestServer) {
    let key = setup(&s).await;
    optimize(&s, &key, 1).await;
    let pin = json!(format!("{DAY}T15:00:00-03:00"));
    let a = change(
        &s,
        &key,
        json!({"move": {"job": "p2", "to": "t2", "start": pin}}),
    )
    .await;
    assert_eq!(a["applied"], true, "{a}");
    for seed in [1, 7] {
        let again = optimize(&s, &key, seed).await;
        assert_eq!(again["origin"], "optimize");
        let p2 = stop_of(&again, "p2");
        assert!(
            instant(&p2["start"]) >= instant(&pin),
            "seed {seed}: p2 starts before its pin: {p2}"
        );
        assert_eq!(pinned_stops(&s, &again).await, 1, "seed {seed}");
        assert!(
            again["violations"].as_array().unwrap().is_empty(),
            "{again}"
        );
    }
}
both_backends!(a_move_in_time_survives_reoptimisation);

async fn locked_jobs_keep_technician_and_order_across_reoptimisation(s: TestServer) {
    let key = setup(&s).await;
    let view = optimize(&s, &key, 1).await;
    // Put two PPPoE jobs on t2 in a chosen order (p3 then p1), and lock both.
    for (job, position) in [("p3", 0), ("p1", 1)] {
        let from = technician_of(&read(&s, &key).await, job);
        if from.as_deref() == Some("t2") {
            change(&s, &key, json!({"unassign": {"job": job}})).await;
        }
        let a = change(
            &s,
            &key,
            json!({"move": {"job": job, "to": "t2", "position": position}}),
        )
        .await;
        assert_eq!(a["applied"], true, "{a}");
        change(&s, &key, json!({"lock": {"job": job}})).await;
    }
    let before = read(&s, &key).await;
    let mut locked: Vec<&str> = before["locked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap())
        .collect();
    locked.sort();
    assert_eq!(locked, ["p1", "p3"]);
    assert!(view["version"].as_i64().unwrap() < before["version"].as_i64().unwrap());
    for seed in [1, 7] {
        let again = optimize(&s, &key, seed).await;
        let t2 = route_of(&again, "t2");
        let (i3, i1) = (
            t2.iter().position(|j| j == "p3"),
            t2.iter().position(|j| j == "p1"),
        );
        assert!(
            matches!((i3, i1), (Some(a), Some(b)) if a < b),
            "seed {seed}: {t2:?}"
        );
        let mut still: Vec<&str> = again["locked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j.as_str().unwrap())
            .collect();
        still.sort();
        assert_eq!(still, ["p1", "p3"]);
    }
    // Unlocked, the job is free again.
    let a = change(&s, &key, json!({"unlock": {"job": "p1"}})).await;
    assert!(a["routes"].as_array().unwrap().is_empty());
    assert_eq!(read(&s, &key).await["locked"], json!(["p3"]));
}
both_backends!(locked_jobs_keep_technician_and_order_across_reoptimisation);

async fn publish_then_changes_are_tracked_and_audited(s: TestServer) {
    let key = setup(&s).await;
    optimize(&s, &key, 1).await;
    let publish = format!("/v1/plans/{DAY}/publish");
    let r = s.post(&publish, Some(&key), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["version"], 1);
    let view = read(&s, &key).await;
    assert_eq!(view["state"], "published");
    assert_eq!(view["published_version"], 1);
    assert!(view["published_at"].is_string());
    assert!(view["changes_since_publish"].as_array().unwrap().is_empty());
    let again = s.post(&publish, Some(&key), &json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_published");

    // A change after publishing: a new draft; the published version stays visible.
    change(&s, &key, json!({"lock": {"job": "f1"}})).await;
    let view = read(&s, &key).await;
    assert_eq!(view["version"], 2);
    assert_eq!(view["state"], "draft");
    assert_eq!(view["published_version"], 1);
    let since = view["changes_since_publish"].as_array().unwrap();
    assert_eq!(since.len(), 1, "{view}");
    assert_eq!(since[0]["action"], "change");
    assert_eq!(since[0]["details"]["change"]["lock"]["job"], "f1");

    // Publishing again supersedes version 1.
    let r = s.post(&publish, Some(&key), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let states: Vec<(i32, String)> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as("SELECT version, state FROM plans WHERE date = $1 ORDER BY version")
            .bind(DAY)
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert_eq!(
        states,
        [(1, "superseded".to_owned()), (2, "published".to_owned())]
    );

    // The audit log: who did what, in order.
    let r = s.get(&format!("/v1/plans/{DAY}/audit"), Some(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let entries = r.json["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["optimize", "publish", "change", "publish"]);
    assert!(entries
        .iter()
        .all(|e| e["actor_role"] == "dispatcher" && e["at"].is_string()));
    assert_eq!(entries[0]["details"]["seconds"], 1);
    assert_eq!(entries[2]["version"], 2);
}
both_backends!(publish_then_changes_are_tracked_and_audited);

async fn chatbot_and_technician_keys_are_refused(s: TestServer) {
    let _ = setup(&s).await;
    let (_, chatbot) = s.key(Role::Chatbot, None).await;
    let (_, tech) = s.key(Role::Technician, Some("t1")).await;
    for key in [&chatbot, &tech] {
        for path in ["optimize", "changes", "publish"] {
            let r = s
                .post(&format!("/v1/plans/{DAY}/{path}"), Some(key), &json!({}))
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        }
        for path in [format!("/v1/plans/{DAY}"), format!("/v1/plans/{DAY}/audit")] {
            let r = s.get(&path, Some(key)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        }
    }
    let r = s.get(&format!("/v1/plans/{DAY}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
both_backends!(chatbot_and_technician_keys_are_refused);

async fn bad_input_is_a_4xx_naming_the_field(s: TestServer) {
    let key = setup(&s).await;
    let r = s.get("/v1/plans/2026-13-45", Some(&key)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["date"]);
    let r = s.get(&format!("/v1/plans/{DAY}"), Some(&key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let changes = format!("/v1/plans/{DAY}/changes");
    let r = s
        .post(&changes, Some(&key), &json!({"lock": {"job": "p1"}}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = s
        .post(
            &format!("/v1/plans/{DAY}/optimize"),
            Some(&key),
            &json!({"seconds": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.seconds"]);

    optimize(&s, &key, 1).await;
    let cases = [
        (json!({}), "$"),
        (json!({"lock": {"job": "p1"}, "unlock": {"job": "p1"}}), "$"),
        (json!({"move": {"job": "nope", "to": "t1"}}), "$.move.job"),
        (json!({"move": {"job": "p1", "to": "t9"}}), "$.move.to"),
        (
            json!({"move": {"job": "p1", "to": "t1", "position": 99}}),
            "$.move.position",
        ),
        (json!({"move": {"job": "p1"}}), "$.move.to"),
        (json!({"swap": {"a": "p1", "b": "x1"}}), "$.swap.b"),
        (json!({"lock": {"job": "x1"}}), "$.lock.job"),
        (json!({"teleport": {"job": "p1"}}), "$.teleport"),
    ];
    for (body, path) in cases {
        let r = s.post(&changes, Some(&key), &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.paths(), [path], "{body}: {}", r.text);
    }
    let r = s
        .post_raw(&changes, Some(&key), "application/json", "{not json")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Nothing was stored by the refused changes.
    assert_eq!(read(&s, &key).await["version"], 1);
}
both_backends!(bad_input_is_a_4xx_naming_the_field);

async fn the_dispatch_page_is_served_from_the_binary(s: TestServer) {
    let page = s.get("/dispatch", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .content_type
        .as_deref()
        .unwrap()
        .starts_with("text/html"));
    for asset in ["/dispatch/app.js", "/dispatch/style.css"] {
        assert!(page.text.contains(asset), "{asset}");
        let r = s.get(asset, None).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        // Nothing from another origin: no CDN, no internet at run time.
        assert!(
            !r.text.contains("https://") && !r.text.contains("http://cdn"),
            "{asset}"
        );
    }
    assert!(!page.text.contains("https://"));
    let script = s.get("/dispatch/app.js", None).await.text;
    for endpoint in [
        "/optimize",
        "/changes",
        "/publish",
        "sessionStorage",
        "dry_run",
        "/v1/plan-runs/",
        "/cancel",
    ] {
        assert!(script.contains(endpoint), "{endpoint}");
    }
}
both_backends!(the_dispatch_page_is_served_from_the_binary);

/// SLA at risk (issue 7): a visit planned after its SLA due time, or less than 30 minutes
/// before it, is listed for the day and counted on its technician; one with slack is not.
async fn kpis_list_visits_at_risk_of_their_sla(s: TestServer) {
    let key = setup(&s).await;
    // Due at 08:10: no start in 08:00–16:00 leaves 30 minutes, so it is at risk.
    let mut tight = day_job("sla-tight", "pppoe", (8, 16), 6.0);
    tight["sla_due"] = json!(format!("{DAY}T08:10:00-03:00"));
    // Due at 16:00 but must start by 10:00: at least 6 hours of slack.
    let mut easy = day_job("sla-easy", "pppoe", (8, 10), 7.0);
    easy["sla_due"] = json!(format!("{DAY}T16:00:00-03:00"));
    for j in [tight, easy] {
        let r = s
            .post("/v1/jobs", Some(&s.admin_key), &json!({"job": j}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let view = optimize(&s, &key, 1).await;
    let technician = technician_of(&view, "sla-tight").expect("sla-tight is planned");
    assert!(technician_of(&view, "sla-easy").is_some());
    let risks = view["kpis"]["sla_at_risk"].as_array().unwrap();
    assert_eq!(risks.len(), 1, "{risks:?}");
    assert_eq!(risks[0]["job"], "sla-tight");
    assert_eq!(risks[0]["technician"], technician.as_str());
    assert!(risks[0]["slack_minutes"].as_f64().unwrap() < 30.0);
    for t in view["kpis"]["technicians"].as_array().unwrap() {
        let expected = usize::from(t["technician"] == technician.as_str());
        assert_eq!(t["sla_at_risk"], expected, "{t}");
    }
}
both_backends!(kpis_list_visits_at_risk_of_their_sla);

/// The phone shows exactly the technician's published visits, in order, with the
/// plan's times.
fn assert_phone_shows_route(
    phone: &serde_json::Map<String, Value>,
    view: &Value,
    technician: &str,
) {
    let route = route_of(view, technician);
    let jobs: Vec<&str> = phone
        .keys()
        .filter_map(|k| k.strip_prefix("job/"))
        .collect();
    let mut expected: Vec<&str> = route.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(jobs, expected, "{technician}'s phone: {phone:?}");
    let Some(plan) = phone.get(&format!("plan/{DAY}")) else {
        assert!(
            route.is_empty(),
            "{technician}'s phone has no plan: {phone:?}"
        );
        return;
    };
    assert_eq!(plan["version"], view["version"]);
    let planned = view["plan"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["technician"] == technician)
        .unwrap();
    let stops = plan["stops"].as_array().unwrap();
    assert_eq!(stops.len(), route.len());
    for (k, (stop, planned)) in stops
        .iter()
        .zip(planned["stops"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(stop["position"], k);
        assert_eq!(stop["job"], planned["job"]);
        assert_eq!(stop["start"], planned["start"]);
        assert_eq!(stop["end"], planned["end"]);
    }
}

/// Publishing hands the plan to the phones (issue 7 and 8): each technician's next pull
/// shows exactly their published visits with times; a re-publish that moved a visit
/// takes it off one phone and puts it on the other.
async fn publishing_puts_exactly_the_published_visits_on_each_phone(s: TestServer) {
    let key = setup(&s).await;
    let t1 = s.key(Role::Technician, Some("t1")).await.1;
    let t2 = s.key(Role::Technician, Some("t2")).await.1;
    optimize(&s, &key, 1).await;
    // Give t2 a PPPoE visit (the solver may leave t2 idle on this small day).
    let moved = "p2";
    let answer = change(&s, &key, json!({"move": {"job": moved, "to": "t2"}})).await;
    assert_eq!(answer["feasible"], true, "{answer}");
    // A draft reaches no phone.
    assert!(phone_view(&s, &t1, "t1").await.is_empty());
    let r = s
        .post(&format!("/v1/plans/{DAY}/publish"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let view = read(&s, &key).await;
    assert_eq!(route_of(&view, "t2"), [moved]);
    for (tech, tech_key) in [("t1", &t1), ("t2", &t2)] {
        let phone = phone_view(&s, tech_key, tech).await;
        assert!(
            phone.contains_key(&format!("plan/{DAY}")),
            "{tech}: {phone:?}"
        );
        assert_phone_shows_route(&phone, &view, tech);
    }

    // Move it back to t1, and publish again.
    let answer = change(&s, &key, json!({"move": {"job": moved, "to": "t1"}})).await;
    assert_eq!(answer["feasible"], true, "{answer}");
    let r = s
        .post(&format!("/v1/plans/{DAY}/publish"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let view = read(&s, &key).await;
    assert_eq!(technician_of(&view, moved).as_deref(), Some("t1"));
    let phone1 = phone_view(&s, &t1, "t1").await;
    let phone2 = phone_view(&s, &t2, "t2").await;
    assert!(phone1.contains_key(&format!("job/{moved}")));
    assert!(!phone2.contains_key(&format!("job/{moved}")));
    // t2 has no route any more: their day plan is gone from the phone too.
    assert!(!phone2.contains_key(&format!("plan/{DAY}")), "{phone2:?}");
    assert_phone_shows_route(&phone1, &view, "t1");
    assert_phone_shows_route(&phone2, &view, "t2");
}
both_backends!(publishing_puts_exactly_the_published_visits_on_each_phone);
