//! Visit events and their customer messages (issue 6): on the way, running late, the
//! satisfaction survey after completion, the missed-visit follow-up with new slots, the
//! equipment-return reminder of a cancelled equipment return; each turned off by a
//! setting; bad input by path. Each on SQLite and PostgreSQL, delivered by the worker
//! to a real local HTTP receiver that checks every signature.

use crate::common::receiver;
use crate::common::world;

use crate::common::*;
use axum::http::StatusCode;
use chrono::{DateTime, Days, NaiveTime, SubsecRound, TimeDelta, TimeZone, Utc};
use despacho_api::server::messages::worker::{Worker, WorkerConfig};
use despacho_api::server::Role;
use receiver::Receiver;
use serde_json::{json, Value};
use std::sync::Arc;
use world::*;

/// The world, a São Paulo customer speaking `language`, a booking of theirs at 08:00,
/// a registered endpoint at a live receiver, and the technician's key.
struct Visit {
    w: World,
    rx: Receiver,
    booking: Value,
    tech: String,
}

async fn visit(s: TestServer, language: &str, kind: &str) -> Visit {
    let w = world(s).await;
    let rx = Receiver::start().await;
    let r =
        w.s.post(
            "/v1/webhook-endpoints",
            Some(&w.s.admin_key),
            &json!({"url": rx.url}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    rx.set_secret(r.json["secret"].as_str().unwrap());
    w.customer("c1", json!({"language": language})).await;
    let mut request = w.slot_request();
    request["kind"] = json!(kind);
    let r =
        w.s.post("/v1/slots/search", Some(&w.chatbot), &request)
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let slot = r.json["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| local_hour(&s["start"]) == 8)
        .cloned()
        .expect("a slot at 08:00");
    let booking = w.book(&slot, Some("c1")).await;
    let tech = w.s.key(Role::Technician, Some("t1")).await.1;
    Visit {
        w,
        rx,
        booking,
        tech,
    }
}

impl Visit {
    fn id(&self) -> &str {
        self.booking["id"].as_str().unwrap()
    }

    async fn event(&self, key: &str, body: Value) -> Reply {
        self.w
            .s
            .post(
                &format!("/v1/bookings/{}/events", self.id()),
                Some(key),
                &body,
            )
            .await
    }

    /// Delivers what is due at `at` (a worker whose clock says so).
    async fn deliver_at(&self, at: DateTime<Utc>) {
        let config = WorkerConfig {
            clock: Arc::new(move || at),
            ..crate::common::worker_config()
        };
        let worker: Worker = self.w.worker("w", config);
        drain(&worker).await;
    }

    /// Delivers what is due now, outside quiet hours (noon in São Paulo, later).
    async fn deliver(&self) {
        self.deliver_at(noon_after(Utc::now())).await
    }
}

/// The first 12:00 in São Paulo after `t` (no quiet hours then).
fn noon_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&SP);
    let mut day = local.date_naive();
    loop {
        let noon = SP
            .from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()))
            .earliest()
            .unwrap()
            .with_timezone(&Utc);
        if noon > t {
            return noon;
        }
        day = day.checked_add_days(Days::new(1)).unwrap();
    }
}

fn eta(from_minutes: i64, to_minutes: i64) -> (String, String, DateTime<Utc>, DateTime<Utc>) {
    // Whole minutes, so the local times in the text are exact.
    let base = Utc::now().trunc_subsecs(0);
    let base = base - TimeDelta::seconds(base.timestamp() % 60);
    let (s, e) = (
        base + TimeDelta::minutes(from_minutes),
        base + TimeDelta::minutes(to_minutes),
    );
    (
        s.with_timezone(&SP).to_rfc3339(),
        e.with_timezone(&SP).to_rfc3339(),
        s,
        e,
    )
}

fn hhmm(t: DateTime<Utc>) -> String {
    t.with_timezone(&SP).format("%H:%M").to_string()
}

async fn on_the_way_running_late_and_the_survey_reach_the_customer(s: TestServer) {
    let v = visit(s, "pt-BR", "repair").await;
    let (start, end, s0, e0) = eta(30, 90);
    let r = v
        .event(
            &v.tech,
            json!({"type": "en_route", "eta_start": start, "eta_end": end}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["type"], "en_route");
    assert_eq!(r.json["messages"], json!(["technician_en_route"]));
    // The same ETA again says nothing new.
    let r = v
        .event(
            &v.tech,
            json!({"type": "en_route", "eta_start": start, "eta_end": end}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["messages"], json!([]));
    v.deliver().await;
    let on_way = v.rx.of_kind("technician_en_route");
    assert_eq!(on_way.len(), 1, "{:?}", v.rx.answered());
    let m = &on_way[0];
    assert!(m.signature_ok);
    assert_eq!(m.body["event_id"], m.event_id.as_str());
    assert_eq!(m.body["language"], "pt-BR");
    let text = m.body["text"].as_str().unwrap();
    assert!(text.contains("a caminho"), "{text}");
    assert!(
        text.contains(&format!("entre {} e {}", hhmm(s0), hhmm(e0))),
        "{text}"
    );
    assert_eq!(
        DateTime::parse_from_rfc3339(m.body["eta"]["start"].as_str().unwrap()).unwrap(),
        s0
    );
    // Running late: the new ETA; a changed en_route ETA says the same.
    let (start, end, s1, e1) = eta(60, 120);
    let r = v
        .event(
            &v.tech,
            json!({"type": "running_late", "eta_start": start, "eta_end": end, "reason": "traffic"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["messages"], json!(["technician_running_late"]));
    let (start, end, s2, e2) = eta(90, 150);
    let r = v
        .event(
            &v.tech,
            json!({"type": "en_route", "eta_start": start, "eta_end": end}),
        )
        .await;
    assert_eq!(
        r.json["messages"],
        json!(["technician_running_late"]),
        "{}",
        r.text
    );
    v.deliver().await;
    let late = v.rx.of_kind("technician_running_late");
    assert_eq!(late.len(), 2, "{:?}", v.rx.answered());
    let texts: Vec<&str> = late
        .iter()
        .map(|h| h.body["text"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("atrasado")
                && t.contains(&format!("entre {} e {}", hhmm(s1), hhmm(e1)))),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("entre {} e {}", hhmm(s2), hhmm(e2)))),
        "{texts:?}"
    );
    assert!(late.iter().any(|h| h.body["reason"] == "traffic"));
    // Arrived says nothing; completed asks for the survey, later, and the reminders go.
    let r = v.event(&v.tech, json!({"type": "arrived"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["messages"], json!([]));
    let r = v.event(&v.tech, json!({"type": "completed"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["messages"], json!(["survey_request"]));
    assert_eq!(r.json["reminders_superseded"], 2, "{}", r.text);
    let rows = outbox_rows(&v.w.s.state.db).await;
    assert!(rows
        .iter()
        .filter(|r| r.kind == "booking_reminder")
        .all(|r| r.status == "superseded"));
    // Not yet due (120 minutes after completion by default).
    v.deliver_at(Utc::now() + TimeDelta::minutes(60)).await;
    assert!(v.rx.of_kind("survey_request").is_empty());
    v.deliver_at(noon_after(Utc::now() + TimeDelta::minutes(121)))
        .await;
    let survey = v.rx.of_kind("survey_request");
    assert_eq!(survey.len(), 1, "{:?}", v.rx.answered());
    let text = survey[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("de 1 (ruim) a 5") && text.contains("de 0 a 10"),
        "{text}"
    );
    assert_eq!(survey[0].body["survey"]["csat"]["max"], 5);
    assert_eq!(survey[0].body["survey"]["nps"]["max"], 10);
    // The visit is closed.
    let r = v.event(&v.tech, json!({"type": "arrived"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "visit_closed");
    // Every message exactly once, each signed.
    let answered = v.rx.answered();
    let mut ids: Vec<&str> = answered.iter().map(|h| h.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), answered.len());
    assert!(answered.iter().all(|h| h.signature_ok));
}

async fn a_missed_visit_offers_three_new_slots(s: TestServer) {
    let v = visit(s, "en", "repair").await;
    let dispatcher = v.w.s.key(Role::Dispatcher, None).await.1;
    let r = v
        .event(
            &dispatcher,
            json!({"type": "missed", "reason": "customer_absent"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["messages"], json!(["missed_visit"]));
    assert_eq!(r.json["reason"], "customer_absent");
    v.deliver().await;
    let missed = v.rx.of_kind("missed_visit");
    assert_eq!(missed.len(), 1, "{:?}", v.rx.answered());
    let body = &missed[0].body;
    let slots = body["offered_slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{body}");
    for slot in slots {
        assert!(slot["slot_token"].is_string(), "{slot}");
        // Not the missed window.
        assert_ne!(slot["start"], v.booking["window"]["start"]);
    }
    assert_eq!(body["reason"], "customer_absent");
    assert_eq!(
        body["reschedule_with"],
        format!("POST /v1/bookings/{}/reschedule", v.id())
    );
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("Hi Maria Souza, we missed you"), "{text}");
    // Each offered slot's local times are in the text.
    for slot in slots {
        let start = DateTime::parse_from_rfc3339(slot["start"].as_str().unwrap()).unwrap();
        let h = start.with_timezone(&SP);
        let clock = h.format("%-I:%M %p").to_string();
        assert!(text.contains(&clock), "{clock} not in {text}");
    }
    // Reminders superseded; closed after.
    let rows = outbox_rows(&v.w.s.state.db).await;
    assert!(rows
        .iter()
        .filter(|r| r.kind == "booking_reminder")
        .all(|r| r.status == "superseded"));
    let r = v.event(&v.tech, json!({"type": "completed"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "visit_closed");
}

async fn a_cancelled_equipment_return_reminds_to_return_the_equipment(s: TestServer) {
    let v = visit(s, "es", "equipment_return").await;
    let r =
        v.w.s
            .post(
                &format!("/v1/bookings/{}/cancel", v.id()),
                Some(&v.w.chatbot),
                &json!({}),
            )
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    v.deliver().await;
    assert_eq!(v.rx.of_kind("booking_cancelled").len(), 1);
    let back = v.rx.of_kind("equipment_return_reminder");
    assert_eq!(back.len(), 1, "{:?}", v.rx.answered());
    let text = back[0].body["text"].as_str().unwrap();
    assert!(text.contains("módem") && text.contains("retiro"), "{text}");
    assert_eq!(back[0].body["language"], "es");
    // Events of a cancelled booking are refused.
    let r = v.event(&v.tech, json!({"type": "arrived"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "booking_cancelled");
    // A cancelled repair gets no such reminder.
    let slot = v.w.slot_at(12).await;
    let repair = v.w.book(&slot, Some("c1")).await;
    let r =
        v.w.s
            .post(
                &format!("/v1/bookings/{}/cancel", repair["id"].as_str().unwrap()),
                Some(&v.w.chatbot),
                &json!({}),
            )
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rows = outbox_rows(&v.w.s.state.db).await;
    assert_eq!(
        rows.iter()
            .filter(|r| r.kind == "equipment_return_reminder")
            .count(),
        1
    );
}

async fn each_kind_is_turned_off_by_a_setting(s: TestServer) {
    let v = visit(s, "en", "equipment_return").await;
    let admin = v.w.s.admin_key.clone();
    let put = |body: Value| {
        let (s, admin) = (&v.w.s, admin.clone());
        async move { s.put("/v1/settings", Some(&admin), &body).await }
    };
    let r = put(
        json!({"time_zone": "America/Sao_Paulo", "message_kinds_off": ["technician_on_the_way"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.message_kinds_off[0]"]);
    let r = put(json!({"time_zone": "America/Sao_Paulo", "survey_delay_minutes": 20000})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.survey_delay_minutes"]);
    let off = json!([
        "technician_en_route",
        "technician_running_late",
        "survey_request",
        "missed_visit",
        "equipment_return_reminder"
    ]);
    let r = put(json!({"time_zone": "America/Sao_Paulo", "message_kinds_off": off, "survey_delay_minutes": 0})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = v.w.s.get("/v1/settings", Some(&admin)).await;
    assert_eq!(r.json["message_kinds_off"], off);
    assert_eq!(r.json["survey_delay_minutes"], 0);
    let (start, end, ..) = eta(10, 70);
    for body in [
        json!({"type": "en_route", "eta_start": start, "eta_end": end}),
        json!({"type": "running_late", "eta_start": start, "eta_end": eta(20, 80).0}),
        json!({"type": "completed"}),
    ] {
        let r = v.event(&v.tech, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["messages"], json!([]), "{}", r.text);
    }
    let r =
        v.w.s
            .post(
                &format!("/v1/bookings/{}/cancel", v.id()),
                Some(&v.w.chatbot),
                &json!({}),
            )
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let kinds: Vec<String> = outbox_rows(&v.w.s.state.db)
        .await
        .into_iter()
        .map(|r| r.kind)
        .collect();
    for kind in off.as_array().unwrap() {
        assert!(
            !kinds.iter().any(|k| k == kind.as_str().unwrap()),
            "{kinds:?}"
        );
    }
    assert!(kinds.iter().any(|k| k == "booking_cancelled"), "{kinds:?}");
    // Turned back on: the next en_route of another visit is written again.
    let r = put(json!({"time_zone": "America/Sao_Paulo"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let slot = v.w.slot_at(12).await;
    let other = v.w.book(&slot, Some("c1")).await;
    let r =
        v.w.s
            .post(
                &format!("/v1/bookings/{}/events", other["id"].as_str().unwrap()),
                Some(&v.tech),
                &json!({"type": "en_route", "eta_start": start, "eta_end": end}),
            )
            .await;
    assert_eq!(
        r.json["messages"],
        json!(["technician_en_route"]),
        "{}",
        r.text
    );
}

async fn bad_events_are_refused_by_path(s: TestServer) {
    let v = visit(s, "en", "repair").await;
    let (start, end, ..) = eta(10, 70);
    let (past_start, past_end, ..) = eta(-120, -60);
    let cases = [
        (json!({"type": "teleported"}), "$.type"),
        (json!({"type": "en_route", "eta_end": end}), "$.eta_start"),
        (
            json!({"type": "en_route", "eta_start": end, "eta_end": start}),
            "$.eta_end",
        ),
        (
            json!({"type": "en_route", "eta_start": past_start, "eta_end": past_end}),
            "$.eta_end",
        ),
        (
            json!({"type": "en_route", "eta_start": "tomorrow", "eta_end": end}),
            "$.eta_start",
        ),
        (
            json!({"type": "en_route", "eta_start": 5, "eta_end": end}),
            "$.eta_start",
        ),
        (
            json!({"type": "en_route", "eta_start": eta(60 * 30, 60 * 31).0, "eta_end": eta(60 * 30, 60 * 31).1}),
            "$.eta_start",
        ),
        (
            json!({"type": "en_route", "eta_start": start, "eta_end": eta(10, 600).1}),
            "$.eta_end",
        ),
        (
            json!({"type": "en_route", "eta_start": start, "eta_end": end, "reason": "x"}),
            "$.reason",
        ),
        (
            json!({"type": "running_late", "eta_start": start, "eta_end": end, "reason": "x".repeat(501)}),
            "$.reason",
        ),
        (json!({"type": "missed"}), "$.reason"),
        (json!({"type": "missed", "reason": "raining"}), "$.reason"),
        (
            json!({"type": "completed", "eta_start": start}),
            "$.eta_start",
        ),
    ];
    for (body, path) in cases {
        let r = v.event(&v.tech, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert!(
            r.paths().contains(&path.to_owned()),
            "{body}: {:?}",
            r.paths()
        );
    }
    let r = v
        .event(&v.tech, json!({"type": "arrived", "color": "red"}))
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.text.contains("color"), "{}", r.text);
    let r =
        v.w.s
            .post_raw(
                &format!("/v1/bookings/{}/events", v.id()),
                Some(&v.tech),
                "application/json",
                "{\"type\": ",
            )
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Roles and ownership.
    let r = v.event(&v.w.chatbot, json!({"type": "arrived"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r =
        v.w.s
            .post("/v1/technicians", Some(&v.w.s.admin_key), &technician("t2"))
            .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let other_tech = v.w.s.key(Role::Technician, Some("t2")).await.1;
    let r = v.event(&other_tech, json!({"type": "arrived"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r =
        v.w.s
            .post(
                "/v1/bookings/bkg_nope/events",
                Some(&v.tech),
                &json!({"type": "arrived"}),
            )
            .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Order: arrived once, nothing on the way after it.
    let r = v.event(&v.tech, json!({"type": "arrived"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for body in [
        json!({"type": "arrived"}),
        json!({"type": "en_route", "eta_start": start, "eta_end": end}),
    ] {
        let r = v.event(&v.tech, body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.code(), "visit_event_out_of_order");
    }
    // Nothing refused left a row or a message.
    let rows = outbox_rows(&v.w.s.state.db).await;
    assert!(
        rows.iter().all(|r| r.kind.starts_with("booking_")),
        "{rows:?}"
    );
}

both_backends!(
    on_the_way_running_late_and_the_survey_reach_the_customer,
    a_missed_visit_offers_three_new_slots,
    a_cancelled_equipment_return_reminds_to_return_the_equipment,
    each_kind_is_turned_off_by_a_setting,
    bad_events_are_refused_by_path,
);
