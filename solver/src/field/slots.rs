//! Slot search for booking: which narrow windows (2 hours by default) can really be
//! promised to a customer, given the technicians' shifts, breaks and skills and every
//! visit already booked. Not a calendar lookup: each candidate window is tested by
//! inserting the new visit into the technician-day's route with the route evaluator,
//! so a slot is offered only if a skilled technician can take it without breaking
//! any confirmed window, the shift, the break or the van.
//!
//! The same check ([`check_visit`]) runs again when a booking is confirmed, under the
//! database's lock on that technician-day, so an offer that went stale is refused.

use super::compile::{compile, Blocker, Compiled};
use super::input::{
    CustomerTier, Equipment, JobInput, JobKind, Place, ProblemInput, Technician, WindowInput,
};
use super::travel::TravelOptions;
use super::validate::{ValidationError, ValidationErrors};
use crate::model::TimeWindow;
use crate::search::schedule_route;
use crate::units::Duration;
use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// What the operation looks like: who works when, and how travel is measured.
#[derive(Clone, Debug)]
pub struct Operation {
    pub time_zone: String,
    pub travel: TravelOptions,
    pub technicians: Vec<Technician>,
    /// Share of each technician-day kept free for repairs (SLA work): other kinds of
    /// visit may fill at most `1 - repair_reserve` of the shift with on-site time.
    pub repair_reserve: f64,
}

/// A visit already promised: the job (its `windows` hold the promised window) and
/// the technician-day it is planned on.
#[derive(Clone, Debug)]
pub struct BookedVisit {
    pub job: JobInput,
    pub technician: String,
    pub date: NaiveDate,
}

/// What a customer (through the chat bot) asks for.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotRequest {
    pub place: Place,
    pub kind: JobKind,
    #[serde(default)]
    pub tier: CustomerTier,
    pub duration_minutes: u32,
    #[serde(default)]
    pub required_skills: BTreeMap<String, u8>,
    #[serde(default)]
    pub equipment: Equipment,
    /// The first day to look at (local date of the operation).
    pub earliest_day: NaiveDate,
    /// How many days from `earliest_day` to look at (1–31).
    pub days: u32,
    /// Window length in minutes (default 120).
    #[serde(default = "default_window")]
    pub window_minutes: u32,
}

fn default_window() -> u32 {
    120
}

/// A window that can be promised, with the technician-day that would do it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotOffer {
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
    /// 0–100: higher is a better fit (less extra driving and waiting, sooner).
    pub grade: u8,
    pub technician: String,
    pub date: NaiveDate,
    /// Driving and waiting the visit adds to that day, in minutes.
    pub extra_minutes: f64,
}

/// The answer to a slot search.
#[derive(Clone, Debug, PartialEq)]
pub enum SlotAnswer {
    /// Best first; empty when every suitable day is full.
    Slots(Vec<SlotOffer>),
    /// The place is outside every suitable technician's territory.
    NotServed,
    /// Nobody has the skills the visit needs.
    NoSkilledTechnician,
    /// Nobody works on any of the days asked for (e.g. days in the past, or beyond the
    /// shifts stored): a later range may have slots.
    NoWorkingDay,
}

/// At most this many technicians per day are examined, the nearest to the place
/// first (a far technician would grade poorly anyway).
pub const NEAREST_PER_DAY: usize = 12;

/// One technician-day a search examines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExaminedDay {
    pub technician: String,
    pub date: NaiveDate,
    /// Index of the technician in the operation, and of the shift in the technician's.
    technician_index: usize,
    shift: usize,
    /// Days after the request's earliest day.
    offset: u32,
}

/// Which technician-days a request is checked against, before any booking is read.
#[derive(Clone, Debug, PartialEq)]
pub enum Examined {
    /// Per day, the nearest skilled technicians whose territory holds the place
    /// (at most [`NEAREST_PER_DAY`]), nearest first.
    Days(Vec<ExaminedDay>),
    NotServed,
    NoSkilledTechnician,
    NoWorkingDay,
}

/// The technician-days [`search_slots`] examines for `req`. They depend on the
/// technicians alone (skills, territories, shifts), never on the bookings: a caller
/// with many bookings reads those of these days only, and the search gives the same
/// answer as with all of them.
pub fn examined_days(op: &Operation, req: &SlotRequest) -> Result<Examined, ValidationErrors> {
    validate_request(req)?;
    let tz = time_zone(op)?;
    let mut days = Vec::new();
    let (mut skilled_somewhere, mut in_territory_somewhere) = (false, false);
    let mut anyone_working = false;
    for offset in 0..req.days {
        let date = req.earliest_day + TimeDelta::days(offset as i64);
        // Technicians working that day, nearest first.
        let mut working: Vec<(f64, usize, usize)> = op
            .technicians
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let shift = t.shifts.iter().position(|s| s.date == date)?;
                let place = t.shifts[shift].start_place.as_ref().unwrap_or(&t.home);
                Some((rough_km(place, &req.place), i, shift))
            })
            .collect();
        anyone_working |= !working.is_empty();
        working.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then_with(|| op.technicians[a.1].id.cmp(&op.technicians[b.1].id))
        });
        let mut examined = 0;
        for (_, i, shift) in working {
            if examined >= NEAREST_PER_DAY {
                break;
            }
            let tech = &op.technicians[i];
            // The candidate alone on an empty day: skills and territory do not depend
            // on what else the day holds.
            let candidate = request_job(req, whole_day(tz, &tech.shifts[shift]));
            let empty = DayProblem::build(op, tech, shift, &[], candidate)?;
            match empty.compiled.job_blockers[empty.candidate] {
                Some(Blocker::NoSkilledTechnician) => continue,
                Some(Blocker::OutsideTerritory) => {
                    skilled_somewhere = true;
                    continue;
                }
                _ => {
                    skilled_somewhere = true;
                    in_territory_somewhere = true;
                    examined += 1;
                    days.push(ExaminedDay {
                        technician: tech.id.clone(),
                        date,
                        technician_index: i,
                        shift,
                        offset,
                    });
                }
            }
        }
    }
    Ok(if !anyone_working {
        Examined::NoWorkingDay
    } else if !skilled_somewhere {
        Examined::NoSkilledTechnician
    } else if !in_territory_somewhere {
        Examined::NotServed
    } else {
        Examined::Days(days)
    })
}

/// The slots a request can be offered, best first (at most `limit`). Only the
/// bookings of the [`examined_days`] matter; others are ignored.
pub fn search_slots(
    op: &Operation,
    bookings: &[BookedVisit],
    req: &SlotRequest,
    limit: usize,
) -> Result<SlotAnswer, ValidationErrors> {
    let days = match examined_days(op, req)? {
        Examined::Days(days) => days,
        Examined::NotServed => return Ok(SlotAnswer::NotServed),
        Examined::NoSkilledTechnician => return Ok(SlotAnswer::NoSkilledTechnician),
        Examined::NoWorkingDay => return Ok(SlotAnswer::NoWorkingDay),
    };
    let tz = time_zone(op)?;
    let mut by_day: HashMap<(&str, NaiveDate), Vec<&BookedVisit>> = HashMap::new();
    for b in bookings {
        by_day
            .entry((b.technician.as_str(), b.date))
            .or_default()
            .push(b);
    }
    let mut offers = Vec::new();
    for d in &days {
        let tech = &op.technicians[d.technician_index];
        let day = by_day
            .get(&(tech.id.as_str(), d.date))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        offers.append(&mut day_slots(op, tz, tech, d.shift, day, req, d.offset)?);
    }
    // One offer per window (the best technician for it), best first.
    offers.sort_by(|a, b| {
        b.grade
            .cmp(&a.grade)
            .then(a.start.cmp(&b.start))
            .then(a.extra_minutes.total_cmp(&b.extra_minutes))
    });
    let mut seen = std::collections::HashSet::new();
    offers.retain(|o| seen.insert((o.start, o.end)));
    offers.truncate(limit);
    Ok(SlotAnswer::Slots(offers))
}

fn time_zone(op: &Operation) -> Result<chrono_tz::Tz, ValidationErrors> {
    op.time_zone.parse().map_err(|_| {
        ValidationErrors(vec![ValidationError::new(
            "$.time_zone",
            "unknown_time_zone",
            format!("unknown time zone {:?}", op.time_zone),
        )])
    })
}

/// A shift's whole span as a window, in the operation's time zone.
fn whole_day(tz: chrono_tz::Tz, s: &super::input::Shift) -> WindowInput {
    let local = |t: chrono::NaiveTime| {
        super::compile::local_instant(tz, s.date.and_time(t)).with_timezone(&tz)
    };
    WindowInput {
        start: local(s.start).fixed_offset(),
        end: local(s.end).fixed_offset(),
    }
}

/// Whether a visit of `kind` lasting `minutes` leaves the day's repair reserve free:
/// visits other than repairs may fill at most `1 - repair_reserve` of the shift
/// (`day`) with on-site time, `booked` minutes being taken already. The search offers
/// only such slots and the booking checks it again, so two bookings of one offer
/// cannot eat the reserve between them.
fn reserve_allows(
    op: &Operation,
    day: &WindowInput,
    booked: u32,
    kind: JobKind,
    minutes: u32,
) -> bool {
    if kind == JobKind::Repair {
        return true;
    }
    let shift_minutes = (day.end - day.start).num_minutes().max(0) as f64;
    f64::from(booked + minutes) <= (1.0 - op.repair_reserve) * shift_minutes
}

/// When a booked visit is planned on its technician-day: on site from `start` to `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedVisit {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Whether `visit` (its job's single window) fits `technician`'s day on `date` next to
/// `others` (the visits already booked there). `Ok` holds one planned time per visit,
/// `others` first (in their order), then `visit`: a schedule in which all of them
/// keep their windows, the shift, the break and the van. `Err` says why not.
pub fn check_visit(
    op: &Operation,
    visit: &BookedVisit,
    others: &[BookedVisit],
) -> Result<Vec<PlannedVisit>, VisitRefusal> {
    let tech = op
        .technicians
        .iter()
        .find(|t| t.id == visit.technician)
        .ok_or(VisitRefusal::UnknownTechnician)?;
    let shift = tech
        .shifts
        .iter()
        .position(|s| s.date == visit.date)
        .ok_or(VisitRefusal::NoShift)?;
    let tz = time_zone(op).map_err(|_| VisitRefusal::Invalid)?;
    let booked = others.iter().map(|b| b.job.duration_minutes).sum();
    if !reserve_allows(
        op,
        &whole_day(tz, &tech.shifts[shift]),
        booked,
        visit.job.kind,
        visit.job.duration_minutes,
    ) {
        return Err(VisitRefusal::RepairReserve);
    }
    let refs: Vec<&BookedVisit> = others.iter().collect();
    let day = DayProblem::build(op, tech, shift, &refs, visit.job.clone())
        .map_err(|_| VisitRefusal::Invalid)?;
    if let Some(b) = day.compiled.job_blockers[day.candidate] {
        return Err(VisitRefusal::Blocked(b));
    }
    // The promise holds when all the day's visits, this one included, fit together in
    // some order (not only in the order the offer was computed with).
    let order = day.joint_order(true).ok_or(VisitRefusal::DoesNotFit)?;
    let (schedule, _) =
        schedule_route(&day.compiled.problem, 0, &order).ok_or(VisitRefusal::Invalid)?;
    let mut planned = vec![None; day.candidate + 1];
    for stop in &schedule.stops {
        planned[stop.job] = Some(PlannedVisit {
            start: day.compiled.to_local(stop.start).with_timezone(&Utc),
            end: day.compiled.to_local(stop.end).with_timezone(&Utc),
        });
    }
    planned
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or(VisitRefusal::Invalid)
}

/// Why a visit cannot be booked on a technician-day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisitRefusal {
    UnknownTechnician,
    NoShift,
    Invalid,
    Blocked(Blocker),
    /// Adding it would break a window, the shift, the break or the van.
    DoesNotFit,
    /// The day's time left is kept for repairs (`Operation::repair_reserve`).
    RepairReserve,
}

/// One technician-day as a tiny problem: its booked visits plus the candidate.
struct DayProblem {
    compiled: Compiled,
    /// Core job index of the candidate (the last job).
    candidate: usize,
}

impl DayProblem {
    fn build(
        op: &Operation,
        tech: &Technician,
        shift: usize,
        day: &[&BookedVisit],
        candidate: JobInput,
    ) -> Result<Self, ValidationErrors> {
        let mut t = tech.clone();
        t.shifts = vec![tech.shifts[shift].clone()];
        let mut jobs: Vec<JobInput> = day.iter().map(|b| b.job.clone()).collect();
        // Booked visits stay with this technician whatever their pins said; their ids
        // only need to be distinct here.
        for (k, j) in jobs.iter_mut().enumerate() {
            j.id = format!("booked-{k}");
            j.pinned_technician = None;
            j.preferred_technician = None;
        }
        jobs.push(candidate);
        let input = ProblemInput {
            version: super::input::PROBLEM_VERSION,
            time_zone: op.time_zone.clone(),
            skills: None,
            technicians: vec![t],
            jobs,
            travel: op.travel.clone(),
            objective: Default::default(),
        };
        let compiled = compile(&input, &HashMap::new())?;
        let candidate = input.jobs.len() - 1;
        Ok(Self {
            compiled,
            candidate,
        })
    }

    /// Duration of the day without the candidate (zero for an empty day).
    fn duration_of(&self, base: &[usize]) -> Duration {
        if base.is_empty() {
            return Duration::ZERO;
        }
        schedule_route(&self.compiled.problem, 0, base).map_or(Duration::ZERO, |(s, _)| s.duration)
    }

    /// A feasible order of the booked visits: by window start when that works (the
    /// usual case with narrow windows), else by cheapest insertion, else the one the
    /// search finds (the candidate,
    /// if the search also planned it, is taken out again).
    fn order(&self) -> Option<Vec<usize>> {
        self.joint_order(false)
    }

    /// [`Self::order`] over the booked visits and, with `with_candidate`, the candidate
    /// too (with its compiled window).
    fn joint_order(&self, with_candidate: bool) -> Option<Vec<usize>> {
        let p = &self.compiled.problem;
        let count = self.candidate + usize::from(with_candidate);
        let mut booked: Vec<usize> = (0..count).collect();
        booked.sort_by_key(|&j| (p.jobs()[j].windows[0].start, p.jobs()[j].windows[0].end, j));
        let feasible =
            |route: &[usize]| schedule_route(p, 0, route).is_some_and(|(_, e)| e.is_feasible());
        // `route` with `j` at its cheapest feasible place, if it has one.
        let insert = |route: &mut Vec<usize>, j: usize| {
            let best = (0..=route.len())
                .filter_map(|k| {
                    let mut r = route.clone();
                    r.insert(k, j);
                    let (_, e) = schedule_route(p, 0, &r)?;
                    e.is_feasible().then_some((e.cost(0, 0), k))
                })
                .min();
            best.map(|(_, k)| route.insert(k, j)).is_some()
        };
        // First the order the visits were given in: callers that store the day's
        // planned order (the booking service does) pass it, and it is feasible, so
        // the fallbacks below — the search above all — are rarely needed.
        let mut given: Vec<usize> = (0..self.candidate).collect();
        if feasible(&given) && (!with_candidate || insert(&mut given, self.candidate)) {
            return Some(given);
        }
        if feasible(&booked) {
            return Some(booked);
        }
        // Cheap second try: insert in window order, each at its cheapest feasible place.
        let mut route: Vec<usize> = Vec::with_capacity(booked.len());
        for &j in &booked {
            if !insert(&mut route, j) {
                break;
            }
        }
        if route.len() == count {
            return Some(route);
        }
        // Last resort: the search (tiny problem, a few milliseconds).
        let result = crate::search::solve(
            p,
            &crate::search::SolverConfig {
                seed: 1,
                max_iterations: Some(300),
                time_limit: None,
                ..Default::default()
            },
        );
        let route: Vec<usize> = result
            .solution
            .used_routes()
            .flat_map(|r| r.jobs.iter().copied())
            .filter(|&j| with_candidate || j != self.candidate)
            .collect();
        (route.len() == count && feasible(&route)).then_some(route)
    }

    /// The cheapest feasible position for the candidate in `base` under `problem`
    /// (whose candidate window may differ from the compiled one): (position, extra
    /// minutes of driving and waiting). `before_duration` is `base`'s own duration
    /// (see [`Self::duration_of`]; it does not depend on the candidate's window).
    fn best_insertion(
        &self,
        problem: &crate::Problem,
        base: &[usize],
        before_duration: Duration,
    ) -> Option<(usize, f64)> {
        let service = problem.service_on(self.candidate, 0);
        let mut best: Option<(usize, f64)> = None;
        let mut route = Vec::with_capacity(base.len() + 1);
        for at in 0..=base.len() {
            route.clear();
            route.extend_from_slice(&base[..at]);
            route.push(self.candidate);
            route.extend_from_slice(&base[at..]);
            let Some((s, e)) = schedule_route(problem, 0, &route) else {
                continue;
            };
            if !e.is_feasible() {
                continue;
            }
            // A day without visits has no break yet: it comes with the first one.
            let break_minutes = if base.is_empty() {
                s.break_taken.map_or(0, |b| (b.end - b.start).get())
            } else {
                0
            };
            let extra = (s.duration - before_duration - service).get() - break_minutes;
            let extra = extra.max(0) as f64 / 60.0;
            if best.is_none_or(|(_, x)| extra < x) {
                best = Some((at, extra));
            }
        }
        best
    }
}

fn day_slots(
    op: &Operation,
    tz: chrono_tz::Tz,
    tech: &Technician,
    shift: usize,
    day: &[&BookedVisit],
    req: &SlotRequest,
    day_offset: u32,
) -> Result<Vec<SlotOffer>, ValidationErrors> {
    let date = tech.shifts[shift].date;
    let whole_day = whole_day(tz, &tech.shifts[shift]);
    let (shift_start, shift_end) = (
        whole_day.start.with_timezone(&tz),
        whole_day.end.with_timezone(&tz),
    );
    let booked = day.iter().map(|b| b.job.duration_minutes).sum();
    if !reserve_allows(op, &whole_day, booked, req.kind, req.duration_minutes) {
        return Ok(Vec::new());
    }
    let candidate = request_job(req, whole_day);
    let day_problem = DayProblem::build(op, tech, shift, day, candidate)?;
    // Blocked (by skills, territory, the van): nothing to offer on this day.
    if day_problem.compiled.job_blockers[day_problem.candidate].is_some() {
        return Ok(Vec::new());
    }
    let Some(base) = day_problem.order() else {
        return Ok(Vec::new());
    };
    let c = &day_problem.compiled;
    let before_duration = day_problem.duration_of(&base);
    let length = TimeDelta::minutes(req.window_minutes as i64);
    let mut offers = Vec::new();
    // Windows start on the hour, from the shift start to the last that ends by the shift end.
    let mut start = shift_start;
    if start.minute() != 0 || start.second() != 0 {
        start = start
            - TimeDelta::minutes(start.minute() as i64)
            - TimeDelta::seconds(start.second() as i64)
            + TimeDelta::hours(1);
    }
    while start + length <= shift_end {
        let end = start + length;
        let window = TimeWindow::new(
            c.from_instant(start.fixed_offset()),
            c.from_instant(end.fixed_offset()),
        );
        let problem = c
            .problem
            .with_job_windows(day_problem.candidate, vec![window])
            .expect("one valid window");
        if let Some((_, extra)) = day_problem.best_insertion(&problem, &base, before_duration) {
            let grade = 100.0 - (2.0 * extra).min(80.0) - (3.0 * day_offset as f64).min(20.0);
            offers.push(SlotOffer {
                start: start.fixed_offset(),
                end: end.fixed_offset(),
                grade: grade.round().clamp(0.0, 100.0) as u8,
                technician: tech.id.clone(),
                date,
                extra_minutes: (extra * 10.0).round() / 10.0,
            });
        }
        start += TimeDelta::hours(1);
    }
    Ok(offers)
}

/// The job a request would become, with the given window.
pub fn request_job(req: &SlotRequest, window: WindowInput) -> JobInput {
    JobInput {
        id: "__candidate__".into(),
        kind: req.kind,
        tier: req.tier,
        place: req.place.clone(),
        duration_minutes: req.duration_minutes,
        duration_by_level: BTreeMap::new(),
        required_skills: req.required_skills.clone(),
        windows: vec![window],
        priority: 5,
        sla_due: None,
        pinned_technician: None,
        pinned_start: None,
        preferred_technician: None,
        equipment: req.equipment,
        same_technician_as: None,
        after_job: None,
    }
}

fn validate_request(req: &SlotRequest) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    let mut bad = |path: &str, code: &'static str, message: String| {
        errors.push(ValidationError::new(path, code, message));
    };
    let on_earth =
        (-90.0..=90.0).contains(&req.place.lat) && (-180.0..=180.0).contains(&req.place.lon);
    if !on_earth {
        bad(
            "$.place",
            "coordinates_out_of_range",
            format!(
                "({}, {}) is not a place on Earth",
                req.place.lat, req.place.lon
            ),
        );
    }
    if req.duration_minutes == 0 || req.duration_minutes > 12 * 60 {
        bad(
            "$.duration_minutes",
            "invalid_duration",
            format!(
                "{} minutes: must be between 1 and 720",
                req.duration_minutes
            ),
        );
    }
    if req.days == 0 || req.days > 31 {
        bad(
            "$.days",
            "invalid_days",
            format!("{} days: must be between 1 and 31", req.days),
        );
    }
    if req.window_minutes < 30 || req.window_minutes > 12 * 60 {
        bad(
            "$.window_minutes",
            "invalid_window",
            format!("{} minutes: must be between 30 and 720", req.window_minutes),
        );
    }
    for (skill, level) in &req.required_skills {
        if !(1..=5).contains(level) {
            bad(
                &format!("$.required_skills.{skill}"),
                "invalid_level",
                format!("level {level}: must be 1 to 5"),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Straight-line distance in km (ordering technicians by nearness only).
fn rough_km(a: &Place, b: &Place) -> f64 {
    let (dlat, dlon) = (a.lat - b.lat, (a.lon - b.lon) * a.lat.to_radians().cos());
    111.2 * (dlat * dlat + dlon * dlon).sqrt()
}
