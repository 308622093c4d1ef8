//! Kill -9 of the real server during a booking load (RELIABILITY.md, "Tests that back
//! the claims" 9), on a SQLite file and on PostgreSQL: the `despacho` binary serves on a
//! free port, a few threads book over HTTP, the process is SIGKILLed mid-load and
//! restarted on the same database (twice). Then every booking acknowledged with a 201
//! is there with its history and its idempotency key, replaying an acknowledged key
//! answers the same booking, the bookings are exactly the acknowledged ones plus at
//! most the requests that were in flight, and the booking invariants hold.
//!
//! The HTTP client is a few lines over `std::net::TcpStream` (HTTP/1.1,
//! `Connection: close`), so a request cut by the kill is seen as such.

use crate::common::booking_invariants as inv;
use crate::common::*;
use despacho_api::server::Db;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

const DAYS: [&str; 3] = ["2026-03-02", "2026-03-03", "2026-03-04"];
const CENTER: (f64, f64) = (-23.56, -46.65);
const OFFSETS: [(f64, f64); 4] = [(0.0, 0.0), (0.006, 0.004), (-0.005, 0.003), (0.003, -0.007)];
/// Threads sending bookings.
const CLIENTS: usize = 4;
/// Acknowledged bookings after which each round's server is killed.
const ACKS_BEFORE_KILL: usize = 25;
/// Kill-and-restart rounds.
const ROUNDS: usize = 2;

fn place(i: usize) -> Value {
    let (dlat, dlon) = OFFSETS[i % OFFSETS.len()];
    json!({"lat": CENTER.0 + dlat, "lon": CENTER.1 + dlon})
}

// ---------------------------------------------------------------------------------------
// The server process and a minimal HTTP client

/// A running `despacho serve`; SIGKILLed when dropped (a failing test leaves nothing).
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(database_url: &str, log: &PathBuf) -> Server {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("a log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_despacho"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("DESPACHO_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("the despacho binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => server.addr = addr,
            Err(_) => {
                let status = server.child.try_wait();
                panic!(
                    "the server did not print its URL ({status:?}); log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
        server
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed server is reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A complete HTTP answer: status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request on its own connection. `Err` when no complete answer came back
/// (refused, reset, or cut short by the kill).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    idempotency_key: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(k) = key {
        request.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if let Some(i) = idempotency_key {
        request.push_str(&format!("Idempotency-Key: {i}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "an incomplete HTTP answer",
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = at + rest[at..].windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[at..line_end])
                    .ok()?
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            at = line_end + 2;
            if size == 0 {
                break;
            }
            body.extend_from_slice(rest.get(at..at + size)?);
            at += size + 2;
        }
        body
    } else {
        let n = length?;
        rest.get(..n)?.to_vec()
    };
    Some(Answer {
        status,
        text: String::from_utf8(body).ok()?,
    })
}

fn post(addr: &str, path: &str, key: &str, body: &Value) -> Answer {
    http(addr, "POST", path, Some(key), None, Some(body))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

fn get(addr: &str, path: &str, key: &str) -> Answer {
    http(addr, "GET", path, Some(key), None, None).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

// ---------------------------------------------------------------------------------------
// The load

/// One booking request and what came back.
#[derive(Clone, Debug)]
struct Sent {
    key: String,
    body: Value,
    answer: Option<Answer>,
}

fn tokens(addr: &str, bot: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for p in 0..OFFSETS.len() {
        for minutes in [30, 45, 60] {
            for day in DAYS {
                let request = json!({
                    "place": place(p), "kind": "repair", "duration_minutes": minutes,
                    "required_skills": {"fiber_splicing": 1}, "earliest_day": day, "days": 1
                });
                let a = post(addr, "/v1/slots/search", bot, &request);
                assert_eq!(a.status, 200, "{}", a.text);
                for slot in a.json()["slots"].as_array().unwrap() {
                    tokens.push(slot["slot_token"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    tokens
}

/// Books from [`CLIENTS`] threads until the server is killed after
/// [`ACKS_BEFORE_KILL`] acknowledged bookings; returns every request sent.
fn load_and_kill(server: &mut Server, bot: &str, round: usize) -> Vec<Sent> {
    let tokens = Arc::new(tokens(&server.addr, bot));
    assert!(tokens.len() >= 50, "only {} tokens", tokens.len());
    let acks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addr, bot) = (server.addr.clone(), bot.to_owned());
            let (tokens, acks, stop) = (tokens.clone(), acks.clone(), stop.clone());
            thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed((round * 100 + c) as u64);
                let mut sent = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("crash-{round}-{c}-{i}");
                    let body = json!({"slot_token": tokens[rng.usize(..tokens.len())]});
                    let answer = http(
                        &addr,
                        "POST",
                        "/v1/bookings",
                        Some(&bot),
                        Some(&key),
                        Some(&body),
                    )
                    .ok();
                    let done = answer.is_some();
                    if answer.as_ref().is_some_and(|a| a.status == 201) {
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    sent.push(Sent { key, body, answer });
                    if !done {
                        break; // the server is gone
                    }
                }
                sent
            })
        })
        .collect();
    let started = Instant::now();
    while acks.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} bookings acknowledged in 120 s",
            acks.load(Ordering::SeqCst)
        );
        thread::sleep(Duration::from_millis(2));
    }
    // A moment later, so the kill falls anywhere in a request.
    thread::sleep(Duration::from_micros(fastrand::u64(0..20_000)));
    server.kill();
    stop.store(true, Ordering::SeqCst);
    clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Checks from the database

/// Idempotency rows: key → (status, response_status, response_body).
async fn idempotency_rows(db: &Db) -> BTreeMap<String, (String, Option<i32>, Option<String>)> {
    let rows: Vec<(String, String, Option<i32>, Option<String>)> =
        despacho_api::on_pool!(db, |pool| {
            sqlx::query_as(
                "SELECT key, status, response_status, response_body FROM idempotency_keys",
            )
            .fetch_all(pool)
            .await
        })
        .unwrap();
    rows.into_iter()
        .map(|(k, s, rs, rb)| (k, (s, rs, rb)))
        .collect()
}

/// Booking id → the key whose stored 201 made it.
async fn booking_keys(db: &Db) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, (status, response_status, body)) in idempotency_rows(db).await {
        assert_eq!(
            status, "done",
            "key {key} is left in progress after the restart"
        );
        if response_status == Some(201) {
            let body: Value = serde_json::from_str(&body.unwrap()).unwrap();
            let id = body["id"].as_str().unwrap().to_owned();
            assert!(out.insert(id, key).is_none(), "two keys made one booking");
        }
    }
    out
}

fn kill_9_during_booking_load_loses_no_acknowledged_booking(backend: Backend) {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(TestDb::new(backend));
    let log = std::env::temp_dir().join(format!(
        "despacho-crash-{}-{:?}.log",
        std::process::id(),
        backend
    ));
    let _ = std::fs::remove_file(&log);

    let mut server = Server::start(&db.url, &log);
    for i in 0..4 {
        let mut t = technician(&format!("t{}", i + 1));
        t["home"] = place(i);
        t["max_jobs_per_day"] = json!(12);
        t["shifts"] = DAYS
            .iter()
            .map(|d| json!({"date": d, "start": "08:00:00", "end": "17:00:00", "overtime_minutes": 0}))
            .collect();
        let a = post(&server.addr, "/v1/technicians", ADMIN_KEY, &t);
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let a = post(
        &server.addr,
        "/v1/api-keys",
        ADMIN_KEY,
        &json!({"name": "bot", "role": "chatbot"}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let bot = a.json()["secret"].as_str().unwrap().to_owned();

    let mut sent = Vec::new();
    for round in 0..ROUNDS {
        sent.extend(load_and_kill(&mut server, &bot, round));
        server = Server::start(&db.url, &log);
    }
    let addr = server.addr.clone();

    // What the clients saw.
    let mut acked: BTreeMap<String, (Sent, String)> = BTreeMap::new();
    let mut refused = Vec::new();
    let mut in_flight = Vec::new();
    for s in &sent {
        match &s.answer {
            Some(a) if a.status == 201 => {
                let id = a.json()["id"].as_str().unwrap().to_owned();
                assert!(acked.insert(s.key.clone(), (s.clone(), id)).is_none());
            }
            Some(a) if a.status == 409 => {
                assert_eq!(a.json()["error"]["code"], "slot_unavailable", "{}", a.text);
                refused.push(s.clone());
            }
            Some(a) => panic!("unexpected answer {}: {}", a.status, a.text),
            None => in_flight.push(s.clone()),
        }
    }
    let in_flight_keys: BTreeSet<&str> = in_flight.iter().map(|s| s.key.as_str()).collect();
    eprintln!(
        "{backend:?}: {} requests, {} acknowledged, {} refused, {} in flight at the kills",
        sent.len(),
        acked.len(),
        refused.len(),
        in_flight.len()
    );
    assert!(acked.len() >= ROUNDS * ACKS_BEFORE_KILL);

    let check_db = runtime.block_on(Db::connect(&db.url, 2)).unwrap();
    let stored = runtime.block_on(inv::bookings(&check_db));
    let histories = runtime.block_on(inv::histories(&check_db));
    let keys = runtime.block_on(booking_keys(&check_db));

    // Every acknowledged booking is there, confirmed, with its history row and key.
    let stored_ids: BTreeSet<&str> = stored.iter().map(|b| b.id.as_str()).collect();
    for (key, (_, id)) in &acked {
        assert!(
            stored_ids.contains(id.as_str()),
            "acknowledged booking {id} ({key}) is lost"
        );
        let b = stored.iter().find(|b| &b.id == id).unwrap();
        assert_eq!(b.status, "confirmed", "{b:?}");
        let actions: Vec<&str> = histories
            .get(id)
            .map(|h| h.iter().map(|(_, a, _)| a.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(actions, ["booked"], "history of {id}");
        assert_eq!(keys.get(id), Some(key), "the key of booking {id}");
    }
    // Nothing else, but requests that were in flight when the server died.
    assert_eq!(
        stored.len(),
        keys.len(),
        "a booking without its idempotency key"
    );
    for b in &stored {
        let key = &keys[&b.id];
        assert!(
            acked.contains_key(key) || in_flight_keys.contains(key.as_str()),
            "booking {} of key {key} was neither acknowledged nor in flight",
            b.id
        );
        assert!(
            histories.contains_key(&b.id),
            "booking {} has no history",
            b.id
        );
    }
    assert!(stored.len() >= acked.len() && stored.len() <= acked.len() + in_flight.len());
    let summary = runtime.block_on(inv::check(&check_db));
    assert_eq!(summary.confirmed, stored.len());

    // Replays: an acknowledged key answers its booking again, a refusal its refusal.
    for (key, (s, _)) in &acked {
        let again = http(
            &addr,
            "POST",
            "/v1/bookings",
            Some(&bot),
            Some(key),
            Some(&s.body),
        )
        .expect("a replay");
        assert_eq!(Some(&again), s.answer.as_ref(), "the replay of {key}");
    }
    for s in refused.iter().take(40) {
        let again = http(
            &addr,
            "POST",
            "/v1/bookings",
            Some(&bot),
            Some(&s.key),
            Some(&s.body),
        )
        .expect("a replay");
        assert_eq!(Some(&again), s.answer.as_ref(), "the replay of {}", s.key);
    }
    // A key that was in flight: its booking if it committed, else a new attempt.
    let made: BTreeMap<&str, &str> = keys
        .iter()
        .map(|(id, k)| (k.as_str(), id.as_str()))
        .collect();
    let committed = in_flight
        .iter()
        .filter(|s| made.contains_key(s.key.as_str()))
        .count();
    eprintln!(
        "{backend:?}: {committed} of {} in-flight requests had committed",
        in_flight.len()
    );
    let mut new_bookings = 0;
    for s in &in_flight {
        let again = http(
            &addr,
            "POST",
            "/v1/bookings",
            Some(&bot),
            Some(&s.key),
            Some(&s.body),
        )
        .expect("a replay");
        match made.get(s.key.as_str()) {
            Some(id) => {
                assert_eq!(again.status, 201, "{}", again.text);
                assert_eq!(again.json()["id"], *id, "{}", again.text);
            }
            None => {
                assert!([201, 409].contains(&again.status), "{}", again.text);
                new_bookings += usize::from(again.status == 201);
            }
        }
    }
    let after = runtime.block_on(inv::bookings(&check_db));
    assert_eq!(
        after.len(),
        stored.len() + new_bookings,
        "replays made duplicates"
    );
    for (_, (_, id)) in acked.iter().take(5) {
        let a = get(&addr, &format!("/v1/bookings/{id}"), &bot);
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json()["status"], "confirmed");
    }
    runtime.block_on(inv::check(&check_db));
    runtime.block_on(check_db.close());
    server.kill();
    drop(server);
    drop(db);
    let _ = std::fs::remove_file(&log);
    eprintln!("{backend:?}: {:?}", started.elapsed());
}

mod kill_9_during_booking_load_loses_no_acknowledged_booking {
    use super::*;

    #[test]
    fn sqlite() {
        kill_9_during_booking_load_loses_no_acknowledged_booking(Backend::Sqlite)
    }

    #[test]
    fn postgres() {
        kill_9_during_booking_load_loses_no_acknowledged_booking(Backend::Postgres)
    }
}
