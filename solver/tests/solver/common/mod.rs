//! Shared helpers of the solver's integration tests.

use despacho_solver::{check, Cost, Problem, Route, Solution};

/// The optimum by enumeration: every order of the jobs, every way to cut it into
/// routes of vehicle type 0, judged by the checker. `None` when nothing is feasible.
pub fn brute_force_optimum(problem: &Problem) -> Option<Cost> {
    let n = problem.jobs().len();
    let mut best: Option<Cost> = None;
    let mut perm: Vec<usize> = (0..n).collect();
    permute(&mut perm, 0, &mut |p| {
        for cuts in 0u32..(1 << (n - 1)) {
            let mut routes = vec![Route {
                vehicle_type: 0,
                jobs: vec![p[0]],
            }];
            for k in 1..n {
                if cuts & (1 << (k - 1)) != 0 {
                    routes.push(Route {
                        vehicle_type: 0,
                        jobs: vec![],
                    });
                }
                routes.last_mut().unwrap().jobs.push(p[k]);
            }
            let report = check(problem, &Solution { routes }, true);
            if report.is_feasible() && best.is_none_or(|b| report.cost < b) {
                best = Some(report.cost);
            }
        }
    });
    best
}

fn permute(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permute(v, k + 1, f);
        v.swap(k, i);
    }
}
