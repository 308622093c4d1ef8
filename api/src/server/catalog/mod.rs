//! What the operation is made of: settings, API keys, technicians, customers, jobs
//! (and their cancellation and import), territories, the upsell catalogue and customers'
//! equipment; the solver's validation applied to single records; the parsed operation
//! the slot search reads.

pub mod api_keys;
pub mod customers;
pub mod equipment;
pub mod import;
pub mod job_cancel;
pub mod jobs;
pub mod operation_cache;
pub mod settings;
pub mod technicians;
pub mod territories;
pub mod upsells;
pub mod validation;
