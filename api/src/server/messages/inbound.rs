//! Customers' chat replies: `POST /v1/chat/inbound`, called by the chat platform
//! integration (WhatsApp, Messenger, web chat…) with what a customer answered.
//!
//! **Signed, not keyed.** The platform signs the raw body like the service signs its
//! webhooks ([`crate::server::messages::notify::webhook`]): `Despacho-Timestamp: <unix seconds>` and
//! `Despacho-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, with the
//! secret of one of its active webhook endpoints (`POST /v1/webhook-endpoints`). A
//! missing or wrong signature, or a timestamp more than 5 minutes from the server's
//! clock (a replayed capture), is a 401 `invalid_signature`.
//!
//! **Once per message.** The platform's `message_id` keys `inbound_messages`: the same
//! message again (a retry) gets the stored answer (header `Despacho-Replayed: true`);
//! the same id with another body is a 422. Confirmations, survey answers and free
//! text are written in one transaction with that row; a cancel goes through the
//! booking's own cancel (history and customer message written there), which is itself
//! idempotent, and its answer is stored after.
//!
//! **Intents**, on the booking named by its customer-facing reference (`token`):
//!
//! | intent | what happens | `result` |
//! |---|---|---|
//! | `confirm` | `customer_confirmed_at` of a confirmed booking is set (history `customer_confirmed`) | `customer_confirmed_at` |
//! | `reschedule` | a slot search for the same visit (kind, place, duration, window length), 7 days from 3 days before it (not before today) | the search's `status` and graded `slots`; the bot then calls `POST /v1/bookings/{id}/reschedule` |
//! | `cancel` | the booking is cancelled (`POST /v1/bookings/{id}/cancel`) | `booking` |
//! | `survey` | `survey` `csat` (`score` 1–5) or `nps` (0–10) stored in `survey_responses` | `response_id` |
//! | `text` | the words go to the dispatchers' queue ([`crate::server::messages::dispatcher_queue`]) | `queue_entry_id` |

use crate::server::booking::booking_views::SearchStatus;
use crate::server::http::auth::{Auth, Role};
use crate::server::http::body::{Body, MediaType};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::messages::dispatcher_queue::{self, NewEntry};
use crate::server::messages::notify::webhook::{
    self, SIGNATURE_HEADER, TIMESTAMP_HEADER, TOLERANCE_SECONDS,
};
use crate::server::store::db::{now, on_pool, on_tx, Db, Tx};
use crate::server::store::ids::{hex, new_id};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use chrono_tz::Tz;
use despacho_solver::field::input::JobInput;
use despacho_solver::field::slots::SlotRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Longest free-text reply kept, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest message id and booking reference.
pub const MAX_ID_CHARS: usize = 200;
/// Days searched for new slots on a reschedule request, from this many days before
/// the visit (customers move a visit to a nearby day).
pub const RESCHEDULE_SEARCH_DAYS: u32 = 7;
pub const RESCHEDULE_DAYS_BEFORE: u64 = 3;
/// The header set on a replayed answer.
pub const REPLAYED_HEADER: &str = "Despacho-Replayed";

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/chat/inbound", post(receive))
}

/// What the customer wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Confirm,
    Reschedule,
    Cancel,
    Survey,
    Text,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Confirm => "confirm",
            Intent::Reschedule => "reschedule",
            Intent::Cancel => "cancel",
            Intent::Survey => "survey",
            Intent::Text => "text",
        }
    }
}

/// Which survey a score answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Survey {
    /// Customer satisfaction, 1 to 5.
    Csat,
    /// Net promoter score, 0 to 10.
    Nps,
}

impl Survey {
    pub fn as_str(self) -> &'static str {
        match self {
            Survey::Csat => "csat",
            Survey::Nps => "nps",
        }
    }

    pub fn range(self) -> std::ops::RangeInclusive<i64> {
        match self {
            Survey::Csat => 1..=5,
            Survey::Nps => 0..=10,
        }
    }
}

/// A customer's reply, as the chat platform understood it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundMessage {
    /// The platform's id of the message (1 to 200 characters): each is handled once.
    pub message_id: String,
    /// The booking's customer-facing reference (its `token`).
    pub booking_reference: String,
    pub intent: Intent,
    /// With `survey`: which survey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<Survey>,
    /// With `survey`: the score (CSAT 1–5, NPS 0–10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<i64>,
    /// With `text`: the customer's words (1 to 4000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// When the customer sent it (the platform's clock); kept for reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<FixedOffset>>,
}

/// What the reply asks for, checked.
#[derive(Clone, Debug, PartialEq)]
enum Action {
    Confirm,
    Reschedule,
    Cancel,
    Survey(Survey, i64),
    Text(String),
}

/// The answer to a handled message.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InboundAnswer {
    pub message_id: String,
    pub intent: Intent,
    pub booking_id: String,
    pub booking_reference: String,
    /// What the intent did (see the endpoint's description).
    #[schema(value_type = Object)]
    pub result: Value,
}

fn clean_id(value: &str, path: &str, problems: &mut Vec<ErrorDetail>) -> String {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > MAX_ID_CHARS || v.chars().any(char::is_control) {
        problems.push(ErrorDetail::new(
            path,
            "invalid_value",
            format!("must be 1 to {MAX_ID_CHARS} characters without control characters"),
        ));
    }
    v.to_owned()
}

impl InboundMessage {
    /// The message with trimmed ids and its action, or every problem with its path.
    fn parse(mut self) -> Result<(InboundMessage, Action), ApiError> {
        let mut problems = Vec::new();
        self.message_id = clean_id(&self.message_id, "$.message_id", &mut problems);
        self.booking_reference = clean_id(
            &self.booking_reference,
            "$.booking_reference",
            &mut problems,
        );
        let not_for = |field: &str, present: bool, problems: &mut Vec<ErrorDetail>| {
            if present {
                problems.push(ErrorDetail::new(
                    format!("$.{field}"),
                    "unexpected_field",
                    format!(
                        "`{field}` does not go with intent `{}`",
                        self.intent.as_str()
                    ),
                ));
            }
        };
        let (survey, score, text) = (self.survey, self.score, self.text.clone());
        match self.intent {
            Intent::Survey => {}
            _ => {
                not_for("survey", survey.is_some(), &mut problems);
                not_for("score", score.is_some(), &mut problems);
            }
        }
        if self.intent != Intent::Text {
            not_for("text", text.is_some(), &mut problems);
        }
        let action = match self.intent {
            Intent::Confirm => Some(Action::Confirm),
            Intent::Reschedule => Some(Action::Reschedule),
            Intent::Cancel => Some(Action::Cancel),
            Intent::Survey => {
                if survey.is_none() {
                    problems.push(ErrorDetail::new(
                        "$.survey",
                        "missing_field",
                        "a survey answer names its survey: `csat` or `nps`",
                    ));
                }
                if score.is_none() {
                    problems.push(ErrorDetail::new(
                        "$.score",
                        "missing_field",
                        "a survey answer has a `score`",
                    ));
                }
                match (survey, score) {
                    (Some(s), Some(n)) if s.range().contains(&n) => Some(Action::Survey(s, n)),
                    (Some(s), Some(n)) => {
                        let r = s.range();
                        problems.push(ErrorDetail::new(
                            "$.score",
                            "out_of_range",
                            format!(
                                "{n}: a {} score is {} to {}",
                                s.as_str().to_uppercase(),
                                r.start(),
                                r.end()
                            ),
                        ));
                        None
                    }
                    _ => None,
                }
            }
            Intent::Text => match text.as_deref().map(str::trim) {
                None => {
                    problems.push(ErrorDetail::new(
                        "$.text",
                        "missing_field",
                        "a `text` reply has the customer's words in `text`",
                    ));
                    None
                }
                Some(t)
                    if t.is_empty()
                        || t.chars().count() > MAX_TEXT_CHARS
                        || t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') =>
                {
                    problems.push(ErrorDetail::new(
                        "$.text",
                        "invalid_text",
                        format!(
                            "the text must have 1 to {MAX_TEXT_CHARS} characters, without \
                             control characters other than new lines and tabs"
                        ),
                    ));
                    None
                }
                Some(t) => {
                    self.text = Some(t.to_owned());
                    Some(Action::Text(t.to_owned()))
                }
            },
        };
        match action {
            Some(a) if problems.is_empty() => Ok((self, a)),
            _ => Err(ApiError::validation(problems)),
        }
    }

    /// SHA-256 of the message's canonical JSON (replays compare it).
    fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a message serialises");
        hex(&Sha256::digest(&canonical))
    }
}

/// 401 unless `body` is signed at a fresh timestamp with an active endpoint's secret.
async fn check_signature(db: &Db, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
    };
    let Some(timestamp) = header(TIMESTAMP_HEADER) else {
        return Err(ApiError::BadSignature(format!(
            "the {TIMESTAMP_HEADER} header is missing: send the Unix time the body was signed at"
        )));
    };
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return Err(ApiError::BadSignature(format!(
            "{TIMESTAMP_HEADER} `{timestamp}` is not Unix seconds"
        )));
    };
    let now = Utc::now().timestamp();
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(ApiError::BadSignature(format!(
            "{TIMESTAMP_HEADER} {timestamp} is more than {TOLERANCE_SECONDS} seconds from the \
             server's clock ({now}): sign again with the current time"
        )));
    }
    let Some(signature) = header(SIGNATURE_HEADER) else {
        return Err(ApiError::BadSignature(format!(
            "the {SIGNATURE_HEADER} header is missing: send v1=<hex HMAC-SHA256(secret, \
             timestamp + \".\" + body)>"
        )));
    };
    let endpoints = crate::server::messages::webhook_endpoints::active(db).await?;
    if endpoints.is_empty() {
        return Err(ApiError::BadSignature(
            "no webhook endpoint is registered, so no secret can sign: add one with \
             POST /v1/webhook-endpoints"
                .to_owned(),
        ));
    }
    let valid = endpoints
        .iter()
        .any(|e| webhook::verify(e.secret.as_bytes(), &signature, timestamp, now, body));
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadSignature(format!(
            "{SIGNATURE_HEADER} does not sign this body at this timestamp with the secret of \
             any active webhook endpoint"
        )))
    }
}

/// The booking a reference names, as the intents need it.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Target {
    id: String,
    token: String,
    customer_id: Option<String>,
    job: String,
    status: String,
    date: NaiveDate,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
}

async fn target(db: &Db, reference: &str) -> Result<Target, ApiError> {
    let found: Option<Target> = on_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT id, token, customer_id, job, status, date, window_start, window_end \
             FROM bookings WHERE token = $1",
        )
        .bind(reference)
        .fetch_optional(pool)
        .await
    })?;
    found.ok_or_else(|| {
        ApiError::validation(vec![ErrorDetail::new(
            "$.booking_reference",
            "unknown_booking_reference",
            format!("no booking has the reference `{reference}`"),
        )])
    })
}

/// New graded slots for booking `id`'s visit, as a `reschedule` reply gets them
/// (`{"status", "slots", "reschedule_with"}`); 404 for an unknown booking, 409 for a
/// cancelled one. The missed-visit follow-up (visit_events.rs) offers the first ones.
pub(crate) async fn new_slots_for(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let found: Option<Target> = on_pool!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, token, customer_id, job, status, date, window_start, window_end \
             FROM bookings WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    })?;
    let booking = found.ok_or_else(|| ApiError::not_found("booking", id))?;
    reschedule_slots(state, &booking).await
}

/// A stored answer.
#[derive(Debug, sqlx::FromRow)]
struct Stored {
    request_hash: String,
    status_code: i32,
    response: String,
}

async fn stored(db: &Db, message_id: &str) -> Result<Option<Stored>, ApiError> {
    Ok(on_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT request_hash, status_code, response FROM inbound_messages \
             WHERE message_id = $1 AND status_code > 0",
        )
        .bind(message_id)
        .fetch_optional(pool)
        .await
    })?)
}

/// The stored answer again, or 422 when the id came with another body.
fn replay(stored: Stored, hash: &str) -> Result<Response, ApiError> {
    if stored.request_hash != hash {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$.message_id",
            "message_id_reused",
            "this message id was already handled with another body",
        )]));
    }
    let status = u16::try_from(stored.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body: Value = serde_json::from_str(&stored.response)
        .map_err(|e| ApiError::Internal(format!("a stored inbound answer is not JSON: {e}")))?;
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(response)
}

const INSERT: &str = "INSERT INTO inbound_messages (message_id, request_hash, intent, \
    booking_id, status_code, response, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (message_id) DO NOTHING";

/// Inserts the message's row in `tx` (`status_code` 0 until [`finish`]); `false` when
/// the id is already there.
async fn claim(
    tx: &mut Tx,
    message: &InboundMessage,
    hash: &str,
    booking_id: &str,
    status: i32,
    response: &str,
) -> Result<bool, ApiError> {
    let at = now();
    let done = on_tx!(tx, |conn| {
        sqlx::query(INSERT)
            .bind(&message.message_id)
            .bind(hash)
            .bind(message.intent.as_str())
            .bind(booking_id)
            .bind(status)
            .bind(response)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

async fn finish(tx: &mut Tx, message_id: &str, response: &str) -> Result<(), ApiError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE inbound_messages SET status_code = 200, response = $1 WHERE message_id = $2",
        )
        .bind(response)
        .bind(message_id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The key the platform acts with when it calls booking functions.
fn platform() -> Auth {
    Auth {
        key_id: "chat-inbound".to_owned(),
        key_name: "chat platform (signed inbound)".to_owned(),
        role: Role::Chatbot,
        technician_id: None,
    }
}

#[utoipa::path(post, path = "/v1/chat/inbound", tag = "messages",
    description = "A customer's chat reply, sent by the chat platform and signed with a webhook endpoint's secret (Despacho-Timestamp, Despacho-Signature: v1=HMAC-SHA256(secret, timestamp.body), timestamp within 5 minutes). Intents: confirm, reschedule (answers new graded slots), cancel, survey (csat 1-5, nps 0-10), text (to the dispatchers' queue). Handled once per message_id: a replay gets the stored answer. No API key.",
    request_body = InboundMessage,
    responses((status = 200, body = InboundAnswer),
        (status = 400, body = crate::server::http::error::ErrorBody),
        (status = 401, body = crate::server::http::error::ErrorBody, description = "`invalid_signature`: missing or wrong signature, stale timestamp"),
        (status = 409, body = crate::server::http::error::ErrorBody, description = "`booking_cancelled`, `booking_not_confirmed`"),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path; `message_id_reused`")))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_signature(&state.db, &headers, &body.bytes).await?;
    let (message, action) = body.json_object::<InboundMessage>()?.parse()?;
    let hash = message.hash();
    if let Some(s) = stored(&state.db, &message.message_id).await? {
        return replay(s, &hash);
    }
    let booking = target(&state.db, &message.booking_reference).await?;
    let answer = |result: Value| InboundAnswer {
        message_id: message.message_id.clone(),
        intent: message.intent,
        booking_id: booking.id.clone(),
        booking_reference: booking.token.clone(),
        result,
    };
    let result = match &action {
        Action::Cancel => {
            let view = crate::server::booking::bookings::cancel(
                State(state.clone()),
                platform(),
                Path(booking.id.clone()),
            )
            .await?
            .0;
            Some(json!({"booking": view}))
        }
        Action::Reschedule => Some(reschedule_slots(&state, &booking).await?),
        Action::Confirm | Action::Survey(..) | Action::Text(_) => None,
    };
    let answered = match result {
        // Done elsewhere: store the answer; a concurrent copy of the message may have
        // stored its own first, and that one is the answer.
        Some(result) => {
            let response = serde_json::to_string(&answer(result)).expect("an answer serialises");
            let (m, h, b, r) = (message.clone(), hash.clone(), booking.id.clone(), response);
            state
                .db
                .write(move |tx| {
                    let (m, h, b, r) = (m.clone(), h.clone(), b.clone(), r.clone());
                    Box::pin(async move { Ok(claim(tx, &m, &h, &b, 200, &r).await?.then_some(r)) })
                })
                .await?
        }
        // Done here, in one transaction with the message's row.
        None => {
            let (m, a, t) = (message.clone(), action.clone(), booking.clone());
            let h = hash.clone();
            let template = answer(Value::Null);
            state
                .db
                .write(move |tx| {
                    let (m, a, t, h, template) =
                        (m.clone(), a.clone(), t.clone(), h.clone(), template.clone());
                    Box::pin(async move {
                        if !claim(tx, &m, &h, &t.id, 0, "").await? {
                            return Ok(None);
                        }
                        let result = act(tx, &m, &a, &t).await?;
                        let response = serde_json::to_string(&InboundAnswer { result, ..template })
                            .expect("an answer serialises");
                        finish(tx, &m.message_id, &response).await?;
                        Ok(Some(response))
                    })
                })
                .await?
        }
    };
    match answered {
        Some(response) => {
            tracing::info!(message = %message.message_id, intent = message.intent.as_str(),
                booking = %booking.id, "chat reply handled");
            let body: Value = serde_json::from_str(&response).expect("the answer is JSON");
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        None => match stored(&state.db, &message.message_id).await? {
            Some(s) => replay(s, &hash),
            None => Err(ApiError::conflict(
                "in_progress",
                "this message is being handled; retry in a moment",
            )),
        },
    }
}

/// Confirm, survey and text, in `tx`.
async fn act(
    tx: &mut Tx,
    message: &InboundMessage,
    action: &Action,
    booking: &Target,
) -> Result<Value, ApiError> {
    let at = now();
    let customer = booking.customer_id.as_deref();
    match action {
        Action::Confirm => {
            match booking.status.as_str() {
                "confirmed" => {}
                "cancelled" => {
                    return Err(ApiError::conflict(
                        "booking_cancelled",
                        format!("booking `{}` is cancelled", booking.token),
                    ))
                }
                _ => {
                    return Err(ApiError::conflict(
                        "booking_not_confirmed",
                        format!(
                            "booking `{}` is a hold, not a booked visit: there is nothing to \
                             confirm yet",
                            booking.token
                        ),
                    ))
                }
            }
            let changed = on_tx!(tx, |conn| {
                sqlx::query(
                    "UPDATE bookings SET customer_confirmed_at = $1 \
                     WHERE id = $2 AND status = 'confirmed'",
                )
                .bind(at)
                .bind(&booking.id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
            if changed == 0 {
                return Err(ApiError::conflict(
                    "booking_cancelled",
                    format!("booking `{}` is no longer booked", booking.token),
                ));
            }
            let details = json!({"message_id": message.message_id}).to_string();
            on_tx!(tx, |conn| {
                sqlx::query(
                    "INSERT INTO booking_history (booking_id, at, action, details) \
                     VALUES ($1, $2, 'customer_confirmed', $3)",
                )
                .bind(&booking.id)
                .bind(at)
                .bind(&details)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
            Ok(json!({"customer_confirmed_at": at}))
        }
        Action::Survey(survey, score) => {
            let id = new_id::<8>("srv")?;
            on_tx!(tx, |conn| {
                sqlx::query(
                    "INSERT INTO survey_responses (id, booking_id, customer_id, survey, score, \
                     message_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&id)
                .bind(&booking.id)
                .bind(customer)
                .bind(survey.as_str())
                .bind(*score)
                .bind(&message.message_id)
                .bind(at)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
            Ok(json!({"response_id": id, "survey": survey.as_str(), "score": score}))
        }
        Action::Text(text) => {
            let entry = NewEntry {
                kind: dispatcher_queue::kind::CUSTOMER_MESSAGE,
                booking_id: Some(&booking.id),
                customer_id: customer,
                text: Some(text),
                dedup_key: format!("inbound:{}", message.message_id),
                now: at,
            };
            dispatcher_queue::enqueue(tx, &entry).await?;
            let id: String = on_tx!(tx, |conn| {
                sqlx::query_scalar("SELECT id FROM dispatcher_queue WHERE dedup_key = $1")
                    .bind(&entry.dedup_key)
                    .fetch_one(&mut *conn)
                    .await
            })?;
            Ok(json!({"queue_entry_id": id}))
        }
        Action::Reschedule | Action::Cancel => Err(ApiError::Internal(
            "handled outside the transaction".to_owned(),
        )),
    }
}

/// New graded slots for the booking's visit: the same kind, place, duration, skills and
/// window length, for [`RESCHEDULE_SEARCH_DAYS`] from [`RESCHEDULE_DAYS_BEFORE`] days
/// before the visit (not before today, the operation's date); the booking's own window
/// left out.
async fn reschedule_slots(state: &AppState, booking: &Target) -> Result<Value, ApiError> {
    if booking.status == "cancelled" {
        return Err(ApiError::conflict(
            "booking_cancelled",
            format!("booking `{}` is cancelled: book a new visit", booking.token),
        ));
    }
    let job: JobInput = serde_json::from_str(&booking.job).map_err(|e| {
        ApiError::Internal(format!("stored booking `{}` is not valid: {e}", booking.id))
    })?;
    let settings = state.db.settings().await?;
    let tz: Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let today: NaiveDate = Utc::now().with_timezone(&tz).date_naive();
    let earliest_day = booking
        .date
        .checked_sub_days(chrono::Days::new(RESCHEDULE_DAYS_BEFORE))
        .unwrap_or(booking.date)
        .max(today);
    let window = (booking.window_end - booking.window_start).num_minutes();
    let request = SlotRequest {
        place: job.place,
        kind: job.kind,
        tier: job.tier,
        duration_minutes: job.duration_minutes,
        required_skills: job.required_skills,
        equipment: job.equipment,
        earliest_day,
        days: RESCHEDULE_SEARCH_DAYS,
        window_minutes: u32::try_from(window).ok().filter(|&m| m > 0).unwrap_or(120),
    };
    let body = Body {
        media_type: MediaType::Json,
        content_type: Some("application/json".to_owned()),
        bytes: serde_json::to_vec(&request)
            .expect("a slot request serialises")
            .into(),
    };
    let answer = crate::server::booking::bookings::search(State(state.clone()), platform(), body)
        .await?
        .0;
    let slots: Vec<_> = answer
        .slots
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            !(s.start.with_timezone(&Utc) == booking.window_start
                && s.end.with_timezone(&Utc) == booking.window_end)
        })
        .collect();
    let status = match answer.status {
        SearchStatus::Ok => "ok",
        SearchStatus::NotServed => "not_served",
        SearchStatus::NoSkilledTechnician => "no_skilled_technician",
        SearchStatus::NoWorkingDay => "no_working_day",
    };
    Ok(json!({
        "status": status,
        "slots": slots,
        "reschedule_with": format!("POST /v1/bookings/{}/reschedule", booking.id),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(intent: Intent) -> InboundMessage {
        InboundMessage {
            message_id: " wamid.1 ".to_owned(),
            booking_reference: "bkt_1".to_owned(),
            intent,
            survey: None,
            score: None,
            text: None,
            sent_at: None,
        }
    }

    fn paths(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation { details, .. } => details.into_iter().map(|d| d.path).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn survey_scores_are_checked_by_survey() {
        let survey = |s, n| InboundMessage {
            survey: Some(s),
            score: Some(n),
            ..message(Intent::Survey)
        };
        let (m, a) = survey(Survey::Csat, 5).parse().unwrap();
        assert_eq!(m.message_id, "wamid.1");
        assert_eq!(a, Action::Survey(Survey::Csat, 5));
        assert_eq!(
            survey(Survey::Nps, 0).parse().unwrap().1,
            Action::Survey(Survey::Nps, 0)
        );
        assert_eq!(
            paths(survey(Survey::Csat, 0).parse().unwrap_err()),
            ["$.score"]
        );
        assert_eq!(
            paths(survey(Survey::Nps, 11).parse().unwrap_err()),
            ["$.score"]
        );
        assert_eq!(
            paths(message(Intent::Survey).parse().unwrap_err()),
            ["$.survey", "$.score"]
        );
    }

    #[test]
    fn fields_of_another_intent_and_bad_text_are_refused_by_path() {
        let confirm = InboundMessage {
            score: Some(3),
            text: Some("hi".to_owned()),
            ..message(Intent::Confirm)
        };
        assert_eq!(paths(confirm.parse().unwrap_err()), ["$.score", "$.text"]);
        let blank = InboundMessage {
            text: Some("   ".to_owned()),
            ..message(Intent::Text)
        };
        assert_eq!(paths(blank.parse().unwrap_err()), ["$.text"]);
        let long = InboundMessage {
            text: Some("a".repeat(MAX_TEXT_CHARS + 1)),
            ..message(Intent::Text)
        };
        assert_eq!(paths(long.parse().unwrap_err()), ["$.text"]);
        let ok = InboundMessage {
            text: Some(" Can the technician\nring twice? ".to_owned()),
            ..message(Intent::Text)
        };
        assert_eq!(
            ok.parse().unwrap().1,
            Action::Text("Can the technician\nring twice?".to_owned())
        );
        let no_id = InboundMessage {
            message_id: "".to_owned(),
            booking_reference: "x".repeat(201),
            ..message(Intent::Cancel)
        };
        assert_eq!(
            paths(no_id.parse().unwrap_err()),
            ["$.message_id", "$.booking_reference"]
        );
    }
}
