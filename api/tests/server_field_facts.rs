//! What technicians record in the field reaching dispatchers and customers, with checks
//! (issue 8), each on SQLite and PostgreSQL over HTTP: the upsell catalogue, offers and
//! reports (and the day's KPIs); serials checked against customers' equipment and
//! flagged; the flag queue; job status facts of a booked job becoming the customer's
//! messages exactly once; a dispatcher's job edit reaching the phone; jobs by technician.
//! `despacho_mobile_sync`'s client state machine plays the phone.

mod common;
#[path = "common/world.rs"]
mod world;

use axum::http::{Method, StatusCode};
use common::*;
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
        .post("/v1/upsell-products", Some(d), &product("MESH-2", 1500, "monthly"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["billing"], "monthly");
    let r = s
        .post("/v1/upsell-products", Some(d), &product("MESH-2", 1500, "monthly"))
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
        .put("/v1/upsell-products/IPTV", Some(d), &product("OTHER", 1, "one_off"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$.code"]);
    // Technicians and chat bots may not change it.
    let r = s
        .post("/v1/upsell-products", Some(&w.keys["t1"]), &product("Y", 1, "one_off"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // PUT creates, then replaces.
    let r = s
        .put("/v1/upsell-products/IPTV", Some(d), &product("IPTV", 2990, "monthly"))
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
    ana.record("upsell_outcome", "", "J-1", offer("o-1", "MESH-2", 1500, "monthly", "accepted"));
    ana.record("upsell_outcome", "", "J-1", offer("o-2", "OUTLET", 5000, "one_off", "accepted"));
    ana.record("upsell_outcome", "", "J-1", offer("o-3", "IPTV-X", 2990, "monthly", "declined"));
    ana.push(&s).await;
    let mut bo = Phone::new("bo", &w.keys["t2"]);
    // Offered at a discount: counted at the price accepted, and flagged.
    bo.record("upsell_outcome", "", "J-2", offer("o-4", "MESH-2", 1000, "monthly", "accepted"));
    bo.record("upsell_outcome", "", "J-2", offer("o-5", "OUTLET", 5000, "one_off", "declined"));
    bo.push(&s).await;
    // A resent offer (a reinstall resends under a new mutation id) counts once.
    let mut again = Phone::new("bo-2", &w.keys["t2"]);
    again.record("upsell_outcome", "", "J-2", offer("o-4", "MESH-2", 1000, "monthly", "accepted"));
    again.push(&s).await;

    let flags = open_flags(&s, d, "").await;
    assert_eq!(kinds(&flags), ["unknown_upsell_product", "upsell_terms_differ"]);
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
        .get("/v1/reports/upsells?from=2026-03-02&to=2026-03-02&technician=t2", Some(d))
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
        let r = s.get(&format!("/v1/reports/upsells?{query}"), Some(d)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_eq!(r.paths(), [param], "{query}");
    }
    assert_eq!(
        s.get("/v1/reports/upsells?from=2026-03-02&to=2026-03-02", Some(&w.keys["t1"]))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // The day's KPIs carry the upsell figures, for the day and per technician.
    let r = s
        .post(
            "/v1/plans/2026-03-02/optimize",
            Some(d),
            &json!({"seconds": 1, "seed": 1}),
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

async fn serials_are_checked_against_customers_equipment_and_flagged_never_dropped(
    s: TestServer,
) {
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
        .put("/v1/customers/c2/equipment/RT-9", Some(d), &json!({"state": "installed"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The same device cannot be recorded at two customers.
    let r = s
        .put("/v1/customers/c1/equipment/rt-9", Some(d), &json!({"state": "installed"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "serial_at_another_customer");
    let r = s
        .put("/v1/customers/c1/equipment/X1", Some(d), &json!({"state": "lost"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$.state"]);
    let r = s
        .put("/v1/customers/nobody/equipment/X1", Some(d), &json!({"state": "installed"}))
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
    let unknown = flags.iter().find(|f| f["kind"] == "unknown_serial").unwrap();
    assert_eq!(unknown["job_id"], "RET-1");
    assert_eq!(unknown["flag"]["serial"], "GHOST-7");
    assert_eq!(unknown["flag"]["technician"], "t1");
    let elsewhere = flags
        .iter()
        .find(|f| f["kind"] == "serial_installed_elsewhere")
        .unwrap();
    assert_eq!(elsewhere["job_id"], "INS-3");
    assert_eq!(elsewhere["flag"]["recorded_customer"], "c2");
    let dup: Vec<&Value> = flags.iter().filter(|f| f["kind"] == "duplicate_serial").collect();
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
    ana.record("equipment", "e-6", "RET-1", serial("ZTE-0001 ", "collected"));
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
    assert!(!open_flags(&s, d, "")
        .await
        .iter()
        .any(|f| f["id"] == id));
    let resolved = open_flags(&s, d, "?status=resolved").await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["resolution"], "serial typed wrong; it is ZTE-0001");
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

both_backends!(
    the_upsell_catalogue_checks_each_field_and_keeps_offered_products,
    offers_are_checked_against_the_catalogue_and_reported_per_technician_and_day,
    serials_are_checked_against_customers_equipment_and_flagged_never_dropped,
);
