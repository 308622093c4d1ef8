//! Upsells: the ISP's catalogue of products a technician may offer at a visit (plan
//! upgrade, mesh Wi-Fi, IPTV package, extra outlet…), the offers the phones record
//! (`upsell_outcome` sync facts), checked against the catalogue, and the reports.
//!
//! - `POST /v1/upsell-products`, `GET` (list), `GET|PUT|DELETE /v1/upsell-products/{code}`:
//!   the catalogue (admin, dispatcher). A product offered once is never deleted (409
//!   `product_in_use`): set `active: false` instead, so old offers keep their product.
//! - [`record_offer`]: called by the sync push for each new offer. The offer is always
//!   stored (`upsell_offers`); a product missing from the catalogue, inactive, or offered
//!   at other terms than the catalogue's is flagged for the dispatchers, never dropped.
//! - `GET /v1/reports/upsells?from=&to=&technician=`: per technician and day, offers,
//!   accepted, conversion and the revenue added (monthly and one-off, from the prices
//!   the customers accepted). The day is the visit's, not the phone's clock.

use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{Body, Query};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::store::db::{now, on_pool, on_tx, Tx};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

pub const MAX_CODE_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 200;
/// The highest price accepted, in cents (the phones' limit too).
pub const MAX_PRICE_CENTS: i64 = 100_000_000;
/// The longest report range, days.
pub const MAX_REPORT_DAYS: i64 = 366;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/upsell-products", get(list).post(create))
        .route(
            "/v1/upsell-products/{code}",
            get(read).put(replace).delete(remove),
        )
        .route("/v1/reports/upsells", get(report))
}

/// How a product is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Billing {
    OneOff,
    Monthly,
}

impl Billing {
    pub fn as_str(self) -> &'static str {
        match self {
            Billing::OneOff => "one_off",
            Billing::Monthly => "monthly",
        }
    }

    fn parse(s: &str) -> Option<Billing> {
        [Billing::OneOff, Billing::Monthly]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

/// A product to create or replace.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// What the phone sends as `product_code`: 1 to 64 letters, digits, `-`, `_` or `.`.
    pub code: String,
    pub name: String,
    /// 0 to 100,000,000 (cents of the operator's currency).
    pub price_cents: i64,
    pub billing: Billing,
    /// Offered on the phones; default true.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

impl ProductInput {
    /// Every problem, by path.
    fn check(&self) -> Vec<ErrorDetail> {
        let mut problems = Vec::new();
        let code = &self.code;
        if code.is_empty()
            || code.chars().count() > MAX_CODE_CHARS
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems.push(ErrorDetail::new(
                "$.code",
                "invalid_code",
                format!("a product code is 1 to {MAX_CODE_CHARS} letters, digits, `-`, `_` or `.`"),
            ));
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            problems.push(ErrorDetail::new(
                "$.name",
                "invalid_name",
                format!("a name is 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if !(0..=MAX_PRICE_CENTS).contains(&self.price_cents) {
            problems.push(ErrorDetail::new(
                "$.price_cents",
                "out_of_range",
                format!("price_cents is 0 to {MAX_PRICE_CENTS}"),
            ));
        }
        problems
    }
}

/// A product of the catalogue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub code: String,
    pub name: String,
    pub price_cents: i64,
    pub billing: Billing,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductList {
    /// By code.
    pub items: Vec<Product>,
}

type ProductRow = (
    String,
    String,
    i64,
    String,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
);
const PRODUCT_COLUMNS: &str = "code, name, price_cents, billing, active, created_at, updated_at";

fn product(r: ProductRow) -> Result<Product, ApiError> {
    let billing = Billing::parse(&r.3)
        .ok_or_else(|| ApiError::Internal(format!("product {} has billing `{}`", r.0, r.3)))?;
    Ok(Product {
        code: r.0,
        name: r.1,
        price_cents: r.2,
        billing,
        active: r.4,
        created_at: r.5,
        updated_at: r.6,
    })
}

async fn product_in(tx: &mut Tx, code: &str) -> Result<Option<Product>, ApiError> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM upsell_products WHERE code = $1");
    let row: Option<ProductRow> = on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(code)
            .fetch_optional(&mut *conn)
            .await
    })?;
    row.map(product).transpose()
}

async fn upsert(tx: &mut Tx, p: &ProductInput, at: DateTime<Utc>) -> Result<Product, ApiError> {
    let sql = format!(
        "INSERT INTO upsell_products (code, name, price_cents, billing, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (code) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents, \
         billing = excluded.billing, active = excluded.active, updated_at = excluded.updated_at \
         RETURNING {PRODUCT_COLUMNS}"
    );
    let row: ProductRow = on_tx!(tx, |conn| {
        sqlx::query_as(&sql)
            .bind(&p.code)
            .bind(p.name.trim())
            .bind(p.price_cents)
            .bind(p.billing.as_str())
            .bind(p.active)
            .bind(at)
            .fetch_one(&mut *conn)
            .await
    })?;
    product(row)
}

#[utoipa::path(post, path = "/v1/upsell-products", tag = "upsells", security(("bearer" = [])),
    description = "Adds a product to the upsell catalogue. Roles: admin, dispatcher.",
    request_body = ProductInput,
    responses((status = 201, body = Product),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 409, body = crate::server::http::error::ErrorBody, description = "`already_exists`"),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "every problem, with its JSON path")))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    auth.require(roles::STAFF)?;
    let input: ProductInput = body.json_object()?;
    let problems = input.check();
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let product = state
        .db
        .write(move |tx| {
            let input = input.clone();
            Box::pin(async move {
                if product_in(tx, &input.code).await?.is_some() {
                    return Err(ApiError::Conflict {
                        code: "already_exists",
                        message: format!(
                            "there is already a product `{}`; use PUT /v1/upsell-products/{} to change it",
                            input.code, input.code
                        ),
                        details: vec![ErrorDetail::new("$.code", "already_exists", "this code is taken")],
                    });
                }
                upsert(tx, &input, now()).await
            })
        })
        .await?;
    tracing::info!(product = %product.code, by = %auth.key_id, "upsell product created");
    Ok((StatusCode::CREATED, Json(product)))
}

#[utoipa::path(put, path = "/v1/upsell-products/{code}", tag = "upsells", security(("bearer" = [])),
    description = "Creates (201) or replaces (200) a product; the body's `code` must be the URL's. Offers already \
        recorded keep the price they were made at. Roles: admin, dispatcher.",
    params(("code" = String, Path)),
    request_body = ProductInput,
    responses((status = 200, body = Product), (status = 201, body = Product),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    auth.require(roles::STAFF)?;
    let input: ProductInput = body.json_object()?;
    let mut problems = input.check();
    if input.code != code {
        problems.push(ErrorDetail::new(
            "$.code",
            "code_mismatch",
            format!(
                "the body's code `{}` is not the code in the URL (`{code}`); they must be equal",
                input.code
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let (created, product) = state
        .db
        .write(move |tx| {
            let input = input.clone();
            Box::pin(async move {
                let created = product_in(tx, &input.code).await?.is_none();
                Ok((created, upsert(tx, &input, now()).await?))
            })
        })
        .await?;
    tracing::info!(product = %product.code, created, by = %auth.key_id, "upsell product stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(product)))
}

#[utoipa::path(get, path = "/v1/upsell-products", tag = "upsells", security(("bearer" = [])),
    description = "The catalogue, by code (inactive products too). Roles: admin, dispatcher, technician (the phone shows it).",
    responses((status = 200, body = ProductList),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<ProductList>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM upsell_products ORDER BY code");
    let rows: Vec<ProductRow> = on_pool!(&state.db, |pool| {
        sqlx::query_as(&sql).fetch_all(pool).await
    })?;
    let items = rows
        .into_iter()
        .map(product)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(ProductList { items }))
}

#[utoipa::path(get, path = "/v1/upsell-products/{code}", tag = "upsells", security(("bearer" = [])),
    description = "One product. Roles: admin, dispatcher, technician.",
    params(("code" = String, Path)),
    responses((status = 200, body = Product),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<Json<Product>, ApiError> {
    auth.require(roles::STAFF_AND_TECHNICIAN)?;
    let mut tx = state.db.begin_read().await?;
    let found = product_in(&mut tx, &code).await;
    tx.rollback().await?;
    found?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("upsell product", code))
}

#[utoipa::path(delete, path = "/v1/upsell-products/{code}", tag = "upsells", security(("bearer" = [])),
    description = "Deletes a product never offered; one already offered is refused (409 `product_in_use`): set \
        `active: false` instead. Roles: admin, dispatcher.",
    params(("code" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody), (status = 409, body = crate::server::http::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(roles::STAFF)?;
    let deleted = code.clone();
    state
        .db
        .write(move |tx| {
            let code = code.clone();
            Box::pin(async move {
                let offered: Option<String> = on_tx!(tx, |conn| {
                    sqlx::query_scalar(
                        "SELECT offer_id FROM upsell_offers WHERE product_code = $1 LIMIT 1",
                    )
                    .bind(&code)
                    .fetch_optional(&mut *conn)
                    .await
                })?;
                if offered.is_some() {
                    return Err(ApiError::conflict(
                        "product_in_use",
                        format!("product `{code}` was offered already; set `active: false` to stop offering it"),
                    ));
                }
                let n = on_tx!(tx, |conn| {
                    sqlx::query("DELETE FROM upsell_products WHERE code = $1")
                        .bind(&code)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?;
                if n == 0 {
                    return Err(ApiError::not_found("upsell product", code));
                }
                Ok(())
            })
        })
        .await?;
    tracing::info!(product = %deleted, by = %auth.key_id, "upsell product deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Offers from the phones

/// An offer as a phone recorded it (the `upsell_outcome` fact).
#[derive(Clone, Debug)]
pub struct Offer<'a> {
    pub offer_id: &'a str,
    pub job: &'a str,
    pub technician: &'a str,
    pub product_code: &'a str,
    pub price_cents: i64,
    pub billing: Billing,
    pub accepted: bool,
    /// The visit's day.
    pub day: NaiveDate,
}

/// Stores `offer` (once: the offer id is the key) and returns the flags it raises: a
/// product the catalogue does not have or no longer offers, or terms (price, billing)
/// other than the catalogue's. The offer counts in the reports either way.
pub async fn record_offer(
    tx: &mut Tx,
    offer: &Offer<'_>,
    at: DateTime<Utc>,
) -> Result<Vec<Value>, ApiError> {
    let product = product_in(tx, offer.product_code).await?;
    let base = |kind: &str| {
        json!({"flag": kind, "fact": offer.offer_id, "product_code": offer.product_code,
               "technician": offer.technician})
    };
    let flag = match &product {
        None => Some(base("unknown_upsell_product")),
        Some(p) if !p.active => Some(base("inactive_upsell_product")),
        Some(p) if p.price_cents != offer.price_cents || p.billing != offer.billing => {
            let mut f = base("upsell_terms_differ");
            f["offered"] = json!({"price_cents": offer.price_cents, "billing": offer.billing});
            f["catalogue"] = json!({"price_cents": p.price_cents, "billing": p.billing});
            Some(f)
        }
        Some(_) => None,
    };
    let known = product.as_ref().is_some_and(|p| p.active);
    const SQL: &str = "INSERT INTO upsell_offers (offer_id, job_id, technician_id, product_code, \
        known, price_cents, billing, outcome, day, received_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (offer_id) DO NOTHING";
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(offer.offer_id)
            .bind(offer.job)
            .bind(offer.technician)
            .bind(offer.product_code)
            .bind(known)
            .bind(offer.price_cents)
            .bind(offer.billing.as_str())
            .bind(if offer.accepted {
                "accepted"
            } else {
                "declined"
            })
            .bind(offer.day)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(flag.into_iter().collect())
}

// ---------------------------------------------------------------------------------------
// Reports

/// Offers and revenue of one technician on one day (or of a range, for totals).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpsellFigures {
    pub offers: i64,
    pub accepted: i64,
    /// accepted ÷ offers, % (0 without offers).
    pub conversion_pct: f64,
    /// Monthly revenue added by accepted monthly products, cents.
    pub added_monthly_cents: i64,
    /// Revenue of accepted one-off products, cents.
    pub one_off_cents: i64,
    /// Offers of products not in the catalogue (or inactive): counted, and flagged.
    pub unknown_products: i64,
}

impl UpsellFigures {
    fn add(&mut self, other: &UpsellFigures) {
        self.offers += other.offers;
        self.accepted += other.accepted;
        self.added_monthly_cents += other.added_monthly_cents;
        self.one_off_cents += other.one_off_cents;
        self.unknown_products += other.unknown_products;
        self.conversion_pct = conversion(self.accepted, self.offers);
    }
}

fn conversion(accepted: i64, offers: i64) -> f64 {
    if offers == 0 {
        0.0
    } else {
        (10_000.0 * accepted as f64 / offers as f64).round() / 100.0
    }
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpsellReportRow {
    pub technician: String,
    pub day: NaiveDate,
    #[serde(flatten)]
    pub figures: UpsellFigures,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UpsellReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub technician: Option<String>,
    /// By day, then technician; only technician-days with offers.
    pub rows: Vec<UpsellReportRow>,
    pub totals: UpsellFigures,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// First day, YYYY-MM-DD (required).
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (required; at most 366 days after `from`).
    pub to: Option<String>,
    /// Only this technician.
    pub technician: Option<String>,
}

type FigureRow = (String, NaiveDate, i64, i64, i64, i64, i64);

/// Per technician and day, from `from` to `to` (inclusive), for `technician` or all.
pub async fn figures_in(
    tx: &mut Tx,
    from: NaiveDate,
    to: NaiveDate,
    technician: Option<&str>,
) -> Result<Vec<UpsellReportRow>, ApiError> {
    // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back.
    const SQL: &str = "SELECT technician_id, day, COUNT(*), \
        CAST(COALESCE(SUM(CASE WHEN outcome = 'accepted' THEN 1 ELSE 0 END), 0) AS BIGINT), \
        CAST(COALESCE(SUM(CASE WHEN outcome = 'accepted' AND billing = 'monthly' THEN price_cents ELSE 0 END), 0) AS BIGINT), \
        CAST(COALESCE(SUM(CASE WHEN outcome = 'accepted' AND billing = 'one_off' THEN price_cents ELSE 0 END), 0) AS BIGINT), \
        CAST(COALESCE(SUM(CASE WHEN known THEN 0 ELSE 1 END), 0) AS BIGINT) \
        FROM upsell_offers WHERE day >= $1 AND day <= $2 AND ($3 IS NULL OR technician_id = $3) \
        GROUP BY technician_id, day ORDER BY day, technician_id";
    let rows: Vec<FigureRow> = on_tx!(tx, |conn| {
        sqlx::query_as(SQL)
            .bind(from)
            .bind(to)
            .bind(technician)
            .fetch_all(&mut *conn)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(|r| UpsellReportRow {
            technician: r.0,
            day: r.1,
            figures: UpsellFigures {
                offers: r.2,
                accepted: r.3,
                conversion_pct: conversion(r.3, r.2),
                added_monthly_cents: r.4,
                one_off_cents: r.5,
                unknown_products: r.6,
            },
        })
        .collect())
}

/// The sum of `rows`.
pub fn total(rows: &[UpsellReportRow]) -> UpsellFigures {
    let mut t = UpsellFigures::default();
    for r in rows {
        t.add(&r.figures);
    }
    t
}

fn date_param(name: &str, value: Option<&str>) -> Result<NaiveDate, ApiError> {
    let bad = |message: String| ApiError::BadRequest {
        code: "invalid_query",
        message: message.clone(),
        details: vec![ErrorDetail::new(name, "invalid_date", message)],
    };
    let value = value.ok_or_else(|| bad(format!("`{name}` is required (YYYY-MM-DD)")))?;
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| {
        bad(format!(
            "`{name}` = `{value}` is not a YYYY-MM-DD date: {e}"
        ))
    })
}

#[utoipa::path(get, path = "/v1/reports/upsells", tag = "upsells", security(("bearer" = [])),
    description = "Upsell offers per technician and day (the visit's day): offers, accepted, conversion %, monthly revenue \
        added and one-off revenue (cents, at the prices accepted), and offers of unknown products; with totals. Roles: admin, dispatcher.",
    params(ReportQuery),
    responses((status = 200, body = UpsellReport),
        (status = 400, body = crate::server::http::error::ErrorBody, description = "a missing or bad `from`/`to`, or a range over 366 days"),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<ReportQuery>,
) -> Result<Json<UpsellReport>, ApiError> {
    auth.require(roles::STAFF)?;
    let from = date_param("from", query.from.as_deref())?;
    let to = date_param("to", query.to.as_deref())?;
    if to < from || (to - from).num_days() >= MAX_REPORT_DAYS {
        let message =
            format!("`to` must be on or after `from` and at most {MAX_REPORT_DAYS} days later");
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            message: message.clone(),
            details: vec![ErrorDetail::new("to", "invalid_range", message)],
        });
    }
    let technician = query.technician.filter(|t| !t.is_empty());
    let mut tx = state.db.begin_read().await?;
    let rows = figures_in(&mut tx, from, to, technician.as_deref()).await;
    tx.rollback().await?;
    let rows = rows?;
    Ok(Json(UpsellReport {
        from,
        to,
        technician,
        totals: total(&rows),
        rows,
    }))
}
