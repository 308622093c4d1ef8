//! Kill -9 of a standalone `despacho worker` in the middle of a delivery (issue 6), on
//! SQLite and PostgreSQL: the service (in-process) books a visit, so the outbox holds
//! its confirmation; the worker binary POSTs it to a real local receiver that holds the
//! request open; the worker is killed with SIGKILL while the receiver holds it, then
//! started again → the message is delivered, sent at most once more, under the same
//! event id, and the row ends `delivered`.

use crate::common::receiver;
use crate::common::world;

use crate::common::*;
use axum::http::StatusCode;
use receiver::Receiver;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use world::*;

/// Seconds a claim is the worker's: the restarted worker claims again after it.
const LEASE_SECONDS: &str = "2";

struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    fn start(database_url: &str) -> WorkerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_despacho"))
            .args([
                "worker",
                "--database-url",
                database_url,
                "--lease-seconds",
                LEASE_SECONDS,
                "--webhook-allow-network",
                "127.0.0.0/8",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("despacho worker starts");
        WorkerProcess { child }
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed worker is reaped");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_worker_killed_mid_delivery_delivers_after_restart_under_the_same_event_id(
    s: TestServer,
) {
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
    w.customer("c1", json!({})).await;
    let slot = w.slot_at(8).await;
    let booking = w.book(&slot, Some("c1")).await;
    let confirmed: Vec<_> = outbox_rows(&w.s.state.db)
        .await
        .into_iter()
        .filter(|r| r.kind == "booking_confirmed")
        .collect();
    assert_eq!(confirmed.len(), 1);
    let event_id = confirmed[0].id.clone();

    // The receiver holds the request far longer than the kill takes.
    rx.set_delay(Duration::from_secs(30));
    let url = w.s.db.url.clone();
    let mut first = WorkerProcess::start(&url);
    wait_for("the first delivery", Duration::from_secs(30), || {
        !rx.started().is_empty()
    })
    .await;
    first.kill();
    assert!(
        rx.answered().is_empty(),
        "nothing was answered before the kill"
    );
    let row = outbox_rows(&w.s.state.db)
        .await
        .into_iter()
        .find(|r| r.id == event_id)
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("pending", 1),
        "{row:?}"
    );

    // Restarted: after the dead worker's lease, the same message again, answered at once.
    rx.set_delay(Duration::ZERO);
    let _second = WorkerProcess::start(&url);
    let db = w.s.state.db.clone();
    let start = Instant::now();
    loop {
        let row = outbox_rows(&db)
            .await
            .into_iter()
            .find(|r| r.id == event_id)
            .unwrap();
        if row.status == "delivered" {
            assert_eq!(row.attempts, 2, "{row:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not delivered after the restart: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A moment more: no third send.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sends = rx.started();
    assert_eq!(sends.len(), 2, "{sends:?}");
    for hit in &sends {
        assert_eq!(hit.event_id, event_id);
        assert_eq!(hit.body["event_id"], event_id.as_str());
        assert_eq!(hit.body["booking"]["id"], booking["id"]);
        assert!(hit.signature_ok);
    }
    assert_eq!(sends[0].body["attempt"], 1);
    assert_eq!(sends[1].body["attempt"], 2);
    assert_eq!(rx.answered().len(), 1, "only the second send was answered");
}

both_backends!(a_worker_killed_mid_delivery_delivers_after_restart_under_the_same_event_id);
