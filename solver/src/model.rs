//! The problem model: technicians (vehicles), jobs (visits) and travel matrices.
//!
//! This is the routing core that the field-service model builds on. A [`Problem`]
//! is validated once by [`Problem::new`]; the search never checks its input again.

use crate::rules::{Compatibility, Rules};
use crate::units::{Distance, Duration, Load};
use serde::{Deserialize, Serialize};

/// Index of a place in the travel matrices.
pub type Location = usize;

/// A closed interval `[start, end]` of times at which something may begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub start: Duration,
    pub end: Duration,
}

impl TimeWindow {
    pub fn new(start: Duration, end: Duration) -> Self {
        Self { start, end }
    }
    pub fn contains(&self, t: Duration) -> bool {
        self.start <= t && t <= self.end
    }
}

/// A square matrix stored row-major (`from * n + to`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix<T> {
    size: usize,
    values: Vec<T>,
}

impl<T: Copy> Matrix<T> {
    /// Builds a matrix from row-major values; `values.len()` must be `size * size`.
    pub fn from_row_major(size: usize, values: Vec<T>) -> Result<Self, ModelError> {
        if values.len() != size * size {
            return Err(ModelError::MatrixShape {
                expected: size * size,
                got: values.len(),
            });
        }
        Ok(Self { size, values })
    }
    pub fn from_fn(size: usize, mut f: impl FnMut(usize, usize) -> T) -> Self {
        let mut values = Vec::with_capacity(size * size);
        for i in 0..size {
            for j in 0..size {
                values.push(f(i, j));
            }
        }
        Self { size, values }
    }
    #[inline]
    pub fn get(&self, from: Location, to: Location) -> T {
        self.values[from * self.size + to]
    }
    pub fn size(&self) -> usize {
        self.size
    }
}

/// A kind of vehicle (technician profile). `count: None` means as many as needed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleType {
    pub start: Location,
    pub end: Location,
    /// When the vehicle may leave `start` (earliest) and must be back at `end` (latest).
    pub shift: TimeWindow,
    pub capacity: Load,
    pub count: Option<usize>,
    /// Cost of using one vehicle of this type at all.
    pub fixed_cost: i64,
    /// Cost per unit of distance travelled.
    pub cost_per_distance: i64,
    /// Cost per unit of route duration (from leaving start to reaching end, waiting included).
    pub cost_per_duration: i64,
}

impl VehicleType {
    /// A vehicle type with the DIMACS objective: distance only.
    pub fn distance_only(depot: Location, shift: TimeWindow, capacity: Load) -> Self {
        Self {
            start: depot,
            end: depot,
            shift,
            capacity,
            count: None,
            fixed_cost: 0,
            cost_per_distance: 1,
            cost_per_duration: 0,
        }
    }
}

/// A visit to make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub location: Location,
    pub service: Duration,
    pub demand: Load,
    /// Service must start inside one of these, sorted and disjoint.
    pub windows: Vec<TimeWindow>,
}

/// Why a model could not be built. Every variant names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("matrix has {got} values, expected {expected} (a square over all locations)")]
    MatrixShape { expected: usize, got: usize },
    #[error("distance and duration matrices differ in size ({distances} vs {durations})")]
    MatrixSizesDiffer { distances: usize, durations: usize },
    #[error("{what} refers to location {location}, but the matrices have only {size}")]
    UnknownLocation {
        what: String,
        location: Location,
        size: usize,
    },
    #[error("{what}: window end {end} is before its start {start}")]
    WindowEndsBeforeStart { what: String, start: i64, end: i64 },
    #[error("job {job}: windows must be sorted and must not overlap")]
    WindowsOverlap { job: usize },
    #[error("job {job} has no time window")]
    NoWindow { job: usize },
    #[error("{what} is negative ({value})")]
    Negative { what: String, value: i64 },
    #[error("there is no vehicle type")]
    NoVehicles,
    #[error("matrix entry ({from}, {to}) is negative")]
    NegativeTravel { from: usize, to: usize },
    #[error("rules cover {jobs} jobs and {vehicles} vehicle types, the problem has {expected_jobs} and {expected_vehicles}")]
    RulesShape {
        jobs: usize,
        expected_jobs: usize,
        vehicles: usize,
        expected_vehicles: usize,
    },
    #[error("job {job}: relation to job {other}, which is itself or does not exist")]
    BadRelation { job: usize, other: usize },
    #[error("travel from location {location} to itself must be zero under field rules")]
    NonZeroDiagonal { location: usize },
    #[error("{what} refers to vehicle type {vehicle_type}, which does not exist")]
    UnknownVehicleType { what: String, vehicle_type: usize },
}

/// A validated routing problem.
#[derive(Clone, Debug)]
pub struct Problem {
    distances: Matrix<Distance>,
    durations: Matrix<Duration>,
    vehicle_types: Vec<VehicleType>,
    jobs: Vec<Job>,
    rules: Option<Box<(Rules, Compatibility)>>,
}

impl Problem {
    pub fn new(
        distances: Matrix<Distance>,
        durations: Matrix<Duration>,
        vehicle_types: Vec<VehicleType>,
        jobs: Vec<Job>,
    ) -> Result<Self, ModelError> {
        let size = distances.size();
        if durations.size() != size {
            return Err(ModelError::MatrixSizesDiffer {
                distances: size,
                durations: durations.size(),
            });
        }
        for i in 0..size {
            for j in 0..size {
                if distances.get(i, j) < Distance::ZERO || durations.get(i, j) < Duration::ZERO {
                    return Err(ModelError::NegativeTravel { from: i, to: j });
                }
            }
        }
        if vehicle_types.is_empty() {
            return Err(ModelError::NoVehicles);
        }
        let check_loc = |what: String, location: Location| {
            if location >= size {
                Err(ModelError::UnknownLocation {
                    what,
                    location,
                    size,
                })
            } else {
                Ok(())
            }
        };
        let check_window = |what: String, w: &TimeWindow| {
            if w.end < w.start {
                Err(ModelError::WindowEndsBeforeStart {
                    what,
                    start: w.start.get(),
                    end: w.end.get(),
                })
            } else {
                Ok(())
            }
        };
        for (k, v) in vehicle_types.iter().enumerate() {
            check_loc(format!("vehicle type {k} start"), v.start)?;
            check_loc(format!("vehicle type {k} end"), v.end)?;
            check_window(format!("vehicle type {k} shift"), &v.shift)?;
            if v.capacity < Load::ZERO {
                return Err(ModelError::Negative {
                    what: format!("vehicle type {k} capacity"),
                    value: v.capacity.get(),
                });
            }
        }
        for (k, job) in jobs.iter().enumerate() {
            check_loc(format!("job {k}"), job.location)?;
            if job.windows.is_empty() {
                return Err(ModelError::NoWindow { job: k });
            }
            for w in &job.windows {
                check_window(format!("job {k}"), w)?;
            }
            if job.windows.windows(2).any(|p| p[1].start <= p[0].end) {
                return Err(ModelError::WindowsOverlap { job: k });
            }
            if job.service < Duration::ZERO {
                return Err(ModelError::Negative {
                    what: format!("job {k} service duration"),
                    value: job.service.get(),
                });
            }
            if job.demand < Load::ZERO {
                return Err(ModelError::Negative {
                    what: format!("job {k} demand"),
                    value: job.demand.get(),
                });
            }
        }
        Ok(Self {
            distances,
            durations,
            vehicle_types,
            jobs,
            rules: None,
        })
    }

    /// The same problem with field-service rules (see [`Rules`]).
    pub fn with_rules(mut self, rules: Rules) -> Result<Self, ModelError> {
        // Breaks are priced as stops at the previous place (route_eval), which needs
        // staying in place to take no time.
        for i in 0..self.num_locations() {
            if self.duration(i, i) != Duration::ZERO || self.distance(i, i) != Distance::ZERO {
                return Err(ModelError::NonZeroDiagonal { location: i });
            }
        }
        let prepared = rules.prepare(self.jobs.len(), self.vehicle_types.len(), |_, w| {
            w.start <= w.end
        })?;
        self.rules = Some(Box::new(prepared));
        Ok(self)
    }

    /// The same problem with `job`'s windows replaced (what-if checks, e.g. slot search).
    pub fn with_job_windows(
        &self,
        job: usize,
        windows: Vec<TimeWindow>,
    ) -> Result<Self, ModelError> {
        if windows.is_empty() {
            return Err(ModelError::NoWindow { job });
        }
        if windows.iter().any(|w| w.end < w.start)
            || windows.windows(2).any(|p| p[1].start <= p[0].end)
        {
            return Err(ModelError::WindowsOverlap { job });
        }
        let mut copy = self.clone();
        copy.jobs[job].windows = windows;
        Ok(copy)
    }

    /// The field-service rules, if any.
    #[inline]
    pub fn rules(&self) -> Option<&Rules> {
        self.rules.as_deref().map(|(r, _)| r)
    }

    /// Whether the rules relate jobs to each other (same technician, after).
    #[inline]
    pub fn has_relations(&self) -> bool {
        self.rules.as_deref().is_some_and(|(_, c)| c.relations)
    }

    /// The jobs that must start after `job` ends.
    pub fn successors(&self, job: usize) -> &[usize] {
        match self.rules.as_deref() {
            Some((_, c)) => &c.successors[job],
            None => &[],
        }
    }

    /// Whether vehicle type `vt` may serve `job` (always, without rules).
    #[inline]
    pub fn allows(&self, job: usize, vt: usize) -> bool {
        self.rules.as_deref().is_none_or(|(_, c)| c.allows(job, vt))
    }

    /// The shortest service `job` can have on any vehicle type (a lower bound for pricing).
    #[inline]
    pub fn min_service(&self, job: usize) -> Duration {
        let base = self.jobs[job].service;
        match self.rules.as_deref() {
            Some((r, _)) => r.jobs[job]
                .service_on
                .iter()
                .fold(base, |m, &(_, s)| m.min(s)),
            None => base,
        }
    }

    /// Service duration of `job` when vehicle type `vt` serves it.
    #[inline]
    pub fn service_on(&self, job: usize, vt: usize) -> Duration {
        if let Some((r, _)) = self.rules.as_deref() {
            if let Some(&(_, s)) = r.jobs[job].service_on.iter().find(|&&(v, _)| v == vt) {
                return s;
            }
        }
        self.jobs[job].service
    }

    #[inline]
    pub fn distance(&self, from: Location, to: Location) -> Distance {
        self.distances.get(from, to)
    }
    #[inline]
    pub fn duration(&self, from: Location, to: Location) -> Duration {
        self.durations.get(from, to)
    }
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }
    pub fn vehicle_types(&self) -> &[VehicleType] {
        &self.vehicle_types
    }
    /// Per job of a route in this order, the index of the window its earliest schedule
    /// aims at: the first window still open on arrival (leaving at the shift start).
    /// Starting each service as early as possible never hurts later stops, so this is
    /// the window choice that keeps the route feasible whenever any choice does.
    pub fn earliest_start_windows(&self, vehicle_type: usize, jobs: &[usize]) -> Vec<usize> {
        let vt = &self.vehicle_types[vehicle_type];
        let (mut t, mut at) = (vt.shift.start, vt.start);
        jobs.iter()
            .map(|&j| {
                let job = &self.jobs[j];
                t += self.duration(at, job.location);
                let w = job
                    .windows
                    .iter()
                    .position(|w| t <= w.end)
                    .unwrap_or(job.windows.len() - 1);
                t = t.max(job.windows[w].start) + self.service_on(j, vehicle_type);
                at = job.location;
                w
            })
            .collect()
    }

    pub fn num_locations(&self) -> usize {
        self.distances.size()
    }
}
