//! The bottom layer: the database (pool, migrations, write transactions), ids and the clock.
//! Imports nothing of the server.

pub mod clock;
pub mod db;
pub mod ids;
