//! The transactional outbox of customer messages (RELIABILITY.md, Transactional outbox).
//!
//! Every customer message is a row of `outbox`, written by [`booking_event`] inside the
//! transaction of the booking change that causes it (`bookings.rs` calls it next to
//! the history row): a booking refused or rolled back leaves no message, a committed
//! one always has its message. The row holds the facts ([`Payload`]: the booking as it
//! was); the worker ([`crate::server::messages::worker`]) renders and delivers it later, at least once,
//! under the row's id as a stable event id.
//!
//! | booking change | rows |
//! |---|---|
//! | booked (confirmed at once), hold confirmed | `booking_confirmed` + one `booking_reminder` per offset |
//! | rescheduled (a confirmed booking) | `booking_rescheduled` + new reminders; the pending reminders are `superseded` |
//! | cancelled (a confirmed booking) | `booking_cancelled`; the pending reminders are `superseded` |
//! | cancelled equipment return | also `equipment_return_reminder` |
//! | held, hold rescheduled or cancelled | nothing (the customer was promised nothing yet) |
//! | visit events (visit_events.rs) | `technician_en_route`, `technician_running_late`, `survey_request` (delayed), `missed_visit`; completed/missed supersede the reminders |
//!
//! A kind listed in `Settings::message_kinds_off` is not written.
//!
//! A reminder is due at the window's start less each of `Settings::reminder_offsets_minutes`
//! (default the day before and three hours before); one already past is not written.
//! Bookings without a stored customer get no messages (the chat bot answers those
//! customers in the conversation).
//!
//! Also here: `GET /v1/outbox` for dispatchers.

use crate::server::catalog::settings::{settings_in, Settings};
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Query;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::pagination::{ListQuery, Page};
use crate::server::http::state::AppState;
use crate::server::messages::notify::templates::MessageKind;
use crate::server::messages::notify::Channel;
use crate::server::store::db::{on_pool, on_tx, Tx};
use crate::server::store::ids::new_id;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use despacho_solver::field::input::{JobInput, JobKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Default reminder offsets, minutes before the window's start: the day before and
/// three hours before.
pub const DEFAULT_REMINDER_OFFSETS_MINUTES: [u32; 2] = [1440, 180];
/// The longest reminder offset (a week) and the most reminders per booking.
pub const MAX_REMINDER_OFFSET_MINUTES: u32 = 7 * 1440;
pub const MAX_REMINDERS: usize = 5;
/// Default delay of the satisfaction survey after a completed visit, and the longest.
pub const DEFAULT_SURVEY_DELAY_MINUTES: u32 = 120;
pub const MAX_SURVEY_DELAY_MINUTES: u32 = 7 * 1440;

/// Status of an outbox row.
pub mod status {
    /// Waiting for its time (`next_attempt_at`) or for a worker.
    pub const PENDING: &str = "pending";
    /// The channel accepted it.
    pub const DELIVERED: &str = "delivered";
    /// Refused for good (a 4xx) or out of attempts: a dispatcher should look.
    pub const DEAD: &str = "dead";
    /// Not sent, on purpose: opted out, no channel, quiet hours until the visit…
    pub const SUPPRESSED: &str = "suppressed";
    /// A reminder of a booking since rescheduled or cancelled.
    pub const SUPERSEDED: &str = "superseded";
    pub const ALL: [&str; 5] = [PENDING, DELIVERED, DEAD, SUPPRESSED, SUPERSEDED];
}

/// The facts of a message, frozen when the change happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub booking: BookingFacts,
    /// The window before a reschedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_window: Option<UtcWindow>,
    /// For a reminder: how many minutes before the window's start it is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_minutes: Option<u32>,
    /// The calendar event's `SEQUENCE`: the number of reschedules so far.
    pub sequence: u32,
    /// The technician's ETA window (on the way, running late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<UtcWindow>,
    /// Why: running late (the technician's words), missed (`customer_absent`, `no_access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// After a missed visit: the first graded slots of a new search (as
    /// `POST /v1/slots/search` answers them, with their slot tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_slots: Option<Vec<serde_json::Value>>,
}

/// What a visit event adds to its message's [`Payload`].
#[derive(Clone, Debug, Default)]
pub struct EventFacts {
    pub eta: Option<UtcWindow>,
    pub reason: Option<String>,
    pub offered_slots: Option<Vec<serde_json::Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UtcWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A booking as a message describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BookingFacts {
    pub id: String,
    /// The customer's reference.
    pub token: String,
    pub date: NaiveDate,
    pub window: UtcWindow,
    pub duration_minutes: i32,
    pub kind: JobKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Problems of the message settings (reminder offsets, default language).
pub fn check_message_settings(settings: &Settings) -> Vec<ErrorDetail> {
    let mut details = Vec::new();
    let offsets = &settings.reminder_offsets_minutes;
    if offsets.len() > MAX_REMINDERS {
        details.push(ErrorDetail::new(
            "$.reminder_offsets_minutes",
            "too_many_reminders",
            format!(
                "{} reminders: at most {MAX_REMINDERS} per booking",
                offsets.len()
            ),
        ));
    }
    for (i, &m) in offsets.iter().enumerate() {
        if !(1..=MAX_REMINDER_OFFSET_MINUTES).contains(&m) {
            details.push(ErrorDetail::new(
                format!("$.reminder_offsets_minutes[{i}]"),
                "out_of_range",
                format!("{m}: a reminder is 1 to {MAX_REMINDER_OFFSET_MINUTES} minutes (a week) before the visit"),
            ));
        } else if offsets[..i].contains(&m) {
            details.push(ErrorDetail::new(
                format!("$.reminder_offsets_minutes[{i}]"),
                "duplicate_offset",
                format!("{m} minutes is listed twice"),
            ));
        }
    }
    for (i, kind) in settings.message_kinds_off.iter().enumerate() {
        if MessageKind::parse(kind).is_none() {
            let known: Vec<&str> = MessageKind::ALL.iter().map(|k| k.as_str()).collect();
            details.push(ErrorDetail::new(
                format!("$.message_kinds_off[{i}]"),
                "unknown_message_kind",
                format!("`{kind}`: use one of {}", known.join(", ")),
            ));
        }
    }
    if settings.survey_delay_minutes > MAX_SURVEY_DELAY_MINUTES {
        details.push(ErrorDetail::new(
            "$.survey_delay_minutes",
            "out_of_range",
            format!(
                "{}: the survey goes 0 to {MAX_SURVEY_DELAY_MINUTES} minutes (a week) after the visit",
                settings.survey_delay_minutes
            ),
        ));
    }
    let complete = crate::server::messages::notify::templates::builtin()
        .map(|t| t.complete_languages())
        .unwrap_or_default();
    if !complete.contains(&settings.default_language.as_str()) {
        details.push(ErrorDetail::new(
            "$.default_language",
            "unknown_language",
            format!(
                "`{}`: the default language must have every message template; use one of {}",
                settings.default_language,
                complete.join(", ")
            ),
        ));
    }
    details
}

/// What [`booking_event`] reads of the booking.
#[derive(sqlx::FromRow)]
struct BookingRow {
    id: String,
    token: String,
    customer_id: Option<String>,
    job: String,
    date: NaiveDate,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    duration_minutes: i32,
    /// The customer's preferred channel (NULL: none, or no customer).
    preferred_channel: Option<String>,
    /// How many times the booking was rescheduled.
    reschedules: i64,
}

/// The booking as its messages describe it, its customer and their channel: `None`
/// for a booking without a customer.
async fn message_base(
    tx: &mut Tx,
    booking_id: &str,
) -> Result<Option<(String, Channel, Payload)>, ApiError> {
    // The booking, its customer's channel and its reschedule count in one statement:
    // this runs inside every booking's write transaction.
    let row: Option<BookingRow> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT b.id, b.token, b.customer_id, b.job, b.date, b.window_start, \
             b.window_end, b.duration_minutes, c.preferred_channel, \
             (SELECT COUNT(*) FROM booking_history h \
              WHERE h.booking_id = b.id AND h.action = 'rescheduled') AS reschedules \
             FROM bookings b LEFT JOIN customers c ON c.id = b.customer_id WHERE b.id = $1",
        )
        .bind(booking_id)
        .fetch_optional(&mut *conn)
        .await
    })?;
    let row =
        row.ok_or_else(|| ApiError::Internal(format!("booking `{booking_id}` is not there")))?;
    let Some(customer_id) = row.customer_id.clone() else {
        return Ok(None);
    };
    let channel = row
        .preferred_channel
        .as_deref()
        .and_then(Channel::parse)
        .unwrap_or(Channel::Webhook);
    let job: JobInput = serde_json::from_str(&row.job).map_err(|e| {
        ApiError::Internal(format!("stored booking `{}` is not valid: {e}", row.id))
    })?;
    let payload = Payload {
        booking: BookingFacts {
            id: row.id.clone(),
            token: row.token.clone(),
            date: row.date,
            window: UtcWindow {
                start: row.window_start,
                end: row.window_end,
            },
            duration_minutes: row.duration_minutes,
            kind: job.kind,
            address: job.place.address.clone(),
        },
        previous_window: None,
        offset_minutes: None,
        sequence: u32::try_from(row.reschedules).unwrap_or(0),
        eta: None,
        reason: None,
        offered_slots: None,
    };
    Ok(Some((customer_id, channel, payload)))
}

/// Writes the messages of a change of booking `booking_id` into `tx`, the change's own
/// transaction (see the module's table): the `kind` message, due now, and for a
/// confirmation or a reschedule the reminders; for the cancellation of an equipment
/// return, the `equipment_return_reminder`. `previous` is the window before a
/// reschedule. Nothing for a booking without a customer, nor for a kind in the
/// settings' `message_kinds_off`.
pub async fn booking_event(
    tx: &mut Tx,
    booking_id: &str,
    kind: MessageKind,
    previous: Option<(DateTime<Utc>, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some((customer_id, channel, mut payload)) = message_base(tx, booking_id).await? else {
        return Ok(());
    };
    // A reschedule or a cancellation makes the reminders of the old window wrong. A
    // confirmation comes first: a new booking or a hold, which has no reminders yet.
    if kind != MessageKind::BookingConfirmed {
        supersede_reminders(tx, booking_id, kind.as_str()).await?;
    }
    payload.previous_window = previous.map(|(start, end)| UtcWindow { start, end });
    let settings = settings_in(tx).await?;
    let base = NewRow {
        booking_id,
        customer_id: &customer_id,
        channel,
        now,
    };
    // The messages of the change and its reminders in one statement (this runs inside
    // every booking's write transaction).
    let mut rows = Vec::new();
    if settings.sends(kind) {
        rows.push((kind, payload.clone(), now));
    }
    if kind == MessageKind::BookingCancelled
        && payload.booking.kind == JobKind::EquipmentReturn
        && settings.sends(MessageKind::EquipmentReturnReminder)
    {
        rows.push((MessageKind::EquipmentReturnReminder, payload.clone(), now));
    }
    if matches!(
        kind,
        MessageKind::BookingConfirmed | MessageKind::BookingRescheduled
    ) && settings.sends(MessageKind::BookingReminder)
    {
        for minutes in settings.reminder_offsets_minutes {
            let due = payload.booking.window.start - TimeDelta::minutes(i64::from(minutes));
            if due <= now {
                continue;
            }
            let reminder = Payload {
                previous_window: None,
                offset_minutes: Some(minutes),
                ..payload.clone()
            };
            rows.push((MessageKind::BookingReminder, reminder, due));
        }
    }
    base.insert_all(tx, &rows).await
}

/// Writes the `kind` message of a visit event (visit_events.rs) into `tx`, the event's
/// own transaction, due at `due`, with the event's `facts`. `false` when none was
/// written: a booking without a customer, or a kind turned off in the settings.
pub async fn visit_message(
    tx: &mut Tx,
    booking_id: &str,
    kind: MessageKind,
    facts: EventFacts,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    if !settings_in(tx).await?.sends(kind) {
        return Ok(false);
    }
    let Some((customer_id, channel, mut payload)) = message_base(tx, booking_id).await? else {
        return Ok(false);
    };
    payload.eta = facts.eta;
    payload.reason = facts.reason;
    payload.offered_slots = facts.offered_slots;
    NewRow {
        booking_id,
        customer_id: &customer_id,
        channel,
        now,
    }
    .insert_all(tx, &[(kind, payload, due)])
    .await?;
    Ok(true)
}

/// The columns every row of one change shares.
struct NewRow<'a> {
    booking_id: &'a str,
    customer_id: &'a str,
    channel: Channel,
    now: DateTime<Utc>,
}

impl NewRow<'_> {
    /// Inserts messages (kind, facts, due time) in one statement.
    async fn insert_all(
        &self,
        tx: &mut Tx,
        messages: &[(MessageKind, Payload, DateTime<Utc>)],
    ) -> Result<(), ApiError> {
        if messages.is_empty() {
            return Ok(());
        }
        // Per row: id, kind, payload, due; the shared columns are $1–$4.
        let values: Vec<String> = (0..messages.len())
            .map(|k| {
                let p = 5 + 4 * k;
                format!(
                    "(${}, ${}, $1, $2, $3, ${}, 'pending', 0, ${}, $4)",
                    p,
                    p + 1,
                    p + 2,
                    p + 3
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO outbox (id, kind, booking_id, customer_id, channel, payload, status, \
             attempts, next_attempt_at, created_at) VALUES {}",
            values.join(", ")
        );
        let mut rows = Vec::with_capacity(messages.len());
        for (kind, payload, due) in messages {
            let id = new_id::<12>("evt")?;
            let payload = serde_json::to_string(payload).expect("a payload serialises");
            rows.push((id, kind.as_str(), payload, *due));
        }
        on_tx!(tx, |conn| {
            let mut query = sqlx::query(&sql)
                .bind(self.booking_id)
                .bind(self.customer_id)
                .bind(self.channel.as_str())
                .bind(self.now);
            for (id, kind, payload, due) in &rows {
                query = query.bind(id).bind(*kind).bind(payload).bind(*due);
            }
            query.execute(&mut *conn).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

/// Marks the booking's pending reminders `superseded` (a worker holding one keeps its
/// lease, but can no longer mark it delivered).
pub async fn supersede_reminders(tx: &mut Tx, booking_id: &str, by: &str) -> Result<u64, ApiError> {
    const SQL: &str = "UPDATE outbox SET status = 'superseded', last_error = $2 \
        WHERE booking_id = $1 AND kind = 'booking_reminder' AND status = 'pending'";
    let reason = format!("superseded by {by}");
    Ok(on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(booking_id)
            .bind(&reason)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?)
}

// ---------------------------------------------------------------------------------------
// GET /v1/outbox

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/outbox", get(list))
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending`, `delivered`, `dead`, `suppressed` or `superseded`; all when absent.
    pub status: Option<String>,
    /// Only the messages of this booking.
    pub booking_id: Option<String>,
    /// Items per page, 1 to 1000; default 100.
    pub limit: Option<u32>,
    /// Return items whose id sorts after this one (the `next_after` of the previous page).
    pub after: Option<String>,
}

/// One customer message as dispatchers see it (without its text, rendered at delivery).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct OutboxMessage {
    /// The stable event id receivers deduplicate by.
    pub id: String,
    /// `booking_confirmed`, `booking_rescheduled`, `booking_cancelled`, `booking_reminder`,
    /// `technician_en_route`, `technician_running_late`, `survey_request`, `missed_visit`,
    /// `equipment_return_reminder`.
    pub kind: String,
    pub booking_id: String,
    pub customer_id: String,
    /// `webhook` or `email`: preferred when written, the one used once delivered.
    pub channel: String,
    pub status: String,
    /// Deliveries begun (a worker that died mid-delivery used one).
    pub attempts: i32,
    /// When it is (or was) due next.
    pub next_attempt_at: DateTime<Utc>,
    /// Why it is dead, suppressed, superseded, or why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxList {
    pub items: Vec<OutboxMessage>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

#[utoipa::path(get, path = "/v1/outbox", tag = "messages", security(("bearer" = [])),
    description = "Customer messages by id, a page at a time, optionally of one status or booking: what was delivered, what waits, what is dead and why. Roles: admin, dispatcher.",
    params(OutboxQuery),
    responses((status = 200, body = OutboxList),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<OutboxQuery>,
) -> Result<Json<OutboxList>, ApiError> {
    auth.require(roles::STAFF)?;
    let limit = ListQuery {
        limit: query.limit,
        after: None,
    }
    .limit()?;
    if let Some(s) = &query.status {
        if !status::ALL.contains(&s.as_str()) {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("status `{s}` is not one of {}", status::ALL.join(", ")),
                details: vec![ErrorDetail::new(
                    "status",
                    "unknown_status",
                    format!("use one of {}", status::ALL.join(", ")),
                )],
            });
        }
    }
    const SQL: &str = "SELECT id, kind, booking_id, customer_id, channel, status, attempts, \
        next_attempt_at, last_error, created_at, delivered_at FROM outbox \
        WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR booking_id = $2) \
        AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4";
    let rows: Vec<OutboxMessage> = on_pool!(&state.db, |pool| {
        sqlx::query_as(SQL)
            .bind(&query.status)
            .bind(&query.booking_id)
            .bind(&query.after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
    })?;
    let page = Page::new(rows, limit, |m| m.id.clone());
    Ok(Json(OutboxList {
        items: page.items,
        next_after: page.next_after,
    }))
}

/// The messages of every booking, for tests and tools: (id, kind, booking, status).
pub async fn rows(
    db: &crate::server::Db,
) -> Result<Vec<(String, String, String, String)>, ApiError> {
    Ok(on_pool!(db, |pool| {
        sqlx::query_as("SELECT id, kind, booking_id, status FROM outbox ORDER BY created_at, id")
            .fetch_all(pool)
            .await
    })?)
}
