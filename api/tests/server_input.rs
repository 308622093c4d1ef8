//! Bad input is a clear 4xx naming the field — never a 500: malformed JSON, wrong
//! types, unknown fields, values the solver's rules refuse, wrong media types and
//! query strings, unknown routes. Each test runs on SQLite and PostgreSQL.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
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

both_backends!(
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
