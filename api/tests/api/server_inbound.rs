//! Customers' chat replies (`POST /v1/chat/inbound`, signed by the chat platform), the
//! dispatchers' queue and no-show risks, each on SQLite and PostgreSQL, through the
//! real router and the real booking paths.

use crate::common::world;

use crate::common::*;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use despacho_api::server::messages::notify::webhook::signature;
use despacho_api::server::messages::worker::WorkerConfig;
use despacho_api::server::Role;
use serde_json::{json, Value};
use std::sync::Arc;
use world::*;

/// The world and the chat platform's signing secret (a webhook endpoint's).
struct Chat {
    w: World,
    secret: String,
}

async fn chat(s: TestServer) -> Chat {
    let w = world(s).await;
    let r =
        w.s.post(
            "/v1/webhook-endpoints",
            Some(&w.s.admin_key),
            &json!({"url": "http://127.0.0.1:9/hooks/chat"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let secret = r.json["secret"].as_str().unwrap().to_owned();
    Chat { w, secret }
}

impl Chat {
    /// POSTs `body` signed with `secret` at `timestamp`.
    async fn signed_raw(&self, body: &[u8], secret: &str, timestamp: i64) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/chat/inbound")
            .header("content-type", "application/json")
            .header("despacho-timestamp", timestamp.to_string())
            .header(
                "despacho-signature",
                signature(secret.as_bytes(), timestamp, body),
            )
            .body(axum::body::Body::from(body.to_vec()))
            .unwrap();
        self.w.s.send(request).await
    }

    /// POSTs `body`, signed now with the endpoint's secret; also the replay header.
    async fn say(&self, body: &Value) -> (Reply, bool) {
        let bytes = serde_json::to_vec(body).unwrap();
        // One reading of the clock: two could straddle a second and never match.
        let now = Utc::now().timestamp();
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/chat/inbound")
            .header("content-type", "application/json")
            .header("despacho-timestamp", now.to_string())
            .header(
                "despacho-signature",
                signature(self.secret.as_bytes(), now, &bytes),
            )
            .body(axum::body::Body::from(bytes.clone()))
            .unwrap();
        let response = tower::ServiceExt::oneshot(self.w.s.router.clone(), request)
            .await
            .unwrap();
        let replayed = response
            .headers()
            .get("despacho-replayed")
            .is_some_and(|v| v == "true");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (
            Reply {
                status,
                text,
                json,
                content_type: None,
            },
            replayed,
        )
    }

    async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        despacho_api::on_pool!(&self.w.s.state.db, |pool| {
            sqlx::query_scalar(&sql).fetch_one(pool).await
        })
        .unwrap()
    }

    async fn history(&self, booking: &str) -> Vec<String> {
        let r = self
            .w
            .s
            .get(&format!("/v1/bookings/{booking}"), Some(&self.w.chatbot))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["action"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn at_risk(&self, key: &str, date: &str) -> Reply {
        self.w
            .s
            .get(&format!("/v1/bookings/at-risk?date={date}"), Some(key))
            .await
    }
}

fn reply(message_id: &str, reference: &Value, intent: &str) -> Value {
    json!({"message_id": message_id, "booking_reference": reference, "intent": intent})
}

fn with(mut v: Value, extra: Value) -> Value {
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

// ---------------------------------------------------------------------------------------
// Tests

async fn a_confirmation_marks_the_visit_and_a_replay_gets_the_same_answer(s: TestServer) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("c1", json!({})).await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let (id, token) = (&booking["id"], &booking["token"]);
    let dispatcher = w.s.key(Role::Dispatcher, None).await.1;
    let day = w.day.to_string();

    let r = c.at_risk(&dispatcher, &day).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.json["items"][0]["booking_id"], *id);
    assert_eq!(r.json["items"][0]["reason"], "never_confirmed");
    assert_eq!(r.json["items"][0]["customer_name"], "Maria Souza");

    let message = with(
        reply("wamid.1", token, "confirm"),
        json!({"sent_at": "2026-03-01T09:00:00-03:00"}),
    );
    let (first, replayed) = c.say(&message).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(!replayed);
    assert_eq!(first.json["intent"], "confirm");
    assert_eq!(first.json["booking_id"], *id);
    assert_eq!(first.json["booking_reference"], *token);
    assert!(first.json["result"]["customer_confirmed_at"].is_string());
    let r = c.at_risk(&dispatcher, &day).await;
    assert_eq!(r.json["items"], json!([]), "{}", r.text);

    // The platform retries: the same answer, nothing done twice.
    let (again, replayed) = c.say(&message).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(replayed);
    assert_eq!(again.json, first.json);
    assert_eq!(
        c.history(id.as_str().unwrap())
            .await
            .iter()
            .filter(|a| *a == "customer_confirmed")
            .count(),
        1
    );
    // The same id with another body.
    let (other, _) = c.say(&reply("wamid.1", token, "cancel")).await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text
    );
    assert_eq!(other.paths(), ["$.message_id"]);
    let r =
        w.s.get(
            &format!("/v1/bookings/{}", id.as_str().unwrap()),
            Some(&w.chatbot),
        )
        .await;
    assert_eq!(r.json["status"], "confirmed");
    assert_eq!(c.count("inbound_messages").await, 1);
}

async fn unsigned_forged_and_stale_messages_are_refused(s: TestServer) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("c1", json!({})).await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let body = serde_json::to_vec(&reply("m1", &booking["token"], "cancel")).unwrap();
    let now = Utc::now().timestamp();

    let unsigned =
        w.s.post_raw(
            "/v1/chat/inbound",
            None,
            "application/json",
            std::str::from_utf8(&body).unwrap(),
        )
        .await;
    assert_eq!(
        unsigned.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        unsigned.text
    );
    assert_eq!(unsigned.code(), "invalid_signature");
    assert!(
        unsigned.text.contains("Despacho-Timestamp"),
        "{}",
        unsigned.text
    );

    let forged = c.signed_raw(&body, "whsec_not_the_secret", now).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.text);
    assert!(forged.text.contains("does not sign"), "{}", forged.text);

    let stale = c.signed_raw(&body, &c.secret, now - 600).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{}", stale.text);
    assert!(
        stale.text.contains("seconds from the server"),
        "{}",
        stale.text
    );
    let future = c.signed_raw(&body, &c.secret, now + 600).await;
    assert_eq!(future.status, StatusCode::UNAUTHORIZED, "{}", future.text);

    // A body changed after signing.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/inbound")
        .header("content-type", "application/json")
        .header("despacho-timestamp", now.to_string())
        .header(
            "despacho-signature",
            signature(c.secret.as_bytes(), now, &body),
        )
        .body(axum::body::Body::from(
            serde_json::to_vec(&reply("m1", &booking["token"], "confirm")).unwrap(),
        ))
        .unwrap();
    let tampered = w.s.send(request).await;
    assert_eq!(
        tampered.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        tampered.text
    );

    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/inbound")
        .header("despacho-timestamp", "yesterday")
        .header("despacho-signature", "v1=00")
        .body(axum::body::Body::from(body.clone()))
        .unwrap();
    let r = w.s.send(request).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.text.contains("Unix seconds"), "{}", r.text);

    // Nothing happened; a correctly signed one works.
    assert_eq!(c.count("inbound_messages").await, 0);
    let r =
        w.s.get(
            &format!("/v1/bookings/{}", booking["id"].as_str().unwrap()),
            Some(&w.chatbot),
        )
        .await;
    assert_eq!(r.json["status"], "confirmed");
    let ok = c.signed_raw(&body, &c.secret, now).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    // Once its endpoint is removed, its secret signs nothing.
    let list = w.s.get("/v1/webhook-endpoints", Some(&w.s.admin_key)).await;
    let endpoint = list.json["items"][0]["id"].as_str().unwrap().to_owned();
    let r =
        w.s.delete(
            &format!("/v1/webhook-endpoints/{endpoint}"),
            Some(&w.s.admin_key),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let body = serde_json::to_vec(&reply("m2", &booking["token"], "confirm")).unwrap();
    let r = c.signed_raw(&body, &c.secret, now).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

async fn a_reschedule_request_answers_new_graded_slots_for_the_same_visit(s: TestServer) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("c1", json!({})).await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let (id, token) = (booking["id"].as_str().unwrap(), &booking["token"]);
    let (confirmed, _) = c.say(&reply("m-confirm", token, "confirm")).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);

    let (r, _) = c.say(&reply("m-move", token, "reschedule")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let result = &r.json["result"];
    assert_eq!(result["status"], "ok");
    assert_eq!(
        result["reschedule_with"],
        format!("POST /v1/bookings/{id}/reschedule")
    );
    let slots = result["slots"].as_array().unwrap();
    assert!(!slots.is_empty(), "{}", r.text);
    for slot in slots {
        let grade = slot["grade"].as_u64().unwrap();
        assert!(grade <= 100);
        assert!(slot["slot_token"].as_str().is_some_and(|t| !t.is_empty()));
        assert_ne!(slot["start"], booking["window"]["start"], "its own window");
        // The same two-hour window as the booking.
        let start = DateTime::parse_from_rfc3339(slot["start"].as_str().unwrap()).unwrap();
        let end = DateTime::parse_from_rfc3339(slot["end"].as_str().unwrap()).unwrap();
        assert_eq!((end - start).num_minutes(), 120);
    }
    let grades: Vec<u64> = slots.iter().map(|s| s["grade"].as_u64().unwrap()).collect();
    assert!(
        grades.windows(2).all(|g| g[0] >= g[1]),
        "best first: {grades:?}"
    );

    // The bot books one of them: the booking moves, the customer is told.
    let pick = slots
        .iter()
        .find(|s| local_hour(&s["start"]) == 14)
        .unwrap_or(&slots[0]);
    let moved =
        w.s.post(
            &format!("/v1/bookings/{id}/reschedule"),
            Some(&w.chatbot),
            &json!({"slot_token": pick["slot_token"]}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(moved.json["window"]["start"], pick["start"]);
    let kinds: Vec<String> = outbox_rows(&w.s.state.db)
        .await
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(
        kinds.contains(&"booking_rescheduled".to_owned()),
        "{kinds:?}"
    );

    // The confirmation was of the old time: the visit is at risk again.
    let dispatcher = w.s.key(Role::Dispatcher, None).await.1;
    let r = c.at_risk(&dispatcher, &w.day.to_string()).await;
    assert_eq!(r.json["items"][0]["booking_id"], id, "{}", r.text);
    assert_eq!(
        r.json["items"][0]["reason"],
        "rescheduled_since_confirmation"
    );

    // No slots for a cancelled booking.
    let (r, _) = c.say(&reply("m-cancel", token, "cancel")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (r, _) = c.say(&reply("m-move-2", token, "reschedule")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "booking_cancelled");
}

async fn a_cancel_goes_through_the_booking_cancel_with_history_and_message(s: TestServer) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("c1", json!({})).await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let (id, token) = (booking["id"].as_str().unwrap(), &booking["token"]);
    let message = reply("m-cancel", token, "cancel");
    let (first, _) = c.say(&message).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json["result"]["booking"]["status"], "cancelled");
    assert_eq!(first.json["result"]["booking"]["id"], id);
    let (again, replayed) = c.say(&message).await;
    assert!(replayed);
    assert_eq!(again.json, first.json);

    assert_eq!(c.history(id).await, ["booked", "cancelled"]);
    let rows = outbox_rows(&w.s.state.db).await;
    let mut kinds: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.kind.clone(), r.status.clone()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("booking_cancelled".to_owned(), "pending".to_owned()),
            ("booking_confirmed".to_owned(), "pending".to_owned()),
            ("booking_reminder".to_owned(), "superseded".to_owned()),
            ("booking_reminder".to_owned(), "superseded".to_owned()),
        ]
    );
    // The capacity is free again: the same slot can be booked.
    let invariants = booking_invariants::check(&w.s.state.db).await;
    assert_eq!((invariants.confirmed, invariants.cancelled), (0, 1));

    // Confirming a cancelled visit is refused, and not stored.
    let (r, _) = c.say(&reply("m-late", token, "confirm")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "booking_cancelled");
    assert_eq!(c.count("inbound_messages").await, 1);
}

async fn survey_scores_are_validated_and_stored_once(s: TestServer) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("c1", json!({})).await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let token = &booking["token"];
    let survey = |id: &str, extra: Value| with(reply(id, token, "survey"), extra);

    let (r, _) = c
        .say(&survey("s1", json!({"survey": "csat", "score": 5})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["result"]["survey"], "csat");
    assert_eq!(r.json["result"]["score"], 5);
    let (r, _) = c
        .say(&survey("s2", json!({"survey": "nps", "score": 0})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (r, replayed) = c
        .say(&survey("s1", json!({"survey": "csat", "score": 5})))
        .await;
    assert!(replayed && r.status == StatusCode::OK);

    for (body, path, code) in [
        (
            json!({"survey": "csat", "score": 6}),
            "$.score",
            "out_of_range",
        ),
        (
            json!({"survey": "csat", "score": 0}),
            "$.score",
            "out_of_range",
        ),
        (
            json!({"survey": "nps", "score": 11}),
            "$.score",
            "out_of_range",
        ),
        (
            json!({"survey": "nps", "score": -1}),
            "$.score",
            "out_of_range",
        ),
        (
            json!({"survey": "nps", "score": 4.5}),
            "$.score",
            "invalid_type",
        ),
        (
            json!({"survey": "nps", "score": "9"}),
            "$.score",
            "invalid_type",
        ),
        (
            json!({"survey": "nps", "score": 1e300}),
            "$.score",
            "invalid_type",
        ),
        (
            json!({"survey": "ces", "score": 3}),
            "$.survey",
            "unknown_variant",
        ),
        (json!({"score": 3}), "$.survey", "missing_field"),
        (json!({"survey": "csat"}), "$.score", "missing_field"),
    ] {
        let (r, _) = c.say(&survey("bad", body.clone())).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.paths(), [path], "{body}: {}", r.text);
        assert_eq!(
            r.json["error"]["details"][0]["code"], code,
            "{body}: {}",
            r.text
        );
    }
    let stored: Vec<(String, i32, String)> = despacho_api::on_pool!(&w.s.state.db, |pool| {
        sqlx::query_as("SELECT survey, score, message_id FROM survey_responses ORDER BY message_id")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert_eq!(
        stored,
        [
            ("csat".to_owned(), 5, "s1".to_owned()),
            ("nps".to_owned(), 0, "s2".to_owned())
        ]
    );
}

async fn free_text_reaches_the_dispatcher_queue(s: TestServer) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("c1", json!({})).await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let words = "O interfone não funciona,\nliguem no celular quando chegarem.";
    let message = with(
        reply("t1", &booking["token"], "text"),
        json!({"text": words}),
    );
    let (r, _) = c.say(&message).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let entry = r.json["result"]["queue_entry_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, replayed) = c.say(&message).await;
    assert!(replayed);

    let dispatcher = w.s.key(Role::Dispatcher, None).await.1;
    let r = w.s.get("/v1/dispatcher-queue", Some(&dispatcher)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["id"], entry.as_str());
    assert_eq!(items[0]["kind"], "customer_message");
    assert_eq!(items[0]["text"], words);
    assert_eq!(items[0]["booking_id"], booking["id"]);
    assert_eq!(items[0]["customer_id"], "c1");
    assert_eq!(items[0]["status"], "open");

    let r =
        w.s.get("/v1/dispatcher-queue?kind=no_show_risk", Some(&dispatcher))
            .await;
    assert_eq!(r.json["items"], json!([]));
    let r =
        w.s.get("/v1/dispatcher-queue?kind=gossip", Some(&dispatcher))
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.paths(), ["kind"]);
    let r =
        w.s.get("/v1/dispatcher-queue?limit=0", Some(&dispatcher))
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = w.s.get("/v1/dispatcher-queue", Some(&w.chatbot)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    for (body, path) in [
        (json!({"text": ""}), "$.text"),
        (json!({"text": "x".repeat(4001)}), "$.text"),
        (json!({"text": "a\u{0}b"}), "$.text"),
        (json!({"text": 42}), "$.text"),
        (json!({}), "$.text"),
    ] {
        let (r, _) = c
            .say(&with(reply("t2", &booking["token"], "text"), body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.paths(), [path], "{body}: {}", r.text);
    }
}

async fn bad_messages_get_a_4xx_naming_the_field(s: TestServer) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("c1", json!({})).await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let token = &booking["token"];
    let now = Utc::now().timestamp();
    for (body, status, path) in [
        (reply("m", token, "dance"), 422, "$.intent"),
        (
            reply("m", &json!("bkt_nope"), "confirm"),
            422,
            "$.booking_reference",
        ),
        (reply("", token, "confirm"), 422, "$.message_id"),
        (
            reply(&"m".repeat(201), token, "confirm"),
            422,
            "$.message_id",
        ),
        (
            with(reply("m", token, "confirm"), json!({"mood": "happy"})),
            422,
            "$.mood",
        ),
        (
            with(reply("m", token, "confirm"), json!({"score": 5})),
            422,
            "$.score",
        ),
        (
            with(reply("m", token, "cancel"), json!({"text": "bye"})),
            422,
            "$.text",
        ),
        (
            with(reply("m", token, "confirm"), json!({"sent_at": "soon"})),
            422,
            "$.sent_at",
        ),
        (
            json!({"booking_reference": token, "intent": "confirm"}),
            422,
            "$.message_id",
        ),
        (json!([1, 2]), 422, "$"),
    ] {
        let (r, _) = c.say(&body).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text);
        assert_eq!(r.paths(), [path], "{body}: {}", r.text);
    }
    for raw in ["{\"message_id\": ", "", "\u{7f}ELF"] {
        let r = c.signed_raw(raw.as_bytes(), &c.secret, now).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw:?}: {}", r.text);
        assert_eq!(r.code(), "malformed_json");
    }
    let r = c.signed_raw(&[0xff, 0xfe, b'{'], &c.secret, now).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A hold is not a visit to confirm yet.
    let hold = w
        .post_idem(
            "/v1/holds",
            "hold-1",
            &json!({"slot_token": w.slot_at(14).await["slot_token"], "customer_id": "c1"}),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.text);
    let (r, _) = c
        .say(&reply("m-hold", &hold.json["token"], "confirm"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "booking_not_confirmed");
    assert_eq!(c.count("inbound_messages").await, 0);
}

async fn unconfirmed_visits_are_flagged_once_the_evening_before_in_the_customers_zone(
    s: TestServer,
) {
    let c = chat(s).await;
    let w = &c.w;
    w.customer("sp", json!({})).await;
    w.customer("manaus", json!({"time_zone": "America/Manaus"}))
        .await;
    w.customer("confirmed", json!({})).await;
    let b_sp = w.book(&w.slot_at(8).await, Some("sp")).await;
    let b_manaus = w.book(&w.slot_at(10).await, Some("manaus")).await;
    let b_ok = w.book(&w.slot_at(12).await, Some("confirmed")).await;
    let (r, _) = c.say(&reply("ok", &b_ok["token"], "confirm")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // 18:00 the evening before: 21:00 UTC in São Paulo (UTC−3), 22:00 UTC in Manaus (UTC−4).
    let eve = w.day.checked_sub_days(Days::new(1)).unwrap();
    let utc = |h: u32, m: u32| {
        Utc.from_utc_datetime(&eve.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap()))
    };
    let worker_at = |t: DateTime<Utc>, name: &str| {
        w.worker(
            name,
            WorkerConfig {
                clock: Arc::new(move || t),
                ..crate::common::worker_config()
            },
        )
    };
    assert_eq!(
        worker_at(utc(20, 59), "a")
            .flag_no_show_risks()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        worker_at(utc(21, 0), "b")
            .flag_no_show_risks()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        worker_at(utc(21, 30), "c")
            .flag_no_show_risks()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        worker_at(utc(22, 0), "d")
            .flag_no_show_risks()
            .await
            .unwrap(),
        1
    );
    // Once: other workers, later rounds.
    assert_eq!(
        worker_at(utc(23, 0), "e")
            .flag_no_show_risks()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        worker_at(utc(23, 0), "f")
            .flag_no_show_risks()
            .await
            .unwrap(),
        0
    );

    let dispatcher = w.s.key(Role::Dispatcher, None).await.1;
    let r =
        w.s.get("/v1/dispatcher-queue?kind=no_show_risk", Some(&dispatcher))
            .await;
    let items = r.json["items"].as_array().unwrap();
    let flagged: Vec<&Value> = items.iter().map(|i| &i["booking_id"]).collect();
    assert_eq!(flagged, [&b_sp["id"], &b_manaus["id"]], "{}", r.text);
    assert_eq!(items[1]["customer_id"], "manaus");
    let text = items[0]["text"].as_str().unwrap();
    assert!(text.contains(b_sp["token"].as_str().unwrap()), "{text}");
    assert!(text.contains("08:00–10:00"), "{text}");

    // The day's list for dispatchers says the same.
    let r = c.at_risk(&dispatcher, &w.day.to_string()).await;
    let listed: Vec<&Value> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["booking_id"])
        .collect();
    assert_eq!(listed, [&b_sp["id"], &b_manaus["id"]], "{}", r.text);
    assert_eq!(r.json["date"], w.day.to_string());
    let other_day = eve.to_string();
    assert_eq!(
        c.at_risk(&dispatcher, &other_day).await.json["items"],
        json!([])
    );
    for bad in ["2026-02-30", "tomorrow", ""] {
        let r = c.at_risk(&dispatcher, bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.paths(), ["date"], "{bad}");
    }
    let r = w.s.get("/v1/bookings/at-risk", Some(&dispatcher)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = c.at_risk(&w.chatbot, &w.day.to_string()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Once the visit has begun, nothing more is flagged.
    let later = Utc.from_utc_datetime(&w.day.and_time(NaiveTime::from_hms_opt(20, 0, 0).unwrap()));
    assert_eq!(worker_at(later, "g").flag_no_show_risks().await.unwrap(), 0);
}

async fn concurrent_copies_of_a_message_are_handled_once(s: TestServer) {
    let c = Arc::new(chat(s).await);
    c.w.customer("c1", json!({})).await;
    let booking = c.w.book(&c.w.slot_at(10).await, Some("c1")).await;
    let token = booking["token"].clone();
    for message in [
        with(
            reply("dup-text", &token, "text"),
            json!({"text": "ring twice"}),
        ),
        with(
            reply("dup-survey", &token, "survey"),
            json!({"survey": "nps", "score": 9}),
        ),
        reply("dup-confirm", &token, "confirm"),
        reply("dup-cancel", &token, "cancel"),
    ] {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (c, message) = (c.clone(), message.clone());
            tasks.spawn(async move { c.say(&message).await.0 });
        }
        let mut answers = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let r = r.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{message}: {}", r.text);
            answers.push(r.json);
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{message}: {answers:?}"
        );
    }
    assert_eq!(c.count("inbound_messages").await, 4);
    assert_eq!(c.count("survey_responses").await, 1);
    assert_eq!(c.count("dispatcher_queue").await, 1);
    let history = c.history(booking["id"].as_str().unwrap()).await;
    assert_eq!(history, ["booked", "customer_confirmed", "cancelled"]);
    let cancelled = outbox_rows(&c.w.s.state.db)
        .await
        .into_iter()
        .filter(|r| r.kind == "booking_cancelled")
        .count();
    assert_eq!(cancelled, 1);
}

both_backends!(
    concurrent_copies_of_a_message_are_handled_once,
    a_confirmation_marks_the_visit_and_a_replay_gets_the_same_answer,
    unsigned_forged_and_stale_messages_are_refused,
    a_reschedule_request_answers_new_graded_slots_for_the_same_visit,
    a_cancel_goes_through_the_booking_cancel_with_history_and_message,
    survey_scores_are_validated_and_stored_once,
    free_text_reaches_the_dispatcher_queue,
    bad_messages_get_a_4xx_naming_the_field,
    unconfirmed_visits_are_flagged_once_the_evening_before_in_the_customers_zone,
);
