//! Equipment at customers: one record per serial (one physical modem, router or set-top
//! box), where it is and in which state (table `customer_equipment`):
//!
//! | state | meaning |
//! |---|---|
//! | `installed` | at the customer |
//! | `to_return` | the customer must give it back; once a technician collected it (`collected_job`), the return completes with that job |
//! | `returned` | back with the ISP (may be installed again elsewhere) |
//!
//! Dispatchers read a customer's equipment and register or change a record
//! (`GET /v1/customers/{id}/equipment`, `PUT /v1/customers/{id}/equipment/{serial}`).
//! Technicians' `equipment` sync facts are checked against the records by
//! [`record_serial`]; what does not fit is **flagged** for the dispatchers (the fact
//! is stored all the same), never dropped:
//!
//! | fact | record | result |
//! |---|---|---|
//! | installed | none, returned, or at this customer | installed here |
//! | installed | installed or to return at another customer | `serial_installed_elsewhere`; record unchanged |
//! | collected | none | `unknown_serial` |
//! | collected | at another customer | `serial_of_another_customer`; record unchanged |
//! | collected | already returned | `serial_already_returned` |
//! | collected | at this customer | `to_return`, collected on this job; `returned` when the job completes |
//!
//! The same serial recorded twice with the same action is mobile-sync's
//! `duplicate_serial` flag (on both jobs).

use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::Body;
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::store::db::{now, on_tx, Tx};
use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The longest serial (the phones' limit too).
pub const MAX_SERIAL_CHARS: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers/{id}/equipment", get(list))
        .route("/v1/customers/{id}/equipment/{serial}", put(store))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EquipmentState {
    Installed,
    ToReturn,
    Returned,
}

impl EquipmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            EquipmentState::Installed => "installed",
            EquipmentState::ToReturn => "to_return",
            EquipmentState::Returned => "returned",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Installed, Self::ToReturn, Self::Returned]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// A serial as phones and dispatchers write it, compared trimmed and upper-cased (as
/// mobile-sync's facts store it): `zte-0042 ` and `ZTE-0042` are one device.
pub fn normalise_serial(serial: &str) -> Option<String> {
    let s = serial.trim();
    (!s.is_empty() && s.chars().count() <= MAX_SERIAL_CHARS && !s.chars().any(char::is_control))
        .then(|| s.to_uppercase())
}

/// One device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EquipmentRecord {
    pub serial: String,
    pub customer_id: Option<String>,
    pub state: EquipmentState,
    pub model: Option<String>,
    /// The job (and technician) that installed it, when a phone reported it.
    pub installed_job: Option<String>,
    pub installed_by: Option<String>,
    /// The job (and technician) that collected it.
    pub collected_job: Option<String>,
    pub collected_by: Option<String>,
    pub returned_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EquipmentList {
    pub customer_id: String,
    /// By serial.
    pub items: Vec<EquipmentRecord>,
}

type Row = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

const COLUMNS: &str = "serial, customer_id, state, model, installed_job, installed_by, \
    collected_job, collected_by, returned_at, updated_at";

fn from_row(r: Row) -> Result<EquipmentRecord, ApiError> {
    let state = EquipmentState::parse(&r.2)
        .ok_or_else(|| ApiError::Internal(format!("serial {} has state `{}`", r.0, r.2)))?;
    Ok(EquipmentRecord {
        serial: r.0,
        customer_id: r.1,
        state,
        model: r.3,
        installed_job: r.4,
        installed_by: r.5,
        collected_job: r.6,
        collected_by: r.7,
        returned_at: r.8,
        updated_at: r.9,
    })
}

/// The record of `serial` (normalised), locked until commit on PostgreSQL.
async fn record_in(tx: &mut Tx, serial: &str) -> Result<Option<EquipmentRecord>, ApiError> {
    let lock = match tx.backend() {
        crate::server::Backend::Postgres => " FOR UPDATE",
        crate::server::Backend::Sqlite => "",
    };
    let sql = format!("SELECT {COLUMNS} FROM customer_equipment WHERE serial = $1{lock}");
    let row: Option<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(serial)
            .fetch_optional(&mut *conn)
            .await
    })?;
    row.map(from_row).transpose()
}

/// Writes `r` whole (insert or replace).
async fn save(tx: &mut Tx, r: &EquipmentRecord) -> Result<(), ApiError> {
    const SQL: &str = "INSERT INTO customer_equipment (serial, customer_id, state, model, \
        installed_job, installed_by, collected_job, collected_by, returned_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (serial) DO UPDATE SET \
        customer_id = excluded.customer_id, state = excluded.state, model = excluded.model, \
        installed_job = excluded.installed_job, installed_by = excluded.installed_by, \
        collected_job = excluded.collected_job, collected_by = excluded.collected_by, \
        returned_at = excluded.returned_at, updated_at = excluded.updated_at";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(&r.serial)
            .bind(r.customer_id.as_deref())
            .bind(r.state.as_str())
            .bind(r.model.as_deref())
            .bind(r.installed_job.as_deref())
            .bind(r.installed_by.as_deref())
            .bind(r.collected_job.as_deref())
            .bind(r.collected_by.as_deref())
            .bind(r.returned_at)
            .bind(r.updated_at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Serial facts from the phones

/// An `equipment` fact, with what the server knows of its job.
#[derive(Clone, Debug)]
pub struct SerialFact<'a> {
    pub fact: &'a str,
    pub job: &'a str,
    /// The job's customer, if it has one.
    pub customer: Option<&'a str>,
    pub technician: &'a str,
    /// Normalised.
    pub serial: &'a str,
    pub installed: bool,
    /// Whether the job is completed already (the collection then completes the return).
    pub job_completed: bool,
}

/// Checks `f` against the serial's record, updates the record when it fits, and
/// returns the flags to raise (see the module's table).
pub async fn record_serial(
    tx: &mut Tx,
    f: &SerialFact<'_>,
    at: DateTime<Utc>,
) -> Result<Vec<Value>, ApiError> {
    let flag = |kind: &str, extra: Value| {
        let mut v = json!({"flag": kind, "fact": f.fact, "serial": f.serial,
                           "technician": f.technician, "customer": f.customer});
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };
    let existing = record_in(tx, f.serial).await?;
    let elsewhere = |r: &EquipmentRecord| {
        r.customer_id.is_some() && f.customer.is_some() && r.customer_id.as_deref() != f.customer
    };
    if f.installed {
        let mut r = match existing {
            Some(r) if r.state != EquipmentState::Returned && elsewhere(&r) => {
                return Ok(vec![flag(
                    "serial_installed_elsewhere",
                    json!({"recorded_customer": r.customer_id, "recorded_state": r.state}),
                )]);
            }
            Some(r) => r,
            None => EquipmentRecord {
                serial: f.serial.to_owned(),
                customer_id: None,
                state: EquipmentState::Installed,
                model: None,
                installed_job: None,
                installed_by: None,
                collected_job: None,
                collected_by: None,
                returned_at: None,
                updated_at: at,
            },
        };
        r.customer_id = f.customer.map(str::to_owned).or(r.customer_id);
        r.state = EquipmentState::Installed;
        r.installed_job = Some(f.job.to_owned());
        r.installed_by = Some(f.technician.to_owned());
        r.collected_job = None;
        r.collected_by = None;
        r.returned_at = None;
        r.updated_at = at;
        save(tx, &r).await?;
        return Ok(Vec::new());
    }
    let Some(mut r) = existing else {
        return Ok(vec![flag("unknown_serial", json!({}))]);
    };
    if r.state == EquipmentState::Returned {
        return Ok(vec![flag(
            "serial_already_returned",
            json!({"returned_at": r.returned_at}),
        )]);
    }
    if elsewhere(&r) {
        return Ok(vec![flag(
            "serial_of_another_customer",
            json!({"recorded_customer": r.customer_id}),
        )]);
    }
    r.state = if f.job_completed {
        EquipmentState::Returned
    } else {
        EquipmentState::ToReturn
    };
    r.returned_at = f.job_completed.then_some(at);
    r.collected_job = Some(f.job.to_owned());
    r.collected_by = Some(f.technician.to_owned());
    r.updated_at = at;
    save(tx, &r).await?;
    Ok(Vec::new())
}

/// The equipment collected on `job` is back with the ISP: the job completed.
pub async fn complete_returns(tx: &mut Tx, job: &str, at: DateTime<Utc>) -> Result<u64, ApiError> {
    const SQL: &str = "UPDATE customer_equipment SET state = 'returned', returned_at = $2, \
        updated_at = $2 WHERE collected_job = $1 AND state = 'to_return'";
    Ok(on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(job)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?)
}

// ---------------------------------------------------------------------------------------
// Endpoints

#[utoipa::path(get, path = "/v1/customers/{id}/equipment", tag = "customers", security(("bearer" = [])),
    description = "The customer's equipment: every serial recorded at the customer, with its state (installed, \
        to_return, returned) and the jobs that installed or collected it. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    responses((status = 200, body = EquipmentList),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<EquipmentList>, ApiError> {
    auth.require(roles::STAFF)?;
    let mut tx = state.db.begin_read().await?;
    let found = list_in(&mut tx, &id).await;
    tx.rollback().await?;
    Ok(Json(found?))
}

async fn list_in(tx: &mut Tx, id: &str) -> Result<EquipmentList, ApiError> {
    if !crate::server::catalog::customers::exists(tx, id).await? {
        return Err(ApiError::not_found("customer", id));
    }
    let sql =
        format!("SELECT {COLUMNS} FROM customer_equipment WHERE customer_id = $1 ORDER BY serial");
    let rows: Vec<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(&sql).bind(id).fetch_all(&mut *conn).await
    })?;
    Ok(EquipmentList {
        customer_id: id.to_owned(),
        items: rows.into_iter().map(from_row).collect::<Result<_, _>>()?,
    })
}

/// A device at a customer, as a dispatcher records it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EquipmentInput {
    pub state: EquipmentState,
    /// E.g. "ZTE F670L"; at most 100 characters.
    #[serde(default)]
    pub model: Option<String>,
}

#[utoipa::path(put, path = "/v1/customers/{id}/equipment/{serial}", tag = "customers", security(("bearer" = [])),
    description = "Records a device at the customer or changes its state (e.g. `to_return` when the service ends, so the \
        technician's collection is expected). A serial installed at another customer is refused (409 \
        `serial_at_another_customer`) until it is returned. Roles: admin, dispatcher.",
    params(("id" = String, Path), ("serial" = String, Path, description = "compared trimmed and upper-cased")),
    request_body = EquipmentInput,
    responses((status = 200, body = EquipmentRecord),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 409, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn store(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, serial)): Path<(String, String)>,
    body: Body,
) -> Result<Json<EquipmentRecord>, ApiError> {
    auth.require(roles::STAFF)?;
    let input: EquipmentInput = body.json_object()?;
    let mut problems = Vec::new();
    let serial = normalise_serial(&serial);
    if serial.is_none() {
        problems.push(ErrorDetail::new(
            "serial",
            "invalid_serial",
            format!("a serial is 1 to {MAX_SERIAL_CHARS} characters"),
        ));
    }
    let model = input
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    if model.is_some_and(|m| m.chars().count() > 100) {
        problems.push(ErrorDetail::new(
            "$.model",
            "too_long",
            "a model is at most 100 characters",
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let (serial, model) = (serial.unwrap_or_default(), model.map(str::to_owned));
    let record = state
        .db
        .write(move |tx| {
            let (id, serial, model, wanted) =
                (id.clone(), serial.clone(), model.clone(), input.state);
            Box::pin(async move {
                if !crate::server::catalog::customers::exists(tx, &id).await? {
                    return Err(ApiError::not_found("customer", id));
                }
                let at = now();
                let mut r = match record_in(tx, &serial).await? {
                    Some(r)
                        if r.state != EquipmentState::Returned
                            && r.customer_id.as_deref().is_some_and(|c| c != id) =>
                    {
                        return Err(ApiError::conflict(
                            "serial_at_another_customer",
                            format!(
                                "serial {serial} is {} at customer `{}`; record its return first",
                                r.state.as_str(),
                                r.customer_id.unwrap_or_default()
                            ),
                        ))
                    }
                    Some(r) => r,
                    None => EquipmentRecord {
                        serial: serial.clone(),
                        customer_id: None,
                        state: wanted,
                        model: None,
                        installed_job: None,
                        installed_by: None,
                        collected_job: None,
                        collected_by: None,
                        returned_at: None,
                        updated_at: at,
                    },
                };
                r.customer_id = Some(id);
                r.state = wanted;
                r.model = model.or(r.model);
                r.returned_at =
                    (wanted == EquipmentState::Returned).then_some(r.returned_at.unwrap_or(at));
                r.updated_at = at;
                save(tx, &r).await?;
                Ok(r)
            })
        })
        .await?;
    tracing::info!(serial = %record.serial, state = record.state.as_str(), by = %auth.key_id, "equipment recorded");
    Ok(Json(record))
}
