//! Who may do what: every role against a representative endpoint of each kind, missing,
//! unknown and revoked keys, API key management, and a technician seeing only their own
//! jobs. Each test runs on SQLite and PostgreSQL.

use crate::common::*;
use axum::http::{header, Method, StatusCode};
use despacho_api::server::Role;
use serde_json::{json, Value};

/// The body of a request, made fresh per call (ids must not collide).
type MakeBody = fn(usize) -> Option<Value>;

struct Case {
    method: Method,
    path: &'static str,
    body: MakeBody,
    allowed: &'static [Role],
    success: StatusCode,
}

fn no_body(_: usize) -> Option<Value> {
    None
}

fn cases() -> Vec<Case> {
    use Role::*;
    vec![
        Case {
            method: Method::GET,
            path: "/v1/api-keys",
            body: no_body,
            allowed: &[Admin],
            success: StatusCode::OK,
        },
        Case {
            method: Method::POST,
            path: "/v1/api-keys",
            body: |n| Some(json!({"name": format!("k{n}"), "role": "chatbot"})),
            allowed: &[Admin],
            success: StatusCode::CREATED,
        },
        Case {
            method: Method::GET,
            path: "/v1/settings",
            body: no_body,
            allowed: &[Admin, Dispatcher, Chatbot],
            success: StatusCode::OK,
        },
        Case {
            method: Method::PUT,
            path: "/v1/settings",
            body: |_| Some(json!({"time_zone": "America/Sao_Paulo"})),
            allowed: &[Admin, Dispatcher],
            success: StatusCode::OK,
        },
        Case {
            method: Method::POST,
            path: "/v1/technicians",
            body: |n| Some(technician(&format!("new-{n}"))),
            allowed: &[Admin, Dispatcher],
            success: StatusCode::CREATED,
        },
        Case {
            method: Method::GET,
            path: "/v1/technicians",
            body: no_body,
            allowed: &[Admin, Dispatcher, Technician],
            success: StatusCode::OK,
        },
        Case {
            method: Method::POST,
            path: "/v1/customers",
            body: |_| Some(customer(None)),
            allowed: &[Admin, Dispatcher, Chatbot],
            success: StatusCode::CREATED,
        },
        Case {
            method: Method::GET,
            path: "/v1/customers",
            body: no_body,
            allowed: &[Admin, Dispatcher],
            success: StatusCode::OK,
        },
        Case {
            method: Method::POST,
            path: "/v1/jobs",
            body: |n| Some(json!({"job": job(&format!("new-{n}"), None)})),
            allowed: &[Admin, Dispatcher],
            success: StatusCode::CREATED,
        },
        Case {
            method: Method::GET,
            path: "/v1/jobs",
            body: no_body,
            allowed: &[Admin, Dispatcher, Technician],
            success: StatusCode::OK,
        },
        Case {
            method: Method::POST,
            path: "/v1/import/technicians",
            body: |n| Some(json!([technician(&format!("imp-{n}"))])),
            allowed: &[Admin, Dispatcher],
            success: StatusCode::OK,
        },
        Case {
            method: Method::POST,
            path: "/v1/import/jobs",
            body: |n| Some(json!([job(&format!("imp-{n}"), None)])),
            allowed: &[Admin, Dispatcher],
            success: StatusCode::OK,
        },
    ]
}

async fn every_role_gets_exactly_its_endpoints(s: TestServer) {
    let admin = s.admin_key.clone();
    assert_eq!(
        s.post("/v1/technicians", Some(&admin), &technician("t-1"))
            .await
            .status,
        201
    );
    let mut keys = vec![(Role::Admin, admin.clone())];
    for (role, tech) in [
        (Role::Dispatcher, None),
        (Role::Chatbot, None),
        (Role::Technician, Some("t-1")),
    ] {
        keys.push((role, s.key(role, tech).await.1));
    }
    let mut n = 0;
    for case in cases() {
        for (role, key) in &keys {
            n += 1;
            let body =
                (case.body)(n).map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
            let r = s
                .call(case.method.clone(), case.path, Some(key), body)
                .await;
            let expected = if case.allowed.contains(role) {
                case.success
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(
                r.status, expected,
                "{role} {} {}: {}",
                case.method, case.path, r.text
            );
            if expected == StatusCode::FORBIDDEN {
                assert_eq!(r.code(), "forbidden");
            }
        }
    }
}

async fn missing_unknown_or_malformed_keys_are_401(s: TestServer) {
    for case in cases() {
        for auth in [
            None,
            Some("Bearer dsp_0000"),
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer "),
            Some("garbage"),
        ] {
            let mut builder = axum::http::Request::builder()
                .method(case.method.clone())
                .uri(case.path);
            if let Some(a) = auth {
                builder = builder.header(header::AUTHORIZATION, a);
            }
            let body = (case.body)(0)
                .map(|b| serde_json::to_vec(&b).unwrap())
                .unwrap_or_default();
            let r = s
                .send(
                    builder
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(body.into())
                        .unwrap(),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {auth:?}: {}",
                case.method,
                case.path,
                r.text
            );
            assert_eq!(r.code(), "unauthorized");
        }
    }
    // The probes and the docs need no key.
    for path in ["/healthz", "/readyz", "/openapi.json", "/docs"] {
        assert_eq!(s.get(path, None).await.status, StatusCode::OK, "{path}");
    }
}

async fn forbidden_comes_before_reading_the_body(s: TestServer) {
    let (_, chatbot) = s.key(Role::Chatbot, None).await;
    let r = s
        .post_raw(
            "/v1/technicians",
            Some(&chatbot),
            "application/json",
            "{not json",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

async fn a_revoked_key_stops_working_at_once(s: TestServer) {
    let (id, key) = s.key(Role::Dispatcher, None).await;
    assert_eq!(s.get("/v1/jobs", Some(&key)).await.status, StatusCode::OK);

    let r = s
        .delete(&format!("/v1/api-keys/{id}"), Some(&s.admin_key))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["revoked_at"].is_string(), "{}", r.text);
    let revoked_at = r.json["revoked_at"].clone();

    let r = s.get("/v1/jobs", Some(&key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");

    // Revoking again changes nothing; an unknown key is 404.
    let again = s
        .delete(&format!("/v1/api-keys/{id}"), Some(&s.admin_key))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["revoked_at"], revoked_at);
    let r = s.delete("/v1/api-keys/key_nope", Some(&s.admin_key)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

async fn api_keys_are_listed_without_secrets(s: TestServer) {
    let r = s
        .post(
            "/v1/api-keys",
            Some(&s.admin_key),
            &json!({"name": "whatsapp bot", "role": "chatbot"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let secret = r.json["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("dsp_") && secret.len() == 68, "{secret}");
    assert_eq!(r.json["key_prefix"], json!(&secret[..12]));
    assert_eq!(r.json["role"], "chatbot");

    let list = s.get("/v1/api-keys", Some(&s.admin_key)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text.contains(&secret), "a secret is listed");
    assert!(!list.text.contains("key_hash") && !list.text.contains("\"secret\""));
    let names: Vec<&str> = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin (DESPACHO_ADMIN_KEY)", "whatsapp bot"]);
}

async fn technician_keys_must_name_a_stored_technician(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    for (body, path, code) in [
        (
            json!({"name": "x", "role": "technician"}),
            "$.technician_id",
            "missing_field",
        ),
        (
            json!({"name": "x", "role": "technician", "technician_id": "ghost"}),
            "$.technician_id",
            "unknown_technician",
        ),
        (
            json!({"name": "x", "role": "dispatcher", "technician_id": "t"}),
            "$.technician_id",
            "unexpected_field",
        ),
        (
            json!({"name": " ", "role": "admin"}),
            "$.name",
            "invalid_name",
        ),
        (
            json!({"name": "x", "role": "root"}),
            "$.role",
            "unknown_variant",
        ),
    ] {
        let r = s.post("/v1/api-keys", admin, &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.paths(), [path], "{body}: {}", r.text);
        assert_eq!(r.json["error"]["details"][0]["code"], code, "{}", r.text);
    }
}

async fn a_technician_sees_only_their_own_jobs(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    for t in ["t-1", "t-2"] {
        assert_eq!(
            s.post("/v1/technicians", admin, &technician(t))
                .await
                .status,
            201
        );
    }
    for (j, t) in [
        ("j-1", Some("t-1")),
        ("j-2", Some("t-2")),
        ("j-3", None),
        ("j-4", Some("t-1")),
    ] {
        let r = s.post("/v1/jobs", admin, &json!({"job": job(j, t)})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let (_, key) = s.key(Role::Technician, Some("t-1")).await;
    let ids = |r: &Reply| -> Vec<String> {
        r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let r = s.get("/v1/jobs", Some(&key)).await;
    assert_eq!(ids(&r), ["j-1", "j-4"]);
    // Asking for another technician's jobs still gives only their own.
    let r = s.get("/v1/jobs?technician_id=t-2", Some(&key)).await;
    assert_eq!(ids(&r), ["j-1", "j-4"]);
    assert_eq!(
        s.get("/v1/jobs/j-1", Some(&key)).await.status,
        StatusCode::OK
    );
    for other in ["j-2", "j-3"] {
        let r = s.get(&format!("/v1/jobs/{other}"), Some(&key)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}");
    }
    // Their own record only.
    let r = s.get("/v1/technicians", Some(&key)).await;
    assert_eq!(ids(&r), ["t-1"]);
    assert_eq!(
        s.get("/v1/technicians/t-1", Some(&key)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.get("/v1/technicians/t-2", Some(&key)).await.status,
        StatusCode::FORBIDDEN
    );

    // A dispatcher filters by technician.
    let r = s.get("/v1/jobs?technician_id=t-2", admin).await;
    assert_eq!(ids(&r), ["j-2"]);
    let r = s.get("/v1/jobs", admin).await;
    assert_eq!(ids(&r), ["j-1", "j-2", "j-3", "j-4"]);
}

/// Issue 24: a technician's key kept working after the technician was deleted, and read
/// the jobs of a technician created later with the same id.
async fn a_deleted_technicians_key_stops_working(s: TestServer) {
    let admin = Some(s.admin_key.as_str());
    let r = s
        .post("/v1/technicians", admin, &technician("t-gone"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (key_id, key) = s.key(Role::Technician, Some("t-gone")).await;
    assert_eq!(s.get("/v1/jobs", Some(&key)).await.status, StatusCode::OK);

    let r = s.delete("/v1/technicians/t-gone", admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = s.get("/v1/jobs", Some(&key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    // A new technician with the same id (and a job of theirs) is out of the old key's reach.
    let r = s
        .post("/v1/technicians", admin, &technician("t-gone"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .post(
            "/v1/jobs",
            admin,
            &json!({"job": job("j-new", Some("t-gone"))}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s.get("/v1/jobs", Some(&key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // The key is listed as revoked, not silently dropped.
    let r = s.get("/v1/api-keys", admin).await;
    let listed = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == json!(key_id))
        .cloned()
        .unwrap_or_else(|| panic!("key {key_id} not listed: {}", r.text));
    assert!(!listed["revoked_at"].is_null(), "{listed}");
}

both_backends!(
    every_role_gets_exactly_its_endpoints,
    missing_unknown_or_malformed_keys_are_401,
    forbidden_comes_before_reading_the_body,
    a_revoked_key_stops_working_at_once,
    api_keys_are_listed_without_secrets,
    technician_keys_must_name_a_stored_technician,
    a_technician_sees_only_their_own_jobs,
    a_deleted_technicians_key_stops_working,
);
