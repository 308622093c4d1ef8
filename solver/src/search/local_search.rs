//! Local search over granular neighbourhoods (Toth & Vigo 2003; HGS, PyVRP): for each
//! job `u` and each of its nearest neighbours `v`, try the classic operators that make
//! `u` and `v` adjacent and apply the first that lowers the penalised cost.
//!
//! Operators (names from the literature):
//! - `relocate`: move a chain of 1–3 jobs starting at `u` next to `v` (k = 1 is
//!   relocate, k = 2, 3 is or-opt), within or between routes;
//! - `swap`: exchange chains of 1–2 jobs at `u` and at `v` between routes;
//! - `two_opt_star`: exchange the tails of two routes after `u` and around `v`;
//! - `two_opt`: reverse the stretch between `u` and `v` within a route.
//!
//! Only active jobs are examined; a job becomes active when its surroundings change.

use super::penalties::Penalties;
use super::pieces::{cost_of, jobs_of, totals_without_windows, Piece};
use super::route_eval::cost_lower_bound;
use super::state::{SearchState, UNASSIGNED};
use crate::model::Problem;
use crate::units::Cost;

/// How often each operator improved a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorStats {
    pub relocate: u64,
    pub swap: u64,
    pub two_opt_star: u64,
    pub two_opt: u64,
    pub to_empty_route: u64,
}

pub struct LocalSearch {
    neighbours: Vec<Vec<usize>>,
    active: Vec<bool>,
    queue: Vec<usize>,
    /// Monotone counter stamped on routes when they change.
    pub step: u64,
    pub stats: OperatorStats,
}

/// A priced move: the new content of one or two routes.
pub(crate) struct Move {
    pub(crate) routes: [usize; 2],
    pub(crate) pieces: [[Piece; 4]; 2],
    pub(crate) lens: [usize; 2],
    pub(crate) count: usize,
}

impl LocalSearch {
    pub fn new(neighbours: Vec<Vec<usize>>) -> Self {
        let n = neighbours.len();
        Self {
            neighbours,
            active: vec![false; n],
            queue: Vec::with_capacity(n),
            step: 1,
            stats: OperatorStats::default(),
        }
    }

    pub fn neighbours(&self) -> &[Vec<usize>] {
        &self.neighbours
    }

    /// Improves `state` until no operator finds an improving move for any active job.
    /// `seeds` are the jobs to examine first (all jobs for a full descent); a job whose
    /// surroundings change becomes active again ("don't-look bits", Bentley 1992), so
    /// after a small ruin-and-recreate only the changed region is searched.
    pub fn run(
        &mut self,
        problem: &Problem,
        state: &mut SearchState,
        pen: &Penalties,
        rng: &mut fastrand::Rng,
        seeds: &[usize],
    ) {
        for &u in seeds {
            self.activate(u);
        }
        rng.shuffle(&mut self.queue);
        while let Some(u) = self.queue.pop() {
            self.active[u] = false;
            if state.route_of[u] == UNASSIGNED {
                continue;
            }
            for t in 0..self.neighbours[u].len() {
                let v = self.neighbours[u][t];
                if state.route_of[v] == UNASSIGNED || state.route_of[u] == UNASSIGNED {
                    continue;
                }
                if self.improve_pair(problem, state, pen, u, v) {
                    self.activate_around(state, u);
                    self.activate_around(state, v);
                }
            }
            if state.route_of[u] != UNASSIGNED && self.try_empty_route(problem, state, pen, u) {
                self.activate_around(state, u);
            }
        }
    }

    fn activate(&mut self, u: usize) {
        if !self.active[u] {
            self.active[u] = true;
            self.queue.push(u);
        }
    }

    /// Activates `u` and the jobs just before and after it.
    pub fn activate_around(&mut self, state: &SearchState, u: usize) {
        let r = state.route_of[u];
        if r == UNASSIGNED {
            return;
        }
        self.activate(u);
        let route = &state.routes[r];
        let p = state.position_of[u];
        if p > 1 {
            self.activate(route.jobs[p - 2]);
        }
        if p < route.len() {
            self.activate(route.jobs[p]);
        }
    }

    fn improve_pair(
        &mut self,
        problem: &Problem,
        state: &mut SearchState,
        pen: &Penalties,
        u: usize,
        v: usize,
    ) -> bool {
        let (r1, i) = (state.route_of[u], state.position_of[u]);
        let (r2, j) = (state.route_of[v], state.position_of[v]);
        if r1 == r2 {
            if let Some(m) = self.best_intra(problem, state, pen, r1, i, j) {
                return self.apply(problem, state, m);
            }
            return false;
        }
        let len1 = state.routes[r1].len();
        let len2 = state.routes[r2].len();
        let old = state.route_cost(problem, r1, pen) + state.route_cost(problem, r2, pen);

        // relocate / or-opt: chain u..u+k-1 after v or before v.
        for k in 1..=3 {
            if i + k - 1 > len1 {
                break;
            }
            for t in [j, j - 1] {
                let m = Move::relocate(r1, i, k, r2, t);
                if self.improves(problem, state, pen, &m, old) {
                    self.stats.relocate += 1;
                    return self.apply(problem, state, m);
                }
            }
        }
        // swap: chains of 1-2 at u and at v.
        for (k, l) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            if i + k - 1 > len1 || j + l - 1 > len2 {
                continue;
            }
            let m = Move {
                routes: [r1, r2],
                pieces: [
                    [
                        Piece::Prefix {
                            route: r1,
                            to: i - 1,
                        },
                        Piece::Range {
                            route: r2,
                            from: j,
                            to: j + l - 1,
                        },
                        Piece::Suffix {
                            route: r1,
                            from: i + k,
                        },
                        NONE,
                    ],
                    [
                        Piece::Prefix {
                            route: r2,
                            to: j - 1,
                        },
                        Piece::Range {
                            route: r1,
                            from: i,
                            to: i + k - 1,
                        },
                        Piece::Suffix {
                            route: r2,
                            from: j + l,
                        },
                        NONE,
                    ],
                ],
                lens: [3, 3],
                count: 2,
            };
            if self.improves(problem, state, pen, &m, old) {
                self.stats.swap += 1;
                return self.apply(problem, state, m);
            }
        }
        // two_opt_star: u then v's successor, and u then v.
        for t in [j, j - 1] {
            let m = Move::two_opt_star(problem, state, r1, i, r2, t);
            if self.improves(problem, state, pen, &m, old) {
                self.stats.two_opt_star += 1;
                return self.apply(problem, state, m);
            }
        }
        false
    }

    /// Intra-route relocate / or-opt and 2-opt between positions `i` (of u) and `j` (of v).
    fn best_intra(
        &mut self,
        problem: &Problem,
        state: &SearchState,
        pen: &Penalties,
        r: usize,
        i: usize,
        j: usize,
    ) -> Option<Move> {
        let len = state.routes[r].len();
        let old = state.route_cost(problem, r, pen);
        for k in 1..=3 {
            if i + k - 1 > len {
                break;
            }
            for t in [j, j - 1] {
                // Insert the chain i..i+k-1 after position t.
                let pieces = if t + 1 < i {
                    [
                        Piece::Prefix { route: r, to: t },
                        Piece::Range {
                            route: r,
                            from: i,
                            to: i + k - 1,
                        },
                        Piece::Range {
                            route: r,
                            from: t + 1,
                            to: i - 1,
                        },
                        Piece::Suffix {
                            route: r,
                            from: i + k,
                        },
                    ]
                } else if t >= i + k {
                    [
                        Piece::Prefix {
                            route: r,
                            to: i - 1,
                        },
                        Piece::Range {
                            route: r,
                            from: i + k,
                            to: t,
                        },
                        Piece::Range {
                            route: r,
                            from: i,
                            to: i + k - 1,
                        },
                        Piece::Suffix {
                            route: r,
                            from: t + 1,
                        },
                    ]
                } else {
                    continue;
                };
                let m = Move {
                    routes: [r, r],
                    pieces: [pieces, [NONE; 4]],
                    lens: [4, 0],
                    count: 1,
                };
                if self.improves(problem, state, pen, &m, old) {
                    self.stats.relocate += 1;
                    return Some(m);
                }
            }
        }
        // two_opt: make u and v adjacent by reversing the stretch between them.
        let (a, b) = if i < j { (i + 1, j) } else { (j, i - 1) };
        if a < b {
            let pieces = [
                Piece::Prefix {
                    route: r,
                    to: a - 1,
                },
                Piece::Reversed {
                    route: r,
                    from: a,
                    to: b,
                },
                Piece::Suffix {
                    route: r,
                    from: b + 1,
                },
                NONE,
            ];
            let m = Move {
                routes: [r, r],
                pieces: [pieces, [NONE; 4]],
                lens: [3, 0],
                count: 1,
            };
            if self.improves(problem, state, pen, &m, old) {
                self.stats.two_opt += 1;
                return Some(m);
            }
        }
        None
    }

    /// Opens a new route: moves the tail after `u` into an empty route (2-opt* with an
    /// empty route, which lets the fleet grow when longer routes cost more), and when
    /// `u`'s route is infeasible, moves `u` alone into it.
    fn try_empty_route(
        &mut self,
        problem: &Problem,
        state: &mut SearchState,
        pen: &Penalties,
        u: usize,
    ) -> bool {
        let r1 = state.route_of[u];
        // Under field rules each technician-day is its own vehicle type, so a few empty
        // routes whose technician may do `u` are tried (cheapest to look at: the first).
        let empty: Vec<usize> = (0..state.routes.len())
            .filter(|&r| {
                state.routes[r].is_empty() && problem.allows(u, state.routes[r].vehicle_type)
            })
            .take(EMPTY_ROUTES_TRIED)
            .collect();
        let i = state.position_of[u];
        let len1 = state.routes[r1].len();
        let old = state.route_cost(problem, r1, pen);
        let broken =
            state.routes[r1].time_warp().get() != 0 || !state.routes[r1].is_load_feasible(problem);
        for r2 in empty {
            if i < len1 {
                // 2-opt* with the empty route: the tail after u moves to a new route.
                let m = Move::two_opt_star(problem, state, r1, i, r2, 0);
                if self.improves(problem, state, pen, &m, old) {
                    self.stats.to_empty_route += 1;
                    return self.apply(problem, state, m);
                }
            }
            if !broken {
                continue;
            }
            let m = Move::relocate(r1, i, 1, r2, 0);
            if self.improves(problem, state, pen, &m, old) {
                self.stats.to_empty_route += 1;
                return self.apply(problem, state, m);
            }
        }
        false
    }

    /// True when the move's new routes cost less than `old`. Checks a distance-and-load
    /// bound first, so most non-improving moves never touch the time-window segments.
    #[inline]
    fn improves(
        &self,
        problem: &Problem,
        state: &SearchState,
        pen: &Penalties,
        m: &Move,
        old: Cost,
    ) -> bool {
        let mut bound = Cost::ZERO;
        for s in 0..m.count {
            let vt = &problem.vehicle_types()[state.routes[m.routes[s]].vehicle_type];
            let t = totals_without_windows(problem, state, &m.pieces[s][..m.lens[s]]);
            let v = state.routes[m.routes[s]].vehicle_type;
            bound += if problem.rules().is_some() {
                cost_lower_bound(
                    problem,
                    v,
                    t.jobs,
                    t.dist,
                    t.load,
                    t.min_duration,
                    pen.excess_load,
                )
            } else {
                pen.route_cost_bound(vt, t.jobs, t.dist, t.load, t.min_duration)
            };
        }
        if bound >= old {
            return false;
        }
        if problem.has_relations() && !keeps_groups(problem, state, m) {
            return false;
        }
        let mut new = Cost::ZERO;
        for s in 0..m.count {
            new += cost_of(
                problem,
                state,
                state.routes[m.routes[s]].vehicle_type,
                &m.pieces[s][..m.lens[s]],
                pen,
            );
        }
        new < old
    }

    fn apply(&mut self, problem: &Problem, state: &mut SearchState, m: Move) -> bool {
        self.step += 1;
        let new_jobs: Vec<Vec<usize>> = (0..m.count)
            .map(|s| jobs_of(state, &m.pieces[s][..m.lens[s]]))
            .collect();
        let mut reshaped = false;
        for (s, jobs) in new_jobs.into_iter().enumerate() {
            let r = m.routes[s];
            reshaped |= jobs.is_empty() || state.routes[r].is_empty();
            state.routes[r].jobs = jobs;
            state.refresh_route(problem, r, self.step);
        }
        if reshaped {
            state.normalise_routes(problem);
        }
        true
    }
}

impl Move {
    /// 2-opt*: route `r1` keeps positions `0..=i` and takes route `r2`'s jobs after `t`;
    /// `r2` keeps `0..=t` and takes `r1`'s jobs after `i`. Each keeps its own end depot
    /// (suffixes are exchanged whole when both vehicles end alike).
    pub(crate) fn two_opt_star(
        problem: &Problem,
        state: &SearchState,
        r1: usize,
        i: usize,
        r2: usize,
        t: usize,
    ) -> Self {
        if ends_compatible(problem, state, r1, r2) {
            return Move {
                routes: [r1, r2],
                pieces: [
                    [
                        Piece::Prefix { route: r1, to: i },
                        Piece::Suffix {
                            route: r2,
                            from: t + 1,
                        },
                        NONE,
                        NONE,
                    ],
                    [
                        Piece::Prefix { route: r2, to: t },
                        Piece::Suffix {
                            route: r1,
                            from: i + 1,
                        },
                        NONE,
                        NONE,
                    ],
                ],
                lens: [2, 2],
                count: 2,
            };
        }
        let (len1, len2) = (state.routes[r1].len(), state.routes[r2].len());
        let (e1, e2) = (state.routes[r1].end(), state.routes[r2].end());
        Move {
            routes: [r1, r2],
            pieces: [
                [
                    Piece::Prefix { route: r1, to: i },
                    Piece::Range {
                        route: r2,
                        from: t + 1,
                        to: len2,
                    },
                    Piece::Suffix {
                        route: r1,
                        from: e1,
                    },
                    NONE,
                ],
                [
                    Piece::Prefix { route: r2, to: t },
                    Piece::Range {
                        route: r1,
                        from: i + 1,
                        to: len1,
                    },
                    Piece::Suffix {
                        route: r2,
                        from: e2,
                    },
                    NONE,
                ],
            ],
            lens: [3, 3],
            count: 2,
        }
    }

    /// Relocate (k = 1) or or-opt (k = 2, 3): the chain at positions `i..i+k-1` of
    /// route `r1` moves to route `r2`, after position `t`.
    pub(crate) fn relocate(r1: usize, i: usize, k: usize, r2: usize, t: usize) -> Self {
        Move {
            routes: [r1, r2],
            pieces: [
                [
                    Piece::Prefix {
                        route: r1,
                        to: i - 1,
                    },
                    Piece::Suffix {
                        route: r1,
                        from: i + k,
                    },
                    NONE,
                    NONE,
                ],
                [
                    Piece::Prefix { route: r2, to: t },
                    Piece::Range {
                        route: r1,
                        from: i,
                        to: i + k - 1,
                    },
                    Piece::Suffix {
                        route: r2,
                        from: t + 1,
                    },
                    NONE,
                ],
            ],
            lens: [2, 3],
            count: 2,
        }
    }
}

/// Whether the move keeps every "same technician" pair with one technician group.
fn keeps_groups(problem: &Problem, state: &SearchState, m: &Move) -> bool {
    let rules = problem.rules().expect("relations come with rules");
    let new: Vec<Vec<usize>> = (0..m.count)
        .map(|s| jobs_of(state, &m.pieces[s][..m.lens[s]]))
        .collect();
    let group_after = |j: usize| -> Option<usize> {
        for s in 0..m.count {
            if new[s].contains(&j) {
                return Some(rules.group(state.routes[m.routes[s]].vehicle_type));
            }
        }
        let r = state.route_of[j];
        (r != UNASSIGNED && !m.routes[..m.count].contains(&r))
            .then(|| rules.group(state.routes[r].vehicle_type))
    };
    new.iter().enumerate().all(|(s, jobs)| {
        let g = rules.group(state.routes[m.routes[s]].vehicle_type);
        jobs.iter().all(|&j| {
            rules.jobs[j]
                .same_group_as
                .iter()
                .all(|&p| group_after(p).is_none_or(|gp| gp == g))
        })
    })
}

/// Empty routes tried per job when opening a new route.
const EMPTY_ROUTES_TRIED: usize = 3;

const NONE: Piece = Piece::Range {
    route: 0,
    from: 1,
    to: 0,
};

/// Whether two routes' vehicles end at the same place with the same shift, so their
/// suffixes (end depot included) can be exchanged as they are.
fn ends_compatible(problem: &Problem, state: &SearchState, r1: usize, r2: usize) -> bool {
    let (t1, t2) = (state.routes[r1].vehicle_type, state.routes[r2].vehicle_type);
    if t1 == t2 {
        return true;
    }
    let (a, b) = (&problem.vehicle_types()[t1], &problem.vehicle_types()[t2]);
    a.end == b.end && a.shift == b.shift
}
