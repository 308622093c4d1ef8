//! `despacho serve --demo`: a realistic ISP operation to click through.
//!
//! On an empty database (no technician, customer or job) it loads a generated São Paulo
//! operation — 20 technicians working the 5 days from today (in São Paulo's time zone),
//! 600 jobs (about 6 per technician-day), one customer per job — the operation's
//! settings, and two territories (the city's west and east halves, split at the
//! median job longitude, each with the technicians who live in it). On a database
//! with data it loads nothing, so restarting adds nothing.
//!
//! Every start it also makes one API key per role (named `demo <role>`), revoking the
//! previous demo keys, and returns their secrets to be printed: only hashes are stored,
//! so the keys of an earlier start cannot be shown again.

use crate::server::catalog::api_keys::{insert_key, revoke_key};
use crate::server::catalog::customers::{self, Customer};
use crate::server::catalog::jobs;
use crate::server::catalog::settings::{put_settings, Settings};
use crate::server::catalog::technicians;
use crate::server::catalog::territories::{self, TerritoryInput};
use crate::server::http::auth::{new_secret, Role};
use crate::server::http::error::ApiError;
use crate::server::store::db::{on_tx, Db};
use chrono::{NaiveDate, Utc};
use despacho_solver::field::generate::{generate, City, GeneratorConfig};
use despacho_solver::field::input::{ProblemInput, Territory};

pub const DEMO_TECHNICIANS: usize = 20;
pub const DEMO_DAYS: usize = 5;
pub const DEMO_JOBS: usize = 600;
const DEMO_SEED: u64 = 2026;

/// What `--demo` did at this start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoReport {
    /// Whether the dataset was loaded now (false: the database had data already).
    pub loaded: bool,
    pub technicians: usize,
    pub jobs: usize,
    pub customers: usize,
    /// One fresh key per role: (role, technician for the technician key, secret).
    pub keys: Vec<DemoKey>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoKey {
    pub role: Role,
    pub technician_id: Option<String>,
    pub secret: String,
}

/// Loads the demo dataset if the database is empty, and makes fresh demo keys.
pub async fn load(db: &Db) -> Result<DemoReport, ApiError> {
    let city = City::SaoPaulo;
    let today: NaiveDate = Utc::now().with_timezone(&city.time_zone()).date_naive();
    let problem = generate(&GeneratorConfig {
        technicians: DEMO_TECHNICIANS,
        jobs: DEMO_JOBS,
        days: DEMO_DAYS,
        seed: DEMO_SEED,
        city,
        start_date: today,
    });
    db.write(move |tx| {
        let problem = problem.clone();
        Box::pin(async move {
            let counts: (i64, i64, i64) = on_tx!(tx, |conn| {
                sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM technicians), (SELECT COUNT(*) FROM jobs), \
                     (SELECT COUNT(*) FROM customers)",
                )
                .fetch_one(&mut *conn)
                .await
            })?;
            let empty = counts == (0, 0, 0);
            if empty {
                let now = crate::server::store::db::now();
                put_settings(
                    tx,
                    &Settings {
                        time_zone: problem.time_zone.clone(),
                        travel: problem.travel.clone(),
                        ..Settings::default()
                    },
                )
                .await?;
                for t in &problem.technicians {
                    technicians::upsert(tx, t, now).await?;
                }
                for territory in demo_territories(&problem) {
                    territories::upsert(tx, &territory, now).await?;
                }
                let mut rng = fastrand::Rng::with_seed(DEMO_SEED);
                for (i, job) in problem.jobs.iter().enumerate() {
                    let customer = Customer {
                        id: format!("cus-{:04}", i + 1),
                        name: customer_name(&mut rng),
                        phone: Some(format!("+55119{:08}", rng.u32(0..100_000_000))),
                        email: None,
                        lat: job.place.lat,
                        lon: job.place.lon,
                        address: job.place.address.clone(),
                        time_zone: None,
                        language: None,
                        preferred_channel: None,
                        opt_out: Default::default(),
                        created_at: now,
                    };
                    customers::insert(tx, &customer).await?;
                    jobs::insert(tx, job, Some(&customer.id), now).await?;
                }
            }

            let demo_names: Vec<String> = Role::ALL.iter().map(|r| key_name(*r)).collect();
            let previous: Vec<String> = on_tx!(tx, |conn| {
                let mut q = sqlx::query_scalar(
                    "SELECT id FROM api_keys WHERE revoked_at IS NULL AND name IN ($1, $2, $3, $4)",
                );
                for name in &demo_names {
                    q = q.bind(name);
                }
                q.fetch_all(&mut *conn).await
            })?;
            let now = crate::server::store::db::now();
            for id in previous {
                revoke_key(tx, &id, now).await?;
            }
            let first_technician = technicians::ids(tx).await?.into_iter().next();
            let mut keys = Vec::new();
            for role in Role::ALL {
                let technician_id = match role {
                    Role::Technician => match &first_technician {
                        Some(t) => Some(t.clone()),
                        None => continue,
                    },
                    _ => None,
                };
                let secret = new_secret()?;
                insert_key(tx, &key_name(role), role, technician_id.as_deref(), &secret).await?;
                keys.push(DemoKey {
                    role,
                    technician_id,
                    secret,
                });
            }
            let (technicians, jobs, customers) = if empty {
                (
                    problem.technicians.len(),
                    problem.jobs.len(),
                    problem.jobs.len(),
                )
            } else {
                (counts.0 as usize, counts.1 as usize, counts.2 as usize)
            };
            Ok(DemoReport {
                loaded: empty,
                technicians,
                jobs,
                customers,
                keys,
            })
        })
    })
    .await
}

/// The city's west and east halves: one rectangle around every job and home, cut at
/// the median job longitude; each technician joins the half their home is in.
fn demo_territories(problem: &ProblemInput) -> Vec<TerritoryInput> {
    let points = problem
        .jobs
        .iter()
        .map(|j| (j.place.lon, j.place.lat))
        .chain(problem.technicians.iter().map(|t| (t.home.lon, t.home.lat)));
    let (mut west, mut east, mut south, mut north) = (180.0f64, -180.0f64, 90.0f64, -90.0f64);
    for (lon, lat) in points {
        west = west.min(lon);
        east = east.max(lon);
        south = south.min(lat);
        north = north.max(lat);
    }
    let margin = 0.02; // about 2 km: nothing sits on the outer edge
    let (west, east, south, north) = (west - margin, east + margin, south - margin, north + margin);
    let mut lons: Vec<f64> = problem.jobs.iter().map(|j| j.place.lon).collect();
    lons.sort_by(f64::total_cmp);
    let cut = lons
        .get(lons.len() / 2)
        .copied()
        .unwrap_or((west + east) / 2.0);
    // Counter-clockwise rings, as RFC 7946 wants.
    let rectangle = |w: f64, e: f64| Territory::Polygon {
        coordinates: vec![vec![
            [w, south],
            [e, south],
            [e, north],
            [w, north],
            [w, south],
        ]],
    };
    let halves = [
        ("sp-oeste", "São Paulo Oeste", west, cut),
        ("sp-leste", "São Paulo Leste", cut, east),
    ];
    halves
        .iter()
        .map(|&(id, name, w, e)| TerritoryInput {
            id: id.into(),
            name: name.into(),
            area: rectangle(w, e),
            technicians: problem
                .technicians
                .iter()
                .filter(|t| {
                    let west_half = t.home.lon < cut;
                    (id == "sp-oeste") == west_half
                })
                .map(|t| t.id.clone())
                .collect(),
        })
        .collect()
}

fn key_name(role: Role) -> String {
    format!("demo {role}")
}

fn customer_name(rng: &mut fastrand::Rng) -> String {
    const FIRST: [&str; 16] = [
        "Ana",
        "Bruno",
        "Carla",
        "Diego",
        "Eduarda",
        "Felipe",
        "Gabriela",
        "Heitor",
        "Isabela",
        "João",
        "Larissa",
        "Marcos",
        "Natália",
        "Otávio",
        "Patrícia",
        "Rafael",
    ];
    const LAST: [&str; 12] = [
        "Silva",
        "Santos",
        "Oliveira",
        "Souza",
        "Lima",
        "Pereira",
        "Ferreira",
        "Costa",
        "Rodrigues",
        "Almeida",
        "Nascimento",
        "Carvalho",
    ];
    format!(
        "{} {}",
        FIRST[rng.usize(..FIRST.len())],
        LAST[rng.usize(..LAST.len())]
    )
}
