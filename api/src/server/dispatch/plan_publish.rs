//! Handing a published plan to the technicians' phones (docs/dispatch.md, "Publishing").
//!
//! Runs inside the publishing transaction, so the phones never see a plan that was not
//! published, nor half of one:
//!
//! - each visit of the published plan is assigned to its route's technician with
//!   [`push_pull::assign_in`] (the job leaves the former technician's sync scope and enters
//!   the new one's, exactly as `POST /v1/jobs/{id}/assign` does);
//! - a job of the previously published version that the new one no longer plans is
//!   unassigned (it leaves the phone it was on);
//! - each technician with a route gets `plan/<date>` in their scope: the version and the
//!   ordered visits with planned start and end; a technician who had a route in the
//!   previous published version and has none now gets it deleted.
//!
//! Visits of bookings that are not rows of `jobs` have no sync record and are skipped.

use crate::server::dispatch::plan_store::StoredPlan;
use crate::server::http::error::ApiError;
use crate::server::sync::push_pull::{self, commit_writes, Writes};
use chrono::{DateTime, NaiveDate, Utc};
use despacho_mobile_sync::TechnicianId;
use serde_json::json;
use std::collections::BTreeSet;

/// The scope key of a technician's published day.
pub fn plan_key(date: NaiveDate) -> String {
    format!("plan/{date}")
}

/// Hands `published` to the phones; `previous` is the version published before it.
pub async fn hand_to_phones(
    tx: &mut crate::server::store::db::Tx,
    published: &StoredPlan,
    previous: Option<&StoredPlan>,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let mut planned = BTreeSet::new();
    for route in &published.document.routes {
        for stop in &route.stops {
            planned.insert(stop.job.clone());
            assign(tx, &stop.job, Some(&route.technician), at).await?;
        }
    }
    let mut had_route = BTreeSet::new();
    if let Some(previous) = previous {
        for route in &previous.document.routes {
            had_route.insert(route.technician.clone());
            for stop in &route.stops {
                if !planned.contains(&stop.job) {
                    assign(tx, &stop.job, None, at).await?;
                }
            }
        }
    }
    let mut writes = Writes::new();
    let key = plan_key(published.date);
    for route in &published.document.routes {
        had_route.remove(&route.technician);
        let stops: Vec<_> = route
            .stops
            .iter()
            .enumerate()
            .map(|(position, s)| {
                json!({"position": position, "job": s.job, "start": s.start, "end": s.end})
            })
            .collect();
        writes.put(
            &TechnicianId::from(route.technician.as_str()),
            key.clone(),
            Some(json!({
                "date": published.date,
                "version": published.version,
                "plan_id": published.id,
                "stops": stops,
            })),
        );
    }
    for technician in had_route {
        writes.put(&TechnicianId::from(technician.as_str()), key.clone(), None);
    }
    commit_writes(tx, writes).await?;
    Ok(())
}

/// Assigns `job` unless it is not a row of `jobs` (a booking's visit).
async fn assign(
    tx: &mut crate::server::store::db::Tx,
    job: &str,
    technician: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    match push_pull::assign_in(tx, job, technician, at).await {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
