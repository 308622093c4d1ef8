//! `despacho phone …` end to end, on SQLite and PostgreSQL: a spawned `despacho serve`,
//! the technician's work recorded by separate `despacho phone` processes (online and
//! offline) in one store file, and what the server ends up holding read back by a
//! second phone of the same technician.

use crate::common::process;

use crate::common::*;
use process::{despacho, post, ServeProcess};
use serde_json::{json, Value};

/// `despacho phone --store STORE --device DEVICE [--server URL] ARGS…` with the key in
/// the environment: (exit code, stdout as JSON, stderr).
fn phone(
    store: &str,
    device: &str,
    server: Option<&str>,
    key: &str,
    args: &[&str],
) -> (i32, Value, String) {
    let mut all = vec!["phone", "--store", store, "--device", device];
    if let Some(url) = server {
        all.extend(["--server", url]);
    }
    all.extend(args);
    let out = despacho(&all, &[("DESPACHO_KEY", key)]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(result: (i32, Value, String)) -> Value {
    assert_eq!(result.0, 0, "stderr: {}", result.2);
    result.1
}

fn job_ids(jobs: &Value) -> Vec<&str> {
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect()
}

async fn the_phone_command_line_works_offline_and_syncs_every_step_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = std::env::temp_dir().join(format!("despacho-phone-cli-{}", std::process::id()));
    let dir = dir.join(format!("{backend:?}"));
    std::fs::create_dir_all(&dir).unwrap();
    let server = ServeProcess::start(&db.url, &dir.join("serve.log"));
    let base = server.base.as_str();

    // The dispatcher's side, over HTTP.
    for t in ["t1", "t2"] {
        assert_eq!(
            post(base, ADMIN_KEY, "/v1/technicians", &technician(t)).0,
            201
        );
    }
    let (_, dispatcher) = post(
        base,
        ADMIN_KEY,
        "/v1/api-keys",
        &json!({"name": "d", "role": "dispatcher"}),
    );
    let dispatcher = dispatcher["secret"].as_str().unwrap().to_owned();
    for (j, t) in [("J-1", "t1"), ("J-2", "t1"), ("J-3", "t2")] {
        assert_eq!(
            post(base, ADMIN_KEY, "/v1/jobs", &json!({"job": job(j, None)})).0,
            201
        );
        let r = post(
            base,
            &dispatcher,
            &format!("/v1/jobs/{j}/assign"),
            &json!({"technician": t}),
        );
        assert_eq!(r.0, 200, "{}", r.1);
    }
    let (_, key) = post(
        base,
        ADMIN_KEY,
        "/v1/api-keys",
        &json!({"name": "t1 phone", "role": "technician", "technician_id": "t1"}),
    );
    let key = key["secret"].as_str().unwrap().to_owned();
    let store = dir.join("ana.db");
    let store = store.to_str().unwrap();

    // First sync: t1's jobs only.
    let synced = ok(phone(store, "ana-1", Some(base), &key, &["sync"]));
    assert_eq!(synced["pull"], "full");
    assert_eq!(synced["jobs"], 2);
    let jobs = ok(phone(store, "ana-1", None, &key, &["jobs"]));
    assert_eq!(job_ids(&jobs), ["J-1", "J-2"]);
    assert_eq!(jobs[0]["status"], "assigned");

    // Work recorded without a server, one process per step.
    let r = ok(phone(
        store,
        "ana-1",
        None,
        &key,
        &["status", "J-1", "en_route"],
    ));
    assert_eq!(r, json!({"mutation_id": 1, "pending": 1}));
    ok(phone(
        store,
        "ana-1",
        None,
        &key,
        &["note", "J-1", "gate code 1234"],
    ));
    ok(phone(
        store,
        "ana-1",
        None,
        &key,
        &["status", "J-2", "failed", "--reason", "no_access"],
    ));
    // Offline: the sync fails and says the work is kept.
    let (code, _, stderr) = phone(store, "ana-1", Some("http://127.0.0.1:9"), &key, &["sync"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("3 mutations kept on the phone"), "{stderr}");
    let jobs = ok(phone(store, "ana-1", None, &key, &["jobs"]));
    assert_eq!(
        jobs[0]["status"], "en_route",
        "the technician sees their work"
    );
    assert_eq!(jobs[0]["pending_facts"].as_array().unwrap().len(), 2);

    // Bad input: a clear error naming the field, nothing queued.
    let (code, _, stderr) = phone(store, "ana-1", None, &key, &["status", "J-1", "failed"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("mutation") && stderr.contains("reason"),
        "{stderr}"
    );
    let (code, _, stderr) = phone(store, "ana-1", None, &key, &["status", "J-1", "teleported"]);
    assert_eq!(code, 2, "clap refuses the value");
    assert!(
        stderr.contains("teleported") && stderr.contains("en_route"),
        "{stderr}"
    );
    let (code, _, stderr) = phone(store, "ana-1", None, &key, &["note", "J-3", "not mine"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("job J-3 is not on this phone"), "{stderr}");
    let (code, _, stderr) = phone(store, "other-device", None, &key, &["jobs"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("belongs to device \"ana-1\""), "{stderr}");
    let (code, _, stderr) = phone(store, "ana-1", None, &key, &["pull"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("server: needed for pull and sync"),
        "{stderr}"
    );
    let queue = ok(phone(store, "ana-1", None, &key, &["queue"]));
    assert_eq!(queue["pending"].as_array().unwrap().len(), 3);

    // Back online: everything applied once, the view is the server's.
    let synced = ok(phone(store, "ana-1", Some(base), &key, &["sync"]));
    assert_eq!(synced["acknowledged"], 3);
    assert_eq!(
        (synced["pending"].clone(), synced["rejected"].clone()),
        (json!(0), json!(0))
    );
    let again = ok(phone(store, "ana-1", Some(base), &key, &["sync"]));
    assert_eq!(again["acknowledged"], 0);
    let mine = ok(phone(store, "ana-1", None, &key, &["jobs"]));
    assert_eq!(mine[0]["status"], "en_route");
    assert_eq!(mine[0]["facts"].as_array().unwrap().len(), 2);
    assert_eq!(mine[0]["facts"][1]["text"], "gate code 1234");
    assert_eq!(mine[1]["status"], "failed");
    assert_eq!(mine[1]["failure_reason"], "no_access");
    assert!(mine[0].get("pending_facts").is_none());

    // A second phone of the same technician sees exactly that.
    let other = dir.join("ana-tablet.db");
    let other = other.to_str().unwrap();
    ok(phone(other, "ana-2", Some(base), &key, &["sync"]));
    assert_eq!(ok(phone(other, "ana-2", None, &key, &["jobs"])), mine);

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_command_line_works_offline_and_syncs_every_step_once_on_sqlite() {
    the_phone_command_line_works_offline_and_syncs_every_step_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_command_line_works_offline_and_syncs_every_step_once_on_postgres() {
    the_phone_command_line_works_offline_and_syncs_every_step_once(Backend::Postgres).await;
}
