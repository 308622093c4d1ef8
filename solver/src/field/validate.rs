//! Checks of a [`ProblemInput`] that serde cannot make: ranges, references between
//! records, times that do not fit together, and travel options.
//!
//! [`validate`] never stops at the first problem and never panics: it returns every
//! problem it finds, each with a JSON path (`$.jobs[3].windows[0].end`), a stable code
//! (`window_ends_before_start`) and a message that says what is wrong and what to do.
//! A problem that passes is safe to [`super::compile::compile`].

use super::input::{
    BreakRule, JobInput, ObjectiveWeights, Place, ProblemInput, Shift, Technician, Territory,
    PROBLEM_VERSION,
};
use super::travel::{validate_options, TravelOptions};
use chrono::{Datelike, NaiveDate, NaiveTime};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Skill levels go from 1 (basic) to this (expert).
pub const MAX_SKILL_LEVEL: u8 = 5;
/// The longest visit, break or overtime, in minutes (one day).
pub const MAX_MINUTES: u32 = 24 * 60;
/// Priorities go from 1 (low) to this (critical).
pub const MAX_PRIORITY: u8 = 10;
/// The largest money rate or objective weight accepted: far above any real one, and
/// small enough that costs summed over a large plan cannot overflow.
pub const MAX_MONEY: f64 = 1e9;
/// Positions in one territory (all rings of all polygons): a city district drawn by
/// hand has tens to hundreds; the limit keeps point-in-polygon tests and answers small.
pub const MAX_TERRITORY_POSITIONS: usize = 10_000;
/// Shift dates must lie in these years (chrono-tz's rules are meaningful there).
const FIRST_YEAR: i32 = 1900;
const LAST_YEAR: i32 = 2199;

/// One problem of the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// Where, as a JSON path into the problem: `$.technicians[2].shifts[0].end`.
    pub path: String,
    /// What kind of problem, stable and machine-readable: `shift_ends_before_start`.
    pub code: &'static str,
    /// What is wrong and what to do, for a person.
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.path, self.message, self.code)
    }
}

/// Every problem found in one input (at least one). Serializes as a JSON list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.0.iter()
    }
}

impl From<ValidationError> for ValidationErrors {
    fn from(error: ValidationError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.len() {
            1 => write!(f, "1 problem in the input:")?,
            n => write!(f, "{n} problems in the input:")?,
        }
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// `base.key`, or `base["key"]` when the key is not a plain identifier.
pub(crate) fn member(base: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{base}.{key}")
    } else {
        let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\""));
        format!("{base}[{quoted}]")
    }
}

/// Problems of one territory shape given on its own (a named territory of the API),
/// with paths under `base` (e.g. `$.area`); empty when the shape is usable.
pub fn territory_errors(base: &str, territory: &Territory) -> Vec<ValidationError> {
    let mut c = Checker {
        errors: Vec::new(),
        catalogue: None,
        technician_ids: HashSet::new(),
        job_ids: HashSet::new(),
        matrix_locations: None,
        tz: None,
    };
    c.territory(base, territory);
    c.errors
}

/// Every problem of `input`, or `Ok(())` when there is none.
pub fn validate(input: &ProblemInput) -> Result<(), ValidationErrors> {
    let mut c = Checker::new(input);
    if input.version != PROBLEM_VERSION {
        c.push(
            "$.version",
            "unsupported_version",
            format!(
                "version {} is not supported; this build reads version {PROBLEM_VERSION}",
                input.version
            ),
        );
    }
    if input.time_zone.parse::<chrono_tz::Tz>().is_err() {
        c.push(
            "$.time_zone",
            "unknown_time_zone",
            format!(
                "`{}` is not an IANA time zone name; use e.g. \"America/Sao_Paulo\" or \"Europe/Lisbon\"",
                input.time_zone
            ),
        );
    }
    if input.technicians.is_empty() {
        c.push(
            "$.technicians",
            "no_technicians",
            "there is no technician; add at least one with a shift",
        );
    }
    c.unique_ids(
        "technician",
        "$.technicians",
        input.technicians.iter().map(|t| t.id.as_str()),
    );
    c.unique_ids("job", "$.jobs", input.jobs.iter().map(|j| j.id.as_str()));
    for (i, t) in input.technicians.iter().enumerate() {
        c.technician(&format!("$.technicians[{i}]"), t);
    }
    for (i, j) in input.jobs.iter().enumerate() {
        c.job(&format!("$.jobs[{i}]"), j);
    }
    c.after_job_cycles(input);
    for e in validate_options(&input.travel) {
        c.push(format!("$.{}", e.path()), e.code(), format!("{e}"));
    }
    c.objective(&input.objective);
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(c.errors))
    }
}

struct Checker<'a> {
    errors: Vec<ValidationError>,
    /// The skill catalogue, when the problem has one.
    catalogue: Option<HashSet<&'a str>>,
    technician_ids: HashSet<&'a str>,
    job_ids: HashSet<&'a str>,
    /// Location ids of the user matrix, when travel is `matrix`.
    matrix_locations: Option<HashSet<&'a str>>,
    /// The operation's time zone, when it is a known one (local times are checked
    /// against its clock changes).
    tz: Option<chrono_tz::Tz>,
}

impl<'a> Checker<'a> {
    fn new(input: &'a ProblemInput) -> Self {
        let matrix_locations = match &input.travel {
            TravelOptions::Matrix { locations, .. } => {
                Some(locations.iter().map(String::as_str).collect())
            }
            _ => None,
        };
        Self {
            errors: Vec::new(),
            catalogue: input
                .skills
                .as_ref()
                .map(|s| s.iter().map(String::as_str).collect()),
            technician_ids: input.technicians.iter().map(|t| t.id.as_str()).collect(),
            job_ids: input.jobs.iter().map(|j| j.id.as_str()).collect(),
            matrix_locations,
            tz: input.time_zone.parse().ok(),
        }
    }

    /// `after_job` chains must end: "A after B, B after A" can never be planned.
    fn after_job_cycles(&mut self, input: &ProblemInput) {
        let index: HashMap<&str, usize> = input
            .jobs
            .iter()
            .enumerate()
            .map(|(k, j)| (j.id.as_str(), k))
            .collect();
        let next = |k: usize| {
            input.jobs[k]
                .after_job
                .as_deref()
                .and_then(|id| index.get(id).copied())
                .filter(|&n| n != k)
        };
        for start in 0..input.jobs.len() {
            // Each job names at most one predecessor, so a chain longer than the job
            // count has looped; report the loop once, at its smallest index.
            let (mut k, mut steps) = (start, 0);
            while let Some(n) = next(k) {
                k = n;
                steps += 1;
                if k == start {
                    let smallest = {
                        let (mut m, mut j) = (start, next(start));
                        while let Some(x) = j.filter(|&x| x != start) {
                            m = m.min(x);
                            j = next(x);
                        }
                        m
                    };
                    if smallest == start {
                        self.push(
                            format!("$.jobs[{start}].after_job"),
                            "relation_cycle",
                            format!(
                                "job `{}` is, through `after_job`, required to start after itself",
                                input.jobs[start].id
                            ),
                        );
                    }
                    break;
                }
                if steps > input.jobs.len() {
                    break;
                }
            }
        }
    }

    fn push(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, code, message));
    }

    fn unique_ids<'b>(&mut self, what: &str, base: &str, ids: impl Iterator<Item = &'b str>) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, id) in ids.enumerate() {
            let path = format!("{base}[{i}].id");
            if id.trim().is_empty() {
                self.push(
                    path,
                    "empty_id",
                    format!("the {what} id is empty; give every {what} a unique id"),
                );
            } else if let Some(&f) = first.get(id) {
                self.push(
                    path,
                    "duplicate_id",
                    format!("{what} id `{id}` is already used by {base}[{f}]; ids must be unique"),
                );
            } else {
                first.insert(id, i);
            }
        }
    }

    fn technician(&mut self, base: &str, t: &Technician) {
        self.skill_levels(&format!("{base}.skills"), &t.skills, "level");
        self.place(&format!("{base}.home"), &t.home);
        self.money(&format!("{base}.cost_per_hour"), t.cost_per_hour);
        self.money(&format!("{base}.cost_per_km"), t.cost_per_km);
        if let Some(territory) = &t.territory {
            self.territory(&format!("{base}.territory"), territory);
        }
        if t.shifts.is_empty() {
            self.push(
                format!("{base}.shifts"),
                "no_shift",
                format!(
                    "technician `{}` has no shift, so can do no job; add the days they work",
                    t.id
                ),
            );
        }
        let mut first_on: HashMap<NaiveDate, usize> = HashMap::new();
        for (k, shift) in t.shifts.iter().enumerate() {
            let path = format!("{base}.shifts[{k}]");
            if let Some(&f) = first_on.get(&shift.date) {
                self.push(
                    format!("{path}.date"),
                    "duplicate_shift_date",
                    format!(
                        "technician `{}` already has a shift on {} ({base}.shifts[{f}]); one shift per day",
                        t.id, shift.date
                    ),
                );
            } else {
                first_on.insert(shift.date, k);
            }
            self.shift(&path, shift);
        }
    }

    fn shift(&mut self, base: &str, s: &Shift) {
        let year = s.date.year();
        if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
            self.push(
                format!("{base}.date"),
                "invalid_date",
                format!(
                    "{} is outside the supported years {FIRST_YEAR}–{LAST_YEAR}",
                    s.date
                ),
            );
        }
        self.local_time(&format!("{base}.start"), s.date, s.start);
        self.local_time(&format!("{base}.end"), s.date, s.end);
        let shift_ok = s.end > s.start;
        if !shift_ok {
            self.push(
                format!("{base}.end"),
                "shift_ends_before_start",
                format!(
                    "the shift ends at {} but starts at {}; the end must be after the start \
                     (shifts past midnight are not supported)",
                    s.end, s.start
                ),
            );
        }
        if let Some(p) = &s.start_place {
            self.place(&format!("{base}.start_place"), p);
        }
        if let Some(p) = &s.end_place {
            self.place(&format!("{base}.end_place"), p);
        }
        if s.overtime_minutes > MAX_MINUTES {
            self.push(
                format!("{base}.overtime_minutes"),
                "invalid_duration",
                format!(
                    "{} minutes of overtime is more than a day ({MAX_MINUTES})",
                    s.overtime_minutes
                ),
            );
        }
        self.money(
            &format!("{base}.overtime_cost_per_hour"),
            s.overtime_cost_per_hour,
        );
        if let Some(b) = &s.break_rule {
            self.break_rule(&format!("{base}.break_rule"), b, shift_ok.then_some(s));
        }
    }

    /// A wall-clock time that does not exist on `date` (the night the clocks jump
    /// forward) is refused rather than moved silently; one that occurs twice (the
    /// clocks go back) means the earlier instant, as documented on [`Shift`].
    fn local_time(&mut self, path: &str, date: NaiveDate, time: NaiveTime) {
        use chrono::TimeZone;
        let Some(tz) = self.tz else { return };
        let local = date.and_time(time);
        if tz.from_local_datetime(&local).earliest().is_some() {
            return;
        }
        let resumes = super::compile::local_instant(tz, local)
            .with_timezone(&tz)
            .time();
        self.push(
            path.to_owned(),
            "nonexistent_local_time",
            format!(
                "{} on {date} does not exist in {tz}: the clocks jump forward that night and \
                 resume at {}; give a time before the jump or from {} on",
                time.format("%H:%M"),
                resumes.format("%H:%M"),
                resumes.format("%H:%M"),
            ),
        );
    }

    fn break_rule(&mut self, base: &str, b: &BreakRule, shift: Option<&Shift>) {
        let range_minutes = (b.latest_end - b.earliest_start).num_minutes();
        if b.duration_minutes == 0 {
            self.push(
                format!("{base}.duration_minutes"),
                "invalid_break",
                "the break lasts 0 minutes; remove the break rule instead",
            );
        }
        if b.latest_end <= b.earliest_start {
            self.push(
                format!("{base}.latest_end"),
                "invalid_break",
                format!(
                    "the break must end by {} but may start only from {}; latest_end must be after earliest_start",
                    b.latest_end, b.earliest_start
                ),
            );
        } else if i64::from(b.duration_minutes) > range_minutes {
            self.push(
                format!("{base}.duration_minutes"),
                "invalid_break",
                format!(
                    "a {}-minute break does not fit between {} and {} ({range_minutes} minutes)",
                    b.duration_minutes, b.earliest_start, b.latest_end
                ),
            );
        }
        if let Some(s) = shift {
            if b.earliest_start < s.start || b.latest_end > s.end {
                self.push(
                    base.to_owned(),
                    "invalid_break",
                    format!(
                        "the break range {}–{} is not inside the shift {}–{}",
                        b.earliest_start, b.latest_end, s.start, s.end
                    ),
                );
            }
        }
    }

    fn job(&mut self, base: &str, j: &JobInput) {
        self.place(&format!("{base}.place"), &j.place);
        self.minutes(&format!("{base}.duration_minutes"), j.duration_minutes);
        for (&level, &minutes) in &j.duration_by_level {
            let path = member(&format!("{base}.duration_by_level"), &level.to_string());
            if !(1..=MAX_SKILL_LEVEL).contains(&level) {
                self.push(
                    path.clone(),
                    "invalid_level",
                    format!("level {level} is not between 1 and {MAX_SKILL_LEVEL}"),
                );
            }
            self.minutes(&path, minutes);
        }
        self.skill_levels(
            &format!("{base}.required_skills"),
            &j.required_skills,
            "minimum level",
        );
        if j.windows.is_empty() {
            self.push(
                format!("{base}.windows"),
                "no_window",
                format!("job `{}` has no time window; give at least one", j.id),
            );
        }
        for (w, window) in j.windows.iter().enumerate() {
            if window.end <= window.start {
                self.push(
                    format!("{base}.windows[{w}].end"),
                    "window_ends_before_start",
                    format!(
                        "the window ends at {} but starts at {}; the end must be after the start",
                        window.end.to_rfc3339(),
                        window.start.to_rfc3339()
                    ),
                );
            }
        }
        if !(1..=MAX_PRIORITY).contains(&j.priority) {
            self.push(
                format!("{base}.priority"),
                "invalid_priority",
                format!(
                    "priority {} is not between 1 (low) and {MAX_PRIORITY} (critical)",
                    j.priority
                ),
            );
        }
        for (field, id) in [
            ("pinned_technician", &j.pinned_technician),
            ("preferred_technician", &j.preferred_technician),
        ] {
            if let Some(id) = id {
                if !self.technician_ids.contains(id.as_str()) {
                    self.push(
                        format!("{base}.{field}"),
                        "unknown_technician",
                        format!("there is no technician with id `{id}`"),
                    );
                }
            }
        }
        if let Some(pin) = j.pinned_start {
            let inside = j.windows.iter().any(|w| w.start <= pin && pin <= w.end);
            if !j.windows.is_empty() && !inside {
                self.push(
                    format!("{base}.pinned_start"),
                    "pinned_start_outside_windows",
                    format!(
                        "the visit is pinned to start at {}, which is in none of its windows; \
                         move the pin or widen a window",
                        pin.to_rfc3339()
                    ),
                );
            }
        }
        for (field, what, id) in [
            (
                "same_technician_as",
                "done by the same technician as",
                &j.same_technician_as,
            ),
            ("after_job", "started after", &j.after_job),
        ] {
            if let Some(id) = id {
                let path = format!("{base}.{field}");
                if !self.job_ids.contains(id.as_str()) {
                    self.push(
                        path,
                        "unknown_job",
                        format!("there is no job with id `{id}`"),
                    );
                } else if *id == j.id {
                    self.push(
                        path,
                        "self_relation",
                        format!("a job cannot be {what} itself"),
                    );
                }
            }
        }
    }

    fn skill_levels(&mut self, base: &str, skills: &BTreeMap<String, u8>, what: &str) {
        for (name, &level) in skills {
            let path = member(base, name);
            if !(1..=MAX_SKILL_LEVEL).contains(&level) {
                self.push(
                    path.clone(),
                    "invalid_level",
                    format!("{what} {level} of `{name}` is not between 1 and {MAX_SKILL_LEVEL}"),
                );
            }
            if let Some(catalogue) = &self.catalogue {
                if !catalogue.contains(name.as_str()) {
                    self.push(
                        path,
                        "unknown_skill",
                        format!("skill `{name}` is not in the skill catalogue ($.skills); fix the name or add it there"),
                    );
                }
            }
        }
    }

    fn minutes(&mut self, path: &str, minutes: u32) {
        if minutes == 0 || minutes > MAX_MINUTES {
            self.push(
                path.to_owned(),
                "invalid_duration",
                format!("{minutes} minutes is not a visit length; it must be between 1 and {MAX_MINUTES}"),
            );
        }
    }

    fn place(&mut self, base: &str, p: &Place) {
        for (field, value, limit) in [("lat", p.lat, 90.0), ("lon", p.lon, 180.0)] {
            if !(value.is_finite() && (-limit..=limit).contains(&value)) {
                self.push(
                    format!("{base}.{field}"),
                    "coordinates_out_of_range",
                    format!("{field} {value} is not a WGS84 degree between -{limit} and {limit}"),
                );
            }
        }
        if let Some(locations) = &self.matrix_locations {
            match &p.location_id {
                None => self.push(
                    format!("{base}.location_id"),
                    "missing_location",
                    "travel mode is `matrix`, so every place needs the location_id of its row in travel.locations",
                ),
                Some(id) if !locations.contains(id.as_str()) => self.push(
                    format!("{base}.location_id"),
                    "unknown_location",
                    format!("location `{id}` is not in travel.locations"),
                ),
                Some(_) => {}
            }
        }
    }

    fn territory(&mut self, base: &str, territory: &Territory) {
        let positions: usize = match territory {
            Territory::Polygon { coordinates } => coordinates.iter().map(Vec::len).sum(),
            Territory::MultiPolygon { coordinates } => {
                coordinates.iter().flatten().map(Vec::len).sum()
            }
        };
        if positions > MAX_TERRITORY_POSITIONS {
            self.push(
                format!("{base}.coordinates"),
                "too_many_positions",
                format!(
                    "the territory has {positions} positions; at most {MAX_TERRITORY_POSITIONS} are accepted (simplify the outline)"
                ),
            );
            return;
        }
        match territory {
            Territory::Polygon { coordinates } => {
                self.polygon(&format!("{base}.coordinates"), coordinates);
            }
            Territory::MultiPolygon { coordinates } => {
                if coordinates.is_empty() {
                    self.push(
                        format!("{base}.coordinates"),
                        "invalid_territory",
                        "the MultiPolygon has no polygon; leave the territory out to mean anywhere",
                    );
                }
                for (p, polygon) in coordinates.iter().enumerate() {
                    self.polygon(&format!("{base}.coordinates[{p}]"), polygon);
                }
            }
        }
    }

    fn polygon(&mut self, base: &str, rings: &[Vec<[f64; 2]>]) {
        let before = self.errors.len();
        self.rings(base, rings);
        if self.errors.len() == before {
            self.polygon_shape(base, rings);
        }
    }

    /// A polygon whose rings are well formed: no ring crosses itself, the holes lie
    /// inside the outer ring and cross neither it nor each other (`geo`'s validation).
    fn polygon_shape(&mut self, base: &str, rings: &[Vec<[f64; 2]>]) {
        use geo::algorithm::validation::{InvalidPolygon, RingRole, Validation};
        let ring = |r: &Vec<[f64; 2]>| {
            geo::LineString::from(r.iter().map(|&[x, y]| (x, y)).collect::<Vec<_>>())
        };
        let polygon = geo::Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect());
        let index = |role: &RingRole| match role {
            RingRole::Exterior => 0,
            RingRole::Interior(i) => i + 1,
        };
        for problem in polygon.validation_errors() {
            let (path, message) = match &problem {
                InvalidPolygon::SelfIntersection(role) => (
                    format!("{base}[{}]", index(role)),
                    "the ring crosses itself; draw the outline without crossing lines".to_owned(),
                ),
                InvalidPolygon::TooFewPointsInRing(role) => (
                    format!("{base}[{}]", index(role)),
                    "the ring needs at least 3 distinct positions".to_owned(),
                ),
                other => (base.to_owned(), format!("{other}")),
            };
            self.push(path, "invalid_territory", message);
        }
    }

    fn rings(&mut self, base: &str, rings: &[Vec<[f64; 2]>]) {
        if rings.is_empty() {
            self.push(
                base.to_owned(),
                "invalid_territory",
                "the polygon has no ring; give its outer ring as [lon, lat] positions",
            );
        }
        for (r, ring) in rings.iter().enumerate() {
            let path = format!("{base}[{r}]");
            let bad = ring.iter().position(|&[lon, lat]| {
                !(lon.is_finite() && lat.is_finite() && lon.abs() <= 180.0 && lat.abs() <= 90.0)
            });
            if let Some(k) = bad {
                let [lon, lat] = ring[k];
                self.push(
                    format!("{path}[{k}]"),
                    "invalid_territory",
                    format!("[{lon}, {lat}] is not a [longitude, latitude] position in range"),
                );
            } else if ring.len() < 4 {
                self.push(
                    path,
                    "invalid_territory",
                    format!(
                        "a ring needs at least 4 positions (a triangle and the first again), found {}",
                        ring.len()
                    ),
                );
            } else if ring.first() != ring.last() {
                self.push(
                    path,
                    "invalid_territory",
                    "the ring is not closed; repeat the first position at the end",
                );
            }
        }
    }

    fn money(&mut self, path: &str, value: f64) {
        if !(value.is_finite() && (0.0..=MAX_MONEY).contains(&value)) {
            self.push(
                path.to_owned(),
                "invalid_number",
                format!("{value} must be a number between 0 and {MAX_MONEY}"),
            );
        }
    }

    fn objective(&mut self, o: &ObjectiveWeights) {
        for (name, value) in [
            ("unassigned_per_priority", o.unassigned_per_priority),
            ("sla_lateness_per_minute", o.sla_lateness_per_minute),
            ("overtime_per_minute", o.overtime_per_minute),
            ("travel_and_work", o.travel_and_work),
            ("stability_change", o.stability_change),
            ("not_preferred", o.not_preferred),
            ("balance_per_hour_squared", o.balance_per_hour_squared),
        ] {
            self.money(&format!("$.objective.{name}"), value);
        }
    }
}
