//! The plan as users read it (JSON): per technician and day, the ordered visits with
//! their times, the break, the day's totals; every unplanned job with its reason; KPIs.
//!
//! Times are RFC 3339 in the problem's time zone; durations in minutes and distances in
//! kilometres (rounded to 0.01) so a dispatcher can read them directly. `despacho
//! check` verifies a plan against its problem without trusting any of these numbers.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only plan format version this build writes and reads.
pub const PLAN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    pub version: u32,
    pub time_zone: String,
    /// One entry per technician and day with at least one visit.
    pub routes: Vec<PlannedRoute>,
    pub unassigned: Vec<UnassignedJob>,
    pub kpis: Kpis,
    /// The objective, in currency units (weights included), and its parts.
    pub cost: CostBreakdown,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver: Option<SolverInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedRoute {
    pub technician: String,
    pub date: NaiveDate,
    /// Leaves the start place.
    pub start: String,
    /// Back at the end place.
    pub end: String,
    pub stops: Vec<PlannedStop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_taken: Option<PlannedBreak>,
    /// Travel back to the end place.
    pub return_travel_minutes: f64,
    pub return_travel_km: f64,
    pub distance_km: f64,
    /// From leaving to coming back, waiting and break included.
    pub duration_minutes: f64,
    pub overtime_minutes: f64,
    /// Equipment loaded at the start (what the day's visits deliver) and the most carried at once.
    pub start_load: i64,
    pub peak_load: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedStop {
    pub job: String,
    pub arrival: String,
    pub start: String,
    pub end: String,
    pub waiting_minutes: f64,
    pub travel_minutes: f64,
    pub travel_km: f64,
    /// Minutes the visit starts after the job's SLA due time (0 when on time or no SLA).
    pub sla_late_minutes: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedBreak {
    pub start: String,
    pub end: String,
    /// The visit before the break; none when the break comes before the first visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_job: Option<String>,
}

/// Why a job is not in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnassignedReason {
    /// Nobody has all the required skills at the required levels.
    NoSkilledTechnician,
    /// Skilled technicians exist, but the place is outside all of their territories.
    OutsideTerritory,
    /// No suitable technician works on a day that meets one of the job's windows.
    NoShiftThatDay,
    /// The equipment to deliver or collect does not fit in any suitable van.
    CapacityExceeded,
    /// The pinned technician or start rules out every option.
    PinnedConflict,
    /// Even alone in a suitable technician's day, no window can be met (travel, shift, break).
    WindowUnreachable,
    /// It fits alone, but the suitable days are full of more important work.
    DisplacedByHigherPriority,
    /// It fits alone, but the suitable days are full of work of the same or lower
    /// priority that together costs less to keep (e.g. several jobs instead of this one).
    NoCapacityLeft,
    /// The job it must follow is not planned, or its "same technician" partner's
    /// technician cannot take it.
    RelationUnmet,
}

impl UnassignedReason {
    pub fn message(self) -> &'static str {
        match self {
            Self::NoSkilledTechnician => "no technician has all the required skills at the required level",
            Self::OutsideTerritory => "the place is outside the territory of every skilled technician",
            Self::NoShiftThatDay => "no skilled technician has a shift that meets any of the job's windows",
            Self::CapacityExceeded => "the equipment to deliver or collect does not fit in any suitable van",
            Self::PinnedConflict => "the pinned technician or start time rules out every option",
            Self::WindowUnreachable => "no suitable technician can reach the job within a window, even with nothing else to do",
            Self::DisplacedByHigherPriority => "suitable technicians are fully booked with higher-priority jobs",
            Self::NoCapacityLeft => "suitable technicians are fully booked with other jobs of the same or lower priority",
            Self::RelationUnmet => "the job it must follow is not planned, or its same-technician partner's technician cannot take it",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnassignedJob {
    pub job: String,
    pub reason: UnassignedReason,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Kpis {
    pub jobs_total: usize,
    pub jobs_assigned: usize,
    pub jobs_unassigned: usize,
    /// Technician-days with at least one visit, and all technician-days available.
    pub routes_used: usize,
    pub shifts_available: usize,
    pub travel_km: f64,
    pub travel_hours: f64,
    /// Hours on site (service time).
    pub work_hours: f64,
    /// Service time ÷ regular shift time of the technician-days used.
    pub utilisation: f64,
    pub overtime_minutes: f64,
    /// Jobs with an SLA that are planned, and how many of them start by their due time.
    pub sla_jobs: usize,
    pub sla_hits: usize,
    pub sla_misses: usize,
}

/// Objective parts in currency units (weights applied).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostBreakdown {
    pub total: f64,
    pub unassigned: f64,
    /// Routes' cost: travel, work, overtime, SLA lateness, preferences, balance and stability.
    pub routes: f64,
    /// The part of `routes` paid for moving jobs away from the previous plan (the checker,
    /// which does not see the previous plan, takes this part as given).
    pub stability: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SolverInfo {
    pub seed: u64,
    pub iterations: u64,
    pub seconds: f64,
}
