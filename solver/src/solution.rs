//! A plan: an ordered list of jobs per used vehicle (a route, or tour).

use serde::{Deserialize, Serialize};

/// One vehicle's tour: the jobs it visits, in order, between its start and end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub vehicle_type: usize,
    /// Indices into [`crate::Problem::jobs`].
    pub jobs: Vec<usize>,
}

/// A set of routes. Jobs in no route are unassigned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solution {
    pub routes: Vec<Route>,
}

impl Solution {
    /// Routes that visit at least one job.
    pub fn used_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter(|r| !r.jobs.is_empty())
    }
}
