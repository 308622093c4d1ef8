//! Test harness of the HTTP service: every test runs on SQLite and on PostgreSQL, each
//! run with a database of its own, and talks HTTP to the real router in-process
//! (`tower::ServiceExt::oneshot`, no socket).
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! async fn lists_nothing_at_first(s: TestServer) {
//!     let r = s.get("/v1/technicians", Some(&s.admin_key)).await;
//!     assert_eq!(r.status, 200);
//! }
//! both_backends!(lists_nothing_at_first);   // → lists_nothing_at_first::{sqlite, postgres}
//! ```
//!
//! - **SQLite:** a fresh file in a temporary directory, removed at the end.
//! - **PostgreSQL:** `CREATE DATABASE despacho_test_<random>` on the server at
//!   `DESPACHO_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//!   dropped (`WITH (FORCE)`) at the end, even when the test panics. An unreachable
//!   server fails the test: it is never skipped.

#![allow(dead_code)]

pub mod process;
pub mod receiver;
pub mod world;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use despacho_api::server::messages::notify::targets::WebhookTargets;
use despacho_api::server::{build_app, AppState, Config, Role};
use serde_json::{json, Value};
use sqlx::Connection;
use std::path::PathBuf;
use tower::ServiceExt;

/// The admin key every [`TestServer`] starts with (through `Config::admin_key`, as
/// `DESPACHO_ADMIN_KEY` does).
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `mod NAME { sqlite(), postgres() }` tests calling `async fn NAME(TestServer)`
/// with a fresh server on each backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestServer::start($crate::common::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::TestServer::start($crate::common::Backend::Postgres).await).await
            }
        }
    )+};
}

/// A database for one test, removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Database { admin_url: String, name: String },
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("despacho-test-{}", random_suffix()));
                std::fs::create_dir_all(&dir).expect("a temporary directory");
                let url = format!("sqlite://{}", dir.join("despacho.db").display());
                TestDb {
                    backend,
                    url,
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("DESPACHO_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
                let name = format!("despacho_test_{}", random_suffix());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                        "PostgreSQL is required by the tests and is not reachable at {admin_url} \
                         (set DESPACHO_TEST_POSTGRES_URL): {e}"
                    )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
                conn.close().await.ok();
                let url = with_database(&admin_url, &name);
                TestDb {
                    backend,
                    url,
                    cleanup: Cleanup::Database { admin_url, name },
                }
            }
        }
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                // Drop may run inside the test's runtime: drop the database from a thread
                // of its own with a runtime of its own.
                let (admin_url, database) = (admin_url.clone(), name.clone());
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await?;
                        conn.close().await
                    })?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!("warning: could not drop test database {name}");
                }
            }
        }
    }
}

/// The service over a fresh database, with an admin key.
pub struct TestServer {
    pub backend: Backend,
    pub router: Router,
    pub state: AppState,
    pub admin_key: String,
    // Last: dropped after the router and state.
    pub db: TestDb,
}

/// An HTTP answer: status, body text, and the body as JSON (`Null` if it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub text: String,
    pub json: Value,
    pub content_type: Option<String>,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The paths of an error body's details.
    pub fn paths(&self) -> Vec<String> {
        self.json["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|e| e["path"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The networks of the tests' own receivers (on loopback), which the service refuses
/// as webhook targets unless allowed.
pub fn loopback_targets() -> WebhookTargets {
    WebhookTargets::allowing(vec!["127.0.0.0/8".parse().unwrap()])
}

/// A worker's configuration for tests: the defaults, delivering to loopback receivers.
pub fn worker_config() -> despacho_api::server::messages::worker::WorkerConfig {
    despacho_api::server::messages::worker::WorkerConfig {
        webhook_targets: loopback_targets(),
        ..Default::default()
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// A server whose configuration `configure` changes first (tests start from
    /// loopback webhook targets allowed).
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestServer {
        let db = TestDb::new(backend).await;
        let mut config = Config::new(db.url.clone());
        config.max_connections = 4;
        config.admin_key = Some(ADMIN_KEY.to_owned());
        config.webhook_targets = loopback_targets();
        configure(&mut config);
        let app = build_app(&config)
            .await
            .unwrap_or_else(|e| panic!("the service starts on {backend:?}: {e:?}"));
        TestServer {
            backend,
            router: app.router,
            state: app.state,
            admin_key: ADMIN_KEY.to_owned(),
            db,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router never fails");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a readable body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            text,
            json,
            content_type,
        }
    }

    /// `method path` with an optional key and an optional raw body of `content_type`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = match body {
            Some((content_type, bytes)) => builder
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(bytes)),
            None => builder.body(Body::empty()),
        }
        .expect("a valid request");
        self.send(request).await
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.call(Method::POST, path, key, Some(json_body(body)))
            .await
    }

    pub async fn put(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.call(Method::PUT, path, key, Some(json_body(body)))
            .await
    }

    /// POST of raw text as JSON (for malformed bodies).
    pub async fn post_raw(
        &self,
        path: &str,
        key: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Reply {
        self.call(
            Method::POST,
            path,
            key,
            Some((content_type, body.as_bytes().to_vec())),
        )
        .await
    }

    /// A new key of `role` (for a technician key, of `technician`), made by the admin.
    pub async fn key(&self, role: Role, technician: Option<&str>) -> (String, String) {
        let mut body = json!({"name": format!("test {role}"), "role": role});
        if let Some(t) = technician {
            body["technician_id"] = json!(t);
        }
        let r = self
            .post("/v1/api-keys", Some(&self.admin_key), &body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (
            r.json["id"].as_str().unwrap().to_owned(),
            r.json["secret"].as_str().unwrap().to_owned(),
        )
    }
}

fn json_body(body: &Value) -> (&'static str, Vec<u8>) {
    ("application/json", serde_json::to_vec(body).unwrap())
}

// ---------------------------------------------------------------------------------------
// Records

/// Everything a fresh pull (no cookie) of `technician`'s phone shows: key → value.
pub async fn phone_view(
    s: &TestServer,
    key: &str,
    technician: &str,
) -> serde_json::Map<String, Value> {
    let body =
        json!({"schema_version": 1, "message": {"client_id": format!("phone-{technician}")}});
    let r = s.post("/v1/sync/pull", Some(key), &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut view = serde_json::Map::new();
    for op in r.json["message"]["patch"].as_array().unwrap() {
        match op["op"].as_str().unwrap() {
            "clear" => view.clear(),
            "put" => {
                view.insert(op["key"].as_str().unwrap().to_owned(), op["value"].clone());
            }
            "del" => {
                view.remove(op["key"].as_str().unwrap());
            }
            other => panic!("unknown op {other}"),
        }
    }
    view
}

/// A valid technician working two days in São Paulo.
pub fn technician(id: &str) -> Value {
    json!({
        "id": id,
        "name": format!("Técnico {id}"),
        "skills": {"fiber_splicing": 3, "pppoe": 2},
        "home": {"lat": -23.55, "lon": -46.63, "address": "Av. Paulista, 1000"},
        "shifts": [
            {"date": "2026-03-02", "start": "08:00:00", "end": "17:00:00",
             "break_rule": {"duration_minutes": 45, "earliest_start": "11:30:00", "latest_end": "14:00:00"},
             "overtime_minutes": 60, "overtime_cost_per_hour": 45.0},
            {"date": "2026-03-03", "start": "08:00:00", "end": "17:00:00",
             "overtime_minutes": 0, "overtime_cost_per_hour": 0.0}
        ],
        "cost_per_hour": 30.0,
        "cost_per_km": 0.7,
        "van_capacity": 8,
        "max_jobs_per_day": 10
    })
}

/// A valid repair job, pinned to `technician` when given.
pub fn job(id: &str, technician: Option<&str>) -> Value {
    let mut job = json!({
        "id": id,
        "kind": "repair",
        "place": {"lat": -23.56, "lon": -46.65},
        "duration_minutes": 60,
        "required_skills": {"fiber_splicing": 1},
        "windows": [{"start": "2026-03-02T08:00:00-03:00", "end": "2026-03-02T10:00:00-03:00"}],
        "priority": 5
    });
    if let Some(t) = technician {
        job["pinned_technician"] = json!(t);
    }
    job
}

/// A valid customer.
pub fn customer(id: Option<&str>) -> Value {
    let mut c = json!({
        "name": "Maria Souza",
        "phone": "+55 11 91234-5678",
        "lat": -23.56,
        "lon": -46.65,
        "address": "Rua Augusta, 500"
    });
    if let Some(id) = id {
        c["id"] = json!(id);
    }
    c
}

// ---------------------------------------------------------------------------------------
// Booking invariants (RELIABILITY.md, Booking), re-checked from the database

/// The promises of the booking tables, checked from the rows (for tests that drive the
/// service in-process or as a separate process): per technician-day, `booked_minutes`
/// is the sum of its confirmed visits and within `capacity_minutes`; the planned times
/// of a technician's active visits never overlap, lie in their windows and last their
/// durations; and every active technician-day passes the solver's joint check again.
pub mod booking_invariants {
    use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
    use despacho_api::server::booking::bookings::DEFAULT_REPAIR_RESERVE;
    use despacho_api::server::catalog::settings::settings_in;
    use despacho_api::server::Db;
    use despacho_solver::field::input::{JobInput, Technician};
    use despacho_solver::field::slots::{check_visit, BookedVisit, Operation};
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};

    /// One row of `bookings`.
    #[derive(Clone, Debug)]
    pub struct StoredBooking {
        pub id: String,
        pub technician_id: String,
        pub date: NaiveDate,
        pub window_start: DateTime<Utc>,
        pub window_end: DateTime<Utc>,
        pub duration_minutes: i32,
        pub status: String,
        pub expires_at: Option<DateTime<Utc>>,
        pub planned_start: Option<DateTime<Utc>>,
        pub planned_end: Option<DateTime<Utc>>,
        pub job: String,
    }

    impl StoredBooking {
        /// Confirmed, or held with an expiry after `now`.
        pub fn is_active(&self, now: DateTime<Utc>) -> bool {
            match self.status.as_str() {
                "confirmed" => true,
                "held" => self.expires_at.is_some_and(|e| e > now),
                _ => false,
            }
        }

        pub fn job(&self) -> JobInput {
            serde_json::from_str(&self.job)
                .unwrap_or_else(|e| panic!("booking {} stores an invalid job: {e}", self.id))
        }
    }

    type BookingTuple = (
        String,
        String,
        NaiveDate,
        DateTime<Utc>,
        DateTime<Utc>,
        i32,
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        String,
    );

    /// Every booking, by id.
    pub async fn bookings(db: &Db) -> Vec<StoredBooking> {
        let rows: Vec<BookingTuple> = despacho_api::on_pool!(db, |pool| {
            sqlx::query_as(
                "SELECT id, technician_id, date, window_start, window_end, duration_minutes, \
                 status, expires_at, planned_start, planned_end, job FROM bookings ORDER BY id",
            )
            .fetch_all(pool)
            .await
        })
        .expect("bookings read");
        rows.into_iter()
            .map(|r| StoredBooking {
                id: r.0,
                technician_id: r.1,
                date: r.2,
                window_start: r.3,
                window_end: r.4,
                duration_minutes: r.5,
                status: r.6,
                expires_at: r.7,
                planned_start: r.8,
                planned_end: r.9,
                job: r.10,
            })
            .collect()
    }

    /// `technician_days`: (technician, date) → (booked_minutes, capacity_minutes).
    pub async fn technician_days(db: &Db) -> BTreeMap<(String, NaiveDate), (i32, i32)> {
        let rows: Vec<(String, NaiveDate, i32, i32)> = despacho_api::on_pool!(db, |pool| {
            sqlx::query_as(
                "SELECT technician_id, date, booked_minutes, capacity_minutes FROM technician_days",
            )
            .fetch_all(pool)
            .await
        })
        .expect("technician_days read");
        rows.into_iter()
            .map(|(t, d, b, c)| ((t, d), (b, c)))
            .collect()
    }

    /// History of every booking: id → (at, action, details), in order.
    pub async fn histories(db: &Db) -> BTreeMap<String, Vec<(DateTime<Utc>, String, Value)>> {
        let rows: Vec<(String, DateTime<Utc>, String, String)> =
            despacho_api::on_pool!(db, |pool| {
                sqlx::query_as(
                    "SELECT booking_id, at, action, details FROM booking_history \
                     ORDER BY booking_id, at",
                )
                .fetch_all(pool)
                .await
            })
            .expect("booking_history read");
        let mut out: BTreeMap<String, Vec<(DateTime<Utc>, String, Value)>> = BTreeMap::new();
        for (id, at, action, details) in rows {
            let details = serde_json::from_str(&details).expect("history details are JSON");
            out.entry(id).or_default().push((at, action, details));
        }
        out
    }

    /// The operation as the service sees it (as `bookings::operation_in` builds it).
    pub async fn operation(db: &Db) -> Operation {
        let mut tx = db.begin_read().await.expect("a read transaction");
        let settings = settings_in(&mut tx).await.expect("settings");
        tx.rollback().await.expect("rollback");
        let data: Vec<String> = despacho_api::on_pool!(db, |pool| {
            sqlx::query_scalar("SELECT data FROM technicians ORDER BY id")
                .fetch_all(pool)
                .await
        })
        .expect("technicians read");
        let reserve: Option<String> = despacho_api::on_pool!(db, |pool| {
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'repair_reserve'")
                .fetch_optional(pool)
                .await
        })
        .expect("settings read");
        Operation {
            time_zone: settings.time_zone,
            travel: settings.travel,
            technicians: data
                .iter()
                .map(|d| serde_json::from_str::<Technician>(d).expect("a stored technician"))
                .collect(),
            repair_reserve: reserve
                .and_then(|v| serde_json::from_str::<f64>(&v).ok())
                .filter(|r| (0.0..1.0).contains(r))
                .unwrap_or(DEFAULT_REPAIR_RESERVE),
        }
    }

    /// On-site minutes of a technician-day: the shift with overtime, less the break.
    pub fn shift_minutes(op: &Operation, technician: &str, date: NaiveDate) -> Option<i32> {
        let shift = op
            .technicians
            .iter()
            .find(|t| t.id == technician)?
            .shifts
            .iter()
            .find(|s| s.date == date)?;
        let mut minutes =
            (shift.end - shift.start).num_minutes() + i64::from(shift.overtime_minutes);
        if let Some(b) = &shift.break_rule {
            minutes -= i64::from(b.duration_minutes);
        }
        i32::try_from(minutes.max(0)).ok()
    }

    /// What [`check`] found.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Summary {
        pub total: usize,
        pub confirmed: usize,
        pub held_live: usize,
        pub held_lapsed: usize,
        pub cancelled: usize,
        /// Technician-days with at least one active visit (each passed the joint check).
        pub active_days: usize,
        pub booked_minutes: i64,
    }

    /// Checks every invariant of the booking tables (panics with the broken one).
    /// Call when no booking write is running.
    pub async fn check(db: &Db) -> Summary {
        let now = Utc::now();
        let op = operation(db).await;
        let all = bookings(db).await;
        let days = technician_days(db).await;
        let mut summary = Summary {
            total: all.len(),
            ..Summary::default()
        };

        // Each row on its own.
        for b in &all {
            assert!(b.duration_minutes > 0, "{b:?}");
            assert!(b.window_start <= b.window_end, "window of {b:?}");
            let job = b.job();
            assert_eq!(
                i64::from(job.duration_minutes),
                i64::from(b.duration_minutes),
                "job duration of {}",
                b.id
            );
            match b.status.as_str() {
                "confirmed" => {
                    summary.confirmed += 1;
                    assert!(b.expires_at.is_none(), "a confirmed booking expires: {b:?}");
                }
                "held" => {
                    assert!(b.expires_at.is_some(), "a hold without expiry: {b:?}");
                    if b.is_active(now) {
                        summary.held_live += 1;
                    } else {
                        summary.held_lapsed += 1;
                    }
                }
                "cancelled" => {
                    summary.cancelled += 1;
                    assert!(
                        b.planned_start.is_none() && b.planned_end.is_none(),
                        "a cancelled booking keeps planned times: {b:?}"
                    );
                    assert!(b.expires_at.is_none(), "{b:?}");
                }
                other => panic!("unknown status {other} of {}", b.id),
            }
            if b.is_active(now) {
                let (Some(start), Some(end)) = (b.planned_start, b.planned_end) else {
                    panic!("an active booking without planned times: {b:?}");
                };
                assert_eq!(
                    end - start,
                    TimeDelta::minutes(i64::from(b.duration_minutes)),
                    "planned length of {b:?}"
                );
                assert!(
                    b.window_start <= start && start <= b.window_end,
                    "planned start outside the window: {b:?}"
                );
            } else if b.status != "cancelled" {
                // A lapsed hold may keep planned times until its day is written again;
                // if it has them, they are whole.
                assert_eq!(b.planned_start.is_some(), b.planned_end.is_some(), "{b:?}");
            }
        }

        // Day totals: the sum of confirmed minutes, within capacity.
        let mut confirmed: BTreeMap<(String, NaiveDate), i64> = BTreeMap::new();
        for b in all.iter().filter(|b| b.status == "confirmed") {
            *confirmed
                .entry((b.technician_id.clone(), b.date))
                .or_default() += i64::from(b.duration_minutes);
        }
        let keys: BTreeSet<_> = confirmed.keys().chain(days.keys()).cloned().collect();
        for key in keys {
            let sum = confirmed.get(&key).copied().unwrap_or(0);
            let Some(&(booked, capacity)) = days.get(&key) else {
                panic!("confirmed visits on {key:?} ({sum} min) but no technician_days row");
            };
            assert_eq!(
                i64::from(booked),
                sum,
                "booked_minutes of {key:?} differs from its confirmed visits"
            );
            assert!(
                (0..=capacity).contains(&booked),
                "{key:?}: {booked} booked minutes, capacity {capacity}"
            );
            if let Some(shift) = shift_minutes(&op, &key.0, key.1) {
                assert_eq!(capacity, shift, "capacity of {key:?}");
            }
            summary.booked_minutes += sum;
        }

        // Planned times of one technician never overlap.
        let mut by_technician: BTreeMap<&str, Vec<&StoredBooking>> = BTreeMap::new();
        for b in all.iter().filter(|b| b.is_active(now)) {
            by_technician.entry(&b.technician_id).or_default().push(b);
        }
        for (technician, mut visits) in by_technician {
            visits.sort_by_key(|b| b.planned_start);
            for pair in visits.windows(2) {
                assert!(
                    pair[0].planned_end <= pair[1].planned_start,
                    "{technician}: planned visits overlap: {:?} and {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }

        // The joint check: the active visits of each technician-day fit together.
        let mut by_day: BTreeMap<(String, NaiveDate), Vec<BookedVisit>> = BTreeMap::new();
        for b in all.iter().filter(|b| b.is_active(now)) {
            by_day
                .entry((b.technician_id.clone(), b.date))
                .or_default()
                .push(BookedVisit {
                    job: b.job(),
                    technician: b.technician_id.clone(),
                    date: b.date,
                });
        }
        for ((technician, date), mut visits) in by_day {
            let last = visits.pop().expect("a visit");
            if let Err(why) = check_visit(&op, &last, &visits) {
                panic!(
                    "the active visits of {technician} on {date} do not fit together ({why:?}): \
                     {} visits",
                    visits.len() + 1
                );
            }
            summary.active_days += 1;
        }
        summary
    }
}
