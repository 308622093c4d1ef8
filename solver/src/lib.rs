//! # despacho-solver
//!
//! Despacho's routing engine: a validated [`Problem`], a search that returns a
//! [`Solution`], and an independent [`check`]er that recomputes feasibility and cost.
//!
//! ```
//! use despacho_solver::{parse_solomon, solve, check, SolverConfig};
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/solomon/C101.txt")).unwrap();
//! let instance = parse_solomon(&text).unwrap();
//! let result = solve(&instance.problem, &SolverConfig { max_iterations: Some(50), ..SolverConfig::default() });
//! let report = check(&instance.problem, &result.solution, true);
//! assert!(report.is_feasible());
//! assert_eq!(report.cost, result.cost);
//! ```
//!
//! ## Glossary
//! - **vehicle** = a technician (a *vehicle type* is a technician profile that may repeat);
//! - **job** = a visit to a customer (installation, repair, equipment return, …);
//! - **route** (tour) = one vehicle's ordered jobs between its start and end place;
//! - **time warp** = how far a route would have to travel back in time to meet its windows
//!   (the search's measure of time-window infeasibility).

#[doc(hidden)]
pub mod bench_support;
mod checker;
pub mod field;
pub mod generate;
mod milp;
mod model;
mod rules;
mod search;
mod solomon;
mod solution;
pub mod units;

pub use checker::{check, CheckReport, Violation};
pub use milp::{
    field_lower_bound, lower_bound, recombine, solve_exact, solve_exact_field, time_fixed_route,
    time_fixed_route_weighted, BreakTiming, ExactFieldResult, ExactResult, FixedRouteTiming,
    MilpError, PoolRoute, Recombination, RecombinationOutcome, StopTiming, TimingViolation,
    TimingWeights, MAX_EXACT_FIELD_JOBS, MAX_EXACT_JOBS, MAX_LOWER_BOUND_JOBS, MILP_BACKEND,
};
pub use model::{Job, Location, Matrix, ModelError, Problem, TimeWindow, VehicleType};
pub use rules::{BreakSpec, JobRules, Rules, VehicleRules};
pub use search::{
    schedule_route, solve, RecombineHook, RouteEval, RouteSchedule, ScheduledBreak, ScheduledStop,
    SearchProgress, SolveControl, SolveResult, SolverConfig,
};
pub use solomon::{
    parse_solomon, read_solomon, SolomonError, SolomonInstance, SCALE as SOLOMON_SCALE,
};
pub use solution::{Route, Solution};
pub use units::{Cost, Distance, Duration, Load};
