//! The booking API's request and response bodies: what `bookings.rs` reads and writes,
//! and what `/openapi.json` describes.

use crate::server::http::error::ErrorObject;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use despacho_solver::field::input::{JobKind, Place};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Books the slot a token stands for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookInput {
    /// From `POST /v1/slots/search` (valid 15 minutes).
    pub slot_token: String,
    /// The customer visited (a stored customer id), if known.
    #[serde(default)]
    pub customer_id: Option<String>,
}

/// Holds the slot a token stands for, for `ttl_seconds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldInput {
    pub slot_token: String,
    #[serde(default)]
    pub customer_id: Option<String>,
    /// 1–1800, default 300.
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
}

/// Moves a booking to the slot a token stands for (searched for the same visit: kind,
/// place and duration).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleInput {
    pub slot_token: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchStatus {
    /// `slots` lists what can be promised (empty when every suitable day is full).
    Ok,
    /// The place is outside every suitable technician's territory.
    NotServed,
    /// Nobody has the skills the visit needs.
    NoSkilledTechnician,
    /// Nobody works on any of the days asked for (days in the past, or beyond the
    /// shifts planned so far): ask for later days.
    NoWorkingDay,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlotSearchAnswer {
    pub status: SearchStatus,
    /// Best first; present when `status` is `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<Slot>>,
}

/// A window that can be promised now.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Slot {
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
    /// 0–100: higher is a better fit (less extra driving and waiting, sooner).
    pub grade: u8,
    /// The slot token is refused after this.
    pub expires_at: DateTime<Utc>,
    /// Signed: pass it to `POST /v1/bookings`, `/v1/holds` or a reschedule.
    pub slot_token: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Window {
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Held,
    Confirmed,
    Cancelled,
    /// A hold past its `expires_at`.
    Expired,
}

/// A booking as staff and the chat bot see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Booking {
    pub id: String,
    /// The customer's unguessable reference (`GET /v1/bookings/by-token/{token}`).
    pub token: String,
    pub status: BookingStatus,
    pub customer_id: Option<String>,
    pub technician: String,
    pub date: NaiveDate,
    /// The promised window.
    pub window: Window,
    pub duration_minutes: i32,
    #[schema(value_type = String)]
    pub kind: JobKind,
    #[schema(value_type = Object)]
    pub place: Place,
    /// For a hold: when it lapses.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the visit is planned on its technician's day (inside `window`); absent
    /// once cancelled or lapsed. Moves as other visits are booked on that day.
    pub planned: Option<Window>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every change, oldest first (`GET /v1/bookings/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    /// `booked`, `held`, `confirmed`, `rescheduled`, `cancelled`.
    pub action: String,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// 409 `slot_unavailable`: the slot can no longer be promised; fresh alternatives.
#[derive(Debug, Serialize, ToSchema)]
pub struct Refusal {
    pub error: ErrorObject,
    pub alternatives: Vec<Slot>,
}
