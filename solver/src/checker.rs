//! The independent checker: re-derives feasibility and cost of any [`Solution`]
//! from the [`Problem`] alone, by plain simulation. It shares no code with the
//! search's incremental evaluation, so the two check each other; every test and
//! every benchmark result goes through it.

use crate::model::Problem;
use crate::solution::Solution;
use crate::units::{Cost, Distance, Duration, Load};
use std::fmt;

/// Something a plan breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    UnknownVehicleType {
        route: usize,
        vehicle_type: usize,
    },
    UnknownJob {
        route: usize,
        job: usize,
    },
    JobVisitedTwice {
        job: usize,
    },
    JobUnassigned {
        job: usize,
    },
    TooManyVehicles {
        vehicle_type: usize,
        used: usize,
        available: usize,
    },
    CapacityExceeded {
        route: usize,
        load: i64,
        capacity: i64,
    },
    /// Service at `job` cannot start inside any of its windows; `late_by` past the last reachable one.
    LateAtJob {
        route: usize,
        job: usize,
        late_by: i64,
    },
    /// The vehicle cannot be back before its shift ends.
    LateAtEnd {
        route: usize,
        late_by: i64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVehicleType {
                route,
                vehicle_type,
            } => {
                write!(f, "route {route}: unknown vehicle type {vehicle_type}")
            }
            Self::UnknownJob { route, job } => write!(f, "route {route}: unknown job {job}"),
            Self::JobVisitedTwice { job } => write!(f, "job {job} is visited more than once"),
            Self::JobUnassigned { job } => write!(f, "job {job} is in no route"),
            Self::TooManyVehicles {
                vehicle_type,
                used,
                available,
            } => write!(
                f,
                "vehicle type {vehicle_type}: {used} routes but only {available} vehicles"
            ),
            Self::CapacityExceeded {
                route,
                load,
                capacity,
            } => {
                write!(f, "route {route}: load {load} exceeds capacity {capacity}")
            }
            Self::LateAtJob {
                route,
                job,
                late_by,
            } => {
                write!(
                    f,
                    "route {route}: service at job {job} starts {late_by} after its window"
                )
            }
            Self::LateAtEnd { route, late_by } => {
                write!(f, "route {route}: returns {late_by} after the shift ends")
            }
        }
    }
}

/// Cost and size of a plan as the checker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub cost: Cost,
    pub distance: Distance,
    /// Sum over routes of the shortest possible time from leaving to returning.
    pub duration: Duration,
    pub vehicles: usize,
    pub unassigned: Vec<usize>,
    pub violations: Vec<Violation>,
}

impl CheckReport {
    pub fn is_feasible(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks `solution` against `problem`. With `require_all`, a job in no route is a violation.
pub fn check(problem: &Problem, solution: &Solution, require_all: bool) -> CheckReport {
    let jobs = problem.jobs();
    let types = problem.vehicle_types();
    let mut violations = Vec::new();
    let mut seen = vec![false; jobs.len()];
    let mut used_per_type = vec![0usize; types.len()];
    let mut cost = Cost::ZERO;
    let mut distance = Distance::ZERO;
    let mut duration = Duration::ZERO;
    let mut vehicles = 0;

    for (r, route) in solution.routes.iter().enumerate() {
        if route.jobs.is_empty() {
            continue;
        }
        let Some(vt) = types.get(route.vehicle_type) else {
            violations.push(Violation::UnknownVehicleType {
                route: r,
                vehicle_type: route.vehicle_type,
            });
            continue;
        };
        if let Some(&job) = route.jobs.iter().find(|&&j| j >= jobs.len()) {
            violations.push(Violation::UnknownJob { route: r, job });
            continue;
        }
        vehicles += 1;
        used_per_type[route.vehicle_type] += 1;
        for &j in &route.jobs {
            if seen[j] {
                violations.push(Violation::JobVisitedTwice { job: j });
            }
            seen[j] = true;
        }

        // Load.
        let load: Load = route.jobs.iter().map(|&j| jobs[j].demand).sum();
        if load > vt.capacity {
            violations.push(Violation::CapacityExceeded {
                route: r,
                load: load.get(),
                capacity: vt.capacity.get(),
            });
        }

        // Distance.
        let mut places = Vec::with_capacity(route.jobs.len() + 2);
        places.push(vt.start);
        places.extend(route.jobs.iter().map(|&j| jobs[j].location));
        places.push(vt.end);
        let route_distance: Distance = places
            .windows(2)
            .map(|p| problem.distance(p[0], p[1]))
            .sum();

        // Earliest schedule, forward: leave at the shift start, start each service
        // in the first window that is still open on arrival.
        let mut t = vt.shift.start;
        let mut starts = Vec::with_capacity(route.jobs.len());
        let mut feasible = true;
        for (k, &j) in route.jobs.iter().enumerate() {
            let job = &jobs[j];
            t += problem.duration(places[k], places[k + 1]);
            match job.windows.iter().find(|w| t <= w.end) {
                Some(w) => t = t.max(w.start),
                None => {
                    let last = job
                        .windows
                        .last()
                        .expect("validated: every job has a window");
                    violations.push(Violation::LateAtJob {
                        route: r,
                        job: j,
                        late_by: (t - last.end).get(),
                    });
                    feasible = false;
                }
            }
            starts.push(t);
            t += job.service;
        }
        let n = route.jobs.len();
        let end = t + problem.duration(places[n], places[n + 1]);
        if end > vt.shift.end {
            violations.push(Violation::LateAtEnd {
                route: r,
                late_by: (end - vt.shift.end).get(),
            });
            feasible = false;
        }

        // Shortest duration: keep the earliest return, push every start as late as it can go.
        let route_duration = if feasible {
            let mut latest_next = end;
            for k in (0..n).rev() {
                let job = &jobs[route.jobs[k]];
                let bound =
                    latest_next - problem.duration(places[k + 1], places[k + 2]) - job.service;
                let w =
                    job.windows.iter().rev().find(|w| w.start <= bound).expect(
                        "a feasible earliest schedule leaves a window at or before the bound",
                    );
                latest_next = bound.min(w.end);
            }
            let departure =
                (latest_next - problem.duration(places[0], places[1])).max(vt.shift.start);
            end - departure
        } else {
            end - vt.shift.start
        };

        distance += route_distance;
        duration += route_duration;
        cost += Cost(vt.fixed_cost)
            + route_distance.cost(vt.cost_per_distance)
            + route_duration.cost(vt.cost_per_duration);
    }

    for (k, vt) in types.iter().enumerate() {
        if let Some(available) = vt.count {
            if used_per_type[k] > available {
                violations.push(Violation::TooManyVehicles {
                    vehicle_type: k,
                    used: used_per_type[k],
                    available,
                });
            }
        }
    }
    let unassigned: Vec<usize> = (0..jobs.len()).filter(|&j| !seen[j]).collect();
    if require_all {
        violations.extend(
            unassigned
                .iter()
                .map(|&job| Violation::JobUnassigned { job }),
        );
    }
    CheckReport {
        cost,
        distance,
        duration,
        vehicles,
        unassigned,
        violations,
    }
}
