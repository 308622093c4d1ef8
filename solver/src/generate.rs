//! Random VRPTW instances for tests, examples and property checks.
//!
//! Points uniform in a 100 x 100 square (distances in tenths, truncated), one
//! depot at location 0, one window per job placed so that the job alone is
//! always reachable and the vehicle can return, one vehicle type with an
//! unlimited fleet. The same seed always gives the same problem.

use crate::model::{Job, Matrix, Problem, TimeWindow, VehicleType};
use crate::units::{Distance, Duration, Load};

/// Length of the planning day, in the generated time unit.
pub const HORIZON: i64 = 5000;

/// A random instance with `jobs` jobs and vehicles of `capacity`.
pub fn random_vrptw(seed: u64, jobs: usize, capacity: i64) -> Problem {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = jobs + 1;
    let xy: Vec<(f64, f64)> = (0..n)
        .map(|_| (rng.f64() * 100.0, rng.f64() * 100.0))
        .collect();
    let d = |i: usize, j: usize| {
        let (dx, dy) = (xy[i].0 - xy[j].0, xy[i].1 - xy[j].1);
        (10.0 * (dx * dx + dy * dy).sqrt()) as i64
    };
    let jobs = (1..n)
        .map(|k| {
            let start = rng.i64(d(0, k)..HORIZON - 2 * d(0, k) - 100);
            Job {
                location: k,
                service: Duration(rng.i64(0..100)),
                demand: Load(rng.i64(1..20)),
                windows: vec![TimeWindow::new(
                    Duration(start),
                    Duration(start + rng.i64(50..1500)),
                )],
            }
        })
        .collect();
    Problem::new(
        Matrix::from_fn(n, |i, j| Distance(d(i, j))),
        Matrix::from_fn(n, |i, j| Duration(d(i, j))),
        vec![VehicleType::distance_only(
            0,
            TimeWindow::new(Duration(0), Duration(HORIZON)),
            Load(capacity.max(19)),
        )],
        jobs,
    )
    .expect("generated problems are valid")
}
