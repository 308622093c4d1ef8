//! Background optimisation runs (issue 7): `POST /v1/plans/{date}/optimize` queues a run,
//! a worker leases it, writes progress and stores a draft; cancel (queued and while the
//! solver runs); a run whose lease expired is run again by another worker; bad input.
//! Each on SQLite and PostgreSQL.

use crate::common::*;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use despacho_api::server::dispatch::plan_runs::{RunOutcome, RunWorker, RunWorkerConfig};
use despacho_api::server::Role;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const DAY: &str = "2026-03-02";

/// Two technicians (08:00–17:00 on 2026-03-02) and five 60-minute jobs near Av. Paulista.
/// Returns a dispatcher key.
async fn setup(s: &TestServer) -> String {
    let settings = json!({"time_zone": "America/Sao_Paulo"});
    let r = s.put("/v1/settings", Some(&s.admin_key), &settings).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for t in ["t1", "t2"] {
        let r = s
            .post("/v1/technicians", Some(&s.admin_key), &technician(t))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    for k in 0..5 {
        let mut j = job(&format!("j{k}"), None);
        j["place"] =
            json!({"lat": -23.55 - 0.004 * f64::from(k), "lon": -46.63 - 0.003 * f64::from(k)});
        j["windows"] = json!([{"start": format!("{DAY}T08:00:00-03:00"), "end": format!("{DAY}T16:00:00-03:00")}]);
        let r = s
            .post("/v1/jobs", Some(&s.admin_key), &json!({"job": j}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    s.key(Role::Dispatcher, None).await.1
}

fn worker(s: &TestServer, name: &str, clock: Option<DateTime<Utc>>) -> RunWorker {
    let mut config = RunWorkerConfig {
        name: name.to_owned(),
        progress_every: Duration::from_millis(50),
        ..RunWorkerConfig::default()
    };
    if let Some(t) = clock {
        config.clock = Arc::new(move || t);
    }
    RunWorker::new(s.state.clone(), config)
}

/// Queues a run of `seconds`; returns its id.
async fn queue(s: &TestServer, key: &str, seconds: i64) -> String {
    let r = s
        .post(
            &format!("/v1/plans/{DAY}/optimize"),
            Some(key),
            &json!({"seconds": seconds, "seed": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["state"], "queued");
    assert_eq!(r.json["seconds"], seconds);
    assert_eq!(r.json["plan_version"], Value::Null);
    r.json["id"].as_str().unwrap().to_owned()
}

async fn run(s: &TestServer, key: &str, id: &str) -> Value {
    let r = s.get(&format!("/v1/plan-runs/{id}"), Some(key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn optimize_actions(s: &TestServer, key: &str) -> usize {
    let r = s.get(&format!("/v1/plans/{DAY}/audit"), Some(key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "optimize")
        .count()
}

async fn a_queued_run_is_solved_by_a_worker_into_a_draft(s: TestServer) {
    let key = setup(&s).await;
    let id = queue(&s, &key, 1).await;
    assert_eq!(run(&s, &key, &id).await["state"], "queued");

    let done = worker(&s, "node-a", None).try_run_one().await.unwrap();
    assert_eq!(
        done,
        Some((id.clone(), RunOutcome::Succeeded { plan_version: 1 }))
    );
    let r = run(&s, &key, &id).await;
    assert_eq!(r["state"], "succeeded", "{r}");
    assert_eq!(r["plan_version"], 1);
    assert_eq!(r["attempts"], 1);
    assert!(r["progress"]["iterations"].as_i64().unwrap() > 0, "{r}");
    assert_eq!(r["progress"]["jobs_planned"], 5, "{r}");
    assert!(r["progress"]["best_cost"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        r["progress"]["elapsed_seconds"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert!(r["finished_at"].is_string());

    // The draft is the day's plan, made by the dispatcher's key, and audited with the run.
    let plan = s.get(&format!("/v1/plans/{DAY}"), Some(&key)).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.text);
    assert_eq!(plan.json["version"], 1);
    assert_eq!(plan.json["state"], "draft");
    assert_eq!(plan.json["id"], r["plan_id"]);
    assert_eq!(
        plan.json["kpis"]["solver"]["jobs_assigned"], 5,
        "{}",
        plan.text
    );
    let audit = s.get(&format!("/v1/plans/{DAY}/audit"), Some(&key)).await;
    assert_eq!(audit.json["entries"][0]["details"]["run"], id.as_str());
    assert_eq!(audit.json["entries"][0]["actor_role"], "dispatcher");

    // Nothing left to claim; cancelling a finished run is refused.
    assert_eq!(
        worker(&s, "node-b", None).try_run_one().await.unwrap(),
        None
    );
    let r = s
        .post(
            &format!("/v1/plan-runs/{id}/cancel"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "run_finished");
}
both_backends!(a_queued_run_is_solved_by_a_worker_into_a_draft);

async fn a_cancelled_queued_run_is_never_solved(s: TestServer) {
    let key = setup(&s).await;
    let id = queue(&s, &key, 1).await;
    let r = s
        .post(
            &format!("/v1/plan-runs/{id}/cancel"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["state"], "cancelled");
    assert_eq!(r.json["cancel_requested"], true);
    assert_eq!(
        worker(&s, "node-a", None).try_run_one().await.unwrap(),
        None
    );
    assert_eq!(run(&s, &key, &id).await["state"], "cancelled");
    let plan = s.get(&format!("/v1/plans/{DAY}"), Some(&key)).await;
    assert_eq!(plan.status, StatusCode::NOT_FOUND, "{}", plan.text);
}
both_backends!(a_cancelled_queued_run_is_never_solved);

async fn cancelling_a_running_run_stops_the_solver_early(s: TestServer) {
    let key = setup(&s).await;
    let id = queue(&s, &key, 60).await;
    let w = worker(&s, "node-a", None);
    let claim = w.claim(None).await.unwrap().expect("the run is claimed");
    let solving = tokio::spawn(async move { w.execute(claim).await });
    // Wait for the first progress write (the solver is searching), then cancel.
    loop {
        let r = run(&s, &key, &id).await;
        assert_eq!(r["state"], "running", "{r}");
        if r["progress"]["iterations"].is_i64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = s
        .post(
            &format!("/v1/plan-runs/{id}/cancel"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["state"], "running");
    assert_eq!(r.json["cancel_requested"], true);

    let outcome = solving.await.unwrap().unwrap();
    assert_eq!(outcome, RunOutcome::Cancelled);
    let r = run(&s, &key, &id).await;
    assert_eq!(r["state"], "cancelled", "{r}");
    // The solve stopped well before its 60-second budget.
    assert!(
        r["progress"]["elapsed_seconds"].as_f64().unwrap() < 60.0,
        "{r}"
    );
    assert_eq!(r["plan_version"], Value::Null);
    let plan = s.get(&format!("/v1/plans/{DAY}"), Some(&key)).await;
    assert_eq!(plan.status, StatusCode::NOT_FOUND, "{}", plan.text);
}
both_backends!(cancelling_a_running_run_stops_the_solver_early);

async fn a_run_whose_lease_expired_is_run_again_by_another_worker(s: TestServer) {
    let key = setup(&s).await;
    let id = queue(&s, &key, 1).await;
    let t0 = Utc::now();
    // Node A claims the run and dies (never executes it, never renews its lease).
    let a = worker(&s, "node-a", Some(t0));
    let claim_a = a.claim(None).await.unwrap().expect("A claims the run");
    let r = run(&s, &key, &id).await;
    assert_eq!(r["state"], "running");
    assert_eq!(r["attempts"], 1);
    // Within A's lease nobody else may take it.
    let b_early = worker(&s, "node-b", Some(t0 + TimeDelta::seconds(5)));
    assert!(b_early.claim(None).await.unwrap().is_none());

    // After the lease, node B takes it over and finishes it.
    let b = worker(&s, "node-b", Some(t0 + TimeDelta::minutes(10)));
    let done = b.try_run_one().await.unwrap();
    assert_eq!(
        done,
        Some((id.clone(), RunOutcome::Succeeded { plan_version: 1 }))
    );
    let r = run(&s, &key, &id).await;
    assert_eq!(r["state"], "succeeded");
    assert_eq!(r["attempts"], 2);

    // A comes back: its lease is gone, so it stores nothing.
    assert_eq!(a.execute(claim_a).await.unwrap(), RunOutcome::LeaseLost);
    let plan = s.get(&format!("/v1/plans/{DAY}"), Some(&key)).await;
    assert_eq!(plan.json["version"], 1, "{}", plan.text);
    assert_eq!(optimize_actions(&s, &key).await, 1);
}
both_backends!(a_run_whose_lease_expired_is_run_again_by_another_worker);

async fn a_run_whose_workers_keep_dying_ends_failed(s: TestServer) {
    let key = setup(&s).await;
    let id = queue(&s, &key, 1).await;
    let t0 = Utc::now();
    // Three claims (the default `max_attempts`), each left to expire.
    for k in 0..3 {
        let w = worker(&s, "dies", Some(t0 + TimeDelta::minutes(10 * k)));
        assert!(w.claim(None).await.unwrap().is_some(), "claim {k}");
    }
    let late = worker(&s, "late", Some(t0 + TimeDelta::minutes(40)));
    assert_eq!(late.try_run_one().await.unwrap(), None);
    let r = run(&s, &key, &id).await;
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["attempts"], 3);
    assert!(r["error"].as_str().unwrap().contains("3 times"), "{r}");
}
both_backends!(a_run_whose_workers_keep_dying_ends_failed);

async fn bad_run_input_is_a_4xx_naming_the_field(s: TestServer) {
    let key = setup(&s).await;
    let optimize = format!("/v1/plans/{DAY}/optimize");
    let cases = [
        (json!({"seconds": -5}), "$.seconds"),
        (json!({"seconds": 0}), "$.seconds"),
        (json!({"seconds": 61}), "$.seconds"),
        (json!({"seed": -1}), "$.seed"),
    ];
    for (body, path) in cases {
        let r = s.post(&optimize, Some(&key), &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.paths(), [path], "{body}: {}", r.text);
    }
    // Both problems at once are both named.
    let r = s
        .post(&optimize, Some(&key), &json!({"seconds": -1, "seed": -1}))
        .await;
    assert_eq!(r.paths(), ["$.seconds", "$.seed"], "{}", r.text);
    // Wrong type, unknown field: 422 naming the field.
    let r = s
        .post(&optimize, Some(&key), &json!({"seconds": "ten"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("seconds"), "{}", r.text);
    let r = s.post(&optimize, Some(&key), &json!({"budget": 5})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("budget"), "{}", r.text);
    // A bad date.
    let r = s
        .post("/v1/plans/2026-02-30/optimize", Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["date"]);
    // Unknown runs.
    let r = s.get("/v1/plan-runs/run_nope", Some(&key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(r.text.contains("run_nope"), "{}", r.text);
    let r = s
        .post("/v1/plan-runs/run_nope/cancel", Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Nothing was queued by the refused requests.
    assert_eq!(
        worker(&s, "node-a", None).try_run_one().await.unwrap(),
        None
    );
    // Roles: a chat bot or technician key may not queue nor read runs.
    let id = queue(&s, &key, 1).await;
    for role in [Role::Chatbot, Role::Technician] {
        let tech = (role == Role::Technician).then_some("t1");
        let other = s.key(role, tech).await.1;
        let r = s.post(&optimize, Some(&other), &json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {}", r.text);
        let r = s.get(&format!("/v1/plan-runs/{id}"), Some(&other)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {}", r.text);
    }
}
both_backends!(bad_run_input_is_a_4xx_naming_the_field);
