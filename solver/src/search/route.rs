//! One route's cached state (VROOM's `SolutionState`, HGS's per-node caches): prefix and
//! suffix duration segments, cumulative distance and load. Rebuilt in O(length) when the
//! route changes; read in O(1) by every move evaluation.

use super::route_eval::{evaluate, RouteEval};
use super::segment::DurationSegment;
use crate::model::{Location, Problem};
use crate::units::{Distance, Duration, Load};

#[derive(Clone, Debug)]
pub struct RouteState {
    pub vehicle_type: usize,
    /// Jobs in visiting order. Position `p` of the route is `jobs[p - 1]`;
    /// position 0 is the start depot and position `len + 1` the end depot.
    pub jobs: Vec<usize>,
    stops: Vec<DurationSegment>,
    fwd: Vec<DurationSegment>,
    bwd: Vec<DurationSegment>,
    dist: Vec<Distance>,
    /// Cumulative travel time and least service time (for cheap lower bounds).
    travel: Vec<Duration>,
    service: Vec<Duration>,
    load: Vec<Load>,
    /// Search step at which the route last changed (for skipping re-tested neighbourhoods).
    pub modified_at: u64,
    /// Under field rules: the route's evaluation (its cost parts), from `route_eval`.
    pub eval: Option<RouteEval>,
    /// Whether every job on the route has a single time window (then the cached
    /// segments use the windows the route evaluator uses).
    pub single_windows: bool,
    /// Under rules with job relations: (start, end) of each job position's service.
    pub times: Vec<(Duration, Duration)>,
}

impl RouteState {
    pub fn new(problem: &Problem, vehicle_type: usize) -> Self {
        let mut r = Self {
            vehicle_type,
            jobs: Vec::new(),
            stops: Vec::new(),
            fwd: Vec::new(),
            bwd: Vec::new(),
            dist: Vec::new(),
            travel: Vec::new(),
            service: Vec::new(),
            load: Vec::new(),
            modified_at: 0,
            eval: None,
            single_windows: true,
            times: Vec::new(),
        };
        r.rebuild(problem, &[]);
        r
    }

    /// Recomputes every cache from `self.jobs`; `job_stops[j]` is job `j`'s stop segment.
    pub fn rebuild(&mut self, problem: &Problem, job_stops: &[DurationSegment]) {
        let vt = &problem.vehicle_types()[self.vehicle_type];
        let n = self.jobs.len();
        self.stops.clear();
        self.stops.push(DurationSegment::stop(
            vt.start,
            crate::units::Duration::ZERO,
            vt.shift.start,
            vt.shift.end,
        ));
        self.stops.extend(self.jobs.iter().map(|&j| job_stops[j]));
        self.stops.push(DurationSegment::stop(
            vt.end,
            crate::units::Duration::ZERO,
            vt.shift.start,
            vt.shift.end,
        ));

        self.fwd.clear();
        self.dist.clear();
        self.travel.clear();
        self.service.clear();
        self.load.clear();
        self.fwd.push(self.stops[0]);
        self.dist.push(Distance::ZERO);
        self.travel.push(Duration::ZERO);
        self.service.push(Duration::ZERO);
        self.load.push(Load::ZERO);
        for p in 1..n + 2 {
            let seg = self.fwd[p - 1].then(problem, &self.stops[p]);
            self.fwd.push(seg);
            self.dist.push(
                self.dist[p - 1] + problem.distance(self.stops[p - 1].last, self.stops[p].first),
            );
            self.travel.push(
                self.travel[p - 1] + problem.duration(self.stops[p - 1].last, self.stops[p].first),
            );
            let (demand, service) = if p <= n {
                let j = self.jobs[p - 1];
                (problem.jobs()[j].demand, problem.min_service(j))
            } else {
                (Load::ZERO, Duration::ZERO)
            };
            self.service.push(self.service[p - 1] + service);
            self.load.push(self.load[p - 1] + demand);
        }
        self.bwd.clear();
        self.bwd.resize(n + 2, self.stops[n + 1]);
        for p in (0..n + 1).rev() {
            self.bwd[p] = self.stops[p].then(problem, &self.bwd[p + 1]);
        }
        self.single_windows = self
            .jobs
            .iter()
            .all(|&j| problem.jobs()[j].windows.len() == 1);
        self.times.clear();
        self.eval = if problem.has_relations() {
            let mut s = super::route_eval::RouteSchedule::default();
            let e = evaluate(problem, self.vehicle_type, &self.jobs, Some(&mut s));
            self.times
                .extend(s.stops.iter().map(|st| (st.start, st.end)));
            Some(e)
        } else {
            problem
                .rules()
                .map(|_| evaluate(problem, self.vehicle_type, &self.jobs, None))
        };
    }

    /// Time warp of the whole route (under rules, with its break placed).
    #[inline]
    pub fn time_warp(&self) -> crate::units::Duration {
        match &self.eval {
            Some(e) => e.time_warp,
            None => self.segment().time_warp,
        }
    }

    /// Whether the route respects capacity (and, under rules, the equipment profile
    /// and the daily job limit).
    #[inline]
    pub fn is_load_feasible(&self, problem: &Problem) -> bool {
        match &self.eval {
            Some(e) => e.excess == Load::ZERO && !e.incompatible,
            None => self.load() <= problem.vehicle_types()[self.vehicle_type].capacity,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
    /// Position of the end depot.
    #[inline]
    pub fn end(&self) -> usize {
        self.jobs.len() + 1
    }
    #[inline]
    pub fn location(&self, p: usize) -> Location {
        self.stops[p].first
    }
    #[inline]
    pub fn stop(&self, p: usize) -> &DurationSegment {
        &self.stops[p]
    }
    /// Segment of positions `0..=p`.
    #[inline]
    pub fn prefix(&self, p: usize) -> &DurationSegment {
        &self.fwd[p]
    }
    /// Segment of positions `p..=end`.
    #[inline]
    pub fn suffix(&self, p: usize) -> &DurationSegment {
        &self.bwd[p]
    }
    /// Segment of positions `from..=to`: O(1) at either end, O(to - from) inside.
    #[inline]
    pub fn between(&self, problem: &Problem, from: usize, to: usize) -> DurationSegment {
        if from == 0 {
            return self.fwd[to];
        }
        if to == self.end() {
            return self.bwd[from];
        }
        let mut seg = self.stops[from];
        for p in from + 1..=to {
            seg = seg.then(problem, &self.stops[p]);
        }
        seg
    }
    /// Distance travelled from position `from` to position `to` (`from <= to`).
    #[inline]
    pub fn distance_between(&self, from: usize, to: usize) -> Distance {
        self.dist[to] - self.dist[from]
    }
    /// Travel time from position `from` to position `to` (`from <= to`).
    #[inline]
    pub fn travel_between(&self, from: usize, to: usize) -> Duration {
        self.travel[to] - self.travel[from]
    }
    /// Least service time of the jobs at positions `from..=to`.
    #[inline]
    pub fn service_between(&self, from: usize, to: usize) -> Duration {
        if from == 0 {
            self.service[to]
        } else {
            self.service[to] - self.service[from - 1]
        }
    }
    /// Demand of the jobs at positions `from..=to`.
    #[inline]
    pub fn load_between(&self, from: usize, to: usize) -> Load {
        if from == 0 {
            self.load[to]
        } else {
            self.load[to] - self.load[from - 1]
        }
    }
    #[inline]
    pub fn distance(&self) -> Distance {
        self.dist[self.end()]
    }
    #[inline]
    pub fn load(&self) -> Load {
        self.load[self.end()]
    }
    #[inline]
    pub fn segment(&self) -> &DurationSegment {
        &self.fwd[self.end()]
    }
}
