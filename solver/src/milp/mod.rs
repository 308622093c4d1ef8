//! Exact models, solved as (mixed-integer) linear programs with [`good_lp`].
//!
//! The search is a heuristic; these models are where an exact answer is cheap
//! enough to be worth it:
//!
//! - [`recombine`] (set partitioning): picks the cheapest set of routes from a
//!   pool of routes the search has seen, so that every job is served exactly once;
//! - [`solve_exact`] and [`lower_bound`]: a two-index arc formulation that proves
//!   optimality for tiny problems, and its LP relaxation as a bound;
//! - [`solve_exact_field`] and [`field_lower_bound`]: the same for tiny field-service
//!   problems (technicians with their own shifts, skills, service times, optional jobs);
//! - [`time_fixed_route`]: start times for a route whose order a dispatcher fixed,
//!   with soft windows — violations are reported, never an error.
//!
//! The backend is chosen at compile time: the pure-Rust `microlp` by default (no
//! system libraries), HiGHS with the crate feature `highs`. See `docs/milp.md`.

mod backend;
mod error;
mod exact;
mod exact_field;
mod fixed_order;
mod set_partitioning;

pub use backend::BACKEND_NAME as MILP_BACKEND;
pub use error::MilpError;
pub use exact::{lower_bound, solve_exact, ExactResult, MAX_EXACT_JOBS, MAX_LOWER_BOUND_JOBS};
pub use exact_field::{
    field_lower_bound, solve_exact_field, ExactFieldResult, MAX_EXACT_FIELD_JOBS,
};
pub use fixed_order::{
    time_fixed_route, time_fixed_route_weighted, BreakTiming, FixedRouteTiming, StopTiming,
    TimingViolation, TimingWeights,
};
pub use set_partitioning::{recombine, PoolRoute, Recombination, RecombinationOutcome};
