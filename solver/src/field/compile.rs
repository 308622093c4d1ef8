//! From a [`ProblemInput`] to a core [`Problem`] with field [`Rules`].
//!
//! - **Time**: core time is whole seconds since [`Compiled::epoch`], the local midnight
//!   of the earliest shift date. Shift and break times are local wall-clock times on
//!   the shift's date, converted with the time zone's rules (a time in a spring-forward
//!   gap becomes the first instant after the gap, a repeated fall-back time the earlier
//!   instant); job windows and SLA due times are absolute.
//! - **Vehicles**: one core vehicle type per technician shift (`count = 1`), in input
//!   order; [`Compiled::vehicles`] maps them back.
//! - **Money**: costs are integers of [`COST_UNITS_PER_CURRENCY`] units per currency
//!   unit, so per-metre and per-second rates keep five decimals.
//! - **Who may do what**: a job's `allowed` vehicle types pass every filter (skills
//!   and levels, territory, a shift in which the visit can start and finish inside one
//!   of its windows, van capacity, pins). When none passes, [`Compiled::job_blockers`]
//!   says why ([`Blocker`]).

use super::area::Area;
use super::input::{JobInput, Place, ProblemInput, Shift};
use super::travel::{build_matrices, Coord, PlaceRef, TravelError};
use super::validate::{validate, ValidationError, ValidationErrors};
use crate::{
    BreakSpec, Cost, Distance, Duration, Job, JobRules, Load, Matrix, Problem, Rules, TimeWindow,
    VehicleRules, VehicleType,
};
use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use geo::Point;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Cost units per currency unit: 1 cost unit = 0.00001 of the problem's currency
/// (a rate of 20 per hour is 555.6 units per second: rounding costs under 0.1 %).
pub const COST_UNITS_PER_CURRENCY: i64 = 100_000;

/// A van without a stated capacity holds this many pieces of equipment.
pub const UNLIMITED_CAPACITY: i64 = 1_000_000;

/// Where a job was in the previously published plan (for stability).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousAssignment {
    pub technician: String,
    pub date: NaiveDate,
}

/// Why no technician-shift at all may do a job, decided before the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocker {
    /// The job is pinned (to a technician or a start time) and the pin rules out
    /// every option: the technician lacks a skill, does not work then, and so on.
    PinnedConflict,
    /// Nobody has all the required skills at the minimum levels.
    NoSkilledTechnician,
    /// Skilled technicians exist, but the place is in none of their territories.
    OutsideTerritory,
    /// Skilled technicians cover the place, but none has a shift in which the visit
    /// can start (and finish) inside one of its windows.
    NoShiftThatDay,
    /// The equipment delivered or collected exceeds every remaining van's capacity.
    CapacityExceeded,
}

impl Blocker {
    /// The stable code, as serialized.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PinnedConflict => "pinned_conflict",
            Self::NoSkilledTechnician => "no_skilled_technician",
            Self::OutsideTerritory => "outside_territory",
            Self::NoShiftThatDay => "no_shift_that_day",
            Self::CapacityExceeded => "capacity_exceeded",
        }
    }

    /// A sentence for a dispatcher.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::PinnedConflict => {
                "the job is pinned to a technician or start time that cannot do it"
            }
            Self::NoSkilledTechnician => {
                "no technician has all the required skills at the required levels"
            }
            Self::OutsideTerritory => "the place is outside every skilled technician's territory",
            Self::NoShiftThatDay => {
                "no skilled technician covering the place works during the job's windows"
            }
            Self::CapacityExceeded => {
                "the equipment to deliver or collect does not fit in any suitable van"
            }
        }
    }
}

/// A core vehicle type's origin: `input.technicians[technician].shifts[shift]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct VehicleRef {
    pub technician: usize,
    pub shift: usize,
}

/// A compiled problem and what is needed to read its solutions back.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The core problem, with rules; job `k` is `input.jobs[k]`.
    pub problem: Problem,
    pub tz: Tz,
    /// Core time 0: local midnight of the earliest shift date.
    pub epoch: DateTime<Utc>,
    /// Per core vehicle type, the technician shift it is.
    pub vehicles: Vec<VehicleRef>,
    /// Per core location, its coordinates.
    pub locations: Vec<Coord>,
    /// Cost units per currency unit ([`COST_UNITS_PER_CURRENCY`]).
    pub cost_units_per_currency: i64,
    /// Per job, why nobody may do it (`None` when someone may).
    pub job_blockers: Vec<Option<Blocker>>,
}

impl Compiled {
    /// A core time as a local date-time (saturating far outside chrono's range).
    pub fn to_local(&self, t: Duration) -> DateTime<Tz> {
        let instant = TimeDelta::try_seconds(t.get())
            .and_then(|d| self.epoch.checked_add_signed(d))
            .unwrap_or(if t.get() < 0 {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            });
        instant.with_timezone(&self.tz)
    }

    /// An instant as core time (whole seconds, rounded down).
    pub fn from_instant(&self, t: DateTime<FixedOffset>) -> Duration {
        Duration(t.timestamp() - self.epoch.timestamp())
    }

    /// A cost in currency units.
    pub fn currency(&self, cost: Cost) -> f64 {
        cost.get() as f64 / self.cost_units_per_currency as f64
    }

    /// The core vehicle type of technician `technician` (input index) on `date`.
    pub fn vehicle_type_on(
        &self,
        input: &ProblemInput,
        technician: usize,
        date: NaiveDate,
    ) -> Option<usize> {
        self.vehicles.iter().position(|v| {
            v.technician == technician
                && input.technicians[technician]
                    .shifts
                    .get(v.shift)
                    .map(|s| s.date)
                    == Some(date)
        })
    }
}

/// The instant of a local wall-clock time: the earlier one when the time occurs twice
/// (fall-back), the first one after the gap when it does not occur (spring-forward).
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => first_instant_after_gap(tz, local),
    }
}

/// The first instant whose local time is at or after `local` (which is in a gap).
/// Local time rises with the instant except at transitions, and `local` never occurs,
/// so within ±36 h (more than any offset) it is crossed exactly once, at the gap's end.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let target = local.and_utc().timestamp();
    let local_of = |u: i64| -> i64 {
        let offset = DateTime::from_timestamp(u, 0)
            .map(|d| {
                tz.offset_from_utc_datetime(&d.naive_utc())
                    .fix()
                    .local_minus_utc()
            })
            .unwrap_or(0);
        u + i64::from(offset)
    };
    let (mut lo, mut hi) = (target - 36 * 3600, target + 36 * 3600);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_of(mid) >= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or_else(|| local.and_utc())
}

/// The distinct places of the problem, in order of first use, and the JSON path of
/// each one's first use (to name it in travel errors).
#[derive(Default)]
struct Places<'a> {
    index: HashMap<(u64, u64, Option<&'a str>), usize>,
    refs: Vec<PlaceRef<'a>>,
    paths: Vec<String>,
}

impl<'a> Places<'a> {
    fn add(&mut self, place: &'a Place, path: impl FnOnce() -> String) -> usize {
        // -0.0 and 0.0 are the same place.
        let key = (
            (place.lat + 0.0).to_bits(),
            (place.lon + 0.0).to_bits(),
            place.location_id.as_deref(),
        );
        *self.index.entry(key).or_insert_with(|| {
            self.refs.push(PlaceRef {
                coord: place.coord(),
                location_id: place.location_id.as_deref(),
            });
            self.paths.push(path());
            self.refs.len() - 1
        })
    }

    /// A travel error at its JSON path: `places[i]…` becomes the place's path.
    fn error(&self, e: &TravelError) -> ValidationError {
        let path = e.path();
        let mapped = path
            .strip_prefix("places[")
            .and_then(|rest| {
                let (i, tail) = rest.split_once(']')?;
                let place = self.paths.get(i.parse::<usize>().ok()?)?;
                Some(format!("{place}{tail}"))
            })
            .unwrap_or_else(|| format!("$.{path}"));
        ValidationError::new(mapped, e.code(), e.to_string())
    }
}

/// What compile needs of a technician for the job filters.
struct Profile {
    /// Level per interned skill (0 = none).
    levels: Vec<u8>,
    area: Option<Area>,
    capacity: i64,
    /// Core vehicle types of the technician's shifts, in shift order.
    vehicle_types: std::ops::Range<usize>,
}

/// How far a job got through the filters with some technician.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    None,
    Skilled,
    InTerritory,
    OnShift,
    Allowed,
}

/// Validates `input`, builds travel matrices and compiles the core problem.
/// `previous` maps job ids to where they were in the last published plan.
pub fn compile(
    input: &ProblemInput,
    previous: &HashMap<String, PreviousAssignment>,
) -> Result<Compiled, ValidationErrors> {
    validate(input)?;
    let tz: Tz = input.time_zone.parse().map_err(|_| {
        ValidationError::new("$.time_zone", "unknown_time_zone", "not an IANA time zone")
    })?;
    let units = COST_UNITS_PER_CURRENCY as f64;
    let rate = |x: f64| (x * units).round().max(0.0) as i64;
    let objective = &input.objective;

    let first_date = input
        .technicians
        .iter()
        .flat_map(|t| t.shifts.iter().map(|s| s.date))
        .min()
        .unwrap_or_default();
    let epoch = local_instant(tz, first_date.and_time(NaiveTime::MIN));
    let at = |date: NaiveDate, time: NaiveTime| {
        Duration(local_instant(tz, date.and_time(time)).timestamp() - epoch.timestamp())
    };
    let instant = |t: DateTime<FixedOffset>| Duration(t.timestamp() - epoch.timestamp());

    // Places: technicians' start and end places, then jobs'.
    let mut places = Places::default();
    let mut shift_places = Vec::new();
    for (i, t) in input.technicians.iter().enumerate() {
        for (k, s) in t.shifts.iter().enumerate() {
            let home = || format!("$.technicians[{i}].home");
            let start = match &s.start_place {
                Some(p) => places.add(p, || format!("$.technicians[{i}].shifts[{k}].start_place")),
                None => places.add(&t.home, home),
            };
            let end = match &s.end_place {
                Some(p) => places.add(p, || format!("$.technicians[{i}].shifts[{k}].end_place")),
                None => places.add(&t.home, home),
            };
            shift_places.push((start, end));
        }
    }
    let job_places: Vec<usize> = input
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| places.add(&job.place, || format!("$.jobs[{j}].place")))
        .collect();
    let travel = build_matrices(&input.travel, &places.refs).map_err(|e| places.error(&e))?;
    let model_error = |e: crate::ModelError| {
        ValidationErrors::from(ValidationError::new("$", "model_error", e.to_string()))
    };
    let distances = Matrix::from_row_major(
        travel.size,
        travel.distances_m.iter().map(|&m| Distance(m)).collect(),
    )
    .map_err(model_error)?;
    let durations = Matrix::from_row_major(
        travel.size,
        travel.durations_s.iter().map(|&s| Duration(s)).collect(),
    )
    .map_err(model_error)?;

    // Vehicle types: one per technician shift.
    let mut skill_ids: HashMap<&str, usize> = HashMap::new();
    for t in &input.technicians {
        for name in t.skills.keys() {
            let next = skill_ids.len();
            skill_ids.entry(name.as_str()).or_insert(next);
        }
    }
    let mut vehicle_types = Vec::new();
    let mut vehicle_rules = Vec::new();
    let mut vehicles = Vec::new();
    let mut profiles = Vec::with_capacity(input.technicians.len());
    let mut vehicle_on: HashMap<(usize, NaiveDate), usize> = HashMap::new();
    for (i, t) in input.technicians.iter().enumerate() {
        let first = vehicle_types.len();
        for (k, s) in t.shifts.iter().enumerate() {
            let (start_place, end_place) = shift_places[vehicle_types.len()];
            let (vt, rules) = vehicle_type(t, s, start_place, end_place, objective, &at, &rate);
            vehicle_on.entry((i, s.date)).or_insert(vehicle_types.len());
            vehicle_types.push(vt);
            vehicle_rules.push(rules);
            vehicles.push(VehicleRef {
                technician: i,
                shift: k,
            });
        }
        let mut levels = vec![0; skill_ids.len()];
        for (name, &level) in &t.skills {
            levels[skill_ids[name.as_str()]] = level;
        }
        profiles.push(Profile {
            levels,
            area: t.territory.as_ref().map(Area::of),
            capacity: t.van_capacity.map_or(UNLIMITED_CAPACITY, i64::from),
            vehicle_types: first..vehicle_types.len(),
        });
    }
    let technician_index: HashMap<&str, usize> = input
        .technicians
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();

    // Jobs.
    let n_types = vehicle_types.len();
    let mut jobs = Vec::with_capacity(input.jobs.len());
    let mut job_rules = Vec::with_capacity(input.jobs.len());
    let mut job_blockers = Vec::with_capacity(input.jobs.len());
    for (j, job) in input.jobs.iter().enumerate() {
        let windows = match job.pinned_start {
            Some(pin) => vec![TimeWindow::new(instant(pin), instant(pin))],
            None => merged_windows(
                job.windows
                    .iter()
                    .map(|w| (instant(w.start), instant(w.end))),
            ),
        };
        let service = Duration(i64::from(job.duration_minutes) * 60);
        let pinned = job
            .pinned_technician
            .as_deref()
            .and_then(|id| technician_index.get(id).copied());
        let filter = JobFilter {
            job,
            required: job
                .required_skills
                .iter()
                .map(|(name, &min)| (skill_ids.get(name.as_str()).copied(), min))
                .collect(),
            point: Point::new(job.place.lon, job.place.lat),
            windows: &windows,
        };
        let mut allowed = Vec::new();
        let mut service_on = Vec::new();
        let mut reached = Stage::None;
        let candidates = match pinned {
            Some(i) => i..i + 1,
            None => 0..profiles.len(),
        };
        for i in candidates {
            let profile = &profiles[i];
            let own_service = filter.service_for(profile, &skill_ids).unwrap_or(service);
            let before = allowed.len();
            reached = reached.max(filter.stage(profile, own_service, &vehicle_types, &mut allowed));
            if own_service != service {
                service_on.extend(allowed[before..].iter().map(|&v| (v, own_service)));
            }
        }
        let blocker = match reached {
            Stage::Allowed => None,
            _ if job.pinned_technician.is_some() || job.pinned_start.is_some() => {
                Some(Blocker::PinnedConflict)
            }
            Stage::None => Some(Blocker::NoSkilledTechnician),
            Stage::Skilled => Some(Blocker::OutsideTerritory),
            Stage::InTerritory => Some(Blocker::NoShiftThatDay),
            Stage::OnShift => Some(Blocker::CapacityExceeded),
        };
        job_blockers.push(blocker);

        let types_of = |id: Option<&str>| -> Vec<usize> {
            id.and_then(|id| technician_index.get(id))
                .map(|&i| profiles[i].vehicle_types.clone().collect())
                .unwrap_or_default()
        };
        let previous_types = previous
            .get(&job.id)
            .and_then(|p| {
                let &i = technician_index.get(p.technician.as_str())?;
                vehicle_on.get(&(i, p.date)).copied()
            })
            .into_iter()
            .collect();
        jobs.push(Job {
            location: job_places[j],
            service,
            demand: Load(i64::from(job.equipment.deliver)),
            windows,
        });
        job_rules.push(JobRules {
            pickup: Load(i64::from(job.equipment.collect)),
            unassigned_cost: Some(Cost(rate(
                f64::from(job.priority) * objective.unassigned_per_priority,
            ))),
            allowed: (allowed.len() < n_types).then_some(allowed),
            service_on,
            due: job.sla_due.map(instant),
            lateness_cost: rate(objective.sla_lateness_per_minute / 60.0),
            previous: previous_types,
            change_cost: rate(objective.stability_change),
            preferred: types_of(job.preferred_technician.as_deref()),
            not_preferred_cost: rate(objective.not_preferred),
            same_group_as: Vec::new(),
            after: Vec::new(),
        });
    }
    // Relations between jobs (validated: the ids exist and are not the job itself).
    let job_index: HashMap<&str, usize> = input
        .jobs
        .iter()
        .enumerate()
        .map(|(k, j)| (j.id.as_str(), k))
        .collect();
    for (k, job) in input.jobs.iter().enumerate() {
        if let Some(&other) = job
            .same_technician_as
            .as_deref()
            .and_then(|id| job_index.get(id))
        {
            job_rules[k].same_group_as.push(other);
            job_rules[other].same_group_as.push(k);
        }
        if let Some(&other) = job.after_job.as_deref().and_then(|id| job_index.get(id)) {
            job_rules[k].after.push(other);
        }
    }
    for r in &mut job_rules {
        r.same_group_as.sort_unstable();
        r.same_group_as.dedup();
    }

    let rules = Rules {
        jobs: job_rules,
        vehicles: vehicle_rules,
        balance_per_hour_squared: rate(objective.balance_per_hour_squared),
        units_per_hour: 3600,
        // "Same technician": vehicle types group by technician.
        groups: vehicles.iter().map(|v| v.technician).collect(),
    };
    let problem = Problem::new(distances, durations, vehicle_types, jobs)
        .and_then(|p| p.with_rules(rules))
        .map_err(model_error)?;
    let locations = places.refs.iter().map(|p| p.coord).collect();
    Ok(Compiled {
        problem,
        tz,
        epoch,
        vehicles,
        locations,
        cost_units_per_currency: COST_UNITS_PER_CURRENCY,
        job_blockers,
    })
}

/// The core vehicle type and rules of one technician shift.
fn vehicle_type(
    t: &super::input::Technician,
    s: &Shift,
    start: usize,
    end: usize,
    objective: &super::input::ObjectiveWeights,
    at: &impl Fn(NaiveDate, NaiveTime) -> Duration,
    rate: &impl Fn(f64) -> i64,
) -> (VehicleType, VehicleRules) {
    let shift_start = at(s.date, s.start);
    let regular_end = at(s.date, s.end).max(shift_start);
    let hard_end = regular_end + Duration(i64::from(s.overtime_minutes) * 60);
    let break_spec = s.break_rule.as_ref().map(|b| {
        let duration = Duration(i64::from(b.duration_minutes) * 60);
        let earliest = at(s.date, b.earliest_start);
        // A break range shortened by a DST change may not fit: then it starts at once.
        let latest = (at(s.date, b.latest_end) - duration).max(earliest);
        BreakSpec {
            start: TimeWindow::new(earliest, latest),
            duration,
        }
    });
    let vt = VehicleType {
        start,
        end,
        shift: TimeWindow::new(shift_start, hard_end),
        capacity: Load(t.van_capacity.map_or(UNLIMITED_CAPACITY, i64::from)),
        count: Some(1),
        fixed_cost: 0,
        cost_per_distance: rate(t.cost_per_km / 1000.0 * objective.travel_and_work),
        cost_per_duration: rate(t.cost_per_hour / 3600.0 * objective.travel_and_work),
    };
    let rules = VehicleRules {
        break_spec,
        regular_end: Some(regular_end),
        overtime_cost: rate(
            s.overtime_cost_per_hour / 3600.0 + objective.overtime_per_minute / 60.0,
        ),
        max_jobs: t.max_jobs_per_day.map(|m| m as usize),
    };
    (vt, rules)
}

/// Windows sorted, with overlapping or touching ones merged.
fn merged_windows(windows: impl Iterator<Item = (Duration, Duration)>) -> Vec<TimeWindow> {
    let mut sorted: Vec<(Duration, Duration)> = windows.collect();
    sorted.sort_unstable();
    let mut merged: Vec<TimeWindow> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match merged.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => merged.push(TimeWindow::new(start, end)),
        }
    }
    merged
}

/// One job's view for the technician filters.
struct JobFilter<'a> {
    job: &'a JobInput,
    /// Interned required skills (`None`: no technician has it) and minimum levels.
    required: Vec<(Option<usize>, u8)>,
    point: Point<f64>,
    windows: &'a [TimeWindow],
}

impl JobFilter<'_> {
    /// The on-site time of `duration_by_level` for this technician, if a rule applies.
    fn service_for(&self, profile: &Profile, skill_ids: &HashMap<&str, usize>) -> Option<Duration> {
        let first_skill = self.job.required_skills.keys().next()?;
        let level = profile.levels[*skill_ids.get(first_skill.as_str())?];
        let (_, &minutes) = self.job.duration_by_level.range(..=level).next_back()?;
        Some(Duration(i64::from(minutes) * 60))
    }

    /// Runs the filters in order for one technician, pushing the allowed vehicle types
    /// onto `allowed`; returns the furthest stage reached.
    fn stage(
        &self,
        profile: &Profile,
        service: Duration,
        vehicle_types: &[VehicleType],
        allowed: &mut Vec<usize>,
    ) -> Stage {
        let skilled = self
            .required
            .iter()
            .all(|&(id, min)| id.is_some_and(|id| profile.levels[id] >= min));
        if !skilled {
            return Stage::None;
        }
        if profile.area.as_ref().is_some_and(|a| !a.covers(self.point)) {
            return Stage::Skilled;
        }
        let fits =
            self.job.equipment.deliver.max(self.job.equipment.collect) as i64 <= profile.capacity;
        let mut stage = Stage::InTerritory;
        for v in profile.vehicle_types.clone() {
            let shift = vehicle_types[v].shift;
            // The visit must start in a window and finish by the shift's hard end.
            let latest = shift.end - service;
            let overlaps = self
                .windows
                .iter()
                .any(|w| w.start.max(shift.start) <= w.end.min(latest));
            if overlaps {
                stage = stage.max(Stage::OnShift);
                if fits {
                    allowed.push(v);
                    stage = Stage::Allowed;
                }
            }
        }
        stage
    }
}
