//! An independent checker of a field-service [`Plan`] against its [`ProblemInput`].
//!
//! It re-derives everything from the two JSON documents and the travel matrices, and
//! shares no logic with the planner: no core `Problem`, no `field::compile`, no route
//! evaluator, no search. Only the input and plan types, [`build_matrices`], chrono,
//! chrono-tz and geo. A plan that passes here is feasible whatever the planner's code
//! did, and its cost is the one recomputed here, not the one it reports.
//!
//! [`check_plan`] never stops at the first problem: it returns every violation found,
//! each with a JSON path into the plan (`$.routes[2].stops[4].start`), a stable code and
//! a message.
//!
//! # Codes
//!
//! | code | what |
//! |---|---|
//! | `version` | `plan.version` is not 1 |
//! | `time_zone` | the plan's time zone is not the problem's |
//! | `unknown_technician` | a route's technician is not in the problem |
//! | `no_shift` | the technician has no shift on the route's date |
//! | `duplicate_route` | a second route for one technician and date |
//! | `unknown_job` | a stop or unassigned entry names a job the problem does not have |
//! | `job_twice` | a job is planned twice, or listed twice as unassigned |
//! | `job_missing` | a job is neither planned nor unassigned |
//! | `unassigned_but_planned` | a job is both planned and listed as unassigned |
//! | `missing_skill` | the technician lacks a required skill or level |
//! | `outside_territory` | the job's place is outside the technician's territory |
//! | `pinned_technician` | the job is pinned to someone else |
//! | `pinned_start` | the visit does not start at the job's pinned start |
//! | `too_many_jobs` | more visits than the technician's `max_jobs_per_day` |
//! | `capacity` | the van carries more than `van_capacity` at some point |
//! | `bad_time` | a time is not RFC 3339, or its offset is not the time zone's there |
//! | `shift` | the route leaves before the shift starts or returns after shift end + overtime |
//! | `travel_time` | not enough time between two places for the travel |
//! | `start_before_arrival` | a visit starts before the technician arrives |
//! | `duration` | a visit does not last the job's duration for this technician |
//! | `window` | a visit starts outside every window of its job |
//! | `missing_break` | the shift has a break rule, the route has visits, but no break |
//! | `break` | the break breaks its rule or does not fit where it is placed |
//! | `reported_value` | a number the plan reports differs from the recomputed one |
//! | `same_technician` | two jobs that must share a technician are done by two |
//! | `after_job` | a job is planned before (or without) the job it must follow |
//! | `kpi_mismatch` | a KPI count differs from the plan's content |
//! | `cost_mismatch` | the plan's total cost differs from the recomputed one |
//!
//! # Conventions
//!
//! - Shift and break times are local wall-clock times on the route's date in the
//!   problem's time zone. A local time that does not exist (skipped by a DST change)
//!   means the first instant after the gap; an ambiguous one (repeated) the earlier.
//! - Plan times are compared in whole seconds with 1 second of slack; reported minutes
//!   and kilometres may differ from the recomputed ones by 0.02 (they are rounded to
//!   0.01); the total cost by 0.5 % or 0.05, whichever is larger.
//! - Travel comes from [`build_matrices`] over every place of the problem (jobs, homes,
//!   shift start and end places), so `osrm` travel needs the server or its cache.
//! - A break may be taken anywhere in the gap after its `after_job` (or before the first
//!   visit), also while travelling: time the break overlaps is not travel time.
//! - The stability cost against a previous plan is not recomputed: the checker does not
//!   know that plan. It takes `plan.cost.stability` as given (only flagging a negative
//!   or non-finite one) and adds it to the recomputed total.
//! - Not checked: `waiting_minutes` (whether it counts a break taken while waiting is
//!   the planner's presentation choice), KPIs other than counts, the `cost` parts other
//!   than the total, and the unassigned reasons.
//! - The cost of a route whose times cannot be read (`bad_time`) or whose technician or
//!   shift is unknown is left out of the recomputed cost.

use super::input::{JobInput, ObjectiveWeights, Place, ProblemInput, Shift, Technician, Territory};
use super::plan::{Plan, PlannedRoute, PLAN_VERSION};
use super::travel::{build_matrices, PlaceRef, TravelError, TravelMatrices};
use crate::units::{Distance, Duration};
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;
use geo::{Intersects, LineString, Point, Polygon};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::{Add, Sub};

/// Slack on every comparison of times, for rounding.
const SLACK: Duration = Duration(1);
/// How far reported minutes may be from the recomputed ones.
const MINUTES_TOLERANCE: f64 = 0.02;
/// How far reported kilometres may be from the recomputed ones.
const KM_TOLERANCE: f64 = 0.02;
/// The total cost may differ by this fraction of the recomputed cost...
const COST_RELATIVE_TOLERANCE: f64 = 0.005;
/// ...or by this much in currency units, whichever is larger.
const COST_ABSOLUTE_TOLERANCE: f64 = 0.05;

/// What [`check_plan`] found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanCheck {
    /// Every problem of the plan; empty when it is correct.
    pub violations: Vec<PlanViolation>,
    /// The recomputed objective, currency units (stability as reported, see the module doc).
    pub cost: f64,
    pub cost_parts: CheckedCost,
    /// Distinct known jobs in the routes.
    pub jobs_assigned: usize,
    /// Jobs of the problem that are in no route.
    pub jobs_unassigned: usize,
}

impl PlanCheck {
    /// No violation at all: the plan is feasible and reports its numbers truthfully.
    pub fn is_feasible(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether some violation has this code.
    pub fn has(&self, code: &str) -> bool {
        self.violations.iter().any(|v| v.code == code)
    }
}

/// The recomputed objective by part, currency units (weights applied).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CheckedCost {
    /// Priority × `unassigned_per_priority` over the jobs in no route.
    pub unassigned: f64,
    /// The sum of the route parts below, stability included (as the plan's `routes`).
    pub routes: f64,
    /// `travel_and_work` × (per-km cost × km + hourly cost × hours from leaving to return).
    pub travel_and_work: f64,
    /// Overtime minutes × (`overtime_per_minute` + the shift's overtime hourly cost / 60).
    pub overtime: f64,
    /// Late minutes × `sla_lateness_per_minute`.
    pub sla_lateness: f64,
    /// `not_preferred` per visit by someone other than the job's preferred technician.
    pub not_preferred: f64,
    /// `balance_per_hour_squared` × (route hours)².
    pub balance: f64,
    /// The plan's own `cost.stability`, taken as given (the previous plan is unknown here).
    pub stability: f64,
}

/// One problem of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanViolation {
    /// Where, as a JSON path into the plan: `$.routes[2].stops[4].start`.
    pub path: String,
    /// What kind of problem, stable and machine-readable (see the module doc).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for PlanViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.path, self.message, self.code)
    }
}

/// Why the problem itself cannot be read, so no plan of it can be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("$.time_zone: `{0}` is not an IANA time zone name")]
    TimeZone(String),
    /// Travel between the problem's places could not be computed.
    #[error("{path}: cannot compute travel: {message} [{code}]")]
    Travel {
        /// A JSON path into the problem: `$.jobs[3].place`, `$.travel.durations_s[1]`.
        path: String,
        code: &'static str,
        message: String,
    },
}

/// Checks `plan` against `problem`: feasibility, reported numbers, KPIs and cost.
pub fn check_plan(problem: &ProblemInput, plan: &Plan) -> Result<PlanCheck, CheckError> {
    let tz: Tz = problem
        .time_zone
        .parse()
        .map_err(|_| CheckError::TimeZone(problem.time_zone.clone()))?;
    let places = Places::of(problem)?;
    let mut c = Checker {
        problem,
        plan,
        tz,
        places,
        technician_index: HashMap::new(),
        job_index: HashMap::new(),
        planned: HashMap::new(),
        route_days: HashSet::new(),
        all_times_read: true,
        sla: SlaCounts::default(),
        cost: CheckedCost::default(),
        violations: Vec::new(),
    };
    for (i, t) in problem.technicians.iter().enumerate() {
        c.technician_index.entry(t.id.as_str()).or_insert(i);
    }
    for (i, j) in problem.jobs.iter().enumerate() {
        c.job_index.entry(j.id.as_str()).or_insert(i);
    }
    c.header();
    for (r, route) in plan.routes.iter().enumerate() {
        c.route(r, route);
    }
    c.unassigned();
    c.relations();
    c.kpis();
    c.total_cost();
    let jobs_assigned = c.planned.len();
    let cost = c.cost.unassigned + c.cost.routes;
    Ok(PlanCheck {
        violations: c.violations,
        cost,
        cost_parts: c.cost,
        jobs_assigned,
        jobs_unassigned: problem.jobs.len().saturating_sub(jobs_assigned),
    })
}

/// An instant, whole seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct At(i64);

impl Add<Duration> for At {
    type Output = At;
    fn add(self, d: Duration) -> At {
        At(self.0 + d.0)
    }
}

impl Sub<Duration> for At {
    type Output = At;
    fn sub(self, d: Duration) -> At {
        At(self.0 - d.0)
    }
}

impl Sub for At {
    type Output = Duration;
    fn sub(self, other: At) -> Duration {
        Duration(self.0 - other.0)
    }
}

fn minutes(d: Duration) -> f64 {
    d.0 as f64 / 60.0
}

/// Minutes for a message: to the tenth, no trailing `.0` ("15.3", "45").
fn shown(d: Duration) -> String {
    let m = (minutes(d) * 10.0).round() / 10.0;
    if m.fract() == 0.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

fn hours(d: Duration) -> f64 {
    d.0 as f64 / 3600.0
}

fn km(d: Distance) -> f64 {
    d.0 as f64 / 1000.0
}

fn from_minutes(m: u32) -> Duration {
    Duration(i64::from(m) * 60)
}

/// The instant of a local wall-clock time: the earlier one when it is ambiguous, the
/// first instant after the gap when a DST change skips it.
fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> At {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => At(t.timestamp()),
        LocalResult::Ambiguous(a, b) => At(a.timestamp().min(b.timestamp())),
        LocalResult::None => first_instant_after_gap(tz, local),
    }
}

/// The first instant whose wall-clock time is at or after `local`, for a `local` that a
/// gap skips: the instant the clocks jump. Offsets are within ±14 h and gaps within a
/// day, so it lies within a day of `local` read as UTC; there the wall clock only moves
/// forward (no two transitions a day apart), so a binary search finds it.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> At {
    let wall = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0).map(|t| t.with_timezone(&tz).naive_local())
    };
    let guess = local.and_utc().timestamp();
    // Invariant: wall(lo) < local <= wall(hi).
    let (mut lo, mut hi) = (guess - 86_400, guess + 86_400);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if wall(mid).is_none_or(|w| w >= local) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    At(hi)
}

/// Time a break `[start, end)` overlaps `[from, to)`.
fn overlap(brk: Option<(At, At)>, from: At, to: At) -> Duration {
    match brk {
        Some((start, end)) => Duration((end.min(to).0 - start.max(from).0).max(0)),
        None => Duration::ZERO,
    }
}

/// On-site time of `job` for `tech`: by the technician's level in the job's
/// alphabetically-first required skill, the highest `duration_by_level` key not above
/// it, else `duration_minutes`.
fn service_time(job: &JobInput, tech: &Technician) -> Duration {
    let by_level = job.required_skills.keys().next().and_then(|skill| {
        let level = tech.skills.get(skill).copied().unwrap_or(0);
        job.duration_by_level
            .range(..=level)
            .next_back()
            .map(|(_, &m)| m)
    });
    from_minutes(by_level.unwrap_or(job.duration_minutes))
}

/// Whether `place` is inside (or on the border of) `territory`.
fn in_territory(territory: &Territory, place: &Place) -> bool {
    let point = Point::new(place.lon, place.lat);
    let polygon = |rings: &[Vec<[f64; 2]>]| {
        let ring = |r: &Vec<[f64; 2]>| {
            LineString::from(r.iter().map(|&[x, y]| (x, y)).collect::<Vec<_>>())
        };
        let exterior = rings
            .first()
            .map(ring)
            .unwrap_or_else(|| LineString::new(vec![]));
        Polygon::new(exterior, rings.iter().skip(1).map(ring).collect())
    };
    match territory {
        Territory::Polygon { coordinates } => polygon(coordinates).intersects(&point),
        Territory::MultiPolygon { coordinates } => {
            coordinates.iter().any(|p| polygon(p).intersects(&point))
        }
    }
}

/// `reported` is within `tolerance` of `actual` (NaN never is).
fn close(reported: f64, actual: f64, tolerance: f64) -> bool {
    (reported - actual).abs() <= tolerance
}

/// Every place of the problem with the travel matrices between them: job `j` is place
/// `j`, then each technician's home and each shift's own start and end places.
struct Places {
    matrices: TravelMatrices,
    /// `[technician][shift]` → place where the shift starts and ends.
    shift_start: Vec<Vec<usize>>,
    shift_end: Vec<Vec<usize>>,
}

impl Places {
    fn of<'p>(problem: &'p ProblemInput) -> Result<Self, CheckError> {
        let mut refs: Vec<PlaceRef<'p>> = Vec::new();
        // The problem path of each place, to name it in errors.
        let mut names: Vec<String> = Vec::new();
        let mut add = |place: &'p Place, name: String| -> usize {
            names.push(name);
            refs.push(PlaceRef {
                coord: place.coord(),
                location_id: place.location_id.as_deref(),
            });
            refs.len() - 1
        };
        for (j, job) in problem.jobs.iter().enumerate() {
            add(&job.place, format!("$.jobs[{j}].place"));
        }
        let mut shift_start = Vec::with_capacity(problem.technicians.len());
        let mut shift_end = Vec::with_capacity(problem.technicians.len());
        for (t, tech) in problem.technicians.iter().enumerate() {
            let home = add(&tech.home, format!("$.technicians[{t}].home"));
            let (mut starts, mut ends) = (Vec::new(), Vec::new());
            for (k, shift) in tech.shifts.iter().enumerate() {
                let mut own = |place: &'p Option<Place>, field: &str| match place {
                    Some(p) => add(p, format!("$.technicians[{t}].shifts[{k}].{field}")),
                    None => home,
                };
                starts.push(own(&shift.start_place, "start_place"));
                ends.push(own(&shift.end_place, "end_place"));
            }
            shift_start.push(starts);
            shift_end.push(ends);
        }
        let matrices =
            build_matrices(&problem.travel, &refs).map_err(|e| travel_error(&e, &names))?;
        Ok(Self {
            matrices,
            shift_start,
            shift_end,
        })
    }

    fn travel(&self, from: usize, to: usize) -> (Duration, Distance) {
        (
            self.matrices.duration(from, to),
            self.matrices.distance(from, to),
        )
    }
}

/// A travel error with its `places[i]` or `travel.…` path mapped into the problem.
fn travel_error(e: &TravelError, names: &[String]) -> CheckError {
    let raw = e.path();
    let path = raw
        .strip_prefix("places[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| names.get(i).cloned())
        .unwrap_or_else(|| format!("$.{raw}"));
    CheckError::Travel {
        path,
        code: e.code(),
        message: e.to_string(),
    }
}

#[derive(Default)]
struct SlaCounts {
    jobs: usize,
    hits: usize,
}

/// A stop whose job is known, with what the time checks need.
struct KnownStop<'a> {
    job: &'a JobInput,
    place: usize,
}

/// The times of a route, all read.
struct RouteTimes {
    start: At,
    end: At,
    /// (arrival, start, end) per stop.
    stops: Vec<(At, At, At)>,
    brk: Option<(At, At)>,
}

struct Checker<'a> {
    problem: &'a ProblemInput,
    plan: &'a Plan,
    tz: Tz,
    places: Places,
    technician_index: HashMap<&'a str, usize>,
    job_index: HashMap<&'a str, usize>,
    /// Planned job id → path of its first stop.
    planned: HashMap<&'a str, String>,
    /// (technician, date) pairs that have a route.
    route_days: HashSet<(usize, NaiveDate)>,
    /// False when some route's times could not be read (then SLA counts are not checked).
    all_times_read: bool,
    sla: SlaCounts,
    cost: CheckedCost,
    violations: Vec<PlanViolation>,
}

impl<'a> Checker<'a> {
    fn push(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.violations.push(PlanViolation {
            path: path.into(),
            code,
            message: message.into(),
        });
    }

    fn weights(&self) -> &'a ObjectiveWeights {
        &self.problem.objective
    }

    fn header(&mut self) {
        if self.plan.version != PLAN_VERSION {
            self.push(
                "$.version",
                "version",
                format!(
                    "plan version {} is not supported; expected {PLAN_VERSION}",
                    self.plan.version
                ),
            );
        }
        if self.plan.time_zone != self.problem.time_zone {
            self.push(
                "$.time_zone",
                "time_zone",
                format!(
                    "the plan is in `{}` but the problem in `{}`",
                    self.plan.time_zone, self.problem.time_zone
                ),
            );
        }
    }

    fn route(&mut self, r: usize, route: &'a PlannedRoute) {
        let base = format!("$.routes[{r}]");
        // Jobs first: they count as planned even when the technician is unknown.
        let mut stops: Vec<Option<KnownStop<'a>>> = Vec::with_capacity(route.stops.len());
        for (s, stop) in route.stops.iter().enumerate() {
            let path = format!("{base}.stops[{s}].job");
            let Some(&j) = self.job_index.get(stop.job.as_str()) else {
                self.push(
                    path,
                    "unknown_job",
                    format!("there is no job `{}` in the problem", stop.job),
                );
                stops.push(None);
                continue;
            };
            if let Some(first) = self.planned.get(stop.job.as_str()) {
                let message = format!("job `{}` is already planned at {first}", stop.job);
                self.push(path, "job_twice", message);
            } else {
                self.planned.insert(stop.job.as_str(), path);
            }
            stops.push(Some(KnownStop {
                job: &self.problem.jobs[j],
                place: j,
            }));
        }
        let Some(&t) = self.technician_index.get(route.technician.as_str()) else {
            self.push(
                format!("{base}.technician"),
                "unknown_technician",
                format!(
                    "there is no technician `{}` in the problem",
                    route.technician
                ),
            );
            self.all_times_read = false;
            return;
        };
        let tech = &self.problem.technicians[t];
        if !self.route_days.insert((t, route.date)) {
            self.push(
                base.clone(),
                "duplicate_route",
                format!("a second route for `{}` on {}", tech.id, route.date),
            );
        }
        self.job_rules(&base, tech, &stops);
        self.loads(&base, tech, route, &stops);
        let Some(k) = tech.shifts.iter().position(|s| s.date == route.date) else {
            self.push(
                format!("{base}.date"),
                "no_shift",
                format!("`{}` has no shift on {}", tech.id, route.date),
            );
            self.all_times_read = false;
            return;
        };
        match self.read_times(&base, route) {
            Some(times) => self.timing(&base, t, k, route, &stops, &times),
            None => self.all_times_read = false,
        }
    }

    /// Skills, territory, pinned and preferred technician, jobs per day.
    fn job_rules(&mut self, base: &str, tech: &Technician, stops: &[Option<KnownStop>]) {
        let not_preferred_weight = self.weights().not_preferred;
        for (s, stop) in stops.iter().enumerate() {
            let Some(KnownStop { job, .. }) = stop else {
                continue;
            };
            let path = format!("{base}.stops[{s}].job");
            for (skill, &level) in &job.required_skills {
                let has = tech.skills.get(skill).copied().unwrap_or(0);
                if has < level {
                    self.push(
                        path.clone(),
                        "missing_skill",
                        format!(
                            "job `{}` needs `{skill}` at level {level}; `{}` has level {has}",
                            job.id, tech.id
                        ),
                    );
                }
            }
            if let Some(territory) = &tech.territory {
                if !in_territory(territory, &job.place) {
                    self.push(
                        path.clone(),
                        "outside_territory",
                        format!(
                            "job `{}` at ({}, {}) is outside the territory of `{}`",
                            job.id, job.place.lat, job.place.lon, tech.id
                        ),
                    );
                }
            }
            if let Some(pinned) = &job.pinned_technician {
                if *pinned != tech.id {
                    self.push(
                        path.clone(),
                        "pinned_technician",
                        format!(
                            "job `{}` is pinned to `{pinned}`, not `{}`",
                            job.id, tech.id
                        ),
                    );
                }
            }
            if job
                .preferred_technician
                .as_ref()
                .is_some_and(|p| *p != tech.id)
            {
                self.cost.not_preferred += not_preferred_weight;
            }
        }
        if let Some(max) = tech.max_jobs_per_day {
            if stops.len() > max as usize {
                self.push(
                    format!("{base}.stops"),
                    "too_many_jobs",
                    format!(
                        "{} visits, but `{}` does at most {max} a day",
                        stops.len(),
                        tech.id
                    ),
                );
            }
        }
    }

    /// The van leaves with everything the day delivers; each visit unloads its delivery
    /// and loads what it collects.
    fn loads(
        &mut self,
        base: &str,
        tech: &Technician,
        route: &PlannedRoute,
        stops: &[Option<KnownStop>],
    ) {
        let jobs = || stops.iter().flatten().map(|s| s.job);
        let start_load: i64 = jobs().map(|j| i64::from(j.equipment.deliver)).sum();
        let mut load = start_load;
        let mut peak = start_load;
        let mut over: Option<(String, i64)> = None;
        let capacity = tech.van_capacity.map(i64::from);
        if capacity.is_some_and(|c| start_load > c) {
            over = Some((format!("{base}.start_load"), start_load));
        }
        for (s, stop) in stops.iter().enumerate() {
            let Some(stop) = stop else { continue };
            load += i64::from(stop.job.equipment.collect) - i64::from(stop.job.equipment.deliver);
            peak = peak.max(load);
            if over.is_none() && capacity.is_some_and(|c| load > c) {
                over = Some((format!("{base}.stops[{s}]"), load));
            }
        }
        if let (Some((path, load)), Some(c)) = (over, capacity) {
            self.push(
                path,
                "capacity",
                format!(
                    "the van of `{}` carries {load} pieces here; it holds {c}",
                    tech.id
                ),
            );
        }
        if route.start_load != start_load {
            self.push(
                format!("{base}.start_load"),
                "reported_value",
                format!(
                    "reported {}, but the visits deliver {start_load}",
                    route.start_load
                ),
            );
        }
        if route.peak_load != peak {
            self.push(
                format!("{base}.peak_load"),
                "reported_value",
                format!(
                    "reported {}, but the van carries at most {peak}",
                    route.peak_load
                ),
            );
        }
    }

    /// Reads an RFC 3339 time of the plan; flags it when unreadable or when its offset
    /// is not the time zone's at that instant (the instant is still used then).
    fn instant(&mut self, path: String, text: &str) -> Option<At> {
        match DateTime::parse_from_rfc3339(text) {
            Err(e) => {
                self.push(
                    path,
                    "bad_time",
                    format!("`{text}` is not an RFC 3339 date-time with an offset: {e}"),
                );
                None
            }
            Ok(t) => {
                let expected = self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
                if expected != *t.offset() {
                    let message = format!(
                        "`{text}` has offset {}, but {} is at {expected} then",
                        t.offset(),
                        self.tz
                    );
                    self.push(path, "bad_time", message);
                }
                Some(At(t.timestamp()))
            }
        }
    }

    fn read_times(&mut self, base: &str, route: &PlannedRoute) -> Option<RouteTimes> {
        let start = self.instant(format!("{base}.start"), &route.start);
        let end = self.instant(format!("{base}.end"), &route.end);
        let mut stops = Vec::with_capacity(route.stops.len());
        let mut all = true;
        for (s, stop) in route.stops.iter().enumerate() {
            let p = format!("{base}.stops[{s}]");
            let arrival = self.instant(format!("{p}.arrival"), &stop.arrival);
            let begin = self.instant(format!("{p}.start"), &stop.start);
            let finish = self.instant(format!("{p}.end"), &stop.end);
            match (arrival, begin, finish) {
                (Some(a), Some(b), Some(c)) => stops.push((a, b, c)),
                _ => all = false,
            }
        }
        let brk = match &route.break_taken {
            Some(b) => {
                let from = self.instant(format!("{base}.break_taken.start"), &b.start);
                let to = self.instant(format!("{base}.break_taken.end"), &b.end);
                match (from, to) {
                    (Some(f), Some(t)) => Some((f, t)),
                    _ => {
                        all = false;
                        None
                    }
                }
            }
            None => None,
        };
        match (start, end, all) {
            (Some(start), Some(end), true) => Some(RouteTimes {
                start,
                end,
                stops,
                brk,
            }),
            _ => None,
        }
    }

    /// Shift, travel, visits, windows, break, reported numbers and the route's cost.
    fn timing(
        &mut self,
        base: &str,
        t: usize,
        k: usize,
        route: &PlannedRoute,
        stops: &[Option<KnownStop>],
        times: &RouteTimes,
    ) {
        let tech = &self.problem.technicians[t];
        let shift = &tech.shifts[k];
        let shift_start = local_instant(self.tz, shift.date, shift.start);
        let shift_end = local_instant(self.tz, shift.date, shift.end);
        let latest_return = shift_end + from_minutes(shift.overtime_minutes);
        if times.start + SLACK < shift_start {
            self.push(
                format!("{base}.start"),
                "shift",
                format!(
                    "leaves at {} but the shift starts at {}",
                    route.start, shift.start
                ),
            );
        }
        if times.end > latest_return + SLACK {
            self.push(
                format!("{base}.end"),
                "shift",
                format!(
                    "returns at {} but the shift ends at {} with {} minutes of overtime",
                    route.end, shift.end, shift.overtime_minutes
                ),
            );
        }

        // Visits in order, from the start place.
        let start_place = self.places.shift_start[t][k];
        let end_place = self.places.shift_end[t][k];
        let mut prev_place = Some(start_place);
        let mut prev_end = times.start;
        let mut distance = Distance::ZERO;
        let mut late_minutes = 0.0;
        for (s, (stop, &(arrival, begin, finish))) in stops.iter().zip(&times.stops).enumerate() {
            let p = format!("{base}.stops[{s}]");
            let reported = &route.stops[s];
            let Some(KnownStop { job, place }) = stop else {
                prev_place = None;
                prev_end = finish;
                continue;
            };
            if let Some(from) = prev_place {
                let (travel, metres) = self.places.travel(from, *place);
                distance += metres;
                self.check_travel(format!("{p}.arrival"), prev_end, arrival, travel, times.brk);
                self.reported(
                    format!("{p}.travel_minutes"),
                    reported.travel_minutes,
                    minutes(travel),
                    MINUTES_TOLERANCE,
                );
                self.reported(
                    format!("{p}.travel_km"),
                    reported.travel_km,
                    km(metres),
                    KM_TOLERANCE,
                );
            }
            if begin + SLACK < arrival {
                self.push(
                    format!("{p}.start"),
                    "start_before_arrival",
                    format!(
                        "starts at {} before arriving at {}",
                        reported.start, reported.arrival
                    ),
                );
            }
            let service = service_time(job, tech);
            if ((finish - begin) - service).0.abs() > SLACK.0 {
                self.push(
                    format!("{p}.end"),
                    "duration",
                    format!(
                        "lasts {} minutes; job `{}` takes {} minutes for `{}`",
                        shown(finish - begin),
                        job.id,
                        shown(service),
                        tech.id
                    ),
                );
            }
            let in_window = job.windows.iter().any(|w| {
                let (from, to) = (At(w.start.timestamp()), At(w.end.timestamp()));
                begin + SLACK >= from && begin <= to + SLACK
            });
            if !in_window {
                self.push(
                    format!("{p}.start"),
                    "window",
                    format!(
                        "starts at {}, outside every window of job `{}`",
                        reported.start, job.id
                    ),
                );
            }
            if let Some(pinned) = job.pinned_start {
                if (begin - At(pinned.timestamp())).0.abs() > SLACK.0 {
                    self.push(
                        format!("{p}.start"),
                        "pinned_start",
                        format!(
                            "starts at {}, but job `{}` is pinned to start at {}",
                            reported.start,
                            job.id,
                            pinned.to_rfc3339()
                        ),
                    );
                }
            }
            let late = match job.sla_due {
                Some(due) => {
                    let late = (begin - At(due.timestamp())).positive_part();
                    self.sla.jobs += 1;
                    if late == Duration::ZERO {
                        self.sla.hits += 1;
                    }
                    minutes(late)
                }
                None => 0.0,
            };
            late_minutes += late;
            self.reported(
                format!("{p}.sla_late_minutes"),
                reported.sla_late_minutes,
                late,
                MINUTES_TOLERANCE,
            );
            prev_place = Some(*place);
            prev_end = finish;
        }

        // Back to the end place.
        if let Some(from) = prev_place {
            let (travel, metres) = self.places.travel(from, end_place);
            distance += metres;
            self.check_travel(
                format!("{base}.end"),
                prev_end,
                times.end,
                travel,
                times.brk,
            );
            self.reported(
                format!("{base}.return_travel_minutes"),
                route.return_travel_minutes,
                minutes(travel),
                MINUTES_TOLERANCE,
            );
            self.reported(
                format!("{base}.return_travel_km"),
                route.return_travel_km,
                km(metres),
                KM_TOLERANCE,
            );
        }
        self.break_rule(base, shift, route, stops, times, start_place, end_place);

        let duration = times.end - times.start;
        let overtime = minutes((times.end - shift_end).positive_part());
        self.reported(
            format!("{base}.distance_km"),
            route.distance_km,
            km(distance),
            KM_TOLERANCE,
        );
        self.reported(
            format!("{base}.duration_minutes"),
            route.duration_minutes,
            minutes(duration),
            MINUTES_TOLERANCE,
        );
        self.reported(
            format!("{base}.overtime_minutes"),
            route.overtime_minutes,
            overtime,
            MINUTES_TOLERANCE,
        );

        let w = self.weights();
        let parts = [
            w.travel_and_work
                * (tech.cost_per_km * km(distance) + tech.cost_per_hour * hours(duration)),
            overtime * (w.overtime_per_minute + shift.overtime_cost_per_hour / 60.0),
            late_minutes * w.sla_lateness_per_minute,
            w.balance_per_hour_squared * hours(duration).powi(2),
        ];
        self.cost.travel_and_work += parts[0];
        self.cost.overtime += parts[1];
        self.cost.sla_lateness += parts[2];
        self.cost.balance += parts[3];
    }

    /// Leaving at `left` and arriving at `arrived` leaves enough time to travel, the
    /// break (when it falls in between) not counting as travel.
    fn check_travel(
        &mut self,
        path: String,
        left: At,
        arrived: At,
        travel: Duration,
        brk: Option<(At, At)>,
    ) {
        let available = (arrived - left) - overlap(brk, left, arrived);
        if available + SLACK < travel {
            self.push(
                path,
                "travel_time",
                format!(
                    "leaves {} minutes for travel (breaks excluded), but the trip takes {} minutes",
                    shown(available),
                    shown(travel)
                ),
            );
        }
    }

    fn reported(&mut self, path: String, reported: f64, actual: f64, tolerance: f64) {
        if !close(reported, actual, tolerance) {
            self.push(
                path,
                "reported_value",
                format!("reported {reported}, recomputed {actual:.2}"),
            );
        }
    }

    /// The break: present when the rule asks for it, inside the rule's times, of the
    /// rule's length, and inside its gap with room for the gap's travel.
    fn break_rule(
        &mut self,
        base: &str,
        shift: &Shift,
        route: &PlannedRoute,
        stops: &[Option<KnownStop>],
        times: &RouteTimes,
        start_place: usize,
        end_place: usize,
    ) {
        let path = format!("{base}.break_taken");
        let (rule, taken) = match (&shift.break_rule, &route.break_taken) {
            (None, None) => return,
            (Some(_), None) => {
                if !route.stops.is_empty() {
                    self.push(
                        path,
                        "missing_break",
                        format!(
                            "the shift of {} has a break rule, but the route takes no break",
                            shift.date
                        ),
                    );
                }
                return;
            }
            (None, Some(_)) => {
                self.push(
                    path,
                    "break",
                    "a break is planned, but the shift has no break rule",
                );
                return;
            }
            (Some(rule), Some(taken)) => (rule, taken),
        };
        let Some((from, to)) = times.brk else { return };
        let earliest = local_instant(self.tz, shift.date, rule.earliest_start);
        let latest = local_instant(self.tz, shift.date, rule.latest_end);
        if from + SLACK < earliest {
            self.push(
                format!("{path}.start"),
                "break",
                format!("starts at {}, before {}", taken.start, rule.earliest_start),
            );
        }
        if to > latest + SLACK {
            self.push(
                format!("{path}.end"),
                "break",
                format!("ends at {}, after {}", taken.end, rule.latest_end),
            );
        }
        let length = from_minutes(rule.duration_minutes);
        if ((to - from) - length).0.abs() > SLACK.0 {
            self.push(
                path.clone(),
                "break",
                format!(
                    "lasts {} minutes; the rule says {}",
                    shown(to - from),
                    rule.duration_minutes
                ),
            );
        }
        // The gap: after the visit `after_job` (or from the start) to the next visit (or the return).
        let before = match &taken.after_job {
            None => None,
            Some(id) => match route.stops.iter().position(|s| s.job == *id) {
                Some(s) => Some(s),
                None => {
                    self.push(
                        format!("{path}.after_job"),
                        "break",
                        format!("job `{id}` is not a visit of this route"),
                    );
                    return;
                }
            },
        };
        let next = before.map_or(0, |s| s + 1);
        let gap_from = before.map_or(times.start, |s| times.stops[s].2);
        let gap_to = times.stops.get(next).map_or(times.end, |stop| stop.1);
        let from_place = match before {
            None => Some(start_place),
            Some(s) => stops[s].as_ref().map(|k| k.place),
        };
        let to_place = match stops.get(next) {
            None => Some(end_place),
            Some(stop) => stop.as_ref().map(|k| k.place),
        };
        if from + SLACK < gap_from || to > gap_to + SLACK {
            self.push(
                path,
                "break",
                format!(
                    "the break {}–{} is not inside its gap, which runs from {} to {}",
                    taken.start,
                    taken.end,
                    before.map_or(&route.start, |s| &route.stops[s].end),
                    route.stops.get(next).map_or(&route.end, |stop| &stop.start),
                ),
            );
        } else if let (Some(a), Some(b)) = (from_place, to_place) {
            let travel = self.places.travel(a, b).0;
            if (gap_to - gap_from) + SLACK < travel + length {
                self.push(
                    path,
                    "break",
                    format!(
                        "the gap of {} minutes does not fit {} minutes of travel and the {}-minute break",
                        shown(gap_to - gap_from),
                        shown(travel),
                        rule.duration_minutes
                    ),
                );
            }
        }
    }

    /// `same_technician_as`: both planned jobs with one technician; `after_job`: the
    /// later job is planned only if the earlier is, and starts after it ends.
    fn relations(&mut self) {
        // Job id → (technician, start, end, path of its stop), read from the plan itself.
        type Visit<'v> = (&'v str, Option<i64>, Option<i64>, String);
        let mut visits: HashMap<&'a str, Visit<'a>> = HashMap::new();
        for (r, route) in self.plan.routes.iter().enumerate() {
            for (s, stop) in route.stops.iter().enumerate() {
                let read = |t: &str| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .ok()
                        .map(|t| t.timestamp())
                };
                visits.entry(stop.job.as_str()).or_insert((
                    route.technician.as_str(),
                    read(&stop.start),
                    read(&stop.end),
                    format!("$.routes[{r}].stops[{s}]"),
                ));
            }
        }
        for job in &self.problem.jobs {
            let Some((tech, start, _, path)) = visits.get(job.id.as_str()).cloned() else {
                continue;
            };
            if let Some(other) = job.same_technician_as.as_deref() {
                if let Some((other_tech, ..)) = visits.get(other) {
                    if *other_tech != tech {
                        self.push(
                            format!("{path}.job"),
                            "same_technician",
                            format!(
                                "job `{}` must be done by the same technician as `{other}`, \
                                 but `{tech}` and `{other_tech}` do them",
                                job.id
                            ),
                        );
                    }
                }
            }
            if let Some(before) = job.after_job.as_deref() {
                match visits.get(before) {
                    None => self.push(
                        format!("{path}.job"),
                        "after_job",
                        format!(
                            "job `{}` must come after `{before}`, which is not planned",
                            job.id
                        ),
                    ),
                    Some((_, _, Some(before_end), _)) => {
                        if start.is_some_and(|s| s < *before_end) {
                            self.push(
                                format!("{path}.start"),
                                "after_job",
                                format!("job `{}` starts before `{before}` ends", job.id),
                            );
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn unassigned(&mut self) {
        let mut listed: HashMap<&'a str, usize> = HashMap::new();
        for (u, item) in self.plan.unassigned.iter().enumerate() {
            let path = format!("$.unassigned[{u}].job");
            if !self.job_index.contains_key(item.job.as_str()) {
                self.push(
                    path,
                    "unknown_job",
                    format!("there is no job `{}` in the problem", item.job),
                );
            } else if let Some(first) = self.planned.get(item.job.as_str()) {
                let message = format!(
                    "job `{}` is listed as unassigned but planned at {first}",
                    item.job
                );
                self.push(path, "unassigned_but_planned", message);
            } else if let Some(first) = listed.get(item.job.as_str()) {
                let message = format!(
                    "job `{}` is already listed at $.unassigned[{first}]",
                    item.job
                );
                self.push(path, "job_twice", message);
            } else {
                listed.insert(item.job.as_str(), u);
            }
        }
        let weight = self.weights().unassigned_per_priority;
        for job in &self.problem.jobs {
            if self.planned.contains_key(job.id.as_str()) {
                continue;
            }
            self.cost.unassigned += f64::from(job.priority) * weight;
            if !listed.contains_key(job.id.as_str()) {
                self.push(
                    "$.unassigned",
                    "job_missing",
                    format!(
                        "job `{}` is neither in a route nor listed as unassigned",
                        job.id
                    ),
                );
            }
        }
    }

    fn kpis(&mut self) {
        let kpis = &self.plan.kpis;
        let assigned = self.planned.len();
        let total = self.problem.jobs.len();
        let routes_used = self
            .plan
            .routes
            .iter()
            .filter(|r| !r.stops.is_empty())
            .count();
        let mut counts = vec![
            ("jobs_total", kpis.jobs_total, total),
            ("jobs_assigned", kpis.jobs_assigned, assigned),
            (
                "jobs_unassigned",
                kpis.jobs_unassigned,
                total.saturating_sub(assigned),
            ),
            ("routes_used", kpis.routes_used, routes_used),
        ];
        if self.all_times_read {
            counts.extend([
                ("sla_jobs", kpis.sla_jobs, self.sla.jobs),
                ("sla_hits", kpis.sla_hits, self.sla.hits),
                ("sla_misses", kpis.sla_misses, self.sla.jobs - self.sla.hits),
            ]);
        }
        for (name, reported, actual) in counts {
            if reported != actual {
                self.push(
                    format!("$.kpis.{name}"),
                    "kpi_mismatch",
                    format!("reported {reported}, but the plan has {actual}"),
                );
            }
        }
    }

    fn total_cost(&mut self) {
        let stability = self.plan.cost.stability;
        if stability.is_finite() && stability >= 0.0 {
            self.cost.stability = stability;
        } else {
            self.push(
                "$.cost.stability",
                "reported_value",
                format!("a stability cost of {stability} cannot be right; it is at least 0"),
            );
        }
        let c = &mut self.cost;
        c.routes = c.travel_and_work
            + c.overtime
            + c.sla_lateness
            + c.not_preferred
            + c.balance
            + c.stability;
        let recomputed = self.cost.unassigned + self.cost.routes;
        let reported = self.plan.cost.total;
        let tolerance = COST_ABSOLUTE_TOLERANCE.max(COST_RELATIVE_TOLERANCE * recomputed.abs());
        if !close(reported, recomputed, tolerance) {
            self.push(
                "$.cost.total",
                "cost_mismatch",
                format!("reported {reported}, recomputed {recomputed:.2}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> At {
        At(DateTime::parse_from_rfc3339(text).unwrap().timestamp())
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn local_time_in_a_spring_forward_gap_is_the_first_instant_after_it() {
        // Lisbon, 2025-03-30: 01:00 WET jumps to 02:00 WEST (01:00 UTC).
        let tz: Tz = "Europe/Lisbon".parse().unwrap();
        assert_eq!(
            local_instant(tz, day(2025, 3, 30), time(1, 30)),
            at("2025-03-30T01:00:00Z")
        );
        assert_eq!(
            local_instant(tz, day(2025, 3, 30), time(1, 0)),
            at("2025-03-30T01:00:00Z")
        );
        assert_eq!(
            local_instant(tz, day(2025, 3, 30), time(2, 0)),
            at("2025-03-30T02:00:00+01:00")
        );
    }

    #[test]
    fn ambiguous_local_time_is_the_earlier_instant() {
        // Lisbon, 2025-10-26: 02:00 WEST falls back to 01:00 WET; 01:30 happens twice.
        let tz: Tz = "Europe/Lisbon".parse().unwrap();
        assert_eq!(
            local_instant(tz, day(2025, 10, 26), time(1, 30)),
            at("2025-10-26T01:30:00+01:00")
        );
    }

    #[test]
    fn a_skipped_day_resolves_to_the_jump() {
        // Samoa skipped 2011-12-30 entirely (UTC-10 to UTC+14 at 10:00 UTC).
        let tz: Tz = "Pacific/Apia".parse().unwrap();
        assert_eq!(
            local_instant(tz, day(2011, 12, 30), time(8, 0)),
            at("2011-12-30T10:00:00Z")
        );
    }

    #[test]
    fn break_overlap_counts_only_the_shared_part() {
        let brk = Some((At(100), At(200)));
        assert_eq!(overlap(brk, At(0), At(150)), Duration(50));
        assert_eq!(overlap(brk, At(250), At(300)), Duration::ZERO);
        assert_eq!(overlap(None, At(0), At(300)), Duration::ZERO);
    }
}
