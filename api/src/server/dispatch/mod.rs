//! The dispatcher's day plans: optimisation runs, versions, manual changes with
//! feasibility, publishing (whole day or one territory), KPIs, and the `/dispatch` web
//! page with its optional tile server (docs/dispatch.md).

pub mod day_plans;
pub mod kpis;
pub mod map_tiles;
pub mod page;
pub mod plan_changes;
pub mod plan_eval;
pub mod plan_publish;
pub mod plan_runs;
pub mod plan_store;
pub mod plans;
pub mod territory_publish;
