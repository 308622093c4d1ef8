//! The reference phone client (`despacho-phone`) against the real service over a socket,
//! on SQLite and PostgreSQL: its queue, cookie and jobs live in a local SQLite file, so
//! a phone killed at any moment resumes with nothing lost and nothing applied twice.

use crate::common::*;
use axum::http::StatusCode;
use despacho_api::server::Role;
use despacho_phone::{FailureReason, JobStatus, Phone, PhoneError, PullOutcome, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The service of `s` on a local port, for clients that speak real HTTP.
async fn listen(s: &TestServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = s.router.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A URL where nothing listens: the phone is offline.
async fn nowhere() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// Technician `t1` with jobs J-1, J-2 (and t2 with J-3); returns (t1's key, dispatcher key).
async fn world(s: &TestServer) -> (String, String) {
    for t in ["t1", "t2"] {
        let r = s
            .post("/v1/technicians", Some(&s.admin_key), &technician(t))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let dispatcher = s.key(Role::Dispatcher, None).await.1;
    for (j, t) in [("J-1", "t1"), ("J-2", "t1"), ("J-3", "t2")] {
        let r = s
            .post(
                "/v1/jobs",
                Some(&s.admin_key),
                &json!({"job": job(j, None)}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let r = s
            .post(
                &format!("/v1/jobs/{j}/assign"),
                Some(&dispatcher),
                &json!({"technician": t}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    (s.key(Role::Technician, Some("t1")).await.1, dispatcher)
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("despacho-phone-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The technician's scope as the database holds it.
async fn scope(s: &TestServer, technician: &str) -> BTreeMap<String, Value> {
    let rows: Vec<(String, String)> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as(
            "SELECT key, value FROM sync_entries WHERE technician_id = $1 AND value IS NOT NULL",
        )
        .bind(technician)
        .fetch_all(pool)
        .await
    })
    .unwrap();
    rows.into_iter()
        .map(|(k, v)| (k, serde_json::from_str(&v).unwrap()))
        .collect()
}

/// (facts, rejections) the server stored for `client`, as sorted mutation ids.
async fn applied(s: &TestServer, client: &str) -> (Vec<i64>, Vec<i64>) {
    let facts: Vec<i64> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar(
            "SELECT mutation_id FROM sync_facts WHERE client_id = $1 ORDER BY mutation_id",
        )
        .bind(client)
        .fetch_all(pool)
        .await
    })
    .unwrap();
    let rejected: Vec<i64> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar(
            "SELECT mutation_id FROM sync_rejections WHERE client_id = $1 ORDER BY mutation_id",
        )
        .bind(client)
        .fetch_all(pool)
        .await
    })
    .unwrap();
    (facts, rejected)
}

/// The texts of the notes on `job` in the server's record.
async fn notes(s: &TestServer, job: &str) -> Vec<String> {
    let record: String = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT record FROM sync_jobs WHERE job_id = $1")
            .bind(job)
            .fetch_one(pool)
            .await
    })
    .unwrap();
    let record: Value = serde_json::from_str(&record).unwrap();
    record["facts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["fact"]["kind"] == "note")
        .map(|f| f["fact"]["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Copies the phone's file as it is on disk: the database and its WAL, if any.
fn copy_store(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let (f, t) = (
            PathBuf::from(format!("{}{suffix}", from.display())),
            PathBuf::from(format!("{}{suffix}", to.display())),
        );
        if f.exists() {
            std::fs::copy(&f, &t).unwrap();
        } else if t.exists() {
            std::fs::remove_file(&t).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------

async fn mutations_queued_offline_survive_a_killed_phone_and_apply_once(s: TestServer) {
    let (key, _) = world(&s).await;
    let online = Server::new(&listen(&s).await, &key).unwrap();
    let offline = Server::new(&nowhere().await, &key).unwrap();
    let dir = TempDir::new();
    let file = dir.path("phone.db");

    let mut phone = Phone::open(&file, "p1").await.unwrap();
    let first = phone.sync(&online).await.unwrap();
    assert!(matches!(
        first.pull,
        PullOutcome::Applied { reset: true, .. }
    ));
    let jobs: Vec<Value> = phone.jobs().iter().map(|j| j["job"].clone()).collect();
    assert_eq!(jobs, [json!("J-1"), json!("J-2")]);

    // Offline: the work is queued on disk; sync fails as "try again later".
    phone.status("J-1", JobStatus::EnRoute, None).await.unwrap();
    phone.note("J-1", "offline note 1").await.unwrap();
    let err = phone.sync(&offline).await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    phone.status("J-1", JobStatus::Arrived, None).await.unwrap();
    assert_eq!(phone.pending(), 3);
    assert_eq!(phone.jobs()[0]["status"], "arrived", "the optimistic view");
    // Killed: dropped without closing.
    drop(phone);

    let mut phone = Phone::open(&file, "p1").await.unwrap();
    assert_eq!(phone.pending(), 3, "nothing recorded was lost");
    assert_eq!(phone.jobs()[0]["status"], "arrived");
    phone.note("J-1", "offline note 2").await.unwrap();
    phone
        .status(
            "J-2",
            JobStatus::Failed,
            Some(FailureReason::CustomerAbsent),
        )
        .await
        .unwrap();
    assert!(phone.sync(&offline).await.unwrap_err().is_temporary());
    drop(phone);

    let mut phone = Phone::open(&file, "p1").await.unwrap();
    let report = phone.sync(&online).await.unwrap();
    assert_eq!(report.acknowledged, 5);
    assert_eq!(phone.pending(), 0);
    assert_eq!(applied(&s, "p1").await, ((1..=5).collect(), vec![]));
    assert_eq!(notes(&s, "J-1").await, ["offline note 1", "offline note 2"]);
    let jobs = phone.jobs();
    assert_eq!(jobs[0]["status"], "arrived");
    assert_eq!(jobs[1]["status"], "failed");
    assert_eq!(jobs[1]["failure_reason"], "customer_absent");
    assert_eq!(*phone.state().confirmed(), scope(&s, "t1").await);
    assert_eq!(phone.state().view(), *phone.state().confirmed());
    phone.close().await;

    // What was stored is what was seen: reopened, the same view and cookie.
    let phone = Phone::open(&file, "p1").await.unwrap();
    assert_eq!(*phone.state().confirmed(), scope(&s, "t1").await);
    assert!(phone.state().cookie().is_some());
}

async fn a_phone_killed_before_it_stored_the_ack_resends_and_nothing_is_applied_twice(
    s: TestServer,
) {
    let (key, _) = world(&s).await;
    let online = Server::new(&listen(&s).await, &key).unwrap();
    let dir = TempDir::new();
    let file = dir.path("phone.db");
    let mut phone = Phone::open_with_batch(&file, "p1", 2).await.unwrap();
    phone.sync(&online).await.unwrap();
    for n in 1..=5 {
        phone.note("J-2", &format!("note {n}")).await.unwrap();
    }
    phone.close().await;
    // The file as it is on disk just before the push: the next run commits on the
    // server, and then the phone dies before writing anything down.
    copy_store(&file, &dir.path("before-push.db"));
    let mut phone = Phone::open_with_batch(&file, "p1", 2).await.unwrap();
    let report = phone.sync(&online).await.unwrap();
    assert_eq!((report.acknowledged, report.pushes), (5, 3));
    phone.close().await;
    copy_store(&dir.path("before-push.db"), &file);

    let mut phone = Phone::open_with_batch(&file, "p1", 2).await.unwrap();
    assert_eq!(phone.pending(), 5, "the restored file still has the queue");
    let report = phone.sync(&online).await.unwrap();
    assert_eq!(report.acknowledged, 5, "the server acknowledges the resend");
    assert_eq!(phone.pending(), 0);
    assert_eq!(applied(&s, "p1").await, ((1..=5).collect(), vec![]));
    assert_eq!(
        notes(&s, "J-2").await,
        ["note 1", "note 2", "note 3", "note 4", "note 5"]
    );
    assert_eq!(*phone.state().confirmed(), scope(&s, "t1").await);
    // The next mutation continues the numbering.
    assert_eq!(phone.note("J-2", "note 6").await.unwrap().0, 6);
    phone.sync(&online).await.unwrap();
    assert_eq!(applied(&s, "p1").await.0, (1..=6).collect::<Vec<_>>());
}

async fn a_mutation_the_server_rejects_is_shown_and_does_not_block_the_queue(s: TestServer) {
    let (key, dispatcher) = world(&s).await;
    let online = Server::new(&listen(&s).await, &key).unwrap();
    let dir = TempDir::new();
    let mut phone = Phone::open(&dir.path("phone.db"), "p1").await.unwrap();
    phone.sync(&online).await.unwrap();
    phone
        .status("J-1", JobStatus::Completed, None)
        .await
        .unwrap();
    // Offline, the technician goes back on J-1 (the server will refuse it) and works
    // on J-2, which the dispatcher hands to t2 meanwhile.
    phone.status("J-1", JobStatus::EnRoute, None).await.unwrap();
    let r = s
        .post(
            "/v1/jobs/J-2/assign",
            Some(&dispatcher),
            &json!({"technician": "t2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    phone.note("J-2", "done before I heard").await.unwrap();
    phone.sync(&online).await.unwrap();
    assert_eq!(applied(&s, "p1").await, (vec![1, 3], vec![2]));
    let rejections = phone.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].0, 2);
    assert_eq!(
        rejections[0].1["rejection"]["code"], "status_out_of_order",
        "{rejections:?}"
    );
    // J-2 left this phone; its note was kept by the server (a former holder's fact).
    let jobs: Vec<Value> = phone.jobs().iter().map(|j| j["job"].clone()).collect();
    assert_eq!(jobs, [json!("J-1")]);
    assert_eq!(notes(&s, "J-2").await, ["done before I heard"]);
    assert_eq!(
        flags(&s, "J-2").await,
        ["fact_from_former_technician"],
        "the dispatcher hears of it"
    );
    assert_eq!(*phone.state().confirmed(), scope(&s, "t1").await);
}

/// The kinds of the dispatcher's flags on `job`.
async fn flags(s: &TestServer, job: &str) -> Vec<String> {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT kind FROM sync_flags WHERE job_id = $1 ORDER BY raised_at, id")
            .bind(job)
            .fetch_all(pool)
            .await
    })
    .unwrap()
}

/// Conflict table: a phone clock a day off. The device's time is kept as it was sent,
/// the server's receive time beside it; order comes from the server's sequence, so a
/// later event stamped a day earlier still moves the status forward; each such fact
/// goes to the dispatcher's queue.
async fn a_phone_clock_a_day_off_keeps_device_time_beside_server_time_and_is_flagged(
    s: TestServer,
) {
    let (key, _) = world(&s).await;
    let online = Server::new(&listen(&s).await, &key).unwrap();
    let dir = TempDir::new();
    let mut phone = Phone::open(&dir.path("phone.db"), "p1").await.unwrap();
    phone.sync(&online).await.unwrap();
    let day = 24 * 3_600_000;
    let before = chrono::Utc::now().timestamp_millis();
    phone.set_clock_offset_ms(day);
    phone.status("J-1", JobStatus::EnRoute, None).await.unwrap();
    phone.set_clock_offset_ms(-day);
    phone.status("J-1", JobStatus::Arrived, None).await.unwrap();
    phone.set_clock_offset_ms(0);
    phone.note("J-1", "clock fixed").await.unwrap();
    phone.sync(&online).await.unwrap();
    let after = chrono::Utc::now().timestamp_millis();

    assert_eq!(applied(&s, "p1").await, ((1..=3).collect(), vec![]));
    assert_eq!(
        phone.jobs()[0]["status"],
        "arrived",
        "server order, not clocks"
    );
    let record: String = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT record FROM sync_jobs WHERE job_id = 'J-1'")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    let record: Value = serde_json::from_str(&record).unwrap();
    let facts = record["facts"].as_array().unwrap();
    assert_eq!(facts.len(), 3);
    for (f, offset) in facts.iter().zip([day, -day, 0]) {
        let at = f["fact"]["at"].as_i64().unwrap();
        let received = f["received_at"].as_i64().unwrap();
        assert!((before..=after).contains(&received), "{f}");
        assert!(
            (before + offset..=after + offset).contains(&at),
            "the device's time is kept as sent: {f}"
        );
    }
    assert_eq!(
        flags(&s, "J-1").await,
        ["device_clock_off", "device_clock_off"],
        "one flag per fact a day off, none for the right clock"
    );
}

both_backends!(
    mutations_queued_offline_survive_a_killed_phone_and_apply_once,
    a_phone_killed_before_it_stored_the_ack_resends_and_nothing_is_applied_twice,
    a_mutation_the_server_rejects_is_shown_and_does_not_block_the_queue,
    a_phone_clock_a_day_off_keeps_device_time_beside_server_time_and_is_flagged,
);

// ---------------------------------------------------------------------------------------
// Bad input: a clear error naming the field, before anything is queued.

fn field_of(e: &PhoneError) -> &'static str {
    match e {
        PhoneError::InvalidInput { field, .. } => field,
        other => panic!("not an input error: {other}"),
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_queued() {
    let dir = TempDir::new();
    let file = dir.path("phone.db");
    assert_eq!(
        field_of(&Phone::open(&file, " ").await.unwrap_err()),
        "device"
    );
    assert_eq!(
        field_of(&Phone::open(&file, &"x".repeat(101)).await.unwrap_err()),
        "device"
    );
    assert_eq!(
        field_of(&Server::new("ftp://x", "k").unwrap_err()),
        "server"
    );
    assert_eq!(
        field_of(&Server::new("http://127.0.0.1:1", " ").unwrap_err()),
        "key"
    );

    let mut phone = Phone::open(&file, "p1").await.unwrap();
    // No pull yet: no job is on the phone.
    let e = phone.note("J-1", "hello").await.unwrap_err();
    assert_eq!(field_of(&e), "job");
    assert!(e.to_string().contains("J-1"), "{e}");
    let e = phone
        .status("J-1", JobStatus::Failed, None)
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "mutation");
    assert!(e.to_string().contains("reason"), "{e}");
    let e = phone
        .record("teleport", json!({"fact_id": "f", "job": "J-1", "at": 0}))
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "mutation");
    assert_eq!(phone.pending(), 0);
    phone.close().await;

    // A store belongs to one device.
    let e = Phone::open(&file, "p2").await.unwrap_err();
    assert!(matches!(e, PhoneError::DeviceMismatch { .. }), "{e}");
    assert!(e.to_string().contains("p1"), "{e}");
}

#[tokio::test]
async fn a_damaged_store_is_refused_with_a_clear_message() {
    let dir = TempDir::new();
    let file = dir.path("phone.db");
    Phone::open(&file, "p1").await.unwrap().close().await;
    // A queue with a hole: mutation 2 without mutation 1.
    let url = format!("sqlite://{}", file.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("INSERT INTO mutations (id, name, args) VALUES (2, 'note', '{}')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE device SET last_issued = 2")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    let e = Phone::open(&file, "p1").await.unwrap_err();
    assert!(matches!(e, PhoneError::CorruptStore { .. }), "{e}");
    assert!(e.to_string().contains("pending mutation ids"), "{e}");
}
