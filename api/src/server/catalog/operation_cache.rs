//! The operation a slot search reads whole — the settings and every technician with
//! their shifts — kept parsed in memory between requests.
//!
//! Parsing 100 technicians' JSON takes about 4 ms, a slot search's whole budget is
//! 25 ms, and technicians change a few times a day. The database keeps a counter,
//! `catalog_revision`, that triggers bump on every change to `technicians` or
//! `settings` (migration 0006, whoever writes: this node, another node, an operator's
//! hand-made UPDATE). A search reads the counter first, in its own read transaction,
//! and re-reads the operation only when the counter differs from the parsed copy's.
//! Read in that order, a copy is never labelled newer than its data: a change that
//! commits between the two reads only causes one more re-read later.

use crate::server::catalog::settings::settings_in;
use crate::server::http::error::ApiError;
use crate::server::store::db::{on_tx, Tx};
use despacho_solver::field::input::Technician;
use despacho_solver::field::slots::Operation;
use std::sync::{Arc, Mutex};

/// The last parsed operation and the catalog revision it was read at.
#[derive(Debug, Default)]
pub struct OperationCache {
    parsed: Mutex<Option<(i64, Arc<Operation>)>>,
}

impl OperationCache {
    /// The whole operation as of `tx`'s snapshot: the parsed copy when the catalog has
    /// not changed since it was read, else read and parsed again (and kept).
    pub async fn operation(&self, tx: &mut Tx) -> Result<Arc<Operation>, ApiError> {
        let revision = catalog_revision(tx).await?;
        if let Some((parsed_at, op)) = &*self.lock() {
            if *parsed_at == revision {
                return Ok(Arc::clone(op));
            }
        }
        let op = Arc::new(operation_in(tx, None).await?);
        let mut slot = self.lock();
        // A slower request that read an older revision does not replace a newer copy.
        if slot.as_ref().is_none_or(|(kept, _)| *kept <= revision) {
            *slot = Some((revision, Arc::clone(&op)));
        }
        Ok(op)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(i64, Arc<Operation>)>> {
        // The guarded value is replaced whole, so a panic elsewhere cannot leave it torn.
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The counter the triggers of migration 0006 bump on each change to the catalog.
async fn catalog_revision(tx: &mut Tx) -> Result<i64, ApiError> {
    let revision: i64 = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT revision FROM catalog_revision WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
    })?;
    Ok(revision)
}

/// The operation read from the database: the settings and the technicians (one when
/// `technician` is given, a booking needs no other), parsed.
pub async fn operation_in(tx: &mut Tx, technician: Option<&str>) -> Result<Operation, ApiError> {
    let settings = settings_in(tx).await?;
    let data: Vec<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT data FROM technicians WHERE ($1 IS NULL OR id = $1) ORDER BY id")
            .bind(technician)
            .fetch_all(&mut *conn)
            .await
    })?;
    let technicians = data
        .iter()
        .map(|d| serde_json::from_str::<Technician>(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Internal(format!("a stored technician is not valid: {e}")))?;
    Ok(Operation {
        time_zone: settings.time_zone,
        travel: settings.travel,
        technicians,
        repair_reserve: settings.repair_reserve,
    })
}
