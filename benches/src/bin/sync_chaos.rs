//! Mobile sync chaos at full scale over real HTTP (RELIABILITY.md, "Tests that back the
//! claims" 6): `--devices` phones × `--mutations` each against a running `despacho
//! serve`, on SQLite and PostgreSQL, for many seeds. The CI tests keep a small version
//! (`api/tests/api/server_sync.rs`, 3 × 100); this runner is the bar.
//!
//! ```text
//! cargo build --release -p despacho-api --bin despacho && cp target/release/despacho /tmp/despacho-bench
//! cargo run --release -p despacho-benches --bin sync_chaos -- --binary /tmp/despacho-bench --seeds 1..=5
//! ```
//!
//! Each seed gets its own technicians, jobs and devices in one service per database.
//! One seeded loop plays the network: each step a device records 0–3 mutations (~10 %
//! of them doomed to be rejected) and sends a push or a pull; `--drop-requests` % of
//! requests never arrive, `--drop-answers` % of answers are lost after the server
//! committed, `--duplicates` % are sent twice, answers arrive late and in any order,
//! and partitions cut a device off for 50–300 steps (its requests are lost). A
//! dispatcher moves one job back and forth between two technicians. Then the network
//! heals: late answers arrive, every queue drains, every device pulls.
//!
//! Checked per seed: acknowledgements and cursors never went backwards; every mutation
//! id of every device is in `sync_facts` or `sync_rejections` exactly once (read with
//! `sqlite3` / `psql`), the rejected ones exactly those made to be rejected; every queue
//! drained; `last_mutation_id` = `--mutations`; every device's view equals a fresh full
//! pull of its scope. Exit 1 if any seed fails.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use despacho_benches::service::{loadavg, save_report, Backend, Database, Http, Service};
use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState, Cookie,
    PatchOp, PullResponse, ServerMessage,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DbChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    devices: usize,
    #[arg(long, default_value_t = 1000)]
    mutations: u64,
    /// Seeds, `A..=B` or a single number.
    #[arg(long, default_value = "1..=5")]
    seeds: String,
    #[arg(long, default_value_t = 20)]
    drop_requests: u8,
    #[arg(long, default_value_t = 20)]
    drop_answers: u8,
    #[arg(long, default_value_t = 10)]
    duplicates: u8,
    #[arg(long, value_enum, default_value_t = DbChoice::Both)]
    db: DbChoice,
    #[arg(long)]
    binary: Option<PathBuf>,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    #[arg(long)]
    no_save: bool,
}

fn seeds(text: &str) -> Result<Vec<u64>> {
    let bad = || anyhow!("--seeds: {text:?} is not N or A..=B");
    match text.split_once("..=") {
        Some((a, b)) => {
            let (a, b): (u64, u64) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok((a..=b).collect())
        }
        None => Ok(vec![text.trim().parse().map_err(|_| bad())?]),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let seeds = seeds(&args.seeds)?;
    if args.devices < 2 || args.mutations == 0 {
        bail!("--devices must be at least 2 and --mutations at least 1");
    }
    for (name, p) in [
        ("--drop-requests", args.drop_requests),
        ("--drop-answers", args.drop_answers),
        ("--duplicates", args.duplicates),
    ] {
        if p > 90 {
            bail!("{name}: {p} % is more than 90 %");
        }
    }
    let binary = args.binary.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/despacho")
    });
    let work = std::env::temp_dir().join(format!("despacho-sync-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let private = work.join("despacho");
    std::fs::copy(&binary, &private)
        .with_context(|| format!("cannot copy the service binary {}", binary.display()))?;
    let backends = match args.db {
        DbChoice::Sqlite => vec![Backend::Sqlite],
        DbChoice::Postgres => vec![Backend::Postgres],
        DbChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    let mut rows = Vec::new();
    for backend in backends {
        eprintln!("\n== {} ==", backend.name());
        let db = Database::create(backend, &work, &args.postgres_url, "sync_chaos")?;
        let admin = format!("bench-admin-{:016x}", fastrand::u64(..));
        let log = work.join(format!("server-{}.log", backend.name().to_lowercase()));
        let service = Service::start(&private, &db.url, &admin, &log)?;
        for &seed in &seeds {
            let started = Instant::now();
            let load = loadavg();
            let outcome = run_seed(&args, seed, &service.base, &admin, &db);
            let row = match outcome {
                Ok(mut r) => {
                    r.seconds = started.elapsed().as_secs_f64();
                    r.load = load;
                    r
                }
                Err(e) => SeedRow {
                    seed,
                    failures: vec![format!("{e:#}")],
                    ..SeedRow::default()
                },
            };
            eprintln!(
                "seed {seed}: {} requests, {:.1} s, {}",
                row.sent,
                row.seconds,
                if row.failures.is_empty() {
                    "passed".to_owned()
                } else {
                    row.failures.join("; ")
                }
            );
            rows.push(SeedRow {
                backend: Some(backend),
                ..row
            });
        }
        service.stop();
        db.remove();
    }
    let _ = std::fs::remove_dir_all(&work);
    let report = render(&args, &rows);
    println!("\n{report}");
    if !args.no_save {
        println!("wrote {}", save_report("sync-chaos", &report)?.display());
    }
    if rows.iter().any(|r| !r.failures.is_empty()) {
        std::process::exit(1);
    }
    Ok(())
}

#[derive(Default)]
struct SeedRow {
    backend: Option<Backend>,
    seed: u64,
    steps: usize,
    sent: usize,
    dropped_requests: usize,
    dropped_answers: usize,
    duplicates: usize,
    partitioned: usize,
    late: usize,
    moves: usize,
    applied: usize,
    rejected: usize,
    seconds: f64,
    load: f64,
    failures: Vec<String>,
}

struct Device {
    state: ClientState,
    key: String,
    technician: usize,
    made: u64,
    acked: u64,
    cursor: (u64, u64),
    /// Partitioned until this step.
    cut_until: usize,
}

enum Answer {
    Push(String),
    Pull(String),
}

fn post(http: &Http, key: &str, path: &str, body: &str) -> Result<String> {
    let r = http.post(key, path, body)?;
    if r.status != 200 {
        bail!(
            "{path}: {} {}",
            r.status,
            r.body.chars().take(300).collect::<String>()
        );
    }
    Ok(r.body)
}

fn run_seed(args: &Args, seed: u64, base: &str, admin: &str, db: &Database) -> Result<SeedRow> {
    let http = Http::new(base);
    let prefix = format!("s{seed}");
    let technicians = 3;
    let tech = |t: usize| format!("{prefix}-t{t}");
    let job = |j: usize| format!("{prefix}-J-{j}");
    let created = |r: despacho_benches::service::Reply, what: &str| -> Result<Value> {
        if r.status / 100 != 2 {
            bail!("{what}: {} {}", r.status, r.body);
        }
        Ok(serde_json::from_str(&r.body).unwrap_or(Value::Null))
    };
    for t in 0..technicians {
        let body = json!({
            "id": tech(t), "name": tech(t), "skills": {"fiber_splicing": 3},
            "home": {"lat": -23.55, "lon": -46.63},
            "shifts": [{"date": "2026-03-02", "start": "08:00:00", "end": "17:00:00"}],
            "cost_per_hour": 30.0, "cost_per_km": 0.7, "van_capacity": 8, "max_jobs_per_day": 10
        });
        created(
            http.post(admin, "/v1/technicians", &body.to_string())?,
            "technician",
        )?;
    }
    let dispatcher = created(
        http.post(
            admin,
            "/v1/api-keys",
            &json!({"name": "chaos dispatcher", "role": "dispatcher"}).to_string(),
        )?,
        "dispatcher key",
    )?["secret"]
        .as_str()
        .context("a key")?
        .to_owned();
    // 4 jobs per technician, one that moves between t0 and t1, one nobody holds.
    let mut holders: BTreeMap<usize, Option<usize>> = BTreeMap::new();
    for j in 0..(4 * technicians + 2) {
        let holder = if j < 4 * technicians {
            Some(j / 4)
        } else if j == 4 * technicians {
            Some(0)
        } else {
            None
        };
        let body = json!({"job": {
            "id": job(j), "kind": "repair", "place": {"lat": -23.56, "lon": -46.65},
            "duration_minutes": 30, "required_skills": {"fiber_splicing": 1},
            "windows": [{"start": "2026-03-02T08:00:00-03:00", "end": "2026-03-02T17:00:00-03:00"}]
        }});
        created(http.post(admin, "/v1/jobs", &body.to_string())?, "job")?;
        if let Some(t) = holder {
            let body = json!({"technician": tech(t)}).to_string();
            created(
                http.post(&dispatcher, &format!("/v1/jobs/{}/assign", job(j)), &body)?,
                "assign",
            )?;
        }
        holders.insert(j, holder);
    }
    let moving = 4 * technicians;
    let free = 4 * technicians + 1;
    let mut keys = Vec::new();
    for t in 0..technicians {
        let body = json!({"name": tech(t), "role": "technician", "technician_id": tech(t)});
        keys.push(
            created(http.post(admin, "/v1/api-keys", &body.to_string())?, "key")?["secret"]
                .as_str()
                .context("a key")?
                .to_owned(),
        );
    }
    let mut devices: Vec<Device> = (0..args.devices)
        .map(|d| Device {
            state: ClientState::new(ClientId(format!("{prefix}-d{d}"))),
            key: keys[d % technicians].clone(),
            technician: d % technicians,
            made: 0,
            acked: 0,
            cursor: (0, 0),
            cut_until: 0,
        })
        .collect();
    // Jobs each technician ever held (their facts on those are accepted).
    let mut ever: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (&j, &h) in &holders {
        if let Some(t) = h {
            ever.entry(t).or_default().insert(j);
        }
    }
    let mut row = SeedRow {
        seed,
        ..SeedRow::default()
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut expected_rejected: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut inflight: Vec<(usize, Answer)> = Vec::new();
    let mut moving_holder = 0;
    let mut step = 0;

    while devices.iter().any(|d| d.made < args.mutations) {
        step += 1;
        // Partitions: now and then a device is cut off for a while.
        if rng.u8(..100) == 0 {
            let d = rng.usize(..devices.len());
            devices[d].cut_until = step + rng.usize(50..=300);
        }
        let d = rng.usize(..devices.len());
        let dev = &mut devices[d];
        for _ in 0..rng.usize(..4) {
            if dev.made == args.mutations {
                break;
            }
            dev.made += 1;
            let n = dev.made;
            let id = format!("{}-{n}", dev.state.client_id());
            let mine: Vec<usize> = ever[&dev.technician].iter().copied().collect();
            let j = job(mine[rng.usize(..mine.len())]);
            let at = chrono::Utc::now().timestamp_millis();
            let (name, a) = match rng.u8(..20) {
                0 => {
                    expected_rejected.insert((dev.state.client_id().0.clone(), n));
                    (
                        "note",
                        json!({"fact_id": id, "job": job(free), "at": at, "text": "x"}),
                    )
                }
                1 => {
                    expected_rejected.insert((dev.state.client_id().0.clone(), n));
                    (
                        "note",
                        json!({"fact_id": id, "job": j, "at": at, "text": " "}),
                    )
                }
                2..=6 => (
                    "equipment",
                    json!({"fact_id": id, "job": j, "at": at, "serial": format!("SN-{id}"),
                           "action": if n.is_multiple_of(2) { "installed" } else { "collected" }}),
                ),
                7..=9 => (
                    "upsell_outcome",
                    json!({"offer_id": id, "job": j, "at": at, "product_code": "MESH-2",
                           "price_cents": 1500, "billing": "monthly", "outcome": "accepted"}),
                ),
                _ => (
                    "note",
                    json!({"fact_id": id, "job": j, "at": at, "text": format!("note {n}")}),
                ),
            };
            dev.state.record(name, a);
        }
        let is_push = rng.bool() && dev.state.pending().len() > 0;
        let (path, body) = if is_push {
            (
                "/v1/sync/push",
                generate_message(&mut dev.state).expect("pending").encode(),
            )
        } else {
            ("/v1/sync/pull", generate_pull(&dev.state).encode())
        };
        if dev.cut_until > step {
            row.partitioned += 1;
        } else if rng.u8(..100) < args.drop_requests {
            row.dropped_requests += 1;
        } else {
            let copies = if rng.u8(..100) < args.duplicates {
                2
            } else {
                1
            };
            row.duplicates += copies - 1;
            for _ in 0..copies {
                let text = post(&http, &dev.key, path, &body)?;
                row.sent += 1;
                if rng.u8(..100) < args.drop_answers {
                    row.dropped_answers += 1;
                } else if is_push {
                    inflight.push((d, Answer::Push(text)));
                } else {
                    inflight.push((d, Answer::Pull(text)));
                }
            }
        }
        // Answers arrive late and in any order.
        while !inflight.is_empty() && rng.u8(..100) < 60 {
            let (d, answer) = inflight.swap_remove(rng.usize(..inflight.len()));
            if !inflight.is_empty() {
                row.late += 1;
            }
            take_in(&mut devices[d], answer)?;
        }
        // The dispatcher moves one job between t0 and t1.
        if rng.u8(..100) < 2 {
            moving_holder = 1 - moving_holder;
            let body = json!({"technician": tech(moving_holder)}).to_string();
            post(
                &http,
                &dispatcher,
                &format!("/v1/jobs/{}/assign", job(moving)),
                &body,
            )?;
            ever.entry(moving_holder).or_default().insert(moving);
            row.moves += 1;
        }
    }
    row.steps = step;

    // The network heals.
    while let Some((d, answer)) = inflight.pop() {
        take_in(&mut devices[d], answer)?;
    }
    for dev in &mut devices {
        for _ in 0..(args.mutations as usize / 10 + 5) {
            let Some(m) = generate_message(&mut dev.state) else {
                break;
            };
            let text = post(&http, &dev.key, "/v1/sync/push", &m.encode())?;
            take_in(dev, Answer::Push(text))?;
        }
        if dev.state.pending().len() > 0 {
            row.failures.push(format!(
                "{}: the queue did not drain",
                dev.state.client_id()
            ));
        }
    }
    // Pulls only once every queue drained: devices share technicians, so a later
    // device's push changes an earlier device's scope.
    for dev in &mut devices {
        let text = post(
            &http,
            &dev.key,
            "/v1/sync/pull",
            &generate_pull(&dev.state).encode(),
        )?;
        take_in(dev, Answer::Pull(text))?;
    }

    // Every mutation applied or rejected exactly once.
    let like = format!("{prefix}-d%");
    let facts = db.lines(&format!(
        "SELECT client_id || ':' || mutation_id FROM sync_facts WHERE client_id LIKE '{like}'"
    ))?;
    let rejections = db.lines(&format!(
        "SELECT client_id || ':' || mutation_id FROM sync_rejections WHERE client_id LIKE '{like}'"
    ))?;
    row.applied = facts.len();
    row.rejected = rejections.len();
    let parse = |l: &String| -> Result<(String, u64)> {
        let (c, m) = l.rsplit_once(':').context("client:mutation")?;
        Ok((c.to_owned(), m.parse()?))
    };
    let facts: Vec<(String, u64)> = facts.iter().map(parse).collect::<Result<_>>()?;
    let rejections: Vec<(String, u64)> = rejections.iter().map(parse).collect::<Result<_>>()?;
    let rejected_set: BTreeSet<_> = rejections.iter().cloned().collect();
    if rejected_set != expected_rejected {
        row.failures.push(format!(
            "rejections differ: {} stored, {} expected",
            rejected_set.len(),
            expected_rejected.len()
        ));
    }
    let mut all: BTreeSet<(String, u64)> = facts.iter().cloned().collect();
    if all.len() != facts.len() || rejected_set.len() != rejections.len() {
        row.failures.push("a mutation stored twice".into());
    }
    all.extend(rejected_set);
    if all.len() != facts.len() + rejections.len() {
        row.failures
            .push("a mutation both applied and rejected".into());
    }
    let every: BTreeSet<(String, u64)> = devices
        .iter()
        .flat_map(|d| (1..=args.mutations).map(move |n| (d.state.client_id().0.clone(), n)))
        .collect();
    if all != every {
        row.failures.push(format!(
            "{} mutations missing, {} unexpected",
            every.difference(&all).count(),
            all.difference(&every).count()
        ));
    }
    // Every device converged to the server's view.
    for dev in &devices {
        let fresh = json!({"schema_version": 1, "message": {"client_id": dev.state.client_id()}})
            .to_string();
        let full = PullResponse::decode(&post(&http, &dev.key, "/v1/sync/pull", &fresh)?)
            .map_err(|e| anyhow!("fresh pull: {e}"))?;
        let scope: BTreeMap<String, Value> = full
            .patch
            .into_iter()
            .filter_map(|op| match op {
                PatchOp::Put { key, value } => Some((key, value)),
                _ => None,
            })
            .collect();
        if *dev.state.confirmed() != scope || dev.state.view() != scope {
            row.failures.push(format!(
                "{}: the view differs from the server's scope",
                dev.state.client_id()
            ));
        }
        if full.last_mutation_id.0 != args.mutations {
            row.failures.push(format!(
                "{}: last_mutation_id {}",
                dev.state.client_id(),
                full.last_mutation_id
            ));
        }
    }
    if row.dropped_requests == 0 || row.dropped_answers == 0 || row.partitioned == 0 {
        row.failures.push("the network was not flaky".into());
    }
    Ok(row)
}

/// Takes in a (late, maybe duplicated) answer; acknowledgements and cursors must never
/// go backwards.
fn take_in(dev: &mut Device, answer: Answer) -> Result<()> {
    match answer {
        Answer::Push(text) => {
            let ack = ServerMessage::decode(&text).map_err(|e| anyhow!("ack: {e}"))?;
            receive_message(&mut dev.state, ack).map_err(|e| anyhow!("ack: {e}"))?;
        }
        Answer::Pull(text) => {
            let answer = PullResponse::decode(&text).map_err(|e| anyhow!("pull: {e}"))?;
            receive_pull(&mut dev.state, answer).map_err(|e| anyhow!("pull: {e}"))?;
        }
    }
    let acked = dev.state.last_acknowledged().0;
    if acked < dev.acked {
        bail!("{}: acknowledgement went backwards", dev.state.client_id());
    }
    dev.acked = acked;
    if let Some((e, v)) = dev.state.cookie().and_then(Cookie::order) {
        if (e.0, v.0) < dev.cursor {
            bail!("{}: cursor went backwards", dev.state.client_id());
        }
        dev.cursor = (e.0, v.0);
    }
    Ok(())
}

fn render(args: &Args, rows: &[SeedRow]) -> String {
    let mut out = String::new();
    let now = chrono::Local::now();
    out.push_str("# Mobile sync chaos over HTTP (`despacho serve`)\n\n");
    out.push_str(&format!(
        "{} on `{}` ({} CPUs). Per seed: {} devices (3 technicians) × {} mutations; {} % of \
         requests dropped, {} % of answers lost after commit, {} % sent twice, answers \
         delivered late in any order, partitions of 50–300 steps, one job moved between two \
         technicians. Checks: acknowledgements and cursors never go backwards; each mutation \
         applied or rejected exactly once (from the database); queues drain; every view equals \
         the server's scope.\n\n",
        now.format("%Y-%m-%d %H:%M"),
        despacho_benches::output::hostname(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.devices,
        args.mutations,
        args.drop_requests,
        args.drop_answers,
        args.duplicates,
    ));
    out.push_str("Command: `cargo run --release -p despacho-benches --bin sync_chaos --");
    for a in std::env::args().skip(1) {
        out.push(' ');
        out.push_str(&a);
    }
    out.push_str("`\n\n| database | seed | steps | requests sent | dropped requests | answers lost | duplicates | partitioned requests | late answers | job moves | applied | rejected | seconds | load avg | passed |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.2} | {} |\n",
            r.backend.map_or("?", Backend::name),
            r.seed,
            r.steps,
            r.sent,
            r.dropped_requests,
            r.dropped_answers,
            r.duplicates,
            r.partitioned,
            r.late,
            r.moves,
            r.applied,
            r.rejected,
            r.seconds,
            r.load,
            if r.failures.is_empty() {
                "yes".to_owned()
            } else {
                format!("**no**: {}", r.failures.join("; "))
            },
        ));
    }
    out
}
