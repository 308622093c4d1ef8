//! Duration segments (Vidal et al. 2013; PyVRP's `DurationSegment`): a summary of a
//! route slice that concatenates in O(1), so any move's time-window effect is known
//! from a few precomputed prefix/suffix summaries.
//!
//! Infeasibility is measured as *time warp*: travelling back in time to meet a late
//! window. A slice is feasible exactly when its time warp is zero.

use crate::model::{Location, Problem};
use crate::units::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSegment {
    pub first: Location,
    pub last: Location,
    /// Shortest total time of the slice (service, travel and waiting), time warp excluded.
    pub duration: Duration,
    pub time_warp: Duration,
    /// Earliest and latest start of the first service giving that duration and time warp.
    pub earliest: Duration,
    pub latest: Duration,
}

impl DurationSegment {
    /// A single stop with service `service` that must start in `[earliest, latest]`.
    #[inline]
    pub fn stop(
        location: Location,
        service: Duration,
        earliest: Duration,
        latest: Duration,
    ) -> Self {
        Self {
            first: location,
            last: location,
            duration: service,
            time_warp: Duration::ZERO,
            earliest,
            latest,
        }
    }

    /// `self` followed by `next`, travelling from `self.last` to `next.first`.
    #[inline]
    pub fn then(&self, problem: &Problem, next: &DurationSegment) -> DurationSegment {
        let travel = problem.duration(self.last, next.first);
        let delta = self.duration - self.time_warp + travel;
        let wait = (next.earliest - delta - self.latest).positive_part();
        let warp = (self.earliest + delta - next.latest).positive_part();
        DurationSegment {
            first: self.first,
            last: next.last,
            duration: self.duration + next.duration + travel + wait,
            time_warp: self.time_warp + next.time_warp + warp,
            earliest: (next.earliest - delta).max(self.earliest) - wait,
            latest: (next.latest - delta).min(self.latest) + warp,
        }
    }
}
