//! Field-service rules in the routing core: the route evaluator against a plain
//! physical simulation, and the search against enumeration on tiny problems.

use despacho_solver::{
    schedule_route, solve, BreakSpec, Cost, Distance, Duration, Job, JobRules, Load, Matrix,
    Problem, Rules, SolverConfig, TimeWindow, VehicleRules, VehicleType,
};

/// Points on a line-ish grid so travel times are small integers.
fn matrix(points: &[(i64, i64)]) -> (Matrix<Distance>, Matrix<Duration>) {
    let n = points.len();
    let d = |i: usize, j: usize| {
        let (a, b) = (points[i], points[j]);
        (a.0 - b.0).abs() + (a.1 - b.1).abs()
    };
    (
        Matrix::from_fn(n, |i, j| Distance(d(i, j))),
        Matrix::from_fn(n, |i, j| Duration(d(i, j))),
    )
}

struct Tiny {
    problem: Problem,
}

/// Two technicians (different homes and shifts, each with a break), `n` jobs with
/// random windows, services, pickups/deliveries, allowed sets, SLA due times.
fn tiny(seed: u64, n: usize, with_overtime: bool) -> Tiny {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut points = vec![(0, 0), (30, 10)];
    for _ in 0..n {
        points.push((rng.i64(0..40), rng.i64(0..40)));
    }
    let (dist, dur) = matrix(&points);
    let vehicles = vec![
        VehicleType {
            start: 0,
            end: 0,
            shift: TimeWindow::new(Duration(0), Duration(400)),
            capacity: Load(3),
            count: Some(1),
            fixed_cost: 0,
            cost_per_distance: 1,
            cost_per_duration: 1,
        },
        VehicleType {
            start: 1,
            end: 1,
            shift: TimeWindow::new(Duration(50), Duration(450)),
            capacity: Load(2),
            count: Some(1),
            fixed_cost: 0,
            cost_per_distance: 2,
            cost_per_duration: 1,
        },
    ];
    let jobs: Vec<Job> = (0..n)
        .map(|k| {
            let start = rng.i64(0..300);
            Job {
                location: k + 2,
                service: Duration(rng.i64(10..40)),
                demand: Load(rng.i64(0..2)),
                windows: vec![TimeWindow::new(
                    Duration(start),
                    Duration(start + rng.i64(20..150)),
                )],
            }
        })
        .collect();
    let job_rules = (0..n)
        .map(|_| JobRules {
            pickup: Load(rng.i64(0..2)),
            unassigned_cost: Some(Cost(rng.i64(200..2000))),
            allowed: match rng.usize(0..4) {
                0 => Some(vec![0]),
                1 => Some(vec![1]),
                _ => None,
            },
            due: rng.bool().then(|| Duration(rng.i64(50..350))),
            lateness_cost: 3,
            ..JobRules::default()
        })
        .collect();
    let vehicle_rules = (0..2)
        .map(|v| VehicleRules {
            break_spec: Some(BreakSpec {
                start: TimeWindow::new(Duration(150 + 20 * v), Duration(220)),
                duration: Duration(30),
            }),
            regular_end: with_overtime.then_some(Duration(330)),
            overtime_cost: if with_overtime { 4 } else { 0 },
            max_jobs: Some(4),
        })
        .collect();
    let problem = Problem::new(dist, dur, vehicles, jobs)
        .unwrap()
        .with_rules(Rules {
            jobs: job_rules,
            vehicles: vehicle_rules,
            balance_per_hour_squared: 0,
            units_per_hour: 3600,
            groups: Vec::new(),
        })
        .unwrap();
    Tiny { problem }
}

/// The shortest feasible duration of `jobs` on `vt` by plain simulation over every
/// departure time and every gap for the break (drive, break, drive: the next stop
/// is ready at `max(end + travel, break_earliest) + break`).
fn brute_force_duration(problem: &Problem, vt: usize, jobs: &[usize]) -> Option<i64> {
    let v = &problem.vehicle_types()[vt];
    let b = problem.rules().unwrap().vehicles[vt].break_spec.unwrap();
    let loc = |p: usize| {
        if p == 0 {
            v.start
        } else if p == jobs.len() + 1 {
            v.end
        } else {
            problem.jobs()[jobs[p - 1]].location
        }
    };
    let n = jobs.len();
    let mut best: Option<i64> = None;
    for dep in v.shift.start.get()..=v.shift.end.get() {
        'gap: for k in 0..=n {
            let mut t = dep;
            for g in 0..=n {
                let travel = problem.duration(loc(g), loc(g + 1)).get();
                let arrival = if g == k {
                    if t.max(b.start.start.get()) > b.start.end.get() {
                        continue 'gap;
                    }
                    (t + travel).max(b.start.start.get()) + b.duration.get()
                } else {
                    t + travel
                };
                if g == n {
                    if arrival > v.shift.end.get() {
                        continue 'gap;
                    }
                    let d = arrival - dep;
                    if best.is_none_or(|x| d < x) {
                        best = Some(d);
                    }
                } else {
                    let j = &problem.jobs()[jobs[g]];
                    let w = j.windows[0];
                    let start = arrival.max(w.start.get());
                    if start > w.end.get() {
                        continue 'gap;
                    }
                    t = start + problem.service_on(jobs[g], vt).get();
                }
            }
        }
    }
    best
}

#[test]
fn break_placement_matches_a_plain_simulation() {
    let mut feasible_seen = 0;
    for seed in 0..300 {
        let t = tiny(seed, 4, false);
        let p = &t.problem;
        let n = p.jobs().len();
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut jobs: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut jobs);
        jobs.truncate(rng.usize(1..=n));
        // Evaluate on vehicle 0 regardless of allowed sets: drop the restriction.
        let (schedule, eval) = schedule_route(p, 0, &jobs).unwrap();
        if eval.incompatible {
            continue;
        }
        let expected = brute_force_duration(p, 0, &jobs);
        assert_eq!(
            eval.time_warp == Duration::ZERO,
            expected.is_some(),
            "seed {seed}: feasibility of {jobs:?}"
        );
        if let Some(d) = expected {
            feasible_seen += 1;
            assert_eq!(
                schedule.duration.get(),
                d,
                "seed {seed}: duration of {jobs:?}"
            );
            verify_schedule(p, 0, &jobs, &schedule);
        }
    }
    assert!(feasible_seen > 30, "only {feasible_seen} feasible cases");
}

/// Checks a schedule physically: travel, windows, break inside its range and in a
/// gap long enough for it, shift limits.
fn verify_schedule(
    problem: &Problem,
    vt: usize,
    jobs: &[usize],
    s: &despacho_solver::RouteSchedule,
) {
    let v = &problem.vehicle_types()[vt];
    let b = problem.rules().unwrap().vehicles[vt].break_spec.unwrap();
    assert!(s.departure >= v.shift.start);
    assert!(s.return_arrival <= v.shift.end);
    let brk = s.break_taken.expect("non-empty routes take their break");
    assert!(b.start.contains(brk.start), "break start {:?}", brk.start);
    let mut prev_end = s.departure;
    let mut at = v.start;
    for (k, stop) in s.stops.iter().enumerate() {
        assert_eq!(stop.job, jobs[k]);
        let travel = problem.duration(at, problem.jobs()[stop.job].location);
        let needed = if brk.after_stop == k {
            assert!(brk.start >= prev_end && brk.end <= stop.start);
            travel + b.duration
        } else {
            travel
        };
        assert!(stop.start - prev_end >= needed, "stop {k}: not enough time");
        assert!(problem.jobs()[stop.job].windows[0].contains(stop.start));
        assert_eq!(stop.end - stop.start, problem.service_on(stop.job, vt));
        prev_end = stop.end;
        at = problem.jobs()[stop.job].location;
    }
    let travel = problem.duration(at, v.end);
    let needed = if brk.after_stop == jobs.len() {
        assert!(brk.start >= prev_end && brk.end <= s.return_arrival);
        travel + b.duration
    } else {
        travel
    };
    assert!(s.return_arrival - prev_end >= needed);
}

/// The optimum by enumeration: each job on vehicle 0, 1 or unplanned, every order.
fn brute_force_optimum(problem: &Problem) -> Cost {
    let n = problem.jobs().len();
    let rules = problem.rules().unwrap();
    let mut best = Cost(i64::MAX);
    for code in 0..3usize.pow(n as u32) {
        let mut on = [Vec::new(), Vec::new()];
        let mut cost = Cost::ZERO;
        let mut c = code;
        for j in 0..n {
            match c % 3 {
                2 => cost += rules.jobs[j].unassigned_cost.unwrap(),
                v => on[v].push(j),
            }
            c /= 3;
        }
        for (v, jobs) in on.iter_mut().enumerate() {
            let mut best_route: Option<Cost> = None;
            permutations(jobs, 0, &mut |order| {
                let (_, e) = schedule_route(problem, v, order).unwrap();
                if e.is_feasible() {
                    let c = e.cost(0, 0);
                    if best_route.is_none_or(|b| c < b) {
                        best_route = Some(c);
                    }
                }
            });
            match best_route {
                Some(c) => cost += c,
                None => cost = Cost(i64::MAX / 4),
            }
        }
        best = best.min(cost);
    }
    best
}

fn permutations(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permutations(v, k + 1, f);
        v.swap(k, i);
    }
}

#[test]
fn search_finds_the_enumerated_optimum_under_rules() {
    let (mut matched, mut total) = (0, 0);
    for seed in 0..40 {
        let t = tiny(seed, 5, seed % 2 == 0);
        let p = &t.problem;
        let optimum = brute_force_optimum(p);
        let result = solve(
            p,
            &SolverConfig {
                seed,
                max_iterations: Some(300),
                time_limit: None,
                ..SolverConfig::default()
            },
        );
        assert!(result.feasible, "seed {seed}");
        // The search's cost is what its routes and unplanned jobs really cost.
        let mut recomputed = Cost::ZERO;
        let mut planned = vec![false; p.jobs().len()];
        for r in result.solution.used_routes() {
            let (_, e) = schedule_route(p, r.vehicle_type, &r.jobs).unwrap();
            assert!(e.is_feasible(), "seed {seed}: infeasible route");
            recomputed += e.cost(0, 0);
            for &j in &r.jobs {
                planned[j] = true;
            }
        }
        for (j, &done) in planned.iter().enumerate() {
            if !done {
                recomputed += p.rules().unwrap().jobs[j].unassigned_cost.unwrap();
            }
        }
        assert_eq!(recomputed, result.cost, "seed {seed}");
        assert!(result.cost >= optimum, "seed {seed}: below the optimum");
        total += 1;
        matched += usize::from(result.cost == optimum);
    }
    assert!(
        matched * 10 >= total * 9,
        "matched the optimum on {matched} of {total}"
    );
}

#[test]
fn incompatible_jobs_never_ride_with_the_wrong_technician() {
    for seed in 0..20 {
        let t = tiny(seed, 5, false);
        let p = &t.problem;
        let result = solve(
            p,
            &SolverConfig {
                seed,
                max_iterations: Some(200),
                time_limit: None,
                ..SolverConfig::default()
            },
        );
        for r in result.solution.used_routes() {
            for &j in &r.jobs {
                assert!(p.allows(j, r.vehicle_type));
            }
        }
    }
}

#[test]
fn equipment_profile_counts_pickups_after_deliveries() {
    // One van of capacity 2 starts with the delivery and collects two modems.
    let (dist, dur) = matrix(&[(0, 0), (1, 0), (2, 0)]);
    let job = |loc: usize, demand: i64| Job {
        location: loc,
        service: Duration(1),
        demand: Load(demand),
        windows: vec![TimeWindow::new(Duration(0), Duration(100))],
    };
    let p = Problem::new(
        dist,
        dur,
        vec![VehicleType {
            start: 0,
            end: 0,
            shift: TimeWindow::new(Duration(0), Duration(100)),
            capacity: Load(2),
            count: Some(1),
            fixed_cost: 0,
            cost_per_distance: 1,
            cost_per_duration: 0,
        }],
        vec![job(1, 1), job(2, 0)],
    )
    .unwrap()
    .with_rules(Rules {
        jobs: vec![
            JobRules::default(),
            JobRules {
                pickup: Load(2),
                ..JobRules::default()
            },
        ],
        vehicles: vec![VehicleRules::default()],
        ..Rules::default()
    })
    .unwrap();
    // Deliver first, then collect two: peak 2. Collect first: peak 3.
    let (s, e) = schedule_route(&p, 0, &[0, 1]).unwrap();
    assert_eq!(
        (s.start_load, s.peak_load, e.excess),
        (Load(1), Load(2), Load(0))
    );
    let (s, e) = schedule_route(&p, 0, &[1, 0]).unwrap();
    assert_eq!((s.peak_load, e.excess), (Load(3), Load(1)));
    let result = solve(
        &p,
        &SolverConfig {
            max_iterations: Some(50),
            time_limit: None,
            ..SolverConfig::default()
        },
    );
    assert_eq!(
        result.solution.used_routes().next().unwrap().jobs,
        vec![0, 1]
    );
}
