//! What time it is: the system clock, or a fixed one in tests.

use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A source of "now", shared by the background workers (outbox, optimisation runs).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system() -> Clock {
    Arc::new(crate::server::db::now)
}
