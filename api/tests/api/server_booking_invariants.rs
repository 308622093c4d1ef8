//! The booking promises under load (RELIABILITY.md, "Tests that back the claims" 2, 4 and
//! 5, and the idempotency keys' 7 days), each on SQLite and PostgreSQL:
//!
//! - 500 concurrent bookings of mixed durations keep every technician-day within its
//!   capacity, with `booked_minutes` equal to its confirmed visits;
//! - a storm of 1,000 random concurrent book / hold / confirm / cancel / reschedule /
//!   retry operations ends without a 5xx or a stuck transaction, with the counters,
//!   planned times and histories consistent;
//! - seeded random sequences of the same operations match an in-memory model (which
//!   predicts each refusal with the solver's own joint check);
//! - a refusal is remembered with its key, and keys are new again after 7 days.
//!
//! The invariants are re-checked from the tables by `common::booking_invariants`.

use crate::common::booking_invariants as inv;
use crate::common::*;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, Utc};
use despacho_api::server::Role;
use despacho_solver::field::input::{JobInput, WindowInput};
use despacho_solver::field::slots::{
    check_visit, request_job, BookedVisit, Operation, SlotRequest,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The customers' area (São Paulo) and the places around it the visits are at.
const CENTER: (f64, f64) = (-23.56, -46.65);
const OFFSETS: [(f64, f64); 4] = [(0.0, 0.0), (0.006, 0.004), (-0.005, 0.003), (0.003, -0.007)];
const DURATIONS: [u32; 5] = [30, 45, 60, 90, 120];
const DAYS: [&str; 2] = ["2026-03-02", "2026-03-03"];

fn place(i: usize) -> Value {
    let (dlat, dlon) = OFFSETS[i % OFFSETS.len()];
    json!({"lat": CENTER.0 + dlat, "lon": CENTER.1 + dlon})
}

/// A technician living near the area, working `start`–`end` on `dates` (no break, no
/// overtime: capacity is the shift).
fn technician_at(id: &str, home: usize, dates: &[&str], start: &str, end: &str) -> Value {
    let mut t = technician(id);
    t["home"] = place(home);
    t["max_jobs_per_day"] = json!(12);
    t["shifts"] = dates
        .iter()
        .map(|d| json!({"date": d, "start": start, "end": end, "overtime_minutes": 0}))
        .collect();
    t
}

/// A repair of `minutes` at place `p`, on `days` days from `day`.
fn slot_request(p: usize, minutes: u32, day: &str, days: u32) -> Value {
    json!({
        "place": place(p),
        "kind": "repair",
        "duration_minutes": minutes,
        "required_skills": {"fiber_splicing": 1},
        "earliest_day": day,
        "days": days,
        "window_minutes": 120
    })
}

/// Stores the technicians and returns a chatbot key.
async fn setup(s: &TestServer, technicians: &[Value]) -> String {
    for t in technicians {
        let r = s.post("/v1/technicians", Some(&s.admin_key), t).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    s.key(Role::Chatbot, None).await.1
}

/// Four technicians working 08:00–17:00 on both days.
async fn setup_four(s: &TestServer) -> String {
    let technicians: Vec<Value> = (0..4)
        .map(|i| technician_at(&format!("t{}", i + 1), i, &DAYS, "08:00:00", "17:00:00"))
        .collect();
    setup(s, &technicians).await
}

async fn search(s: &TestServer, key: &str, request: &Value) -> Vec<String> {
    let r = s.post("/v1/slots/search", Some(key), request).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "ok", "{}", r.text);
    r.json["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slot_token"].as_str().unwrap().to_owned())
        .collect()
}

/// Slot tokens by group (a group is one place and one duration: a booking may be
/// rescheduled only to a token of its own group), searched on both days.
async fn token_groups(s: &TestServer, key: &str) -> Vec<Vec<String>> {
    let mut groups = Vec::new();
    for p in 0..OFFSETS.len() {
        for minutes in DURATIONS {
            let tokens = search(s, key, &slot_request(p, minutes, DAYS[0], 2)).await;
            assert!(!tokens.is_empty(), "no slot for place {p}, {minutes} min");
            groups.push(tokens);
        }
    }
    groups
}

fn idempotent(path: &str, key: &str, idem: &str, body: &Value) -> Request<axum::body::Body> {
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
    s.send(idempotent(path, key, idem, body)).await
}

async fn scalar_i64(s: &TestServer, sql: &str) -> i64 {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await
    })
    .unwrap()
}

fn id_of(r: &Reply) -> String {
    r.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", r.text))
        .to_owned()
}

/// Fails on any 5xx, showing the request.
fn no_server_error(what: &str, r: &Reply) {
    assert!(
        !r.status.is_server_error(),
        "{what}: {} {}",
        r.status,
        r.text
    );
}

// ---------------------------------------------------------------------------------------
// 1. Day capacity under 500 concurrent bookings

const CAPACITY_BOOKINGS: usize = 500;

/// The answers to booking requests: bookings made (id → minutes), refusals, and the
/// requests answered 503.
#[derive(Default)]
struct Outcome {
    created: BTreeMap<String, i64>,
    refused: usize,
    busy: Vec<usize>,
}

impl Outcome {
    fn account(&mut self, i: usize, r: &Reply) {
        match r.status {
            StatusCode::CREATED => {
                assert_eq!(r.json["status"], "confirmed", "{}", r.text);
                let minutes = r.json["duration_minutes"].as_i64().unwrap();
                let new = self.created.insert(id_of(r), minutes).is_none();
                assert!(new, "an id twice: {}", r.text);
            }
            StatusCode::CONFLICT => {
                assert_eq!(r.code(), "slot_unavailable", "{}", r.text);
                assert!(r.json["alternatives"].is_array(), "{}", r.text);
                self.refused += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.code(), "database_busy", "{}", r.text);
                self.busy.push(i);
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
}

async fn five_hundred_mixed_duration_bookings_keep_every_day_within_capacity(s: TestServer) {
    capacity_burst(s, true).await
}

/// The same burst, with any request answered 503 retried afterwards: a 503 must have
/// written nothing, and its retry gets a real answer (the strict test above allows no
/// 503 at all; a refused booking is now turned away by the day's minute claim before the
/// feasibility check, so the burst takes ~2.5 s in a debug build).
async fn five_hundred_bookings_keep_the_invariants_when_some_are_told_to_retry(s: TestServer) {
    capacity_burst(s, false).await
}

/// 500 concurrent bookings of mixed durations; with `strict`, none may be answered 503
/// (the bar of RELIABILITY.md).
async fn capacity_burst(s: TestServer, strict: bool) {
    let started = Instant::now();
    let key = setup_four(&s).await;
    // Searched against the empty operation, day by day: many tokens promise the same
    // time of the same technician-day, so most of the bookings collide.
    let mut tokens = Vec::new();
    for p in 0..OFFSETS.len() {
        for minutes in DURATIONS {
            for day in DAYS {
                tokens.extend(search(&s, &key, &slot_request(p, minutes, day, 1)).await);
            }
        }
    }
    assert!(tokens.len() >= 100, "only {} tokens", tokens.len());
    let mut rng = fastrand::Rng::with_seed(2);
    let s = Arc::new(s);
    let bodies: Vec<Value> = (0..CAPACITY_BOOKINGS)
        .map(|_| json!({"slot_token": tokens[rng.usize(..tokens.len())]}))
        .collect();
    let tasks: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let (s, key, body) = (s.clone(), key.clone(), body.clone());
            tokio::spawn(async move {
                post_idem(&s, "/v1/bookings", &key, &format!("cap-{i}"), &body).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    let burst = started.elapsed();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for r in &replies {
        *tally
            .entry(format!("{} {}", r.status.as_u16(), r.code()))
            .or_default() += 1;
    }
    eprintln!("{:?}: answers {tally:?} after {burst:?}", s.backend);

    // Whatever was answered, the tables keep their promises; a 503 wrote nothing.
    let mut outcome = Outcome::default();
    for (i, r) in replies.iter().enumerate() {
        outcome.account(i, r);
    }
    let check = |created: &BTreeMap<String, i64>, answered: usize, refused: usize| {
        let (s, created) = (s.clone(), created.clone());
        async move {
            let summary = inv::check(&s.state.db).await;
            // Every 201 is one confirmed booking, and nothing else was written.
            assert_eq!(summary.confirmed, created.len());
            assert_eq!(summary.total, created.len());
            let stored: BTreeSet<String> = inv::bookings(&s.state.db)
                .await
                .into_iter()
                .map(|b| b.id)
                .collect();
            assert_eq!(stored, created.keys().cloned().collect::<BTreeSet<_>>());
            assert_eq!(summary.booked_minutes, created.values().sum::<i64>());
            assert_eq!(
                scalar_i64(
                    &s,
                    "SELECT COUNT(*) FROM booking_history WHERE action = 'booked'"
                )
                .await,
                created.len() as i64
            );
            // Each answer (the refusals included) is kept with its key; a 503 is not.
            assert_eq!(
                scalar_i64(
                    &s,
                    "SELECT COUNT(*) FROM idempotency_keys WHERE status = 'done'"
                )
                .await,
                answered as i64
            );
            assert_eq!(
                scalar_i64(&s, "SELECT COUNT(*) FROM idempotency_keys").await,
                answered as i64
            );
            assert_eq!(
                scalar_i64(
                    &s,
                    "SELECT COUNT(*) FROM idempotency_keys WHERE response_status = 409"
                )
                .await,
                refused as i64
            );
            summary
        }
    };
    let busy_in_burst = outcome.busy.len();
    let summary = check(
        &outcome.created,
        CAPACITY_BOOKINGS - busy_in_burst,
        outcome.refused,
    )
    .await;
    eprintln!(
        "{:?}: {} booked, {} refused, {busy_in_burst} busy; {summary:?}",
        s.backend,
        outcome.created.len(),
        outcome.refused,
    );
    assert!(
        outcome.refused > 0,
        "no booking collided: the test proves nothing"
    );
    assert!(
        outcome.created.len() >= 8,
        "only {} bookings succeeded",
        outcome.created.len()
    );

    // A 503 is "retry later": the same keys, one by one, get a real answer.
    for i in std::mem::take(&mut outcome.busy) {
        let r = post_idem(&s, "/v1/bookings", &key, &format!("cap-{i}"), &bodies[i]).await;
        assert_ne!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
        outcome.account(i, &r);
    }
    check(&outcome.created, CAPACITY_BOOKINGS, outcome.refused).await;
    assert_eq!(outcome.created.len() + outcome.refused, CAPACITY_BOOKINGS);
    eprintln!("{:?}: whole test {:?}", s.backend, started.elapsed());

    // The bar (RELIABILITY.md): 500 concurrent bookings, no 5xx.
    if !strict {
        return;
    }
    assert_eq!(
        busy_in_burst, 0,
        "{busy_in_burst} of {CAPACITY_BOOKINGS} concurrent bookings were answered 503 \
         database_busy (burst of {burst:?}: {tally:?})"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Reschedule / cancel storm

const STORM_OPERATIONS: usize = 1000;
/// Operations in flight at once (the rest wait their turn, so later operations use the
/// bookings earlier ones made).
const STORM_IN_FLIGHT: usize = 100;

/// A request answered and kept with its idempotency key.
#[derive(Clone, Debug)]
struct Answered {
    path: &'static str,
    key: String,
    body: Value,
    group: usize,
    status: StatusCode,
    text: String,
}

#[derive(Default)]
struct Registry {
    /// Booking id → its token group.
    bookings: Vec<(String, usize)>,
    /// Booking id → the action that created it (`booked`, `held`).
    created: BTreeMap<String, &'static str>,
    answered: Vec<Answered>,
    rescheduled: usize,
    counts: BTreeMap<String, usize>,
}

impl Registry {
    fn count(&mut self, what: String) {
        *self.counts.entry(what.trim_end().to_owned()).or_default() += 1;
    }
}

/// Books (or holds, with `ttl`) a token of `group` under a new key; 201 or 409
/// `slot_unavailable`, recorded.
async fn storm_book(
    s: &TestServer,
    key: &str,
    idem: String,
    registry: &Mutex<Registry>,
    group: usize,
    token: &str,
    ttl: Option<u32>,
) {
    let (path, action, body) = match ttl {
        None => ("/v1/bookings", "booked", json!({"slot_token": token})),
        Some(t) => (
            "/v1/holds",
            "held",
            json!({"slot_token": token, "ttl_seconds": t}),
        ),
    };
    let r = post_idem(s, path, key, &idem, &body).await;
    no_server_error(path, &r);
    let mut reg = registry.lock().unwrap();
    match r.status {
        StatusCode::CREATED => {
            let expected = if ttl.is_some() { "held" } else { "confirmed" };
            assert_eq!(r.json["status"], expected, "{}", r.text);
            let id = id_of(&r);
            reg.bookings.push((id.clone(), group));
            assert!(reg.created.insert(id, action).is_none(), "an id twice");
        }
        StatusCode::CONFLICT => assert_eq!(r.code(), "slot_unavailable", "{}", r.text),
        other => panic!("{path}: unexpected {other}: {}", r.text),
    }
    reg.count(format!("{action} {}", r.status.as_u16()));
    reg.answered.push(Answered {
        path,
        key: idem,
        body,
        group,
        status: r.status,
        text: r.text,
    });
}

async fn storm_operation(
    s: Arc<TestServer>,
    key: String,
    tokens: Arc<Vec<Vec<String>>>,
    registry: Arc<Mutex<Registry>>,
    i: usize,
    mut rng: fastrand::Rng,
) {
    let pick_group = |rng: &mut fastrand::Rng| rng.usize(..tokens.len());
    let pick_token =
        |rng: &mut fastrand::Rng, g: usize| tokens[g][rng.usize(..tokens[g].len())].clone();
    let booking = {
        let reg = registry.lock().unwrap();
        (!reg.bookings.is_empty()).then(|| reg.bookings[rng.usize(..reg.bookings.len())].clone())
    };
    let answered = {
        let reg = registry.lock().unwrap();
        (!reg.answered.is_empty()).then(|| reg.answered[rng.usize(..reg.answered.len())].clone())
    };
    let roll = rng.u32(..100);
    match (roll, booking, answered) {
        (0..25, _, _) | (40..85, None, _) | (85.., _, None) => {
            let g = pick_group(&mut rng);
            let token = pick_token(&mut rng, g);
            storm_book(&s, &key, format!("storm-{i}"), &registry, g, &token, None).await;
        }
        (25..40, _, _) => {
            // Mostly long holds; some lapse during the storm.
            let ttl = if rng.u32(..3) == 0 {
                rng.u32(1..=3)
            } else {
                600
            };
            let g = pick_group(&mut rng);
            let token = pick_token(&mut rng, g);
            storm_book(
                &s,
                &key,
                format!("storm-{i}"),
                &registry,
                g,
                &token,
                Some(ttl),
            )
            .await;
        }
        (40..55, Some((id, _)), _) => {
            let r = s
                .post(&format!("/v1/holds/{id}/confirm"), Some(&key), &json!({}))
                .await;
            no_server_error("confirm", &r);
            match r.status {
                StatusCode::OK => assert_eq!(r.json["status"], "confirmed", "{}", r.text),
                StatusCode::CONFLICT => assert!(
                    ["booking_cancelled", "hold_expired"].contains(&r.code()),
                    "confirm: {}",
                    r.text
                ),
                other => panic!("confirm: unexpected {other}: {}", r.text),
            }
            registry
                .lock()
                .unwrap()
                .count(format!("confirm {} {}", r.status.as_u16(), r.code()));
        }
        (55..65, Some((id, _)), _) => {
            let r = s
                .post(&format!("/v1/bookings/{id}/cancel"), Some(&key), &json!({}))
                .await;
            assert_eq!(r.status, StatusCode::OK, "cancel: {}", r.text);
            assert_eq!(r.json["status"], "cancelled", "{}", r.text);
            registry.lock().unwrap().count("cancel 200".to_owned());
        }
        (65..85, Some((id, g)), _) => {
            let same = rng.u32(..100) < 85;
            let target = if same {
                g
            } else {
                (g + 1 + rng.usize(..tokens.len() - 1)) % tokens.len()
            };
            let token = pick_token(&mut rng, target);
            let r = s
                .post(
                    &format!("/v1/bookings/{id}/reschedule"),
                    Some(&key),
                    &json!({"slot_token": token}),
                )
                .await;
            no_server_error("reschedule", &r);
            let mut reg = registry.lock().unwrap();
            match r.status {
                StatusCode::OK => {
                    assert!(
                        same,
                        "a reschedule to another visit's slot succeeded: {}",
                        r.text
                    );
                    assert_eq!(r.json["id"], id.as_str());
                    reg.rescheduled += 1;
                }
                StatusCode::CONFLICT => assert!(
                    ["slot_unavailable", "booking_cancelled", "hold_expired"].contains(&r.code()),
                    "reschedule: {}",
                    r.text
                ),
                StatusCode::UNPROCESSABLE_ENTITY => {
                    assert!(!same, "a reschedule in its own group refused: {}", r.text);
                    assert_eq!(r.paths(), ["$.slot_token"], "{}", r.text);
                    assert!(r.text.contains("slot_token_mismatch"), "{}", r.text);
                }
                other => panic!("reschedule: unexpected {other}: {}", r.text),
            }
            reg.count(format!("reschedule {} {}", r.status.as_u16(), r.code()));
        }
        (85..95, _, Some(a)) => {
            let r = post_idem(&s, a.path, &key, &a.key, &a.body).await;
            assert_eq!(
                (r.status, r.text.as_str()),
                (a.status, a.text.as_str()),
                "the retry of {} differs from its first answer",
                a.key
            );
            registry.lock().unwrap().count("retry same".to_owned());
        }
        (95.., _, Some(a)) => {
            // The same key with another slot: refused, nothing written.
            let mut body = a.body.clone();
            let g = pick_group(&mut rng);
            let mut token = pick_token(&mut rng, g);
            if Some(token.as_str()) == a.body["slot_token"].as_str() {
                token = pick_token(&mut rng, (a.group + 1) % tokens.len());
            }
            body["slot_token"] = json!(token);
            let r = post_idem(&s, a.path, &key, &a.key, &body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
            assert_eq!(r.code(), "idempotency_key_reused", "{}", r.text);
            registry
                .lock()
                .unwrap()
                .count("retry changed 422".to_owned());
        }
    }
}

async fn reschedule_cancel_storm_keeps_invariants(s: TestServer) {
    let started = Instant::now();
    let key = setup_four(&s).await;
    let tokens = Arc::new(token_groups(&s, &key).await);
    let s = Arc::new(s);
    let registry = Arc::new(Mutex::new(Registry::default()));
    let mut rng = fastrand::Rng::with_seed(4);
    // Some bookings and holds before the storm.
    for i in 0..30 {
        let g = rng.usize(..tokens.len());
        let token = tokens[g][rng.usize(..tokens[g].len())].clone();
        let ttl = (i % 3 == 2).then_some(600);
        storm_book(&s, &key, format!("pre-{i}"), &registry, g, &token, ttl).await;
    }
    assert!(!registry.lock().unwrap().bookings.is_empty());

    let turns = Arc::new(tokio::sync::Semaphore::new(STORM_IN_FLIGHT));
    let tasks: Vec<_> = (0..STORM_OPERATIONS)
        .map(|i| {
            let (s, key, tokens, registry) =
                (s.clone(), key.clone(), tokens.clone(), registry.clone());
            let (turns, seed) = (turns.clone(), rng.u64(..));
            tokio::spawn(async move {
                let _turn = turns.acquire_owned().await.unwrap();
                storm_operation(s, key, tokens, registry, i, fastrand::Rng::with_seed(seed)).await
            })
        })
        .collect();
    let all = async {
        for task in tasks {
            if let Err(e) = task.await {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("the storm did not finish within 120 s (a stuck transaction?)");
    let storm_time = started.elapsed();

    let summary = inv::check(&s.state.db).await;
    // Every operation has finished: take the registry out of its lock.
    let reg = std::mem::take(&mut *registry.lock().unwrap());
    eprintln!(
        "{:?}: storm in {storm_time:?}: {:#?}\n{summary:?}",
        s.backend, reg.counts
    );
    // The storm did something of each kind.
    for what in [
        "booked 201",
        "held 201",
        "confirm 200",
        "cancel 200",
        "retry same",
    ] {
        assert!(
            reg.counts.get(what).copied().unwrap_or(0) > 0,
            "no `{what}`: {:?}",
            reg.counts
        );
    }
    assert!(
        reg.rescheduled > 0,
        "no reschedule succeeded: {:?}",
        reg.counts
    );

    // Every booking was acknowledged once, and nothing else was written.
    let stored = inv::bookings(&s.state.db).await;
    let ids: BTreeSet<&String> = stored.iter().map(|b| &b.id).collect();
    assert_eq!(ids, reg.created.keys().collect::<BTreeSet<_>>());

    // Histories: created once, cancelled last, confirmed once after a hold, and the
    // last move is where the booking is.
    let histories = inv::histories(&s.state.db).await;
    let mut rescheduled = 0;
    for b in &stored {
        let h = histories
            .get(&b.id)
            .unwrap_or_else(|| panic!("booking {} has no history", b.id));
        let actions: Vec<&str> = h.iter().map(|(_, a, _)| a.as_str()).collect();
        let created = reg.created[&b.id];
        assert_eq!(actions[0], created, "{}: {actions:?}", b.id);
        let count = |a: &str| actions.iter().filter(|x| **x == a).count();
        assert_eq!(count("booked") + count("held"), 1, "{}: {actions:?}", b.id);
        assert!(count("cancelled") <= 1, "{}: {actions:?}", b.id);
        assert!(count("confirmed") <= 1, "{}: {actions:?}", b.id);
        match b.status.as_str() {
            "cancelled" => assert_eq!(actions.last(), Some(&"cancelled"), "{}: {actions:?}", b.id),
            "confirmed" => {
                assert_eq!(count("cancelled"), 0, "{}: {actions:?}", b.id);
                assert_eq!(
                    count("confirmed"),
                    usize::from(created == "held"),
                    "{}: {actions:?}",
                    b.id
                );
            }
            _ => assert_eq!(
                count("cancelled") + count("confirmed"),
                0,
                "{}: {actions:?}",
                b.id
            ),
        }
        if created == "booked" {
            assert_eq!(count("confirmed"), 0, "{}: {actions:?}", b.id);
        }
        let confirmed_at = actions.iter().position(|a| *a == "confirmed");
        assert!(confirmed_at.is_none_or(|i| i > 0), "{}: {actions:?}", b.id);
        rescheduled += count("rescheduled");
        let place = h
            .iter()
            .rev()
            .find_map(|(_, a, d)| match a.as_str() {
                "rescheduled" => Some(d["to"].clone()),
                "booked" | "held" => Some(d.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            place["technician"],
            b.technician_id.as_str(),
            "{}: {h:?}",
            b.id
        );
        assert_eq!(place["date"], b.date.to_string(), "{}: {h:?}", b.id);
    }
    assert_eq!(rescheduled, reg.rescheduled, "history rows of reschedules");
    assert_eq!(
        summary.cancelled,
        stored.iter().filter(|b| b.status == "cancelled").count()
    );
    eprintln!("{:?}: whole test {:?}", s.backend, started.elapsed());
}

// ---------------------------------------------------------------------------------------
// 3. Random sequences against an in-memory model

/// What a slot token promises (its payload, readable without the secret).
#[derive(Clone, Debug, Deserialize)]
struct Claim {
    technician: String,
    date: NaiveDate,
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
    request: SlotRequest,
}

/// The server's slot-token secret, as it keeps it in `settings` (made at the first
/// search).
async fn booking_secret(s: &TestServer) -> Vec<u8> {
    let value: String = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'booking_secret'")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    serde_json::from_str::<String>(&value).unwrap().into_bytes()
}

/// What a slot token promises, opened with the server's secret as the server does
/// (`v2.` + base64url of a 24-byte nonce and XChaCha20-Poly1305 ciphertext, the key
/// HMAC-SHA256 of a fixed label): the model predicts each answer from it. A customer
/// without the secret reads nothing (`bookings.rs` tests that).
fn claim_of(secret: &[u8], token: &str) -> Claim {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, KeyInit};
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
    mac.update(b"despacho slot token key v2");
    let key: [u8; 32] = mac.finalize().into_bytes().into();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.strip_prefix("v2.").expect("a slot token"))
        .expect("base64url");
    let (nonce, sealed) = bytes.split_at(24);
    let plain = chacha20poly1305::XChaCha20Poly1305::new(&key.into())
        .decrypt(chacha20poly1305::XNonce::from_slice(nonce), sealed)
        .expect("a token of this server");
    serde_json::from_slice(&plain).expect("a slot claim")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// `lapsed`: a 1-second hold the test waited out.
    Held {
        lapsed: bool,
    },
    Confirmed,
    Cancelled,
}

#[derive(Clone, Debug)]
struct ModelBooking {
    id: String,
    group: usize,
    claim: Claim,
    status: Status,
    history: Vec<&'static str>,
}

impl ModelBooking {
    fn active(&self) -> bool {
        matches!(
            self.status,
            Status::Confirmed | Status::Held { lapsed: false }
        )
    }

    fn minutes(&self) -> u32 {
        self.claim.request.duration_minutes
    }

    /// The status the API shows.
    fn shown(&self) -> &'static str {
        match self.status {
            Status::Held { lapsed: false } => "held",
            Status::Held { lapsed: true } => "expired",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }

    fn stored(&self) -> &'static str {
        match self.status {
            Status::Held { .. } => "held",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }
}

fn job_of(claim: &Claim, id: &str) -> JobInput {
    let mut job = request_job(
        &claim.request,
        WindowInput {
            start: claim.start,
            end: claim.end,
        },
    );
    job.id = id.to_owned();
    job
}

#[derive(Default)]
struct Model {
    bookings: Vec<ModelBooking>,
    answered: Vec<Answered>,
}

impl Model {
    fn get(&mut self, id: &str) -> &mut ModelBooking {
        self.bookings.iter_mut().find(|b| b.id == id).unwrap()
    }

    /// Confirmed minutes of a technician-day (without booking `except`).
    fn confirmed_minutes(&self, technician: &str, date: NaiveDate, except: Option<&str>) -> u32 {
        self.bookings
            .iter()
            .filter(|b| b.status == Status::Confirmed && Some(b.id.as_str()) != except)
            .filter(|b| b.claim.technician == technician && b.claim.date == date)
            .map(ModelBooking::minutes)
            .sum()
    }

    /// Whether a visit of `claim` fits its technician-day next to the active visits
    /// (without `except`), by the solver's joint check, as the service runs it.
    fn fits(&self, op: &Operation, claim: &Claim, except: Option<&str>) -> bool {
        let mut others: Vec<&ModelBooking> = self
            .bookings
            .iter()
            .filter(|b| b.active() && Some(b.id.as_str()) != except)
            .filter(|b| b.claim.technician == claim.technician && b.claim.date == claim.date)
            .collect();
        others.sort_by(|a, b| a.id.cmp(&b.id));
        let others: Vec<BookedVisit> = others
            .iter()
            .map(|b| BookedVisit {
                job: job_of(&b.claim, &b.id),
                technician: b.claim.technician.clone(),
                date: b.claim.date,
            })
            .collect();
        let visit = BookedVisit {
            job: job_of(claim, "candidate"),
            technician: claim.technician.clone(),
            date: claim.date,
        };
        check_visit(op, &visit, &others).is_ok()
    }
}

/// Checks an answer against the expected (status, error code); `""` for a success.
fn expect(
    outcomes: &mut BTreeMap<String, usize>,
    step: usize,
    what: &str,
    r: &Reply,
    status: StatusCode,
    code: &str,
) {
    *outcomes
        .entry(
            format!("{what} {} {code}", status.as_u16())
                .trim_end()
                .to_owned(),
        )
        .or_default() += 1;
    assert_eq!(
        (r.status, r.code()),
        (status, code),
        "step {step}, {what}: {}",
        r.text
    );
}

/// Compares a booking's view (and its history) with the model.
async fn compare_view(s: &TestServer, key: &str, step: usize, b: &ModelBooking) {
    let r = s.get(&format!("/v1/bookings/{}", b.id), Some(key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json["status"],
        b.shown(),
        "step {step}: {b:?}\n{}",
        r.text
    );
    assert_eq!(
        r.json["technician"],
        b.claim.technician.as_str(),
        "step {step}: {}",
        r.text
    );
    assert_eq!(
        r.json["date"],
        b.claim.date.to_string(),
        "step {step}: {}",
        r.text
    );
    assert_eq!(
        r.json["window"]["start"],
        json!(b.claim.start),
        "step {step}: {}",
        r.text
    );
    assert_eq!(
        r.json["window"]["end"],
        json!(b.claim.end),
        "step {step}: {}",
        r.text
    );
    assert_eq!(
        r.json["planned"].is_object(),
        b.active(),
        "step {step}: {}",
        r.text
    );
    let actions: Vec<&str> = r.json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, b.history, "step {step}: history of {}", b.id);
}

/// Compares every stored booking and day total with the model.
async fn compare_all(s: &TestServer, step: usize, model: &Model) {
    let stored = inv::bookings(&s.state.db).await;
    let mine: BTreeMap<&str, &ModelBooking> =
        model.bookings.iter().map(|b| (b.id.as_str(), b)).collect();
    for b in &stored {
        let Some(m) = mine.get(b.id.as_str()) else {
            continue; // another seed's booking
        };
        assert_eq!(b.status, m.stored(), "step {step}: {b:?} vs {m:?}");
        assert_eq!(b.technician_id, m.claim.technician, "step {step}: {b:?}");
        assert_eq!(b.date, m.claim.date, "step {step}: {b:?}");
        assert_eq!(
            b.window_start,
            m.claim.start.with_timezone(&Utc),
            "step {step}: {b:?}"
        );
    }
    let ids: BTreeSet<&str> = stored.iter().map(|b| b.id.as_str()).collect();
    for id in mine.keys() {
        assert!(ids.contains(id), "step {step}: booking {id} is missing");
    }
    for ((technician, date), (booked, _)) in inv::technician_days(&s.state.db).await {
        if model.bookings.iter().any(|b| b.claim.date == date) {
            let expected = model.confirmed_minutes(&technician, date, None);
            assert_eq!(
                booked as u32, expected,
                "step {step}: minutes of {technician} on {date}"
            );
        }
    }
}

const MODEL_STEPS: usize = 250;
const MODEL_SEEDS: [u64; 3] = [11, 12, 13];
/// 1-second holds waited out per seed (each costs a sleep).
const MODEL_EXPIRIES: usize = 2;

async fn random_sequences_match_an_in_memory_model(s: TestServer) {
    let started = Instant::now();
    // Two technicians with short days (08:00–13:00), so visits collide often; each seed
    // on two days of its own.
    let mut technicians = Vec::new();
    let mut seed_days = Vec::new();
    for (k, _) in MODEL_SEEDS.iter().enumerate() {
        let first = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap() + TimeDelta::days(2 * k as i64);
        let days = [first, first + TimeDelta::days(1)].map(|d| d.to_string());
        seed_days.push(days.clone());
        for t in 0..2 {
            let dates: Vec<&str> = days.iter().map(String::as_str).collect();
            technicians.push(technician_at(
                &format!("m{k}-t{t}"),
                t,
                &dates,
                "08:00:00",
                "13:00:00",
            ));
        }
    }
    let key = setup(&s, &technicians).await;
    let op = inv::operation(&s.state.db).await;
    let mut outcomes = BTreeMap::new();
    for (k, seed) in MODEL_SEEDS.iter().enumerate() {
        run_model(&s, &key, &op, *seed, &seed_days[k][0], &mut outcomes).await;
    }
    let summary = inv::check(&s.state.db).await;
    eprintln!(
        "{:?}: {outcomes:#?}\n{summary:?} in {:?}",
        s.backend,
        started.elapsed()
    );
    // Every kind of answer the model predicts was met.
    for what in [
        "/v1/bookings 201",
        "/v1/bookings 409 slot_unavailable",
        "/v1/holds 201",
        "/v1/holds 409 slot_unavailable",
        "confirm 200",
        "confirm 409 booking_cancelled",
        "reschedule 200",
        "reschedule 409 slot_unavailable",
        "reschedule 409 booking_cancelled",
        "reschedule 422 validation_failed",
        "changed retry 422 idempotency_key_reused",
        "cancel unknown 404 not_found",
    ] {
        assert!(outcomes.contains_key(what), "never `{what}`: {outcomes:?}");
    }
    assert!(
        summary.confirmed > 0 && summary.cancelled > 0,
        "{summary:?}"
    );
}

async fn run_model(
    s: &TestServer,
    key: &str,
    op: &Operation,
    seed: u64,
    first_day: &str,
    outcomes: &mut BTreeMap<String, usize>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    // Groups: two places × three durations, on the seed's two days.
    let mut groups: Vec<Vec<String>> = Vec::new();
    for p in 0..2 {
        for minutes in [45, 60, 90] {
            let tokens = search(s, key, &slot_request(p, minutes, first_day, 2)).await;
            assert!(!tokens.is_empty());
            groups.push(tokens);
        }
    }
    let secret = booking_secret(s).await;
    let mut model = Model::default();
    let mut expiries = 0;
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for step in 0..MODEL_STEPS {
        let roll = rng.u32(..100);
        let g = rng.usize(..groups.len());
        let token = groups[g][rng.usize(..groups[g].len())].clone();
        let target = (!model.bookings.is_empty()).then(|| rng.usize(..model.bookings.len()));
        let old = (!model.answered.is_empty()).then(|| rng.usize(..model.answered.len()));
        let idem = format!("model-{seed}-{step}");
        // The booking to look at after the step.
        let mut touched: Option<String> = None;
        let what = match (roll, target, old) {
            (0..30, _, _) | (30..85, None, _) | (85.., _, None) => {
                // Book or hold (1 in 3 a hold; a few 1-second holds waited out).
                let kind = rng.u32(..3);
                let lapse = kind == 0 && expiries < MODEL_EXPIRIES && rng.u32(..4) == 0;
                let (path, body) = match kind {
                    0 => {
                        let ttl = if lapse { 1 } else { 900 };
                        (
                            "/v1/holds",
                            json!({"slot_token": token, "ttl_seconds": ttl}),
                        )
                    }
                    _ => ("/v1/bookings", json!({"slot_token": token})),
                };
                let claim = claim_of(&secret, &token);
                let hold = path == "/v1/holds";
                let fits = model.fits(op, &claim, None)
                    && (hold
                        || model.confirmed_minutes(&claim.technician, claim.date, None)
                            + claim.request.duration_minutes
                            <= inv::shift_minutes(op, &claim.technician, claim.date).unwrap()
                                as u32);
                let r = post_idem(s, path, key, &idem, &body).await;
                if fits {
                    expect(outcomes, step, path, &r, StatusCode::CREATED, "");
                    let id = id_of(&r);
                    assert_eq!(r.json["status"], if hold { "held" } else { "confirmed" });
                    model.bookings.push(ModelBooking {
                        id: id.clone(),
                        group: g,
                        claim,
                        status: if hold {
                            Status::Held { lapsed: false }
                        } else {
                            Status::Confirmed
                        },
                        history: vec![if hold { "held" } else { "booked" }],
                    });
                    if lapse {
                        expiries += 1;
                        tokio::time::sleep(Duration::from_millis(1100)).await;
                        model.get(&id).status = Status::Held { lapsed: true };
                    }
                    touched = Some(id);
                } else {
                    expect(
                        outcomes,
                        step,
                        path,
                        &r,
                        StatusCode::CONFLICT,
                        "slot_unavailable",
                    );
                }
                model.answered.push(Answered {
                    path,
                    key: idem,
                    body,
                    group: g,
                    status: r.status,
                    text: r.text,
                });
                if hold {
                    "hold"
                } else {
                    "book"
                }
            }
            (30..45, Some(t), _) => {
                let b = model.bookings[t].clone();
                let r = s
                    .post(
                        &format!("/v1/holds/{}/confirm", b.id),
                        Some(key),
                        &json!({}),
                    )
                    .await;
                match b.status {
                    Status::Confirmed => expect(outcomes, step, "confirm", &r, StatusCode::OK, ""),
                    Status::Cancelled => expect(
                        outcomes,
                        step,
                        "confirm",
                        &r,
                        StatusCode::CONFLICT,
                        "booking_cancelled",
                    ),
                    Status::Held { lapsed: true } => expect(
                        outcomes,
                        step,
                        "confirm",
                        &r,
                        StatusCode::CONFLICT,
                        "hold_expired",
                    ),
                    Status::Held { lapsed: false } => {
                        let cap =
                            inv::shift_minutes(op, &b.claim.technician, b.claim.date).unwrap();
                        if model.confirmed_minutes(&b.claim.technician, b.claim.date, None)
                            + b.minutes()
                            <= cap as u32
                        {
                            expect(outcomes, step, "confirm", &r, StatusCode::OK, "");
                            let m = model.get(&b.id);
                            m.status = Status::Confirmed;
                            m.history.push("confirmed");
                        } else {
                            expect(
                                outcomes,
                                step,
                                "confirm",
                                &r,
                                StatusCode::CONFLICT,
                                "slot_unavailable",
                            );
                        }
                    }
                }
                touched = Some(b.id);
                "confirm"
            }
            (45..55, Some(t), _) => {
                let b = model.bookings[t].clone();
                let r = s
                    .post(
                        &format!("/v1/bookings/{}/cancel", b.id),
                        Some(key),
                        &json!({}),
                    )
                    .await;
                expect(outcomes, step, "cancel", &r, StatusCode::OK, "");
                assert_eq!(r.json["status"], "cancelled");
                let m = model.get(&b.id);
                if m.status != Status::Cancelled {
                    m.status = Status::Cancelled;
                    m.history.push("cancelled");
                }
                touched = Some(b.id);
                "cancel"
            }
            (55..75, Some(t), _) => {
                let b = model.bookings[t].clone();
                // Mostly a slot of the booking's own visit.
                let g = if rng.u32(..5) == 0 { g } else { b.group };
                let token = groups[g][rng.usize(..groups[g].len())].clone();
                let claim = claim_of(&secret, &token);
                let r = s
                    .post(
                        &format!("/v1/bookings/{}/reschedule", b.id),
                        Some(key),
                        &json!({"slot_token": token}),
                    )
                    .await;
                let what = "reschedule";
                match b.status {
                    Status::Cancelled => expect(
                        outcomes,
                        step,
                        what,
                        &r,
                        StatusCode::CONFLICT,
                        "booking_cancelled",
                    ),
                    Status::Held { lapsed: true } => expect(
                        outcomes,
                        step,
                        what,
                        &r,
                        StatusCode::CONFLICT,
                        "hold_expired",
                    ),
                    _ if g != b.group => {
                        expect(
                            outcomes,
                            step,
                            what,
                            &r,
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "validation_failed",
                        );
                        assert!(r.text.contains("slot_token_mismatch"), "{}", r.text);
                    }
                    status => {
                        let fits = model.fits(op, &claim, Some(&b.id))
                            && (status != Status::Confirmed
                                || model.confirmed_minutes(
                                    &claim.technician,
                                    claim.date,
                                    Some(&b.id),
                                ) + b.minutes()
                                    <= inv::shift_minutes(op, &claim.technician, claim.date)
                                        .unwrap() as u32);
                        if fits {
                            expect(outcomes, step, what, &r, StatusCode::OK, "");
                            let m = model.get(&b.id);
                            m.claim = claim;
                            m.history.push("rescheduled");
                        } else {
                            expect(
                                outcomes,
                                step,
                                what,
                                &r,
                                StatusCode::CONFLICT,
                                "slot_unavailable",
                            );
                        }
                    }
                }
                touched = Some(b.id);
                what
            }
            (75..85, Some(_), _) => {
                // An unknown booking.
                let r = s
                    .post(
                        "/v1/bookings/bkg_0000000000000000/cancel",
                        Some(key),
                        &json!({}),
                    )
                    .await;
                expect(
                    outcomes,
                    step,
                    "cancel unknown",
                    &r,
                    StatusCode::NOT_FOUND,
                    "not_found",
                );
                "unknown"
            }
            (85..95, _, Some(o)) => {
                let a = model.answered[o].clone();
                let r = post_idem(s, a.path, key, &a.key, &a.body).await;
                assert_eq!(
                    (r.status, r.text.as_str()),
                    (a.status, a.text.as_str()),
                    "step {step}: retry of {}",
                    a.key
                );
                "retry"
            }
            (95.., _, Some(o)) => {
                let a = model.answered[o].clone();
                let mut body = a.body.clone();
                if token.as_str() == a.body["slot_token"].as_str().unwrap() {
                    body["customer_id"] = json!("nobody");
                } else {
                    body["slot_token"] = json!(token);
                }
                let r = post_idem(s, a.path, key, &a.key, &body).await;
                expect(
                    outcomes,
                    step,
                    "changed retry",
                    &r,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                );
                "changed retry"
            }
        };
        *seen.entry(what).or_default() += 1;
        if let Some(id) = touched {
            let b = model.bookings.iter().find(|b| b.id == id).unwrap().clone();
            compare_view(s, key, step, &b).await;
        }
        if step % 25 == 24 {
            compare_all(s, step, &model).await;
        }
    }
    compare_all(s, MODEL_STEPS, &model).await;
    for b in &model.bookings {
        compare_view(s, key, MODEL_STEPS, b).await;
    }
    inv::check(&s.state.db).await;
    eprintln!("seed {seed}: {seen:?}, {expiries} holds lapsed");
    for what in [
        "book",
        "hold",
        "confirm",
        "cancel",
        "reschedule",
        "retry",
        "changed retry",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "seed {seed}: no `{what}`: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Refusals are remembered; keys are kept 7 days

async fn set_key_age(s: &TestServer, key: &str, days: i64) {
    let at = Utc::now() - TimeDelta::days(days);
    let changed = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query("UPDATE idempotency_keys SET created_at = $1 WHERE key = $2")
            .bind(at)
            .bind(key)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .unwrap();
    assert_eq!(changed, 1, "no idempotency row for {key}");
}

async fn stored_keys(s: &TestServer) -> Vec<String> {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar::<_, String>("SELECT key FROM idempotency_keys ORDER BY key")
            .fetch_all(pool)
            .await
    })
    .unwrap()
}

async fn refusals_are_remembered_and_keys_expire_after_seven_days(s: TestServer) {
    // One technician with room for exactly one 100-minute visit.
    let mut t = technician_at("t1", 0, &[DAYS[0]], "08:00:00", "10:00:00");
    t["max_jobs_per_day"] = json!(10);
    let key = setup(&s, &[t]).await;
    let request = json!({
        "place": place(0), "kind": "repair", "duration_minutes": 100,
        "required_skills": {"fiber_splicing": 1}, "earliest_day": DAYS[0], "days": 1
    });
    let tokens = search(&s, &key, &request).await;
    assert_eq!(tokens.len(), 1);
    let body = json!({"slot_token": tokens[0]});
    let bookings = || scalar_i64(&s, "SELECT COUNT(*) FROM bookings");

    let a = post_idem(&s, "/v1/bookings", &key, "a", &body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let first = id_of(&a);
    let refused = post_idem(&s, "/v1/bookings", &key, "b", &body).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "slot_unavailable");

    // The slot becomes free; the refusal is still the answer to key b.
    let r = s
        .post(
            &format!("/v1/bookings/{first}/cancel"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        search(&s, &key, &request).await.len(),
        1,
        "the slot is free again"
    );
    for _ in 0..3 {
        let r = post_idem(&s, "/v1/bookings", &key, "b", &body).await;
        assert_eq!((r.status, &r.text), (refused.status, &refused.text));
    }
    let other = search(&s, &key, &request).await;
    let r = post_idem(
        &s,
        "/v1/bookings",
        &key,
        "b",
        &json!({"slot_token": other[0]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.code(), "idempotency_key_reused");
    assert_eq!(bookings().await, 1);

    // Six days old: still answered from the key.
    set_key_age(&s, "b", 6).await;
    let r = post_idem(&s, "/v1/bookings", &key, "b", &body).await;
    assert_eq!((r.status, &r.text), (refused.status, &refused.text));
    assert_eq!(bookings().await, 1);

    // Eight days old: the key is new again, and books the free slot.
    set_key_age(&s, "b", 8).await;
    let b = post_idem(&s, "/v1/bookings", &key, "b", &body).await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.text);
    let second = id_of(&b);
    assert_ne!(second, first);
    assert_eq!(bookings().await, 2);
    let r = post_idem(&s, "/v1/bookings", &key, "b", &body).await;
    assert_eq!(
        (r.status, &r.text),
        (b.status, &b.text),
        "the new answer is kept"
    );

    // Key a: six days old, its 201 is replayed; eight days old, it is a new attempt
    // (refused: the slot is b's now).
    set_key_age(&s, "a", 6).await;
    let r = post_idem(&s, "/v1/bookings", &key, "a", &body).await;
    assert_eq!((r.status, &r.text), (a.status, &a.text));
    set_key_age(&s, "a", 8).await;
    let r = post_idem(&s, "/v1/bookings", &key, "a", &body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "slot_unavailable");
    assert_eq!(bookings().await, 2);

    // The purge removes what is older than 7 days and keeps the rest.
    let mut d_refused = String::new();
    for k in ["c", "d", "e"] {
        let r = post_idem(&s, "/v1/bookings", &key, k, &body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        if k == "d" {
            d_refused = r.text;
        }
    }
    set_key_age(&s, "c", 8).await;
    set_key_age(&s, "d", 6).await;
    set_key_age(&s, "b", 30).await;
    let purged = despacho_api::server::booking::bookings::purge_idempotency_keys(&s.state.db)
        .await
        .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(stored_keys(&s).await, ["a", "d", "e"]);
    assert_eq!(
        despacho_api::server::booking::bookings::purge_idempotency_keys(&s.state.db)
            .await
            .unwrap(),
        0
    );
    let d = post_idem(&s, "/v1/bookings", &key, "d", &body).await;
    assert_eq!(
        (d.status, &d.text),
        (StatusCode::CONFLICT, &d_refused),
        "a kept key is answered"
    );
    // A purged key is new: b's slot is taken by b itself, so a new attempt is refused
    // and no second booking is made.
    let r = post_idem(&s, "/v1/bookings", &key, "b", &body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(bookings().await, 2);
    inv::check(&s.state.db).await;
}

/// A key older than 7 days whose new attempt is refused keeps that refusal: a retry
/// gets the same 409, and the key's row is answered (`done`), not left in progress.
async fn an_expired_key_refused_again_keeps_its_refusal(s: TestServer) {
    let t = technician_at("t1", 0, &[DAYS[0]], "08:00:00", "10:00:00");
    let key = setup(&s, &[t]).await;
    let request = json!({
        "place": place(0), "kind": "repair", "duration_minutes": 100,
        "required_skills": {"fiber_splicing": 1}, "earliest_day": DAYS[0], "days": 1
    });
    let tokens = search(&s, &key, &request).await;
    let body = json!({"slot_token": tokens[0]});
    let first = post_idem(&s, "/v1/bookings", &key, "first", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    set_key_age(&s, "first", 8).await;
    // New again: the slot is taken (by this key's own first booking), so it is refused.
    let refused = post_idem(&s, "/v1/bookings", &key, "first", &body).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "slot_unavailable");
    let row: (String, Option<i32>) = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as("SELECT status, response_status FROM idempotency_keys WHERE key = 'first'")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    let retry = post_idem(&s, "/v1/bookings", &key, "first", &body).await;
    assert_eq!(
        (retry.status, &retry.text),
        (refused.status, &refused.text),
        "the retry of a refused expired key (stored row: {row:?})"
    );
    assert_eq!(row, ("done".to_owned(), Some(409)));
}

both_backends!(
    five_hundred_mixed_duration_bookings_keep_every_day_within_capacity,
    an_expired_key_refused_again_keeps_its_refusal,
    five_hundred_bookings_keep_the_invariants_when_some_are_told_to_retry,
    reschedule_cancel_storm_keeps_invariants,
    random_sequences_match_an_in_memory_model,
    refusals_are_remembered_and_keys_expire_after_seven_days,
);
