//! Neighbour lists: which jobs are worth placing next to each other.

use crate::model::Problem;

/// Granular neighbourhoods for local search: the `k` jobs closest to each job by a
/// proximity that adds to the distance the waiting (weight 0.2) and the time warp
/// (weight 1) that visiting one right after the other would cause (Vidal 2013; PyVRP).
pub fn granular(problem: &Problem, k: usize) -> Vec<Vec<usize>> {
    let jobs = problem.jobs();
    let n = jobs.len();
    let k = k.min(n.saturating_sub(1));
    let window = |j: usize| {
        let w = &jobs[j].windows;
        (w[0].start.get() as f64, w[w.len() - 1].end.get() as f64)
    };
    let proximity = |a: usize, b: usize| {
        let (ea, la) = window(a);
        let (eb, lb) = window(b);
        let travel = problem.duration(jobs[a].location, jobs[b].location).get() as f64;
        let service = jobs[a].service.get() as f64;
        let wait = (eb - travel - service - la).max(0.0);
        let warp = (ea + service + travel - lb).max(0.0);
        problem.distance(jobs[a].location, jobs[b].location).get() as f64 + 0.2 * wait + warp
    };
    (0..n)
        .map(|a| {
            let mut others: Vec<(f64, usize)> = (0..n)
                .filter(|&b| b != a)
                .map(|b| (proximity(a, b).min(proximity(b, a)), b))
                .collect();
            let take = k.min(others.len());
            if take > 0 && take < others.len() {
                others.select_nth_unstable_by(take - 1, |x, y| {
                    x.0.total_cmp(&y.0).then(x.1.cmp(&y.1))
                });
            }
            others.truncate(take);
            others.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            others.into_iter().map(|(_, b)| b).collect()
        })
        .collect()
}

/// The `k` jobs nearest to each job by plain distance, nearest first (for string removal).
pub fn nearest(problem: &Problem, k: usize) -> Vec<Vec<usize>> {
    let jobs = problem.jobs();
    let n = jobs.len();
    (0..n)
        .map(|a| {
            let mut others: Vec<(i64, usize)> = (0..n)
                .filter(|&b| b != a)
                .map(|b| {
                    (
                        problem.distance(jobs[a].location, jobs[b].location).get(),
                        b,
                    )
                })
                .collect();
            others.sort_unstable();
            others.truncate(k);
            others.into_iter().map(|(_, b)| b).collect()
        })
        .collect()
}
