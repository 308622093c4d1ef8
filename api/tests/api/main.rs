//! The service's integration tests, one binary: each file is one concern (auth, bookings,
//! sync, crashes, …) and most run on SQLite and PostgreSQL (`both_backends!`). One binary
//! links the service once instead of once per file (disk and link time on 2 cores).
//! Run one file: `cargo test -p despacho-api --test api server_input::`.

#[macro_use]
mod common;

mod field_cli;
mod layers;
mod phone_cli;
mod phone_client;
mod server_auth;
mod server_booking_invariants;
mod server_bookings;
mod server_crash;
mod server_dispatch;
mod server_email;
mod server_field_facts;
mod server_inbound;
mod server_input;
mod server_limits;
mod server_ops;
mod server_outbox;
mod server_plan_runs;
mod server_resources;
mod server_sync;
mod server_territories;
mod server_visit_events;
mod solve_cli;
mod sync_crash;
mod worker_crash;
