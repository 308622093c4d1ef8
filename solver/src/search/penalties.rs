//! The penalised objective and its adaptive weights.
//!
//! The search may pass through plans that break time windows or capacity; such
//! plans pay `time_warp * weight + excess_load * weight`. The weights adapt so that
//! about `TARGET_FEASIBLE` of the local-search outputs are feasible (Vidal 2012;
//! PyVRP's `PenaltyManager`): too few feasible plans raise them, too many lower them.

use super::segment::DurationSegment;
use crate::model::VehicleType;
use crate::units::{Cost, Distance, Duration, Load};

const TARGET_FEASIBLE: f64 = 0.5;
const UPDATE_EVERY: usize = 40;
const RAISE: f64 = 1.3;
const LOWER: f64 = 0.85;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Penalties {
    /// Cost per unit of time warp.
    pub time_warp: i64,
    /// Cost per unit of load above capacity.
    pub excess_load: i64,
}

impl Penalties {
    /// Cost of a route with these totals (an empty route costs nothing).
    #[inline]
    pub fn route_cost(
        &self,
        vt: &VehicleType,
        jobs: usize,
        dist: Distance,
        load: Load,
        seg: &DurationSegment,
    ) -> Cost {
        if jobs == 0 {
            return Cost::ZERO;
        }
        Cost(vt.fixed_cost)
            + dist.cost(vt.cost_per_distance)
            + seg.duration.cost(vt.cost_per_duration)
            + seg.time_warp.cost(self.time_warp)
            + (load - vt.capacity).positive_part().cost(self.excess_load)
    }

    /// A lower bound of the route's cost from distance, load and a lower bound of its
    /// duration (for early exits).
    #[inline]
    pub fn route_cost_bound(
        &self,
        vt: &VehicleType,
        jobs: usize,
        dist: Distance,
        load: Load,
        min_duration: Duration,
    ) -> Cost {
        if jobs == 0 {
            return Cost::ZERO;
        }
        Cost(vt.fixed_cost)
            + dist.cost(vt.cost_per_distance)
            + min_duration.cost(vt.cost_per_duration)
            + (load - vt.capacity).positive_part().cost(self.excess_load)
    }

    /// The same weights, `factor` times stronger (for repairing an infeasible plan).
    pub fn scaled(&self, factor: i64) -> Self {
        Self {
            time_warp: self.time_warp * factor,
            excess_load: self.excess_load * factor,
        }
    }
}

/// Keeps the weights near the target share of feasible plans.
#[derive(Clone, Debug)]
pub struct PenaltyManager {
    weights: [f64; 2],
    history: [Vec<bool>; 2],
}

impl PenaltyManager {
    pub fn new(time_warp: f64, excess_load: f64) -> Self {
        Self {
            weights: [time_warp.max(1.0), excess_load.max(1.0)],
            history: [Vec::new(), Vec::new()],
        }
    }

    pub fn penalties(&self) -> Penalties {
        Penalties {
            time_warp: self.weights[0].round() as i64,
            excess_load: self.weights[1].round() as i64,
        }
    }

    /// Records whether a local-search output met time windows and capacity.
    /// Returns true when the weights changed.
    pub fn record(&mut self, time_feasible: bool, load_feasible: bool) -> bool {
        let mut changed = false;
        for (k, ok) in [time_feasible, load_feasible].into_iter().enumerate() {
            self.history[k].push(ok);
            if self.history[k].len() == UPDATE_EVERY {
                let share =
                    self.history[k].iter().filter(|&&b| b).count() as f64 / UPDATE_EVERY as f64;
                let w = &mut self.weights[k];
                if share < TARGET_FEASIBLE - 0.05 {
                    *w = (*w * RAISE).min(1e7);
                } else if share > TARGET_FEASIBLE + 0.05 {
                    *w = (*w * LOWER).max(1.0);
                }
                self.history[k].clear();
                changed = true;
            }
        }
        changed
    }
}
