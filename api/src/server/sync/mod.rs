//! Technicians' phones: push and pull of the sync protocol over SQL ([`push_pull`]) and
//! the dispatchers' flag queue (docs/sync.md).

pub mod push_pull;
pub mod sync_flags;
