//! The naive dispatcher, as a baseline for benchmarks: jobs are taken in booking order
//! (the order of the problem's job list) and each goes to the nearest technician-day
//! that can still fit it, slotted in by its window start. No re-sequencing, no
//! second thoughts — what a busy dispatcher with a spreadsheet does.

use super::compile::Compiled;
use crate::search::schedule_route;
use crate::solution::{Route, Solution};

/// The naive dispatcher's plan for a compiled problem.
pub fn naive_dispatch(compiled: &Compiled) -> Solution {
    let problem = &compiled.problem;
    let types = problem.vehicle_types().len();
    let mut routes: Vec<Vec<usize>> = vec![Vec::new(); types];
    let window_start = |j: usize| problem.jobs()[j].windows[0].start;
    for job in 0..problem.jobs().len() {
        let location = problem.jobs()[job].location;
        let mut best: Option<(crate::units::Distance, usize, usize)> = None;
        for v in 0..types {
            if !problem.allows(job, v) {
                continue;
            }
            let route = &routes[v];
            let at = route.partition_point(|&other| window_start(other) <= window_start(job));
            // Where the technician comes from: the previous visit, or the start place.
            let from = match at {
                0 => problem.vehicle_types()[v].start,
                _ => problem.jobs()[route[at - 1]].location,
            };
            let d = problem.distance(from, location);
            if best.is_some_and(|(bd, _, _)| d >= bd) {
                continue;
            }
            let mut candidate = route.clone();
            candidate.insert(at, job);
            let (_, eval) = schedule_route(problem, v, &candidate).expect("rules");
            if eval.is_feasible() {
                best = Some((d, v, at));
            }
        }
        if let Some((_, v, at)) = best {
            routes[v].insert(at, job);
        }
    }
    Solution {
        routes: routes
            .into_iter()
            .enumerate()
            .filter(|(_, jobs)| !jobs.is_empty())
            .map(|(vehicle_type, jobs)| Route { vehicle_type, jobs })
            .collect(),
    }
}
