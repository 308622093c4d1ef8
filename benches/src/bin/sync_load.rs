//! Mobile sync under load (issue 8), over real HTTP against a running `despacho serve`,
//! on SQLite and on PostgreSQL; every phone's final view is checked against the server.
//!
//! ```text
//! cargo build --release -p despacho-api --bin despacho && cp target/release/despacho /tmp/despacho-bench
//! cargo run --release -p despacho-benches --bin sync_load -- --binary /tmp/despacho-bench
//! ```
//!
//! For each database: starts the service (a private copy of `--binary`, a fresh
//! database), imports `--phones` technicians and `--jobs-per-phone` jobs for each,
//! assigns them, makes one technician key and one phone (mobile-sync's `ClientState`,
//! in memory) per technician, then
//!
//! 1. **single requests** (one client, one request at a time, `--sample` phones): the
//!    initial pull of a 12-job day; a push of one status event and the pull after that
//!    one change (bytes: target < 2 KB); a push of 50 mutations;
//! 2. **sustained sync** for `--seconds`: `--clients` threads share the phones (each
//!    thread its own keep-alive connection, going round its phones); each sync records
//!    1..=`--max-mutations` facts (notes, installed serials, photos) on jobs the phone
//!    shows, pushes, then pulls; a dispatcher thread moves a random job to a random
//!    technician `--reassign-per-second` times a second;
//! 3. **correctness**: every queue drained, then for each phone a fresh pull without a
//!    cookie (the server's whole scope) must equal the phone's view and carry
//!    `last_mutation_id` = the phone's last id; every fact made must appear exactly once
//!    across all scopes, and `sync_facts` (read with `sqlite3` / `psql`) must hold as
//!    many rows as facts were made, with no rejection.
//!
//! Prints Markdown tables and writes them to `benches/results/sync-load-<date>-<host>.md`.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use despacho_benches::service::{loadavg, pct, save_report, Backend, Database, Http, Service};
use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState,
    PullOutcome, PullResponse, ServerMessage,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DbChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Parser)]
struct Args {
    /// Simulated phones (one technician each).
    #[arg(long, default_value_t = 1000)]
    phones: usize,
    #[arg(long, default_value_t = 12)]
    jobs_per_phone: usize,
    /// Phones measured one request at a time in the single-request phase.
    #[arg(long, default_value_t = 200)]
    sample: usize,
    /// Length of the sustained phase.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Concurrent HTTP clients of the sustained phase (closed loop).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Facts recorded per sync, 1 to this many.
    #[arg(long, default_value_t = 3)]
    max_mutations: usize,
    /// Dispatcher reassignments per second during the sustained phase.
    #[arg(long, default_value_t = 5.0)]
    reassign_per_second: f64,
    #[arg(long, value_enum, default_value_t = DbChoice::Both)]
    db: DbChoice,
    /// The `despacho` binary; a private copy is run, so a rebuild does not disturb it.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// PostgreSQL server (a database is created and dropped for each run).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    no_save: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.phones == 0 || args.jobs_per_phone == 0 || args.clients == 0 {
        bail!("--phones, --jobs-per-phone and --clients must be at least 1");
    }
    if args.max_mutations == 0 {
        bail!("--max-mutations must be at least 1");
    }
    let binary = args.binary.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/despacho")
    });
    let work = std::env::temp_dir().join(format!("despacho-sync-load-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let private = work.join("despacho");
    std::fs::copy(&binary, &private)
        .with_context(|| format!("cannot copy the service binary {}", binary.display()))?;
    let backends = match args.db {
        DbChoice::Sqlite => vec![Backend::Sqlite],
        DbChoice::Postgres => vec![Backend::Postgres],
        DbChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    let mut runs = Vec::new();
    for backend in backends {
        eprintln!("\n== {} ==", backend.name());
        let db = Database::create(backend, &work, &args.postgres_url, "sync_load")?;
        let admin_key = format!("bench-admin-{:016x}", fastrand::u64(..));
        let log = work.join(format!("server-{}.log", backend.name().to_lowercase()));
        let load_before = loadavg();
        let result = Service::start(&private, &db.url, &admin_key, &log).and_then(|service| {
            let run = drive(&args, backend, &service, &admin_key, &db);
            service.stop();
            run
        });
        db.remove();
        let mut run = result.with_context(|| format!("the {} run failed", backend.name()))?;
        run.load = (load_before, loadavg());
        runs.push(run);
    }
    let _ = std::fs::remove_dir_all(&work);
    let report = render(&args, &runs);
    println!("\n{report}");
    if !args.no_save {
        println!("wrote {}", save_report("sync-load", &report)?.display());
    }
    if runs.iter().any(|r| !r.check.passed()) {
        eprintln!(
            "FAILED: a phone's view differs from the server's, or a fact was lost or doubled"
        );
        std::process::exit(1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The operation

fn technician(id: &str) -> Value {
    json!({
        "id": id,
        "name": format!("Técnico {id}"),
        "skills": {"fiber_splicing": 3, "pppoe": 2},
        "home": {"lat": -23.55, "lon": -46.63, "address": "Av. Paulista, 1000"},
        "shifts": [{"date": "2026-03-02", "start": "08:00:00", "end": "17:00:00",
                    "overtime_minutes": 60, "overtime_cost_per_hour": 45.0}],
        "cost_per_hour": 30.0,
        "cost_per_km": 0.7,
        "van_capacity": 8,
        "max_jobs_per_day": 14
    })
}

fn job(id: &str, n: usize) -> Value {
    let (dlat, dlon) = ((n % 97) as f64 * 0.001, (n % 89) as f64 * 0.001);
    json!({
        "id": id,
        "kind": "repair",
        "place": {"lat": -23.60 + dlat, "lon": -46.70 + dlon},
        "duration_minutes": 30,
        "required_skills": {"fiber_splicing": 1},
        "windows": [{"start": "2026-03-02T08:00:00-03:00", "end": "2026-03-02T17:00:00-03:00"}],
        "priority": 5
    })
}

fn technician_id(i: usize) -> String {
    format!("tech-{i:04}")
}

fn job_id(i: usize, j: usize) -> String {
    format!("J-{i:04}-{j:02}")
}

/// One simulated phone: the protocol's state, its technician's key, what it made.
struct Phone {
    state: ClientState,
    key: String,
    /// Every fact id this phone recorded, in order.
    made: Vec<String>,
    rng: fastrand::Rng,
}

impl Phone {
    fn device(&self) -> &str {
        &self.state.client_id().0
    }

    /// Records a fact on a random job the phone shows (`status` = an en-route event).
    fn record(&mut self, status: bool) {
        let jobs: Vec<String> = self
            .state
            .confirmed()
            .keys()
            .filter_map(|k| k.strip_prefix("job/").map(str::to_owned))
            .collect();
        if jobs.is_empty() {
            return;
        }
        let job = jobs[self.rng.usize(..jobs.len())].clone();
        let id = format!("{}-{}", self.device(), self.made.len() + 1);
        let at = chrono::Utc::now().timestamp_millis();
        let (name, args) = if status {
            (
                "job_status",
                json!({"fact_id": id, "job": job, "at": at, "status": "en_route"}),
            )
        } else {
            match self.rng.u8(..10) {
                0..=5 => (
                    "note",
                    json!({"fact_id": id, "job": job, "at": at, "text": format!("note {id}")}),
                ),
                6..=7 => (
                    "equipment",
                    json!({"fact_id": id, "job": job, "at": at, "serial": format!("SN-{id}"), "action": "installed"}),
                ),
                _ => (
                    "photo",
                    json!({"fact_id": id, "job": job, "at": at, "sha256": format!("{:064x}", self.made.len()),
                           "bytes": 180_000, "media_type": "image/jpeg"}),
                ),
            }
        };
        self.state.record(name, args);
        self.made.push(id);
    }

    /// Pushes what is pending (one request). The reply, if any came back.
    fn push(&mut self, http: &Http) -> Result<Option<Timed>> {
        let Some(message) = generate_message(&mut self.state) else {
            return Ok(None);
        };
        let r = http.post(&self.key, "/v1/sync/push", &message.encode())?;
        if r.status != 200 {
            bail!(
                "push: {} {}",
                r.status,
                r.body.chars().take(300).collect::<String>()
            );
        }
        let ack = ServerMessage::decode(&r.body).map_err(|e| anyhow!("push answer: {e}"))?;
        receive_message(&mut self.state, ack).map_err(|e| anyhow!("push answer: {e}"))?;
        Ok(Some(Timed::of(&r)))
    }

    /// Pulls once and applies the answer.
    fn pull(&mut self, http: &Http) -> Result<Timed> {
        let r = http.post(
            &self.key,
            "/v1/sync/pull",
            &generate_pull(&self.state).encode(),
        )?;
        if r.status != 200 {
            bail!(
                "pull: {} {}",
                r.status,
                r.body.chars().take(300).collect::<String>()
            );
        }
        let answer = PullResponse::decode(&r.body).map_err(|e| anyhow!("pull answer: {e}"))?;
        match receive_pull(&mut self.state, answer).map_err(|e| anyhow!("pull answer: {e}"))? {
            PullOutcome::Applied { .. } => Ok(Timed::of(&r)),
            other => bail!("pull answer not applied: {other:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Timed {
    ms: f64,
    bytes: usize,
}

impl Timed {
    fn of(r: &despacho_benches::service::Reply) -> Timed {
        Timed {
            ms: r.elapsed.as_secs_f64() * 1000.0,
            bytes: r.body.len(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// One database

#[derive(Default)]
struct Single {
    initial_pull: Vec<Timed>,
    push_one: Vec<Timed>,
    pull_after_one: Vec<Timed>,
    push_fifty: Vec<Timed>,
    pull_after_fifty: Vec<Timed>,
}

#[derive(Default)]
struct Sustained {
    wall: f64,
    syncs: usize,
    mutations: usize,
    sync_ms: Vec<f64>,
    push_ms: Vec<f64>,
    pull_ms: Vec<f64>,
    pull_bytes: Vec<f64>,
    errors: Vec<String>,
    reassignments: usize,
    reassign_ms: Vec<f64>,
}

#[derive(Default)]
struct Check {
    phones: usize,
    views_equal: usize,
    lmid_equal: usize,
    facts_made: usize,
    sync_facts_rows: i64,
    rejections: i64,
    seen_once: usize,
    missing: usize,
    duplicated: usize,
    unknown: usize,
    drain_errors: usize,
}

impl Check {
    fn passed(&self) -> bool {
        self.views_equal == self.phones
            && self.lmid_equal == self.phones
            && self.seen_once == self.facts_made
            && self.missing == 0
            && self.duplicated == 0
            && self.unknown == 0
            && self.sync_facts_rows == self.facts_made as i64
            && self.rejections == 0
    }
}

struct Run {
    backend: Backend,
    setup_s: f64,
    single: Single,
    sustained: Sustained,
    check: Check,
    load: (f64, f64),
}

fn drive(
    args: &Args,
    backend: Backend,
    service: &Service,
    admin: &str,
    db: &Database,
) -> Result<Run> {
    let started = Instant::now();
    let http = Http::new(&service.base);
    let n = args.phones;
    let expect = |r: despacho_benches::service::Reply, want: u16, what: &str| -> Result<Value> {
        if r.status != want {
            bail!(
                "{what}: {} {}",
                r.status,
                r.body.chars().take(500).collect::<String>()
            );
        }
        Ok(serde_json::from_str(&r.body).unwrap_or(Value::Null))
    };
    let technicians: Vec<Value> = (0..n).map(|i| technician(&technician_id(i))).collect();
    expect(
        http.post(
            admin,
            "/v1/import/technicians",
            &Value::Array(technicians).to_string(),
        )?,
        200,
        "import technicians",
    )?;
    let mut all_jobs = Vec::new();
    for i in 0..n {
        for j in 0..args.jobs_per_phone {
            all_jobs.push(job(&job_id(i, j), i * 100 + j));
        }
    }
    for chunk in all_jobs.chunks(10_000) {
        expect(
            http.post(
                admin,
                "/v1/import/jobs",
                &Value::Array(chunk.to_vec()).to_string(),
            )?,
            200,
            "import jobs",
        )?;
    }
    let dispatcher = expect(
        http.post(
            admin,
            "/v1/api-keys",
            &json!({"name": "bench dispatcher", "role": "dispatcher"}).to_string(),
        )?,
        201,
        "dispatcher key",
    )?["secret"]
        .as_str()
        .context("a key")?
        .to_owned();
    // Keys and assignments from a few threads (not timed).
    let keys: Vec<Mutex<String>> = (0..n).map(|_| Mutex::new(String::new())).collect();
    let setup_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (keys, setup_error, dispatcher, base) =
                (&keys, &setup_error, &dispatcher, &service.base);
            s.spawn(move || {
                let http = Http::new(base);
                let work = || -> Result<()> {
                    for i in (t..n).step_by(4) {
                        let body = json!({"name": format!("phone {i}"), "role": "technician", "technician_id": technician_id(i)});
                        let key = expect(http.post(admin, "/v1/api-keys", &body.to_string())?, 201, "technician key")?;
                        *keys[i].lock().unwrap() = key["secret"].as_str().context("a key")?.to_owned();
                        for j in 0..args.jobs_per_phone {
                            let body = json!({"technician": technician_id(i)}).to_string();
                            expect(http.post(dispatcher, &format!("/v1/jobs/{}/assign", job_id(i, j)), &body)?, 200, "assign")?;
                        }
                    }
                    Ok(())
                };
                if let Err(e) = work() {
                    *setup_error.lock().unwrap() = Some(e);
                }
            });
        }
    });
    if let Some(e) = setup_error.into_inner().unwrap() {
        return Err(e);
    }
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut phones: Vec<Phone> = keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| Phone {
            state: ClientState::new(ClientId(format!("phone-{i:04}"))),
            key: key.into_inner().unwrap(),
            made: Vec::new(),
            rng: fastrand::Rng::with_seed(rng.u64(..)),
        })
        .collect();
    let setup_s = started.elapsed().as_secs_f64();
    eprintln!(
        "setup: {n} technicians, {} jobs, {setup_s:.1} s",
        all_jobs.len()
    );

    // 1. Single requests, one at a time.
    let mut single = Single::default();
    let sample = args.sample.min(n);
    for p in &mut phones[..sample] {
        single.initial_pull.push(p.pull(&http)?);
        if p.state.confirmed().len() != args.jobs_per_phone {
            bail!(
                "{}: the first pull holds {} entries, not {}",
                p.device(),
                p.state.confirmed().len(),
                args.jobs_per_phone
            );
        }
    }
    for p in &mut phones[..sample] {
        p.record(true);
        single
            .push_one
            .push(p.push(&http)?.context("one mutation to push")?);
        single.pull_after_one.push(p.pull(&http)?);
    }
    for p in &mut phones[..sample] {
        for _ in 0..50 {
            p.record(false);
        }
        single
            .push_fifty
            .push(p.push(&http)?.context("50 mutations to push")?);
        single.pull_after_fifty.push(p.pull(&http)?);
    }
    // The other phones' first pulls (not timed).
    parallel(
        &mut phones[sample..],
        args.clients.min(8),
        &service.base,
        |p, http| p.pull(http).map(|_| ()),
    )?;
    eprintln!("single requests done");

    // 2. Sustained sync.
    let sustained = sustained(
        args,
        &mut phones,
        &service.base,
        &dispatcher,
        &all_jobs_ids(args),
    )?;
    eprintln!(
        "sustained: {} syncs in {:.1} s, {} errors",
        sustained.syncs,
        sustained.wall,
        sustained.errors.len()
    );

    // 3. Correctness.
    let check = check(args, &mut phones, &service.base, db)?;
    Ok(Run {
        backend,
        setup_s,
        single,
        sustained,
        check,
        load: (0.0, 0.0),
    })
}

fn all_jobs_ids(args: &Args) -> Vec<String> {
    (0..args.phones)
        .flat_map(|i| (0..args.jobs_per_phone).map(move |j| job_id(i, j)))
        .collect()
}

/// Runs `f` on every phone from `clients` threads, each with its own connection.
fn parallel(
    phones: &mut [Phone],
    clients: usize,
    base: &str,
    f: impl Fn(&mut Phone, &Http) -> Result<()> + Sync,
) -> Result<()> {
    if phones.is_empty() {
        return Ok(());
    }
    let per = phones.len().div_ceil(clients.max(1));
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for chunk in phones.chunks_mut(per) {
            let (f, errors) = (&f, &errors);
            s.spawn(move || {
                let http = Http::new(base);
                for p in chunk {
                    if let Err(e) = f(p, &http) {
                        errors.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    match errors.into_inner().unwrap().into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn sustained(
    args: &Args,
    phones: &mut [Phone],
    base: &str,
    dispatcher: &str,
    jobs: &[String],
) -> Result<Sustained> {
    let results: Mutex<Sustained> = Mutex::new(Sustained::default());
    let stop = AtomicBool::new(false);
    let duration = Duration::from_secs_f64(args.seconds);
    let per = phones.len().div_ceil(args.clients);
    let started = Instant::now();
    std::thread::scope(|s| {
        // The dispatcher moves jobs between technicians meanwhile.
        if args.reassign_per_second > 0.0 {
            let (results, stop) = (&results, &stop);
            s.spawn(move || {
                let http = Http::new(base);
                let mut rng = fastrand::Rng::with_seed(args.seed ^ 0xd15);
                let gap = Duration::from_secs_f64(1.0 / args.reassign_per_second);
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let job = &jobs[rng.usize(..jobs.len())];
                    let body =
                        json!({"technician": technician_id(rng.usize(..args.phones))}).to_string();
                    match http.post(dispatcher, &format!("/v1/jobs/{job}/assign"), &body) {
                        Ok(r) if r.status == 200 => {
                            let mut out = results.lock().unwrap();
                            out.reassignments += 1;
                            out.reassign_ms.push(r.elapsed.as_secs_f64() * 1000.0);
                        }
                        Ok(r) => results
                            .lock()
                            .unwrap()
                            .errors
                            .push(format!("assign: {} {}", r.status, r.body)),
                        Err(e) => results
                            .lock()
                            .unwrap()
                            .errors
                            .push(format!("assign: {e:#}")),
                    }
                    next += gap;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            });
        }
        let mut clients = Vec::new();
        for chunk in phones.chunks_mut(per) {
            let results = &results;
            clients.push(s.spawn(move || {
                let http = Http::new(base);
                let mut local = Sustained::default();
                let mut i = 0;
                while started.elapsed() < duration {
                    let p = &mut chunk[i % chunk.len()];
                    i += 1;
                    let k = 1 + p.rng.usize(..args.max_mutations);
                    for _ in 0..k {
                        p.record(false);
                    }
                    let push = match p.push(&http) {
                        Ok(t) => t.map_or(0.0, |t| t.ms),
                        Err(e) => {
                            local.errors.push(format!("{}: {e:#}", p.device()));
                            continue;
                        }
                    };
                    match p.pull(&http) {
                        Ok(t) => {
                            local.syncs += 1;
                            local.mutations += k;
                            local.push_ms.push(push);
                            local.pull_ms.push(t.ms);
                            local.pull_bytes.push(t.bytes as f64);
                            local.sync_ms.push(push + t.ms);
                        }
                        Err(e) => local.errors.push(format!("{}: {e:#}", p.device())),
                    }
                }
                let mut out = results.lock().unwrap();
                out.syncs += local.syncs;
                out.mutations += local.mutations;
                out.sync_ms.extend(local.sync_ms);
                out.push_ms.extend(local.push_ms);
                out.pull_ms.extend(local.pull_ms);
                out.pull_bytes.extend(local.pull_bytes);
                out.errors.extend(local.errors);
            }));
        }
        for c in clients {
            let _ = c.join();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let mut out = results.into_inner().unwrap();
    out.wall = started.elapsed().as_secs_f64();
    Ok(out)
}

fn check(args: &Args, phones: &mut [Phone], base: &str, db: &Database) -> Result<Check> {
    let out = Mutex::new(Check::default());
    // Drain and pull; then a fresh full pull is the server's scope.
    let scopes: Mutex<Vec<BTreeMap<String, Value>>> = Mutex::new(Vec::new());
    parallel(phones, args.clients.min(8), base, |p, http| {
        for _ in 0..5 {
            if p.state.pending().len() == 0 {
                break;
            }
            if p.push(http).is_err() {
                out.lock().unwrap().drain_errors += 1;
            }
        }
        p.pull(http)?;
        let fresh = json!({"schema_version": 1, "message": {"client_id": p.device()}}).to_string();
        let r = http.post(&p.key, "/v1/sync/pull", &fresh)?;
        if r.status != 200 {
            bail!("fresh pull: {} {}", r.status, r.body);
        }
        let answer = PullResponse::decode(&r.body).map_err(|e| anyhow!("fresh pull: {e}"))?;
        let mut scope = BTreeMap::new();
        for op in answer.patch {
            if let despacho_mobile_sync::PatchOp::Put { key, value } = op {
                scope.insert(key, value);
            }
        }
        let mut c = out.lock().unwrap();
        c.phones += 1;
        c.views_equal += usize::from(*p.state.confirmed() == scope && p.state.view() == scope);
        c.lmid_equal += usize::from(
            answer.last_mutation_id == p.state.last_issued() && p.state.pending().len() == 0,
        );
        drop(c);
        scopes.lock().unwrap().push(scope);
        Ok(())
    })?;
    let mut check = out.into_inner().unwrap();
    // Every fact made, exactly once across all scopes (each job is in exactly one).
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for scope in scopes.into_inner().unwrap() {
        for (key, value) in scope {
            if !key.starts_with("job/") {
                continue;
            }
            for f in value["facts"].as_array().into_iter().flatten() {
                *seen
                    .entry(f["id"].as_str().unwrap_or("").to_owned())
                    .or_default() += 1;
            }
        }
    }
    for p in phones.iter() {
        check.facts_made += p.made.len();
        for id in &p.made {
            match seen.remove(id) {
                Some(1) => check.seen_once += 1,
                Some(_) => check.duplicated += 1,
                None => check.missing += 1,
            }
        }
    }
    check.unknown = seen.len();
    check.sync_facts_rows = db.scalar("SELECT COUNT(*) FROM sync_facts")?.parse()?;
    check.rejections = db.scalar("SELECT COUNT(*) FROM sync_rejections")?.parse()?;
    Ok(check)
}

// ---------------------------------------------------------------------------------------
// Report

fn ms_row(t: &[Timed]) -> (f64, f64, f64, f64) {
    let ms: Vec<f64> = t.iter().map(|t| t.ms).collect();
    (
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        pct(&ms, 1.0),
        ms.iter().sum::<f64>() / ms.len().max(1) as f64,
    )
}

fn bytes_row(t: &[Timed]) -> (f64, f64) {
    let b: Vec<f64> = t.iter().map(|t| t.bytes as f64).collect();
    (pct(&b, 0.5), pct(&b, 1.0))
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn render(args: &Args, runs: &[Run]) -> String {
    let mut out = String::new();
    let now = chrono::Local::now();
    out.push_str("# Mobile sync under load (HTTP, `despacho serve`)\n\n");
    out.push_str(&format!(
        "{} on `{}` ({} CPUs); the service, PostgreSQL and the load generator share the machine. \
         {} technicians with one phone each and {} jobs each (one day), imported and assigned \
         through the API. Phones are mobile-sync's `ClientState` in memory, talking HTTP/1.1 \
         keep-alive with their technician's key; times are from send to the last byte of the \
         answer, bytes are the answer's body.\n\n",
        now.format("%Y-%m-%d %H:%M"),
        despacho_benches::output::hostname(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.phones,
        args.jobs_per_phone,
    ));
    out.push_str("Command: `cargo run --release -p despacho-benches --bin sync_load --");
    for a in std::env::args().skip(1) {
        out.push(' ');
        out.push_str(&a);
    }
    out.push_str("`\n\n");

    out.push_str(&format!(
        "## Single requests\n\nOne client, one request at a time, {} phones. Target: the pull \
         after one change under 2 KB.\n\n",
        args.sample.min(args.phones)
    ));
    out.push_str("| database | request | n | bytes p50 | bytes max | p50 ms | p99 ms | max ms | target met |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        let rows: [(String, &[Timed], Option<bool>); 5] = [
            (
                format!("initial pull ({}-job day)", args.jobs_per_phone),
                &r.single.initial_pull,
                None,
            ),
            ("push of 1 status event".into(), &r.single.push_one, None),
            (
                "pull after that one change".into(),
                &r.single.pull_after_one,
                Some(bytes_row(&r.single.pull_after_one).1 < 2048.0),
            ),
            (
                "push of 50 mutations (one request)".into(),
                &r.single.push_fifty,
                None,
            ),
            (
                "pull after those 50".into(),
                &r.single.pull_after_fifty,
                None,
            ),
        ];
        for (name, t, target) in rows {
            let (p50, p99, max, _) = ms_row(t);
            let (b50, bmax) = bytes_row(t);
            out.push_str(&format!(
                "| {} | {name} | {} | {b50:.0} | {bmax:.0} | {p50:.1} | {p99:.1} | {max:.1} | {} |\n",
                r.backend.name(),
                t.len(),
                target.map_or("", yes)
            ));
        }
    }

    out.push_str(&format!(
        "\n## Sustained sync\n\n{} phones shared by {} client threads (closed loop: each thread \
         syncs its phones in turn, one request at a time); each sync records 1–{} facts, pushes \
         them and pulls. A dispatcher moves a random job to a random technician {} times a \
         second meanwhile. Sync = push + pull.\n\n",
        args.phones, args.clients, args.max_mutations, args.reassign_per_second
    ));
    out.push_str("| database | seconds | syncs | syncs/s | mutations/s | sync p50 ms | sync p99 ms | push p99 ms | pull p99 ms | pull bytes p50 | reassignments (p99 ms) | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        let s = &r.sustained;
        out.push_str(&format!(
            "| {} | {:.1} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} ({:.1}) | {} |\n",
            r.backend.name(),
            s.wall,
            s.syncs,
            s.syncs as f64 / s.wall,
            s.mutations as f64 / s.wall,
            pct(&s.sync_ms, 0.5),
            pct(&s.sync_ms, 0.99),
            pct(&s.push_ms, 0.99),
            pct(&s.pull_ms, 0.99),
            pct(&s.pull_bytes, 0.5),
            s.reassignments,
            pct(&s.reassign_ms, 0.99),
            s.errors.len(),
        ));
    }
    for r in runs {
        for e in r.sustained.errors.iter().take(5) {
            out.push_str(&format!(
                "\n- {} error: `{}`",
                r.backend.name(),
                e.replace('`', "'")
            ));
        }
    }

    out.push_str(
        "\n\n## Correctness\n\nAfter the load: every queue drained and pulled; then a fresh pull \
         without a cookie (the server's whole scope) for every phone, compared with the phone's \
         view; every fact made looked up across all scopes; `sync_facts` and `sync_rejections` \
         counted with `sqlite3` / `psql`.\n\n",
    );
    out.push_str("| database | phones | views equal to the server's | last_mutation_id = last issued, queue empty | facts made | rows in sync_facts | facts seen exactly once | missing | doubled | unknown | rejections | passed |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        let c = &r.check;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.backend.name(),
            c.phones,
            c.views_equal,
            c.lmid_equal,
            c.facts_made,
            c.sync_facts_rows,
            c.seen_once,
            c.missing,
            c.duplicated,
            c.unknown,
            c.rejections,
            yes(c.passed()),
        ));
    }
    out.push_str("\n| database | setup s (not timed) | load avg before → after |\n|---|---|---|\n");
    for r in runs {
        out.push_str(&format!(
            "| {} | {:.1} | {:.2} → {:.2} |\n",
            r.backend.name(),
            r.setup_s,
            r.load.0,
            r.load.1
        ));
    }
    out
}
