//! The booking flow: slot search, bookings with idempotency keys, the last-slot race,
//! holds, reschedule, cancel and roles, each on SQLite and PostgreSQL.

use crate::common::*;
use axum::http::{header, Method, Request, StatusCode};
use despacho_api::server::Role;
use serde_json::{json, Value};
use std::sync::Arc;

/// Concurrent bookings of the one free slot in the last-slot race (RELIABILITY.md asks 200).
const RACERS: usize = 200;

/// Requests with one idempotency key, concurrently and then one after another
/// (RELIABILITY.md asks 50 of each).
const SAME_KEY: usize = 50;

const PLACE: (f64, f64) = (-23.56, -46.65);

/// A technician living at the customer's place (no travel) whose days are 08:00–10:00
/// on `dates`: room for exactly one 100-minute visit a day. With `long`, 08:00–17:00.
fn technician_on(id: &str, dates: &[&str], long: bool) -> Value {
    let mut t = technician(id);
    t["home"] = json!({"lat": PLACE.0, "lon": PLACE.1});
    let end = if long { "17:00:00" } else { "10:00:00" };
    t["shifts"] = dates
        .iter()
        .map(|d| json!({"date": d, "start": "08:00:00", "end": end, "overtime_minutes": 0}))
        .collect();
    t
}

/// A repair of 100 minutes at the technician's home, from 2026-03-02 for `days` days.
fn slot_request(days: u32) -> Value {
    json!({
        "place": {"lat": PLACE.0, "lon": PLACE.1},
        "kind": "repair",
        "duration_minutes": 100,
        "required_skills": {"fiber_splicing": 1},
        "earliest_day": "2026-03-02",
        "days": days,
        "window_minutes": 120
    })
}

/// Stores `technician` and returns a chatbot key.
async fn setup(s: &TestServer, technician: Value) -> String {
    let r = s
        .post("/v1/technicians", Some(&s.admin_key), &technician)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    s.key(Role::Chatbot, None).await.1
}

async fn search(s: &TestServer, key: &str, request: &Value) -> Vec<Value> {
    let r = s.post("/v1/slots/search", Some(key), request).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "ok", "{}", r.text);
    r.json["slots"].as_array().unwrap().clone()
}

fn token(slot: &Value) -> String {
    slot["slot_token"].as_str().unwrap().to_owned()
}

fn idempotent_request(
    path: &str,
    key: &str,
    idem: &str,
    body: &Value,
) -> Request<axum::body::Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", idem)
        .body(axum::body::Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn post_idem(s: &TestServer, path: &str, key: &str, idem: &str, body: &Value) -> Reply {
    s.send(idempotent_request(path, key, idem, body)).await
}

async fn count_bookings(s: &TestServer) -> i64 {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM bookings")
            .fetch_one(pool)
            .await
    })
    .unwrap()
}

fn actions(booking: &Value) -> Vec<String> {
    booking["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_booked_slot_is_no_longer_offered(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], false)).await;
    let slots = search(&s, &key, &slot_request(1)).await;
    assert_eq!(slots.len(), 1, "{slots:?}");
    let slot = &slots[0];
    assert!(slot["start"]
        .as_str()
        .unwrap()
        .starts_with("2026-03-02T08:00"));
    assert!(slot["grade"].as_u64().is_some() && slot["expires_at"].is_string());

    let body = json!({"slot_token": token(slot)});
    let r = post_idem(&s, "/v1/bookings", &key, "k1", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["status"], "confirmed");
    assert_eq!(r.json["technician"], "t1");
    assert_eq!(r.json["date"], "2026-03-02");
    assert_eq!(r.json["window"]["start"], slot["start"]);
    let booking = r.json.clone();

    // The day is full: nothing is offered, and the old token is refused with alternatives.
    assert!(search(&s, &key, &slot_request(1)).await.is_empty());
    let r = post_idem(&s, "/v1/bookings", &key, "k2", &body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "slot_unavailable");
    assert!(r.json["alternatives"].is_array());

    // The customer finds it by its token.
    let path = format!(
        "/v1/bookings/by-token/{}",
        booking["token"].as_str().unwrap()
    );
    let r = s.get(&path, Some(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["id"], booking["id"]);

    // Bad input: the paths of the problems; a forged token; no idempotency key.
    let mut bad = slot_request(0);
    bad["duration_minutes"] = json!(0);
    let r = s.post("/v1/slots/search", Some(&key), &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let paths = r.paths();
    assert!(
        paths.contains(&"$.duration_minutes".to_owned()),
        "{paths:?}"
    );
    assert!(paths.contains(&"$.days".to_owned()), "{paths:?}");
    let mut forged = token(slot);
    forged.insert(3, 'x');
    let r = post_idem(
        &s,
        "/v1/bookings",
        &key,
        "k3",
        &json!({"slot_token": forged}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), vec!["$.slot_token".to_owned()]);
    let r = s.post("/v1/bookings", Some(&key), &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "missing_idempotency_key");
}

async fn the_last_slot_goes_to_exactly_one_request(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], false)).await;
    let slots = search(&s, &key, &slot_request(1)).await;
    let body = json!({"slot_token": token(&slots[0])});
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (s, key, body) = (s.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                let r = post_idem(&s, "/v1/bookings", &key, &format!("race-{i}"), &body).await;
                (r.status, r.code().to_owned())
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (status, code) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert_eq!(code, "slot_unavailable"),
            other => panic!("unexpected {other} ({code})"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(count_bookings(&s).await, 1);
}

async fn an_idempotency_key_books_once(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], true)).await;
    let slots = search(&s, &key, &slot_request(1)).await;
    assert!(slots.len() > 2, "{slots:?}");
    let body = json!({"slot_token": token(&slots[0])});
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..SAME_KEY)
        .map(|_| {
            let (s, key, body) = (s.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                let r = post_idem(&s, "/v1/bookings", &key, "same-key", &body).await;
                (r.status, r.text)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    for _ in 0..SAME_KEY {
        let r = post_idem(&s, "/v1/bookings", &key, "same-key", &body).await;
        answers.push((r.status, r.text));
    }
    assert_eq!(answers.len(), 2 * SAME_KEY);
    let first = answers[0].clone();
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    for answer in &answers {
        assert_eq!(answer, &first);
    }
    assert_eq!(count_bookings(&s).await, 1);

    // The same key with another body is refused.
    let other = json!({"slot_token": token(&slots[1])});
    let r = post_idem(&s, "/v1/bookings", &key, "same-key", &other).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.code(), "idempotency_key_reused");
    assert_eq!(count_bookings(&s).await, 1);
}

async fn a_hold_counts_until_it_expires(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], false)).await;
    let slots = search(&s, &key, &slot_request(1)).await;
    let hold = json!({"slot_token": token(&slots[0]), "ttl_seconds": 1});
    let r = post_idem(&s, "/v1/holds", &key, "h1", &hold).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["status"], "held");
    assert!(r.json["expires_at"].is_string());
    let held = r.json["id"].as_str().unwrap().to_owned();

    // Held: not offered, not bookable.
    assert!(search(&s, &key, &slot_request(1)).await.is_empty());
    let r = post_idem(
        &s,
        "/v1/bookings",
        &key,
        "b1",
        &json!({"slot_token": token(&slots[0])}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let again = search(&s, &key, &slot_request(1)).await;
    assert_eq!(again.len(), 1);
    let r = s
        .post(&format!("/v1/holds/{held}/confirm"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "hold_expired");

    // A live hold confirms.
    let hold = json!({"slot_token": token(&again[0]), "ttl_seconds": 300});
    let r = post_idem(&s, "/v1/holds", &key, "h2", &hold).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let r = s
        .post(&format!("/v1/holds/{id}/confirm"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "confirmed");
    assert!(r.json["expires_at"].is_null());
    let r = s.get(&format!("/v1/bookings/{id}"), Some(&key)).await;
    assert_eq!(actions(&r.json), ["held", "confirmed"]);
    let r = post_idem(
        &s,
        "/v1/holds",
        &key,
        "h3",
        &json!({"slot_token": token(&again[0]), "ttl_seconds": 5000}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}

async fn reschedule_and_cancel_are_recorded(s: TestServer) {
    let key = setup(
        &s,
        technician_on("t1", &["2026-03-02", "2026-03-03"], false),
    )
    .await;
    let slots = search(&s, &key, &slot_request(2)).await;
    assert_eq!(slots.len(), 2, "{slots:?}");
    let on = |date: &str| {
        slots
            .iter()
            .find(|s| s["start"].as_str().unwrap().starts_with(date))
            .map(token)
            .unwrap()
    };
    let (monday, tuesday) = (on("2026-03-02"), on("2026-03-03"));
    let r = post_idem(
        &s,
        "/v1/bookings",
        &key,
        "k1",
        &json!({"slot_token": monday}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();

    let r = s
        .post(
            &format!("/v1/bookings/{id}/reschedule"),
            Some(&key),
            &json!({"slot_token": tuesday}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["date"], "2026-03-03");
    // Monday is free again, Tuesday is taken.
    let free = search(&s, &key, &slot_request(2)).await;
    assert_eq!(free.len(), 1, "{free:?}");
    assert!(free[0]["start"].as_str().unwrap().starts_with("2026-03-02"));

    let r = s
        .post(&format!("/v1/bookings/{id}/cancel"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "cancelled");
    let r = s.get(&format!("/v1/bookings/{id}"), Some(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(actions(&r.json), ["booked", "rescheduled", "cancelled"]);
    assert_eq!(
        r.json["history"][1]["details"]["from"]["date"],
        "2026-03-02"
    );
    assert_eq!(search(&s, &key, &slot_request(2)).await.len(), 2);

    let r = s
        .post(
            &format!("/v1/bookings/{id}/reschedule"),
            Some(&key),
            &json!({"slot_token": monday}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "booking_cancelled");
    let r = s.get("/v1/bookings/bkg_unknown", Some(&key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

async fn technicians_may_not_book(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], false)).await;
    let slots = search(&s, &key, &slot_request(1)).await;
    let body = json!({"slot_token": token(&slots[0])});
    let r = post_idem(&s, "/v1/bookings", &key, "k1", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (id, customer_token) = (
        r.json["id"].as_str().unwrap().to_owned(),
        r.json["token"].as_str().unwrap().to_owned(),
    );
    let (_, tech) = s.key(Role::Technician, Some("t1")).await;
    let posts = [
        "/v1/slots/search".to_owned(),
        "/v1/bookings".to_owned(),
        "/v1/holds".to_owned(),
        format!("/v1/holds/{id}/confirm"),
        format!("/v1/bookings/{id}/reschedule"),
        format!("/v1/bookings/{id}/cancel"),
    ];
    for path in &posts {
        let r = post_idem(&s, path, &tech, "t-key", &slot_request(1)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        let r = s.post(path, None, &body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.text);
    }
    for path in [
        format!("/v1/bookings/{id}"),
        format!("/v1/bookings/by-token/{customer_token}"),
    ] {
        let r = s.get(&path, Some(&tech)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        let r = s.get(&path, Some(&s.admin_key)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
}

/// Books visits of mixed lengths on two technicians' day, adds open jobs, re-plans the
/// day: every booking is planned inside its promised window, and the planned times the
/// bookings show never overlap for a technician.
async fn replanning_keeps_every_booking_in_its_promised_window(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], true)).await;
    let r = s
        .post(
            "/v1/technicians",
            Some(&s.admin_key),
            &technician_on("t2", &["2026-03-02"], true),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut booked = Vec::new();
    for k in 0..10 {
        let mut request = slot_request(1);
        request["duration_minutes"] = json!([30, 45, 60, 90][k % 4]);
        request["place"] =
            json!({"lat": PLACE.0 + 0.004 * k as f64, "lon": PLACE.1 - 0.003 * k as f64});
        let slots = search(&s, &key, &request).await;
        let Some(slot) = slots.first() else { break };
        let r = post_idem(
            &s,
            "/v1/bookings",
            &key,
            &format!("plan-{k}"),
            &json!({"slot_token": token(slot)}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        booked.push(r.json.clone());
    }
    assert!(booked.len() >= 6, "only {} booked", booked.len());
    // Open work competing for the same day.
    for k in 0..6 {
        let mut j = job(&format!("open-{k}"), None);
        j["place"] = json!({"lat": PLACE.0 - 0.005 * k as f64, "lon": PLACE.1 + 0.004 * k as f64});
        j["windows"] = json!([{"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T17:00:00Z"}]);
        let r = s
            .post("/v1/jobs", Some(&s.admin_key), &json!({"job": j}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = s
        .post(
            "/v1/plans/solve",
            Some(&s.admin_key),
            &json!({"date": "2026-03-02", "seconds": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let plan = r.json;
    let stops: Vec<&Value> = plan["routes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|route| route["stops"].as_array().unwrap())
        .collect();
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    for b in &booked {
        let stop = stops
            .iter()
            .find(|st| st["job"] == b["id"])
            .unwrap_or_else(|| panic!("booking {} is not planned: {plan}", b["id"]));
        let start = time(&stop["start"]);
        assert!(
            time(&b["window"]["start"]) <= start && start <= time(&b["window"]["end"]),
            "booking {} starts at {start}, outside {}",
            b["id"],
            b["window"]
        );
    }
    // The bookings' own planned times: inside the window, no overlap per technician.
    let mut spans = Vec::new();
    for b in &booked {
        let r = s
            .get(
                &format!("/v1/bookings/{}", b["id"].as_str().unwrap()),
                Some(&key),
            )
            .await;
        let planned = &r.json["planned"];
        let (start, end) = (time(&planned["start"]), time(&planned["end"]));
        assert!(time(&b["window"]["start"]) <= start && start <= time(&b["window"]["end"]));
        assert_eq!(
            (end - start).num_minutes(),
            b["duration_minutes"].as_i64().unwrap()
        );
        spans.push((
            r.json["technician"].as_str().unwrap().to_owned(),
            start,
            end,
        ));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].0 != pair[1].0 || pair[0].2 <= pair[1].1,
            "{pair:?} overlap"
        );
    }
    // A dispatcher's call: bad input is named.
    let r = s
        .post(
            "/v1/plans/solve",
            Some(&s.admin_key),
            &json!({"date": "2026-03-02", "seconds": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.seconds"]);
    let r = s
        .post(
            "/v1/plans/solve",
            Some(&key),
            &json!({"date": "2026-03-02"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

/// The repair reserve set in the settings keeps room for repairs: with half of a 2-hour
/// day reserved, a 100-minute installation is not offered, a 100-minute repair is.
async fn the_repair_reserve_keeps_room_for_repairs(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], false)).await;
    let mut installation = slot_request(1);
    installation["kind"] = json!("installation");
    assert_eq!(
        search(&s, &key, &installation).await.len(),
        1,
        "default reserve 0.1"
    );
    let settings = json!({"time_zone": "UTC", "repair_reserve": 0.5});
    let r = s.put("/v1/settings", Some(&s.admin_key), &settings).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(search(&s, &key, &installation).await.is_empty());
    assert_eq!(search(&s, &key, &slot_request(1)).await.len(), 1);
}

/// Issue 26: the repair reserve holds at booking time too. A 120-minute day with the
/// default 10 % reserve offers one 60-minute installation slot; booking that token twice
/// (two idempotency keys) used to give 201 and 201 and a full day — the second is a 409
/// now, and a repair still fits.
async fn the_repair_reserve_holds_at_booking_time(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], false)).await;
    let mut installation = slot_request(1);
    installation["kind"] = json!("installation");
    installation["duration_minutes"] = json!(60);
    let slots = search(&s, &key, &installation).await;
    assert_eq!(slots.len(), 1, "{slots:?}");
    let body = json!({"slot_token": token(&slots[0])});
    let first = post_idem(&s, "/v1/bookings", &key, "first", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = post_idem(&s, "/v1/bookings", &key, "second", &body).await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.text);
    assert_eq!(second.code(), "slot_unavailable");
    assert_eq!(count_bookings(&s).await, 1);
    // The reserve is there for a repair.
    let mut repair = slot_request(1);
    repair["duration_minutes"] = json!(30);
    let slots = search(&s, &key, &repair).await;
    assert!(!slots.is_empty());
    let r = post_idem(
        &s,
        "/v1/bookings",
        &key,
        "repair",
        &json!({"slot_token": token(&slots[0])}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// The slot search keeps the parsed technicians between requests: every change to them
/// is seen by the next search, whether made through the API or by hand in the database.
async fn the_slot_search_sees_every_change_to_technicians(s: TestServer) {
    let key = setup(&s, technician_on("t1", &["2026-03-02"], false)).await;
    assert_eq!(search(&s, &key, &slot_request(1)).await.len(), 1);

    // Through the API: the shift moves to the next day.
    let moved = technician_on("t1", &["2026-03-03"], false);
    let r = s
        .put("/v1/technicians/t1", Some(&s.admin_key), &moved)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let slots = search(&s, &key, &slot_request(2)).await;
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert!(slots[0]["start"]
        .as_str()
        .unwrap()
        .starts_with("2026-03-03"));

    // By hand, as an operator would: a long day back on 2026-03-02.
    let long = technician_on("t1", &["2026-03-02"], true).to_string();
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query("UPDATE technicians SET data = $1 WHERE id = 't1'")
            .bind(&long)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .unwrap();
    let slots = search(&s, &key, &slot_request(2)).await;
    assert!(slots.len() > 1, "{slots:?}");
    assert!(slots
        .iter()
        .all(|x| x["start"].as_str().unwrap().starts_with("2026-03-02")));

    // A second technician, then none: the search answers for what is stored now.
    let r = s
        .post(
            "/v1/technicians",
            Some(&s.admin_key),
            &technician_on("t2", &["2026-03-03"], false),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let slots = search(&s, &key, &slot_request(2)).await;
    assert!(slots
        .iter()
        .any(|x| x["start"].as_str().unwrap().starts_with("2026-03-03")));
    for id in ["t1", "t2"] {
        let r = s
            .delete(&format!("/v1/technicians/{id}"), Some(&s.admin_key))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let r = s
        .post("/v1/slots/search", Some(&key), &slot_request(2))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Nobody is left to work those days.
    assert_eq!(r.json["status"], "no_working_day", "{}", r.text);
}

both_backends!(
    a_booked_slot_is_no_longer_offered,
    the_last_slot_goes_to_exactly_one_request,
    an_idempotency_key_books_once,
    a_hold_counts_until_it_expires,
    reschedule_and_cancel_are_recorded,
    technicians_may_not_book,
    replanning_keeps_every_booking_in_its_promised_window,
    the_repair_reserve_keeps_room_for_repairs,
    the_repair_reserve_holds_at_booking_time,
    the_slot_search_sees_every_change_to_technicians,
);
