//! Ruin: string removal (Christiaens & Vanden Berghe 2020, "SISR"). Removes a few
//! strings of consecutive jobs from routes near a random seed job, sometimes keeping
//! a substring in the middle ("split string"), so that related jobs are re-planned
//! together and routes get room to change shape.

use super::state::{SearchState, UNASSIGNED};
use crate::model::Problem;

#[derive(Clone, Debug)]
pub struct RuinParams {
    /// Average number of removed jobs.
    pub average_removed: f64,
    /// Longest string removed from one route.
    pub max_string: f64,
    /// Chance of a split string instead of a plain one.
    pub split_rate: f64,
    /// Chance of stopping to grow the kept substring of a split string.
    pub split_depth: f64,
}

impl Default for RuinParams {
    fn default() -> Self {
        Self {
            average_removed: 10.0,
            max_string: 10.0,
            split_rate: 0.5,
            split_depth: 0.01,
        }
    }
}

/// Removes jobs from `state` (route caches are *not* rebuilt; the caller refreshes the
/// returned routes). Returns the removed jobs, the routes that changed, and the jobs
/// left next to a gap (worth a local-search look).
pub fn ruin(
    problem: &Problem,
    state: &mut SearchState,
    nearest: &[Vec<usize>],
    params: &RuinParams,
    rng: &mut fastrand::Rng,
) -> Removal {
    let assigned: Vec<usize> = (0..state.route_of.len())
        .filter(|&j| state.route_of[j] != UNASSIGNED)
        .collect();
    let used = state.routes.iter().filter(|r| !r.is_empty()).count();
    if assigned.is_empty() || used == 0 {
        return Removal::default();
    }
    let _ = problem;
    let avg_len = assigned.len() as f64 / used as f64;
    let ls_max = params.max_string.min(avg_len);
    let ks_max = 4.0 * params.average_removed / (1.0 + ls_max) - 1.0;
    let strings = (1.0 + rng.f64() * ks_max).floor().max(1.0) as usize;

    let seed = assigned[rng.usize(..assigned.len())];
    let mut removed = Vec::new();
    let mut ruined: Vec<usize> = Vec::new();
    let mut boundary = Vec::new();
    for &c in std::iter::once(&seed).chain(nearest[seed].iter()) {
        if ruined.len() >= strings {
            break;
        }
        let r = state.route_of[c];
        if r == UNASSIGNED || ruined.contains(&r) {
            continue;
        }
        let len = state.routes[r].len();
        let max_here = ls_max.min(len as f64);
        let l = ((1.0 + rng.f64() * max_here).floor() as usize).clamp(1, len);
        let pos = state.position_of[c] - 1; // 0-based index in jobs
        let jobs = &state.routes[r].jobs;
        let (start, span, to_remove): (usize, usize, Vec<usize>) =
            if l == len || rng.f64() >= params.split_rate {
                // A string of l jobs containing c.
                let start = rand_start(rng, pos, l, len);
                (start, l, jobs[start..start + l].to_vec())
            } else {
                // A string of l + m jobs containing c, keeping m consecutive ones inside.
                let mut m = 1;
                while l + m < len && rng.f64() > params.split_depth {
                    m += 1;
                }
                let start = rand_start(rng, pos, l + m, len);
                let keep_from = start + rng.usize(..=l);
                let removed = (start..start + l + m)
                    .filter(|&k| k < keep_from || k >= keep_from + m)
                    .map(|k| jobs[k])
                    .collect();
                (start, l + m, removed)
            };
        let lo = start.saturating_sub(1);
        let hi = (start + span + 1).min(len);
        boundary.extend(jobs[lo..hi].iter().filter(|j| !to_remove.contains(j)));
        for &j in &to_remove {
            state.detach(j);
        }
        removed.extend(to_remove);
        ruined.push(r);
    }
    Removal {
        removed,
        routes: ruined,
        boundary,
    }
}

#[derive(Debug, Default)]
pub struct Removal {
    pub removed: Vec<usize>,
    pub routes: Vec<usize>,
    pub boundary: Vec<usize>,
}

/// A random start of a window of `l` jobs within `0..len` that covers index `pos`.
fn rand_start(rng: &mut fastrand::Rng, pos: usize, l: usize, len: usize) -> usize {
    let lo = (pos + 1).saturating_sub(l);
    let hi = pos.min(len - l);
    rng.usize(lo..=hi)
}
