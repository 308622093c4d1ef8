//! Bad input is a clear 4xx naming the field — never a 500: malformed JSON, wrong
//! types, unknown fields, values the solver's rules refuse, wrong media types and
//! query strings, unknown routes. Each test runs on SQLite and PostgreSQL.

use crate::common::*;
use axum::http::{Method, StatusCode};
use despacho_api::server::Role;
use serde_json::{json, Value};

fn assert_4xx(r: &Reply, what: &str) {
    assert!(
        r.status.is_client_error(),
        "{what}: {} {}",
        r.status,
        r.text
    );
    assert!(r.code() != "", "{what}: no error code in {}", r.text);
}

async fn malformed_json_is_400_with_the_position(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    for body in [
        "{\"id\": ",
        "",
        "   ",
        "{\"id\": \"t\",}",
        "nul",
        "{\"a\":1} trailing",
        "\u{feff}{}",
    ] {
        let r = s
            .post_raw("/v1/technicians", admin, "application/json", body)
            .await;
        assert_4xx(&r, body);
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body:?}: {}", r.text);
        assert_eq!(r.code(), "malformed_json", "{body:?}");
    }
    // Invalid UTF-8 and absurd nesting are refused the same way.
    let r = s
        .call(
            Method::POST,
            "/v1/jobs",
            admin,
            Some(("application/json", vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'])),
        )
        .await;
    assert_4xx(&r, "invalid utf-8");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let r = s
        .post_raw("/v1/import/jobs", admin, "application/json", &deep)
        .await;
    assert_4xx(&r, "deep nesting");
    let r = s
        .post_raw(
            "/v1/technicians",
            admin,
            "application/json",
            r#"{"id": "t", "cost_per_hour": 1e999}"#,
        )
        .await;
    assert_4xx(&r, "number out of range");
}

async fn wrong_shapes_are_422_at_the_field(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let mut t = technician("t-1");
    t["van_capacity"] = json!("eight");
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("/v1/technicians", t, "$.van_capacity", "invalid_type"),
        (
            "/v1/technicians",
            {
                let mut t = technician("t");
                t["bogus"] = json!(1);
                t
            },
            "$.bogus",
            "unknown_field",
        ),
        (
            "/v1/technicians",
            {
                let mut t = technician("t");
                t.as_object_mut().unwrap().remove("home");
                t
            },
            "$.home",
            "missing_field",
        ),
        (
            "/v1/technicians",
            {
                let mut t = technician("t");
                t["shifts"][1]["start"] = json!("8am");
                t
            },
            "$.shifts[1].start",
            "invalid_value",
        ),
        (
            "/v1/technicians",
            {
                let mut t = technician("t");
                t["van_capacity"] = json!(-1);
                t
            },
            "$.van_capacity",
            "invalid_value",
        ),
        (
            "/v1/technicians",
            {
                let mut t = technician("t");
                t["skills"]["fiber splicing"] = json!(300);
                t
            },
            "$.skills[\"fiber splicing\"]",
            "invalid_value",
        ),
        (
            "/v1/technicians",
            json!([technician("t")]),
            "$",
            "invalid_type",
        ),
        ("/v1/technicians", json!("t"), "$", "invalid_type"),
        (
            "/v1/jobs",
            json!({"job": {"id": "j", "kind": "teleport"}}),
            "$.job.kind",
            "unknown_variant",
        ),
        (
            "/v1/jobs",
            json!({"job": job("j", None), "extra": true}),
            "$.extra",
            "unknown_field",
        ),
        (
            "/v1/jobs",
            {
                let mut j = job("j", None);
                j["windows"][0]["end"] = json!("tomorrow");
                json!({"job": j})
            },
            "$.job.windows[0].end",
            "invalid_value",
        ),
        (
            "/v1/customers",
            json!({"name": "A", "lat": "north", "lon": 0}),
            "$.lat",
            "invalid_type",
        ),
        (
            "/v1/api-keys",
            json!({"name": "A", "role": 3}),
            "$.role",
            "invalid_type",
        ),
        ("/v1/import/jobs", json!({"jobs": []}), "$", "invalid_type"),
    ];
    for (path, body, at, code) in cases {
        let r = s.post(path, admin, &body).await;
        assert_4xx(&r, &body.to_string());
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.code(), "invalid_body", "{body}");
        assert_eq!(r.paths(), [at], "{body}: {}", r.text);
        assert_eq!(
            r.json["error"]["details"][0]["code"], code,
            "{body}: {}",
            r.text
        );
    }
}

async fn an_invalid_technician_gets_every_problem_with_its_path(s: TestServer) {
    let mut t = technician("t-1");
    t["home"]["lat"] = json!(123.0);
    t["skills"]["fiber_splicing"] = json!(9);
    t["shifts"][0]["end"] = json!("07:00:00");
    t["shifts"][1]["date"] = json!("2026-03-02");
    t["cost_per_km"] = json!(-1.0);
    let r = s.post("/v1/technicians", Some(&s.admin_key), &t).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.code(), "validation_failed");
    let mut paths = r.paths();
    paths.sort();
    let mut expected = vec![
        "$.home.lat",
        "$.skills.fiber_splicing",
        "$.shifts[0].end",
        "$.shifts[1].date",
        "$.cost_per_km",
    ];
    expected.sort();
    assert_eq!(paths, expected, "{}", r.text);
    // Nothing was stored.
    assert_eq!(
        s.get("/v1/technicians/t-1", Some(&s.admin_key))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // PUT checks the same, and the id in the body must be the URL's.
    let r = s
        .put(
            "/v1/technicians/t-2",
            Some(&s.admin_key),
            &technician("t-1"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$.id"]);
}

async fn an_invalid_job_gets_every_problem_with_its_path(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let mut j = job("j-1", Some("ghost"));
    j["windows"][0]["end"] = json!("2026-03-02T07:00:00-03:00");
    j["priority"] = json!(11);
    j["duration_minutes"] = json!(0);
    j["after_job"] = json!("nope");
    let r = s
        .post(
            "/v1/jobs",
            admin,
            &json!({"customer_id": "cus-x", "job": j}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut paths = r.paths();
    paths.sort();
    assert_eq!(
        paths,
        [
            "$.customer_id",
            "$.job.after_job",
            "$.job.duration_minutes",
            "$.job.pinned_technician",
            "$.job.priority",
            "$.job.windows[0].end",
        ],
        "{}",
        r.text
    );
}

async fn invalid_customers_and_settings_are_422(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let r = s
        .post(
            "/v1/customers",
            admin,
            &json!({"id": "has space", "name": "", "phone": "11 9999", "email": "no-at", "lat": 91, "lon": -181, "time_zone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut paths = r.paths();
    paths.sort();
    assert_eq!(
        paths,
        [
            "$.email",
            "$.id",
            "$.lat",
            "$.lon",
            "$.name",
            "$.phone",
            "$.time_zone"
        ]
    );

    let r = s
        .put("/v1/settings", admin, &json!({"time_zone": "Nowhere/City"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.paths(), ["$.time_zone"]);
    let r = s
        .put(
            "/v1/settings",
            admin,
            &json!({"time_zone": "UTC", "travel": {"mode": "great_circle", "detour_factor": 0.2}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.paths()[0].starts_with("$.travel"), "{}", r.text);
}

async fn other_media_types_and_bad_queries_are_refused(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let r = s
        .post_raw("/v1/technicians", admin, "text/plain", "{}")
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.code(), "unsupported_media_type");
    let r = s
        .post_raw("/v1/import/technicians", admin, "text/csv", "id\nt")
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for q in ["limit=abc", "limit=0", "limit=100000", "limit=-1"] {
        let r = s.get(&format!("/v1/jobs?{q}"), admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
        assert_eq!(r.code(), "invalid_query");
    }
    // A body larger than the limit.
    let big = format!("[{}]", vec!["1"; 9_000_000].join(","));
    let r = s
        .post_raw("/v1/import/jobs", admin, "application/json", &big)
        .await;
    assert_eq!(
        r.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        &r.text[..r.text.len().min(200)]
    );
}

async fn unknown_routes_and_methods_answer_json(s: TestServer) {
    let r = s.get("/v1/nothing-here", Some(&s.admin_key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    let r = s
        .call(Method::PATCH, "/v1/jobs", Some(&s.admin_key), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    let r = s.get("/v1/customers/nobody", Some(&s.admin_key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

/// Issue 24: a NUL (or an ANSI escape) in any string field was a 500 on PostgreSQL and
/// stored as is on SQLite; now a 422 `control_character` naming every field, nothing stored.
async fn nul_and_control_characters_in_strings_are_422_naming_the_field(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let mut bad = technician("tech-nul");
    bad["name"] = json!("Ana\u{0}");
    let r = s.post("/v1/technicians", admin, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.code(), "invalid_body");
    assert_eq!(r.paths(), ["$.name"], "{}", r.text);
    assert_eq!(
        s.get("/v1/technicians/tech-nul", admin).await.status,
        StatusCode::NOT_FOUND
    );

    let mut escape = customer(Some("cus-esc"));
    escape["name"] = json!("\u{1b}[31mRed");
    let r = s.post("/v1/customers", admin, &escape).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.name"], "{}", r.text);

    // An import names the record; a CSV names the row and column.
    let mut nul_job = job("job-nul", None);
    nul_job["id"] = json!("job\u{0}");
    let r = s
        .post(
            "/v1/import/jobs",
            admin,
            &json!([job("job-ok", None), nul_job]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$[1].id"], "{}", r.text);
    let csv = "id,kind,lat,lon,duration_minutes,window_start,window_end\n\
               job\u{7}x,repair,-23.5,-46.6,30,2026-12-08T08:00:00-03:00,2026-12-08T12:00:00-03:00\n";
    let r = s.post_raw("/v1/import/jobs", admin, "text/csv", csv).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$[0].id"], "{}", r.text);
    assert_eq!(
        s.get("/v1/jobs/job-ok", admin).await.status,
        StatusCode::NOT_FOUND
    );

    // Tabs and line breaks stay allowed in text.
    let mut multi_line = technician("tech-lines");
    multi_line["name"] = json!("Ana\tSilva");
    let r = s.post("/v1/technicians", admin, &multi_line).await;
    assert!(r.status.is_success(), "{}", r.text);
}

/// Issue 26: `%00` in a path id was a 500 on PostgreSQL.
async fn control_characters_in_path_ids_are_400(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    for path in [
        "/v1/technicians/a%00b",
        "/v1/jobs/%1B%5B31m",
        "/v1/customers/x%7F",
    ] {
        let r = s.get(path, admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.code(), "invalid_path", "{path}");
        let r = s.delete(path, admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
    }
    // Ordinary escapes still reach the handler.
    let r = s.get("/v1/technicians/no%20one", admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

/// Issue 26, "ids without limits": one id rule (1–100 of letters, digits, `._:-`) for
/// technicians, jobs, customers and territories, in single requests and imports; names,
/// addresses and any other text have limits. A 10 MB id was stored on SQLite and a 500
/// on PostgreSQL; now nothing is stored and the field is named.
async fn ids_follow_one_rule_and_texts_have_limits(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let huge = "x".repeat(10 * 1024 * 1024);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!("tech 3"), "$.id", "invalid_id"),
        (json!("técnico"), "$.id", "invalid_id"),
        (json!("t".repeat(101)), "$.id", "invalid_id"),
        (json!(""), "$.id", "empty_id"),
        (json!(huge), "$.id", "too_long"),
    ];
    for (id, path, code) in cases {
        let mut t = technician("ok");
        t["id"] = id.clone();
        let r = s.post("/v1/technicians", admin, &t).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            &r.text[..r.text.len().min(300)]
        );
        assert_eq!(r.paths(), [path]);
        assert_eq!(r.json["error"]["details"][0]["code"], code);
        assert!(r.text.len() < 2000, "the answer does not echo the id");
    }
    let mut long_name = technician("tech-long-name");
    long_name["name"] = json!("N".repeat(201));
    long_name["home"]["address"] = json!("A".repeat(501));
    let r = s.post("/v1/technicians", admin, &long_name).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut paths = r.paths();
    paths.sort();
    assert_eq!(paths, ["$.home.address", "$.name"], "{}", r.text);

    // Imports name the record; a 10 MB string anywhere is refused, not a 500.
    let mut spaced = job("job 2", None);
    spaced["id"] = json!("job 2");
    let r = s
        .post(
            "/v1/import/jobs",
            admin,
            &json!([job("job-1", None), spaced]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$[1].id"], "{}", r.text);
    let mut big = technician("tech-big");
    big["name"] = json!(huge);
    let r = s.post("/v1/import/technicians", admin, &json!([big])).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        &r.text[..r.text.len().min(300)]
    );
    assert_eq!(r.paths(), ["$[0].name"]);
    let mut t = technician("tech-ok");
    t["id"] = json!("tech:ok.1_a-b");
    assert_eq!(
        s.post("/v1/technicians", admin, &t).await.status,
        StatusCode::CREATED
    );
    let r = s.get("/v1/technicians", admin).await;
    assert_eq!(
        r.json["items"].as_array().unwrap().len(),
        1,
        "only the valid one is stored"
    );
    let r = s.get("/v1/jobs", admin).await;
    assert!(r.json["items"].as_array().unwrap().is_empty(), "{}", r.text);

    // Territories follow the same rule, and their outlines have limits.
    let square = json!({"type": "Polygon", "coordinates": [[[-46.7, -23.6], [-46.6, -23.6], [-46.6, -23.5], [-46.7, -23.5], [-46.7, -23.6]]]});
    let r = s
        .post(
            "/v1/territories",
            admin,
            &json!({"id": "zona sul", "name": "Sul", "area": square}),
        )
        .await;
    assert_eq!(r.paths(), ["$.id"], "{}", r.text);
    let bow_tie = json!({"type": "Polygon", "coordinates": [[[-46.7, -23.6], [-46.6, -23.5], [-46.6, -23.6], [-46.7, -23.5], [-46.7, -23.6]]]});
    let r = s
        .post(
            "/v1/territories",
            admin,
            &json!({"id": "sul", "name": "Sul", "area": bow_tie}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.area.coordinates[0]"], "{}", r.text);
    assert!(r.text.contains("crosses itself"), "{}", r.text);
}

/// Issue 26, "unknown fields": the slot search and the sync envelope answered a typo
/// with silence; now 422 `unknown_field` naming it, as every other route.
async fn unknown_fields_in_slot_searches_and_sync_messages_are_422(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    assert_eq!(
        s.post("/v1/technicians", admin, &technician("t1"))
            .await
            .status,
        StatusCode::CREATED
    );
    let search = json!({
        "place": {"lat": -23.55, "lon": -46.63},
        "kind": "repair",
        "duration_minutes": 60,
        "earliest_day": "2026-03-02",
        "days": 1,
        "window_minute": 60
    });
    let r = s.post("/v1/slots/search", admin, &search).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.window_minute"], "{}", r.text);
    assert_eq!(r.json["error"]["details"][0]["code"], "unknown_field");

    let key = s.key(Role::Technician, Some("t1")).await.1;
    let push = json!({"schema_version": 1, "sent_at": "now",
        "message": {"client_id": "phone-1", "mutations": [], "battery": 80}});
    let r = s.post("/v1/sync/push", Some(&key), &push).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut paths = r.paths();
    paths.sort();
    assert_eq!(paths, ["$.message.battery", "$.sent_at"], "{}", r.text);
    let pull = json!({"schema_version": 1, "message": {"client_id": "phone-1", "cookei": null}});
    let r = s.post("/v1/sync/pull", Some(&key), &pull).await;
    assert_eq!(r.paths(), ["$.message.cookei"], "{}", r.text);
    // Well-formed messages still sync.
    let pull = json!({"schema_version": 1, "message": {"client_id": "phone-1"}});
    assert_eq!(
        s.post("/v1/sync/pull", Some(&key), &pull).await.status,
        StatusCode::OK
    );
}

/// Issue 26, "messages that mislead": invalid UTF-8, NaN, a whole body of the wrong
/// kind, a sync `schema_version` of the wrong type, a search of days nobody works, and
/// a shift in a DST gap each get a message that says what is wrong and where.
async fn refusals_say_what_is_wrong_and_where(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let r = s
        .call(
            Method::POST,
            "/v1/technicians",
            admin,
            Some((
                "application/json",
                b"{\"id\": \"t1\", \"name\": \"Ana \xff\"}".to_vec(),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.code(), "invalid_utf8");
    assert_eq!(r.paths(), ["$.name"], "{}", r.text);
    assert!(r.text.contains("not valid UTF-8"), "{}", r.text);

    let r = s
        .post_raw(
            "/v1/jobs",
            admin,
            "application/json",
            r#"{"job": {"id": "j", "place": {"lat": NaN, "lon": 1}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.paths(), ["$.job.place.lat"], "{}", r.text);
    assert!(r.text.contains("`NaN` is not a JSON number"), "{}", r.text);

    let r = s.post("/v1/import/jobs", admin, &json!({"jobs": []})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$"], "{}", r.text);
    assert!(!r.text.contains("[?]"), "{}", r.text);

    assert_eq!(
        s.post("/v1/technicians", admin, &technician("t1"))
            .await
            .status,
        StatusCode::CREATED
    );
    let key = s.key(Role::Technician, Some("t1")).await.1;
    let r = s
        .post(
            "/v1/sync/pull",
            Some(&key),
            &json!({"schema_version": "1", "message": {"client_id": "p"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.paths(), ["$.schema_version"], "{}", r.text);

    // Nobody works on those days: not "no skilled technician".
    let search = json!({
        "place": {"lat": -23.55, "lon": -46.63},
        "kind": "repair",
        "duration_minutes": 60,
        "required_skills": {"fiber_splicing": 1},
        "earliest_day": "2020-01-06",
        "days": 3
    });
    let r = s.post("/v1/slots/search", admin, &search).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "no_working_day", "{}", r.text);

    // A shift at a time the clocks skip (Lisbon, 29 March 2026, 01:00 → 02:00).
    let settings = json!({"time_zone": "Europe/Lisbon"});
    assert_eq!(
        s.put("/v1/settings", admin, &settings).await.status,
        StatusCode::OK
    );
    let mut t = technician("t-dst");
    t["home"] = json!({"lat": 38.72, "lon": -9.14});
    t["shifts"] = json!([{"date": "2026-03-29", "start": "01:30:00", "end": "09:00:00"}]);
    let r = s.post("/v1/technicians", admin, &t).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.shifts[0].start"], "{}", r.text);
    assert_eq!(
        r.json["error"]["details"][0]["code"],
        "nonexistent_local_time"
    );
    // The repeated hour of October is accepted (the earlier instant).
    t["shifts"] = json!([{"date": "2026-10-25", "start": "01:30:00", "end": "09:00:00"}]);
    assert_eq!(
        s.post("/v1/technicians", admin, &t).await.status,
        StatusCode::CREATED
    );
}

both_backends!(
    ids_follow_one_rule_and_texts_have_limits,
    unknown_fields_in_slot_searches_and_sync_messages_are_422,
    refusals_say_what_is_wrong_and_where,
    malformed_json_is_400_with_the_position,
    wrong_shapes_are_422_at_the_field,
    an_invalid_technician_gets_every_problem_with_its_path,
    an_invalid_job_gets_every_problem_with_its_path,
    invalid_customers_and_settings_are_422,
    other_media_types_and_bad_queries_are_refused,
    unknown_routes_and_methods_answer_json,
    nul_and_control_characters_in_strings_are_422_naming_the_field,
    control_characters_in_path_ids_are_400,
);
