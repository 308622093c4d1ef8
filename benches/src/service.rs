//! A `despacho serve` for load runners: a private copy of the binary on a fresh SQLite
//! file or a fresh PostgreSQL database, started on a free port and stopped (SIGTERM,
//! then SIGKILL) at the end; plus a keep-alive JSON client and percentiles.
//! (`booking_load` predates this module and keeps its own copy.)

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A fresh database: a SQLite file in `work`, or a new PostgreSQL database on the
/// server at `postgres_url` (dropped by [`Database::remove`]).
pub struct Database {
    pub backend: Backend,
    pub url: String,
    postgres: Option<(String, String)>,
    sqlite: Option<PathBuf>,
}

impl Database {
    pub fn create(
        backend: Backend,
        work: &Path,
        postgres_url: &str,
        tag: &str,
    ) -> Result<Database> {
        let suffix = format!("{}_{:08x}", std::process::id(), fastrand::u32(..));
        match backend {
            Backend::Sqlite => {
                let path = work.join(format!("{tag}.db"));
                remove_sqlite(&path);
                Ok(Database {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    postgres: None,
                    sqlite: Some(path),
                })
            }
            Backend::Postgres => {
                let name = format!("bench_{tag}_{suffix}");
                let admin = with_database(postgres_url, "postgres");
                psql(&admin, &format!("CREATE DATABASE {name}"))?;
                Ok(Database {
                    backend,
                    url: with_database(postgres_url, &name),
                    postgres: Some((admin, name)),
                    sqlite: None,
                })
            }
        }
    }

    /// One SQL query's single value, read straight from the database (not through the
    /// service): `sqlite3` or `psql`.
    pub fn scalar(&self, sql: &str) -> Result<String> {
        match (&self.sqlite, &self.postgres) {
            (Some(path), _) => {
                let out = Command::new("sqlite3")
                    .arg(path)
                    .arg(sql)
                    .output()
                    .context("cannot run sqlite3")?;
                if !out.status.success() {
                    bail!(
                        "sqlite3 failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Ok(String::from_utf8(out.stdout)?.trim().to_owned())
            }
            _ => Ok(psql(&self.url, sql)?.trim().to_owned()),
        }
    }

    /// The rows of one SQL query, one line each (columns joined with `|`).
    pub fn lines(&self, sql: &str) -> Result<Vec<String>> {
        Ok(self
            .scalar(sql)?
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect())
    }

    pub fn remove(self) {
        if let Some((admin, name)) = &self.postgres {
            if let Err(e) = psql(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ) {
                eprintln!("warning: could not drop database {name}: {e}");
            }
        }
        if let Some(path) = &self.sqlite {
            remove_sqlite(path);
        }
    }
}

fn remove_sqlite(path: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

/// `psql` on `url` (a postgres:// URL with its database), one command, tuples only.
pub fn psql(url: &str, sql: &str) -> Result<String> {
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

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let base = url.trim_end_matches('/');
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}")
}

/// A running `despacho serve`.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Service {
    /// Starts `binary serve` on `database_url`; its stderr goes to `log`.
    pub fn start(
        binary: &Path,
        database_url: &str,
        admin_key: &str,
        log: &Path,
    ) -> Result<Service> {
        let log_file = std::fs::File::create(log)?;
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("DESPACHO_ADMIN_KEY", admin_key)
            .env(
                "RUST_LOG",
                std::env::var("SYNC_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                        sent = true;
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Ok(Service { child, base }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the service did not print its address within 60 s; its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }

    /// SIGKILL, at once (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after 15 s.
    pub fn stop(mut self) {
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
        self.kill();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// An HTTP answer: status, body, time from send to the last byte.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

/// One keep-alive connection (a ureq agent) to the service.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Http {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
            base: base.to_owned(),
        }
    }

    /// POST of a JSON body with `key`. `Err` when no complete answer came back.
    pub fn post(&self, key: &str, path: &str, body: &str) -> Result<Reply> {
        let started = Instant::now();
        let mut response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .send(body)
            .with_context(|| format!("POST {path}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .with_context(|| format!("POST {path}: reading the body"))?;
        Ok(Reply {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }
}

/// The `p` quantile (0..=1) of `values`, nearest rank; NaN when empty.
pub fn pct(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The 1-minute load average (`/proc/loadavg`), NaN where there is none.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Writes `report` to `benches/results/{stem}-{date}-{host}[-HHMM].md` and returns the path.
pub fn save_report(stem: &str, report: &str) -> Result<PathBuf> {
    let dir = crate::default_results_dir();
    let now = chrono::Local::now();
    let stem = format!(
        "{stem}-{}-{}",
        now.format("%Y-%m-%d"),
        crate::output::hostname()
    );
    let (_, md) = crate::output::free_result_paths(&dir, &stem, &now.format("%H%M").to_string());
    let mut f = std::fs::File::create(&md)?;
    f.write_all(report.as_bytes())?;
    Ok(md)
}
