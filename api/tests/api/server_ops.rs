//! Operations: probes, the OpenAPI document and the docs page, the admin key from the
//! environment, and `despacho serve --demo` as a real process (loads once, prints keys,
//! stops cleanly on SIGTERM). Each test runs on SQLite and PostgreSQL.

use crate::common::*;
use axum::http::StatusCode;
use despacho_api::server::{build_app, Config};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

async fn probes_answer(s: TestServer) {
    let r = s.get("/healthz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "ok");
    let r = s.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "ready");
    let backend = match s.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(r.json["database"], backend);

    // Without its database the process is alive but not ready.
    s.state.db.close().await;
    assert_eq!(s.get("/healthz", None).await.status, StatusCode::OK);
    let r = s.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["status"], "unavailable");
}

const ENDPOINTS: [(&str, &str); 67] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{id}"),
    ("get", "/v1/settings"),
    ("put", "/v1/settings"),
    ("post", "/v1/technicians"),
    ("get", "/v1/technicians"),
    ("get", "/v1/technicians/{id}"),
    ("put", "/v1/technicians/{id}"),
    ("delete", "/v1/technicians/{id}"),
    ("post", "/v1/customers"),
    ("get", "/v1/customers"),
    ("get", "/v1/customers/{id}"),
    ("patch", "/v1/customers/{id}"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("patch", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("post", "/v1/jobs/{id}/reinstate"),
    ("post", "/v1/jobs/{id}/assign"),
    ("get", "/v1/jobs/{id}/facts"),
    ("post", "/v1/import/technicians"),
    ("post", "/v1/import/jobs"),
    ("post", "/v1/slots/search"),
    ("post", "/v1/bookings"),
    ("post", "/v1/holds"),
    ("post", "/v1/holds/{id}/confirm"),
    ("get", "/v1/bookings/{id}"),
    ("get", "/v1/bookings/by-token/{token}"),
    ("post", "/v1/bookings/{id}/reschedule"),
    ("post", "/v1/bookings/{id}/cancel"),
    ("post", "/v1/plans/solve"),
    ("post", "/v1/plans/{date}/optimize"),
    ("get", "/v1/plans/{date}"),
    ("post", "/v1/plans/{date}/changes"),
    ("post", "/v1/plans/{date}/publish"),
    ("get", "/v1/plans/{date}/audit"),
    ("get", "/v1/plan-runs/{id}"),
    ("post", "/v1/plan-runs/{id}/cancel"),
    ("post", "/v1/webhook-endpoints"),
    ("get", "/v1/webhook-endpoints"),
    ("delete", "/v1/webhook-endpoints/{id}"),
    ("get", "/v1/outbox"),
    ("post", "/v1/chat/inbound"),
    ("get", "/v1/dispatcher-queue"),
    ("get", "/v1/bookings/at-risk"),
    ("post", "/v1/sync/push"),
    ("post", "/v1/sync/pull"),
    ("post", "/v1/bookings/{id}/events"),
    ("get", "/v1/sync/flags"),
    ("post", "/v1/sync/flags/{id}/resolve"),
    ("post", "/v1/upsell-products"),
    ("get", "/v1/upsell-products"),
    ("get", "/v1/upsell-products/{code}"),
    ("put", "/v1/upsell-products/{code}"),
    ("delete", "/v1/upsell-products/{code}"),
    ("get", "/v1/reports/upsells"),
    ("get", "/v1/customers/{id}/equipment"),
    ("put", "/v1/customers/{id}/equipment/{serial}"),
    ("post", "/v1/territories"),
    ("get", "/v1/territories"),
    ("get", "/v1/territories/{id}"),
    ("put", "/v1/territories/{id}"),
    ("delete", "/v1/territories/{id}"),
];

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

async fn the_openapi_document_lists_every_endpoint(s: TestServer) {
    let r = s.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let doc = &r.json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (method, path) in ENDPOINTS {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        operations,
        ENDPOINTS.len(),
        "an undocumented endpoint is listed in the test or vice versa"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // The solver's schemas are there, and every reference resolves.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Technician"]["properties"]["shifts"].is_object());
    assert!(schemas["JobInput"]["properties"]["windows"].is_object());
    assert!(schemas["SlotRequest"]["properties"]["earliest_day"].is_object());
    assert!(schemas["Booking"]["properties"]["window"].is_object());
    assert!(
        schemas["TravelOptions"]["oneOf"].is_array()
            || schemas["TravelOptions"]["anyOf"].is_array()
    );
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas[name].is_object(), "dangling $ref {r}");
    }
}

async fn the_docs_page_is_self_contained(s: TestServer) {
    let r = s.get("/docs", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.unwrap().starts_with("text/html"));
    for (_, path) in ENDPOINTS {
        assert!(
            r.text.contains(&format!("<code>{path}</code>")),
            "{path} not on /docs"
        );
    }
    assert!(
        !r.text.contains("<script") && !r.text.contains("https://"),
        "no script, no CDN"
    );
}

async fn the_admin_key_is_set_idempotently(s: TestServer) {
    // A restart with the same DESPACHO_ADMIN_KEY adds no key.
    let mut config = Config::new(s.db.url.clone());
    config.admin_key = Some(ADMIN_KEY.to_owned());
    config.max_connections = 2;
    let again = build_app(&config).await.expect("restarts");
    again.state.db.close().await;
    let r = s.get("/v1/api-keys", Some(&s.admin_key)).await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 1, "{}", r.text);
    // A short secret is refused at start.
    config.admin_key = Some("short".to_owned());
    assert!(build_app(&config).await.is_err());
}

/// `despacho serve --demo` on `url`, running until killed; its stdout up to the
/// "listening on" line.
struct Served {
    child: Child,
    banner: Vec<String>,
    addr: String,
}

impl Served {
    fn start(url: &str) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_despacho"))
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                url,
            ])
            .env("RUST_LOG", "warn")
            .env_remove("DESPACHO_ADMIN_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the despacho binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("despacho serve exited before listening; printed {banner:?}");
            };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            banner.push(line);
        };
        Served {
            child,
            banner,
            addr,
        }
    }

    /// The secret printed for `role`.
    fn key(&self, role: &str) -> String {
        self.banner
            .iter()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(role)).then(|| words.next().unwrap().to_owned())
            })
            .unwrap_or_else(|| panic!("no {role} key in {:?}", self.banner))
    }

    /// A GET over a real socket: status and body.
    fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let mut stream = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// SIGTERM, then the exit status within 15 s.
    fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("despacho serve did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn demo_loads_once_prints_keys_and_stops_on_sigterm(s: TestServer) {
    let url = s.db.url.clone();
    let (first_dispatcher, first_banner) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let served = Served::start(&url);
            assert!(
                served.banner[0]
                    .starts_with("Demo data loaded: 20 technicians, 600 customers, 600 jobs"),
                "{:?}",
                served.banner
            );
            for role in ["chatbot", "dispatcher", "technician", "admin"] {
                assert!(served.key(role).starts_with("dsp_"), "{role}");
            }
            let dispatcher = served.key("dispatcher");
            let (status, page) = served.get("/v1/technicians?limit=1000", &dispatcher);
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["items"].as_array().unwrap().len(), 20);
            let (status, page) = served.get("/v1/jobs?limit=1", &served.key("technician"));
            assert_eq!(status, 200, "{page}");
            let banner = served.banner.clone();
            assert!(served.terminate().success(), "a clean exit after SIGTERM");
            (dispatcher, banner)
        }
    })
    .await
    .unwrap();

    let second = tokio::task::spawn_blocking(move || {
        let served = Served::start(&url);
        assert!(
            served.banner[0].starts_with("Demo data already present, nothing added"),
            "{:?}",
            served.banner
        );
        let dispatcher = served.key("dispatcher");
        assert_ne!(dispatcher, first_dispatcher);
        // The previous demo keys are revoked; the new ones work.
        assert_eq!(served.get("/v1/jobs?limit=1", &first_dispatcher).0, 401);
        assert_eq!(served.get("/v1/jobs?limit=1", &dispatcher).0, 200);
        let banner = served.banner.clone();
        assert!(served.terminate().success());
        banner
    })
    .await
    .unwrap();
    assert_eq!(first_banner.len(), second.len());

    // Nothing was added by the second start.
    let admin = Some(s.admin_key.as_str());
    for (path, n) in [
        ("/v1/technicians", 20),
        ("/v1/customers", 600),
        ("/v1/jobs", 600),
    ] {
        let r = s.get(&format!("{path}?limit=1000"), admin).await;
        assert_eq!(r.json["items"].as_array().unwrap().len(), n, "{path}");
    }
    let r = s.get("/v1/settings", admin).await;
    assert_eq!(r.json["time_zone"], "America/Sao_Paulo");
    // One active demo key per role; the first start's are revoked.
    let keys = s.get("/v1/api-keys", admin).await.json;
    let demo: Vec<&Value> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"].as_str().unwrap().starts_with("demo "))
        .collect();
    assert_eq!(demo.len(), 8);
    assert_eq!(demo.iter().filter(|k| k["revoked_at"].is_null()).count(), 4);
}

both_backends!(
    probes_answer,
    the_openapi_document_lists_every_endpoint,
    the_docs_page_is_self_contained,
    the_admin_key_is_set_idempotently,
    demo_loads_once_prints_keys_and_stops_on_sigterm,
);
