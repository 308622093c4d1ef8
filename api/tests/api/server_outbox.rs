//! Customer messages: the transactional outbox, the worker and signed webhooks, each on
//! SQLite and PostgreSQL. Messages go to a real HTTP receiver (axum on 127.0.0.1:0 in
//! the test) that checks every signature with its own HMAC and records event ids.

use crate::common::world::{drain, worker_on};
use crate::common::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use despacho_api::server::messages::worker::{Worker, WorkerConfig};
use despacho_api::server::{Db, Role};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PLACE: (f64, f64) = (-23.56, -46.65);
const SP: chrono_tz::Tz = chrono_tz::America::Sao_Paulo;

// ---------------------------------------------------------------------------------------
// The receiver

#[derive(Clone, Debug)]
struct Received {
    event_id: String,
    body: Value,
    answered: u16,
    signature_ok: bool,
}

#[derive(Default)]
struct ReceiverState {
    secret: Mutex<String>,
    /// Statuses to answer, in order; 200 once empty.
    script: Mutex<VecDeque<u16>>,
    /// How long the first request waits before answering (then `delay`).
    first_delay: Mutex<Option<Duration>>,
    delay: Mutex<Duration>,
    received: Mutex<Vec<Received>>,
    in_flight: Mutex<HashSet<String>>,
    /// An event id arrived while the same id was still being answered.
    concurrent_duplicates: Mutex<Vec<String>>,
}

struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1={hex}")
}

async fn receive(
    axum::extract::State(st): axum::extract::State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let event_id = header("despacho-event-id");
    let timestamp = header("despacho-timestamp");
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (Utc::now().timestamp() - t).abs() <= 300);
    let secret = st.secret.lock().unwrap().clone();
    let signature_ok = fresh
        && header("despacho-signature") == expected_signature(&secret, &timestamp, &body)
        && header("content-type") == "application/json";
    if !st.in_flight.lock().unwrap().insert(event_id.clone()) {
        st.concurrent_duplicates
            .lock()
            .unwrap()
            .push(event_id.clone());
    }
    let delay = st
        .first_delay
        .lock()
        .unwrap()
        .take()
        .unwrap_or(*st.delay.lock().unwrap());
    tokio::time::sleep(delay).await;
    let answered = st.script.lock().unwrap().pop_front().unwrap_or(200);
    st.received.lock().unwrap().push(Received {
        event_id: event_id.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
        signature_ok,
    });
    st.in_flight.lock().unwrap().remove(&event_id);
    StatusCode::from_u16(answered).unwrap()
}

impl Receiver {
    async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/hooks/chat", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/chat", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn script(&self, statuses: &[u16]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }
}

// ---------------------------------------------------------------------------------------
// The world: a technician ten days ahead, a chat bot key, a webhook endpoint

struct World {
    s: TestServer,
    chatbot: String,
    receiver: Receiver,
    day: NaiveDate,
}

fn future_day() -> NaiveDate {
    Utc::now()
        .with_timezone(&SP)
        .date_naive()
        .checked_add_days(Days::new(10))
        .unwrap()
}

/// A technician at the customers' place, working `from`..`to` on `day`.
fn technician_at(day: NaiveDate, to: &str) -> Value {
    let mut t = technician("t1");
    t["home"] = json!({"lat": PLACE.0, "lon": PLACE.1});
    t["shifts"] = json!([{"date": day, "start": "08:00:00", "end": to, "overtime_minutes": 0}]);
    t
}

async fn world_with(s: TestServer, shift_end: &str) -> World {
    let day = future_day();
    let admin = s.admin_key.clone();
    let r = s
        .put(
            "/v1/settings",
            Some(&admin),
            &json!({"time_zone": "America/Sao_Paulo"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .post(
            "/v1/technicians",
            Some(&admin),
            &technician_at(day, shift_end),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let chatbot = s.key(Role::Chatbot, None).await.1;
    let receiver = Receiver::start().await;
    let r = s
        .post(
            "/v1/webhook-endpoints",
            Some(&admin),
            &json!({"url": receiver.url}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    *receiver.state.secret.lock().unwrap() = r.json["secret"].as_str().unwrap().to_owned();
    World {
        s,
        chatbot,
        receiver,
        day,
    }
}

async fn world(s: TestServer) -> World {
    world_with(s, "17:00:00").await
}

impl World {
    async fn customer(&self, id: &str, extra: Value) {
        let mut c = customer(Some(id));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let r = self.s.post("/v1/customers", Some(&self.chatbot), &c).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    async fn slots(&self) -> Vec<Value> {
        let request = json!({
            "place": {"lat": PLACE.0, "lon": PLACE.1},
            "kind": "repair",
            "duration_minutes": 100,
            "required_skills": {"fiber_splicing": 1},
            "earliest_day": self.day,
            "days": 1,
            "window_minutes": 120
        });
        let r = self
            .s
            .post("/v1/slots/search", Some(&self.chatbot), &request)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["slots"].as_array().cloned().unwrap_or_default()
    }

    /// A slot whose window starts at `hour` local time.
    async fn slot_at(&self, hour: u32) -> Value {
        let slots = self.slots().await;
        slots
            .iter()
            .find(|s| {
                DateTime::parse_from_rfc3339(s["start"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&SP)
                    .format("%H")
                    .to_string()
                    == format!("{hour:02}")
            })
            .unwrap_or_else(|| panic!("no slot at {hour}:00 in {slots:?}"))
            .clone()
    }

    async fn post_idem(&self, path: &str, idem: &str, body: &Value) -> Reply {
        let request = axum::http::Request::builder()
            .method(axum::http::Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.chatbot))
            .header("content-type", "application/json")
            .header("idempotency-key", idem)
            .body(axum::body::Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.s.send(request).await
    }

    /// Books `slot` for `customer`; the booking.
    async fn book(&self, slot: &Value, customer: Option<&str>) -> Value {
        let mut body = json!({"slot_token": slot["slot_token"]});
        if let Some(c) = customer {
            body["customer_id"] = json!(c);
        }
        let idem = format!("k-{}", fastrand::u64(..));
        let r = self.post_idem("/v1/bookings", &idem, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json
    }

    fn worker(&self, name: &str) -> Worker {
        worker_on(
            self.s.state.db.clone(),
            name,
            crate::common::worker_config(),
        )
    }
}

fn at(t: DateTime<Utc>) -> Arc<dyn Fn() -> DateTime<Utc> + Send + Sync> {
    Arc::new(move || t)
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    booking_id: String,
    status: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    payload: String,
    channel: String,
}

async fn rows(db: &Db) -> Vec<Row> {
    despacho_api::on_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT id, kind, booking_id, status, attempts, next_attempt_at, last_error, \
             payload, channel FROM outbox ORDER BY next_attempt_at, kind, id",
        )
        .fetch_all(pool)
        .await
    })
    .unwrap()
}

fn kinds(rows: &[Row]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r.kind.clone(), r.status.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests

async fn a_booking_is_confirmed_by_a_signed_webhook_in_the_customers_language(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({"name": "Maria", "language": "pt-BR"}))
        .await;
    let slot = w.slot_at(10).await;
    let booking = w.book(&slot, Some("c1")).await;
    let id = booking["id"].as_str().unwrap();

    // In the booking's own transaction: the confirmation, due now, and two reminders.
    let stored = rows(&w.s.state.db).await;
    assert_eq!(
        kinds(&stored),
        pairs(&[
            ("booking_confirmed", "pending"),
            ("booking_reminder", "pending"),
            ("booking_reminder", "pending"),
        ])
    );
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339(slot["start"].as_str().unwrap())
        .unwrap()
        .into();
    assert_eq!(
        stored[1].next_attempt_at,
        start - chrono::TimeDelta::days(1)
    );
    assert_eq!(
        stored[2].next_attempt_at,
        start - chrono::TimeDelta::hours(3)
    );

    let round = drain(&w.worker("w1")).await;
    assert_eq!(round.delivered, 1, "{round:?}");
    let got = w.receiver.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(
        m.signature_ok,
        "the signature verifies with the endpoint's secret"
    );
    assert_eq!(m.event_id, stored[0].id);
    assert_eq!(stored[0].channel, "webhook");
    assert_eq!(m.body["event_id"], stored[0].id.as_str());
    assert_eq!(m.body["kind"], "booking_confirmed");
    assert_eq!(m.body["language"], "pt-BR");
    assert_eq!(m.body["booking"]["id"], id);
    assert_eq!(m.body["customer"]["id"], "c1");
    let text = m.body["text"].as_str().unwrap();
    let date = templates_date_pt(w.day);
    assert_eq!(
        text,
        format!(
            "Olá, Maria! Sua visita de reparo está agendada para {date}, entre 10:00 e 12:00. \
             Protocolo: {}.",
            booking["token"].as_str().unwrap()
        )
    );
    let ics = m.body["ics"].as_str().unwrap();
    assert!(ics.contains(&format!("\r\nUID:{id}\r\n")), "{ics}");
    assert!(
        ics.contains(&format!(
            "\r\nDTSTART:{}\r\n",
            start.format("%Y%m%dT%H%M%SZ")
        )),
        "{ics}"
    );

    // Dispatchers see it; the reminders wait for their time.
    let dispatcher = w.s.key(Role::Dispatcher, None).await.1;
    let r =
        w.s.get("/v1/outbox?status=delivered", Some(&dispatcher))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["items"][0]["id"], stored[0].id.as_str());
    assert_eq!(r.json["items"][0]["attempts"], 1);
    let r =
        w.s.get(
            &format!("/v1/outbox?booking_id={id}&status=pending"),
            Some(&dispatcher),
        )
        .await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = w.s.get("/v1/outbox?status=lost", Some(&dispatcher)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = w.s.get("/v1/outbox", Some(&w.chatbot)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

/// "segunda-feira, 2 de março de 2026", written independently of the service.
fn templates_date_pt(day: NaiveDate) -> String {
    use chrono::Datelike;
    let weekdays = [
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ];
    let months = [
        "janeiro",
        "fevereiro",
        "março",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ];
    format!(
        "{}, {} de {} de {}",
        weekdays[day.weekday().num_days_from_monday() as usize],
        day.day(),
        months[day.month0() as usize],
        day.year()
    )
}

async fn reschedule_and_cancel_are_sent_and_supersede_the_reminders(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({"name": "Ana", "language": "en"}))
        .await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let id = booking["id"].as_str().unwrap().to_owned();
    let new_slot = w.slot_at(14).await;
    let r =
        w.s.post(
            &format!("/v1/bookings/{id}/reschedule"),
            Some(&w.chatbot),
            &json!({"slot_token": new_slot["slot_token"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = rows(&w.s.state.db).await;
    let count = |kind: &str, status: &str| {
        stored
            .iter()
            .filter(|r| r.kind == kind && r.status == status)
            .count()
    };
    assert_eq!(count("booking_confirmed", "pending"), 1);
    assert_eq!(count("booking_rescheduled", "pending"), 1);
    assert_eq!(count("booking_reminder", "superseded"), 2);
    assert_eq!(count("booking_reminder", "pending"), 2);
    let moved = stored
        .iter()
        .find(|r| r.kind == "booking_rescheduled")
        .unwrap();
    let payload: Value = serde_json::from_str(&moved.payload).unwrap();
    assert_eq!(payload["sequence"], 1);
    assert!(payload["previous_window"]["start"].is_string());

    let r =
        w.s.post(
            &format!("/v1/bookings/{id}/cancel"),
            Some(&w.chatbot),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = rows(&w.s.state.db).await;
    assert!(
        stored
            .iter()
            .filter(|r| r.kind == "booking_reminder")
            .all(|r| r.status == "superseded"),
        "{stored:?}"
    );
    // Cancelling again changes nothing and sends nothing more.
    let r =
        w.s.post(
            &format!("/v1/bookings/{id}/cancel"),
            Some(&w.chatbot),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(rows(&w.s.state.db).await.len(), stored.len());

    let round = drain(&w.worker("w1")).await;
    assert_eq!(round.delivered, 3, "{round:?}");
    let got = w.receiver.received();
    let by_kind: BTreeMap<String, &Received> = got
        .iter()
        .map(|m| (m.body["kind"].as_str().unwrap().to_owned(), m))
        .collect();
    assert_eq!(by_kind.len(), 3);
    assert!(got.iter().all(|m| m.signature_ok));
    let moved = by_kind["booking_rescheduled"];
    let text = moved.body["text"].as_str().unwrap();
    assert!(
        text.contains("has moved from") && text.contains("(10:00 AM–12:00 PM)"),
        "{text}"
    );
    assert!(text.ends_with("between 2:00 PM and 4:00 PM."), "{text}");
    assert!(moved.body["ics"].as_str().unwrap().contains("SEQUENCE:1"));
    let cancelled = by_kind["booking_cancelled"];
    assert!(cancelled.body["ics"].is_null());
    assert!(cancelled.body["text"]
        .as_str()
        .unwrap()
        .contains("is cancelled"));
}

async fn a_failed_delivery_is_retried_under_the_same_event_id(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({})).await;
    w.book(&w.slot_at(10).await, Some("c1")).await;
    w.receiver.script(&[500, 429, 503, 200]);
    let round = drain(&w.worker("w1")).await;
    assert_eq!((round.retried, round.delivered), (3, 1), "{round:?}");
    let got = w.receiver.received();
    assert_eq!(
        got.iter().map(|m| m.answered).collect::<Vec<_>>(),
        [500, 429, 503, 200]
    );
    let first = &got[0].event_id;
    assert!(got.iter().all(|m| &m.event_id == first && m.signature_ok));
    let confirmation = rows(&w.s.state.db)
        .await
        .into_iter()
        .find(|r| r.kind == "booking_confirmed")
        .unwrap();
    assert_eq!(&confirmation.id, first);
    assert_eq!(
        (confirmation.status.as_str(), confirmation.attempts),
        ("delivered", 4)
    );
    assert_eq!(confirmation.last_error, None);
}

async fn a_client_error_is_dead_at_once_and_retries_run_out(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({})).await;
    w.book(&w.slot_at(10).await, Some("c1")).await;
    w.receiver.script(&[400]);
    let round = drain(&w.worker("w1")).await;
    assert_eq!((round.dead, round.retried), (1, 0), "{round:?}");
    assert_eq!(w.receiver.received().len(), 1, "no retry after a 400");
    let dead = rows(&w.s.state.db)
        .await
        .into_iter()
        .find(|r| r.kind == "booking_confirmed")
        .unwrap();
    assert_eq!((dead.status.as_str(), dead.attempts), ("dead", 1));
    assert!(
        dead.last_error.as_deref().unwrap().contains("answered 400"),
        "{dead:?}"
    );

    // Always 503: dead after max_attempts, with the last reason.
    w.book(&w.slot_at(14).await, Some("c1")).await;
    w.receiver.script(&[503; 10]);
    let worker = worker_on(
        w.s.state.db.clone(),
        "w2",
        WorkerConfig {
            max_attempts: 3,
            ..crate::common::worker_config()
        },
    );
    let round = drain(&worker).await;
    assert_eq!((round.retried, round.dead), (2, 1), "{round:?}");
    assert_eq!(w.receiver.received().len(), 4);
    let dead: Vec<Row> = rows(&w.s.state.db)
        .await
        .into_iter()
        .filter(|r| r.kind == "booking_confirmed" && r.status == "dead")
        .collect();
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().any(|r| r.attempts == 3
        && r.last_error
            .as_deref()
            .unwrap()
            .starts_with("gave up after 3 attempts")));
}

async fn two_workers_deliver_each_of_200_events_exactly_once(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({})).await;
    w.book(&w.slot_at(10).await, Some("c1")).await;
    // 199 more events of the same booking, written as the booking code writes them.
    let db = &w.s.state.db;
    let first = rows(db)
        .await
        .into_iter()
        .find(|r| r.kind == "booking_confirmed")
        .unwrap();
    for i in 0..199 {
        despacho_api::on_pool!(db, |pool| {
            sqlx::query(
                "INSERT INTO outbox (id, kind, booking_id, customer_id, channel, payload, \
                 status, attempts, next_attempt_at, created_at) \
                 VALUES ($1, 'booking_confirmed', $2, 'c1', 'webhook', $3, 'pending', 0, $4, $4)",
            )
            .bind(format!("evt_bulk_{i:03}"))
            .bind(&first.booking_id)
            .bind(&first.payload)
            .bind(first.next_attempt_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .unwrap();
    }
    *w.receiver.state.delay.lock().unwrap() = Duration::from_millis(3);
    // Two workers with pools of their own, as two processes would have.
    let workers = [
        Db::connect(&w.s.db.url, 4).await.unwrap(),
        Db::connect(&w.s.db.url, 4).await.unwrap(),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, db)| {
        let worker = worker_on(db, &format!("w{i}"), crate::common::worker_config());
        tokio::spawn(async move { drain(&worker).await })
    })
    .collect::<Vec<_>>();
    let mut rounds = Vec::new();
    for task in workers {
        rounds.push(task.await.unwrap());
    }
    let got = w.receiver.received();
    assert!(
        w.receiver
            .state
            .concurrent_duplicates
            .lock()
            .unwrap()
            .is_empty(),
        "an event was sent by both workers at once"
    );
    let ids: HashSet<&str> = got.iter().map(|m| m.event_id.as_str()).collect();
    assert_eq!(got.len(), 200, "each event once: {rounds:?}");
    assert_eq!(ids.len(), 200);
    assert!(
        rounds.iter().all(|r| r.delivered > 0),
        "both workers took a share: {rounds:?}"
    );
    let stored = rows(db).await;
    let delivered: Vec<&Row> = stored
        .iter()
        .filter(|r| r.kind == "booking_confirmed")
        .collect();
    assert!(delivered
        .iter()
        .all(|r| r.status == "delivered" && r.attempts == 1));
}

async fn a_worker_killed_mid_delivery_is_replaced_when_its_lease_ends(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({})).await;
    w.book(&w.slot_at(10).await, Some("c1")).await;
    let lease = WorkerConfig {
        lease: Duration::from_millis(500),
        ..crate::common::worker_config()
    };
    let short = |name: &str| worker_on(w.s.state.db.clone(), name, lease.clone());
    // A's request reaches the receiver, which answers slowly; A dies meanwhile.
    *w.receiver.state.first_delay.lock().unwrap() = Some(Duration::from_millis(300));
    let a = short("a");
    let dying = tokio::spawn(async move { a.run_once().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    dying.abort();
    let b = short("b");
    // While A's lease lives, nobody else takes the message.
    let round = b.run_once().await.unwrap();
    assert_eq!(round.claimed, 0, "{round:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let round = drain(&b).await;
    assert_eq!(round.delivered, 1, "{round:?}");
    let got = w.receiver.received();
    assert_eq!(got.len(), 2, "sent at most once more: {got:?}");
    assert_eq!(got[0].event_id, got[1].event_id);
    let row = rows(&w.s.state.db)
        .await
        .into_iter()
        .find(|r| r.kind == "booking_confirmed")
        .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("delivered", 2));

    // A worker that claimed and stalled cannot complete once its lease was taken over.
    w.book(&w.slot_at(14).await, Some("c1")).await;
    let stalled = short("c");
    let claimed = stalled.claim().await.unwrap();
    assert_eq!(claimed.len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(drain(&b).await.delivered, 1);
    let late = stalled
        .complete(
            &claimed[0],
            &despacho_api::server::messages::worker::Outcome::Dead {
                reason: "late".into(),
            },
        )
        .await
        .unwrap();
    assert!(!late, "a lost lease cannot complete");
    let got = w.receiver.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].event_id, claimed[0].id);
}

async fn a_reminder_in_quiet_hours_waits_for_eight_in_the_customers_morning(s: TestServer) {
    let w = world(s).await;
    let admin = w.s.admin_key.clone();
    let r =
        w.s.put(
            "/v1/settings",
            Some(&admin),
            &json!({"time_zone": "America/Sao_Paulo", "reminder_offsets_minutes": [720]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    w.customer("c1", json!({"time_zone": "America/Sao_Paulo"}))
        .await;
    // Window 10:00–12:00: the reminder is due at 22:00 the evening before.
    w.book(&w.slot_at(10).await, Some("c1")).await;
    let eve = w.day.pred_opt().unwrap();
    let local = |d: NaiveDate, h: u32, m: u32| {
        SP.from_local_datetime(&d.and_hms_opt(h, m, 0).unwrap())
            .single()
            .unwrap()
            .with_timezone(&Utc)
    };
    let reminder = rows(&w.s.state.db)
        .await
        .into_iter()
        .find(|r| r.kind == "booking_reminder")
        .unwrap();
    assert_eq!(reminder.next_attempt_at, local(eve, 22, 0));

    // 22:30 the evening before: the confirmation goes at once, the reminder waits.
    let night = worker_on(
        w.s.state.db.clone(),
        "night",
        WorkerConfig {
            clock: at(local(eve, 22, 30)),
            ..crate::common::worker_config()
        },
    );
    let round = night.run_once().await.unwrap();
    assert_eq!((round.delivered, round.deferred), (1, 1), "{round:?}");
    let reminder = rows(&w.s.state.db)
        .await
        .into_iter()
        .find(|r| r.kind == "booking_reminder")
        .unwrap();
    assert_eq!(reminder.status, "pending");
    assert_eq!(reminder.next_attempt_at, local(w.day, 8, 0));
    assert_eq!(reminder.attempts, 0, "a deferral is not an attempt");
    assert_eq!(night.run_once().await.unwrap().claimed, 0);

    let morning = worker_on(
        w.s.state.db.clone(),
        "morning",
        WorkerConfig {
            clock: at(local(w.day, 8, 0)),
            ..crate::common::worker_config()
        },
    );
    assert_eq!(morning.run_once().await.unwrap().delivered, 1);
    let got = w.receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body["kind"], "booking_reminder");
    assert_eq!(got[1].body["reminder_offset_minutes"], 720);
    assert!(got[1].body["text"]
        .as_str()
        .unwrap()
        .starts_with("Reminder: your repair visit is on"));
}

async fn a_missing_translation_falls_back_and_is_never_blank(s: TestServer) {
    let w = world(s).await;
    w.customer("fr", json!({"language": "fr"})).await;
    w.customer("pt", json!({"language": "pt-pt"})).await;
    w.customer("none", json!({})).await;
    w.book(&w.slot_at(8).await, Some("fr")).await;
    w.book(&w.slot_at(10).await, Some("pt")).await;
    w.book(&w.slot_at(12).await, Some("none")).await;
    let admin = w.s.admin_key.clone();
    let r =
        w.s.put(
            "/v1/settings",
            Some(&admin),
            &json!({"time_zone": "America/Sao_Paulo", "default_language": "es"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(drain(&w.worker("w")).await.delivered, 3);
    let got = w.receiver.received();
    let by_customer: BTreeMap<&str, &Received> = got
        .iter()
        .map(|m| (m.body["customer"]["id"].as_str().unwrap(), m))
        .collect();
    assert_eq!(
        by_customer["fr"].body["language"], "es",
        "French → the default"
    );
    assert!(by_customer["fr"].body["text"]
        .as_str()
        .unwrap()
        .starts_with("Hola, Maria Souza. Reservamos tu visita de reparación"));
    assert_eq!(by_customer["pt"].body["language"], "pt-BR", "pt-PT → pt-BR");
    assert_eq!(by_customer["none"].body["language"], "es");
    assert!(got
        .iter()
        .all(|m| m.body["text"].as_str().is_some_and(|t| t.len() > 40)));

    // Settings refuse a default language without templates, and bad offsets.
    let r = w
        .s
        .put(
            "/v1/settings",
            Some(&admin),
            &json!({"time_zone": "UTC", "default_language": "fr", "reminder_offsets_minutes": [0, 60, 60]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.paths(),
        [
            "$.reminder_offsets_minutes[0]",
            "$.reminder_offsets_minutes[2]",
            "$.default_language"
        ]
    );
}

async fn the_outbox_row_lives_and_dies_with_its_booking(s: TestServer) {
    // A day with room for one visit.
    let w = world_with(s, "10:00:00").await;
    w.customer("c1", json!({})).await;
    let slot = w.slot_at(8).await;
    w.book(&slot, Some("c1")).await;
    let before = rows(&w.s.state.db).await.len();
    assert_eq!(before, 3);
    // The same slot again: refused, rolled back, no message.
    let r = w
        .post_idem(
            "/v1/bookings",
            "again",
            &json!({"slot_token": slot["slot_token"], "customer_id": "c1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(rows(&w.s.state.db).await.len(), before);
}

async fn holds_anonymous_bookings_and_opt_outs_get_no_message(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({})).await;
    w.customer("quiet", json!({"opt_out": ["webhook"]})).await;
    w.customer("mail", json!({"preferred_channel": "email"}))
        .await;
    let r = w
        .s
        .post(
            "/v1/customers",
            Some(&w.chatbot),
            &json!({"name": "X", "lat": 0, "lon": 0, "language": "de", "preferred_channel": "fax", "opt_out": ["sms"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.paths(),
        ["$.language", "$.preferred_channel", "$.opt_out[0]"]
    );
    let r = w.s.get("/v1/customers/quiet", Some(&w.chatbot)).await;
    assert_eq!(r.json["opt_out"], json!(["webhook"]), "{}", r.text);

    // No customer id: nothing. A hold: nothing until confirmed.
    w.book(&w.slot_at(8).await, None).await;
    assert!(rows(&w.s.state.db).await.is_empty());
    let slot = w.slot_at(10).await;
    let r = w
        .post_idem(
            "/v1/holds",
            "h1",
            &json!({"slot_token": slot["slot_token"], "customer_id": "c1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(rows(&w.s.state.db).await.is_empty());
    let hold = r.json["id"].as_str().unwrap().to_owned();
    let r =
        w.s.post(
            &format!("/v1/holds/{hold}/confirm"),
            Some(&w.chatbot),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        kinds(&rows(&w.s.state.db).await)[0],
        ("booking_confirmed".to_owned(), "pending".to_owned())
    );

    // Opted out of the webhook: suppressed. Preferring e-mail (no sender): the webhook.
    w.book(&w.slot_at(12).await, Some("quiet")).await;
    w.book(&w.slot_at(14).await, Some("mail")).await;
    let round = drain(&w.worker("w")).await;
    assert_eq!((round.delivered, round.suppressed), (2, 1), "{round:?}");
    let stored = rows(&w.s.state.db).await;
    let suppressed: Vec<&Row> = stored.iter().filter(|r| r.status == "suppressed").collect();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(
        suppressed[0].last_error.as_deref(),
        Some("the customer opted out of webhook")
    );
    let got = w.receiver.received();
    let mail = got
        .iter()
        .find(|m| m.body["customer"]["id"] == "mail")
        .expect("the e-mail customer's message went to the webhook");
    assert_eq!(mail.body["channel"], "webhook");
    assert!(w
        .receiver
        .received()
        .iter()
        .all(|m| m.body["customer"]["id"] != "quiet"));
}

async fn webhook_endpoints_are_managed_by_admins(s: TestServer) {
    let admin = s.admin_key.clone();
    let dispatcher = s.key(Role::Dispatcher, None).await.1;
    let r = s
        .post(
            "/v1/webhook-endpoints",
            Some(&dispatcher),
            &json!({"url": "http://127.0.0.1:9/x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for bad in [
        "https://chat.example/hook",
        "ftp://x",
        "http://",
        "http://a b",
    ] {
        let r = s
            .post("/v1/webhook-endpoints", Some(&admin), &json!({"url": bad}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
        assert_eq!(r.paths(), ["$.url"]);
    }
    let r = s
        .post(
            "/v1/webhook-endpoints",
            Some(&admin),
            &json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.json["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = r.json["id"].as_str().unwrap().to_owned();
    let r = s.get("/v1/webhook-endpoints", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["items"][0]["id"], id.as_str());
    assert!(r.json["items"][0].get("secret").is_none(), "{}", r.text);
    let path = format!("/v1/webhook-endpoints/{id}");
    assert_eq!(
        s.delete(&path, Some(&admin)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.delete(&path, Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Issue 26: webhook targets inside the operator's network. With the default policy,
/// loopback, link-local (cloud metadata), private and `localhost` URLs are refused when
/// stored (422 `refused_target` naming `$.url`, and the option that allows them); an
/// endpoint that reaches loopback anyway (stored before, or a name that resolves there)
/// is refused at delivery: the worker never connects, the message is dead at once
/// with the reason.
async fn webhook_targets_inside_the_network_are_refused(s: TestServer) {
    let strict =
        TestServer::start_with(s.backend, |c| c.webhook_targets = Default::default()).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9/hook",
        "http://10.0.0.8/hook",
        "http://192.168.1.20:8080/hook",
        "http://[::1]:9000/hook",
        "http://localhost:3000/hook",
    ] {
        let r = strict
            .post(
                "/v1/webhook-endpoints",
                Some(&strict.admin_key),
                &json!({"url": url}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            r.text
        );
        assert_eq!(r.paths(), ["$.url"], "{url}");
        assert_eq!(r.json["error"]["details"][0]["code"], "refused_target");
        assert!(r.text.contains("--webhook-allow-network"), "{}", r.text);
    }
    let r = strict
        .post(
            "/v1/webhook-endpoints",
            Some(&strict.admin_key),
            &json!({"url": "http://chat.example.com/hook"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "a public name: {}", r.text);

    // Delivery: the world's endpoint is on loopback (allowed for `s`); a worker with
    // the default policy refuses to connect.
    let w = world(s).await;
    w.customer("c1", json!({})).await;
    w.book(&w.slot_at(10).await, Some("c1")).await;
    let worker = worker_on(w.s.state.db.clone(), "strict", WorkerConfig::default());
    let round = drain(&worker).await;
    assert_eq!(
        (round.dead, round.delivered, round.retried),
        (1, 0, 0),
        "{round:?}"
    );
    assert!(w.receiver.received().is_empty(), "the worker connected");
    let dead = rows(&w.s.state.db)
        .await
        .into_iter()
        .find(|r| r.kind == "booking_confirmed")
        .unwrap();
    assert_eq!(dead.status, "dead");
    let reason = dead.last_error.unwrap();
    assert!(
        reason.contains("127.0.0.1 is a loopback address"),
        "{reason}"
    );
}

both_backends!(
    webhook_targets_inside_the_network_are_refused,
    a_booking_is_confirmed_by_a_signed_webhook_in_the_customers_language,
    reschedule_and_cancel_are_sent_and_supersede_the_reminders,
    a_failed_delivery_is_retried_under_the_same_event_id,
    a_client_error_is_dead_at_once_and_retries_run_out,
    two_workers_deliver_each_of_200_events_exactly_once,
    a_worker_killed_mid_delivery_is_replaced_when_its_lease_ends,
    a_reminder_in_quiet_hours_waits_for_eight_in_the_customers_morning,
    a_missing_translation_falls_back_and_is_never_blank,
    the_outbox_row_lives_and_dies_with_its_booking,
    holds_anonymous_bookings_and_opt_outs_get_no_message,
    webhook_endpoints_are_managed_by_admins,
);
