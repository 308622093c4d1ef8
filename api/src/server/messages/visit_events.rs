//! Visit events: what happens on the way to and at a booked visit, reported by the
//! technician (their own bookings), a dispatcher or an admin with
//! `POST /v1/bookings/{id}/events`, and later by the mobile sync, both through
//! [`record_visit_event`]. Each event is a `visit_events` row, and its customer message
//! is an outbox row written in the same transaction (RELIABILITY.md, Transactional
//! outbox):
//!
//! | event | message |
//! |---|---|
//! | `en_route {eta_start, eta_end}` | `technician_en_route` with the ETA window; `technician_running_late` when an ETA was already announced and this one differs |
//! | `running_late {eta_start, eta_end, reason?}` | `technician_running_late` with the new ETA |
//! | `arrived` | none |
//! | `completed` | `survey_request` (CSAT 1–5, NPS 0–10), due `survey_delay_minutes` later; pending reminders superseded |
//! | `missed {reason: customer_absent \| no_access}` | `missed_visit` with the first 3 graded slots of a new search; pending reminders superseded |
//!
//! Order: `en_route` and `running_late` before `arrived`; `arrived` once; `completed`
//! or `missed` at any point before, once, closing the visit (409 `visit_closed` after).
//! Only a confirmed booking has events (409 `booking_cancelled`,
//! `booking_not_confirmed`). An ETA window must end after it starts, last at most 8
//! hours, not have ended and start within a day.

use crate::server::catalog::settings::settings_in;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Body;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::messages::notify::templates::MessageKind;
use crate::server::messages::outbox::{self, EventFacts, UtcWindow};
use crate::server::store::db::{now, on_pool, on_tx, Tx};
use crate::server::store::ids::new_id;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Slots offered by the missed-visit follow-up.
pub const MISSED_VISIT_SLOTS: usize = 3;
/// The longest ETA window, and how far ahead it may start.
pub const MAX_ETA_WINDOW_MINUTES: i64 = 8 * 60;
pub const MAX_ETA_AHEAD_MINUTES: i64 = 24 * 60;
/// How long ago an ETA window may have started (clocks of phones drift).
pub const ETA_START_GRACE_MINUTES: i64 = 15;
/// Running-late reasons, at most this many characters.
pub const MAX_REASON_CHARS: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/bookings/{id}/events", post(record))
}

/// Why a visit was missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedReason {
    CustomerAbsent,
    NoAccess,
}

impl MissedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedReason::CustomerAbsent => "customer_absent",
            MissedReason::NoAccess => "no_access",
        }
    }

    fn parse(text: &str) -> Option<MissedReason> {
        [MissedReason::CustomerAbsent, MissedReason::NoAccess]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// One visit event.
#[derive(Clone, Debug, PartialEq)]
pub enum VisitEvent {
    EnRoute {
        eta: UtcWindow,
    },
    RunningLate {
        eta: UtcWindow,
        reason: Option<String>,
    },
    Arrived,
    Completed,
    Missed {
        reason: MissedReason,
        /// The slots the follow-up offers: the caller searches them before the
        /// transaction ([`offered_slots`]); empty offers none.
        offered_slots: Vec<Value>,
    },
}

impl VisitEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            VisitEvent::EnRoute { .. } => "en_route",
            VisitEvent::RunningLate { .. } => "running_late",
            VisitEvent::Arrived => "arrived",
            VisitEvent::Completed => "completed",
            VisitEvent::Missed { .. } => "missed",
        }
    }

    fn eta(&self) -> Option<UtcWindow> {
        match self {
            VisitEvent::EnRoute { eta } | VisitEvent::RunningLate { eta, .. } => Some(*eta),
            _ => None,
        }
    }

    fn reason(&self) -> Option<String> {
        match self {
            VisitEvent::RunningLate { reason, .. } => reason.clone(),
            VisitEvent::Missed { reason, .. } => Some(reason.as_str().to_owned()),
            _ => None,
        }
    }
}

/// An event as reported: what and by whom (an API key id, or the device's).
#[derive(Clone, Debug, PartialEq)]
pub struct Reported {
    pub event: VisitEvent,
    pub by: String,
}

/// The body of `POST /v1/bookings/{id}/events`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// `en_route`, `running_late`, `arrived`, `completed` or `missed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `en_route`, `running_late`: the ETA window (RFC 3339 with offset).
    #[schema(value_type = Option<String>)]
    pub eta_start: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub eta_end: Option<Value>,
    /// `running_late`: optional words (at most 500 characters); `missed`:
    /// `customer_absent` or `no_access` (required).
    #[schema(value_type = Option<String>)]
    pub reason: Option<Value>,
}

impl EventInput {
    /// The event, or 422 with every problem by path. ETA times are checked against
    /// `now` by [`record_visit_event`].
    pub fn parse(self) -> Result<VisitEvent, ApiError> {
        let mut problems = Vec::new();
        let time = |v: &Option<Value>, path: &str, problems: &mut Vec<ErrorDetail>| match v {
            None | Some(Value::Null) => {
                problems.push(ErrorDetail::new(
                    path,
                    "required",
                    format!("{} needs `{}`", self.kind, &path[2..]),
                ));
                None
            }
            Some(Value::String(s)) => match DateTime::<FixedOffset>::parse_from_rfc3339(s) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    problems.push(ErrorDetail::new(
                        path,
                        "invalid_time",
                        format!("`{s}` is not an RFC 3339 time with an offset: {e}"),
                    ));
                    None
                }
            },
            Some(_) => {
                problems.push(ErrorDetail::new(
                    path,
                    "invalid_type",
                    "expected an RFC 3339 time string",
                ));
                None
            }
        };
        let unexpected = |v: &Option<Value>, path: &str, problems: &mut Vec<ErrorDetail>| {
            if v.as_ref().is_some_and(|v| !v.is_null()) {
                problems.push(ErrorDetail::new(
                    path,
                    "unexpected_field",
                    format!("`{}` does not go with a {} event", &path[2..], self.kind),
                ));
            }
        };
        let event = match self.kind.as_str() {
            "en_route" | "running_late" => {
                let start = time(&self.eta_start, "$.eta_start", &mut problems);
                let end = time(&self.eta_end, "$.eta_end", &mut problems);
                let reason = if self.kind == "running_late" {
                    match &self.reason {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s))
                            if !s.trim().is_empty()
                                && s.chars().count() <= MAX_REASON_CHARS
                                && !s.chars().any(|c| c.is_control() && c != '\n') =>
                        {
                            Some(s.trim().to_owned())
                        }
                        Some(_) => {
                            problems.push(ErrorDetail::new(
                                "$.reason",
                                "invalid_reason",
                                format!("a reason is 1 to {MAX_REASON_CHARS} characters of text"),
                            ));
                            None
                        }
                    }
                } else {
                    unexpected(&self.reason, "$.reason", &mut problems);
                    None
                };
                match (start, end) {
                    (Some(start), Some(end)) if problems.is_empty() => {
                        let eta = UtcWindow { start, end };
                        if self.kind == "en_route" {
                            VisitEvent::EnRoute { eta }
                        } else {
                            VisitEvent::RunningLate { eta, reason }
                        }
                    }
                    _ => return Err(ApiError::validation(problems)),
                }
            }
            "arrived" | "completed" | "missed" => {
                unexpected(&self.eta_start, "$.eta_start", &mut problems);
                unexpected(&self.eta_end, "$.eta_end", &mut problems);
                let event = match self.kind.as_str() {
                    "arrived" => {
                        unexpected(&self.reason, "$.reason", &mut problems);
                        VisitEvent::Arrived
                    }
                    "completed" => {
                        unexpected(&self.reason, "$.reason", &mut problems);
                        VisitEvent::Completed
                    }
                    _ => match self
                        .reason
                        .as_ref()
                        .and_then(Value::as_str)
                        .and_then(MissedReason::parse)
                    {
                        Some(reason) => VisitEvent::Missed {
                            reason,
                            offered_slots: Vec::new(),
                        },
                        None => {
                            problems.push(ErrorDetail::new(
                                "$.reason",
                                "invalid_reason",
                                "a missed visit needs `reason`: customer_absent or no_access",
                            ));
                            VisitEvent::Arrived
                        }
                    },
                };
                if !problems.is_empty() {
                    return Err(ApiError::validation(problems));
                }
                event
            }
            other => {
                return Err(ApiError::validation(vec![ErrorDetail::new(
                    "$.type",
                    "unknown_event_type",
                    format!("`{other}`: use en_route, running_late, arrived, completed or missed"),
                )]))
            }
        };
        Ok(event)
    }
}

/// A recorded event, as answered.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordedEvent {
    pub id: String,
    pub booking_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub eta_start: Option<DateTime<Utc>>,
    pub eta_end: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// The customer messages written (outbox kinds): none for a booking without a
    /// customer, a kind turned off, or an ETA repeated unchanged.
    pub messages: Vec<String>,
    /// The reminders still pending that this event made pointless.
    pub reminders_superseded: u64,
}

/// An earlier event of the visit: its kind and ETA window.
type EarlierEvent = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Problems of an ETA window at `now` (by path).
fn check_eta(eta: &UtcWindow, now: DateTime<Utc>) -> Vec<ErrorDetail> {
    let mut problems = Vec::new();
    if eta.end <= eta.start {
        problems.push(ErrorDetail::new(
            "$.eta_end",
            "end_before_start",
            "the ETA window must end after it starts",
        ));
    } else if eta.end - eta.start > TimeDelta::minutes(MAX_ETA_WINDOW_MINUTES) {
        problems.push(ErrorDetail::new(
            "$.eta_end",
            "window_too_long",
            format!(
                "an ETA window lasts at most {} hours",
                MAX_ETA_WINDOW_MINUTES / 60
            ),
        ));
    }
    if eta.end <= now {
        problems.push(ErrorDetail::new(
            "$.eta_end",
            "in_the_past",
            "the ETA window has already ended",
        ));
    } else if eta.start < now - TimeDelta::minutes(ETA_START_GRACE_MINUTES) {
        problems.push(ErrorDetail::new(
            "$.eta_start",
            "in_the_past",
            format!(
                "the ETA window must not start more than {ETA_START_GRACE_MINUTES} minutes ago"
            ),
        ));
    }
    if eta.start > now + TimeDelta::minutes(MAX_ETA_AHEAD_MINUTES) {
        problems.push(ErrorDetail::new(
            "$.eta_start",
            "too_far_ahead",
            "an ETA window starts within a day",
        ));
    }
    problems
}

/// Records `reported` for booking `booking_id` at `now` in `tx`, with its customer
/// message (see the module's table), after checking the booking's status, the order of
/// its events and the ETA window. The HTTP route and the mobile sync call it.
pub async fn record_visit_event(
    tx: &mut Tx,
    booking_id: &str,
    reported: &Reported,
    now: DateTime<Utc>,
) -> Result<RecordedEvent, ApiError> {
    let event = &reported.event;
    if let Some(eta) = event.eta() {
        let problems = check_eta(&eta, now);
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }
    }
    let lock = match tx.backend() {
        crate::server::Backend::Postgres => "FOR UPDATE",
        crate::server::Backend::Sqlite => "",
    };
    let sql = format!("SELECT status FROM bookings WHERE id = $1 {lock}");
    let status: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar(&sql)
            .bind(booking_id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let status = status.ok_or_else(|| ApiError::not_found("booking", booking_id))?;
    match status.as_str() {
        "confirmed" => {}
        "cancelled" => {
            return Err(ApiError::conflict(
                "booking_cancelled",
                format!("booking `{booking_id}` is cancelled: it has no visit to report on"),
            ))
        }
        _ => {
            return Err(ApiError::conflict(
                "booking_not_confirmed",
                format!("booking `{booking_id}` is a hold, not a confirmed visit"),
            ))
        }
    }
    // The visit so far.
    let earlier: Vec<EarlierEvent> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT kind, eta_start, eta_end FROM visit_events WHERE booking_id = $1 \
             ORDER BY at, id",
        )
        .bind(booking_id)
        .fetch_all(&mut *conn)
        .await
    })?;
    if let Some((closed, ..)) = earlier
        .iter()
        .find(|(k, ..)| k == "completed" || k == "missed")
    {
        return Err(ApiError::conflict(
            "visit_closed",
            format!("the visit of booking `{booking_id}` is already {closed}: no event may follow"),
        ));
    }
    let arrived = earlier.iter().any(|(k, ..)| k == "arrived");
    if arrived
        && matches!(
            event,
            VisitEvent::EnRoute { .. } | VisitEvent::RunningLate { .. } | VisitEvent::Arrived
        )
    {
        return Err(ApiError::conflict(
            "visit_event_out_of_order",
            format!(
                "the technician has arrived at booking `{booking_id}`: {} cannot follow; report completed or missed",
                event.kind()
            ),
        ));
    }
    let last_eta = earlier.iter().rev().find_map(|(_, s, e)| match (s, e) {
        (Some(start), Some(end)) => Some(UtcWindow {
            start: *start,
            end: *end,
        }),
        _ => None,
    });
    let id = new_id::<12>("vev")?;
    // Whole seconds: what both databases store alike, so a repeated ETA compares equal.
    let eta = event.eta().map(|w| UtcWindow {
        start: w.start.trunc_subsecs(0),
        end: w.end.trunc_subsecs(0),
    });
    let reason = event.reason();
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO visit_events (id, booking_id, kind, eta_start, eta_end, reason, \
             recorded_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(booking_id)
        .bind(event.kind())
        .bind(eta.map(|w| w.start))
        .bind(eta.map(|w| w.end))
        .bind(&reason)
        .bind(&reported.by)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    let facts = EventFacts {
        eta,
        reason: reason.clone(),
        offered_slots: None,
    };
    let mut messages = Vec::new();
    let mut superseded = 0;
    let (message, due) = match event {
        VisitEvent::EnRoute { .. } => match last_eta {
            None => (Some(MessageKind::TechnicianEnRoute), now),
            Some(before) if Some(before) != eta => (Some(MessageKind::TechnicianRunningLate), now),
            Some(_) => (None, now),
        },
        VisitEvent::RunningLate { .. } => (Some(MessageKind::TechnicianRunningLate), now),
        VisitEvent::Arrived => (None, now),
        VisitEvent::Completed => {
            let delay = settings_in(tx).await?.survey_delay_minutes;
            (
                Some(MessageKind::SurveyRequest),
                now + TimeDelta::minutes(i64::from(delay)),
            )
        }
        VisitEvent::Missed { .. } => (Some(MessageKind::MissedVisit), now),
    };
    if matches!(event, VisitEvent::Completed | VisitEvent::Missed { .. }) {
        superseded =
            outbox::supersede_reminders(tx, booking_id, &format!("visit {}", event.kind())).await?;
    }
    if let Some(kind) = message {
        let facts = match event {
            VisitEvent::Missed { offered_slots, .. } => EventFacts {
                offered_slots: Some(offered_slots.clone()),
                ..facts
            },
            _ => facts,
        };
        if outbox::visit_message(tx, booking_id, kind, facts, due, now).await? {
            messages.push(kind.as_str().to_owned());
        }
    }
    Ok(RecordedEvent {
        id,
        booking_id: booking_id.to_owned(),
        kind: event.kind().to_owned(),
        eta_start: eta.map(|w| w.start),
        eta_end: eta.map(|w| w.end),
        reason,
        at: now,
        messages,
        reminders_superseded: superseded,
    })
}

/// The first [`MISSED_VISIT_SLOTS`] graded slots for a new visit of booking `id` (the
/// search of an inbound `reschedule`); none when the search finds none.
pub async fn offered_slots(state: &AppState, id: &str) -> Result<Vec<Value>, ApiError> {
    let found = crate::server::messages::inbound::new_slots_for(state, id).await?;
    Ok(found["slots"]
        .as_array()
        .map(|s| s.iter().take(MISSED_VISIT_SLOTS).cloned().collect())
        .unwrap_or_default())
}

#[utoipa::path(post, path = "/v1/bookings/{id}/events", tag = "booking", security(("bearer" = [])),
    description = "Reports a visit event: en_route {eta_start, eta_end}, running_late {eta_start, eta_end, reason?}, arrived, completed, missed {reason: customer_absent | no_access}. Writes the customer's message in the same transaction: on the way, running late (or a changed ETA), the satisfaction survey after completion (delayed by survey_delay_minutes), the missed-visit follow-up with 3 new slots. Roles: admin, dispatcher, technician (their own bookings).",
    params(("id" = String, Path)),
    request_body = EventInput,
    responses((status = 201, body = RecordedEvent), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 409, body = crate::server::http::error::ErrorBody, description = "`booking_cancelled`, `booking_not_confirmed`, `visit_closed`, `visit_event_out_of_order`"),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path")))]
pub async fn record(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<RecordedEvent>), ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let input: EventInput = body.json_object()?;
    let mut event = input.parse()?;
    // A technician reports on their own visits only; others' do not exist for them.
    let technician: Option<String> = on_pool!(&state.db, |pool| {
        sqlx::query_scalar("SELECT technician_id FROM bookings WHERE id = $1")
            .bind(&id)
            .fetch_optional(pool)
            .await
    })?;
    let technician = technician.ok_or_else(|| ApiError::not_found("booking", &id))?;
    if let Some(own) = auth.technician_scope()? {
        if own != technician {
            return Err(ApiError::not_found("booking", &id));
        }
    }
    // The follow-up's slots come from a search of its own snapshot, before the write.
    if let VisitEvent::Missed {
        offered_slots: slots,
        ..
    } = &mut event
    {
        *slots = offered_slots(&state, &id).await?;
    }
    let reported = Reported {
        event,
        by: auth.key_id.clone(),
    };
    let recorded = state
        .db
        .write(move |tx| {
            let (id, reported) = (id.clone(), reported.clone());
            Box::pin(async move { record_visit_event(tx, &id, &reported, now()).await })
        })
        .await?;
    tracing::info!(booking = %recorded.booking_id, event = %recorded.kind, by = %auth.key_id, "visit event");
    Ok((StatusCode::CREATED, Json(recorded)))
}
