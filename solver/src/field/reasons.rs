//! Why a job is unplanned. Reasons that hold for every technician-day (skills,
//! territory, shifts, van size, pins) come from compilation; the rest are found by
//! pricing the job alone in each suitable technician-day with the route evaluator.

use super::compile::{Blocker, Compiled};
use super::input::ProblemInput;
use super::plan::UnassignedReason;
use crate::search::schedule_route;
use crate::solution::Solution;

/// The reason `job` (unplanned in `solution`) is not in the plan.
pub fn unassigned_reason(
    input: &ProblemInput,
    compiled: &Compiled,
    solution: &Solution,
    job: usize,
) -> UnassignedReason {
    if let Some(blocker) = compiled.job_blockers[job] {
        return match blocker {
            Blocker::PinnedConflict => UnassignedReason::PinnedConflict,
            Blocker::NoSkilledTechnician => UnassignedReason::NoSkilledTechnician,
            Blocker::OutsideTerritory => UnassignedReason::OutsideTerritory,
            Blocker::NoShiftThatDay => UnassignedReason::NoShiftThatDay,
            Blocker::CapacityExceeded => UnassignedReason::CapacityExceeded,
        };
    }
    let problem = &compiled.problem;
    let suitable: Vec<usize> = (0..problem.vehicle_types().len())
        .filter(|&v| problem.allows(job, v))
        .collect();
    let mut fits_alone = false;
    let mut only_capacity = false;
    for &v in &suitable {
        let Some((_, eval)) = schedule_route(problem, v, &[job]) else {
            continue;
        };
        if eval.is_feasible() {
            fits_alone = true;
            break;
        }
        if eval.time_warp.get() == 0 && eval.excess.get() > 0 {
            only_capacity = true;
        }
    }
    if !fits_alone {
        return if only_capacity {
            UnassignedReason::CapacityExceeded
        } else if input.jobs[job].pinned_start.is_some() {
            UnassignedReason::PinnedConflict
        } else {
            UnassignedReason::WindowUnreachable
        };
    }
    // It fits alone. Held back by a relation?
    if let Some(rules) = problem.rules() {
        let planned_on = |j: usize| {
            solution
                .used_routes()
                .find(|r| r.jobs.contains(&j))
                .map(|r| r.vehicle_type)
        };
        let predecessor_missing = rules.jobs[job]
            .after
            .iter()
            .any(|&x| planned_on(x).is_none());
        let partner_elsewhere = rules.jobs[job].same_group_as.iter().any(|&p| {
            planned_on(p).is_some_and(|vt| {
                let g = rules.group(vt);
                !suitable.iter().any(|&v| rules.group(v) == g)
            })
        });
        if predecessor_missing || partner_elsewhere {
            return UnassignedReason::RelationUnmet;
        }
    }
    // The suitable days are taken. By more important work?
    let priority = input.jobs[job].priority;
    let displaced = solution
        .used_routes()
        .filter(|r| suitable.contains(&r.vehicle_type))
        .flat_map(|r| r.jobs.iter())
        .any(|&other| input.jobs[other].priority > priority);
    if displaced {
        UnassignedReason::DisplacedByHigherPriority
    } else {
        UnassignedReason::NoCapacityLeft
    }
}

/// Whether `job` could join `solution` as it stands without breaking any rule: in some
/// position of a suitable technician-day's route, or alone in an unused one. An
/// unplanned job for which this holds was avoidable (benchmarks count them).
pub fn fits_into_plan(compiled: &Compiled, solution: &Solution, job: usize) -> bool {
    let problem = &compiled.problem;
    let mut used = vec![false; problem.vehicle_types().len()];
    let mut jobs = Vec::new();
    for route in solution.used_routes() {
        used[route.vehicle_type] = true;
        if !problem.allows(job, route.vehicle_type) {
            continue;
        }
        for at in 0..=route.jobs.len() {
            jobs.clear();
            jobs.extend_from_slice(&route.jobs[..at]);
            jobs.push(job);
            jobs.extend_from_slice(&route.jobs[at..]);
            if schedule_route(problem, route.vehicle_type, &jobs)
                .is_some_and(|(_, e)| e.is_feasible())
            {
                return true;
            }
        }
    }
    (0..used.len()).any(|v| {
        !used[v]
            && problem.allows(job, v)
            && schedule_route(problem, v, &[job]).is_some_and(|(_, e)| e.is_feasible())
    })
}
