//! The field-service model: technicians, shifts, breaks, skills, jobs with windows,
//! priorities and SLAs, real coordinates, and the plan with its explanations.
//!
//! It is a layer over the routing core: a [`input::ProblemInput`] (JSON) is validated,
//! travel matrices are computed, and it compiles into a core [`crate::Problem`] with
//! field rules; the core's plan is turned back into a [`plan`] with times and reasons.

pub mod area;
pub mod baseline;
pub mod check;
pub mod compile;
pub mod generate;
pub mod input;
pub mod plan;
pub mod reasons;
pub mod slots;
pub mod solve;
pub mod travel;
pub mod validate;
