//! The dispatchers' queue and no-show risks.
//!
//! What a person at the dispatch desk should look at, one row of `dispatcher_queue`
//! each, written once (a unique `dedup_key`):
//!
//! | kind | written by | once per |
//! |---|---|---|
//! | `customer_message` | a free-text chat reply (`POST /v1/chat/inbound`, [`crate::server::messages::inbound`]) | inbound message id |
//! | `no_show_risk` | the worker, from 18:00 the evening before (customer's time zone, else the operation's), for a confirmed visit the customer has not confirmed | booking and visit date |
//!
//! A customer confirmation older than the booking's last reschedule does not count: the
//! customer confirmed another time.
//!
//! - `GET /v1/dispatcher-queue?kind=&status=&limit=&after=` (admin, dispatcher): oldest
//!   first.
//! - `GET /v1/bookings/at-risk?date=YYYY-MM-DD` (admin, dispatcher): the day's
//!   confirmed visits not confirmed by the customer.

use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Query;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::pagination::{ListQuery, Page};
use crate::server::http::state::AppState;
use crate::server::store::db::{on_pool, on_tx, Db, Tx};
use crate::server::store::ids::new_id;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Kinds of entries.
pub mod kind {
    pub const CUSTOMER_MESSAGE: &str = "customer_message";
    pub const NO_SHOW_RISK: &str = "no_show_risk";
    pub const ALL: [&str; 2] = [CUSTOMER_MESSAGE, NO_SHOW_RISK];
}

/// Statuses of entries.
pub const STATUSES: [&str; 2] = ["open", "resolved"];

/// When, the evening before a visit, an unconfirmed visit is flagged (local time).
pub const NO_SHOW_CHECK_TIME: (u32, u32) = (18, 0);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/dispatcher-queue", get(list))
        .route("/v1/bookings/at-risk", get(at_risk))
}

/// One entry of the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct QueueEntry {
    /// Sorts by creation time.
    pub id: String,
    /// `customer_message` or `no_show_risk`.
    pub kind: String,
    pub booking_id: Option<String>,
    pub customer_id: Option<String>,
    /// The customer's words, or what the risk is.
    pub text: Option<String>,
    /// `open` or `resolved`.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    pub items: Vec<QueueEntry>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// A new entry (see [`enqueue`]).
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    pub kind: &'static str,
    pub booking_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub text: Option<&'a str>,
    /// The same key is enqueued once.
    pub dedup_key: String,
    pub now: DateTime<Utc>,
}

/// An id that sorts by `now` (microseconds), then at random.
fn entry_id(now: DateTime<Utc>) -> Result<String, ApiError> {
    let random = new_id::<6>("")?;
    Ok(format!(
        "dq_{:016x}{}",
        now.timestamp_micros().max(0),
        random.trim_start_matches('_')
    ))
}

/// Adds `entry` in `tx`, unless an entry with its `dedup_key` exists; whether it was added.
pub async fn enqueue(tx: &mut Tx, entry: &NewEntry<'_>) -> Result<bool, ApiError> {
    const SQL: &str = "INSERT INTO dispatcher_queue (id, kind, booking_id, customer_id, text, \
        status, dedup_key, created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7) \
        ON CONFLICT (dedup_key) DO NOTHING";
    let id = entry_id(entry.now)?;
    let added = on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(&id)
            .bind(entry.kind)
            .bind(entry.booking_id)
            .bind(entry.customer_id)
            .bind(entry.text)
            .bind(&entry.dedup_key)
            .bind(entry.now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(added == 1)
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// `customer_message` or `no_show_risk`; all when absent.
    pub kind: Option<String>,
    /// `open` or `resolved`; all when absent.
    pub status: Option<String>,
    /// Items per page, 1 to 1000; default 100.
    pub limit: Option<u32>,
    /// Return items whose id sorts after this one (the `next_after` of the previous page).
    pub after: Option<String>,
}

fn one_of(name: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::BadRequest {
            code: "invalid_query",
            message: format!("{name} `{v}` is not one of {}", allowed.join(", ")),
            details: vec![ErrorDetail::new(
                name,
                format!("unknown_{name}"),
                format!("use one of {}", allowed.join(", ")),
            )],
        }),
        _ => Ok(()),
    }
}

#[utoipa::path(get, path = "/v1/dispatcher-queue", tag = "messages", security(("bearer" = [])),
    description = "What dispatchers should look at, oldest first: customers' free-text chat replies and visits at risk of a no-show. Roles: admin, dispatcher.",
    params(QueueQuery),
    responses((status = 200, body = QueueList),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<QueueQuery>,
) -> Result<Json<QueueList>, ApiError> {
    auth.require(roles::STAFF)?;
    let limit = ListQuery {
        limit: query.limit,
        after: None,
    }
    .limit()?;
    one_of("kind", query.kind.as_deref(), &kind::ALL)?;
    one_of("status", query.status.as_deref(), &STATUSES)?;
    const SQL: &str = "SELECT id, kind, booking_id, customer_id, text, status, created_at \
        FROM dispatcher_queue WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR status = $2) \
        AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4";
    let rows: Vec<QueueEntry> = on_pool!(&state.db, |pool| {
        sqlx::query_as(SQL)
            .bind(&query.kind)
            .bind(&query.status)
            .bind(&query.after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
    })?;
    let page = Page::new(rows, limit, |e| e.id.clone());
    Ok(Json(QueueList {
        items: page.items,
        next_after: page.next_after,
    }))
}

// ---------------------------------------------------------------------------------------
// No-show risks

/// Confirmed visits the customer has not confirmed (or confirmed before the last
/// reschedule). `$1`, `$2`: the range of `window_start`, or of `date` (see the callers).
fn unconfirmed_sql(range_column: &str) -> String {
    format!(
        "SELECT b.id, b.token, b.customer_id, b.technician_id, b.date, b.window_start, \
         b.window_end, b.customer_confirmed_at, c.name AS customer_name, c.phone, c.time_zone \
         FROM bookings b LEFT JOIN customers c ON c.id = b.customer_id \
         WHERE b.status = 'confirmed' AND b.{range_column} >= $1 AND b.{range_column} <= $2 \
         AND (b.customer_confirmed_at IS NULL OR EXISTS (SELECT 1 FROM booking_history h \
           WHERE h.booking_id = b.id AND h.action = 'rescheduled' \
           AND h.at > b.customer_confirmed_at)) \
         ORDER BY b.window_start, b.id"
    )
}

#[derive(Clone, Debug, sqlx::FromRow)]
struct Unconfirmed {
    id: String,
    token: String,
    customer_id: Option<String>,
    technician_id: String,
    date: NaiveDate,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    customer_confirmed_at: Option<DateTime<Utc>>,
    customer_name: Option<String>,
    phone: Option<String>,
    time_zone: Option<String>,
}

/// A visit at risk of a no-show.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AtRiskBooking {
    pub booking_id: String,
    /// The customer's reference.
    pub token: String,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub phone: Option<String>,
    pub technician: String,
    pub date: NaiveDate,
    pub window: crate::server::messages::outbox::UtcWindow,
    /// `never_confirmed`, or `rescheduled_since_confirmation` (the customer confirmed
    /// the earlier time).
    pub reason: String,
    pub customer_confirmed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AtRiskList {
    pub date: NaiveDate,
    pub items: Vec<AtRiskBooking>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtRiskQuery {
    /// The visits' day, `YYYY-MM-DD` (the operation's local date).
    pub date: Option<String>,
}

#[utoipa::path(get, path = "/v1/bookings/at-risk", tag = "booking", security(("bearer" = [])),
    description = "The day's confirmed visits that the customer has not confirmed through the chat (or confirmed before a reschedule), earliest first. Roles: admin, dispatcher.",
    params(AtRiskQuery),
    responses((status = 200, body = AtRiskList),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn at_risk(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<AtRiskQuery>,
) -> Result<Json<AtRiskList>, ApiError> {
    auth.require(roles::STAFF)?;
    let bad = |message: String| ApiError::BadRequest {
        code: "invalid_query",
        message: message.clone(),
        details: vec![ErrorDetail::new("date", "invalid_date", message)],
    };
    let date = match query.date.as_deref().map(str::trim) {
        None | Some("") => return Err(bad("date is required: ?date=YYYY-MM-DD".to_owned())),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|e| bad(format!("date `{d}` is not a date YYYY-MM-DD: {e}")))?,
    };
    let sql = unconfirmed_sql("date");
    let rows: Vec<Unconfirmed> = on_pool!(&state.db, |pool| {
        sqlx::query_as(&sql)
            .bind(date)
            .bind(date)
            .fetch_all(pool)
            .await
    })?;
    let items = rows
        .into_iter()
        .map(|r| AtRiskBooking {
            reason: if r.customer_confirmed_at.is_some() {
                "rescheduled_since_confirmation"
            } else {
                "never_confirmed"
            }
            .to_owned(),
            booking_id: r.id,
            token: r.token,
            customer_id: r.customer_id,
            customer_name: r.customer_name,
            phone: r.phone,
            technician: r.technician_id,
            date: r.date,
            window: crate::server::messages::outbox::UtcWindow {
                start: r.window_start,
                end: r.window_end,
            },
            customer_confirmed_at: r.customer_confirmed_at,
        })
        .collect();
    Ok(Json(AtRiskList { date, items }))
}

/// When the unconfirmed visit starting at `start` is flagged: 18:00 on the day before,
/// in `tz` (the first valid time after, across a DST gap).
pub fn flag_time(start: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let day = start
        .with_timezone(&tz)
        .date_naive()
        .checked_sub_days(Days::new(1))?;
    let (h, m) = NO_SHOW_CHECK_TIME;
    let at = day.and_time(NaiveTime::from_hms_opt(h, m, 0)?);
    tz.from_local_datetime(&at)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(at + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// Enqueues a `no_show_risk` entry, once, for every confirmed visit not confirmed by
/// the customer whose evening-before check time has come at `now` and that has not
/// begun; the number added. Safe to run from any number of workers.
pub async fn flag_no_show_risks(db: &Db, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let settings = db.settings().await?;
    let operation_tz: Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    // 18:00 the day before is at most about 44 hours before a visit in any zone.
    let sql = unconfirmed_sql("window_start");
    let horizon = now + TimeDelta::hours(48);
    let rows: Vec<Unconfirmed> = on_pool!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(now)
            .bind(horizon)
            .fetch_all(pool)
            .await
    })?;
    let due: Vec<(Unconfirmed, Tz)> = rows
        .into_iter()
        .filter(|r| r.window_start > now)
        .filter_map(|r| {
            let tz = r
                .time_zone
                .as_deref()
                .and_then(|z| z.parse().ok())
                .unwrap_or(operation_tz);
            let at = flag_time(r.window_start, tz)?;
            (now >= at).then_some((r, tz))
        })
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let added = db
        .write(move |tx| {
            let due = due.clone();
            Box::pin(async move {
                let mut added = 0;
                for (r, tz) in &due {
                    let local = |t: DateTime<Utc>| t.with_timezone(tz);
                    let (start, end) = (local(r.window_start), local(r.window_end));
                    let text = format!(
                        "the customer has not confirmed the visit of {} {}–{} ({}), reference {}",
                        start.format("%Y-%m-%d"),
                        start.format("%H:%M"),
                        end.format("%H:%M"),
                        tz.name(),
                        r.token
                    );
                    let entry = NewEntry {
                        kind: kind::NO_SHOW_RISK,
                        booking_id: Some(&r.id),
                        customer_id: r.customer_id.as_deref(),
                        text: Some(&text),
                        dedup_key: format!("no_show_risk:{}:{}", r.id, start.date_naive()),
                        now,
                    };
                    if enqueue(tx, &entry).await? {
                        added += 1;
                    }
                }
                Ok(added)
            })
        })
        .await?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_is_flagged_at_six_in_the_evening_before_in_its_time_zone() {
        let sp: Tz = chrono_tz::America::Sao_Paulo;
        // 10:00 on March 12 in São Paulo (UTC−3) → 18:00 on March 11 there, 21:00 UTC.
        let start = Utc.with_ymd_and_hms(2026, 3, 12, 13, 0, 0).unwrap();
        assert_eq!(
            flag_time(start, sp),
            Some(Utc.with_ymd_and_hms(2026, 3, 11, 21, 0, 0).unwrap())
        );
        // A visit at 01:00 local is flagged at 18:00 local the day before, 7 hours ahead.
        let early = Utc.with_ymd_and_hms(2026, 3, 12, 4, 0, 0).unwrap();
        assert_eq!(
            flag_time(early, sp),
            Some(Utc.with_ymd_and_hms(2026, 3, 11, 21, 0, 0).unwrap())
        );
        // Lisbon in summer (UTC+1).
        let lisbon: Tz = chrono_tz::Europe::Lisbon;
        let start = Utc.with_ymd_and_hms(2026, 7, 2, 9, 0, 0).unwrap();
        assert_eq!(
            flag_time(start, lisbon),
            Some(Utc.with_ymd_and_hms(2026, 7, 1, 17, 0, 0).unwrap())
        );
    }

    #[test]
    fn entry_ids_sort_by_time() {
        let a = entry_id(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()).unwrap();
        let b = entry_id(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 1).unwrap()).unwrap();
        assert!(a < b, "{a} {b}");
        assert!(a.starts_with("dq_") && a.len() == 3 + 16 + 12, "{a}");
    }
}
