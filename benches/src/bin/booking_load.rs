//! Booking under load, over real HTTP against a running `despacho serve`, on SQLite and
//! on PostgreSQL.
//!
//! ```text
//! nice -n 10 cargo build --release -p despacho-api --bin despacho -j1
//! cp target/release/despacho /tmp/despacho-bench
//! cargo run --release -p despacho-benches --bin booking_load -- --binary /tmp/despacho-bench
//! ```
//!
//! For each database: starts the service (on a private copy of `--binary`, a fresh SQLite
//! file or a fresh PostgreSQL database, `DESPACHO_ADMIN_KEY`, JSON logs captured), stores
//! the settings and a generated São Paulo operation (`--technicians` × `--days`, from
//! three days after today) through the API, makes a chatbot key, then
//!
//! 1. **setup** (not timed): `--booked` bookings made through the API (search one day
//!    near a generated job's place → book the best slot with an `Idempotency-Key`);
//! 2. **slot search**: `--searches` 7-day searches one after another, then the same
//!    number again from `--search-clients` concurrent clients (p50/p90/p99/max);
//! 3. **booking throughput**: slot tokens collected from searches (not timed; one
//!    technician-day per token, so most are bookable), plus `--duplicates` × that many
//!    POSTs re-using a token already in the list (a new `Idempotency-Key`: a second
//!    customer racing for the same slot), all fired from `--clients` threads (one
//!    keep-alive connection each); bookings/s = 201s ÷ wall time of the phase;
//! 4. **final state**: the bookings read straight from the database (`sqlite3` / `psql`)
//!    and every technician-day re-checked jointly with `check_visit`: double-booked
//!    technician-days must be 0. Also counted: days whose non-repair visits fill more
//!    than `1 − repair_reserve` of the shift (the reserve the slot search keeps).
//!
//! Prints Markdown tables and writes them to
//! `benches/results/booking-load-<date>-<hostname>.md`.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use clap::{Parser, ValueEnum};
use despacho_benches::output::{free_result_paths, hostname};
use despacho_solver::field::generate::{generate, City, GeneratorConfig};
use despacho_solver::field::input::{JobInput, JobKind, Place, Technician};
use despacho_solver::field::slots::{
    check_visit, search_slots, BookedVisit, Operation, SlotRequest,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DbChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100)]
    technicians: usize,
    #[arg(long, default_value_t = 14)]
    days: usize,
    /// Bookings made through the API before anything is timed.
    #[arg(long, default_value_t = 1500)]
    booked: usize,
    /// Slot searches timed (sequential run; the concurrent run makes as many).
    #[arg(long, default_value_t = 300)]
    searches: usize,
    /// Concurrent clients of the second slot-search run.
    #[arg(long, default_value_t = 4)]
    search_clients: usize,
    /// Slot tokens (distinct technician-days) booked in the throughput phase.
    #[arg(long, default_value_t = 1000)]
    bookings: usize,
    /// Extra booking POSTs, as a share of `--bookings`, that re-use a token already in
    /// the list (with their own Idempotency-Key): races on one technician-day.
    #[arg(long, default_value_t = 0.05)]
    duplicates: f64,
    /// Concurrent booking clients (closed loop: latency ≈ clients ÷ throughput).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Customers made before the load; each booking names one, so it writes its
    /// customer messages (confirmation and reminders) to the outbox as a real chat
    /// booking does. 0: bookings without a customer.
    #[arg(long, default_value_t = 500)]
    customers: usize,
    #[arg(long, value_enum, default_value_t = DbChoice::Both)]
    db: DbChoice,
    /// The `despacho` binary; a private copy is run, so a rebuild does not disturb it.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// PostgreSQL server (a database is created and dropped for each run).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// Days from today to the first planning day.
    #[arg(long, default_value_t = 3)]
    lead_days: i64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    no_save: bool,
}

/// Clients of the untimed setup and token collection.
const SETUP_CLIENTS: usize = 4;
/// Days each timed slot search looks at.
const SEARCH_DAYS: u32 = 7;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.days < SEARCH_DAYS as usize {
        bail!("--days must be at least {SEARCH_DAYS}");
    }
    let binary = args.binary.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/despacho")
    });
    let work = std::env::temp_dir().join(format!("despacho-booking-load-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let private = work.join("despacho");
    std::fs::copy(&binary, &private)
        .with_context(|| format!("cannot copy the service binary {}", binary.display()))?;
    eprintln!(
        "service binary: {} (running a copy at {})",
        binary.display(),
        private.display()
    );

    let start_date = chrono::Local::now().date_naive() + TimeDelta::days(args.lead_days);
    let input = generate(&GeneratorConfig {
        technicians: args.technicians,
        // Demand places and skill mixes for requests (none is imported as a job).
        jobs: 4000,
        days: args.days,
        seed: args.seed,
        city: City::SaoPaulo,
        start_date,
    });
    let world = World {
        time_zone: input.time_zone.clone(),
        travel: serde_json::to_value(&input.travel)?,
        op: Operation {
            time_zone: input.time_zone.clone(),
            travel: input.travel.clone(),
            technicians: input.technicians.clone(),
            repair_reserve: 0.1,
        },
        jobs: input.jobs.clone(),
        start_date,
    };

    let backends: Vec<Backend> = match args.db {
        DbChoice::Sqlite => vec![Backend::Sqlite],
        DbChoice::Postgres => vec![Backend::Postgres],
        DbChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    let mut runs = Vec::new();
    for backend in backends {
        eprintln!("\n== {} ==", backend.name());
        let run = run_backend(&args, &world, backend, &private, &work)
            .with_context(|| format!("the {} run failed", backend.name()))?;
        runs.push(run);
    }
    let _ = std::fs::remove_file(&private);

    let report = render(&args, &world, &runs);
    println!("\n{report}");
    if !args.no_save {
        let dir = despacho_benches::default_results_dir();
        let now = chrono::Local::now();
        let stem = format!("booking-load-{}-{}", now.format("%Y-%m-%d"), hostname());
        let (_, md) = free_result_paths(&dir, &stem, &now.format("%H%M").to_string());
        std::fs::write(&md, &report)?;
        println!("wrote {}", md.display());
    }
    let failures: Vec<String> = runs.iter().flat_map(|r| r.failures.clone()).collect();
    if !failures.is_empty() {
        eprintln!("\nFAILURES:");
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    Ok(())
}

/// The generated operation and where requests come from.
struct World {
    time_zone: String,
    travel: Value,
    op: Operation,
    jobs: Vec<JobInput>,
    start_date: NaiveDate,
}

impl World {
    /// A customer near a generated job's place, with its kind, tier, skills and
    /// equipment, 30–90 minutes, 2-hour windows.
    fn request(&self, rng: &mut fastrand::Rng, earliest_day: NaiveDate, days: u32) -> SlotRequest {
        let job = &self.jobs[rng.usize(0..self.jobs.len())];
        SlotRequest {
            place: Place {
                lat: job.place.lat + 0.01 * (rng.f64() - 0.5),
                lon: job.place.lon + 0.01 * (rng.f64() - 0.5),
                address: None,
                location_id: None,
            },
            kind: job.kind,
            tier: job.tier,
            duration_minutes: 30 + 15 * rng.u32(0..5),
            required_skills: job.required_skills.clone(),
            equipment: job.equipment,
            earliest_day,
            days,
            window_minutes: 120,
        }
    }

    fn day(&self, offset: usize) -> NaiveDate {
        self.start_date + TimeDelta::days(offset as i64)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// One client: one ureq agent (one keep-alive connection) and one API key.
#[derive(Clone)]
struct Client {
    agent: ureq::Agent,
    base: String,
    key: String,
}

struct Reply {
    status: u16,
    body: String,
    elapsed: Duration,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Client {
    fn new(base: &str, key: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    /// A client of its own (new agent, new connection) with the same key.
    fn fresh(&self) -> Client {
        Client::new(&self.base, &self.key)
    }

    fn send(&self, method: &str, path: &str, body: &str, idem: Option<&str>) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.key);
        let started = Instant::now();
        let response = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            _ => {
                let mut request = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                }
                .header("Authorization", &auth)
                .header("Content-Type", "application/json");
                if let Some(k) = idem {
                    request = request.header("Idempotency-Key", k);
                }
                request.send(body)
            }
        };
        let mut response = response.with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .with_context(|| format!("{method} {path}: reading the body"))?;
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }

    fn post(&self, path: &str, body: &str, idem: Option<&str>) -> Result<Reply> {
        self.send("POST", path, body, idem)
    }

    /// `POST /v1/slots/search`.
    fn search(&self, request: &SlotRequest) -> Result<Reply> {
        self.post("/v1/slots/search", &serde_json::to_string(request)?, None)
    }

    /// `POST /v1/bookings` of `token` with `idem`, for customer number `customer` of
    /// `customers` (none when there are no customers).
    fn book(&self, token: &str, idem: &str, customer: usize, customers: usize) -> Result<Reply> {
        let body = if customers == 0 {
            json!({ "slot_token": token })
        } else {
            json!({ "slot_token": token, "customer_id": customer_id(customer % customers) })
        }
        .to_string();
        self.post("/v1/bookings", &body, Some(idem))
    }
}

/// The id of the bench's customer number `n`.
fn customer_id(n: usize) -> String {
    format!("bench-customer-{n:05}")
}

/// The slot tokens of a search answer, best first (empty unless `status` is `ok`).
fn slot_tokens(reply: &Reply) -> Vec<String> {
    let v = reply.json();
    if v["status"] != "ok" {
        return Vec::new();
    }
    v["slots"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["slot_token"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The technician and date a slot token names. The token is signed, not encrypted: its
/// first part is the claim's JSON in base64url.
fn token_day(token: &str) -> Option<(String, String)> {
    let payload = token.split('.').next()?;
    let claim: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some((
        claim["technician"].as_str()?.to_owned(),
        claim["date"].as_str()?.to_owned(),
    ))
}

// ---------------------------------------------------------------------------------------
// The service

struct Server {
    child: Child,
    base: String,
    /// Every stderr line of the service (JSON logs), in order.
    log: Arc<Mutex<Vec<String>>>,
    log_path: PathBuf,
}

impl Server {
    fn start(
        binary: &Path,
        database_url: &str,
        admin_key: &str,
        log_path: &Path,
    ) -> Result<Server> {
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("DESPACHO_ADMIN_KEY", admin_key)
            .env("DESPACHO_LOG_FORMAT", "json")
            // `BOOKING_LOAD_RUST_LOG` (e.g. `info,sqlx::query=debug`) to see more.
            .env(
                "RUST_LOG",
                std::env::var("BOOKING_LOAD_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("stderr")?;
        let (log2, mut file) = (log.clone(), std::fs::File::create(log_path)?);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                log2.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                        let _ = tx.send(url);
                        sent = true;
                    }
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = log.lock().unwrap().join("\n");
                bail!("the service did not print its address within 60 s; its log:\n{tail}");
            }
        };
        Ok(Server {
            child,
            base,
            log,
            log_path: log_path.to_owned(),
        })
    }

    /// How many log lines have been read so far (a mark for [`Server::route_ms`]).
    fn mark(&self) -> usize {
        // Let the reader catch up with lines written before the last response.
        std::thread::sleep(Duration::from_millis(200));
        self.log.lock().unwrap().len()
    }

    /// Server-side milliseconds (the request log's `ms`) of `route` between two marks.
    fn route_ms(&self, from: usize, to: usize, route: &str) -> Vec<f64> {
        let log = self.log.lock().unwrap();
        log[from.min(log.len())..to.min(log.len())]
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "request" && v["span"]["route"] == route)
            .filter_map(|v| v["fields"]["ms"].as_f64())
            .collect()
    }

    /// Log lines at ERROR level (failed requests) between two marks.
    fn errors(&self, from: usize, to: usize) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log[from.min(log.len())..to.min(log.len())]
            .iter()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .cloned()
            .collect()
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after 15 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the service did not stop within 15 s; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `psql` on `url` (a postgres:// URL with its database), one command, tuples only.
fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .context("cannot run psql")?;
    if !out.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn with_database(url: &str, name: &str) -> String {
    let base = url.trim_end_matches('/');
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}")
}

// ---------------------------------------------------------------------------------------
// One database

#[derive(Debug, Default)]
struct SearchStats {
    clients: usize,
    times_ms: Vec<f64>,
    wall: Duration,
    with_offers: usize,
    statuses: BTreeMap<u16, usize>,
    server_ms: Vec<f64>,
}

#[derive(Debug, Default)]
struct LoadStats {
    clients: usize,
    posts: usize,
    distinct_tokens: usize,
    reused_tokens: usize,
    created: usize,
    conflicts: usize,
    /// Error codes of the 409s.
    conflict_codes: BTreeMap<String, usize>,
    other: BTreeMap<u16, usize>,
    transport_errors: usize,
    times_ms: Vec<f64>,
    wall: Duration,
    server_ms: Vec<f64>,
}

#[derive(Debug, Default)]
struct Check {
    technician_days: usize,
    active: usize,
    double_booked: usize,
    over_reserve: usize,
    examples: Vec<String>,
    /// Milliseconds of the joint `check_visit` of each technician-day.
    check_ms: Vec<f64>,
}

struct Run {
    backend: Backend,
    setup_secs: f64,
    setup_made: usize,
    setup_attempts: usize,
    setup_conflicts: usize,
    collect_secs: f64,
    collect_searches: usize,
    search_seq: SearchStats,
    search_conc: SearchStats,
    /// `search_slots` on the same bookings, in this process.
    in_process_ms: Vec<f64>,
    load: LoadStats,
    check: Check,
    stored_rows: usize,
    log_path: PathBuf,
    failures: Vec<String>,
    /// 1-minute load average before and after the run.
    load_before: f64,
    load_after: f64,
}

fn run_backend(
    args: &Args,
    world: &World,
    backend: Backend,
    binary: &Path,
    work: &Path,
) -> Result<Run> {
    let suffix = format!("{}_{:08x}", std::process::id(), fastrand::u32(..));
    let (database_url, pg_database) = match backend {
        Backend::Sqlite => {
            let path = work.join("bench.db");
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
            }
            (format!("sqlite://{}", path.display()), None)
        }
        Backend::Postgres => {
            let name = format!("bench_booking_load_{suffix}");
            psql(
                &with_database(&args.postgres_url, "postgres"),
                &format!("CREATE DATABASE {name}"),
            )?;
            (with_database(&args.postgres_url, &name), Some(name))
        }
    };
    let admin_key = format!("bench-admin-{suffix}-{:016x}", fastrand::u64(..));
    let log_path = work.join(format!("server-{}.log", backend.name().to_lowercase()));
    let load_before = loadavg();
    let result = Server::start(binary, &database_url, &admin_key, &log_path).and_then(|server| {
        eprintln!("service at {} (log {})", server.base, log_path.display());
        let outcome = drive(args, world, backend, &server, &admin_key, &database_url);
        server.stop();
        outcome
    });
    if let Some(name) = pg_database {
        if let Err(e) = psql(
            &with_database(&args.postgres_url, "postgres"),
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ) {
            eprintln!("warning: could not drop database {name}: {e}");
        }
    } else {
        let path = work.join("bench.db");
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }
    result.map(|mut run| {
        run.load_before = load_before;
        run.load_after = loadavg();
        run
    })
}

/// The 1-minute load average (`/proc/loadavg`), NaN where there is none.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn drive(
    args: &Args,
    world: &World,
    backend: Backend,
    server: &Server,
    admin_key: &str,
    database_url: &str,
) -> Result<Run> {
    let mut failures = Vec::new();
    let admin = Client::new(&server.base, admin_key);

    // The operation: settings, technicians, a chatbot key.
    let settings = json!({"time_zone": world.time_zone, "travel": world.travel}).to_string();
    let r = admin.send("PUT", "/v1/settings", &settings, None)?;
    if r.status != 200 {
        bail!("PUT /v1/settings: {} {}", r.status, r.body);
    }
    let technicians = serde_json::to_string(&world.op.technicians)?;
    let r = admin.post("/v1/import/technicians", &technicians, None)?;
    if r.status != 200 {
        bail!("POST /v1/import/technicians: {} {}", r.status, r.body);
    }
    let r = admin.post(
        "/v1/api-keys",
        &json!({"name": "booking-load", "role": "chatbot"}).to_string(),
        None,
    )?;
    if r.status != 201 {
        bail!("POST /v1/api-keys: {} {}", r.status, r.body);
    }
    let chatbot_key = r.json()["secret"]
        .as_str()
        .context("the new key's secret")?
        .to_owned();
    let bot = Client::new(&server.base, &chatbot_key);
    // Customers near the city centre, each with a phone for the chat messages.
    for n in 0..args.customers {
        let place = &world.op.technicians[n % world.op.technicians.len()].home;
        let customer = json!({"id": customer_id(n), "name": format!("Customer {n}"),
            "phone": format!("+55 11 9{:04}-{:04}", n / 10000, n % 10000),
            "lat": place.lat, "lon": place.lon});
        let r = bot.post("/v1/customers", &customer.to_string(), None)?;
        if r.status != 201 {
            bail!("POST /v1/customers: {} {}", r.status, r.body);
        }
    }

    // 1. Setup: bookings through the API.
    let started = Instant::now();
    let (setup_made, setup_attempts, setup_conflicts, setup_failures) = setup(args, world, &bot)?;
    let setup_secs = started.elapsed().as_secs_f64();
    failures.extend(setup_failures);
    eprintln!(
        "setup: {setup_made} bookings in {setup_secs:.1} s ({setup_attempts} searches, {setup_conflicts} booking conflicts)"
    );
    if setup_made < args.booked {
        failures.push(format!(
            "{}: only {setup_made} of {} setup bookings could be made",
            backend.name(),
            args.booked
        ));
    }

    // 2. Slot search latency.
    let m0 = server.mark();
    let seq_requests = search_requests(world, args.searches, args.seed + 100);
    let mut search_seq = searches(&bot, &seq_requests, 1)?;
    let m1 = server.mark();
    search_seq.server_ms = server.route_ms(m0, m1, "/v1/slots/search");
    eprintln!(
        "search, 1 client: p50 {:.1} ms, p99 {:.1} ms",
        pct(&search_seq.times_ms, 0.5),
        pct(&search_seq.times_ms, 0.99)
    );
    let conc_requests = search_requests(world, args.searches, args.seed + 200);
    let mut search_conc = searches(&bot, &conc_requests, args.search_clients)?;
    let m2 = server.mark();
    search_conc.server_ms = server.route_ms(m1, m2, "/v1/slots/search");
    eprintln!(
        "search, {} clients: p50 {:.1} ms, p99 {:.1} ms",
        args.search_clients,
        pct(&search_conc.times_ms, 0.5),
        pct(&search_conc.times_ms, 0.99)
    );
    for s in [&search_seq, &search_conc] {
        let bad: usize = s
            .statuses
            .iter()
            .filter(|(k, _)| **k != 200)
            .map(|(_, v)| v)
            .sum();
        if bad > 0 {
            failures.push(format!(
                "{}: slot search with {} client(s) answered non-200: {:?}",
                backend.name(),
                s.clients,
                s.statuses
            ));
        }
    }

    // Diagnostics: the same requests in this process, on the bookings the service held
    // (read from the database), without HTTP or the database.
    let rows = read_bookings(backend, database_url)?;
    let in_process_ms = in_process_searches(world, &rows, &seq_requests)?;
    eprintln!(
        "search in-process, same data: p50 {:.1} ms, p99 {:.1} ms",
        pct(&in_process_ms, 0.5),
        pct(&in_process_ms, 0.99)
    );

    // 3. Booking throughput.
    let started = Instant::now();
    let (tokens, collect_searches) = collect_tokens(args, world, &bot)?;
    let collect_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "collected {} tokens on distinct technician-days in {collect_secs:.1} s ({collect_searches} searches)",
        tokens.len()
    );
    if tokens.len() < args.bookings {
        failures.push(format!(
            "{}: only {} of {} slot tokens on distinct technician-days could be collected",
            backend.name(),
            tokens.len(),
            args.bookings
        ));
    }
    let m3 = server.mark();
    let mut load = booking_load(args, &bot, tokens)?;
    let m4 = server.mark();
    load.server_ms = server.route_ms(m3, m4, "/v1/bookings");
    eprintln!(
        "booking: {} created, {} conflicts, {:?} other in {:.2} s = {:.0} bookings/s; p50 {:.1} ms, p99 {:.1} ms",
        load.created,
        load.conflicts,
        load.other,
        load.wall.as_secs_f64(),
        load.created as f64 / load.wall.as_secs_f64(),
        pct(&load.times_ms, 0.5),
        pct(&load.times_ms, 0.99)
    );
    let fivexx: usize = load
        .other
        .iter()
        .filter(|(k, _)| **k >= 500)
        .map(|(_, v)| v)
        .sum();
    if fivexx > 0 || load.transport_errors > 0 {
        failures.push(format!(
            "{}: booking load had {fivexx} 5xx answers and {} transport errors: {:?}",
            backend.name(),
            load.transport_errors,
            load.other
        ));
    }
    if !load.other.is_empty() {
        eprintln!(
            "!! booking POSTs answered neither 201 nor 409: {:?}",
            load.other
        );
    }
    let errors = server.errors(0, usize::MAX);
    if !errors.is_empty() {
        failures.push(format!(
            "{}: the service logged {} errors, first: {}",
            backend.name(),
            errors.len(),
            errors[0]
        ));
    }

    // 4. Final state, read from the database itself.
    let rows = read_bookings(backend, database_url)?;
    let stored_rows = rows.len();
    let expected = setup_made + load.created;
    if stored_rows != expected {
        failures.push(format!(
            "{}: the database holds {stored_rows} bookings; the API answered 201 {expected} times",
            backend.name()
        ));
    }
    let check = check_final(world, &rows)?;
    if check.double_booked > 0 {
        failures.push(format!(
            "{}: {} double-booked technician-days: {:?}",
            backend.name(),
            check.double_booked,
            check.examples
        ));
    }
    eprintln!(
        "final state: {} active bookings on {} technician-days; double-booked: {}; over the repair reserve: {}",
        check.active, check.technician_days, check.double_booked, check.over_reserve
    );
    Ok(Run {
        backend,
        setup_secs,
        setup_made,
        setup_attempts,
        setup_conflicts,
        collect_secs,
        collect_searches,
        search_seq,
        search_conc,
        in_process_ms,
        load,
        check,
        stored_rows,
        log_path: server.log_path.clone(),
        failures,
        load_before: f64::NAN,
        load_after: f64::NAN,
    })
}

/// `--booked` bookings: search one day near a generated job → book the best slot.
/// Returns (made, searches, 409s, failures).
fn setup(args: &Args, world: &World, bot: &Client) -> Result<(usize, usize, usize, Vec<String>)> {
    let claimed = AtomicUsize::new(0);
    let made = AtomicUsize::new(0);
    let attempts = AtomicUsize::new(0);
    let conflicts = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..SETUP_CLIENTS {
            let (claimed, made, attempts, conflicts, failures) =
                (&claimed, &made, &attempts, &conflicts, &failures);
            let client = bot.fresh();
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(args.seed * 1000 + t as u64);
                let mut misses = 0;
                'bookings: while claimed.fetch_add(1, Ordering::Relaxed) < args.booked {
                    loop {
                        if misses > 500 {
                            failures
                                .lock()
                                .unwrap()
                                .push("setup: 500 searches in a row found nothing bookable".into());
                            break 'bookings;
                        }
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let day = world.day(rng.usize(0..args.days));
                        let req = world.request(&mut rng, day, 1);
                        let reply = match client.search(&req) {
                            Ok(r) => r,
                            Err(e) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("setup search: {e:#}"));
                                break 'bookings;
                            }
                        };
                        if reply.status != 200 {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("setup search: {} {}", reply.status, reply.body));
                            break 'bookings;
                        }
                        let Some(token) = slot_tokens(&reply).into_iter().next() else {
                            misses += 1;
                            continue;
                        };
                        let n = attempts.load(Ordering::Relaxed);
                        let idem = format!("setup-{t}-{n}-{}", rng.u64(..));
                        match client.book(&token, &idem, n, args.customers) {
                            Ok(r) if r.status == 201 => {
                                made.fetch_add(1, Ordering::Relaxed);
                                misses = 0;
                                continue 'bookings;
                            }
                            Ok(r) if r.status == 409 => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                                misses += 1;
                            }
                            Ok(r) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("setup booking: {} {}", r.status, r.body));
                                break 'bookings;
                            }
                            Err(e) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("setup booking: {e:#}"));
                                break 'bookings;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok((
        made.into_inner(),
        attempts.into_inner(),
        conflicts.into_inner(),
        failures.into_inner().unwrap(),
    ))
}

/// `n` 7-day slot searches from `clients` concurrent clients (one connection each).
/// `n` timed search requests ({SEARCH_DAYS} days each), as JSON bodies.
fn search_requests(world: &World, n: usize, seed: u64) -> Vec<SlotRequest> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let last_start = world_days(world) - SEARCH_DAYS as usize;
    (0..n)
        .map(|_| {
            let day = world.day(rng.usize(0..=last_start));
            world.request(&mut rng, day, SEARCH_DAYS)
        })
        .collect()
}

/// The `requests` sent from `clients` concurrent clients (one connection each).
fn searches(bot: &Client, requests: &[SlotRequest], clients: usize) -> Result<SearchStats> {
    let n = requests.len();
    let requests: Vec<String> = requests
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(n));
    let agents: Vec<Client> = (0..clients).map(|_| bot.fresh()).collect();
    // Open each connection before the clock starts.
    for a in &agents {
        a.send("GET", "/healthz", "", None)?;
    }
    let barrier = Barrier::new(clients + 1);
    let mut wall = Duration::ZERO;
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for client in &agents {
            let (next, results, requests, barrier) = (&next, &results, &requests, &barrier);
            handles.push(scope.spawn(move || -> Result<()> {
                barrier.wait();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests.len() {
                        return Ok(());
                    }
                    let r = client.post("/v1/slots/search", &requests[i], None)?;
                    let offered = !slot_tokens(&r).is_empty();
                    results.lock().unwrap().push((r.status, r.elapsed, offered));
                }
            }));
        }
        barrier.wait();
        let started = Instant::now();
        for h in handles {
            h.join()
                .map_err(|_| anyhow!("a search client panicked"))??;
        }
        wall = started.elapsed();
        Ok(())
    })?;
    let mut stats = SearchStats {
        clients,
        wall,
        ..Default::default()
    };
    for (status, elapsed, offered) in results.into_inner().unwrap() {
        *stats.statuses.entry(status).or_default() += 1;
        stats.times_ms.push(elapsed.as_secs_f64() * 1e3);
        stats.with_offers += usize::from(offered);
    }
    Ok(stats)
}

fn world_days(world: &World) -> usize {
    world.op.technicians.first().map_or(1, |t| t.shifts.len())
}

/// Slot tokens for the throughput phase, each on a technician-day no other token names
/// (untimed; 1-day searches near generated jobs). Returns (tokens, searches made).
fn collect_tokens(args: &Args, world: &World, bot: &Client) -> Result<(Vec<String>, usize)> {
    let used: Mutex<HashSet<(String, String)>> = Mutex::new(HashSet::new());
    let tokens = Mutex::new(Vec::with_capacity(args.bookings));
    let searches = AtomicUsize::new(0);
    let budget = 20 * args.bookings.max(50);
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for t in 0..SETUP_CLIENTS {
            let (used, tokens, searches) = (&used, &tokens, &searches);
            let client = bot.fresh();
            handles.push(scope.spawn(move || -> Result<()> {
                let mut rng = fastrand::Rng::with_seed(args.seed * 2000 + t as u64);
                loop {
                    if tokens.lock().unwrap().len() >= args.bookings
                        || searches.fetch_add(1, Ordering::Relaxed) >= budget
                    {
                        return Ok(());
                    }
                    let day = world.day(rng.usize(0..args.days));
                    let reply = client.search(&world.request(&mut rng, day, 1))?;
                    if reply.status != 200 {
                        bail!("token search: {} {}", reply.status, reply.body);
                    }
                    for token in slot_tokens(&reply) {
                        let Some(day) = token_day(&token) else {
                            bail!("cannot read the technician-day of a slot token");
                        };
                        if used.lock().unwrap().insert(day) {
                            let mut tokens = tokens.lock().unwrap();
                            if tokens.len() < args.bookings {
                                tokens.push(token);
                            }
                            break;
                        }
                    }
                }
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow!("a token collector panicked"))??;
        }
        Ok(())
    })?;
    Ok((
        tokens.into_inner().unwrap(),
        searches.into_inner().min(budget),
    ))
}

/// The timed phase: every token (plus the re-used ones) POSTed from `--clients` threads.
fn booking_load(args: &Args, bot: &Client, tokens: Vec<String>) -> Result<LoadStats> {
    let mut rng = fastrand::Rng::with_seed(args.seed + 300);
    let customers = args.customers;
    let distinct = tokens.len();
    let reused = if distinct == 0 {
        0
    } else {
        (args.duplicates * distinct as f64).round() as usize
    };
    let mut posts = tokens.clone();
    for _ in 0..reused {
        posts.push(tokens[rng.usize(0..distinct)].clone());
    }
    rng.shuffle(&mut posts);
    let run = format!("{:08x}", rng.u32(..));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(posts.len()));
    let transport_errors = AtomicUsize::new(0);
    let agents: Vec<Client> = (0..args.clients).map(|_| bot.fresh()).collect();
    for a in &agents {
        a.send("GET", "/healthz", "", None)?;
    }
    let barrier = Barrier::new(args.clients + 1);
    let mut wall = Duration::ZERO;
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for client in &agents {
            let (next, results, posts, barrier, run, transport_errors) =
                (&next, &results, &posts, &barrier, &run, &transport_errors);
            handles.push(scope.spawn(move || {
                barrier.wait();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= posts.len() {
                        return;
                    }
                    match client.book(&posts[i], &format!("load-{run}-{i}"), i, customers) {
                        Ok(r) => {
                            let code = if r.status == 201 {
                                String::new()
                            } else {
                                r.json()["error"]["code"].as_str().unwrap_or("?").to_owned()
                            };
                            if r.status >= 500 {
                                eprintln!("!! booking POST answered {}: {}", r.status, r.body);
                            }
                            results.lock().unwrap().push((r.status, r.elapsed, code));
                        }
                        Err(e) => {
                            eprintln!("!! booking POST failed: {e:#}");
                            transport_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        barrier.wait();
        let started = Instant::now();
        for h in handles {
            let _ = h.join();
        }
        wall = started.elapsed();
    });
    let mut stats = LoadStats {
        clients: args.clients,
        posts: posts.len(),
        distinct_tokens: distinct,
        reused_tokens: reused,
        transport_errors: transport_errors.into_inner(),
        wall,
        ..Default::default()
    };
    for (status, elapsed, code) in results.into_inner().unwrap() {
        match status {
            201 => stats.created += 1,
            409 => {
                stats.conflicts += 1;
                *stats.conflict_codes.entry(code).or_default() += 1;
            }
            other => *stats.other.entry(other).or_default() += 1,
        }
        stats.times_ms.push(elapsed.as_secs_f64() * 1e3);
    }
    Ok(stats)
}

/// `search_slots` (limit 10, as the service) on the active bookings of `rows` within
/// each request's days, timed in this process, one request after another.
fn in_process_searches(
    world: &World,
    rows: &[StoredBooking],
    requests: &[SlotRequest],
) -> Result<Vec<f64>> {
    let now = Utc::now();
    let visits: Vec<BookedVisit> = rows
        .iter()
        .filter(|b| is_active(b, now))
        .map(|b| BookedVisit {
            job: b.job.clone(),
            technician: b.technician_id.clone(),
            date: b.date,
        })
        .collect();
    let mut times = Vec::with_capacity(requests.len());
    for req in requests {
        let last = req.earliest_day + TimeDelta::days(i64::from(req.days) - 1);
        let within: Vec<BookedVisit> = visits
            .iter()
            .filter(|v| (req.earliest_day..=last).contains(&v.date))
            .cloned()
            .collect();
        let started = Instant::now();
        search_slots(&world.op, &within, req, 10).map_err(|e| anyhow!("{e}"))?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

/// Milliseconds to parse every technician from its own JSON (as the service does for
/// each search and each booking), the mean of 20 rounds.
fn technicians_parse_ms(world: &World) -> f64 {
    let texts: Vec<String> = world
        .op
        .technicians
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
    let started = Instant::now();
    for _ in 0..20 {
        let parsed: Vec<Technician> = texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        std::hint::black_box(parsed);
    }
    started.elapsed().as_secs_f64() * 1e3 / 20.0
}

// ---------------------------------------------------------------------------------------
// The final state

struct StoredBooking {
    technician_id: String,
    date: NaiveDate,
    status: String,
    expires_at: Option<String>,
    job: JobInput,
}

/// Every row of `bookings`, read with the database's own command-line client.
fn read_bookings(backend: Backend, database_url: &str) -> Result<Vec<StoredBooking>> {
    let text = match backend {
        Backend::Sqlite => {
            let path = database_url
                .strip_prefix("sqlite://")
                .context("a sqlite:// URL")?;
            let sql = "SELECT json_object('technician_id', technician_id, 'date', date, \
                       'status', status, 'expires_at', expires_at, 'job', job) FROM bookings";
            let out = Command::new("sqlite3")
                .args(["-readonly", path, sql])
                .output()
                .context("cannot run sqlite3")?;
            if !out.status.success() {
                bail!(
                    "sqlite3 failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            String::from_utf8(out.stdout)?
        }
        Backend::Postgres => psql(
            database_url,
            "SELECT json_build_object('technician_id', technician_id, 'date', date, \
             'status', status, 'expires_at', expires_at, 'job', job) FROM bookings",
        )?,
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("a bookings row: {line}"))?;
            let date_text = v["date"].as_str().context("date")?;
            Ok(StoredBooking {
                technician_id: v["technician_id"]
                    .as_str()
                    .context("technician_id")?
                    .to_owned(),
                date: NaiveDate::parse_from_str(&date_text[..10.min(date_text.len())], "%Y-%m-%d")
                    .with_context(|| format!("date {date_text}"))?,
                status: v["status"].as_str().context("status")?.to_owned(),
                expires_at: v["expires_at"].as_str().map(str::to_owned),
                job: serde_json::from_str(v["job"].as_str().context("job")?)
                    .context("a stored job")?,
            })
        })
        .collect()
}

/// Whether a stored booking counts against capacity now (confirmed, or a hold that has
/// not expired; a hold whose expiry cannot be read counts, to be safe).
fn is_active(b: &StoredBooking, now: DateTime<Utc>) -> bool {
    match b.status.as_str() {
        "confirmed" => true,
        "held" => b.expires_at.as_deref().is_none_or(|e| {
            DateTime::parse_from_rfc3339(&e.replacen(' ', "T", 1))
                .map_or(true, |t| t.with_timezone(&Utc) > now)
        }),
        _ => false,
    }
}

/// Each technician-day's active visits checked together with `check_visit` (one of
/// them as the candidate, the others as booked: if any choice fits, the whole set fits
/// in some order), and its non-repair on-site minutes against the repair reserve.
fn check_final(world: &World, rows: &[StoredBooking]) -> Result<Check> {
    let now = Utc::now();
    let mut days: BTreeMap<(String, NaiveDate), Vec<BookedVisit>> = BTreeMap::new();
    let mut check = Check::default();
    for b in rows.iter().filter(|b| is_active(b, now)) {
        check.active += 1;
        days.entry((b.technician_id.clone(), b.date))
            .or_default()
            .push(BookedVisit {
                job: b.job.clone(),
                technician: b.technician_id.clone(),
                date: b.date,
            });
    }
    check.technician_days = days.len();
    for ((tech, date), mut visits) in days {
        visits.sort_by(|a, b| a.job.id.cmp(&b.job.id));
        let started = Instant::now();
        let fits = (0..visits.len()).rev().any(|k| {
            let mut others = visits.clone();
            let visit = others.remove(k);
            check_visit(&world.op, &visit, &others).is_ok()
        });
        check.check_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if !fits {
            check.double_booked += 1;
            if check.examples.len() < 5 {
                let windows: Vec<String> = visits
                    .iter()
                    .map(|v| {
                        let w = v.job.windows.first();
                        format!(
                            "{} {}min {}",
                            v.job.id,
                            v.job.duration_minutes,
                            w.map_or(String::new(), |w| format!("{}–{}", w.start, w.end))
                        )
                    })
                    .collect();
                check.examples.push(format!("{tech} {date}: {windows:?}"));
            }
        }
        if over_reserve(&world.op, &tech, date, &visits) {
            check.over_reserve += 1;
        }
    }
    Ok(check)
}

/// Non-repair on-site minutes above `1 − repair_reserve` of the shift (what the slot
/// search keeps free for repairs).
fn over_reserve(op: &Operation, tech: &str, date: NaiveDate, visits: &[BookedVisit]) -> bool {
    let Some(shift) = op
        .technicians
        .iter()
        .find(|t: &&Technician| t.id == tech)
        .and_then(|t| t.shifts.iter().find(|s| s.date == date))
    else {
        return false;
    };
    let shift_minutes = (shift.end - shift.start).num_minutes().max(0) as f64;
    let non_repair: u32 = visits
        .iter()
        .filter(|v| v.job.kind != JobKind::Repair)
        .map(|v| v.job.duration_minutes)
        .sum();
    f64::from(non_repair) > (1.0 - op.repair_reserve) * shift_minutes
}

// ---------------------------------------------------------------------------------------
// Report

fn pct(times: &[f64], p: f64) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t[((t.len() as f64 - 1.0) * p).round() as usize]
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn render(args: &Args, world: &World, runs: &[Run]) -> String {
    let mut out = String::new();
    let now = chrono::Local::now();
    out.push_str("# Booking under load (HTTP, `despacho serve`)\n\n");
    out.push_str(&format!(
        "{} on `{}` ({} CPUs); the service, PostgreSQL and the load generator share the machine. \
         {} technicians × {} days in São Paulo from {} (generated, seed {}), imported through \
         `POST /v1/import/technicians`; {} bookings made through the API before timing. \
         Searches and bookings are sent by a chatbot key over keep-alive HTTP/1.1 \
         (one connection per client, opened before the clock starts). The service logs \
         every request (JSON, `info`); \"server\" columns are that log's `ms` (handler time, \
         without the socket).\n\n",
        now.format("%Y-%m-%d %H:%M"),
        hostname(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.technicians,
        args.days,
        world.start_date,
        args.seed,
        args.booked,
    ));
    out.push_str("Command: `cargo run --release -p despacho-benches --bin booking_load --");
    for a in std::env::args().skip(1) {
        out.push(' ');
        out.push_str(&a);
    }
    out.push_str("`\n\n");

    out.push_str("## Setup (not timed)\n\n");
    out.push_str("| database | bookings made | searches | booking 409s | setup s | tokens collected (distinct technician-days) | collection searches | collection s | load avg before → after (this run included) |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {} | {} | {:.1} | {:.2} → {:.2} |\n",
            r.backend.name(),
            r.setup_made,
            r.setup_attempts,
            r.setup_conflicts,
            r.setup_secs,
            r.load.distinct_tokens,
            r.collect_searches,
            r.collect_secs,
            r.load_before,
            r.load_after,
        ));
    }

    out.push_str(&format!(
        "\n## Slot search (`POST /v1/slots/search`)\n\n{} requests per run, {}-day requests, 2-hour windows, \
         30–90 min, near generated demand, each with that job's kind and required skills. Target: p99 ≤ 25 ms.\n\n",
        args.searches, SEARCH_DAYS
    ));
    out.push_str("| database | clients | requests | p50 ms | p90 ms | p99 ms | max ms | requests/s | with offers | non-200 | server p50 ms | server p99 ms | p99 ≤ 25 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        for s in [&r.search_seq, &r.search_conc] {
            let non200: usize = s
                .statuses
                .iter()
                .filter(|(k, _)| **k != 200)
                .map(|(_, v)| v)
                .sum();
            let p99 = pct(&s.times_ms, 0.99);
            out.push_str(&format!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} | {:.1} | {:.1} | {} |\n",
                r.backend.name(),
                s.clients,
                s.times_ms.len(),
                pct(&s.times_ms, 0.5),
                pct(&s.times_ms, 0.9),
                p99,
                pct(&s.times_ms, 1.0),
                s.times_ms.len() as f64 / s.wall.as_secs_f64(),
                s.with_offers,
                non200,
                pct(&s.server_ms, 0.5),
                pct(&s.server_ms, 0.99),
                yes(p99 <= 25.0),
            ));
        }
    }

    out.push_str(&format!(
        "\n## Booking throughput (`POST /v1/bookings`)\n\n{} clients; each POST books one slot token \
         (distinct technician-days) with its own `Idempotency-Key`; {:.0} % more POSTs re-use a token \
         of the list (a second customer racing for the slot). {} bookings/s = 201s ÷ wall time of the \
         phase; latency over all POSTs (the 409s included, which search for alternatives and take a \
         second write turn to keep their answer). Closed loop: each client sends its next POST when \
         the last is answered, so latency ≈ clients ÷ throughput. Target: ≥ 300 bookings/s with \
         p99 ≤ 50 ms, no double booking.\n\n",
        args.clients,
        args.duplicates * 100.0,
        if args.customers == 0 {
            "POSTs name no customer (no customer messages are written).".to_owned()
        } else {
            format!(
                "Each POST names one of {} customers, so each booking also writes its \
                 confirmation and reminders to the outbox in its transaction.",
                args.customers
            )
        }
    ));
    out.push_str("| database | clients | POSTs (distinct + re-used) | 201 | 409 | other | wall s | bookings/s | p50 ms | p90 ms | p99 ms | max ms | server p50 ms | server p99 ms | double-booked technician-days | days over repair reserve | target met |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        let l = &r.load;
        let rate = l.created as f64 / l.wall.as_secs_f64();
        let p99 = pct(&l.times_ms, 0.99);
        let other = if l.other.is_empty() && l.transport_errors == 0 {
            "0".to_owned()
        } else {
            let mut parts: Vec<String> = l.other.iter().map(|(k, v)| format!("{v}×{k}")).collect();
            if l.transport_errors > 0 {
                parts.push(format!("{} transport errors", l.transport_errors));
            }
            format!("**{}**", parts.join(", "))
        };
        let conflicts = if l.conflicts == 0 {
            "0".to_owned()
        } else {
            let codes: Vec<String> = l
                .conflict_codes
                .iter()
                .map(|(k, v)| format!("{v} `{k}`"))
                .collect();
            format!("{} ({})", l.conflicts, codes.join(", "))
        };
        out.push_str(&format!(
            "| {} | {} | {} ({} + {}) | {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |\n",
            r.backend.name(),
            l.clients,
            l.posts,
            l.distinct_tokens,
            l.reused_tokens,
            l.created,
            conflicts,
            other,
            l.wall.as_secs_f64(),
            rate,
            pct(&l.times_ms, 0.5),
            pct(&l.times_ms, 0.9),
            p99,
            pct(&l.times_ms, 1.0),
            pct(&l.server_ms, 0.5),
            pct(&l.server_ms, 0.99),
            r.check.double_booked,
            r.check.over_reserve,
            yes(rate >= 300.0 && p99 <= 50.0 && r.check.double_booked == 0),
        ));
    }
    out.push_str("\nFinal state, read from the database with `sqlite3` / `psql` (not through the service) and re-checked per technician-day with `check_visit`:\n\n");
    out.push_str("| database | rows in `bookings` | 201s answered (setup + load) | active bookings | technician-days | double-booked technician-days | non-repair minutes over the repair reserve |\n|---|---|---|---|---|---|---|\n");
    for r in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.backend.name(),
            r.stored_rows,
            r.setup_made + r.load.created,
            r.check.active,
            r.check.technician_days,
            r.check.double_booked,
            r.check.over_reserve,
        ));
    }
    out.push_str(&format!(
        "\n## Where the time goes\n\n`search_slots` in this process on the bookings the service held during the \
         search runs (read from the database), for the same {} requests as the 1-client run; the joint \
         `check_visit` of each technician-day's final visits (what a booking runs inside its \
         transaction, on a day one visit shorter); the wall time per booking of the throughput phase. \
         Parsing all {} technicians from their JSON (the service loads the technicians for every \
         search) takes {:.2} ms in this process.\n\n",
        args.searches,
        world.op.technicians.len(),
        technicians_parse_ms(world)
    ));
    out.push_str("| database | in-process `search_slots` p50 / p90 / p99 / max ms | HTTP search p50 / p99 ms (1 client) | server search p50 / p99 ms | `check_visit` per technician-day mean / p99 ms | booking phase ms per 201 |\n|---|---|---|---|---|---|\n");
    for r in runs {
        let c = &r.check.check_ms;
        let mean = c.iter().sum::<f64>() / c.len().max(1) as f64;
        out.push_str(&format!(
            "| {} | {:.1} / {:.1} / {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} / {:.2} | {:.2} |\n",
            r.backend.name(),
            pct(&r.in_process_ms, 0.5),
            pct(&r.in_process_ms, 0.9),
            pct(&r.in_process_ms, 0.99),
            pct(&r.in_process_ms, 1.0),
            pct(&r.search_seq.times_ms, 0.5),
            pct(&r.search_seq.times_ms, 0.99),
            pct(&r.search_seq.server_ms, 0.5),
            pct(&r.search_seq.server_ms, 0.99),
            mean,
            pct(c, 0.99),
            r.load.wall.as_secs_f64() * 1e3 / r.load.created.max(1) as f64,
        ));
    }
    let failures: Vec<&String> = runs.iter().flat_map(|r| &r.failures).collect();
    if !failures.is_empty() {
        out.push_str("\n**Failures:**\n\n");
        for f in failures {
            out.push_str(&format!("- {f}\n"));
        }
    }
    for r in runs {
        eprintln!("{} service log: {}", r.backend.name(), r.log_path.display());
    }
    out
}
