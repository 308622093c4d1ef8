//! The field-service problem as users write it (JSON, versioned). These types are the
//! contract: the JSON Schema in `docs/schema/problem.schema.json` is generated from them
//! (`despacho schema problem`), and [`super::validate`] checks what serde cannot.
//!
//! Times: shift and break times are local wall-clock times in the problem's `time_zone`
//! (so a shift "08:00–17:00" stays 08:00–17:00 across a DST change); job windows and SLA
//! due times are absolute RFC 3339 date-times with an offset, as booking systems store them.

use super::travel::{Coord, TravelOptions};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only problem format version this build reads.
pub const PROBLEM_VERSION: u32 = 1;

/// A planning problem: who can work when, what has to be done, and how to weigh it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemInput {
    /// Format version; must be 1.
    pub version: u32,
    /// IANA time zone of the operation, e.g. "America/Sao_Paulo" or "Europe/Lisbon".
    pub time_zone: String,
    /// Skill catalogue. When given, every skill a technician or job names must be in it
    /// (a typo is then an error instead of a job nobody can do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<String>>,
    pub technicians: Vec<Technician>,
    pub jobs: Vec<JobInput>,
    #[serde(default)]
    pub travel: TravelOptions,
    #[serde(default)]
    pub objective: ObjectiveWeights,
}

/// A place: coordinates, and optionally an address and an id (the row of a user matrix).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Place {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Location id in a user-supplied travel matrix (`travel.mode = "matrix"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

impl Place {
    pub fn coord(&self) -> Coord {
        Coord {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

/// A field technician.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Technician {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Skill name → level (1 = basic … 5 = expert), e.g. `{"fiber_splicing": 3, "pppoe": 1}`.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Where the technician starts and ends by default (home, or a depot).
    pub home: Place,
    /// Working days; a technician is planned only on dates that have a shift.
    pub shifts: Vec<Shift>,
    /// Cost of an hour of work (any currency unit; travel and waiting count).
    #[serde(default)]
    pub cost_per_hour: f64,
    /// Cost of a kilometre driven.
    #[serde(default)]
    pub cost_per_km: f64,
    /// Area the technician serves (GeoJSON Polygon or MultiPolygon); none = anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub territory: Option<Territory>,
    /// How many pieces of equipment (modems, routers, set-top boxes) the van holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub van_capacity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jobs_per_day: Option<u32>,
}

/// One working day of a technician, in local time of the problem's time zone. A time
/// that does not exist that day (the clocks jump forward) is refused
/// (`nonexistent_local_time`); one that occurs twice (the clocks go back) means the
/// earlier of the two instants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    pub date: NaiveDate,
    /// Earliest departure from the start place ("08:00").
    pub start: NaiveTime,
    /// Regular end: back at the end place by then, or overtime starts.
    pub end: NaiveTime,
    /// Default: the technician's home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_place: Option<Place>,
    /// Default: the technician's home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_place: Option<Place>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_rule: Option<BreakRule>,
    /// Overtime the technician may work after `end`, in minutes (0 = none).
    #[serde(default)]
    pub overtime_minutes: u32,
    /// Cost of an hour of overtime (on top of `cost_per_hour`).
    #[serde(default)]
    pub overtime_cost_per_hour: f64,
}

/// A break taken anywhere between two visits (travel may be split around it), e.g. a
/// 45-minute lunch that starts no earlier than 11:30 and ends no later than 14:00.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakRule {
    pub duration_minutes: u32,
    pub earliest_start: NaiveTime,
    pub latest_end: NaiveTime,
}

/// A GeoJSON geometry with `[lon, lat]` positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Territory {
    Polygon {
        coordinates: Vec<Vec<[f64; 2]>>,
    },
    MultiPolygon {
        coordinates: Vec<Vec<Vec<[f64; 2]>>>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Installation,
    Repair,
    EquipmentReturn,
    Maintenance,
    SiteSurvey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomerTier {
    #[default]
    Residential,
    Business,
}

/// A visit to plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    pub id: String,
    pub kind: JobKind,
    #[serde(default)]
    pub tier: CustomerTier,
    pub place: Place,
    /// On-site time in minutes.
    pub duration_minutes: u32,
    /// On-site minutes by the technician's level in the job's first required skill
    /// (`{"3": 60}`: a level-3-or-better technician needs 60 minutes); the highest
    /// level not above the technician's applies, else `duration_minutes`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub duration_by_level: BTreeMap<u8, u32>,
    /// Skill name → minimum level.
    #[serde(default)]
    pub required_skills: BTreeMap<String, u8>,
    /// When the visit may start; at least one. Absolute times with an offset.
    pub windows: Vec<WindowInput>,
    /// 1 (low) … 10 (critical). Weighs the cost of leaving the job unplanned.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Service should start by then (e.g. a business repair within 4 hours); lateness costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_due: Option<DateTime<FixedOffset>>,
    /// Only this technician may do the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_technician: Option<String>,
    /// The visit starts exactly then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_start: Option<DateTime<FixedOffset>>,
    /// Preferred technician (e.g. the one who installed); another one costs a little.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_technician: Option<String>,
    #[serde(default)]
    pub equipment: Equipment,
    /// Must be done by the same technician as this job (on any of their days), when both are planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_technician_as: Option<String>,
    /// Must start after this job ends; planned only if that job is planned too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_job: Option<String>,
}

fn default_priority() -> u8 {
    5
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
}

/// Equipment moved by the visit: `deliver` leaves the van (installed), `collect` goes
/// into it (returned modems), so the load changes along the route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Equipment {
    #[serde(default)]
    pub deliver: u32,
    #[serde(default)]
    pub collect: u32,
}

/// Weights of the objective. The defaults make it lexicographic in practice:
/// unplanned jobs ≫ SLA lateness ≫ overtime ≫ travel and work cost ≫ balance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveWeights {
    /// Cost of leaving a job unplanned, per priority point.
    pub unassigned_per_priority: f64,
    /// Cost per minute a visit starts after its SLA due time.
    pub sla_lateness_per_minute: f64,
    /// Cost per minute of overtime, added to the shift's own `overtime_cost_per_hour`.
    pub overtime_per_minute: f64,
    /// Multiplies the technicians' hourly and per-km costs.
    pub travel_and_work: f64,
    /// Cost of a job changing technician or day relative to the previous plan.
    pub stability_change: f64,
    /// Cost of a job done by someone other than its preferred technician.
    pub not_preferred: f64,
    /// Weight of squared working hours per technician-day (spreads work evenly).
    pub balance_per_hour_squared: f64,
}

impl Default for ObjectiveWeights {
    fn default() -> Self {
        Self {
            unassigned_per_priority: 100_000.0,
            sla_lateness_per_minute: 100.0,
            overtime_per_minute: 2.0,
            travel_and_work: 1.0,
            stability_change: 50.0,
            not_preferred: 5.0,
            balance_per_hour_squared: 0.5,
        }
    }
}
