//! Mobile sync over HTTP (issue 8, RELIABILITY.md tests 6–8), each on SQLite and
//! PostgreSQL: `despacho_mobile_sync`'s client state machine plays the phone against
//! `POST /v1/sync/push` and `/v1/sync/pull`; the dispatcher moves jobs with
//! `POST /v1/jobs/{id}/assign`. Outcomes are checked from the database's rows.

use crate::common::*;
use axum::http::StatusCode;
use despacho_api::server::sync::push_pull::{commit_writes, Writes};
use despacho_api::server::Role;
use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState, Cookie,
    Epoch, PullOutcome, PullResponse, ScopeVersion, ServerMessage, TechnicianId,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// The world: technicians, jobs, keys

struct World {
    dispatcher: String,
    keys: BTreeMap<String, String>,
}

impl World {
    fn key(&self, technician: &str) -> String {
        self.keys[technician].clone()
    }
}

/// Stores `technicians` and `jobs` (job id, holder) and makes one key per technician
/// and a dispatcher key; assigns each job that has a holder.
async fn setup(s: &TestServer, technicians: &[&str], jobs: &[(&str, Option<&str>)]) -> World {
    for t in technicians {
        let r = s
            .post("/v1/technicians", Some(&s.admin_key), &technician(t))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    for (j, _) in jobs {
        let r = s
            .post(
                "/v1/jobs",
                Some(&s.admin_key),
                &json!({"job": job(j, None)}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let mut keys = BTreeMap::new();
    for t in technicians {
        keys.insert(t.to_string(), s.key(Role::Technician, Some(t)).await.1);
    }
    let world = World {
        dispatcher: s.key(Role::Dispatcher, None).await.1,
        keys,
    };
    for (j, holder) in jobs {
        if let Some(t) = holder {
            let r = assign(s, &world, j, Some(t)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
    }
    world
}

async fn assign(s: &TestServer, w: &World, job: &str, technician: Option<&str>) -> Reply {
    s.post(
        &format!("/v1/jobs/{job}/assign"),
        Some(&w.dispatcher),
        &json!({ "technician": technician }),
    )
    .await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A phone: the protocol's client state, and its technician's key.
struct Phone {
    state: ClientState,
    key: String,
}

impl Phone {
    fn new(id: &str, key: &str) -> Phone {
        Phone {
            state: ClientState::new(ClientId(id.into())),
            key: key.to_owned(),
        }
    }

    fn note(&mut self, fact: &str, job: &str, text: &str) {
        self.state.record(
            "note",
            json!({"fact_id": fact, "job": job, "at": now_ms(), "text": text}),
        );
    }

    fn status(&mut self, fact: &str, job: &str, status: &str) {
        self.state.record(
            "job_status",
            json!({"fact_id": fact, "job": job, "at": now_ms(), "status": status}),
        );
    }

    /// Sends the pending mutations once; takes in the answer when it is a 200.
    async fn push(&mut self, s: &TestServer) -> Reply {
        let message = generate_message(&mut self.state).expect("something to push");
        let r = s
            .post_raw(
                "/v1/sync/push",
                Some(&self.key),
                "application/json",
                &message.encode(),
            )
            .await;
        if r.status == StatusCode::OK {
            let ack = ServerMessage::decode(&r.text).expect("an ack");
            receive_message(&mut self.state, ack).expect("a valid ack");
        }
        r
    }

    /// Pulls once; takes in the answer when it is a 200.
    async fn pull(&mut self, s: &TestServer) -> (Reply, Option<PullResponse>) {
        let r = s
            .post_raw(
                "/v1/sync/pull",
                Some(&self.key),
                "application/json",
                &generate_pull(&self.state).encode(),
            )
            .await;
        if r.status != StatusCode::OK {
            return (r, None);
        }
        let answer = PullResponse::decode(&r.text).expect("a pull answer");
        let outcome = receive_pull(&mut self.state, answer.clone()).expect("a valid answer");
        assert!(
            matches!(outcome, PullOutcome::Applied { .. }),
            "{outcome:?}"
        );
        (r, Some(answer))
    }

    /// Pushes everything, then pulls.
    async fn sync(&mut self, s: &TestServer) -> PullResponse {
        while self.state.pending().len() > 0 {
            let r = self.push(s).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let (r, answer) = self.pull(s).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        answer.unwrap()
    }

    fn version(&self) -> u64 {
        self.state.cookie().and_then(Cookie::order).unwrap().1 .0
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

async fn count(s: &TestServer, sql: &str) -> i64 {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await
    })
    .unwrap()
}

async fn last_mutation_id(s: &TestServer, client: &str) -> Option<i64> {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar::<_, i64>(
            "SELECT last_mutation_id FROM sync_devices WHERE client_id = $1",
        )
        .bind(client)
        .fetch_optional(pool)
        .await
    })
    .unwrap()
}

fn keys(answer: &PullResponse) -> Vec<String> {
    answer
        .patch
        .iter()
        .map(|op| serde_json::to_value(op).unwrap())
        .map(|v| {
            format!(
                "{} {}",
                v["op"].as_str().unwrap(),
                v["key"].as_str().unwrap_or("")
            )
        })
        .map(|s| s.trim().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Round trip

async fn a_phone_pushes_facts_and_pulls_its_jobs(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &[
            ("J-1", Some("t1")),
            ("J-2", Some("t1")),
            ("J-3", Some("t2")),
            ("J-4", None),
        ],
    )
    .await;
    let mut phone = Phone::new("p1", &w.key("t1"));

    // The first pull: clear + the technician's jobs only.
    let (_, first) = phone.pull(&s).await;
    let first = first.unwrap();
    assert!(first.base_cookie.is_none());
    assert_eq!(keys(&first), ["clear", "put job/J-1", "put job/J-2"]);
    let j1 = &phone.state.confirmed()["job/J-1"];
    assert_eq!(j1["technician"], "t1");
    assert_eq!(j1["status"], "assigned");
    assert_eq!(j1["address"], "-23.56000, -46.65000");

    phone.status("f-1", "J-1", "en_route");
    phone.note("f-2", "J-1", "gate code 1234");
    phone.state.record(
        "equipment",
        json!({"fact_id": "f-3", "job": "J-2", "at": now_ms(), "serial": " zte-0042 ", "action": "installed"}),
    );
    // The technician sees their work at once (optimistic view).
    assert_eq!(phone.state.view()["job/J-1"]["status"], "en_route");
    let r = phone.push(&s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["schema_version"], 1);
    assert_eq!(r.json["message"]["type"], "ack");
    assert_eq!(r.json["message"]["last_mutation_id"], 3);
    assert_eq!(phone.state.pending().len(), 0);

    let answer = phone.sync(&s).await;
    assert_eq!(keys(&answer), ["put job/J-1", "put job/J-2"]);
    assert_eq!(answer.last_mutation_id.0, 3);
    let j1 = &phone.state.confirmed()["job/J-1"];
    assert_eq!(j1["status"], "en_route");
    assert_eq!(j1["facts"].as_array().unwrap().len(), 2);
    assert_eq!(j1["facts"][1]["text"], "gate code 1234");
    assert_eq!(
        phone.state.confirmed()["job/J-2"]["facts"][0]["serial"],
        "ZTE-0042"
    );
    assert_eq!(phone.state.view(), *phone.state.confirmed());
    assert_eq!(*phone.state.confirmed(), scope(&s, "t1").await);

    // Nothing changed: an empty diff, same version.
    let version = phone.version();
    let (_, again) = phone.pull(&s).await;
    assert!(again.unwrap().patch.is_empty());
    assert_eq!(phone.version(), version);

    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 3);
    assert_eq!(last_mutation_id(&s, "p1").await, Some(3));
    // The other technician's scope is untouched by t1's work.
    assert_eq!(
        scope(&s, "t2").await.keys().collect::<Vec<_>>(),
        ["job/J-3"]
    );
}

// ---------------------------------------------------------------------------------------
// Reassignment

async fn a_reassigned_job_leaves_one_phone_and_reaches_the_other(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &[
            ("J-1", Some("t1")),
            ("J-2", Some("t1")),
            ("J-3", Some("t2")),
        ],
    )
    .await;
    let mut ana = Phone::new("ana-phone", &w.key("t1"));
    let mut bo = Phone::new("bo-phone", &w.key("t2"));
    ana.sync(&s).await;
    bo.sync(&s).await;
    assert!(ana.state.confirmed().contains_key("job/J-1"));
    assert!(!bo.state.confirmed().contains_key("job/J-1"));

    // Ana, offline, notes something on J-1 while the dispatcher gives it to Bo.
    ana.note("ana-1", "J-1", "customer asked for the afternoon");
    let r = assign(&s, &w, "J-1", Some("t2")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"job_id": "J-1", "technician": "t2", "previous_technician": "t1", "changed": true})
    );
    let answer = ana.sync(&s).await;
    assert_eq!(keys(&answer), ["del job/J-1"]);
    assert!(!ana.state.confirmed().contains_key("job/J-1"));
    let answer = bo.sync(&s).await;
    assert_eq!(keys(&answer), ["put job/J-1"]);
    let j1 = &bo.state.confirmed()["job/J-1"];
    assert_eq!(j1["technician"], "t2");
    assert_eq!(j1["assignment"], 2);
    // Ana's offline note was kept (she held the job) and flagged for the dispatcher.
    assert_eq!(j1["facts"][0]["text"], "customer asked for the afternoon");
    let flags: Vec<String> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT kind FROM sync_flags WHERE job_id = 'J-1'")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert_eq!(flags, ["fact_from_former_technician"]);
    let stored: Option<String> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT assigned_technician FROM jobs WHERE id = 'J-1'")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(stored.as_deref(), Some("t2"));
    assert_eq!(*ana.state.confirmed(), scope(&s, "t1").await);
    assert_eq!(*bo.state.confirmed(), scope(&s, "t2").await);

    // The same assignment again changes nothing; a job taken from everyone leaves Bo.
    let r = assign(&s, &w, "J-1", Some("t2")).await;
    assert_eq!(r.json["changed"], false, "{}", r.text);
    let r = assign(&s, &w, "J-1", None).await;
    assert_eq!(r.json["changed"], true, "{}", r.text);
    assert_eq!(keys(&bo.sync(&s).await), ["del job/J-1"]);

    // Bad assignments are clear 4xx naming the field.
    let r = assign(&s, &w, "J-1", Some("nobody")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.technician"]);
    let r = assign(&s, &w, "J-404", Some("t1")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = s
        .post("/v1/jobs/J-1/assign", Some(&w.dispatcher), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.technician"]);
    let r = s
        .post(
            "/v1/jobs/J-1/assign",
            Some(&w.dispatcher),
            &json!({"technician": 7}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = s
        .post(
            "/v1/jobs/J-1/assign",
            Some(&w.key("t1")),
            &json!({"technician": "t1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

// ---------------------------------------------------------------------------------------
// Refusals and recovery

async fn another_technicians_device_is_refused(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &[("J-1", Some("t1")), ("J-2", Some("t2"))],
    )
    .await;
    let mut ana = Phone::new("shared-phone", &w.key("t1"));
    ana.note("a-1", "J-1", "first");
    ana.sync(&s).await;

    // Bo logs in on Ana's device id: push and pull are refused, nothing is applied.
    let mut bo = Phone::new("shared-phone", &w.key("t2"));
    bo.note("b-1", "J-2", "mine");
    let r = bo.push(&s).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.code(), "device_of_another_technician");
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("belongs to technician t1"));
    let (r, _) = bo.pull(&s).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.code(), "device_of_another_technician");
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 1);
    assert_eq!(last_mutation_id(&s, "shared-phone").await, Some(1));
    assert!(scope(&s, "t2").await.keys().all(|k| k.starts_with("job/")));

    // Bo's own device works.
    let mut bo = Phone::new("bo-phone", &w.key("t2"));
    bo.note("b-1", "J-2", "mine");
    bo.sync(&s).await;
    assert_eq!(bo.state.confirmed()["job/J-2"]["facts"][0]["text"], "mine");
}

async fn a_bad_or_forged_cookie_gets_a_full_snapshot_and_the_phone_recovers(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &[("J-1", Some("t1")), ("J-2", Some("t2"))],
    )
    .await;
    let mut ana = Phone::new("ana-phone", &w.key("t1"));
    ana.note("a-1", "J-1", "hello");
    ana.sync(&s).await;
    let good = ana.state.cookie().unwrap().clone();
    let mut bo = Phone::new("bo-phone", &w.key("t2"));
    bo.sync(&s).await;
    let bos = bo.state.cookie().unwrap().clone();

    let forged = Cookie::from_text(good.as_str().replacen(".2.", ".1.", 1));
    assert_ne!(forged, good);
    let cases = [
        Cookie::from_text("garbage"),
        Cookie::from_text(""),
        forged,
        // A valid cookie of another technician's scope.
        bos,
        // A version the scope has not reached, signed by someone else.
        Cookie::from_text(format!("c1.1.999.{}.00", hex("t1"))),
    ];
    for cookie in cases {
        // The phone's stored state holds the bad cookie (edited storage, old install…).
        let mut stored = serde_json::to_value(&ana.state).unwrap();
        stored["cookie"] = json!(cookie);
        ana.state = serde_json::from_value(stored).unwrap();
        let (r, answer) = ana.pull(&s).await;
        assert_eq!(r.status, StatusCode::OK, "{cookie:?}: {}", r.text);
        let answer = answer.unwrap();
        assert!(answer.is_reset(), "{cookie:?}: {:?}", keys(&answer));
        assert_eq!(keys(&answer), ["clear", "put job/J-1"]);
        assert_eq!(*ana.state.confirmed(), scope(&s, "t1").await);
        assert_eq!(
            ana.state.cookie(),
            Some(&good),
            "recovered to the real cursor"
        );
        // And diffs work again from there.
        let (_, next) = ana.pull(&s).await;
        assert!(next.unwrap().patch.is_empty());
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn bad_messages_get_clear_refusals(s: TestServer) {
    let w = setup(&s, &["t1"], &[("J-1", Some("t1"))]).await;
    let key = w.key("t1");
    let post = |path: &'static str, body: String| {
        let key = key.clone();
        let s = &s;
        async move {
            s.post_raw(path, Some(&key), "application/json", &body)
                .await
        }
    };
    for path in ["/v1/sync/push", "/v1/sync/pull"] {
        // A newer app: a clear refusal, not a field error.
        let r = post(
            path,
            r#"{"schema_version":2,"message":{"client_id":"p","whatever":[1]}}"#.into(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UPGRADE_REQUIRED, "{}", r.text);
        assert_eq!(r.code(), "unsupported_schema_version");
        assert_eq!(r.paths(), ["$.schema_version"]);
        assert!(r.text.contains("version 1"), "{}", r.text);

        let r = post(path, r#"{"message":{"client_id":"p"}}"#.into()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.code(), "missing_schema_version");
        assert_eq!(r.paths(), ["$.schema_version"]);

        for body in [
            "",
            "{",
            "[]",
            "null",
            r#"{"schema_version":1,"message":{}}"#,
        ] {
            let r = post(path, body.into()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
            assert_eq!(r.code(), "malformed_sync_message", "{body}");
        }
        let r = post(
            path,
            r#"{"schema_version":1,"message":{"client_id":""}}"#.into(),
        )
        .await;
        let r = if r.status == StatusCode::BAD_REQUEST {
            // Push also lacks `mutations`: the message names it.
            assert!(r.text.contains("mutations"), "{}", r.text);
            post(
                path,
                r#"{"schema_version":1,"message":{"client_id":"","mutations":[]}}"#.into(),
            )
            .await
        } else {
            r
        };
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.paths(), ["$.message.client_id"]);

        // Only a technician key syncs.
        let r = s
            .post_raw(
                path,
                Some(&w.dispatcher),
                "application/json",
                r#"{"schema_version":1,"message":{"client_id":"p","mutations":[]}}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        let r = s.post_raw(path, None, "application/json", "{}").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = post_text(&s, path, &key).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    }
    // Wrong types inside a mutation name the field.
    let r = post(
        "/v1/sync/push",
        r#"{"schema_version":1,"message":{"client_id":"p","mutations":[{"id":-1,"name":"note","args":{}}]}}"#
            .into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.paths(), ["$.message.mutations[0].id"], "{}", r.text);
    // A push that skips ids is refused: in order means in order.
    let r = post(
        "/v1/sync/push",
        r#"{"schema_version":1,"message":{"client_id":"p","mutations":[{"id":2,"name":"note","args":{}}]}}"#
            .into(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "missing_mutations");
    assert_eq!(last_mutation_id(&s, "p").await, None, "nothing was kept");
}

async fn post_text(s: &TestServer, path: &str, key: &str) -> Reply {
    s.post_raw(path, Some(key), "text/plain", "hello").await
}

async fn a_mutation_that_can_never_succeed_is_rejected_and_the_queue_moves_on(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &[("J-1", Some("t1")), ("J-2", Some("t2")), ("J-3", None)],
    )
    .await;
    let mut phone = Phone::new("p1", &w.key("t1"));
    phone.note("f-1", "J-1", "   "); // empty text
    phone.state.record(
        "teleport",
        json!({"fact_id": "f-2", "job": "J-1", "at": now_ms()}),
    );
    phone.note("f-3", "J-2", "not my job");
    phone.note("f-4", "J-404", "no such job");
    phone.note("f-5", "J-3", "nobody's job");
    phone.status("f-6", "J-1", "arrived");
    phone.status("f-7", "J-1", "en_route"); // goes backwards
    phone.note(
        "f-1",
        "J-1",
        "the id f-1 was never recorded, so this is fine",
    );
    phone.note("f-6", "J-1", "f-6 is a status: a reused id");
    phone
        .state
        .record("note", json!({"job": "J-1", "text": "no fact id"}));
    phone.note("f-9", "J-1", "recorded after all the refusals");
    let answer = phone.sync(&s).await;
    assert_eq!(answer.last_mutation_id.0, 11);
    assert_eq!(last_mutation_id(&s, "p1").await, Some(11));

    let codes: BTreeMap<String, String> = phone
        .state
        .confirmed()
        .iter()
        .filter(|(k, _)| k.starts_with("rejected/"))
        .map(|(k, v)| {
            (
                k.clone(),
                v["rejection"]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        (1, "invalid_args"),
        (2, "unknown_mutation"),
        (3, "not_your_job"),
        (4, "unknown_job"),
        (5, "not_your_job"),
        (7, "status_out_of_order"),
        (9, "fact_id_reused"),
        (10, "invalid_args"),
    ]
    .into_iter()
    .map(|(id, code)| (format!("rejected/p1/{id}"), code.to_owned()))
    .collect();
    assert_eq!(codes, expected);
    let j1 = &phone.state.confirmed()["job/J-1"];
    assert_eq!(j1["status"], "arrived");
    let texts: Vec<&str> = j1["facts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "the id f-1 was never recorded, so this is fine",
            "recorded after all the refusals"
        ]
    );
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_rejections").await, 8);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 3);
    assert_eq!(*phone.state.confirmed(), scope(&s, "t1").await);
    // J-2's holder sees nothing of it.
    assert_eq!(scope(&s, "t2").await["job/J-2"]["facts"], json!([]));
}

async fn a_duplicated_push_is_applied_once(s: TestServer) {
    let w = setup(&s, &["t1"], &[("J-1", Some("t1"))]).await;
    let mut phone = Phone::new("p1", &w.key("t1"));
    let at = now_ms();
    let note = |i: i32| json!({"fact_id": format!("f-{i}"), "job": "J-1", "at": at, "text": format!("note {i}")});
    for i in 1..=5 {
        phone.state.record("note", note(i));
    }
    let body = generate_message(&mut phone.state).unwrap().encode();
    let s = Arc::new(s);
    let key = w.key("t1");
    // Sent again and again, some at the same time (a flaky network's retries).
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (s, key, body) = (s.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            s.post_raw("/v1/sync/push", Some(&key), "application/json", &body)
                .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["message"]["last_mutation_id"], 5);
    }
    for _ in 0..3 {
        let r = s
            .post_raw("/v1/sync/push", Some(&key), "application/json", &body)
            .await;
        assert_eq!(r.json["message"]["last_mutation_id"], 5, "{}", r.text);
    }
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 5);
    let answer = phone.sync(&s).await;
    assert_eq!(answer.last_mutation_id.0, 5);
    assert_eq!(
        phone.state.confirmed()["job/J-1"]["facts"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // The same facts resent under new mutation ids (a reinstalled app): recorded once.
    let mut again = Phone::new("p1-reinstalled", &key);
    for i in 1..=5 {
        again.state.record("note", note(i));
    }
    // … but the same fact id with other content is refused.
    again.state.record(
        "note",
        json!({"fact_id": "f-1", "job": "J-1", "at": at, "text": "edited"}),
    );
    again.sync(&s).await;
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 5);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_rejections").await, 1);
    assert_eq!(
        again.state.confirmed()["rejected/p1-reinstalled/6"]["rejection"]["code"],
        "fact_id_reused"
    );
    assert_eq!(
        again.state.confirmed()["job/J-1"]["facts"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

// ---------------------------------------------------------------------------------------
// Chaos (RELIABILITY.md test 6, at HTTP scale: 3 devices × 100 mutations)

/// xorshift64*: seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

enum Answer {
    Push(String),
    Pull(String),
}

struct ChaosPhone {
    phone: Phone,
    technician: &'static str,
    made: u64,
    acked: u64,
    cursor: (u64, u64),
}

const CHAOS_MUTATIONS: u64 = 100;

async fn chaos_over_http_applies_every_mutation_once_and_every_phone_converges(s: TestServer) {
    let jobs = [
        ("J-1", Some("t1")),
        ("J-2", Some("t1")),
        ("J-3", Some("t1")),
        ("J-4", Some("t1")),
        ("J-5", Some("t2")),
        ("J-6", Some("t2")),
        ("J-7", Some("t2")),
        ("J-free", None),
    ];
    let w = setup(&s, &["t1", "t2"], &jobs).await;
    let mut rng = Rng::new(20_260_302);
    let mut phones: Vec<ChaosPhone> = [("d0", "t1"), ("d1", "t1"), ("d2", "t2")]
        .into_iter()
        .map(|(id, t)| ChaosPhone {
            phone: Phone::new(id, &w.key(t)),
            technician: t,
            made: 0,
            acked: 0,
            cursor: (0, 0),
        })
        .collect();
    // Who ever held each job (facts of former holders are kept).
    let mut ever: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (j, t) in jobs {
        if let Some(t) = t {
            ever.entry(t).or_default().insert(j);
        }
    }
    let mut holder_of_j4 = "t1";
    let mut expected_rejected: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut inflight: Vec<(usize, Answer)> = Vec::new();
    let (mut sent, mut dropped_requests, mut dropped_answers, mut duplicates) = (0, 0, 0, 0);

    let mut step = 0;
    while phones.iter().any(|p| p.made < CHAOS_MUTATIONS) || step < 50 {
        step += 1;
        let d = rng.below(phones.len());
        // The technician works: a few mutations, ~10 % of them doomed.
        let cp = &mut phones[d];
        for _ in 0..rng.below(4) {
            if cp.made == CHAOS_MUTATIONS {
                break;
            }
            cp.made += 1;
            let n = cp.made;
            let id = format!("{}-{n}", cp.phone.state.client_id());
            let mine: Vec<&str> = ever[cp.technician].iter().copied().collect();
            let job = mine[rng.below(mine.len())];
            let at = now_ms();
            let (name, args) = match rng.below(20) {
                0 => {
                    expected_rejected.insert((cp.phone.state.client_id().0.clone(), n));
                    (
                        "note",
                        json!({"fact_id": id, "job": "J-free", "at": at, "text": "x"}),
                    )
                }
                1 => {
                    expected_rejected.insert((cp.phone.state.client_id().0.clone(), n));
                    (
                        "note",
                        json!({"fact_id": id, "job": job, "at": at, "text": " "}),
                    )
                }
                2..=6 => (
                    "equipment",
                    json!({"fact_id": id, "job": job, "at": at, "serial": format!("SN-{id}"),
                           "action": if n.is_multiple_of(2) { "installed" } else { "collected" }}),
                ),
                7..=9 => (
                    "upsell_outcome",
                    json!({"offer_id": id, "job": job, "at": at, "product_code": "MESH-2",
                           "price_cents": 1500, "billing": "monthly", "outcome": "accepted"}),
                ),
                10..=11 => (
                    "photo",
                    json!({"fact_id": id, "job": job, "at": at, "sha256": format!("{:064x}", n),
                           "bytes": 2048, "media_type": "image/jpeg"}),
                ),
                _ => (
                    "note",
                    json!({"fact_id": id, "job": job, "at": at, "text": format!("note {n}")}),
                ),
            };
            cp.phone.state.record(name, args);
        }

        // The phone talks; the network drops, duplicates and delays.
        let is_push = rng.chance(50) && cp.phone.state.pending().len() > 0;
        let (path, body) = if is_push {
            let m = generate_message(&mut cp.phone.state).unwrap();
            ("/v1/sync/push", m.encode())
        } else {
            ("/v1/sync/pull", generate_pull(&cp.phone.state).encode())
        };
        if rng.chance(20) {
            dropped_requests += 1;
        } else {
            let copies = if rng.chance(10) { 2 } else { 1 };
            duplicates += copies - 1;
            for _ in 0..copies {
                let r = s
                    .post_raw(path, Some(&cp.phone.key), "application/json", &body)
                    .await;
                sent += 1;
                assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
                if rng.chance(20) {
                    dropped_answers += 1; // committed, but the answer is lost
                } else if is_push {
                    inflight.push((d, Answer::Push(r.text)));
                } else {
                    inflight.push((d, Answer::Pull(r.text)));
                }
            }
        }
        // Answers arrive late and in any order.
        while !inflight.is_empty() && rng.chance(60) {
            let (d, answer) = inflight.swap_remove(rng.below(inflight.len()));
            take_in(&mut phones[d], answer);
        }
        // The dispatcher moves J-4 back and forth.
        if rng.chance(4) {
            holder_of_j4 = if holder_of_j4 == "t1" { "t2" } else { "t1" };
            let r = assign(&s, &w, "J-4", Some(holder_of_j4)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            ever.entry(holder_of_j4).or_default().insert("J-4");
        }
    }
    assert!(
        dropped_requests > 20 && dropped_answers > 20 && duplicates > 5,
        "the network was not flaky enough"
    );

    // The network heals: late answers arrive, every queue drains, every phone pulls.
    while let Some((d, answer)) = inflight.pop() {
        take_in(&mut phones[d], answer);
    }
    for cp in &mut phones {
        for _ in 0..5 {
            if cp.phone.state.pending().len() == 0 {
                break;
            }
            let r = cp.phone.push(&s).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        assert_eq!(cp.phone.state.pending().len(), 0, "the queue drains");
    }
    for cp in &mut phones {
        let (r, _) = cp.phone.pull(&s).await;
        assert_eq!(r.status, StatusCode::OK);
    }

    // Every mutation applied or rejected exactly once, as expected.
    let facts: Vec<(String, i64)> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as("SELECT client_id, mutation_id FROM sync_facts")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    let rejections: Vec<(String, i64)> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as("SELECT client_id, mutation_id FROM sync_rejections")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    let as_set = |rows: &[(String, i64)]| -> BTreeSet<(String, u64)> {
        rows.iter().map(|(c, m)| (c.clone(), *m as u64)).collect()
    };
    assert_eq!(as_set(&rejections), expected_rejected);
    assert_eq!(as_set(&rejections).len(), rejections.len());
    let mut all = as_set(&facts);
    assert_eq!(all.len(), facts.len());
    all.extend(as_set(&rejections));
    assert_eq!(
        all.len(),
        facts.len() + rejections.len(),
        "a mutation both applied and rejected"
    );
    let every: BTreeSet<(String, u64)> = ["d0", "d1", "d2"]
        .iter()
        .flat_map(|d| (1..=CHAOS_MUTATIONS).map(move |n| (d.to_string(), n)))
        .collect();
    assert_eq!(all, every);
    // The job records hold each fact once.
    let records: Vec<String> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT record FROM sync_jobs")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    let mut in_records = Vec::new();
    for r in records {
        let v: Value = serde_json::from_str(&r).unwrap();
        for f in v["facts"].as_array().unwrap() {
            in_records.push(f["fact"]["id"].as_str().unwrap().to_owned());
        }
    }
    let distinct: BTreeSet<_> = in_records.iter().cloned().collect();
    assert_eq!(distinct.len(), in_records.len());
    assert_eq!(in_records.len(), facts.len());

    // Every phone holds exactly the server's view of its scope.
    for cp in &phones {
        let id = &cp.phone.state.client_id().0;
        assert_eq!(last_mutation_id(&s, id).await, Some(CHAOS_MUTATIONS as i64));
        assert_eq!(
            *cp.phone.state.confirmed(),
            scope(&s, cp.technician).await,
            "{id}"
        );
        assert_eq!(cp.phone.state.view(), *cp.phone.state.confirmed(), "{id}");
    }
    eprintln!(
        "chaos on {:?}: {step} steps, {sent} requests sent, {dropped_requests} dropped, \
         {dropped_answers} answers lost, {duplicates} duplicated, {} rejected",
        s.backend,
        expected_rejected.len()
    );
}

/// Takes in a (late, maybe duplicated) answer; acknowledgements and cursors never go
/// backwards.
fn take_in(cp: &mut ChaosPhone, answer: Answer) {
    match answer {
        Answer::Push(text) => {
            let ack = ServerMessage::decode(&text).unwrap();
            receive_message(&mut cp.phone.state, ack).unwrap();
        }
        Answer::Pull(text) => {
            let answer = PullResponse::decode(&text).unwrap();
            receive_pull(&mut cp.phone.state, answer).unwrap();
        }
    }
    let acked = cp.phone.state.last_acknowledged().0;
    assert!(acked >= cp.acked, "acknowledgement went backwards");
    cp.acked = acked;
    if let Some((Epoch(e), ScopeVersion(v))) = cp.phone.state.cookie().and_then(Cookie::order) {
        assert!((e, v) >= cp.cursor, "cursor went backwards");
        cp.cursor = (e, v);
    }
}

// ---------------------------------------------------------------------------------------
// Commit order (RELIABILITY.md test 7)

/// A slow transaction takes scope version v+1 and holds it; a push to the same scope
/// meanwhile cannot take v+2 and commit first (it waits on the scope row), so a pull in
/// between sees v and nothing later, and after both commit the pull from v gets both
/// changes. Were versions taken from a clock or a sequence, the push would commit v+2,
/// a pull would move the phone's cursor to v+2, and the slow change at v+1 would never
/// reach it.
async fn a_slow_writer_of_a_scope_holds_back_later_versions_so_no_change_is_skipped(s: TestServer) {
    let w = setup(&s, &["t1"], &[("J-1", Some("t1"))]).await;
    let mut phone = Phone::new("p1", &w.key("t1"));
    phone.sync(&s).await;
    let v = phone.version();
    let mut watcher = Phone::new("p2", &w.key("t1"));
    watcher.sync(&s).await;

    // The slow transaction: it takes version v+1 and does not commit yet.
    let mut slow = s.state.db.begin_write().await.unwrap();
    let mut writes = Writes::new();
    writes.put(
        &TechnicianId::from("t1"),
        "notice/slow".into(),
        Some(json!("from the slow writer")),
    );
    let taken = commit_writes(&mut slow, writes).await.unwrap();
    assert_eq!(taken[&TechnicianId::from("t1")].0, v + 1);

    // A push to the same scope starts meanwhile.
    phone.note(
        "f-1",
        "J-1",
        "pushed while the slow writer holds its version",
    );
    let body = generate_message(&mut phone.state).unwrap().encode();
    let s = Arc::new(s);
    let (s2, key) = (s.clone(), w.key("t1"));
    let push = tokio::spawn(async move {
        s2.post_raw("/v1/sync/push", Some(&key), "application/json", &body)
            .await
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !push.is_finished(),
        "the later writer waits for the slow one"
    );

    // A pull now sees neither: the scope is still at v.
    let (r, answer) = watcher.pull(&s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(answer.unwrap().patch.is_empty());
    assert_eq!(watcher.version(), v);

    slow.commit().await.unwrap();
    let r = push.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ack = ServerMessage::decode(&r.text).unwrap();
    receive_message(&mut phone.state, ack).unwrap();

    // From v, the watcher gets both changes, in version order, and the push's is v+2.
    let (_, answer) = watcher.pull(&s).await;
    let answer = answer.unwrap();
    assert_eq!(keys(&answer), ["put job/J-1", "put notice/slow"]);
    assert_eq!(watcher.version(), v + 2);
    let versions: Vec<(String, i64)> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as("SELECT key, version FROM sync_entries ORDER BY version, key")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert_eq!(
        versions.iter().rev().take(2).collect::<Vec<_>>(),
        [
            &("job/J-1".to_owned(), (v + 2) as i64),
            &("notice/slow".to_owned(), (v + 1) as i64)
        ]
    );
    assert_eq!(*watcher.state.confirmed(), scope(&s, "t1").await);
}

// ---------------------------------------------------------------------------------------
// A temporary database error

/// The push's transaction fails for a reason that will pass (PostgreSQL: a
/// serialization failure injected by a trigger on the scope row, the last write of the
/// transaction, so facts, rejections and the device's id were already written in it;
/// SQLite: another process holds the write lock past the busy timeout). The answer is
/// 503, nothing of the push is kept, and the resend applies it once.
async fn a_temporary_database_error_keeps_nothing_and_the_resend_applies_once(s: TestServer) {
    let w = setup(&s, &["t1"], &[("J-1", Some("t1"))]).await;
    let mut phone = Phone::new("p1", &w.key("t1"));
    phone.note("f-1", "J-1", "first");
    phone.sync(&s).await;
    let before = scope(&s, "t1").await;
    phone.note("f-2", "J-1", "second");
    phone.note("f-3", "J-1", " "); // a rejection, also rolled back

    let blocker = match s.backend {
        Backend::Postgres => {
            despacho_api::on_pool!(&s.state.db, |pool| {
                sqlx::raw_sql(
                    "CREATE FUNCTION inject_40001() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END $$; \
                     CREATE TRIGGER inject BEFORE UPDATE ON sync_scopes \
                     FOR EACH ROW EXECUTE FUNCTION inject_40001();",
                )
                .execute(pool)
                .await
                .map(drop)
            })
            .unwrap();
            None
        }
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&s.db.url).await.unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            Some(conn)
        }
    };
    let r = phone.push(&s).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.code(), "database_busy");
    assert_eq!(phone.state.pending().len(), 2, "the phone keeps its queue");
    match blocker {
        Some(mut conn) => {
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
        }
        None => {
            despacho_api::on_pool!(&s.state.db, |pool| {
                sqlx::raw_sql("DROP TRIGGER inject ON sync_scopes")
                    .execute(pool)
                    .await
                    .map(drop)
            })
            .unwrap();
        }
    }
    assert_eq!(last_mutation_id(&s, "p1").await, Some(1));
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 1);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_rejections").await, 0);
    assert_eq!(scope(&s, "t1").await, before);

    let answer = phone.sync(&s).await;
    assert_eq!(answer.last_mutation_id.0, 3);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 2);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_rejections").await, 1);
    assert_eq!(*phone.state.confirmed(), scope(&s, "t1").await);
}

/// Hostile bodies (RELIABILITY.md test 10, for the sync decoders): always a 4xx, never
/// a panic or a 5xx, and nothing recorded.
async fn hostile_sync_bodies_get_a_4xx_and_change_nothing(s: TestServer) {
    let w = setup(&s, &["t1"], &[("J-1", Some("t1"))]).await;
    let key = w.key("t1");
    let deep = format!(
        r#"{{"schema_version":1,"message":{{"client_id":"p","mutations":[{{"id":1,"name":"note","args":{}{}}}]}}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let many: Vec<Value> = (1..=1_001)
        .map(|i| json!({"id": i, "name": "note", "args": {}}))
        .collect();
    let too_many = json!({"schema_version": 1, "message": {"client_id": "p", "mutations": many}});
    let bodies: Vec<(Vec<u8>, u16)> = vec![
        (deep.into_bytes(), 400),
        (too_many.to_string().into_bytes(), 422),
        (b"\xff\xfe{}".to_vec(), 400),
        (br#"{"schema_version":1.5,"message":{}}"#.to_vec(), 400),
        (br#"{"schema_version":-1,"message":{}}"#.to_vec(), 400),
        (br#"{"schema_version":18446744073709551616,"message":{}}"#.to_vec(), 400),
        (br#"{"schema_version":1,"message":{"client_id":7,"mutations":[]}}"#.to_vec(), 400),
        (
            br#"{"schema_version":1,"message":{"client_id":"p","mutations":[{"id":18446744073709551615,"name":"note","args":{}}]}}"#.to_vec(),
            409,
        ),
        (
            format!(r#"{{"schema_version":1,"message":{{"client_id":"{}","mutations":[]}}}}"#, "x".repeat(101)).into_bytes(),
            422,
        ),
        (
            br#"{"schema_version":1,"message":{"client_id":"p\u0000","mutations":[]}}"#.to_vec(),
            422,
        ),
    ];
    for (body, status) in bodies {
        let r = s
            .call(
                axum::http::Method::POST,
                "/v1/sync/push",
                Some(&key),
                Some(("application/json", body.clone())),
            )
            .await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{}: {}",
            String::from_utf8_lossy(&body[..body.len().min(120)]),
            r.text
        );
        assert!(r.json["error"]["code"].is_string(), "{}", r.text);
    }
    // Arguments of any shape inside a well-formed push are rejections, not errors.
    let odd = json!({"schema_version": 1, "message": {"client_id": "p", "mutations": [
        {"id": 1, "name": "note", "args": null},
        {"id": 2, "name": "note", "args": [1, 2]},
        {"id": 3, "name": "photo", "args": {"fact_id": "f", "job": "J-1", "at": 1, "sha256": "a", "bytes": -1, "media_type": "image/png"}},
        {"id": 4, "name": "x".repeat(10_000), "args": {"fact_id": "g", "job": "J-1", "at": 1}},
        {"id": 5, "name": "note", "args": {"fact_id": "h".repeat(101), "job": "J-1", "at": 1, "text": "t"}}
    ]}});
    let r = s
        .post_raw(
            "/v1/sync/push",
            Some(&key),
            "application/json",
            &odd.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["message"]["last_mutation_id"], 5);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_rejections").await, 5);
    assert_eq!(count(&s, "SELECT COUNT(*) FROM sync_facts").await, 0);
}

both_backends!(
    a_phone_pushes_facts_and_pulls_its_jobs,
    a_reassigned_job_leaves_one_phone_and_reaches_the_other,
    another_technicians_device_is_refused,
    a_bad_or_forged_cookie_gets_a_full_snapshot_and_the_phone_recovers,
    bad_messages_get_clear_refusals,
    a_mutation_that_can_never_succeed_is_rejected_and_the_queue_moves_on,
    a_duplicated_push_is_applied_once,
    chaos_over_http_applies_every_mutation_once_and_every_phone_converges,
    a_slow_writer_of_a_scope_holds_back_later_versions_so_no_change_is_skipped,
    a_temporary_database_error_keeps_nothing_and_the_resend_applies_once,
    hostile_sync_bodies_get_a_4xx_and_change_nothing,
);
