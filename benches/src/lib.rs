//! Shared pieces of Despacho's benchmark runners: the best-known-solution table,
//! instance names (class, natural order, discovery), result rows with their table and
//! summary, and where result files go.
//!
//! The runners live in `src/bin/`; see `vrptw` for the VRPTW literature sets.

pub mod bks;
pub mod names;
pub mod output;
pub mod report;
pub mod service;

use std::path::PathBuf;

/// The default benchmark data folder: `shared/benchmarks` next to the workspace
/// (`<workspace>/../shared/benchmarks`), independent of the current directory.
pub fn default_data_dir() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/benchmarks");
    path.canonicalize().unwrap_or(path)
}

/// The default folder for result files: `benches/results` in the workspace.
pub fn default_results_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results")
}
