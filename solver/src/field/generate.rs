//! Synthetic field-service problems that look like an ISP's planning day, for demos,
//! benches and property tests.
//!
//! What a dispatcher would see in São Paulo, Recife or Lisbon:
//!
//! - **Demand clustered in real neighbourhoods.** A job picks a neighbourhood by weight,
//!   then a point around its centre (a bell-shaped spread of 1–3 km), redrawn when it
//!   falls outside the city radius or in the water (the Atlantic off Recife, the Tagus).
//! - **The job mix of an ISP:** ~45 % installations, ~35 % repairs, ~12 % equipment
//!   returns, ~5 % network maintenance, ~3 % site surveys (business only); ~20 % business
//!   customers, whose repairs are due within 4 hours (SLA) and rank higher.
//! - **Customer-chosen windows:** 2 hours on the hour between 08:00 and 18:00 local time
//!   (~10 % 4 hours, ~5 % two alternatives on different days), written with the city's UTC
//!   offset *of that date* (Lisbon moves from +00:00 to +01:00 at the end of March).
//! - **Technicians** leaving from home, with a shift every day (mostly 08:00–17:00), a
//!   45-minute lunch, an hour of overtime, skills with levels, a van and, for about one in
//!   ten, a territory. Every job has at least one technician without a territory who has
//!   its skills.
//!
//! ## Size
//!
//! On-site time averages about an hour (installations 60–120 min, repairs 30–90 min,
//! most of them near the short end) and urban travel adds 10–15 minutes a job, so a
//! technician-day (8¼ h of work plus 1 h overtime) fits about **7 jobs**, well below the
//! `max_jobs_per_day` of 10–12. For a problem a good planner can serve almost entirely,
//! use about 6 jobs per technician-day (50 technicians, 1 day → ~300 jobs); 600 jobs for
//! 50 technicians leave a third or more unplanned. (A crude greedy serves 88 % of 300
//! such jobs with 50 technicians, 56 % of 600.)
//!
//! The same [`GeneratorConfig`] (seed included) always gives the same problem.
//!
//! ```
//! use despacho_solver::field::generate::{generate, GeneratorConfig};
//! let config = GeneratorConfig {
//!     technicians: 5,
//!     jobs: 30,
//!     days: 1,
//!     seed: 7,
//!     city: "recife".parse().unwrap(),
//!     start_date: chrono::NaiveDate::from_ymd_opt(2026, 5, 4).unwrap(),
//! };
//! let problem = generate(&config);
//! assert_eq!(problem.time_zone, "America/Recife");
//! assert_eq!(problem.jobs.len(), 30);
//! assert_eq!(problem, generate(&config));
//! ```

use super::input::{
    BreakRule, CustomerTier, Equipment, JobInput, JobKind, ObjectiveWeights, Place, ProblemInput,
    Shift, Technician, Territory, WindowInput, PROBLEM_VERSION,
};
use super::travel::{Coord, TravelOptions};
use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveTime, TimeDelta, TimeZone};
use chrono_tz::Tz;
use fastrand::Rng;
use geo::{Distance as _, Haversine, Point};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorConfig {
    pub technicians: usize,
    pub jobs: usize,
    /// Planning days from `start_date` on; every technician works each of them.
    /// 0 counts as 1.
    pub days: usize,
    pub seed: u64,
    pub city: City,
    /// The first planning day.
    pub start_date: NaiveDate,
}

impl Default for GeneratorConfig {
    /// A small day in São Paulo: 10 technicians, 60 jobs, Monday 2 March 2026.
    fn default() -> Self {
        Self {
            technicians: 10,
            jobs: 60,
            days: 1,
            seed: 1,
            city: City::SaoPaulo,
            start_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        }
    }
}

/// A city the generator knows: centre, radius, time zone and demand clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum City {
    SaoPaulo,
    Recife,
    Lisbon,
}

impl City {
    /// Every city, in the order of their names in [`UnknownCity`]'s message.
    pub const ALL: [City; 3] = [City::SaoPaulo, City::Recife, City::Lisbon];

    /// The name [`FromStr`] reads and [`fmt::Display`] writes: `sao-paulo`, `recife`, `lisbon`.
    pub fn slug(self) -> &'static str {
        self.profile().slug
    }

    /// The city's name as people write it: "São Paulo", "Recife", "Lisbon".
    pub fn name(self) -> &'static str {
        self.profile().name
    }

    /// The IANA time zone of the city.
    pub fn time_zone(self) -> Tz {
        self.profile().tz
    }

    /// Centre of the circle every generated place lies in.
    pub fn centre(self) -> Coord {
        let (lat, lon) = self.profile().centre;
        Coord { lat, lon }
    }

    /// Radius of that circle, km (great-circle).
    pub fn radius_km(self) -> f64 {
        self.profile().radius_km
    }

    fn profile(self) -> &'static Profile {
        match self {
            City::SaoPaulo => &SAO_PAULO,
            City::Recife => &RECIFE,
            City::Lisbon => &LISBON,
        }
    }
}

impl fmt::Display for City {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A city name [`City::from_str`] does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown city `{input}`; expected one of: sao-paulo, recife, lisbon")]
#[non_exhaustive]
pub struct UnknownCity {
    pub input: String,
}

impl FromStr for City {
    type Err = UnknownCity;

    /// Case, accents, spaces and underscores do not matter: "São Paulo", "sao_paulo" and
    /// "SAO-PAULO" are all São Paulo; Lisbon is also "Lisboa".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| match c {
                'á' | 'à' | 'â' | 'ã' => 'a',
                'é' | 'ê' => 'e',
                'í' => 'i',
                'ó' | 'ô' | 'õ' => 'o',
                'ú' => 'u',
                'ç' => 'c',
                ' ' | '_' => '-',
                c => c,
            })
            .collect();
        match key.as_str() {
            "sao-paulo" | "saopaulo" => Ok(City::SaoPaulo),
            "recife" => Ok(City::Recife),
            "lisbon" | "lisboa" => Ok(City::Lisbon),
            _ => Err(UnknownCity {
                input: s.to_owned(),
            }),
        }
    }
}

/// A generated problem for `config`; the same config always gives the same problem.
pub fn generate(config: &GeneratorConfig) -> ProblemInput {
    let profile = config.city.profile();
    let mut rng = Rng::with_seed(config.seed);
    let dates: Vec<NaiveDate> = (0..config.days.max(1) as u64)
        .map(|d| config.start_date + Days::new(d))
        .collect();

    let tech_width = digits(config.technicians).max(3);
    let mut used_names = HashSet::new();
    let mut technicians: Vec<Technician> = (0..config.technicians)
        .map(|i| {
            let id = format!("tech-{:0tech_width$}", i + 1);
            technician(&mut rng, profile, id, &dates, &mut used_names)
        })
        .collect();
    give_territories(&mut rng, profile, &mut technicians);

    let job_width = digits(config.jobs).max(4);
    let jobs: Vec<JobInput> = (0..config.jobs)
        .map(|i| {
            job(
                &mut rng,
                profile,
                format!("job-{:0job_width$}", i + 1),
                &dates,
            )
        })
        .collect();
    ensure_coverage(&mut technicians, &jobs);

    let skills: BTreeSet<String> = technicians
        .iter()
        .flat_map(|t| t.skills.keys())
        .chain(jobs.iter().flat_map(|j| j.required_skills.keys()))
        .cloned()
        .collect();

    ProblemInput {
        version: PROBLEM_VERSION,
        time_zone: profile.tz.name().to_owned(),
        skills: Some(skills.into_iter().collect()),
        technicians,
        jobs,
        travel: TravelOptions::default(),
        objective: ObjectiveWeights::default(),
    }
}

// ---------------------------------------------------------------------------------------
// Technicians

const PPPOE: &str = "pppoe";
const FIBER: &str = "fiber_splicing";
const BUSINESS_NETWORK: &str = "business_network";
const IPTV: &str = "iptv";

fn technician(
    rng: &mut Rng,
    profile: &Profile,
    id: String,
    dates: &[NaiveDate],
    used_names: &mut HashSet<String>,
) -> Technician {
    let name = person_name(rng, profile, used_names);
    let home = home_place(rng, profile);

    let mut skills = BTreeMap::new();
    skills.insert(PPPOE.to_owned(), 1 + u8::from(rng.f64() < 0.3));
    if rng.f64() < 0.80 {
        skills.insert(
            FIBER.to_owned(),
            pick_weighted(rng, &[(1, 35), (2, 40), (3, 25)]),
        );
    }
    if rng.f64() < 0.30 {
        skills.insert(
            BUSINESS_NETWORK.to_owned(),
            pick_weighted(rng, &[(1, 65), (2, 35)]),
        );
    }
    if rng.f64() < 0.40 {
        skills.insert(IPTV.to_owned(), 1);
    }

    let (start, end) = pick_weighted(rng, &[((8, 17), 70), ((7, 16), 15), ((9, 18), 15)]);
    let cost_per_hour = round2(rng_range(rng, 25.0, 40.0) * profile.cost_scale);
    let cost_per_km = round2(rng_range(rng, 0.6, 0.9) * profile.cost_scale);
    let overtime_cost_per_hour = round2(1.5 * cost_per_hour);
    let shifts = dates
        .iter()
        .map(|&date| Shift {
            date,
            start: hm(start, 0),
            end: hm(end, 0),
            start_place: None,
            end_place: None,
            break_rule: Some(BreakRule {
                duration_minutes: 45,
                earliest_start: hm(11, 30),
                latest_end: hm(14, 0),
            }),
            overtime_minutes: 60,
            overtime_cost_per_hour,
        })
        .collect();

    Technician {
        id,
        name: Some(name),
        skills,
        home,
        shifts,
        cost_per_hour,
        cost_per_km,
        territory: None,
        van_capacity: Some(rng.u32(6..=10)),
        max_jobs_per_day: Some(rng.u32(10..=12)),
    }
}

/// A first name and a surname, avoiding repeats while there are fresh ones to draw.
fn person_name(rng: &mut Rng, profile: &Profile, used: &mut HashSet<String>) -> String {
    let mut name = String::new();
    for _ in 0..20 {
        name = format!(
            "{} {}",
            profile.first_names[rng.usize(..profile.first_names.len())],
            profile.surnames[rng.usize(..profile.surnames.len())]
        );
        if !used.contains(&name) {
            break;
        }
    }
    used.insert(name.clone());
    name
}

/// A home anywhere on land in the inner 90 % of the city circle.
fn home_place(rng: &mut Rng, profile: &Profile) -> Place {
    for _ in 0..50 {
        let r = 0.9 * profile.radius_km * rng.f64().sqrt();
        let angle = std::f64::consts::TAU * rng.f64();
        let (lat, lon) = offset_km(profile.centre, r * angle.sin(), r * angle.cos());
        let (lat, lon) = (round6(lat), round6(lon));
        if profile.contains(lat, lon) {
            return place(rng, profile, lat, lon, nearest_hood(profile, lat, lon));
        }
    }
    let hood = &profile.hoods[0];
    place(rng, profile, hood.lat, hood.lon, hood)
}

/// About one technician in ten (none below ten) serves only a square or hexagon of
/// 3.5–6 km around a neighbourhood, and lives inside it.
fn give_territories(rng: &mut Rng, profile: &Profile, technicians: &mut [Technician]) {
    let mut order: Vec<usize> = (0..technicians.len()).collect();
    rng.shuffle(&mut order);
    for &t in &order[..technicians.len() / 10] {
        let hood = pick_hood(rng, profile);
        let radius_km = rng_range(rng, 3.5, 6.0);
        let corners = if rng.bool() { 4 } else { 6 };
        let turn = std::f64::consts::TAU * rng.f64();
        // Counter-clockwise, as RFC 7946 wants exterior rings.
        let mut ring: Vec<[f64; 2]> = (0..corners)
            .map(|k| {
                let angle = turn + std::f64::consts::TAU * k as f64 / corners as f64;
                let (lat, lon) = offset_km(
                    (hood.lat, hood.lon),
                    radius_km * angle.sin(),
                    radius_km * angle.cos(),
                );
                [round6(lon), round6(lat)]
            })
            .collect();
        ring.push(ring[0]);
        let technician = &mut technicians[t];
        technician.territory = Some(Territory::Polygon {
            coordinates: vec![ring],
        });
        // Within 1.5 km of the centre: well inside even a square of 3.5 km.
        let (lat, lon) = point_near(rng, profile, hood, 0.5, 1.5);
        technician.home = place(rng, profile, lat, lon, hood);
    }
}

/// Every job gets a technician without a territory who has its skills: when none has, the
/// one missing the fewest levels learns them. With a few dozen technicians this hardly
/// ever happens; with two or three it keeps small problems servable.
fn ensure_coverage(technicians: &mut [Technician], jobs: &[JobInput]) {
    for job in jobs {
        let missing = |t: &Technician| -> u32 {
            job.required_skills
                .iter()
                .map(|(skill, &level)| {
                    u32::from(level.saturating_sub(t.skills.get(skill).copied().unwrap_or(0)))
                })
                .sum()
        };
        let best = technicians
            .iter()
            .enumerate()
            .filter(|(_, t)| t.territory.is_none())
            .min_by_key(|&(i, t)| (missing(t), i));
        if let Some((i, t)) = best {
            if missing(t) > 0 {
                for (skill, &level) in &job.required_skills {
                    let have = technicians[i].skills.entry(skill.clone()).or_insert(0);
                    *have = (*have).max(level);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Jobs

fn job(rng: &mut Rng, profile: &Profile, id: String, dates: &[NaiveDate]) -> JobInput {
    use JobKind::*;
    let kind = pick_weighted(
        rng,
        &[
            (Installation, 45),
            (Repair, 35),
            (EquipmentReturn, 12),
            (Maintenance, 5),
            (SiteSurvey, 3),
        ],
    );
    // Site surveys are all business; the others are business at a rate that brings the
    // overall share to about 20 %.
    let business = kind == SiteSurvey || rng.f64() < 0.175;
    let tier = if business {
        CustomerTier::Business
    } else {
        CustomerTier::Residential
    };

    let hood = pick_hood(rng, profile);
    let (lat, lon) = point_near(rng, profile, hood, hood.spread_km, 3.0 * hood.spread_km);
    let place = place(rng, profile, lat, lon, hood);

    let mut required_skills = BTreeMap::new();
    let mut duration_by_level = BTreeMap::new();
    let mut equipment = Equipment::default();
    let duration_minutes;
    let priority;
    match kind {
        Installation => {
            duration_minutes = short_leaning(rng, 60, 120);
            let fiber_level = if rng.f64() < 0.75 {
                let level = pick_weighted(rng, &[(1, 50), (2, 35), (3, 15)]);
                required_skills.insert(FIBER.to_owned(), level);
                Some(level)
            } else {
                required_skills.insert(PPPOE.to_owned(), 1);
                None
            };
            if rng.f64() < 0.15 {
                required_skills.insert(IPTV.to_owned(), 1);
            }
            if business && rng.f64() < 0.5 {
                required_skills.insert(BUSINESS_NETWORK.to_owned(), 1);
            }
            // `duration_by_level` follows the first required skill (in name order), so
            // only when that is fiber splicing.
            let fiber_first = required_skills.keys().next().map(String::as_str) == Some(FIBER);
            if let Some(level) = fiber_level.filter(|&l| l < 3 && fiber_first) {
                if rng.f64() < 0.4 {
                    duration_by_level.insert(3, scaled(duration_minutes, 0.8));
                    if level == 1 && rng.bool() {
                        duration_by_level.insert(2, scaled(duration_minutes, 0.9));
                    }
                }
            }
            equipment.deliver = 1 + u32::from(rng.f64() < 0.4);
            priority = if business {
                rng.u8(6..=7)
            } else {
                rng.u8(4..=6)
            };
        }
        Repair => {
            duration_minutes = short_leaning(rng, 30, 90);
            if rng.f64() < 0.45 {
                required_skills.insert(FIBER.to_owned(), pick_weighted(rng, &[(1, 70), (2, 30)]));
            } else {
                required_skills.insert(PPPOE.to_owned(), 1);
            }
            if business && rng.bool() {
                required_skills.insert(
                    BUSINESS_NETWORK.to_owned(),
                    pick_weighted(rng, &[(1, 70), (2, 30)]),
                );
            }
            if rng.f64() < 0.25 {
                // A faulty modem swapped for a new one.
                equipment = Equipment {
                    deliver: 1,
                    collect: 1,
                };
            }
            priority = if business {
                rng.u8(7..=9)
            } else {
                rng.u8(4..=6)
            };
        }
        EquipmentReturn => {
            duration_minutes = rng.u32(15..=20);
            equipment.collect = pick_weighted(rng, &[(1, 60), (2, 30), (3, 10)]);
            priority = if business {
                rng.u8(4..=5)
            } else {
                rng.u8(3..=4)
            };
        }
        Maintenance => {
            duration_minutes = short_leaning(rng, 45, 90);
            required_skills.insert(FIBER.to_owned(), 2);
            priority = if business {
                rng.u8(6..=7)
            } else {
                rng.u8(3..=5)
            };
        }
        SiteSurvey => {
            duration_minutes = short_leaning(rng, 45, 75);
            required_skills.insert(BUSINESS_NETWORK.to_owned(), 1);
            priority = rng.u8(5..=6);
        }
    }

    let windows = windows(rng, profile.tz, dates);
    let sla_due = (business && kind == Repair).then(|| windows[0].start + TimeDelta::hours(4));

    JobInput {
        id,
        kind,
        tier,
        place,
        duration_minutes,
        duration_by_level,
        required_skills,
        windows,
        priority,
        sla_due,
        pinned_technician: None,
        pinned_start: None,
        preferred_technician: None,
        equipment,
        same_technician_as: None,
        after_job: None,
    }
}

/// Popularity of 2-hour slots by start hour: mornings and early afternoons; the last
/// slot (16:00–18:00) is rarer.
const SLOT_HOURS: [(u32, u32); 9] = [
    (8, 14),
    (9, 14),
    (10, 14),
    (11, 11),
    (12, 8),
    (13, 12),
    (14, 12),
    (15, 9),
    (16, 6),
];

/// One 2-hour window (85 %), one 4-hour window (10 %), or two 2-hour alternatives on
/// different days (5 %, when there are several days), in start order.
fn windows(rng: &mut Rng, tz: Tz, dates: &[NaiveDate]) -> Vec<WindowInput> {
    let draw = rng.f64();
    let two_hours = |rng: &mut Rng, date| {
        let hour = pick_weighted(rng, &SLOT_HOURS);
        window(tz, date, hour, 2)
    };
    if draw < 0.05 && dates.len() > 1 {
        let first = rng.usize(..dates.len());
        let second = (first + rng.usize(1..dates.len())) % dates.len();
        let (a, b) = (first.min(second), first.max(second));
        vec![two_hours(rng, dates[a]), two_hours(rng, dates[b])]
    } else if draw < 0.15 {
        let date = dates[rng.usize(..dates.len())];
        let hour = [8, 9, 10, 12, 13, 14][rng.usize(..6)];
        vec![window(tz, date, hour, 4)]
    } else {
        let date = dates[rng.usize(..dates.len())];
        vec![two_hours(rng, date)]
    }
}

fn window(tz: Tz, date: NaiveDate, hour: u32, hours: u32) -> WindowInput {
    WindowInput {
        start: local_time(tz, date, hm(hour, 0)),
        end: local_time(tz, date, hm(hour + hours, 0)),
    }
}

/// The instant of a local wall-clock time, with the offset in force then. In a gap (a
/// clock jumping forward) the time moves forward until it exists; in a fold the first
/// occurrence wins. Neither happens between 08:00 and 18:00 in these cities.
fn local_time(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<FixedOffset> {
    let mut naive = date.and_time(time);
    loop {
        if let Some(t) = tz.from_local_datetime(&naive).earliest() {
            return t.fixed_offset();
        }
        naive += TimeDelta::minutes(15);
    }
}

/// Whole minutes in `lo..=hi` on 5-minute steps, most of them near `lo` (the smaller of
/// two uniform draws: mean a third of the way up), as most visits go as planned and a
/// few drag on.
fn short_leaning(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    let x = rng.f64().min(rng.f64());
    let steps = ((hi - lo) as f64 / 5.0 * x).round() as u32;
    lo + 5 * steps
}

fn scaled(minutes: u32, factor: f64) -> u32 {
    (minutes as f64 * factor).round() as u32
}

// ---------------------------------------------------------------------------------------
// Places

fn pick_hood<'a>(rng: &mut Rng, profile: &'a Profile) -> &'a Hood {
    let total: f64 = profile.hoods.iter().map(|h| h.weight).sum();
    let mut x = rng.f64() * total;
    for hood in profile.hoods {
        if x < hood.weight {
            return hood;
        }
        x -= hood.weight;
    }
    &profile.hoods[profile.hoods.len() - 1]
}

/// A point around the neighbourhood centre: each axis a bell-shaped offset (the sum of
/// three uniform draws) with standard deviation `sigma_km`, at most `max_km` away; drawn
/// again while outside the city or in the water, else the centre itself.
fn point_near(
    rng: &mut Rng,
    profile: &Profile,
    hood: &Hood,
    sigma_km: f64,
    max_km: f64,
) -> (f64, f64) {
    for _ in 0..30 {
        let north = bell(rng) * sigma_km;
        let east = bell(rng) * sigma_km;
        if north.hypot(east) > max_km {
            continue;
        }
        let (lat, lon) = offset_km((hood.lat, hood.lon), north, east);
        let (lat, lon) = (round6(lat), round6(lon));
        if profile.contains(lat, lon) {
            return (lat, lon);
        }
    }
    (hood.lat, hood.lon)
}

/// Roughly standard normal: the sum of three uniforms on [−1, 1] has variance 1.
fn bell(rng: &mut Rng) -> f64 {
    (rng.f64() + rng.f64() + rng.f64()) * 2.0 - 3.0
}

fn place(rng: &mut Rng, profile: &Profile, lat: f64, lon: f64, hood: &Hood) -> Place {
    let street = profile.streets[rng.usize(..profile.streets.len())];
    let number = rng.u32(1..=profile.max_house_number);
    Place {
        lat,
        lon,
        address: Some(format!("{street}, {number} — {}", hood.name)),
        location_id: None,
    }
}

fn nearest_hood(profile: &Profile, lat: f64, lon: f64) -> &Hood {
    profile
        .hoods
        .iter()
        .min_by(|a, b| {
            distance_km((lat, lon), (a.lat, a.lon))
                .total_cmp(&distance_km((lat, lon), (b.lat, b.lon)))
        })
        .unwrap()
}

/// Moves `north_km` and `east_km` from `from` on a local flat approximation.
fn offset_km(from: (f64, f64), north_km: f64, east_km: f64) -> (f64, f64) {
    const KM_PER_DEGREE: f64 = 111.32;
    let (lat, lon) = from;
    (
        lat + north_km / KM_PER_DEGREE,
        lon + east_km / (KM_PER_DEGREE * lat.to_radians().cos()),
    )
}

fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    Haversine.distance(Point::new(a.1, a.0), Point::new(b.1, b.0)) / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn rng_range(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.f64()
}

fn pick_weighted<T: Copy>(rng: &mut Rng, options: &[(T, u32)]) -> T {
    let total: u32 = options.iter().map(|&(_, w)| w).sum();
    let mut x = rng.u32(..total);
    for &(value, weight) in options {
        if x < weight {
            return value;
        }
        x -= weight;
    }
    options[options.len() - 1].0
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).unwrap()
}

fn digits(n: usize) -> usize {
    n.max(1).ilog10() as usize + 1
}

// ---------------------------------------------------------------------------------------
// City data

struct Profile {
    slug: &'static str,
    name: &'static str,
    tz: Tz,
    /// (lat, lon)
    centre: (f64, f64),
    radius_km: f64,
    hoods: &'static [Hood],
    /// A polygon of water inside the radius, (lat, lon) corners; may be empty.
    water: &'static [(f64, f64)],
    streets: &'static [&'static str],
    max_house_number: u32,
    first_names: &'static [&'static str],
    surnames: &'static [&'static str],
    /// Multiplies the Brazilian cost figures (1 for BRL; 0.2 for EUR in Lisbon).
    cost_scale: f64,
}

impl Profile {
    /// Inside the city circle (with a small margin for rounding) and not in the water.
    fn contains(&self, lat: f64, lon: f64) -> bool {
        distance_km(self.centre, (lat, lon)) <= 0.995 * self.radius_km
            && !point_in_polygon(self.water, lat, lon)
    }
}

/// Even-odd ray casting on (lat, lon) corners; an empty polygon contains nothing.
fn point_in_polygon(corners: &[(f64, f64)], lat: f64, lon: f64) -> bool {
    let mut inside = false;
    for (i, &(lat_a, lon_a)) in corners.iter().enumerate() {
        let (lat_b, lon_b) = corners[(i + 1) % corners.len()];
        if (lat_a > lat) != (lat_b > lat) {
            let lon_cross = lon_a + (lat - lat_a) / (lat_b - lat_a) * (lon_b - lon_a);
            if lon < lon_cross {
                inside = !inside;
            }
        }
    }
    inside
}

/// A neighbourhood: a demand cluster with its relative weight and spread.
struct Hood {
    name: &'static str,
    lat: f64,
    lon: f64,
    weight: f64,
    spread_km: f64,
}

const fn hood(name: &'static str, lat: f64, lon: f64, weight: f64, spread_km: f64) -> Hood {
    Hood {
        name,
        lat,
        lon,
        weight,
        spread_km,
    }
}

const BRAZILIAN_FIRST_NAMES: &[&str] = &[
    "Ana",
    "Bruno",
    "Carlos",
    "Daniela",
    "Eduardo",
    "Fernanda",
    "Gabriel",
    "Juliana",
    "Lucas",
    "Mariana",
    "Rafael",
    "Thiago",
    "Camila",
    "Diego",
    "Felipe",
    "Larissa",
    "Marcos",
    "Patrícia",
    "Rodrigo",
    "Vanessa",
    "João",
    "Pedro",
    "Luana",
    "Renato",
    "Aline",
    "Wellington",
    "Jéssica",
    "Leandro",
];

static SAO_PAULO: Profile = Profile {
    slug: "sao-paulo",
    name: "São Paulo",
    tz: chrono_tz::America::Sao_Paulo,
    centre: (-23.5505, -46.6340),
    radius_km: 20.0,
    hoods: &[
        hood("Sé", -23.5503, -46.6340, 0.6, 1.0),
        hood("Bela Vista", -23.5580, -46.6440, 0.8, 1.0),
        hood("Pinheiros", -23.5660, -46.6930, 1.1, 1.5),
        hood("Vila Mariana", -23.5890, -46.6340, 1.2, 1.5),
        hood("Mooca", -23.5580, -46.5960, 1.0, 1.5),
        hood("Tatuapé", -23.5400, -46.5760, 1.0, 1.5),
        hood("Santana", -23.5010, -46.6250, 1.0, 2.0),
        hood("Itaquera", -23.5390, -46.4570, 1.3, 2.5),
        hood("Santo Amaro", -23.6530, -46.7090, 1.1, 2.0),
        hood("Butantã", -23.5710, -46.7080, 0.9, 2.0),
        hood("Lapa", -23.5270, -46.7040, 0.8, 1.5),
        hood("Ipiranga", -23.5880, -46.6060, 0.9, 1.5),
        hood("Penha", -23.5260, -46.5420, 0.9, 2.0),
        hood("Campo Limpo", -23.6330, -46.7590, 1.0, 2.5),
        hood("Freguesia do Ó", -23.4990, -46.6970, 0.7, 2.0),
        hood("Jabaquara", -23.6460, -46.6410, 0.9, 2.0),
    ],
    water: &[],
    streets: &[
        "Rua São José",
        "Rua Sete de Setembro",
        "Rua Tiradentes",
        "Rua XV de Novembro",
        "Rua Dom Pedro II",
        "Rua das Palmeiras",
        "Rua Santa Cruz",
        "Avenida Brasil",
        "Rua Bela Vista",
        "Rua da Paz",
        "Rua das Flores",
        "Rua Rui Barbosa",
        "Rua Marechal Deodoro",
        "Rua Duque de Caxias",
        "Rua Castro Alves",
        "Rua Vergueiro",
        "Rua Augusta",
        "Avenida Sapopemba",
    ],
    max_house_number: 2400,
    first_names: BRAZILIAN_FIRST_NAMES,
    surnames: &[
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
        "Araújo",
        "Ribeiro",
        "Gomes",
        "Barbosa",
        "Moura",
        "Nakamura",
        "Yamamoto",
        "Rossi",
    ],
    cost_scale: 1.0,
};

static RECIFE: Profile = Profile {
    slug: "recife",
    name: "Recife",
    tz: chrono_tz::America::Recife,
    centre: (-8.0600, -34.9100),
    radius_km: 12.0,
    hoods: &[
        hood("Boa Viagem", -8.1260, -34.9020, 1.6, 1.8),
        hood("Santo Antônio", -8.0650, -34.8790, 0.4, 0.8),
        hood("Boa Vista", -8.0600, -34.8880, 0.8, 1.0),
        hood("Graças", -8.0480, -34.9010, 0.8, 1.0),
        hood("Espinheiro", -8.0410, -34.8940, 0.6, 0.8),
        hood("Casa Forte", -8.0350, -34.9190, 0.7, 1.2),
        hood("Casa Amarela", -8.0260, -34.9170, 1.0, 1.5),
        hood("Madalena", -8.0530, -34.9090, 0.8, 1.0),
        hood("Afogados", -8.0770, -34.9090, 0.9, 1.2),
        hood("Imbiribeira", -8.1050, -34.9150, 0.8, 1.5),
        hood("Várzea", -8.0460, -34.9560, 0.9, 2.0),
        hood("Ibura", -8.1230, -34.9440, 1.0, 2.0),
        hood("Água Fria", -8.0180, -34.8990, 0.8, 1.2),
        hood("Cordeiro", -8.0480, -34.9330, 0.8, 1.2),
    ],
    // The Atlantic east of the shore from Olinda past Boa Viagem to Piedade.
    water: &[
        (-7.900, -34.835),
        (-8.000, -34.843),
        (-8.063, -34.866),
        (-8.085, -34.879),
        (-8.115, -34.888),
        (-8.140, -34.896),
        (-8.180, -34.915),
        (-8.300, -34.950),
        (-8.300, -34.600),
        (-7.900, -34.600),
    ],
    streets: &[
        "Rua do Sol",
        "Rua da Aurora",
        "Rua da Hora",
        "Estrada do Arraial",
        "Avenida Conselheiro Aguiar",
        "Rua Real da Torre",
        "Rua São José",
        "Rua Sete de Setembro",
        "Rua Tiradentes",
        "Rua Dom Pedro II",
        "Rua das Palmeiras",
        "Rua da Paz",
        "Rua das Flores",
        "Rua Rui Barbosa",
        "Rua Marechal Deodoro",
        "Rua Castro Alves",
    ],
    max_house_number: 1500,
    first_names: BRAZILIAN_FIRST_NAMES,
    surnames: &[
        "Silva",
        "Santos",
        "Oliveira",
        "Souza",
        "Lima",
        "Pereira",
        "Ferreira",
        "Costa",
        "Cavalcanti",
        "Albuquerque",
        "Lins",
        "Melo",
        "Wanderley",
        "Barros",
        "Araújo",
        "Nascimento",
        "Freitas",
        "Monteiro",
    ],
    cost_scale: 1.0,
};

static LISBON: Profile = Profile {
    slug: "lisbon",
    name: "Lisbon",
    tz: chrono_tz::Europe::Lisbon,
    centre: (38.7253, -9.1500),
    radius_km: 9.0,
    hoods: &[
        hood("Baixa-Chiado", 38.7110, -9.1400, 0.6, 0.8),
        hood("Alfama", 38.7125, -9.1290, 0.5, 0.7),
        hood("Arroios", 38.7300, -9.1360, 1.0, 1.0),
        hood("Avenidas Novas", 38.7390, -9.1470, 1.1, 1.2),
        hood("Alvalade", 38.7530, -9.1430, 1.0, 1.2),
        hood("Campo de Ourique", 38.7180, -9.1660, 0.9, 1.0),
        hood("Estrela", 38.7120, -9.1600, 0.6, 0.8),
        hood("Benfica", 38.7500, -9.2000, 1.1, 1.5),
        hood("Lumiar", 38.7720, -9.1600, 1.0, 1.5),
        hood("Olivais", 38.7690, -9.1200, 0.9, 1.2),
        hood("Parque das Nações", 38.7680, -9.1000, 0.8, 1.0),
        hood("Belém", 38.6990, -9.2050, 0.5, 1.0),
        hood("Marvila", 38.7460, -9.1100, 0.8, 1.2),
        hood("Penha de França", 38.7280, -9.1290, 0.8, 1.0),
        hood("Ajuda", 38.7070, -9.1980, 0.5, 1.0),
    ],
    // The Tagus south and east of the shore from Belém to Parque das Nações.
    water: &[
        (38.690, -9.300),
        (38.6916, -9.2160),
        (38.6935, -9.2057),
        (38.700, -9.175),
        (38.7055, -9.1445),
        (38.707, -9.1365),
        (38.713, -9.122),
        (38.727, -9.107),
        (38.737, -9.101),
        (38.757, -9.096),
        (38.7635, -9.093),
        (38.783, -9.089),
        (38.830, -9.080),
        (38.830, -8.900),
        (38.550, -8.900),
        (38.550, -9.300),
    ],
    streets: &[
        "Rua das Flores",
        "Rua do Alecrim",
        "Rua da Prata",
        "Rua Morais Soares",
        "Avenida de Roma",
        "Rua Tomás Ribeiro",
        "Rua de São Bento",
        "Avenida da República",
        "Avenida Almirante Reis",
        "Calçada do Combro",
        "Rua dos Remédios",
        "Rua Ferreira Borges",
        "Estrada de Benfica",
        "Rua Alexandre Herculano",
        "Avenida Rio de Janeiro",
        "Alameda dos Oceanos",
    ],
    max_house_number: 250,
    first_names: &[
        "João", "Rui", "Tiago", "Nuno", "Pedro", "Miguel", "Inês", "Beatriz", "Joana", "Catarina",
        "Sofia", "Rita", "Diogo", "André", "Gonçalo", "Filipa", "Marta", "Hugo", "Bruno", "Ana",
        "Ricardo", "Sara",
    ],
    surnames: &[
        "Silva",
        "Santos",
        "Ferreira",
        "Pereira",
        "Oliveira",
        "Costa",
        "Rodrigues",
        "Martins",
        "Sousa",
        "Fernandes",
        "Gonçalves",
        "Gomes",
        "Lopes",
        "Marques",
        "Alves",
        "Almeida",
        "Ribeiro",
        "Pinto",
        "Carvalho",
        "Teixeira",
    ],
    cost_scale: 0.2,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_neighbourhood_centre_is_on_land_inside_its_city() {
        for city in City::ALL {
            let profile = city.profile();
            for hood in profile.hoods {
                assert!(
                    profile.contains(hood.lat, hood.lon),
                    "{} in {} is outside the city or in the water",
                    hood.name,
                    profile.name
                );
            }
        }
    }

    #[test]
    fn water_polygons_hold_the_river_and_the_sea() {
        // The middle of the Tagus off Terreiro do Paço; the sea off Boa Viagem.
        assert!(point_in_polygon(LISBON.water, 38.695, -9.135));
        assert!(point_in_polygon(RECIFE.water, -8.120, -34.870));
        assert!(!point_in_polygon(LISBON.water, 38.7253, -9.1500));
        assert!(!point_in_polygon(RECIFE.water, -8.126, -34.902));
    }

    #[test]
    fn short_leaning_durations_stay_on_five_minute_steps_in_range() {
        let mut rng = Rng::with_seed(3);
        for _ in 0..1000 {
            let d = short_leaning(&mut rng, 30, 90);
            assert!((30..=90).contains(&d) && d.is_multiple_of(5), "{d}");
        }
    }
}
