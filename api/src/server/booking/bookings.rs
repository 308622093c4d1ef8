//! Booking: slot search, bookings, holds, reschedule and cancel (RELIABILITY.md, Booking).
//!
//! - `POST /v1/slots/search`: the windows the slot engine can promise, each with a signed
//!   `slot_token` (HMAC-SHA256 with a secret kept in `settings`, valid 15 minutes).
//! - `POST /v1/bookings` and `POST /v1/holds` (header `Idempotency-Key` required): in one
//!   write transaction, the idempotency row, the technician-day's lock (a version bump on
//!   `technician_days`), the joint feasibility check of the visit with every other
//!   active visit of that day ([`check_visit`]), the booking, its history row and the
//!   stored response. A refused visit is a 409 `slot_unavailable` with fresh
//!   alternatives.
//! - A hold counts against capacity until `expires_at`; an expired hold is ignored by
//!   every query (no sweeper). `POST /v1/holds/{id}/confirm` confirms a live one.
//! - `POST /v1/bookings/{id}/reschedule` locks both technician-days in (technician,
//!   date) order; `POST /v1/bookings/{id}/cancel`; every change appends to
//!   `booking_history`.

use crate::server::booking::booking_views::{
    BookInput, Booking, BookingStatus, HistoryEntry, HoldInput, Refusal, RescheduleInput,
    SearchStatus, Slot, SlotSearchAnswer, Window,
};
use crate::server::catalog::operation_cache::{operation_in, OperationCache};
use crate::server::catalog::settings::stored_or_insert;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Body;
use crate::server::http::error::{ApiError, ErrorDetail, ErrorObject};
use crate::server::http::state::AppState;
use crate::server::messages::notify::templates::MessageKind;
use crate::server::messages::outbox;
use crate::server::store::db::{now, on_tx, Db, Tx};
use crate::server::store::ids::{hex, new_id};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chacha20poly1305::XChaCha20Poly1305;
use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, Utc};
use despacho_solver::field::input::{JobInput, WindowInput};
use despacho_solver::field::slots::{
    check_visit, examined_days, request_job, search_slots, BookedVisit, Examined, Operation,
    PlannedVisit, SlotAnswer, SlotRequest,
};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// How long a slot token may be booked after the search.
pub const SLOT_TOKEN_MINUTES: i64 = 15;
/// Slots offered by one search.
pub const SEARCH_LIMIT: usize = 10;
/// Default and largest time to live of a hold, seconds.
pub const HOLD_DEFAULT_SECONDS: u32 = 300;
pub const HOLD_MAX_SECONDS: u32 = 1800;
/// Default share of each technician-day kept for repairs (`Settings::repair_reserve`).
pub const DEFAULT_REPAIR_RESERVE: f64 = 0.1;
/// Idempotency keys are kept (and answered from) for this many days (RELIABILITY.md).
pub const IDEMPOTENCY_KEEP_DAYS: i64 = 7;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/slots/search", post(search))
        .route("/v1/bookings", post(create_booking))
        .route("/v1/holds", post(create_hold))
        .route("/v1/holds/{id}/confirm", post(confirm_hold))
        .route("/v1/bookings/{id}", get(read))
        .route("/v1/bookings/by-token/{token}", get(read_by_token))
        .route("/v1/bookings/{id}/reschedule", post(reschedule))
        .route("/v1/bookings/{id}/cancel", post(cancel))
}

// ---------------------------------------------------------------------------------------
// Slot search

#[utoipa::path(post, path = "/v1/slots/search", tag = "booking", security(("bearer" = [])),
    description = "Windows a skilled technician can really take (checked against every booking, shift and break), best first, each with a slot token valid 15 minutes. Roles: admin, dispatcher, chatbot.",
    request_body = crate::server::http::solver_schemas::SlotRequestDoc,
    responses((status = 200, body = SlotSearchAnswer), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path")))]
pub async fn search(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<Json<SlotSearchAnswer>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let request: SlotRequest = body.json_object()?;
    Ok(Json(find_slots(&state, &request).await?))
}

async fn find_slots(state: &AppState, request: &SlotRequest) -> Result<SlotSearchAnswer, ApiError> {
    let secret = secret(state).await?;
    let now = now();
    let mut tx = state.db.begin_read().await?;
    let op = state.operation_cache.operation(&mut tx).await?;
    // Which technician-days the search examines depends on the technicians alone:
    // only those days' bookings are read (a tenth of a week's, with 100 technicians).
    let examined = {
        let (op, req) = (Arc::clone(&op), request.clone());
        tokio::task::spawn_blocking(move || examined_days(&op, &req))
            .await
            .map_err(|e| ApiError::Internal(format!("the slot search failed: {e}")))??
    };
    let answer = match examined {
        Examined::NotServed => SlotAnswer::NotServed,
        Examined::NoSkilledTechnician => SlotAnswer::NoSkilledTechnician,
        Examined::NoWorkingDay => SlotAnswer::NoWorkingDay,
        Examined::Days(days) => {
            let mut technicians: Vec<String> = days.iter().map(|d| d.technician.clone()).collect();
            technicians.sort();
            technicians.dedup();
            let (first, last) = days
                .iter()
                .fold((request.earliest_day, request.earliest_day), |(a, b), d| {
                    (a.min(d.date), b.max(d.date))
                });
            let visits: Vec<BookedVisit> =
                active_visits(&mut tx, first, last, Some(&technicians), now)
                    .await?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
            tx.rollback().await?;
            let req = request.clone();
            tokio::task::spawn_blocking(move || search_slots(&op, &visits, &req, SEARCH_LIMIT))
                .await
                .map_err(|e| ApiError::Internal(format!("the slot search failed: {e}")))??
        }
    };
    let without = |status| SlotSearchAnswer {
        status,
        slots: None,
    };
    Ok(match answer {
        SlotAnswer::NotServed => without(SearchStatus::NotServed),
        SlotAnswer::NoSkilledTechnician => without(SearchStatus::NoSkilledTechnician),
        SlotAnswer::NoWorkingDay => without(SearchStatus::NoWorkingDay),
        SlotAnswer::Slots(offers) => {
            let expires_at = now + TimeDelta::minutes(SLOT_TOKEN_MINUTES);
            let slots: Vec<Slot> = offers
                .into_iter()
                .map(|o| {
                    let claim = SlotClaim {
                        technician: o.technician,
                        date: o.date,
                        start: o.start,
                        end: o.end,
                        request: request.clone(),
                        expires_at,
                    };
                    Slot {
                        start: o.start,
                        end: o.end,
                        grade: o.grade,
                        expires_at,
                        slot_token: sign(&secret, &claim),
                    }
                })
                .collect();
            SlotSearchAnswer {
                status: SearchStatus::Ok,
                slots: Some(slots),
            }
        }
    })
}

/// What a slot token promises (signed, so the client cannot change it).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SlotClaim {
    technician: String,
    date: NaiveDate,
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
    request: SlotRequest,
    expires_at: DateTime<Utc>,
}

/// Why a slot token is refused.
#[derive(Clone, Copy, Debug)]
enum TokenProblem {
    Invalid,
    Expired,
}

impl TokenProblem {
    fn error(self) -> ApiError {
        match self {
            TokenProblem::Invalid => ApiError::validation(vec![ErrorDetail::new(
                "$.slot_token",
                "invalid_slot_token",
                "this is not a slot token issued by POST /v1/slots/search",
            )]),
            TokenProblem::Expired => ApiError::conflict(
                "slot_token_expired",
                "the slot token has expired; search the slots again",
            ),
        }
    }
}

/// A slot token: the claim sealed (XChaCha20-Poly1305 under a key derived from the
/// server's secret), `v2.` and base64url of nonce and ciphertext. The client can
/// neither read it (the technician is never shown to the customer) nor change it.
fn sign(secret: &[u8], claim: &SlotClaim) -> String {
    use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
    let cipher = XChaCha20Poly1305::new(&token_key(secret).into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let plain = serde_json::to_vec(claim).expect("a slot claim serialises");
    let sealed = cipher
        .encrypt(&nonce, plain.as_slice())
        .expect("sealing a short claim cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    format!("{TOKEN_VERSION}{}", B64.encode(bytes))
}

/// What every token begins with (tokens of the first version were signed, readable
/// JSON; they lived 15 minutes and are refused as invalid now).
const TOKEN_VERSION: &str = "v2.";

/// The claim of a genuine token (its expiry is checked by the caller, [`checked_claim`]).
fn verify(secret: &[u8], token: &str) -> Result<SlotClaim, TokenProblem> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    use chacha20poly1305::XNonce;
    const NONCE: usize = 24;
    let body = token
        .strip_prefix(TOKEN_VERSION)
        .ok_or(TokenProblem::Invalid)?;
    let bytes = B64.decode(body).map_err(|_| TokenProblem::Invalid)?;
    if bytes.len() <= NONCE {
        return Err(TokenProblem::Invalid);
    }
    let (nonce, sealed) = bytes.split_at(NONCE);
    let cipher = XChaCha20Poly1305::new(&token_key(secret).into());
    // Authenticated: a changed or forged token does not open.
    let plain = cipher
        .decrypt(XNonce::from_slice(nonce), sealed)
        .map_err(|_| TokenProblem::Invalid)?;
    serde_json::from_slice(&plain).map_err(|_| TokenProblem::Invalid)
}

/// The token key: HMAC-SHA256 of a fixed label under the server's secret.
fn token_key(secret: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"despacho slot token key v2");
    mac.finalize().into_bytes().into()
}

fn checked_claim(
    claim: &Result<SlotClaim, TokenProblem>,
    now: DateTime<Utc>,
) -> Result<SlotClaim, ApiError> {
    match claim {
        Ok(c) if c.expires_at > now => Ok(c.clone()),
        Ok(_) => Err(TokenProblem::Expired.error()),
        Err(p) => Err(p.error()),
    }
}

/// The server's token secret (read once per process).
async fn secret(state: &AppState) -> Result<Vec<u8>, ApiError> {
    state
        .booking_secret
        .get_or_try_init(|| stored_secret(&state.db))
        .await
        .cloned()
}

/// The token secret in `settings`, made and stored at first use.
async fn stored_secret(db: &Db) -> Result<Vec<u8>, ApiError> {
    let fresh = serde_json::to_string(&new_id::<32>("bks")?).expect("a string");
    let value = stored_or_insert(db, "booking_secret", fresh).await?;
    let text: String = serde_json::from_str(&value)
        .map_err(|e| ApiError::Internal(format!("stored booking secret is not valid: {e}")))?;
    Ok(text.into_bytes())
}

// ---------------------------------------------------------------------------------------
// Booking and holding

/// A response kept with its idempotency key.
#[derive(Clone, Debug)]
struct Stored {
    status: u16,
    body: String,
}

impl IntoResponse for Stored {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response()
    }
}

/// Everything one booking attempt needs (cloned for each retry of the transaction).
#[derive(Clone, Debug)]
struct Attempt {
    api_key_id: String,
    key: String,
    hash: String,
    claim: Result<SlotClaim, TokenProblem>,
    customer_id: Option<String>,
    /// `Some(ttl)` for a hold.
    hold_seconds: Option<u32>,
    /// The parsed technicians (checked against the catalog revision in the transaction).
    operations: Arc<OperationCache>,
}

#[utoipa::path(post, path = "/v1/bookings", tag = "booking", security(("bearer" = [])),
    description = "Books the slot of a slot token, confirmed at once. Header `Idempotency-Key` (1–255 characters, one per booking intent) required. Roles: admin, dispatcher, chatbot.",
    params(("Idempotency-Key" = String, Header, description = "One per booking intent")),
    request_body = BookInput,
    responses((status = 201, body = Booking), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 409, body = Refusal, description = "`slot_unavailable` with fresh alternatives (kept with the key); also `slot_token_expired`, `idempotency_key_in_progress`"),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "invalid token, unknown customer, or the key reused with another body")))]
pub async fn create_booking(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let key = idempotency_key(&headers)?;
    let input: BookInput = body.json_object()?;
    let hash = request_hash("/v1/bookings", &body)?;
    book(
        &state,
        &auth,
        key,
        hash,
        input.slot_token,
        input.customer_id,
        None,
    )
    .await
}

#[utoipa::path(post, path = "/v1/holds", tag = "booking", security(("bearer" = [])),
    description = "Holds the slot of a slot token for `ttl_seconds`: it counts against capacity until then, and lapses by itself. Header `Idempotency-Key` required. Roles: admin, dispatcher, chatbot.",
    params(("Idempotency-Key" = String, Header, description = "One per booking intent")),
    request_body = HoldInput,
    responses((status = 201, body = Booking), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 409, body = Refusal, description = "`slot_unavailable` with fresh alternatives"),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn create_hold(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let key = idempotency_key(&headers)?;
    let input: HoldInput = body.json_object()?;
    let ttl = input.ttl_seconds.unwrap_or(HOLD_DEFAULT_SECONDS);
    if !(1..=HOLD_MAX_SECONDS).contains(&ttl) {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$.ttl_seconds",
            "invalid_ttl",
            format!("{ttl} seconds: must be between 1 and {HOLD_MAX_SECONDS}"),
        )]));
    }
    let hash = request_hash("/v1/holds", &body)?;
    book(
        &state,
        &auth,
        key,
        hash,
        input.slot_token,
        input.customer_id,
        Some(ttl),
    )
    .await
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::bad_request(
            "missing_idempotency_key",
            "send an `Idempotency-Key` header (1 to 255 characters), one per booking intent",
        ));
    }
    Ok(key.to_owned())
}

/// SHA-256 of the endpoint and the body's JSON (keys in a stable order).
fn request_hash(path: &str, body: &Body) -> Result<String, ApiError> {
    let value: Value = body.json()?;
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(value.to_string().as_bytes());
    Ok(hex(&h.finalize()))
}

async fn book(
    state: &AppState,
    auth: &Auth,
    key: String,
    hash: String,
    slot_token: String,
    customer_id: Option<String>,
    hold_seconds: Option<u32>,
) -> Result<Response, ApiError> {
    let secret = secret(state).await?;
    let claim = verify(&secret, &slot_token);
    let attempt = Attempt {
        api_key_id: auth.key_id.clone(),
        key,
        hash,
        claim: claim.clone(),
        customer_id,
        hold_seconds,
        operations: Arc::clone(&state.operation_cache),
    };
    let write = attempt.clone();
    let outcome = state
        .db
        .write(move |tx| {
            let attempt = write.clone();
            Box::pin(async move { book_in(tx, &attempt).await })
        })
        .await;
    match outcome {
        Ok(stored) => {
            tracing::info!(status = stored.status, by = %auth.key_id, "booking request");
            Ok(stored.into_response())
        }
        Err(e) => match (&e, &claim) {
            (ApiError::Conflict { code, .. }, Ok(claim)) if *code == "slot_unavailable" => {
                let body = unavailable(state, e, &claim.request).await?;
                // A refusal is an answer to this intent: kept with its key, so a retry
                // gets the same one (with the same alternatives).
                let stored = remember_refusal(&state.db, &attempt, body).await?;
                tracing::info!(status = stored.status, by = %auth.key_id, "booking request");
                Ok(stored.into_response())
            }
            _ => Err(e),
        },
    }
}

/// The body of the 409 of a refused slot, with fresh alternatives (searched after the
/// rollback).
async fn unavailable(
    state: &AppState,
    error: ApiError,
    request: &SlotRequest,
) -> Result<Refusal, ApiError> {
    let alternatives = find_slots(state, request).await?.slots.unwrap_or_default();
    Ok(Refusal {
        error: ErrorObject {
            code: "slot_unavailable".into(),
            message: error.to_string(),
            details: Vec::new(),
        },
        alternatives,
    })
}

/// Stores a 409 `slot_unavailable` under the attempt's idempotency key (unless a
/// concurrent request with that key stored its answer first: that one is returned).
async fn remember_refusal(db: &Db, a: &Attempt, refusal: Refusal) -> Result<Stored, ApiError> {
    let stored = Stored {
        status: 409,
        body: serde_json::to_string(&refusal).expect("a refusal serialises"),
    };
    let a = a.clone();
    let mine = stored.clone();
    db.write(move |tx| {
        let a = a.clone();
        let mine = mine.clone();
        Box::pin(async move {
            const INSERT: &str = "INSERT INTO idempotency_keys (key, api_key_id, request_hash, \
                status, response_status, response_body, created_at) \
                VALUES ($1, $2, $3, 'done', $4, $5, $6) ON CONFLICT (api_key_id, key) DO NOTHING";
            // The booking's rollback restored a row past its keeping time: it goes, so
            // the refusal is what the key keeps.
            expire_key(tx, &a, now()).await?;
            let inserted = on_tx!(tx, |conn| {
                sqlx::query(INSERT)
                    .bind(&a.key)
                    .bind(&a.api_key_id)
                    .bind(&a.hash)
                    .bind(i32::from(mine.status))
                    .bind(&mine.body)
                    .bind(now())
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            if inserted == 1 {
                return Ok(mine);
            }
            Ok(claim_idempotency_key(tx, &a, now()).await?.unwrap_or(mine))
        })
    })
    .await
}

fn slot_unavailable() -> ApiError {
    ApiError::conflict(
        "slot_unavailable",
        "this slot can no longer be promised; pick one of the alternatives",
    )
}

async fn book_in(tx: &mut Tx, a: &Attempt) -> Result<Stored, ApiError> {
    let now = now();
    if let Some(stored) = claim_idempotency_key(tx, a, now).await? {
        return Ok(stored);
    }
    let claim = checked_claim(&a.claim, now)?;
    if let Some(customer) = &a.customer_id {
        let found: Option<String> = on_tx!(tx, |conn| {
            sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
                .bind(customer)
                .fetch_optional(&mut *conn)
                .await
        })?;
        if found.is_none() {
            return Err(ApiError::validation(vec![ErrorDetail::new(
                "$.customer_id",
                "unknown_customer",
                format!("there is no customer with id `{customer}`"),
            )]));
        }
    }
    let op = a.operations.operation(tx).await?;
    let capacity = capacity_minutes(&op, &claim.technician, claim.date);
    let id = new_id::<8>("bkg")?;
    let job = visit_job(&claim, &id);
    // A confirmed visit claims its minutes with the day's lock, in one statement; a
    // hold claims none (it lapses without a write) but takes the lock all the same.
    let minutes = if a.hold_seconds.is_none() {
        job.duration_minutes
    } else {
        0
    };
    take_day(tx, &claim.technician, claim.date, capacity, minutes).await?;
    let day = fits(tx, &op, &claim, &job, None, now).await?;
    let (status, expires_at) = match a.hold_seconds {
        Some(ttl) => ("held", Some(now + TimeDelta::seconds(i64::from(ttl)))),
        None => ("confirmed", None),
    };
    let planned = day.planned.last().copied();
    let record = Row {
        id: id.clone(),
        token: new_id::<24>("bkt")?,
        customer_id: a.customer_id.clone(),
        job: serde_json::to_string(&job).expect("a job serialises"),
        technician_id: claim.technician.clone(),
        date: claim.date,
        window_start: claim.start.with_timezone(&Utc),
        window_end: claim.end.with_timezone(&Utc),
        duration_minutes: i32::try_from(job.duration_minutes).unwrap_or(i32::MAX),
        status: status.to_owned(),
        expires_at,
        created_at: now,
        updated_at: now,
        planned_start: planned.map(|p| p.start),
        planned_end: planned.map(|p| p.end),
    };
    insert_row(tx, &record).await?;
    day.store(tx, (&id, (record.planned_start, record.planned_end)), now)
        .await?;
    let action = if a.hold_seconds.is_some() {
        "held"
    } else {
        "booked"
    };
    history(
        tx,
        &id,
        now,
        action,
        json!({"technician": claim.technician, "date": claim.date,
               "window": {"start": claim.start, "end": claim.end}, "expires_at": expires_at}),
    )
    .await?;
    // Customer messages (outbox.rs), in this transaction: a confirmed booking is
    // announced and reminded; a hold is not, until confirmed.
    if a.hold_seconds.is_none() {
        outbox::booking_event(tx, &id, MessageKind::BookingConfirmed, None, now).await?;
    }
    let stored = Stored {
        status: 201,
        body: serde_json::to_string(&record.view(now)?).expect("a booking serialises"),
    };
    const DONE: &str = "UPDATE idempotency_keys SET status = 'done', response_status = $1, \
                        response_body = $2 WHERE api_key_id = $3 AND key = $4";
    on_tx!(tx, |conn| {
        sqlx::query(DONE)
            .bind(i32::from(stored.status))
            .bind(&stored.body)
            .bind(&a.api_key_id)
            .bind(&a.key)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(stored)
}

/// Deletes the attempt's idempotency row if it is past its keeping time: the key is
/// new again (the hourly purge may not have run yet).
async fn expire_key(tx: &mut Tx, a: &Attempt, now: DateTime<Utc>) -> Result<(), ApiError> {
    const SQL: &str =
        "DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND created_at < $3";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(&a.api_key_id)
            .bind(&a.key)
            .bind(now - TimeDelta::days(IDEMPOTENCY_KEEP_DAYS))
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Inserts the idempotency row (`in_progress`), or answers from the one already there:
/// the stored response for the same body, 422 for another body, 409 while in progress.
async fn claim_idempotency_key(
    tx: &mut Tx,
    a: &Attempt,
    now: DateTime<Utc>,
) -> Result<Option<Stored>, ApiError> {
    // A row past its keeping time is replaced in the same statement: the key is new
    // again (the hourly purge may not have run yet).
    const INSERT: &str = "INSERT INTO idempotency_keys (key, api_key_id, request_hash, status, \
        created_at) VALUES ($1, $2, $3, 'in_progress', $4) \
        ON CONFLICT (api_key_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
        status = 'in_progress', response_status = NULL, response_body = NULL, \
        created_at = excluded.created_at WHERE idempotency_keys.created_at < $5";
    const SELECT: &str = "SELECT request_hash, status, response_status, response_body \
        FROM idempotency_keys WHERE api_key_id = $1 AND key = $2";
    let inserted = on_tx!(tx, |conn| {
        sqlx::query(INSERT)
            .bind(&a.key)
            .bind(&a.api_key_id)
            .bind(&a.hash)
            .bind(now)
            .bind(now - TimeDelta::days(IDEMPOTENCY_KEEP_DAYS))
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    if inserted == 1 {
        return Ok(None);
    }
    let row: (String, String, Option<i32>, Option<String>) = on_tx!(tx, |conn| {
        sqlx::query_as(SELECT)
            .bind(&a.api_key_id)
            .bind(&a.key)
            .fetch_one(&mut *conn)
            .await
    })?;
    let (hash, status, response_status, response_body) = row;
    if hash != a.hash {
        // Answered, not an error of the transaction: nothing was written.
        let body = json!({"error": {
            "code": "idempotency_key_reused",
            "message": "this Idempotency-Key was used with another request; use a new key for a new booking intent",
            "details": [{"path": "$", "code": "idempotency_key_reused",
                         "message": "the body differs from the first request sent with this key"}],
        }});
        return Ok(Some(Stored {
            status: 422,
            body: body.to_string(),
        }));
    }
    match (status.as_str(), response_status, response_body) {
        ("done", Some(s), Some(body)) => Ok(Some(Stored {
            status: u16::try_from(s).unwrap_or(200),
            body,
        })),
        _ => Err(ApiError::conflict(
            "idempotency_key_in_progress",
            "a request with this Idempotency-Key is still in progress; retry in a moment",
        )),
    }
}

/// Deletes the idempotency keys past their keeping time; returns how many.
pub async fn purge_idempotency_keys(db: &Db) -> Result<u64, ApiError> {
    let before = now() - TimeDelta::days(IDEMPOTENCY_KEEP_DAYS);
    db.write(move |tx| {
        Box::pin(async move {
            Ok(on_tx!(tx, |conn| {
                sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(before)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?)
        })
    })
    .await
}

/// Takes the technician-day's lock: bumps its version (the row lock on PostgreSQL;
/// SQLite's `BEGIN IMMEDIATE` already serialises writers) and refreshes its capacity
/// when given.
async fn lock_day(
    tx: &mut Tx,
    technician: &str,
    date: NaiveDate,
    capacity: Option<i32>,
) -> Result<(), ApiError> {
    const SQL: &str = "INSERT INTO technician_days (technician_id, date, version, \
        capacity_minutes) VALUES ($1, $2, 1, COALESCE($3, 1440)) \
        ON CONFLICT (technician_id, date) DO UPDATE SET \
        version = technician_days.version + 1, \
        capacity_minutes = COALESCE($3, technician_days.capacity_minutes)";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(technician)
            .bind(date)
            .bind(capacity)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// On-site minutes a technician-day can hold: the shift with its overtime, less the
/// break. `None` when the technician has no shift that day.
fn capacity_minutes(op: &Operation, technician: &str, date: NaiveDate) -> Option<i32> {
    let shift = op
        .technicians
        .iter()
        .find(|t| t.id == technician)?
        .shifts
        .iter()
        .find(|s| s.date == date)?;
    let mut minutes = (shift.end - shift.start).num_minutes() + i64::from(shift.overtime_minutes);
    if let Some(b) = &shift.break_rule {
        minutes -= i64::from(b.duration_minutes);
    }
    i32::try_from(minutes.max(0)).ok()
}

/// Takes the technician-day's lock (as [`lock_day`]) and, in the same statement, adds
/// `minutes` to its booked minutes only while they stay within its capacity (0 for a
/// hold). 409 `slot_unavailable` when the day is full. On PostgreSQL the day's row is
/// locked even then (`ON CONFLICT DO UPDATE` locks the row it skips).
async fn take_day(
    tx: &mut Tx,
    technician: &str,
    date: NaiveDate,
    capacity: Option<i32>,
    minutes: u32,
) -> Result<(), ApiError> {
    const SQL: &str = "INSERT INTO technician_days (technician_id, date, version, \
        capacity_minutes, booked_minutes) VALUES ($1, $2, 1, COALESCE($3, 1440), $4) \
        ON CONFLICT (technician_id, date) DO UPDATE SET \
        version = technician_days.version + 1, \
        capacity_minutes = COALESCE($3, technician_days.capacity_minutes), \
        booked_minutes = technician_days.booked_minutes + $4 \
        WHERE technician_days.booked_minutes + $4 \
            <= COALESCE($3, technician_days.capacity_minutes)";
    let minutes = i32::try_from(minutes).unwrap_or(i32::MAX);
    // A first visit longer than the whole day (the insert branch has no WHERE).
    if minutes > capacity.unwrap_or(1440) {
        return Err(slot_unavailable());
    }
    let changed = on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(technician)
            .bind(date)
            .bind(capacity)
            .bind(minutes)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    if changed == 0 {
        return Err(slot_unavailable());
    }
    Ok(())
}

/// Adds a confirmed visit's minutes to its technician-day, only while they stay
/// within its capacity (the database's own rule; the feasibility check normally
/// refuses first). Call with the day locked.
async fn claim_minutes(
    tx: &mut Tx,
    technician: &str,
    date: NaiveDate,
    minutes: u32,
) -> Result<(), ApiError> {
    const SQL: &str = "UPDATE technician_days SET booked_minutes = booked_minutes + $3 \
        WHERE technician_id = $1 AND date = $2 AND booked_minutes + $3 <= capacity_minutes";
    let minutes = i32::try_from(minutes).unwrap_or(i32::MAX);
    let changed = on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(technician)
            .bind(date)
            .bind(minutes)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    if changed == 0 {
        tracing::warn!(technician, %date, minutes, "day capacity refused a visit the feasibility check accepted");
        return Err(slot_unavailable());
    }
    Ok(())
}

/// Takes a confirmed visit's minutes off its technician-day.
async fn release_minutes(
    tx: &mut Tx,
    technician: &str,
    date: NaiveDate,
    minutes: i32,
) -> Result<(), ApiError> {
    const SQL: &str = "UPDATE technician_days SET booked_minutes = booked_minutes - $3 \
        WHERE technician_id = $1 AND date = $2";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(technician)
            .bind(date)
            .bind(minutes)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The job a claim becomes, under booking id `id`.
fn visit_job(claim: &SlotClaim, id: &str) -> JobInput {
    let mut job = request_job(
        &claim.request,
        WindowInput {
            start: claim.start,
            end: claim.end,
        },
    );
    job.id = id.to_owned();
    job
}

/// A booking's stored planned start and end.
type StoredTimes = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A technician-day's schedule after a change: when each active visit is planned.
struct DayPlan {
    technician: String,
    date: NaiveDate,
    /// The other active visits: id and stored planned time.
    others: Vec<(String, StoredTimes)>,
    /// One per visit of `others`, then the new or moved visit.
    planned: Vec<PlannedVisit>,
    /// Whether a lapsed hold of the day still holds planned times (they are freed).
    lapsed_with_times: bool,
}

impl DayPlan {
    /// Writes the planned times of the day, the new or moved visit being `id`: lapsed
    /// holds and cancelled visits of the day lose theirs; unchanged rows are left.
    /// `moved` is the new or moved visit with the planned times its row holds now.
    async fn store(
        &self,
        tx: &mut Tx,
        moved: (&str, StoredTimes),
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        const FREE: &str = "UPDATE bookings SET planned_start = NULL, planned_end = NULL \
            WHERE technician_id = $1 AND date = $2 AND planned_start IS NOT NULL \
            AND status <> 'confirmed' AND (status <> 'held' OR expires_at <= $3)";
        const SET: &str = "UPDATE bookings SET planned_start = $1, planned_end = $2 WHERE id = $3";
        if self.lapsed_with_times {
            on_tx!(tx, |conn| {
                sqlx::query(FREE)
                    .bind(&self.technician)
                    .bind(self.date)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        let (id, (start, end)) = moved;
        let rows = self
            .others
            .iter()
            .map(|(i, (s, e))| (i.as_str(), *s, *e))
            .chain(std::iter::once((id, start, end)));
        for ((row, start, end), p) in rows.zip(&self.planned) {
            if start == Some(p.start) && end == Some(p.end) {
                continue;
            }
            on_tx!(tx, |conn| {
                sqlx::query(SET)
                    .bind(p.start)
                    .bind(p.end)
                    .bind(row)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }
}

/// The day's schedule when `job` fits the claim's technician-day next to its other
/// active visits (booking `except` left out), else 409 `slot_unavailable`. Call with
/// the day locked.
async fn fits(
    tx: &mut Tx,
    op: &Operation,
    claim: &SlotClaim,
    job: &JobInput,
    except: Option<&str>,
    now: DateTime<Utc>,
) -> Result<DayPlan, ApiError> {
    let (rows, lapsed): (Vec<Row>, Vec<Row>) = day_rows(tx, &claim.technician, claim.date, except)
        .await?
        .into_iter()
        .partition(|r| r.is_active(now));
    let others = rows.iter().map(Row::visit).collect::<Result<Vec<_>, _>>()?;
    let visit = BookedVisit {
        job: job.clone(),
        technician: claim.technician.clone(),
        date: claim.date,
    };
    let planned = check_visit(op, &visit, &others).map_err(|_| slot_unavailable())?;
    Ok(DayPlan {
        technician: claim.technician.clone(),
        date: claim.date,
        others: rows
            .into_iter()
            .map(|r| (r.id, (r.planned_start, r.planned_end)))
            .collect(),
        planned,
        lapsed_with_times: lapsed.iter().any(|r| r.planned_start.is_some()),
    })
}

// ---------------------------------------------------------------------------------------
// Holds, reschedule, cancel

#[utoipa::path(post, path = "/v1/holds/{id}/confirm", tag = "booking", security(("bearer" = [])),
    description = "Confirms a live hold (again: the same booking). Roles: admin, dispatcher, chatbot.",
    params(("id" = String, Path)),
    responses((status = 200, body = Booking), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 409, body = crate::server::http::error::ErrorBody, description = "`hold_expired` or `booking_cancelled`")))]
pub async fn confirm_hold(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Booking>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let view = state
        .db
        .write(move |tx| {
            let id = id.clone();
            Box::pin(async move {
                // The time is read once the day's lock is held, so a booking's history
                // is in the order its changes were made.
                let row = locked(tx, &id).await?;
                let now = now();
                match row.status.as_str() {
                    "confirmed" => {}
                    "cancelled" => return Err(cancelled(&id)),
                    _ if row.expires_at.is_none_or(|e| e <= now) => {
                        return Err(ApiError::conflict(
                            "hold_expired",
                            format!("hold `{id}` has expired; search and hold a slot again"),
                        ))
                    }
                    _ => {
                        set_status(tx, &id, "confirmed", now).await?;
                        claim_minutes(tx, &row.technician_id, row.date, row.minutes()).await?;
                        history(tx, &id, now, "confirmed", json!({})).await?;
                        // Customer messages (outbox.rs), in this transaction.
                        outbox::booking_event(tx, &id, MessageKind::BookingConfirmed, None, now)
                            .await?;
                    }
                }
                view_in(tx, &id, now).await
            })
        })
        .await?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/v1/bookings/{id}/cancel", tag = "booking", security(("bearer" = [])),
    description = "Cancels a booking or a hold (again: the same answer). Roles: admin, dispatcher, chatbot.",
    params(("id" = String, Path)),
    responses((status = 200, body = Booking), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Booking>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let view = state
        .db
        .write(move |tx| {
            let id = id.clone();
            Box::pin(async move {
                let row = locked(tx, &id).await?;
                let now = now(); // after the lock: history in the order of the changes
                if row.status != "cancelled" {
                    set_status(tx, &id, "cancelled", now).await?;
                    if row.status == "confirmed" {
                        release_minutes(tx, &row.technician_id, row.date, row.duration_minutes)
                            .await?;
                    }
                    history(
                        tx,
                        &id,
                        now,
                        "cancelled",
                        json!({"previous_status": row.status}),
                    )
                    .await?;
                    // Customer messages (outbox.rs), in this transaction: only a
                    // confirmed booking was announced; its pending reminders go.
                    if row.status == "confirmed" {
                        outbox::booking_event(tx, &id, MessageKind::BookingCancelled, None, now)
                            .await?;
                    }
                }
                view_in(tx, &id, now).await
            })
        })
        .await?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/v1/bookings/{id}/reschedule", tag = "booking", security(("bearer" = [])),
    description = "Moves a booking to the slot of a slot token searched for the same visit (kind, place, duration). Roles: admin, dispatcher, chatbot.",
    params(("id" = String, Path)),
    request_body = RescheduleInput,
    responses((status = 200, body = Booking), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 409, body = Refusal, description = "`slot_unavailable` with fresh alternatives; also `booking_cancelled`, `hold_expired`, `slot_token_expired`"),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn reschedule(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let input: RescheduleInput = body.json_object()?;
    let secret = secret(&state).await?;
    let claim = verify(&secret, &input.slot_token);
    let attempt = claim.clone();
    let outcome = state
        .db
        .write(move |tx| {
            let id = id.clone();
            let claim = attempt.clone();
            Box::pin(async move { reschedule_in(tx, &id, &claim).await })
        })
        .await;
    match outcome {
        Ok(view) => Ok(Json(view).into_response()),
        Err(e) => match (&e, &claim) {
            (ApiError::Conflict { code, .. }, Ok(claim)) if *code == "slot_unavailable" => {
                let body = unavailable(&state, e, &claim.request).await?;
                Ok((StatusCode::CONFLICT, Json(body)).into_response())
            }
            _ => Err(e),
        },
    }
}

async fn reschedule_in(
    tx: &mut Tx,
    id: &str,
    claim: &Result<SlotClaim, TokenProblem>,
) -> Result<Booking, ApiError> {
    let now = now();
    let claim = checked_claim(claim, now)?;
    let row = load(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("booking", id))?;
    // Both technician-days, in (technician, date) order, so two reschedules never
    // wait for each other in a cycle.
    let mut days = vec![
        (row.technician_id.clone(), row.date),
        (claim.technician.clone(), claim.date),
    ];
    days.sort();
    days.dedup();
    let op = operation_in(tx, Some(&claim.technician)).await?;
    let capacity = capacity_minutes(&op, &claim.technician, claim.date);
    for (technician, date) in &days {
        let target = *technician == claim.technician && *date == claim.date;
        lock_day(tx, technician, *date, capacity.filter(|_| target)).await?;
    }
    // Read again once the days are locked: the booking's history, its `updated_at` and
    // its messages then follow the order in which its changes were made.
    let now = crate::server::store::db::now();
    let row = load(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("booking", id))?;
    if row.status == "cancelled" {
        return Err(cancelled(id));
    }
    if row.status == "held" && row.expires_at.is_none_or(|e| e <= now) {
        return Err(ApiError::conflict(
            "hold_expired",
            format!("hold `{id}` has expired"),
        ));
    }
    let old = row.job()?;
    let job = visit_job(&claim, id);
    if old.kind != job.kind
        || old.place != job.place
        || old.duration_minutes != job.duration_minutes
    {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$.slot_token",
            "slot_token_mismatch",
            "the slot was searched for another visit (kind, place or duration differ)",
        )]));
    }
    let day = fits(tx, &op, &claim, &job, Some(id), now).await?;
    const UPDATE: &str = "UPDATE bookings SET job = $1, technician_id = $2, date = $3, \
        window_start = $4, window_end = $5, updated_at = $6 WHERE id = $7";
    let job_json = serde_json::to_string(&job).expect("a job serialises");
    on_tx!(tx, |conn| {
        sqlx::query(UPDATE)
            .bind(&job_json)
            .bind(&claim.technician)
            .bind(claim.date)
            .bind(claim.start.with_timezone(&Utc))
            .bind(claim.end.with_timezone(&Utc))
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    day.store(tx, (id, (None, None)), now).await?;
    if row.status == "confirmed" {
        release_minutes(tx, &row.technician_id, row.date, row.duration_minutes).await?;
        claim_minutes(tx, &claim.technician, claim.date, row.minutes()).await?;
    }
    let from = old.windows.first().cloned();
    history(
        tx,
        id,
        now,
        "rescheduled",
        json!({
            "from": {"technician": row.technician_id, "date": row.date, "window": from},
            "to": {"technician": claim.technician, "date": claim.date,
                   "window": {"start": claim.start, "end": claim.end}},
        }),
    )
    .await?;
    // Customer messages (outbox.rs), in this transaction: a confirmed booking's move
    // is announced, its old reminders superseded and new ones written.
    if row.status == "confirmed" {
        let previous = Some((row.window_start, row.window_end));
        outbox::booking_event(tx, id, MessageKind::BookingRescheduled, previous, now).await?;
    }
    view_in(tx, id, now).await
}

fn cancelled(id: &str) -> ApiError {
    ApiError::conflict("booking_cancelled", format!("booking `{id}` is cancelled"))
}

/// Booking `id` read after taking its technician-day's lock (404 if unknown).
async fn locked(tx: &mut Tx, id: &str) -> Result<Row, ApiError> {
    let row = load(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("booking", id))?;
    lock_day(tx, &row.technician_id, row.date, None).await?;
    load(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("booking", id))
}

async fn set_status(
    tx: &mut Tx,
    id: &str,
    status: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    on_tx!(tx, |conn| {
        // A cancelled visit holds no time on its day any more.
        sqlx::query(
            "UPDATE bookings SET status = $1, expires_at = NULL, updated_at = $2, \
             planned_start = CASE WHEN $1 = 'cancelled' THEN NULL ELSE planned_start END, \
             planned_end = CASE WHEN $1 = 'cancelled' THEN NULL ELSE planned_end END \
             WHERE id = $3",
        )
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

async fn history(
    tx: &mut Tx,
    id: &str,
    at: DateTime<Utc>,
    action: &str,
    details: Value,
) -> Result<(), ApiError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO booking_history (booking_id, at, action, details) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(at)
        .bind(action)
        .bind(details.to_string())
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading

#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "booking", security(("bearer" = [])),
    description = "One booking with its history. Roles: admin, dispatcher, chatbot.",
    params(("id" = String, Path)),
    responses((status = 200, body = Booking), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Booking>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let now = now();
    let mut tx = state.db.begin_read().await?;
    let mut view = view_in(&mut tx, &id, now).await?;
    let rows: Vec<(DateTime<Utc>, String, String)> = on_tx!(&mut tx, |conn| {
        sqlx::query_as(
            "SELECT at, action, details FROM booking_history WHERE booking_id = $1 ORDER BY at",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await
    })?;
    tx.rollback().await?;
    let history = rows
        .into_iter()
        .map(|(at, action, details)| HistoryEntry {
            at,
            action,
            details: serde_json::from_str(&details).unwrap_or(Value::Null),
        })
        .collect();
    view.history = Some(history);
    Ok(Json(view))
}

#[utoipa::path(get, path = "/v1/bookings/by-token/{token}", tag = "booking", security(("bearer" = [])),
    description = "The booking a customer's token names (what the chat bot shows the customer). Roles: admin, dispatcher, chatbot.",
    params(("token" = String, Path)),
    responses((status = 200, body = Booking), (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read_by_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(token): Path<String>,
) -> Result<Json<Booking>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let now = now();
    let mut tx = state.db.begin_read().await?;
    let sql = format!("SELECT {COLUMNS} FROM bookings WHERE token = $1");
    let row: Option<Row> = on_tx!(&mut tx, |conn| {
        sqlx::query_as(&sql)
            .bind(&token)
            .fetch_optional(&mut *conn)
            .await
    })?;
    tx.rollback().await?;
    let row = row.ok_or_else(|| ApiError::not_found("booking", token))?;
    Ok(Json(row.view(now)?))
}

async fn view_in(tx: &mut Tx, id: &str, now: DateTime<Utc>) -> Result<Booking, ApiError> {
    load(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("booking", id))?
        .view(now)
}

// ---------------------------------------------------------------------------------------
// Store

const COLUMNS: &str = "id, token, customer_id, job, technician_id, date, window_start, \
    window_end, duration_minutes, status, expires_at, created_at, updated_at, \
    planned_start, planned_end";

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: String,
    token: String,
    customer_id: Option<String>,
    job: String,
    technician_id: String,
    date: NaiveDate,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    duration_minutes: i32,
    status: String,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    planned_start: Option<DateTime<Utc>>,
    planned_end: Option<DateTime<Utc>>,
}

impl Row {
    fn minutes(&self) -> u32 {
        u32::try_from(self.duration_minutes).unwrap_or(0)
    }

    fn job(&self) -> Result<JobInput, ApiError> {
        serde_json::from_str(&self.job).map_err(|e| {
            ApiError::Internal(format!("stored booking `{}` is not valid: {e}", self.id))
        })
    }

    fn visit(&self) -> Result<BookedVisit, ApiError> {
        Ok(BookedVisit {
            job: self.job()?,
            technician: self.technician_id.clone(),
            date: self.date,
        })
    }

    /// Whether the booking counts against capacity at `now`.
    fn is_active(&self, now: DateTime<Utc>) -> bool {
        match self.status.as_str() {
            "confirmed" => true,
            "held" => self.expires_at.is_some_and(|e| e > now),
            _ => false,
        }
    }

    /// The booking as the API shows it (`status` `expired` for a hold past its time).
    fn view(&self, now: DateTime<Utc>) -> Result<Booking, ApiError> {
        let job = self.job()?;
        let active = self.is_active(now);
        let status = match self.status.as_str() {
            "confirmed" => BookingStatus::Confirmed,
            "cancelled" => BookingStatus::Cancelled,
            _ if active => BookingStatus::Held,
            _ => BookingStatus::Expired,
        };
        let window = job.windows.first().map_or_else(
            || Window {
                start: self.window_start.fixed_offset(),
                end: self.window_end.fixed_offset(),
            },
            |w| Window {
                start: w.start,
                end: w.end,
            },
        );
        let planned = match (active, self.planned_start, self.planned_end) {
            (true, Some(start), Some(end)) => Some(Window {
                start: start.fixed_offset(),
                end: end.fixed_offset(),
            }),
            _ => None,
        };
        Ok(Booking {
            id: self.id.clone(),
            token: self.token.clone(),
            status,
            customer_id: self.customer_id.clone(),
            technician: self.technician_id.clone(),
            date: self.date,
            window,
            duration_minutes: self.duration_minutes,
            kind: job.kind,
            place: job.place,
            expires_at: self.expires_at,
            planned,
            created_at: self.created_at,
            updated_at: self.updated_at,
            history: None,
        })
    }
}

/// Inserts a new booking's row as it is.
async fn insert_row(tx: &mut Tx, r: &Row) -> Result<(), ApiError> {
    let sql = format!(
        "INSERT INTO bookings ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    on_tx!(tx, |conn| {
        sqlx::query(&sql)
            .bind(&r.id)
            .bind(&r.token)
            .bind(&r.customer_id)
            .bind(&r.job)
            .bind(&r.technician_id)
            .bind(r.date)
            .bind(r.window_start)
            .bind(r.window_end)
            .bind(r.duration_minutes)
            .bind(&r.status)
            .bind(r.expires_at)
            .bind(r.created_at)
            .bind(r.updated_at)
            .bind(r.planned_start)
            .bind(r.planned_end)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

async fn load(tx: &mut Tx, id: &str) -> Result<Option<Row>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM bookings WHERE id = $1");
    Ok(on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?)
}

/// The visits of `from..=to` that count at `now`, each technician-day's in its planned
/// order (the slot engine tries that order first), with their booking ids. Reads only
/// what the search and the day's re-planning need.
pub(crate) async fn active_visits(
    tx: &mut Tx,
    from: NaiveDate,
    to: NaiveDate,
    technicians: Option<&[String]>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, BookedVisit)>, ApiError> {
    // `technician_id IN ($4, $5, …)`: one placeholder per technician (neither backend
    // binds a list the same way).
    let only = technicians.map_or(String::new(), |ids| {
        let marks: Vec<String> = (0..ids.len()).map(|k| format!("${}", k + 4)).collect();
        format!("AND technician_id IN ({}) ", marks.join(", "))
    });
    let sql = format!(
        "SELECT id, job, technician_id, date FROM bookings \
         WHERE date >= $1 AND date <= $2 {only}\
         AND (status = 'confirmed' OR (status = 'held' AND expires_at > $3)) \
         ORDER BY technician_id, date, planned_start, id"
    );
    if technicians.is_some_and(|ids| ids.is_empty()) {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, String, NaiveDate)> = on_tx!(tx, |conn| {
        let mut query = sqlx::query_as(&sql).bind(from).bind(to).bind(now);
        for id in technicians.unwrap_or_default() {
            query = query.bind(id);
        }
        query.fetch_all(&mut *conn).await
    })?;
    rows.into_iter()
        .map(|(id, job, technician, date)| {
            let job = serde_json::from_str(&job).map_err(|e| {
                ApiError::Internal(format!("stored booking `{id}` is not valid: {e}"))
            })?;
            let visit = BookedVisit {
                job,
                technician,
                date,
            };
            Ok((id, visit))
        })
        .collect()
}

/// The held and confirmed bookings of a technician-day (lapsed holds included: the
/// caller tells them apart), without booking `except`, in planned order.
async fn day_rows(
    tx: &mut Tx,
    technician: &str,
    date: NaiveDate,
    except: Option<&str>,
) -> Result<Vec<Row>, ApiError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM bookings WHERE technician_id = $1 AND date = $2 \
         AND status IN ('held', 'confirmed') AND ($3 IS NULL OR id <> $3) \
         ORDER BY planned_start, id"
    );
    Ok(on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(technician)
            .bind(date)
            .bind(except)
            .fetch_all(&mut *conn)
            .await
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> SlotClaim {
        let request: SlotRequest = serde_json::from_value(json!({
            "place": {"lat": -23.56, "lon": -46.65}, "kind": "repair", "duration_minutes": 60,
            "earliest_day": "2026-03-02", "days": 1
        }))
        .unwrap();
        let start = DateTime::parse_from_rfc3339("2026-03-02T08:00:00-03:00").unwrap();
        SlotClaim {
            technician: "t1".into(),
            date: start.date_naive(),
            start,
            end: start + TimeDelta::hours(2),
            request,
            expires_at: Utc::now(),
        }
    }

    #[test]
    fn a_sealed_token_opens_and_a_changed_or_read_one_does_not() {
        let token = sign(b"secret", &claim());
        let back = verify(b"secret", &token).unwrap();
        assert_eq!(
            (back.technician.as_str(), back.start),
            ("t1", claim().start)
        );
        // Opaque: nothing of the claim can be read from the token.
        let bytes = B64
            .decode(token.strip_prefix(TOKEN_VERSION).unwrap())
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("t1") && !text.contains("technician"),
            "{text}"
        );
        assert!(!token.contains("eyJ"), "no base64 JSON: {token}");
        // Two tokens of one claim differ (a fresh nonce each).
        assert_ne!(token, sign(b"secret", &claim()));
        assert!(verify(b"other secret", &token).is_err());
        // Any changed character, a cut token, the old signed format: refused.
        let mut changed = token.clone().into_bytes();
        let k = changed.len() / 2;
        changed[k] = if changed[k] == b'A' { b'B' } else { b'A' };
        assert!(verify(b"secret", &String::from_utf8(changed).unwrap()).is_err());
        assert!(verify(b"secret", &token[..token.len() - 2]).is_err());
        let old = format!("{}.sig", B64.encode(serde_json::to_vec(&claim()).unwrap()));
        assert!(verify(b"secret", &old).is_err());
        assert!(verify(b"secret", "v2.").is_err());
        assert!(verify(b"secret", "").is_err());
    }
}
