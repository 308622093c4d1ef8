//! The solver's integration tests, one binary (one link instead of one per file): the
//! routing core (`solve`, `rules`), the MILP models (`milp`) and the field layer
//! (`field_*`). Run one file: `cargo test -p despacho-solver --test solver field_slots::`.

mod common;

mod field_check;
mod field_compile;
mod field_exact;
mod field_generate;
mod field_reasons;
mod field_scenarios;
mod field_slots;
mod field_travel;
mod milp;
mod rules;
mod solve;
