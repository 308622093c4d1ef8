//! # despacho-phone
//!
//! The reference phone client of Despacho's mobile sync (issue 8): the sans-IO state
//! machine of `despacho-mobile-sync` driven over HTTP, with its durable mutation queue,
//! pull cookie and job list kept in a local SQLite file, so a phone killed at any
//! moment resumes with nothing lost and nothing applied twice. `despacho phone …` is a
//! command-line technician built on it; the benchmarks and tests use it as the phone.
//!
//! ```no_run
//! # async fn demo() -> Result<(), despacho_phone::PhoneError> {
//! use despacho_phone::{JobStatus, Phone, Server};
//! let mut phone = Phone::open("phone.db".as_ref(), "ana-phone-1").await?;
//! let server = Server::new("http://127.0.0.1:8080", "technician-api-key")?;
//! phone.sync(&server).await?; // first sync: the technician's jobs
//! phone.status("J-12", JobStatus::EnRoute, None).await?; // on disk before it returns
//! phone.note("J-12", "gate code 1234").await?;
//! phone.sync(&server).await?; // offline? the error says so; sync again later
//! # Ok(()) }
//! ```
//!
//! - [`Phone`]: open a store, record facts (checked as the server will parse them),
//!   push, pull, sync, the technician's view of their jobs;
//! - [`Store`]: the SQLite file (one row per queued mutation and per scope entry);
//! - [`Server`]: `POST /v1/sync/push` and `/v1/sync/pull` with a technician's key.

mod error;
mod phone;
mod server;
mod store;

pub use despacho_mobile_sync::{FailureReason, JobStatus, PullOutcome};
pub use error::{PhoneError, TransportError};
pub use phone::{Phone, SyncReport};
pub use server::Server;
pub use store::Store;
