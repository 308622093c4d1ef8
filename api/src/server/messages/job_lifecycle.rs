//! A job's life reaching its customer: the status facts a technician's phone pushes
//! for a job linked to a booking (`jobs.booking_id`) become that booking's visit events
//! through [`record_visit_event`], in the push's transaction, so the customer gets the
//! same messages as through `POST /v1/bookings/{id}/events`:
//!
//! | status fact | visit event | customer message |
//! |---|---|---|
//! | `en_route` (optional `eta_start`/`eta_end`, ms since 1970 UTC) | `en_route` with that ETA, else the next [`DEFAULT_ETA_MINUTES`] | on the way |
//! | `arrived` | `arrived` | none |
//! | `in_progress` | none | none |
//! | `completed` | `completed` | satisfaction survey |
//! | `failed` `customer_absent` / `no_access` | `missed` with new slots | missed-visit follow-up |
//! | `failed` `needs_escalation` / `wrong_equipment` | none: flag `visit_failed` for the dispatchers | none |
//!
//! Exactly once: only a fact recorded for the first time gets here (a resent push or
//! fact is acknowledged without it), and an event the booking already has (a dispatcher
//! reported it through the API) is not recorded again. A visit event the booking
//! refuses (cancelled booking, visit closed, a bad ETA) never refuses the fact: the fact
//! is kept and the refusal becomes a `visit_event_refused` flag.

use crate::server::http::error::ApiError;
use crate::server::http::state::AppState;
use crate::server::messages::outbox::UtcWindow;
use crate::server::messages::visit_events::{
    offered_slots, record_visit_event, MissedReason, Reported, VisitEvent,
};
use crate::server::store::db::{on_tx, Tx};
use chrono::{DateTime, TimeDelta, Utc};
use despacho_mobile_sync::{FailureReason, JobStatus, Mutation};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The ETA announced for an `en_route` fact that carries none.
pub const DEFAULT_ETA_MINUTES: i64 = 60;

/// A new status fact of a job linked to a booking.
#[derive(Clone, Debug)]
pub struct StatusFact<'a> {
    pub fact: &'a str,
    pub booking: &'a str,
    pub status: JobStatus,
    pub reason: Option<FailureReason>,
    /// The mutation's arguments (for the ETA of `en_route`).
    pub args: &'a Value,
    /// Who reported it, for `visit_events.recorded_by`: `sync:<device>`.
    pub by: String,
}

/// Missed-visit follow-up slots, searched before the push's transaction (a search
/// reads its own snapshot): booking id → slots.
pub type MissedSlots = BTreeMap<String, Vec<Value>>;

/// The ETA of an `en_route` fact: `Ok(None)` when it has none.
fn eta_of(args: &Value) -> Result<Option<UtcWindow>, String> {
    let (start, end) = (&args["eta_start"], &args["eta_end"]);
    if start.is_null() && end.is_null() {
        return Ok(None);
    }
    let time = |v: &Value| v.as_i64().and_then(DateTime::<Utc>::from_timestamp_millis);
    match (time(start), time(end)) {
        (Some(start), Some(end)) => Ok(Some(UtcWindow { start, end })),
        _ => Err("eta_start and eta_end are both milliseconds since 1970 UTC".to_owned()),
    }
}

fn missed_reason(reason: Option<FailureReason>) -> Option<MissedReason> {
    match reason {
        Some(FailureReason::CustomerAbsent) => Some(MissedReason::CustomerAbsent),
        Some(FailureReason::NoAccess) => Some(MissedReason::NoAccess),
        _ => None,
    }
}

/// Records the visit event `s` stands for (see the module's table) in `tx` and returns
/// the flags to raise on the job.
pub async fn status_reached(
    tx: &mut Tx,
    s: &StatusFact<'_>,
    slots: &MissedSlots,
    at: DateTime<Utc>,
) -> Result<Vec<Value>, ApiError> {
    let refused = |kind: &str, code: &str, message: String| {
        vec![
            json!({"flag": "visit_event_refused", "fact": s.fact, "booking": s.booking,
                    "event": kind, "code": code, "message": message}),
        ]
    };
    let event = match s.status {
        JobStatus::Assigned | JobStatus::InProgress => return Ok(Vec::new()),
        JobStatus::EnRoute => match eta_of(s.args) {
            Ok(eta) => VisitEvent::EnRoute {
                eta: eta.unwrap_or(UtcWindow {
                    start: at,
                    end: at + TimeDelta::minutes(DEFAULT_ETA_MINUTES),
                }),
            },
            Err(message) => return Ok(refused("en_route", "invalid_eta", message)),
        },
        JobStatus::Arrived => VisitEvent::Arrived,
        JobStatus::Completed => VisitEvent::Completed,
        JobStatus::Failed => match missed_reason(s.reason) {
            Some(reason) => VisitEvent::Missed {
                reason,
                offered_slots: slots.get(s.booking).cloned().unwrap_or_default(),
            },
            None => {
                return Ok(vec![json!({"flag": "visit_failed", "fact": s.fact,
                    "booking": s.booking, "reason": s.reason})])
            }
        },
    };
    // The customer was told already (a dispatcher reported this through the API).
    if !matches!(event, VisitEvent::EnRoute { .. }) {
        let told: Option<String> = on_tx!(tx, |conn| {
            sqlx::query_scalar("SELECT id FROM visit_events WHERE booking_id = $1 AND kind = $2")
                .bind(s.booking)
                .bind(event.kind())
                .fetch_optional(&mut *conn)
                .await
        })?;
        if told.is_some() {
            return Ok(Vec::new());
        }
    }
    let kind = event.kind();
    let reported = Reported {
        event,
        by: s.by.clone(),
    };
    match record_visit_event(tx, s.booking, &reported, at).await {
        Ok(_) => Ok(Vec::new()),
        // Checks of the booking, made before it wrote anything: the fact stays.
        Err(
            e @ (ApiError::Validation { .. }
            | ApiError::Conflict { .. }
            | ApiError::NotFound { .. }),
        ) => {
            let code = e.status().1;
            let message = match &e {
                ApiError::Validation { details, .. } => details
                    .iter()
                    .map(|d| format!("{}: {}", d.path, d.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            Ok(refused(kind, code, message))
        }
        Err(other) => Err(other),
    }
}

/// Searches the follow-up slots of the missed visits `mutations` may report (jobs
/// failed for `customer_absent` or `no_access` and linked to a booking), before the
/// push's transaction. A search that fails offers none: the message still goes.
pub async fn missed_slots(state: &AppState, mutations: &[Mutation]) -> MissedSlots {
    let mut slots = MissedSlots::new();
    for m in mutations {
        let a = &m.args;
        let missed = m.name == "job_status"
            && a["status"] == "failed"
            && matches!(a["reason"].as_str(), Some("customer_absent" | "no_access"));
        let Some(job) = a["job"].as_str().filter(|_| missed) else {
            continue;
        };
        let booking: Result<Option<Option<String>>, sqlx::Error> =
            crate::server::store::db::on_pool!(&state.db, |pool| {
                sqlx::query_scalar("SELECT booking_id FROM jobs WHERE id = $1")
                    .bind(job)
                    .fetch_optional(pool)
                    .await
            });
        let Ok(Some(Some(booking))) = booking else {
            continue;
        };
        if slots.contains_key(&booking) {
            continue;
        }
        match offered_slots(state, &booking).await {
            Ok(found) => {
                slots.insert(booking, found);
            }
            Err(e) => tracing::warn!(%booking, error = %e, "no follow-up slots for a missed visit"),
        }
    }
    slots
}
