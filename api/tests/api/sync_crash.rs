//! Kill -9 of the real server during pushes (RELIABILITY.md, "Tests that back the
//! claims" 9, mobile sync), on a SQLite file and on PostgreSQL: phones push from their
//! own threads while `despacho serve` is SIGKILLed twice and restarted on the same
//! database. A push whose answer was cut by the kill may or may not have committed;
//! the phone resends the same ids until acknowledged. Afterwards every mutation was
//! applied exactly once (one `sync_facts` row per mutation id, one fact per id in the
//! job records, `last_mutation_id` at the last id) and each phone's view equals the
//! server's scope.

use crate::common::process;

use crate::common::*;
use despacho_api::server::Db;
use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState, PatchOp,
    PullResponse, ServerMessage,
};
use process::{post, ServeProcess};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

const PHONES: usize = 4;
/// Mutations each phone makes.
const MUTATIONS: usize = 150;
/// Mutations per push.
const BATCH: usize = 5;
/// Kill-and-restart rounds, each after this share of all mutations was acknowledged.
const KILL_AT: [f64; 2] = [0.25, 0.6];

/// One raw POST; `None` when no complete answer came back (refused, reset, cut short).
fn send(
    agent: &ureq::Agent,
    base: &str,
    key: &str,
    path: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut r = agent
        .post(&format!("{base}{path}"))
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(body)
        .ok()?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().ok()?;
    Some((status, text))
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build();
    ureq::Agent::new_with_config(config)
}

/// A phone: records notes and pushes until all are acknowledged, resending on any
/// failure. Returns (the phone, requests that got no answer or a 503).
fn run_phone(
    n: usize,
    key: String,
    base: Arc<RwLock<String>>,
    acked: Arc<AtomicUsize>,
) -> (ClientState, usize) {
    let agent = agent();
    let mut phone = ClientState::new(ClientId(format!("phone-{n}"))).with_max_batch(BATCH);
    let (mut made, mut failed) = (0, 0);
    while phone.last_acknowledged().0 < MUTATIONS as u64 {
        if made < MUTATIONS && phone.pending().len() < 2 * BATCH {
            made += 1;
            phone.record(
                "note",
                json!({"fact_id": format!("phone-{n}-{made}"), "job": format!("J-{n}"),
                       "at": chrono::Utc::now().timestamp_millis(), "text": format!("note {made}")}),
            );
        }
        let message = generate_message(&mut phone).expect("pending mutations");
        let base_now = base.read().unwrap().clone();
        match send(&agent, &base_now, &key, "/v1/sync/push", &message.encode()) {
            Some((200, text)) => {
                let ack = ServerMessage::decode(&text).expect("an ack");
                let newly = receive_message(&mut phone, ack).expect("a valid ack");
                acked.fetch_add(newly, Ordering::SeqCst);
            }
            Some((503, _)) | None => {
                failed += 1;
                // The server is down or restarting: wait a little and resend.
                std::thread::sleep(Duration::from_millis(20));
            }
            Some((status, text)) => panic!("phone-{n}: push answered {status}: {text}"),
        }
    }
    (phone, failed)
}

async fn pushes_cut_by_a_kill_are_applied_exactly_once_after_the_resend(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = std::env::temp_dir().join(format!(
        "despacho-sync-crash-{}-{backend:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("serve.log");
    let mut server = ServeProcess::start(&db.url, &log);
    let (_, dispatcher) = post(
        &server.base,
        ADMIN_KEY,
        "/v1/api-keys",
        &json!({"name": "d", "role": "dispatcher"}),
    );
    let dispatcher = dispatcher["secret"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for n in 0..PHONES {
        let t = format!("t{n}");
        assert_eq!(
            post(&server.base, ADMIN_KEY, "/v1/technicians", &technician(&t)).0,
            201
        );
        let j = format!("J-{n}");
        assert_eq!(
            post(
                &server.base,
                ADMIN_KEY,
                "/v1/jobs",
                &json!({"job": job(&j, None)})
            )
            .0,
            201
        );
        let r = post(
            &server.base,
            &dispatcher,
            &format!("/v1/jobs/{j}/assign"),
            &json!({"technician": t}),
        );
        assert_eq!(r.0, 200, "{}", r.1);
        let (_, key) = post(
            &server.base,
            ADMIN_KEY,
            "/v1/api-keys",
            &json!({"name": t, "role": "technician", "technician_id": t}),
        );
        keys.push(key["secret"].as_str().unwrap().to_owned());
    }

    let base = Arc::new(RwLock::new(server.base.clone()));
    let acked = Arc::new(AtomicUsize::new(0));
    let phones: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| {
            let (key, base, acked) = (key.clone(), base.clone(), acked.clone());
            std::thread::spawn(move || run_phone(n, key, base, acked))
        })
        .collect();
    let total = PHONES * MUTATIONS;
    for share in KILL_AT {
        while acked.load(Ordering::SeqCst) < (total as f64 * share) as usize {
            std::thread::sleep(Duration::from_millis(2));
        }
        server.kill();
        server = ServeProcess::start(&db.url, &log);
        *base.write().unwrap() = server.base.clone();
    }
    let mut states = Vec::new();
    let mut failed = 0;
    for p in phones {
        let (state, f) = p.join().expect("a phone thread");
        failed += f;
        states.push(state);
    }
    assert!(failed > 0, "no push was cut or refused by the kills");

    // Exactly once, from the rows.
    let rows = Db::connect(&db.url, 2).await.unwrap();
    for n in 0..PHONES {
        let client = format!("phone-{n}");
        let ids: Vec<(i64, String)> = despacho_api::on_pool!(&rows, |pool| {
            sqlx::query_as(
                "SELECT mutation_id, fact_id FROM sync_facts WHERE client_id = $1 ORDER BY mutation_id",
            )
            .bind(&client)
            .fetch_all(pool)
            .await
        })
        .unwrap();
        let expected: Vec<(i64, String)> = (1..=MUTATIONS as i64)
            .map(|m| (m, format!("phone-{n}-{m}")))
            .collect();
        assert_eq!(
            ids, expected,
            "{client}: each mutation applied exactly once"
        );
        let last: i64 = despacho_api::on_pool!(&rows, |pool| {
            sqlx::query_scalar("SELECT last_mutation_id FROM sync_devices WHERE client_id = $1")
                .bind(&client)
                .fetch_one(pool)
                .await
        })
        .unwrap();
        assert_eq!(last, MUTATIONS as i64);
        let record: String = despacho_api::on_pool!(&rows, |pool| {
            sqlx::query_scalar("SELECT record FROM sync_jobs WHERE job_id = $1")
                .bind(format!("J-{n}"))
                .fetch_one(pool)
                .await
        })
        .unwrap();
        let record: Value = serde_json::from_str(&record).unwrap();
        let texts: Vec<&str> = record["facts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["fact"]["text"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (1..=MUTATIONS).map(|m| format!("note {m}")).collect();
        assert_eq!(
            texts, expected,
            "{client}: the job's record holds each note once, in order"
        );
    }
    let rejected: i64 = despacho_api::on_pool!(&rows, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM sync_rejections")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(rejected, 0);
    rows.close().await;

    // Each phone's view after a pull is the server's whole scope.
    let agent = agent();
    for (n, state) in states.iter_mut().enumerate() {
        let (status, text) = send(
            &agent,
            &server.base,
            &keys[n],
            "/v1/sync/pull",
            &generate_pull(state).encode(),
        )
        .unwrap();
        assert_eq!(status, 200, "{text}");
        receive_pull(state, PullResponse::decode(&text).unwrap()).unwrap();
        let fresh = json!({"schema_version": 1, "message": {"client_id": format!("phone-{n}")}})
            .to_string();
        let (_, text) = send(&agent, &server.base, &keys[n], "/v1/sync/pull", &fresh).unwrap();
        let full = PullResponse::decode(&text).unwrap();
        let scope: BTreeMap<String, Value> = full
            .patch
            .into_iter()
            .filter_map(|op| match op {
                PatchOp::Put { key, value } => Some((key, value)),
                _ => None,
            })
            .collect();
        assert_eq!(*state.confirmed(), scope, "phone-{n}");
        assert_eq!(state.view(), scope, "phone-{n}: nothing left unconfirmed");
        assert_eq!(full.last_mutation_id.0, MUTATIONS as u64);
    }
    eprintln!("{backend:?}: {failed} pushes got no answer or a 503 across 2 kills");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_cut_by_a_kill_are_applied_exactly_once_after_the_resend_on_sqlite() {
    pushes_cut_by_a_kill_are_applied_exactly_once_after_the_resend(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_cut_by_a_kill_are_applied_exactly_once_after_the_resend_on_postgres() {
    pushes_cut_by_a_kill_are_applied_exactly_once_after_the_resend(Backend::Postgres).await;
}
