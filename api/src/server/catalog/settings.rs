//! The operation's settings: its time zone and how travel is estimated. Technicians'
//! shifts are local times in this zone, and every place is checked against the travel
//! mode (a `matrix` mode needs a `location_id` on each place).
//!
//! Stored as rows of the `settings` table (`time_zone`, `travel`, `repair_reserve`,
//! `reminder_offsets_minutes`, `default_language`), each value JSON.

use crate::server::catalog::validation::check_settings;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Body;
use crate::server::http::error::ApiError;
use crate::server::http::solver_schemas::TravelOptionsDoc;
use crate::server::http::state::AppState;
use crate::server::store::db::{on_pool, on_tx, Db, Tx};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use despacho_solver::field::travel::TravelOptions;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The time zone of an operation that never set one.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/settings", get(read).put(replace))
}

/// Operation-wide settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// IANA time zone of the operation, e.g. "America/Sao_Paulo". Default "UTC".
    pub time_zone: String,
    /// How travel between places is estimated; default great-circle distance at urban speed.
    #[serde(default)]
    #[schema(value_type = TravelOptionsDoc)]
    pub travel: TravelOptions,
    /// Share of each technician-day kept for repairs (SLA work), 0 to less than 1:
    /// slot search offers other visits only while they fill at most the rest of the
    /// shift. Default 0.1.
    #[serde(default = "default_repair_reserve")]
    pub repair_reserve: f64,
    /// When customers are reminded of a confirmed visit: minutes before the start of its
    /// window, each 1 to 10080 (a week), at most 5. Default `[1440, 180]` (the day
    /// before and three hours before); `[]` sends no reminders.
    #[serde(default = "default_reminder_offsets")]
    pub reminder_offsets_minutes: Vec<u32>,
    /// Language of the messages of customers without one, and of every message whose
    /// template is missing in the customer's language: `en`, `es` or `pt-BR`. Default `en`.
    #[serde(default = "default_language")]
    pub default_language: String,
    /// Message kinds not sent at all (no outbox row is written): any of
    /// `booking_confirmed`, `booking_rescheduled`, `booking_cancelled`,
    /// `booking_reminder`, `technician_en_route`, `technician_running_late`,
    /// `survey_request`, `missed_visit`, `equipment_return_reminder`. Default `[]`.
    #[serde(default)]
    pub message_kinds_off: Vec<String>,
    /// How long after a completed visit the satisfaction survey is sent, minutes,
    /// 0 to 10080 (a week). Default 120.
    #[serde(default = "default_survey_delay")]
    pub survey_delay_minutes: u32,
}

fn default_survey_delay() -> u32 {
    crate::server::messages::outbox::DEFAULT_SURVEY_DELAY_MINUTES
}

impl Settings {
    /// Whether messages of `kind` are written (not in `message_kinds_off`).
    pub fn sends(&self, kind: crate::server::messages::notify::templates::MessageKind) -> bool {
        !self.message_kinds_off.iter().any(|k| k == kind.as_str())
    }
}

fn default_repair_reserve() -> f64 {
    crate::server::booking::bookings::DEFAULT_REPAIR_RESERVE
}

fn default_reminder_offsets() -> Vec<u32> {
    crate::server::messages::outbox::DEFAULT_REMINDER_OFFSETS_MINUTES.to_vec()
}

fn default_language() -> String {
    crate::server::messages::notify::DEFAULT_LANGUAGE.to_owned()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            travel: TravelOptions::default(),
            repair_reserve: default_repair_reserve(),
            reminder_offsets_minutes: default_reminder_offsets(),
            default_language: default_language(),
            message_kinds_off: Vec::new(),
            survey_delay_minutes: default_survey_delay(),
        }
    }
}

#[utoipa::path(get, path = "/v1/settings", tag = "settings", security(("bearer" = [])),
    description = "The operation's time zone, travel options and repair reserve. Roles: admin, dispatcher, chatbot.",
    responses((status = 200, body = Settings),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn read(State(state): State<AppState>, auth: Auth) -> Result<Json<Settings>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    Ok(Json(state.db.settings().await?))
}

#[utoipa::path(put, path = "/v1/settings", tag = "settings", security(("bearer" = [])),
    description = "Replaces the settings. Roles: admin, dispatcher.",
    request_body = Settings,
    responses((status = 200, body = Settings),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<Settings>, ApiError> {
    auth.require(roles::STAFF)?;
    let settings: Settings = body.json_object()?;
    let problems = check_settings(&settings);
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let stored = settings.clone();
    state
        .db
        .write(move |tx| {
            let settings = stored.clone();
            Box::pin(async move { Ok(put_settings(tx, &settings).await?) })
        })
        .await?;
    tracing::info!(time_zone = %settings.time_zone, by = %auth.key_id, "settings replaced");
    Ok(Json(settings))
}

// ---------------------------------------------------------------------------------------
// Store

const SELECT: &str = "SELECT key, value FROM settings \
    WHERE key IN ('time_zone', 'travel', 'repair_reserve', 'reminder_offsets_minutes', \
    'default_language', 'message_kinds_off', 'survey_delay_minutes')";
const UPSERT: &str = "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                      ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

fn from_rows(rows: Vec<(String, String)>) -> Result<Settings, ApiError> {
    let mut settings = Settings::default();
    for (key, value) in rows {
        let bad = |e: serde_json::Error| {
            ApiError::Internal(format!("stored setting `{key}` is not valid: {e}"))
        };
        match key.as_str() {
            "time_zone" => settings.time_zone = serde_json::from_str(&value).map_err(bad)?,
            "travel" => settings.travel = serde_json::from_str(&value).map_err(bad)?,
            "repair_reserve" => {
                settings.repair_reserve = serde_json::from_str(&value).map_err(bad)?
            }
            "reminder_offsets_minutes" => {
                settings.reminder_offsets_minutes = serde_json::from_str(&value).map_err(bad)?
            }
            "default_language" => {
                settings.default_language = serde_json::from_str(&value).map_err(bad)?
            }
            "message_kinds_off" => {
                settings.message_kinds_off = serde_json::from_str(&value).map_err(bad)?
            }
            "survey_delay_minutes" => {
                settings.survey_delay_minutes = serde_json::from_str(&value).map_err(bad)?
            }
            _ => {}
        }
    }
    Ok(settings)
}

impl Db {
    /// The stored settings (defaults for those never set).
    pub async fn settings(&self) -> Result<Settings, ApiError> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as(SELECT).fetch_all(pool).await)?;
        from_rows(rows)
    }
}

/// The settings as seen by transaction `tx`.
pub async fn settings_in(tx: &mut Tx) -> Result<Settings, ApiError> {
    let rows: Vec<(String, String)> = on_tx!(tx, |conn| {
        sqlx::query_as(SELECT).fetch_all(&mut *conn).await
    })?;
    from_rows(rows)
}

/// Stores `settings` (every key).
pub async fn put_settings(tx: &mut Tx, settings: &Settings) -> Result<(), sqlx::Error> {
    let now = crate::server::store::db::now();
    let time_zone = serde_json::to_string(&settings.time_zone).expect("a string serialises");
    let travel = serde_json::to_string(&settings.travel).expect("travel options serialise");
    let reserve = serde_json::to_string(&settings.repair_reserve).expect("a number serialises");
    let offsets =
        serde_json::to_string(&settings.reminder_offsets_minutes).expect("numbers serialise");
    let language = serde_json::to_string(&settings.default_language).expect("a string serialises");
    let kinds_off = serde_json::to_string(&settings.message_kinds_off).expect("strings serialise");
    let survey_delay =
        serde_json::to_string(&settings.survey_delay_minutes).expect("a number serialises");
    for (key, value) in [
        ("time_zone", time_zone),
        ("travel", travel),
        ("repair_reserve", reserve),
        ("reminder_offsets_minutes", offsets),
        ("default_language", language),
        ("message_kinds_off", kinds_off),
        ("survey_delay_minutes", survey_delay),
    ] {
        on_tx!(tx, |conn| {
            sqlx::query(UPSERT)
                .bind(key)
                .bind(&value)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// The value stored under `key` in `settings`, or `fresh` stored there first when the
/// key is new (a secret made at first use). Concurrent first uses agree: the first
/// insert wins and everyone reads it back.
pub async fn stored_or_insert(
    db: &crate::server::store::db::Db,
    key: &'static str,
    fresh: String,
) -> Result<String, ApiError> {
    const SELECT: &str = "SELECT value FROM settings WHERE key = $1";
    const INSERT: &str = "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                          ON CONFLICT (key) DO NOTHING";
    let found: Option<String> = crate::server::store::db::on_pool!(db, |pool| {
        sqlx::query_scalar(SELECT)
            .bind(key)
            .fetch_optional(pool)
            .await
    })?;
    if let Some(value) = found {
        return Ok(value);
    }
    db.write(move |tx| {
        let fresh = fresh.clone();
        Box::pin(async move {
            on_tx!(tx, |conn| {
                sqlx::query(INSERT)
                    .bind(key)
                    .bind(&fresh)
                    .bind(crate::server::store::db::now())
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            let value: String = on_tx!(tx, |conn| {
                sqlx::query_scalar(SELECT)
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await
            })?;
            Ok(value)
        })
    })
    .await
}
