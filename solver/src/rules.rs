//! Field-service rules on top of the routing core: which technician may do which job,
//! per-technician service times, optional jobs with a cost for leaving them unplanned,
//! equipment picked up on the way, one break per shift, overtime, SLA due times,
//! stability against a previous plan, preferred technicians and workload balance.
//!
//! A [`crate::Problem`] without rules is a plain VRPTW and is evaluated in O(1) per
//! move; with rules, each priced route is evaluated in O(its length) by
//! `search::route_eval`, which is also what schedules the final plan.

use crate::model::{ModelError, TimeWindow};
use crate::units::{Cost, Duration, Load};

/// A break of `duration` that must start inside `start` (e.g. lunch: start in
/// 11:30–13:15 for 45 minutes ending by 14:00). It is taken between two stops and
/// may split the travel between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakSpec {
    pub start: TimeWindow,
    pub duration: Duration,
}

/// Rules of one vehicle type (one technician on one day).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VehicleRules {
    /// Taken by every route of this type that serves at least one job.
    pub break_spec: Option<BreakSpec>,
    /// Back at the end place after this costs `overtime_cost` per time unit; the
    /// vehicle type's `shift.end` stays the hard limit (regular end + allowed overtime).
    pub regular_end: Option<Duration>,
    pub overtime_cost: i64,
    /// Jobs above this count are a hard violation (penalised like excess load).
    pub max_jobs: Option<usize>,
}

/// Rules of one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobRules {
    /// Equipment collected at the job and carried to the route's end (the core job's
    /// `demand` is what is delivered from the van's start load).
    pub pickup: Load,
    /// Cost of leaving the job unplanned; `None` means it must be planned.
    pub unassigned_cost: Option<Cost>,
    /// Vehicle types allowed to serve the job (sorted); `None` means any.
    pub allowed: Option<Vec<usize>>,
    /// Service durations on particular vehicle types (skill-dependent), overriding
    /// the job's `service` there.
    pub service_on: Vec<(usize, Duration)>,
    /// Service should start by this time; each time unit later costs `lateness_cost`.
    pub due: Option<Duration>,
    pub lateness_cost: i64,
    /// Vehicle types of the previous plan's assignment (stability); serving the job on
    /// any other type costs `change_cost`. Empty = no previous assignment.
    pub previous: Vec<usize>,
    pub change_cost: i64,
    /// Preferred vehicle types; any other costs `not_preferred_cost`. Empty = no preference.
    pub preferred: Vec<usize>,
    pub not_preferred_cost: i64,
    /// Jobs that must be served by a vehicle type of the same group (the same
    /// technician, on any of their days) when both are planned.
    pub same_group_as: Vec<usize>,
    /// Jobs that must be planned and end before this job starts.
    pub after: Vec<usize>,
}

/// All field rules of a problem: one entry per job and per vehicle type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub jobs: Vec<JobRules>,
    pub vehicles: Vec<VehicleRules>,
    /// Cost per squared hour of each route's duration (3600 time units per hour):
    /// a convex term that spreads work evenly. 0 turns it off.
    pub balance_per_hour_squared: i64,
    /// Time units per hour (3600 when time is in seconds).
    pub units_per_hour: i64,
    /// Group of each vehicle type (e.g. its technician) for `same_group_as`; empty
    /// means every vehicle type is its own group.
    pub groups: Vec<usize>,
}

/// `JobRules::allowed` as bitset rows (one row of `words` u64 per job), for O(1) lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Compatibility {
    bits: Vec<u64>,
    words: usize,
    /// Whether any job has a relation, and for each job the jobs that must come after it.
    pub(crate) relations: bool,
    pub(crate) successors: Vec<Vec<usize>>,
}

impl Compatibility {
    #[inline]
    pub(crate) fn allows(&self, job: usize, vt: usize) -> bool {
        self.bits[job * self.words + vt / 64] & (1 << (vt % 64)) != 0
    }
}

impl Rules {
    /// Checks the rules against the core problem's sizes and prepares lookups.
    pub(crate) fn prepare(
        mut self,
        jobs: usize,
        vehicle_types: usize,
        windows_ok: impl Fn(usize, &TimeWindow) -> bool,
    ) -> Result<(Self, Compatibility), ModelError> {
        if self.jobs.len() != jobs || self.vehicles.len() != vehicle_types {
            return Err(ModelError::RulesShape {
                jobs: self.jobs.len(),
                expected_jobs: jobs,
                vehicles: self.vehicles.len(),
                expected_vehicles: vehicle_types,
            });
        }
        let bad_type = |what: String, v: usize| {
            if v >= vehicle_types {
                Err(ModelError::UnknownVehicleType {
                    what,
                    vehicle_type: v,
                })
            } else {
                Ok(())
            }
        };
        for (k, j) in self.jobs.iter_mut().enumerate() {
            if let Some(a) = j.allowed.as_mut() {
                a.sort_unstable();
                a.dedup();
                for &v in a.iter() {
                    bad_type(format!("job {k} allowed"), v)?;
                }
            }
            for &(v, s) in &j.service_on {
                bad_type(format!("job {k} service_on"), v)?;
                if s < Duration::ZERO {
                    return Err(ModelError::Negative {
                        what: format!("job {k} service on vehicle type {v}"),
                        value: s.get(),
                    });
                }
            }
            for &v in j.previous.iter().chain(&j.preferred) {
                bad_type(format!("job {k} previous/preferred"), v)?;
            }
            for &other in j.same_group_as.iter().chain(&j.after) {
                if other >= jobs || other == k {
                    return Err(ModelError::BadRelation { job: k, other });
                }
            }
            if j.pickup < Load::ZERO {
                return Err(ModelError::Negative {
                    what: format!("job {k} pickup"),
                    value: j.pickup.get(),
                });
            }
        }
        for (k, v) in self.vehicles.iter().enumerate() {
            if let Some(b) = &v.break_spec {
                if !windows_ok(k, &b.start) || b.duration < Duration::ZERO {
                    return Err(ModelError::WindowEndsBeforeStart {
                        what: format!("vehicle type {k} break"),
                        start: b.start.start.get(),
                        end: b.start.end.get(),
                    });
                }
            }
        }
        if !self.groups.is_empty() && self.groups.len() != vehicle_types {
            return Err(ModelError::RulesShape {
                jobs: self.jobs.len(),
                expected_jobs: jobs,
                vehicles: self.groups.len(),
                expected_vehicles: vehicle_types,
            });
        }
        if self.units_per_hour <= 0 {
            self.units_per_hour = 3600;
        }
        let words = vehicle_types.div_ceil(64);
        let mut bits = vec![0; jobs * words];
        for (k, j) in self.jobs.iter().enumerate() {
            let row = &mut bits[k * words..(k + 1) * words];
            match &j.allowed {
                None => row.iter_mut().for_each(|w| *w = u64::MAX),
                Some(a) => a.iter().for_each(|&v| row[v / 64] |= 1 << (v % 64)),
            }
        }
        let mut successors = vec![Vec::new(); jobs];
        for (k, j) in self.jobs.iter().enumerate() {
            for &x in &j.after {
                successors[x].push(k);
            }
        }
        let relations = self.has_relations();
        Ok((
            self,
            Compatibility {
                bits,
                words,
                relations,
                successors,
            },
        ))
    }

    /// The group of vehicle type `vt` (for `same_group_as`).
    #[inline]
    pub fn group(&self, vt: usize) -> usize {
        self.groups.get(vt).copied().unwrap_or(vt)
    }

    /// Whether any job has a relation to another (same group, after).
    pub fn has_relations(&self) -> bool {
        self.jobs
            .iter()
            .any(|j| !j.same_group_as.is_empty() || !j.after.is_empty())
    }

    /// Whether `job` must be planned.
    #[inline]
    pub fn is_required(&self, job: usize) -> bool {
        self.jobs[job].unassigned_cost.is_none()
    }
}
