//! What technicians record in the field reaching dispatchers and customers, with checks
//! (issue 8), each on SQLite and PostgreSQL over HTTP: the upsell catalogue, offers and
//! reports (and the day's KPIs); serials checked against customers' equipment and
//! flagged; the flag queue; job status facts of a booked job becoming the customer's
//! messages exactly once; a dispatcher's job edit reaching the phone; jobs by technician.
//! `despacho_mobile_sync`'s client state machine plays the phone.

use crate::common::world;

use crate::common::*;
use axum::http::{Method, StatusCode};
use despacho_api::server::Role;
use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState,
    PullResponse, ServerMessage,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// Helpers

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A phone: the protocol's client state and its technician's key.
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

    /// Records mutation `name` with `args` plus `job` and `at` (and `fact_id` unless an
    /// `offer_id` is given).
    fn record(&mut self, name: &str, fact: &str, job: &str, args: Value) {
        let mut a = args;
        a["job"] = json!(job);
        a["at"] = json!(now_ms());
        if a.get("offer_id").is_none() {
            a["fact_id"] = json!(fact);
        }
        self.state.record(name, a);
    }

    /// Pushes everything pending (each push must be a 200).
    async fn push(&mut self, s: &TestServer) {
        while let Some(message) = generate_message(&mut self.state) {
            let r = s
                .post_raw(
                    "/v1/sync/push",
                    Some(&self.key),
                    "application/json",
                    &message.encode(),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let ack = ServerMessage::decode(&r.text).expect("an ack");
            receive_message(&mut self.state, ack).expect("a valid ack");
            if self.state.pending().len() == 0 {
                break;
            }
        }
    }

    async fn pull(&mut self, s: &TestServer) -> PullResponse {
        let r = s
            .post_raw(
                "/v1/sync/pull",
                Some(&self.key),
                "application/json",
                &generate_pull(&self.state).encode(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let answer = PullResponse::decode(&r.text).expect("a pull answer");
        receive_pull(&mut self.state, answer.clone()).expect("a valid answer");
        answer
    }
}

/// Technicians (one key each), a dispatcher key, jobs (id, customer, holder).
struct Setup {
    dispatcher: String,
    keys: BTreeMap<String, String>,
}

async fn setup(
    s: &TestServer,
    technicians: &[&str],
    customers: &[&str],
    jobs: &[(&str, Option<&str>, Option<&str>)],
) -> Setup {
    let r = s
        .put(
            "/v1/settings",
            Some(&s.admin_key),
            &json!({"time_zone": "America/Sao_Paulo"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for t in technicians {
        let r = s
            .post("/v1/technicians", Some(&s.admin_key), &technician(t))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    for c in customers {
        let r = s
            .post("/v1/customers", Some(&s.admin_key), &customer(Some(c)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let dispatcher = s.key(Role::Dispatcher, None).await.1;
    for (j, c, holder) in jobs {
        let mut body = json!({"job": job(j, None)});
        if let Some(c) = c {
            body["customer_id"] = json!(c);
        }
        let r = s.post("/v1/jobs", Some(&dispatcher), &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        if let Some(t) = holder {
            assign(s, &dispatcher, j, t).await;
        }
    }
    let mut keys = BTreeMap::new();
    for t in technicians {
        keys.insert(t.to_string(), s.key(Role::Technician, Some(t)).await.1);
    }
    Setup { dispatcher, keys }
}

async fn assign(s: &TestServer, dispatcher: &str, job: &str, technician: &str) {
    let r = s
        .post(
            &format!("/v1/jobs/{job}/assign"),
            Some(dispatcher),
            &json!({ "technician": technician }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn open_flags(s: &TestServer, key: &str, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/sync/flags{query}"), Some(key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().unwrap().clone()
}

fn kinds(flags: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = flags
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

async fn patch(s: &TestServer, path: &str, key: &str, body: &Value) -> Reply {
    s.call(
        Method::PATCH,
        path,
        Some(key),
        Some(("application/json", serde_json::to_vec(body).unwrap())),
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Upsells

fn product(code: &str, price: i64, billing: &str) -> Value {
    json!({"code": code, "name": format!("Product {code}"), "price_cents": price, "billing": billing})
}

async fn the_upsell_catalogue_checks_each_field_and_keeps_offered_products(s: TestServer) {
    let w = setup(&s, &["t1"], &[], &[("J-1", None, Some("t1"))]).await;
    let d = &w.dispatcher;
    let r = s
        .post(
            "/v1/upsell-products",
            Some(d),
            &product("MESH-2", 1500, "monthly"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["billing"], "monthly");
    let r = s
        .post(
            "/v1/upsell-products",
            Some(d),
            &product("MESH-2", 1500, "monthly"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "already_exists");

    // Bad values: every problem, named.
    let r = s
        .post(
            "/v1/upsell-products",
            Some(d),
            &json!({"code": "bad code!", "name": " ", "price_cents": -5, "billing": "monthly"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.code", "$.name", "$.price_cents"]);
    let r = s
        .post("/v1/upsell-products", Some(d), &product("X", 1, "weekly"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.billing"]);
    let r = s
        .put(
            "/v1/upsell-products/IPTV",
            Some(d),
            &product("OTHER", 1, "one_off"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$.code"]);
    // Technicians and chat bots may not change it.
    let r = s
        .post(
            "/v1/upsell-products",
            Some(&w.keys["t1"]),
            &product("Y", 1, "one_off"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // PUT creates, then replaces.
    let r = s
        .put(
            "/v1/upsell-products/IPTV",
            Some(d),
            &product("IPTV", 2990, "monthly"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut iptv = product("IPTV", 3490, "monthly");
    iptv["active"] = json!(false);
    let r = s.put("/v1/upsell-products/IPTV", Some(d), &iptv).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["price_cents"], 3490);
    assert_eq!(r.json["active"], false);
    // The phone reads the catalogue.
    let r = s.get("/v1/upsell-products", Some(&w.keys["t1"])).await;
    assert_eq!(r.status, StatusCode::OK);
    let codes: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["IPTV", "MESH-2"]);
    assert_eq!(
        s.get("/v1/upsell-products/NOPE", Some(d)).await.status,
        StatusCode::NOT_FOUND
    );

    // A product once offered is kept (its offers refer to it); another is deleted.
    let mut phone = Phone::new("p1", &w.keys["t1"]);
    phone.record(
        "upsell_outcome",
        "",
        "J-1",
        json!({"offer_id": "o-1", "product_code": "MESH-2", "price_cents": 1500,
               "billing": "monthly", "outcome": "declined"}),
    );
    phone.push(&s).await;
    let r = s.delete("/v1/upsell-products/MESH-2", Some(d)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "product_in_use");
    let r = s.delete("/v1/upsell-products/IPTV", Some(d)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.delete("/v1/upsell-products/IPTV", Some(d)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn offers_are_checked_against_the_catalogue_and_reported_per_technician_and_day(
    s: TestServer,
) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &[],
        &[("J-1", None, Some("t1")), ("J-2", None, Some("t2"))],
    )
    .await;
    let d = &w.dispatcher;
    for p in [
        product("MESH-2", 1500, "monthly"),
        product("OUTLET", 5000, "one_off"),
    ] {
        let r = s.post("/v1/upsell-products", Some(d), &p).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let offer = |id: &str, code: &str, price: i64, billing: &str, outcome: &str| {
        json!({"offer_id": id, "product_code": code, "price_cents": price,
               "billing": billing, "outcome": outcome})
    };
    let mut ana = Phone::new("ana", &w.keys["t1"]);
    ana.record(
        "upsell_outcome",
        "",
        "J-1",
        offer("o-1", "MESH-2", 1500, "monthly", "accepted"),
    );
    ana.record(
        "upsell_outcome",
        "",
        "J-1",
        offer("o-2", "OUTLET", 5000, "one_off", "accepted"),
    );
    ana.record(
        "upsell_outcome",
        "",
        "J-1",
        offer("o-3", "IPTV-X", 2990, "monthly", "declined"),
    );
    ana.push(&s).await;
    let mut bo = Phone::new("bo", &w.keys["t2"]);
    // Offered at a discount: counted at the price accepted, and flagged.
    bo.record(
        "upsell_outcome",
        "",
        "J-2",
        offer("o-4", "MESH-2", 1000, "monthly", "accepted"),
    );
    bo.record(
        "upsell_outcome",
        "",
        "J-2",
        offer("o-5", "OUTLET", 5000, "one_off", "declined"),
    );
    bo.push(&s).await;
    // A resent offer (a reinstall resends under a new mutation id) counts once.
    let mut again = Phone::new("bo-2", &w.keys["t2"]);
    again.record(
        "upsell_outcome",
        "",
        "J-2",
        offer("o-4", "MESH-2", 1000, "monthly", "accepted"),
    );
    again.push(&s).await;

    let flags = open_flags(&s, d, "").await;
    assert_eq!(
        kinds(&flags),
        ["unknown_upsell_product", "upsell_terms_differ"]
    );
    let unknown = flags
        .iter()
        .find(|f| f["kind"] == "unknown_upsell_product")
        .unwrap();
    assert_eq!(unknown["job_id"], "J-1");
    assert_eq!(unknown["flag"]["product_code"], "IPTV-X");
    assert_eq!(unknown["flag"]["fact"], "o-3");

    // The visit's day (the job's window, São Paulo): 2026-03-02.
    let r = s
        .get("/v1/reports/upsells?from=2026-03-01&to=2026-03-31", Some(d))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json["rows"],
        json!([
            {"technician": "t1", "day": "2026-03-02", "offers": 3, "accepted": 2,
             "conversion_pct": 66.67, "added_monthly_cents": 1500, "one_off_cents": 5000,
             "unknown_products": 1},
            {"technician": "t2", "day": "2026-03-02", "offers": 2, "accepted": 1,
             "conversion_pct": 50.0, "added_monthly_cents": 1000, "one_off_cents": 0,
             "unknown_products": 0}
        ])
    );
    assert_eq!(
        r.json["totals"],
        json!({"offers": 5, "accepted": 3, "conversion_pct": 60.0,
               "added_monthly_cents": 2500, "one_off_cents": 5000, "unknown_products": 1})
    );
    let r = s
        .get(
            "/v1/reports/upsells?from=2026-03-02&to=2026-03-02&technician=t2",
            Some(d),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["rows"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["totals"]["offers"], 2);
    let r = s
        .get("/v1/reports/upsells?from=2026-03-03&to=2026-03-09", Some(d))
        .await;
    assert_eq!(r.json["rows"], json!([]));
    assert_eq!(r.json["totals"]["conversion_pct"], 0.0);
    // Bad queries name the parameter.
    for (query, param) in [
        ("to=2026-03-02", "from"),
        ("from=2026-13-01&to=2026-03-02", "from"),
        ("from=2026-03-02&to=2026-03-01", "to"),
        ("from=2026-01-01&to=2027-06-01", "to"),
    ] {
        let r = s
            .get(&format!("/v1/reports/upsells?{query}"), Some(d))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_eq!(r.paths(), [param], "{query}");
    }
    assert_eq!(
        s.get(
            "/v1/reports/upsells?from=2026-03-02&to=2026-03-02",
            Some(&w.keys["t1"])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );

    // The day's KPIs carry the upsell figures, for the day and per technician.
    let r = s
        .post(
            "/v1/plans/2026-03-02/optimize",
            Some(d),
            &json!({"seconds": 1, "seed": 1, "wait": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let upsells = &r.json["kpis"]["upsells"];
    assert_eq!(upsells["offers"], 5);
    assert_eq!(upsells["added_monthly_cents"], 2500);
    assert_eq!(upsells["technicians"]["t1"]["one_off_cents"], 5000);
    assert_eq!(upsells["technicians"]["t2"]["accepted"], 1);
}

// ---------------------------------------------------------------------------------------
// Equipment and flags

async fn equipment(s: &TestServer, key: &str, customer: &str) -> BTreeMap<String, Value> {
    let r = s
        .get(&format!("/v1/customers/{customer}/equipment"), Some(key))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["serial"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

async fn serials_are_checked_against_customers_equipment_and_flagged_never_dropped(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &["c1", "c2"],
        &[
            ("RET-1", Some("c1"), Some("t1")),
            ("INS-2", Some("c2"), Some("t1")),
            ("INS-3", Some("c1"), Some("t2")),
        ],
    )
    .await;
    let d = &w.dispatcher;
    // The ISP's records: c1's modem to be returned; c2's router installed.
    let r = s
        .put(
            "/v1/customers/c1/equipment/zte-0001",
            Some(d),
            &json!({"state": "to_return", "model": "ZTE F670L"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["serial"], "ZTE-0001");
    let r = s
        .put(
            "/v1/customers/c2/equipment/RT-9",
            Some(d),
            &json!({"state": "installed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The same device cannot be recorded at two customers.
    let r = s
        .put(
            "/v1/customers/c1/equipment/rt-9",
            Some(d),
            &json!({"state": "installed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "serial_at_another_customer");
    let r = s
        .put(
            "/v1/customers/c1/equipment/X1",
            Some(d),
            &json!({"state": "lost"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$.state"]);
    let r = s
        .put(
            "/v1/customers/nobody/equipment/X1",
            Some(d),
            &json!({"state": "installed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let mut ana = Phone::new("ana", &w.keys["t1"]);
    let serial = |serial: &str, action: &str| json!({"serial": serial, "action": action});
    ana.record("equipment", "e-1", "RET-1", serial("zte-0001", "collected"));
    ana.record("equipment", "e-2", "RET-1", serial("GHOST-7", "collected"));
    ana.record("equipment", "e-3", "RET-1", serial("RT-9", "collected"));
    ana.record("equipment", "e-4", "INS-2", serial("ONT-55", "installed"));
    ana.push(&s).await;
    // Bo installs at c1 the ONT Ana installed at c2 (a typo, or a stolen device).
    let mut bo = Phone::new("bo", &w.keys["t2"]);
    bo.record("equipment", "e-5", "INS-3", serial("ont-55", "installed"));
    bo.push(&s).await;

    // Every fact is stored; what does not fit is flagged.
    let facts: i64 = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sync_facts WHERE kind = 'equipment'")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(facts, 5);
    let flags = open_flags(&s, d, "").await;
    assert_eq!(
        kinds(&flags),
        [
            "duplicate_serial",
            "duplicate_serial",
            "serial_installed_elsewhere",
            "serial_of_another_customer",
            "unknown_serial"
        ]
    );
    let unknown = flags
        .iter()
        .find(|f| f["kind"] == "unknown_serial")
        .unwrap();
    assert_eq!(unknown["job_id"], "RET-1");
    assert_eq!(unknown["flag"]["serial"], "GHOST-7");
    assert_eq!(unknown["flag"]["technician"], "t1");
    let elsewhere = flags
        .iter()
        .find(|f| f["kind"] == "serial_installed_elsewhere")
        .unwrap();
    assert_eq!(elsewhere["job_id"], "INS-3");
    assert_eq!(elsewhere["flag"]["recorded_customer"], "c2");
    let dup: Vec<&Value> = flags
        .iter()
        .filter(|f| f["kind"] == "duplicate_serial")
        .collect();
    let mut jobs: Vec<&str> = dup.iter().map(|f| f["job_id"].as_str().unwrap()).collect();
    jobs.sort();
    assert_eq!(jobs, ["INS-2", "INS-3"]);

    // The records: the collected modem waits for the job's completion; the ONT stays
    // at c2 (the conflicting installation changed nothing); c2's router stays there.
    let c1 = equipment(&s, d, "c1").await;
    assert_eq!(c1.keys().collect::<Vec<_>>(), ["ZTE-0001"]);
    assert_eq!(c1["ZTE-0001"]["state"], "to_return");
    assert_eq!(c1["ZTE-0001"]["collected_job"], "RET-1");
    assert_eq!(c1["ZTE-0001"]["model"], "ZTE F670L");
    let c2 = equipment(&s, d, "c2").await;
    assert_eq!(c2["ONT-55"]["state"], "installed");
    assert_eq!(c2["ONT-55"]["installed_job"], "INS-2");
    assert_eq!(c2["ONT-55"]["installed_by"], "t1");
    assert_eq!(c2["RT-9"]["state"], "installed");

    // The return job completes: its collected modem is back.
    ana.record("job_status", "s-1", "RET-1", json!({"status": "completed"}));
    ana.push(&s).await;
    let c1 = equipment(&s, d, "c1").await;
    assert_eq!(c1["ZTE-0001"]["state"], "returned");
    assert!(c1["ZTE-0001"]["returned_at"].is_string());
    // Collecting it again: already returned.
    ana.record(
        "equipment",
        "e-6",
        "RET-1",
        serial("ZTE-0001 ", "collected"),
    );
    ana.push(&s).await;
    let returned = open_flags(&s, d, "?kind=serial_already_returned").await;
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0]["flag"]["fact"], "e-6");

    // The queue: resolve one, it leaves the open list; resolving again changes nothing.
    let id = unknown["id"].as_str().unwrap();
    let r = s
        .post(
            &format!("/v1/sync/flags/{id}/resolve"),
            Some(d),
            &json!({"resolution": "serial typed wrong; it is ZTE-0001"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["resolved_at"].is_string());
    let first = r.json.clone();
    let r = s
        .post(&format!("/v1/sync/flags/{id}/resolve"), Some(d), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, first);
    assert!(!open_flags(&s, d, "").await.iter().any(|f| f["id"] == id));
    let resolved = open_flags(&s, d, "?status=resolved").await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(
        resolved[0]["resolution"],
        "serial typed wrong; it is ZTE-0001"
    );
    assert_eq!(open_flags(&s, d, "?job_id=INS-3").await.len(), 2);
    // Bad input.
    let r = s
        .post(
            &format!("/v1/sync/flags/{id}/resolve"),
            Some(d),
            &json!({"resolution": "x".repeat(501)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$.resolution"]);
    let r = s
        .post("/v1/sync/flags/flg_nope/resolve", Some(d), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = s.get("/v1/sync/flags?status=maybe", Some(d)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.paths(), ["status"]);
    assert_eq!(
        s.get("/v1/sync/flags", Some(&w.keys["t1"])).await.status,
        StatusCode::FORBIDDEN
    );
}

// ---------------------------------------------------------------------------------------
// Job lifecycle reaching customers

/// The outbox rows of booking `id`: (kind, payload).
async fn messages(s: &TestServer, id: &str) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as(
            "SELECT kind, payload FROM outbox WHERE booking_id = $1 ORDER BY created_at, kind",
        )
        .bind(id)
        .fetch_all(pool)
        .await
    })
    .unwrap();
    rows.into_iter()
        .map(|(k, p)| (k, serde_json::from_str(&p).unwrap()))
        .filter(|(k, _)| k != "booking_confirmed" && k != "booking_reminder")
        .collect()
}

async fn visit_events(s: &TestServer, id: &str) -> Vec<(String, String)> {
    despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_as(
            "SELECT kind, recorded_by FROM visit_events WHERE booking_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
    })
    .unwrap()
}

/// Books the first free slot for customer c1 and stores job `job` carrying it out
/// (linked with `booking_id`), assigned to t1. Returns the booking id.
async fn booked_job(w: &world::World, job_id: &str) -> String {
    let slots = w.slots().await;
    let booking = w.book(&slots[0], Some("c1")).await;
    let id = booking["id"].as_str().unwrap().to_owned();
    let mut j = job(job_id, None);
    j["windows"] = json!([{"start": booking["window"]["start"], "end": booking["window"]["end"]}]);
    let admin = w.s.admin_key.clone();
    let r =
        w.s.post(
            "/v1/jobs",
            Some(&admin),
            &json!({"job": j, "customer_id": "c1", "booking_id": id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["booking_id"], json!(id));
    assign(&w.s, &admin, job_id, "t1").await;
    id
}

async fn status_facts_of_a_booked_job_reach_the_customer_exactly_once(s: TestServer) {
    let w = world::world(s).await;
    w.customer("c1", json!({})).await;
    let booking = booked_job(&w, "B-1").await;
    let s = &w.s;
    let key = s.key(Role::Technician, Some("t1")).await.1;
    let mut phone = Phone::new("phone-1", &key);

    let eta_start = now_ms() + 30 * 60_000;
    let eta_end = now_ms() + 90 * 60_000;
    phone.record(
        "job_status",
        "s-1",
        "B-1",
        json!({"status": "en_route", "eta_start": eta_start, "eta_end": eta_end}),
    );
    phone.push(s).await;
    let sent = messages(s, &booking).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "technician_en_route");
    assert_eq!(
        visit_events(s, &booking).await,
        [("en_route".to_owned(), "sync:phone-1".to_owned())]
    );
    // The same fact again from a reinstalled app (a new device, new mutation ids):
    // recorded once, no second message.
    let mut reinstalled = Phone::new("phone-1b", &key);
    reinstalled.record(
        "job_status",
        "s-1",
        "B-1",
        json!({"status": "en_route", "eta_start": eta_start, "eta_end": eta_end}),
    );
    reinstalled.push(s).await;
    assert_eq!(messages(s, &booking).await.len(), 1);
    assert_eq!(visit_events(s, &booking).await.len(), 1);

    // The dispatcher reported the arrival through the API first: the phone's arrival
    // adds nothing (the customer was told).
    let r = s
        .post(
            &format!("/v1/bookings/{booking}/events"),
            Some(&s.admin_key),
            &json!({"type": "arrived"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    phone.record("job_status", "s-2", "B-1", json!({"status": "arrived"}));
    phone.record(
        "customer_confirmation",
        "c-1",
        "B-1",
        json!({"signer_name": "Maria Souza", "signature_sha256": "ab".repeat(32)}),
    );
    phone.record("job_status", "s-3", "B-1", json!({"status": "completed"}));
    phone.push(s).await;
    let kinds_sent: Vec<String> = messages(s, &booking)
        .await
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(kinds_sent, ["technician_en_route", "survey_request"]);
    let events: Vec<String> = visit_events(s, &booking)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(events, ["en_route", "arrived", "completed"]);
    // The customer's confirmation is stored with the job, and on the phone.
    let stored: Vec<String> = despacho_api::on_pool!(&s.state.db, |pool| {
        sqlx::query_scalar("SELECT fact FROM sync_facts WHERE kind = 'customer_confirmation'")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert_eq!(stored.len(), 1);
    let stored: Value = serde_json::from_str(&stored[0]).unwrap();
    assert_eq!(stored["fact"]["signer_name"], "Maria Souza");
    phone.pull(s).await;
    let view = &phone.state.confirmed()["job/B-1"];
    assert_eq!(view["status"], "completed");
    assert!(view["facts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "customer_confirmation"));
    assert_eq!(view["details"]["booking_id"], json!(booking));
    assert!(open_flags(s, &s.admin_key, "").await.is_empty());
    // Dispatchers read what was recorded, the signature included.
    let r = s.get("/v1/jobs/B-1/facts", Some(&s.admin_key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["record"]["status"], "completed");
    let confirmation = r.json["record"]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "customer_confirmation")
        .cloned()
        .expect("the confirmation");
    assert_eq!(confirmation["signer_name"], "Maria Souza");
    assert_eq!(confirmation["signature_sha256"], "ab".repeat(32));
    assert_eq!(confirmation["technician"], "t1");
    assert_eq!(r.json["flags"], json!([]));
    assert_eq!(
        s.get("/v1/jobs/B-1/facts", Some(&key)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.get("/v1/jobs/NOPE/facts", Some(&s.admin_key))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn failed_visits_reach_the_customer_or_the_dispatchers_and_refusals_keep_the_fact(
    s: TestServer,
) {
    let w = world::world(s).await;
    w.customer("c1", json!({})).await;
    let missed = booked_job(&w, "B-1").await;
    let cancelled = booked_job(&w, "B-2").await;
    let s = &w.s;
    let r = s
        .post(
            &format!("/v1/bookings/{cancelled}/cancel"),
            Some(&w.chatbot),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let key = s.key(Role::Technician, Some("t1")).await.1;
    let mut phone = Phone::new("phone-1", &key);
    // The customer was absent: the missed-visit follow-up with new slots.
    phone.record(
        "job_status",
        "s-1",
        "B-1",
        json!({"status": "failed", "reason": "customer_absent"}),
    );
    // Work on a cancelled booking: kept, the refusal flagged; a failure the customer
    // cannot fix goes to the dispatchers.
    phone.record("job_status", "s-2", "B-2", json!({"status": "en_route"}));
    phone.record(
        "job_status",
        "s-3",
        "B-2",
        json!({"status": "failed", "reason": "wrong_equipment"}),
    );
    phone.push(s).await;
    let sent = messages(s, &missed).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "missed_visit");
    assert_eq!(sent[0].1["reason"], "customer_absent");
    let offered = sent[0].1["offered_slots"].as_array().unwrap();
    assert!(!offered.is_empty() && offered.len() <= 3, "{offered:?}");
    let cancelled_messages: Vec<String> = messages(s, &cancelled)
        .await
        .into_iter()
        .map(|m| m.0)
        .filter(|k| k != "booking_cancelled")
        .collect();
    assert!(cancelled_messages.is_empty(), "{cancelled_messages:?}");
    let flags = open_flags(s, &s.admin_key, "?job_id=B-2").await;
    assert_eq!(kinds(&flags), ["visit_event_refused", "visit_failed"]);
    let r = s.get("/v1/jobs/B-2/facts", Some(&s.admin_key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["flags"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["record"]["facts"].as_array().unwrap().len(), 2);
    let refused = flags
        .iter()
        .find(|f| f["kind"] == "visit_event_refused")
        .unwrap();
    assert_eq!(refused["flag"]["code"], "booking_cancelled");
    assert_eq!(refused["flag"]["event"], "en_route");
    let failed = flags.iter().find(|f| f["kind"] == "visit_failed").unwrap();
    assert_eq!(failed["flag"]["reason"], "wrong_equipment");
    // The facts are all there.
    phone.pull(s).await;
    assert_eq!(phone.state.confirmed()["job/B-2"]["status"], "failed");
    assert_eq!(
        phone.state.confirmed()["job/B-1"]["failure_reason"],
        "customer_absent"
    );

    // Linking: an unknown booking, or one another job carries out, is refused by name.
    let admin = s.admin_key.clone();
    let r = patch(s, "/v1/jobs/B-2", &admin, &json!({"booking_id": missed})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.booking_id"]);
    assert_eq!(
        r.json["error"]["details"][0]["code"],
        "booking_already_linked"
    );
    let r = patch(s, "/v1/jobs/B-2", &admin, &json!({"booking_id": "bk_nope"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json["error"]["details"][0]["code"], "unknown_booking");
}

// ---------------------------------------------------------------------------------------
// Dispatcher edits reaching phones; jobs by technician

async fn a_dispatchers_edit_reaches_the_assigned_phone_at_its_next_pull(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &["c1"],
        &[("J-1", Some("c1"), Some("t1")), ("J-2", None, None)],
    )
    .await;
    let d = &w.dispatcher;
    let mut ana = Phone::new("ana", &w.keys["t1"]);
    let mut bo = Phone::new("bo", &w.keys["t2"]);
    ana.pull(&s).await;
    bo.pull(&s).await;
    let before = ana.state.confirmed()["job/J-1"].clone();
    assert!(before["details"]["notes"].is_null());

    let r = patch(
        &s,
        "/v1/jobs/J-1",
        d,
        &json!({"address": "Rua Nova, 10", "notes": "ring twice; dog",
                "window": {"start": "2026-03-02T13:00:00-03:00", "end": "2026-03-02T15:00:00-03:00"},
                "collect_serials": [" zte-0001", "RT-9"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["notes"], "ring twice; dog");
    assert_eq!(r.json["collect_serials"], json!(["ZTE-0001", "RT-9"]));
    assert_eq!(r.json["job"]["place"]["address"], "Rua Nova, 10");
    assert_eq!(r.json["assigned_technician"], "t1");

    let answer = ana.pull(&s).await;
    assert_eq!(answer.patch.len(), 1, "{:?}", answer.patch);
    let view = &ana.state.confirmed()["job/J-1"];
    assert_eq!(view["address"], "Rua Nova, 10");
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T13:00:00-03:00")
        .unwrap()
        .timestamp_millis();
    assert_eq!(view["window"]["start"], start);
    assert_eq!(view["window"]["end"], start + 2 * 3_600_000);
    assert_eq!(view["details"]["notes"], "ring twice; dog");
    assert_eq!(
        view["details"]["collect_serials"],
        json!(["ZTE-0001", "RT-9"])
    );
    // Only the holder's scope moved.
    assert!(bo.pull(&s).await.patch.is_empty());
    // The stored job says the same.
    let r = s.get("/v1/jobs/J-1", Some(d)).await;
    assert_eq!(r.json["notes"], "ring twice; dog");
    assert_eq!(
        r.json["job"]["windows"][0]["start"],
        "2026-03-02T13:00:00-03:00"
    );

    // Notes removed: the phone hears of it too.
    let r = patch(&s, "/v1/jobs/J-1", d, &json!({"notes": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    ana.pull(&s).await;
    assert!(ana.state.confirmed()["job/J-1"]["details"]["notes"].is_null());
    // A job nobody holds is edited without touching any phone.
    let r = patch(&s, "/v1/jobs/J-2", d, &json!({"notes": "call first"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(ana.pull(&s).await.patch.is_empty());
    // Assigned later, it arrives with its notes.
    assign(&s, d, "J-2", "t2").await;
    bo.pull(&s).await;
    assert_eq!(
        bo.state.confirmed()["job/J-2"]["details"]["notes"],
        "call first"
    );

    // Bad edits: 4xx naming the field, nothing changed.
    for (body, path) in [
        (
            json!({"window": {"start": "2026-03-02T15:00:00-03:00", "end": "2026-03-02T13:00:00-03:00"}}),
            "$.window.end",
        ),
        (
            json!({"window": {"start": "tomorrow", "end": "2026-03-02T13:00:00-03:00"}}),
            "$.window.start",
        ),
        (json!({"address": " "}), "$.address"),
        (json!({"notes": "x".repeat(4001)}), "$.notes"),
        (
            json!({"collect_serials": ["A", ""]}),
            "$.collect_serials[1]",
        ),
        (
            json!({"collect_serials": ["A", "a"]}),
            "$.collect_serials[1]",
        ),
        (json!({"booking_id": "bk_nope"}), "$.booking_id"),
        (json!({"colour": "red"}), "$.colour"),
        (json!({}), "$"),
    ] {
        let r = patch(&s, "/v1/jobs/J-1", d, &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.paths(), [path], "{body}");
    }
    assert!(ana.pull(&s).await.patch.is_empty());
    let r = patch(&s, "/v1/jobs/NOPE", d, &json!({"notes": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = patch(&s, "/v1/jobs/J-1", &w.keys["t1"], &json!({"notes": "x"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// RELIABILITY.md's conflict rule: a job cancelled while its technician completed it
/// offline keeps the technician's facts and goes to the dispatchers' queue.
async fn a_job_cancelled_while_completed_offline_keeps_the_facts_and_is_flagged(s: TestServer) {
    let w = setup(
        &s,
        &["t1"],
        &["c1"],
        &[("J-1", Some("c1"), Some("t1")), ("J-2", None, None)],
    )
    .await;
    let d = &w.dispatcher;
    let mut ana = Phone::new("ana", &w.keys["t1"]);
    ana.pull(&s).await;
    assert_eq!(ana.state.confirmed()["job/J-1"]["cancelled"], false);

    // Offline: the technician does the job; the phone cannot tell the server yet.
    ana.record("job_status", "s-1", "J-1", json!({"status": "en_route"}));
    ana.record("job_status", "s-2", "J-1", json!({"status": "completed"}));
    ana.record(
        "note",
        "n-1",
        "J-1",
        json!({"text": "installed, customer happy"}),
    );

    // Meanwhile the dispatcher cancels it (twice: the second call changes nothing).
    for _ in 0..2 {
        let r = s.post("/v1/jobs/J-1/cancel", Some(d), &json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["status"], "cancelled");
    }
    assert_eq!(
        s.get("/v1/jobs/J-1", Some(d)).await.json["status"],
        "cancelled"
    );

    // Back online: nothing is refused, every fact is kept once, the dispatchers see flags.
    ana.push(&s).await;
    let r = s.get("/v1/jobs/J-1/facts", Some(d)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["record"]["cancelled"], true);
    assert_eq!(r.json["record"]["status"], "completed");
    assert_eq!(
        r.json["record"]["facts"].as_array().unwrap().len(),
        3,
        "{}",
        r.json
    );
    let flags = open_flags(&s, d, "?job_id=J-1").await;
    assert_eq!(
        kinds(&flags),
        vec!["work_on_cancelled_job"; 3],
        "one flag per fact recorded on the cancelled job: {flags:?}"
    );
    // The phone hears of the cancellation and keeps its own work.
    ana.pull(&s).await;
    let view = &ana.state.confirmed()["job/J-1"];
    assert_eq!(view["cancelled"], true);
    assert_eq!(view["status"], "completed");
    assert_eq!(ana.state.pending().len(), 0);

    // Taken back: open again, and the phone shows it active.
    let r = s.post("/v1/jobs/J-1/reinstate", Some(d), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "open");
    ana.pull(&s).await;
    assert_eq!(ana.state.confirmed()["job/J-1"]["cancelled"], false);

    // A job never assigned is cancelled without any phone; unknown job, technician key.
    let r = s.post("/v1/jobs/J-2/cancel", Some(d), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "cancelled");
    let r = s.post("/v1/jobs/nope/cancel", Some(d), &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = s
        .post("/v1/jobs/J-1/cancel", Some(&w.keys["t1"]), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

async fn jobs_by_technician_are_those_assigned_or_pinned_to_them(s: TestServer) {
    let w = setup(
        &s,
        &["t1", "t2"],
        &[],
        &[
            ("J-1", None, Some("t1")),
            ("J-3", None, Some("t2")),
            ("J-4", None, None),
        ],
    )
    .await;
    let d = &w.dispatcher;
    let r = s
        .post("/v1/jobs", Some(d), &json!({"job": job("J-2", Some("t1"))}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let ids = |r: &Reply| -> Vec<String> {
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = s.get("/v1/jobs?technician=t1", Some(d)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids(&r), ["J-1", "J-2"]);
    assert_eq!(r.json["items"][0]["assigned_technician"], "t1");
    assert_eq!(
        ids(&s.get("/v1/jobs?technician_id=t1", Some(d)).await),
        ["J-1", "J-2"]
    );
    assert_eq!(
        ids(&s.get("/v1/jobs?technician=t2", Some(d)).await),
        ["J-3"]
    );
    assert_eq!(
        ids(&s.get("/v1/jobs", Some(d)).await),
        ["J-1", "J-2", "J-3", "J-4"]
    );
    // A technician key sees its own, whatever it asks for.
    let t1 = &w.keys["t1"];
    assert_eq!(ids(&s.get("/v1/jobs", Some(t1)).await), ["J-1", "J-2"]);
    assert_eq!(
        ids(&s.get("/v1/jobs?technician=t2", Some(t1)).await),
        ["J-1", "J-2"]
    );
    assert_eq!(s.get("/v1/jobs/J-1", Some(t1)).await.status, StatusCode::OK);
    assert_eq!(
        s.get("/v1/jobs/J-3", Some(t1)).await.status,
        StatusCode::NOT_FOUND
    );
    // Reassigned: it moves to the other list.
    assign(&s, d, "J-1", "t2").await;
    assert_eq!(
        ids(&s.get("/v1/jobs?technician=t1", Some(d)).await),
        ["J-2"]
    );
    assert_eq!(
        ids(&s.get("/v1/jobs?technician=t2", Some(d)).await),
        ["J-1", "J-3"]
    );
}

both_backends!(
    the_upsell_catalogue_checks_each_field_and_keeps_offered_products,
    offers_are_checked_against_the_catalogue_and_reported_per_technician_and_day,
    serials_are_checked_against_customers_equipment_and_flagged_never_dropped,
    status_facts_of_a_booked_job_reach_the_customer_exactly_once,
    failed_visits_reach_the_customer_or_the_dispatchers_and_refusals_keep_the_fact,
    a_dispatchers_edit_reaches_the_assigned_phone_at_its_next_pull,
    a_job_cancelled_while_completed_offline_keeps_the_facts_and_is_flagged,
    jobs_by_technician_are_those_assigned_or_pinned_to_them,
);
