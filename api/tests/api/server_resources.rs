//! Round trips of the resources (what is stored is what is read back), pages, conflicts,
//! and bulk imports that are all or nothing. Each test runs on SQLite and PostgreSQL.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

fn ids(r: &Reply) -> Vec<String> {
    r.json["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", r.text))
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn count(s: &TestServer, path: &str) -> usize {
    let r = s
        .get(&format!("{path}?limit=1000"), Some(&s.admin_key))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    ids(&r).len()
}

async fn technicians_round_trip(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let t = technician("t-1");
    let created = s.post("/v1/technicians", admin, &t).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["technician"], t);

    let read = s.get("/v1/technicians/t-1", admin).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json, created.json);

    let again = s.post("/v1/technicians", admin, &t).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_exists");

    let mut changed = t.clone();
    changed["name"] = json!("Joana Lima");
    changed["skills"]["iptv"] = json!(1);
    let replaced = s.put("/v1/technicians/t-1", admin, &changed).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    let read = s.get("/v1/technicians/t-1", admin).await;
    assert_eq!(read.json["technician"], changed);
    assert_eq!(read.json["created_at"], created.json["created_at"]);

    let put_new = s
        .put("/v1/technicians/t-2", admin, &technician("t-2"))
        .await;
    assert_eq!(put_new.status, StatusCode::CREATED);

    let r = s.delete("/v1/technicians/t-2", admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.get("/v1/technicians/t-2", admin).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.delete("/v1/technicians/t-2", admin).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_technician_with_pinned_jobs_cannot_be_deleted(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    assert_eq!(
        s.post("/v1/technicians", admin, &technician("t-1"))
            .await
            .status,
        201
    );
    assert_eq!(
        s.post("/v1/jobs", admin, &json!({"job": job("j-1", Some("t-1"))}))
            .await
            .status,
        201
    );
    let r = s.delete("/v1/technicians/t-1", admin).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "technician_in_use");
    assert_eq!(
        s.get("/v1/technicians/t-1", admin).await.status,
        StatusCode::OK
    );
}

async fn lists_come_in_pages_by_id(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    for id in ["t-3", "t-1", "t-5", "t-2", "t-4"] {
        assert_eq!(
            s.post("/v1/technicians", admin, &technician(id))
                .await
                .status,
            201
        );
    }
    let mut seen = Vec::new();
    let mut path = "/v1/technicians?limit=2".to_owned();
    loop {
        let r = s.get(&path, admin).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.extend(ids(&r));
        match r.json["next_after"].as_str() {
            Some(after) => path = format!("/v1/technicians?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, ["t-1", "t-2", "t-3", "t-4", "t-5"]);
}

async fn customers_round_trip(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let r = s.post("/v1/customers", admin, &customer(Some("c-1"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["id"], "c-1");
    assert_eq!(r.json["phone"], "+5511912345678");
    let read = s.get("/v1/customers/c-1", admin).await;
    assert_eq!(read.json, r.json);

    let made_up = s.post("/v1/customers", admin, &customer(None)).await;
    assert_eq!(made_up.status, StatusCode::CREATED);
    assert!(
        made_up.json["id"].as_str().unwrap().starts_with("cus_"),
        "{}",
        made_up.text
    );

    let again = s.post("/v1/customers", admin, &customer(Some("c-1"))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(count(&s, "/v1/customers").await, 2);

    // The chat bot reads a customer back.
    let (_, bot) = s.key(despacho_api::server::Role::Chatbot, None).await;
    assert_eq!(s.get("/v1/customers/c-1", Some(&bot)).await.json, r.json);
}

async fn jobs_round_trip(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    assert_eq!(
        s.post("/v1/customers", admin, &customer(Some("c-1")))
            .await
            .status,
        201
    );
    let mut j = job("j-1", None);
    j["sla_due"] = json!("2026-03-02T12:00:00-03:00");
    j["equipment"] = json!({"deliver": 1, "collect": 0});
    let r = s
        .post("/v1/jobs", admin, &json!({"customer_id": "c-1", "job": j}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["status"], "open");
    assert_eq!(r.json["customer_id"], "c-1");
    // Defaults are filled in (tier, priority…), the rest is as sent.
    let stored = &r.json["job"];
    for (k, v) in j.as_object().unwrap() {
        assert_eq!(&stored[k], v, "{k}");
    }
    assert_eq!(stored["tier"], "residential");

    let read = s.get("/v1/jobs/j-1", admin).await;
    assert_eq!(read.json, r.json);

    assert_eq!(
        s.post("/v1/jobs", admin, &json!({"job": job("j-2", None)}))
            .await
            .status,
        201
    );
    let r = s.get("/v1/jobs?customer_id=c-1", admin).await;
    assert_eq!(ids(&r), ["j-1"]);

    let again = s
        .post("/v1/jobs", admin, &json!({"job": job("j-1", None)}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.paths(), ["$.job.id"]);
}

async fn settings_round_trip_and_apply_to_places(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let r = s.get("/v1/settings", admin).await;
    assert_eq!(r.json["time_zone"], "UTC");
    assert_eq!(r.json["travel"]["mode"], "great_circle");

    let sp = json!({"time_zone": "America/Sao_Paulo", "travel": {"mode": "great_circle", "detour_factor": 1.5, "profile": "suburban"}});
    let r = s.put("/v1/settings", admin, &sp).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let read = s.get("/v1/settings", admin).await;
    assert_eq!(read.json["time_zone"], "America/Sao_Paulo");
    assert_eq!(read.json["travel"]["detour_factor"], 1.5);
    assert_eq!(read.json["repair_reserve"], 0.1, "the default reserve");
    assert_eq!(read.json, r.json);

    // The repair reserve: kept when valid, refused by name when not.
    let mut reserve = sp.clone();
    reserve["repair_reserve"] = json!(0.25);
    let r = s.put("/v1/settings", admin, &reserve).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        s.get("/v1/settings", admin).await.json["repair_reserve"],
        0.25
    );
    for bad in [json!(1.0), json!(-0.1)] {
        reserve["repair_reserve"] = bad;
        let r = s.put("/v1/settings", admin, &reserve).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.paths(), ["$.repair_reserve"]);
    }
    assert_eq!(
        s.get("/v1/settings", admin).await.json["repair_reserve"],
        0.25
    );

    // With a user matrix, every place must name its row.
    let matrix = json!({"time_zone": "UTC", "travel": {"mode": "matrix", "locations": ["a", "b"],
        "durations_s": [[0, 60], [60, 0]], "distances_m": [[0, 900], [900, 0]]}});
    assert_eq!(
        s.put("/v1/settings", admin, &matrix).await.status,
        StatusCode::OK
    );
    let r = s.post("/v1/technicians", admin, &technician("t-1")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.home.location_id"]);
    let mut t = technician("t-1");
    t["home"]["location_id"] = json!("a");
    assert_eq!(
        s.post("/v1/technicians", admin, &t).await.status,
        StatusCode::CREATED
    );
}

async fn importing_technicians_creates_and_replaces_all_or_nothing(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let r = s
        .post(
            "/v1/import/technicians",
            admin,
            &json!([technician("t-1"), technician("t-2")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"created": 2, "updated": 0}));

    let mut t1 = technician("t-1");
    t1["name"] = json!("Renamed");
    let r = s
        .post(
            "/v1/import/technicians",
            admin,
            &json!([t1, technician("t-3")]),
        )
        .await;
    assert_eq!(r.json, json!({"created": 1, "updated": 1}));
    assert_eq!(
        s.get("/v1/technicians/t-1", admin).await.json["technician"]["name"],
        "Renamed"
    );

    // One bad record (and a duplicate id): nothing is written, every problem listed.
    let mut bad = technician("t-5");
    bad["shifts"][0]["end"] = json!("06:00:00");
    let r = s
        .post(
            "/v1/import/technicians",
            admin,
            &json!([technician("t-4"), bad, technician("t-4")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$[2].id", "$[1].shifts[0].end"], "{}", r.text);
    assert!(
        r.text.contains("$[0]"),
        "the duplicate names the first record: {}",
        r.text
    );
    assert_eq!(count(&s, "/v1/technicians").await, 3);

    // Shape problems of several records are all listed too.
    let r = s
        .post(
            "/v1/import/technicians",
            admin,
            &json!([{"id": 1}, technician("t-9"), {"id": "x", "home": {}}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$[0].id", "$[2].home.lat"], "{}", r.text);
    let r = s.post("/v1/import/technicians", admin, &json!([])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(count(&s, "/v1/technicians").await, 3);
}

async fn importing_jobs_is_all_or_nothing(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    assert_eq!(
        s.post("/v1/technicians", admin, &technician("t-1"))
            .await
            .status,
        201
    );
    assert_eq!(
        s.post("/v1/jobs", admin, &json!({"job": job("j-0", None)}))
            .await
            .status,
        201
    );

    let mut late = job("j-3", None);
    late["windows"][0]["start"] = json!("2026-03-02T12:00:00-03:00");
    let batch = json!([
        job("j-0", None), // already stored
        job("j-1", Some("t-1")),
        job("j-2", Some("ghost")),
        late,             // window ends before it starts
        job("j-1", None), // duplicate in the batch
    ]);
    let r = s.post("/v1/import/jobs", admin, &batch).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.paths(),
        [
            "$[0].id",
            "$[2].pinned_technician",
            "$[3].windows[0].end",
            "$[4].id"
        ],
        "{}",
        r.text
    );
    assert_eq!(count(&s, "/v1/jobs").await, 1);

    let r = s
        .post(
            "/v1/import/jobs",
            admin,
            &json!([job("j-1", Some("t-1")), job("j-2", None)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"created": 2, "updated": 0}));
    assert_eq!(count(&s, "/v1/jobs").await, 3);
}

const CSV_HEADER: &str =
    "id,kind,lat,lon,duration_minutes,window_start,window_end,priority,required_skills";

async fn importing_jobs_from_csv(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let csv = format!(
        "{CSV_HEADER}\n\
         c-1,installation,-23.55,-46.63,90,2026-03-02T08:00:00-03:00,2026-03-02T10:00:00-03:00,7,fiber_splicing:2;pppoe:1\n\
         c-2,repair,-23.56,-46.64,45,2026-03-02T10:00:00-03:00,2026-03-02T12:00:00-03:00,,\n\
         \"c-3\",equipment_return,-23.57,-46.65,15,2026-03-03T14:00:00-03:00,2026-03-03T16:00:00-03:00,3,\n"
    );
    let r = s.post_raw("/v1/import/jobs", admin, "text/csv", &csv).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["created"], 3);
    let j = s.get("/v1/jobs/c-1", admin).await.json;
    assert_eq!(
        j["job"]["required_skills"],
        json!({"fiber_splicing": 2, "pppoe": 1})
    );
    assert_eq!(j["job"]["priority"], 7);
    assert_eq!(j["job"]["kind"], "installation");
    assert_eq!(
        s.get("/v1/jobs/c-2", admin).await.json["job"]["priority"],
        5
    );

    // Every bad cell, by row and column; nothing written.
    let bad = format!(
        "{CSV_HEADER}\n\
         d-1,teleport,-23.55,-46.63,90,2026-03-02T08:00:00-03:00,2026-03-02T10:00:00-03:00,,\n\
         d-2,repair,north,-46.64,45,2026-03-02T10:00:00-03:00,2026-03-02 12:00,,pppoe\n\
         d-3,repair,-23.57,-46.65,15,2026-03-03T14:00:00-03:00,2026-03-03T16:00:00-03:00\n"
    );
    let r = s.post_raw("/v1/import/jobs", admin, "text/csv", &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.paths(),
        [
            "$[0].kind",
            "$[1].lat",
            "$[1].window_end",
            "$[1].required_skills",
            "$[2]"
        ],
        "{}",
        r.text
    );
    assert!(r.text.contains("line 3"), "{}", r.text);

    // Rules of the solver, too: a window that ends before it starts.
    let rule = format!("{CSV_HEADER}\ne-1,repair,-23.55,-46.63,90,2026-03-02T10:00:00-03:00,2026-03-02T08:00:00-03:00,,\n");
    let r = s
        .post_raw("/v1/import/jobs", admin, "text/csv", &rule)
        .await;
    assert_eq!(r.paths(), ["$[0].windows[0].end"], "{}", r.text);

    let r = s
        .post_raw(
            "/v1/import/jobs",
            admin,
            "text/csv",
            "id,kind,colour\nx,repair,red\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let codes: Vec<&str> = r.json["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"unknown_column") && codes.contains(&"missing_column"),
        "{}",
        r.text
    );
    assert_eq!(count(&s, "/v1/jobs").await, 3);
}

async fn concurrent_writes_all_succeed(s: TestServer) {
    // Writers take the write lock at BEGIN (SQLite) or retry (PostgreSQL): none fails.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let router = s.router.clone();
        let key = s.admin_key.clone();
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let (path, body): (&str, Value) = if i % 2 == 0 {
                ("/v1/technicians", technician(&format!("t-{i}")))
            } else {
                ("/v1/customers", customer(Some(&format!("c-{i}"))))
            };
            let request = axum::http::Request::post(path)
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            router.oneshot(request).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    assert_eq!(count(&s, "/v1/technicians").await, 12);
    assert_eq!(count(&s, "/v1/customers").await, 12);
}

async fn a_failed_write_transaction_leaves_nothing(s: TestServer) {
    use despacho_api::server::{catalog::customers, ApiError};
    let db = &s.state.db;
    let c = |id: &str| customers::Customer {
        id: id.to_owned(),
        name: "Ana".to_owned(),
        phone: None,
        email: None,
        lat: -23.5,
        lon: -46.6,
        address: None,
        time_zone: None,
        language: None,
        preferred_channel: None,
        opt_out: Default::default(),
        created_at: despacho_api::server::store::db::now(),
    };
    let (first, second) = (c("c-1"), c("c-2"));
    let outcome: Result<(), ApiError> = db
        .write(move |tx| {
            let (first, second) = (first.clone(), second.clone());
            Box::pin(async move {
                assert!(customers::insert(tx, &first).await?);
                assert!(customers::insert(tx, &second).await?);
                Err(ApiError::conflict("changed_my_mind", "roll back"))
            })
        })
        .await;
    assert!(matches!(
        outcome,
        Err(ApiError::Conflict {
            code: "changed_my_mind",
            ..
        })
    ));
    assert_eq!(count(&s, "/v1/customers").await, 0);

    let third = c("c-3");
    let stored = db
        .write(move |tx| {
            let third = third.clone();
            Box::pin(async move { Ok(customers::insert(tx, &third).await?) })
        })
        .await
        .unwrap();
    assert!(stored);
    assert_eq!(db.customer("c-3").await.unwrap().unwrap().name, "Ana");
}

both_backends!(
    a_failed_write_transaction_leaves_nothing,
    technicians_round_trip,
    a_technician_with_pinned_jobs_cannot_be_deleted,
    lists_come_in_pages_by_id,
    customers_round_trip,
    jobs_round_trip,
    settings_round_trip_and_apply_to_places,
    importing_technicians_creates_and_replaces_all_or_nothing,
    importing_jobs_is_all_or_nothing,
    importing_jobs_from_csv,
    concurrent_writes_all_succeed,
);
