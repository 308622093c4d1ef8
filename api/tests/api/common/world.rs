//! A small booked world for the message tests (server_email.rs, server_inbound.rs):
//! the operation in São Paulo, one technician ten days ahead at the customers' place, a
//! chat bot key, and helpers to register customers, search, book and drain the worker.
//! Used as `crate::common::world`.

#![allow(dead_code)]

use crate::common::*;
use axum::http::StatusCode;
use chrono::{DateTime, Days, NaiveDate, Utc};
use despacho_api::server::messages::worker::{Round, Worker, WorkerConfig};
use despacho_api::server::{Db, Role};
use serde_json::{json, Value};
use std::time::Duration;

pub const PLACE: (f64, f64) = (-23.56, -46.65);
pub const SP: chrono_tz::Tz = chrono_tz::America::Sao_Paulo;

pub struct World {
    pub s: TestServer,
    pub chatbot: String,
    pub day: NaiveDate,
}

pub fn future_day() -> NaiveDate {
    Utc::now()
        .with_timezone(&SP)
        .date_naive()
        .checked_add_days(Days::new(10))
        .unwrap()
}

/// The operation in São Paulo with one technician working 08:00–`to` on `day`
/// (default ten days ahead), and a chat bot key.
pub async fn world_on(s: TestServer, day: NaiveDate, to: &str) -> World {
    let admin = s.admin_key.clone();
    let r = s
        .put(
            "/v1/settings",
            Some(&admin),
            &json!({"time_zone": "America/Sao_Paulo"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut t = technician("t1");
    t["home"] = json!({"lat": PLACE.0, "lon": PLACE.1});
    t["shifts"] = json!([{"date": day, "start": "08:00:00", "end": to, "overtime_minutes": 0}]);
    let r = s.post("/v1/technicians", Some(&admin), &t).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let chatbot = s.key(Role::Chatbot, None).await.1;
    World { s, chatbot, day }
}

pub async fn world(s: TestServer) -> World {
    world_on(s, future_day(), "17:00:00").await
}

impl World {
    /// Registers customer `id` (Maria, in São Paulo) with `extra` fields.
    pub async fn customer(&self, id: &str, extra: Value) {
        let mut c = customer(Some(id));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let r = self.s.post("/v1/customers", Some(&self.chatbot), &c).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    pub fn slot_request(&self) -> Value {
        json!({
            "place": {"lat": PLACE.0, "lon": PLACE.1},
            "kind": "repair",
            "duration_minutes": 100,
            "required_skills": {"fiber_splicing": 1},
            "earliest_day": self.day,
            "days": 1,
            "window_minutes": 120
        })
    }

    pub async fn slots(&self) -> Vec<Value> {
        let r = self
            .s
            .post(
                "/v1/slots/search",
                Some(&self.chatbot),
                &self.slot_request(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["slots"].as_array().cloned().unwrap_or_default()
    }

    /// A slot whose window starts at `hour` local time.
    pub async fn slot_at(&self, hour: u32) -> Value {
        let slots = self.slots().await;
        slots
            .iter()
            .find(|s| local_hour(&s["start"]) == hour)
            .unwrap_or_else(|| panic!("no slot at {hour}:00 in {slots:?}"))
            .clone()
    }

    pub async fn post_idem(&self, path: &str, idem: &str, body: &Value) -> Reply {
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
    pub async fn book(&self, slot: &Value, customer: Option<&str>) -> Value {
        let mut body = json!({"slot_token": slot["slot_token"]});
        if let Some(c) = customer {
            body["customer_id"] = json!(c);
        }
        let idem = format!("k-{}", fastrand::u64(..));
        let r = self.post_idem("/v1/bookings", &idem, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json
    }

    pub fn worker(&self, name: &str, base: WorkerConfig) -> Worker {
        worker_on(self.s.state.db.clone(), name, base)
    }
}

/// The local (São Paulo) hour of an RFC 3339 time.
pub fn local_hour(time: &Value) -> u32 {
    use chrono::Timelike;
    DateTime::parse_from_rfc3339(time.as_str().unwrap())
        .unwrap()
        .with_timezone(&SP)
        .hour()
}

/// A worker with test timings: quick retries (the rest from `base`).
pub fn worker_on(db: Db, name: &str, base: WorkerConfig) -> Worker {
    let config = WorkerConfig {
        name: name.to_owned(),
        batch: 8,
        idle_poll: Duration::from_millis(10),
        backoff_base: Duration::from_millis(2),
        backoff_cap: Duration::from_millis(8),
        http_timeout: Duration::from_secs(5),
        ..base
    };
    Worker::new(db, config).unwrap()
}

/// Rounds until nothing is due (retries included).
pub async fn drain(w: &Worker) -> Round {
    let mut total = Round::default();
    let mut idle = 0;
    while idle < 5 {
        let r = w.run_once().await.unwrap();
        if r.claimed == 0 {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        } else {
            idle = 0;
        }
        total.claimed += r.claimed;
        total.delivered += r.delivered;
        total.retried += r.retried;
        total.dead += r.dead;
        total.suppressed += r.suppressed;
        total.deferred += r.deferred;
        total.lease_lost += r.lease_lost;
    }
    total
}

/// One outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub booking_id: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub channel: String,
}

pub async fn outbox_rows(db: &Db) -> Vec<OutboxRow> {
    despacho_api::on_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT id, kind, booking_id, status, attempts, last_error, channel FROM outbox \
             ORDER BY next_attempt_at, kind, id",
        )
        .fetch_all(pool)
        .await
    })
    .unwrap()
}
