//! Moves described as concatenations of route slices ("pieces").
//!
//! Every operator states the new content of each route it touches as a short list
//! of slices of the *current* routes. One evaluator prices any such list in O(1)
//! per piece from the routes' caches, and one applier turns it into the new job
//! order, so operators cannot disagree with how they are evaluated or applied.

use super::penalties::Penalties;
use super::route_eval::evaluate;
use super::segment::DurationSegment;
use super::state::SearchState;
use crate::model::Problem;
use crate::units::{Cost, Distance, Duration, Load};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Positions `0..=to` of a route (its start depot and first jobs).
    Prefix { route: usize, to: usize },
    /// Job positions `from..=to` in order (empty when `from > to`).
    Range {
        route: usize,
        from: usize,
        to: usize,
    },
    /// Job positions `from..=to` in reverse order.
    Reversed {
        route: usize,
        from: usize,
        to: usize,
    },
    /// Positions `from..=end` (its last jobs and end depot).
    Suffix { route: usize, from: usize },
}

/// Totals of a route being assembled from pieces.
#[derive(Clone, Copy, Debug)]
pub struct Assembly {
    pub seg: DurationSegment,
    pub dist: Distance,
    pub load: Load,
    pub jobs: usize,
}

impl Assembly {
    #[inline]
    fn push_seg(&mut self, problem: &Problem, next: &DurationSegment, inner_dist: Distance) {
        self.dist += problem.distance(self.seg.last, next.first) + inner_dist;
        self.seg = self.seg.then(problem, next);
    }
}

/// What the pieces' route costs at least, without time windows: its distance, the
/// delivered load, its job count and a lower bound of its duration (travel plus the
/// least service of its jobs; waiting and breaks only add to it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub dist: Distance,
    pub load: Load,
    pub jobs: usize,
    pub min_duration: Duration,
}

/// [`Totals`] of the route the pieces describe, in O(1) per piece (O(length) reversed).
#[inline]
pub fn totals_without_windows(problem: &Problem, state: &SearchState, pieces: &[Piece]) -> Totals {
    let mut t = Totals::default();
    let mut last = None;
    let mut link = |t: &mut Totals, first, new_last| {
        if let Some(l) = last {
            t.dist += problem.distance(l, first);
            t.min_duration += problem.duration(l, first);
        }
        last = Some(new_last);
    };
    for piece in pieces {
        match *piece {
            Piece::Prefix { route, to } => {
                let r = &state.routes[route];
                t.dist += r.distance_between(0, to);
                t.min_duration += r.travel_between(0, to) + r.service_between(0, to);
                t.load += r.load_between(0, to);
                t.jobs += to;
                link(&mut t, r.location(0), r.location(to));
            }
            Piece::Range { route, from, to } => {
                if from > to {
                    continue;
                }
                let r = &state.routes[route];
                t.dist += r.distance_between(from, to);
                t.min_duration += r.travel_between(from, to) + r.service_between(from, to);
                t.load += r.load_between(from, to);
                t.jobs += to - from + 1;
                link(&mut t, r.location(from), r.location(to));
            }
            Piece::Reversed { route, from, to } => {
                if from > to {
                    continue;
                }
                let r = &state.routes[route];
                for p in from..to {
                    t.dist += problem.distance(r.location(p + 1), r.location(p));
                    t.min_duration += problem.duration(r.location(p + 1), r.location(p));
                }
                t.min_duration += r.service_between(from, to);
                t.load += r.load_between(from, to);
                t.jobs += to - from + 1;
                link(&mut t, r.location(to), r.location(from));
            }
            Piece::Suffix { route, from } => {
                let r = &state.routes[route];
                t.dist += r.distance_between(from, r.end());
                t.min_duration +=
                    r.travel_between(from, r.end()) + r.service_between(from, r.end());
                t.load += r.load_between(from, r.end());
                t.jobs += r.end() - from;
                link(&mut t, r.location(from), r.location(r.end()));
            }
        }
    }
    t
}

/// Full totals (with time windows) of the route the pieces describe.
#[inline]
pub fn assemble(problem: &Problem, state: &SearchState, pieces: &[Piece]) -> Assembly {
    let mut acc: Option<Assembly> = None;
    for piece in pieces {
        let (seg, dist, load, jobs) = match *piece {
            Piece::Prefix { route, to } => {
                let r = &state.routes[route];
                (
                    *r.prefix(to),
                    r.distance_between(0, to),
                    r.load_between(0, to),
                    to,
                )
            }
            Piece::Range { route, from, to } => {
                if from > to {
                    continue;
                }
                let r = &state.routes[route];
                (
                    r.between(problem, from, to),
                    r.distance_between(from, to),
                    r.load_between(from, to),
                    to - from + 1,
                )
            }
            Piece::Reversed { route, from, to } => {
                if from > to {
                    continue;
                }
                let r = &state.routes[route];
                let mut seg = *r.stop(to);
                let mut dist = Distance::ZERO;
                for p in (from..to).rev() {
                    dist += problem.distance(r.location(p + 1), r.location(p));
                    seg = seg.then(problem, r.stop(p));
                }
                (seg, dist, r.load_between(from, to), to - from + 1)
            }
            Piece::Suffix { route, from } => {
                let r = &state.routes[route];
                (
                    *r.suffix(from),
                    r.distance_between(from, r.end()),
                    r.load_between(from, r.end()),
                    r.end() - from,
                )
            }
        };
        match acc.as_mut() {
            None => {
                acc = Some(Assembly {
                    seg,
                    dist,
                    load,
                    jobs,
                })
            }
            Some(a) => {
                a.push_seg(problem, &seg, dist);
                a.load += load;
                a.jobs += jobs;
            }
        }
    }
    acc.expect("a route has at least its depots")
}

/// Penalised cost of the route the pieces describe, driven by `vehicle_type`.
#[inline]
pub fn cost_of(
    problem: &Problem,
    state: &SearchState,
    vehicle_type: usize,
    pieces: &[Piece],
    pen: &Penalties,
) -> Cost {
    if problem.rules().is_some() {
        return JOBS.with(|cell| {
            let mut jobs = cell.borrow_mut();
            jobs.clear();
            jobs_into(state, pieces, &mut jobs);
            evaluate(problem, vehicle_type, &jobs, None).cost(pen.time_warp, pen.excess_load)
        });
    }
    let a = assemble(problem, state, pieces);
    pen.route_cost(
        &problem.vehicle_types()[vehicle_type],
        a.jobs,
        a.dist,
        a.load,
        &a.seg,
    )
}

/// The jobs, in order, of the route the pieces describe.
pub fn jobs_of(state: &SearchState, pieces: &[Piece]) -> Vec<usize> {
    let mut out = Vec::new();
    jobs_into(state, pieces, &mut out);
    out
}

thread_local! {
    static JOBS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends the jobs, in order, of the route the pieces describe to `out`.
pub fn jobs_into(state: &SearchState, pieces: &[Piece], out: &mut Vec<usize>) {
    for piece in pieces {
        match *piece {
            Piece::Prefix { route, to } => out.extend_from_slice(&state.routes[route].jobs[..to]),
            Piece::Range { route, from, to } => {
                if from <= to {
                    out.extend_from_slice(&state.routes[route].jobs[from - 1..to]);
                }
            }
            Piece::Reversed { route, from, to } => {
                if from <= to {
                    out.extend(state.routes[route].jobs[from - 1..to].iter().rev());
                }
            }
            Piece::Suffix { route, from } => {
                let r = &state.routes[route];
                let last = r.len().min(r.end() - 1);
                if from <= last {
                    out.extend_from_slice(&r.jobs[from - 1..last]);
                }
            }
        }
    }
}
