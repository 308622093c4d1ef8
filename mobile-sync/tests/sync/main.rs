//! The sync protocol's integration tests, one binary: simulated flaky networks (`chaos`,
//! `flaky_network`), conflicts and crash recovery against the in-memory server.

mod chaos;
mod conflicts;
mod flaky_network;
mod recovery;
