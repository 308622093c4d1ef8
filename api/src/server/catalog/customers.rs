//! Customers: who is visited, and where. Kept minimal (name, one phone, one e-mail,
//! coordinates, address, optional time zone, and how they want messages: language,
//! preferred channel, channels opted out of): the service stores what booking and
//! reminders need, nothing more.
//!
//! The chat bot registers the people it talks to (`POST`) and reads them back by id;
//! dispatchers and admins also list them. `PATCH /v1/customers/{id}` changes the e-mail
//! address and the message preferences (language, preferred channel, opt-outs) later:
//! what a customer asks for in the chat.

use crate::server::catalog::validation::MAX_NAME_CHARS;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{Body, Query};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::pagination::{ListQuery, Page};
use crate::server::http::state::AppState;
use crate::server::messages::notify::{parse_language, Channel, LANGUAGES};
use crate::server::store::db::{on_pool, on_tx, Db, Tx};
use crate::server::store::ids::{check_id, new_id};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/customers", get(list).post(create))
        .route("/v1/customers/{id}", get(read).patch(update_preferences))
}

/// A customer to register.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Your id for the customer (letters, digits, `._:-`, up to 100); made up (`cus_…`) when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// International format, e.g. "+55 11 91234-5678" (stored as "+5511912345678").
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub address: Option<String>,
    /// IANA time zone when it differs from the operation's.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Language of the messages: `en`, `es`, `pt-BR`, `pt-PT` or `fr` (the operation's
    /// default language when absent; a language without templates falls back to it).
    #[serde(default)]
    pub language: Option<String>,
    /// `webhook` (the chat platform, the default) or `email`.
    #[serde(default)]
    pub preferred_channel: Option<String>,
    /// Channels the customer does not want messages on (`webhook`, `email`).
    #[serde(default)]
    pub opt_out: Option<Vec<String>>,
}

/// A stored customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub address: Option<String>,
    pub time_zone: Option<String>,
    /// Language of the messages (absent: the operation's default).
    pub language: Option<String>,
    /// `webhook` or `email` (absent: webhook).
    pub preferred_channel: Option<String>,
    /// Channels opted out of.
    #[sqlx(try_from = "String")]
    #[schema(value_type = Vec<String>)]
    pub opt_out: OptOut,
    pub created_at: DateTime<Utc>,
}

/// The channels a customer opted out of, stored comma-separated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OptOut(pub Vec<String>);

impl OptOut {
    pub fn contains(&self, channel: Channel) -> bool {
        self.0.iter().any(|c| c == channel.as_str())
    }

    fn stored(&self) -> String {
        self.0.join(",")
    }
}

impl From<String> for OptOut {
    fn from(stored: String) -> Self {
        OptOut(
            stored
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CustomerList {
    pub items: Vec<Customer>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

impl NewCustomer {
    /// The customer to store, or every problem with its path. Trims text, normalises
    /// the phone number, makes up an id when there is none.
    pub fn parse(self, now: DateTime<Utc>) -> Result<Customer, ApiError> {
        let mut problems = Vec::new();
        let mut push = |path: &str, code: &str, message: String| {
            problems.push(ErrorDetail::new(path, code, message));
        };
        let id = match self.id.as_deref().map(str::trim) {
            None => None,
            Some(id) => match check_id("$.id", id, "a customer id") {
                None => Some(id.to_owned()),
                Some(problem) => {
                    push(&problem.path, &problem.code, problem.message);
                    None
                }
            },
        };
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            push(
                "$.name",
                "invalid_name",
                format!("the name must have 1 to {MAX_NAME_CHARS} characters"),
            );
        }
        let phone = match self
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            None => None,
            Some(p) => match normalise_phone(p) {
                Some(p) => Some(p),
                None => {
                    push(
                        "$.phone",
                        "invalid_phone",
                        format!("`{p}` is not an international phone number; write + and the country code, e.g. \"+55 11 91234-5678\""),
                    );
                    None
                }
            },
        };
        let email = match self
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            None => None,
            Some(e) if valid_email(e) => Some(e.to_owned()),
            Some(e) => {
                push(
                    "$.email",
                    "invalid_email",
                    format!("`{e}` is not an e-mail address"),
                );
                None
            }
        };
        for (field, value, limit) in [("lat", self.lat, 90.0), ("lon", self.lon, 180.0)] {
            if !(value.is_finite() && (-limit..=limit).contains(&value)) {
                push(
                    &format!("$.{field}"),
                    "coordinates_out_of_range",
                    format!("{field} {value} is not a WGS84 degree between -{limit} and {limit}"),
                );
            }
        }
        let address = self
            .address
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        if address.as_ref().is_some_and(|a| a.chars().count() > 500) {
            push(
                "$.address",
                "invalid_address",
                "the address is longer than 500 characters".to_owned(),
            );
        }
        if let Some(tz) = &self.time_zone {
            if tz.parse::<chrono_tz::Tz>().is_err() {
                push(
                    "$.time_zone",
                    "unknown_time_zone",
                    format!("`{tz}` is not an IANA time zone name; use e.g. \"America/Sao_Paulo\""),
                );
            }
        }
        let language = match self.language.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(tag) => match parse_language(tag) {
                Some(l) => Some(l.to_owned()),
                None => {
                    push(
                        "$.language",
                        "unknown_language",
                        format!(
                            "`{tag}` is not a supported language; use one of {}",
                            LANGUAGES.join(", ")
                        ),
                    );
                    None
                }
            },
        };
        let channel = |text: &str, path: String, push: &mut dyn FnMut(&str, &str, String)| {
            let parsed = Channel::parse(text);
            if parsed.is_none() {
                push(
                    &path,
                    "unknown_channel",
                    format!("`{text}` is not a channel; use `webhook` or `email`"),
                );
            }
            parsed
        };
        let preferred_channel = match self.preferred_channel.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => channel(c, "$.preferred_channel".to_owned(), &mut push)
                .map(|c| c.as_str().to_owned()),
        };
        let mut opt_out = Vec::new();
        for (i, c) in self.opt_out.iter().flatten().enumerate() {
            if let Some(c) = channel(c.trim(), format!("$.opt_out[{i}]"), &mut push) {
                if !opt_out.iter().any(|o: &String| o == c.as_str()) {
                    opt_out.push(c.as_str().to_owned());
                }
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }
        Ok(Customer {
            id: match id {
                Some(id) => id,
                None => new_id::<8>("cus")?,
            },
            name,
            phone,
            email,
            lat: self.lat,
            lon: self.lon,
            address,
            time_zone: self.time_zone,
            language,
            preferred_channel,
            opt_out: OptOut(opt_out),
            created_at: now,
        })
    }
}

/// `+` and 8 to 15 digits (E.164), ignoring spaces, dashes, dots and parentheses.
fn normalise_phone(phone: &str) -> Option<String> {
    let rest = phone.strip_prefix('+')?;
    let mut digits = String::from("+");
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (9..=16).contains(&digits.len()).then_some(digits)
}

fn valid_email(email: &str) -> bool {
    crate::server::messages::notify::email::valid_address(email)
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

#[utoipa::path(post, path = "/v1/customers", tag = "customers", security(("bearer" = [])),
    description = "Registers a customer. Roles: admin, dispatcher, chatbot.",
    request_body = NewCustomer,
    responses((status = 201, body = Customer),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 409, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, Json<Customer>), ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let customer = body
        .json_object::<NewCustomer>()?
        .parse(crate::server::store::db::now())?;
    let stored = state
        .db
        .write(move |tx| {
            let customer = customer.clone();
            Box::pin(async move {
                if !insert(tx, &customer).await? {
                    return Err(ApiError::Conflict {
                        code: "already_exists",
                        message: format!("there is already a customer with id `{}`", customer.id),
                        details: vec![ErrorDetail::new(
                            "$.id",
                            "already_exists",
                            "this id is taken",
                        )],
                    });
                }
                Ok(customer)
            })
        })
        .await?;
    tracing::info!(customer = %stored.id, by = %auth.key_id, "customer created");
    Ok((StatusCode::CREATED, Json(stored)))
}

#[utoipa::path(get, path = "/v1/customers", tag = "customers", security(("bearer" = [])),
    description = "Lists customers by id, a page at a time. Roles: admin, dispatcher.",
    params(ListQuery),
    responses((status = 200, body = CustomerList),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<ListQuery>,
) -> Result<Json<CustomerList>, ApiError> {
    auth.require(roles::STAFF)?;
    let page = state
        .db
        .list_customers(query.after.as_deref(), query.limit()?)
        .await?;
    Ok(Json(CustomerList {
        items: page.items,
        next_after: page.next_after,
    }))
}

#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    description = "One customer. Roles: admin, dispatcher, chatbot.",
    params(("id" = String, Path)),
    responses((status = 200, body = Customer),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Customer>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    state
        .db
        .customer(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("customer", id))
}

// ---------------------------------------------------------------------------------------
// Preferences

/// Changes to a customer's e-mail address and message preferences: an absent field is
/// left as it is, `null` clears it.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPreferences {
    /// The e-mail address (needed for the e-mail channel).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// `en`, `es`, `pt-BR`, `pt-PT` or `fr`; `null`: the operation's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// `webhook` or `email`; `null`: webhook.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub preferred_channel: Option<Option<String>>,
    /// Replaces the channels opted out of; `null` or `[]`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub opt_out: Option<Option<Vec<String>>>,
}

/// A field that is present (`null` included) deserialises to `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    description = "Changes a customer's e-mail address and message preferences (language, preferred channel, opt-outs); absent fields stay, null clears. Roles: admin, dispatcher, chatbot.",
    params(("id" = String, Path)),
    request_body = CustomerPreferences,
    responses((status = 200, body = Customer),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody)))]
pub async fn update_preferences(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Customer>, ApiError> {
    auth.require(roles::STAFF_AND_CHATBOT)?;
    let patch: CustomerPreferences = body.json_object()?;
    // The same checks as a registration, on a stand-in with the patched fields.
    let checked = NewCustomer {
        id: None,
        name: "stand-in".to_owned(),
        phone: None,
        email: patch.email.clone().flatten(),
        lat: 0.0,
        lon: 0.0,
        address: None,
        time_zone: None,
        language: patch.language.clone().flatten(),
        preferred_channel: patch.preferred_channel.clone().flatten(),
        opt_out: patch.opt_out.clone().flatten(),
    }
    .parse(crate::server::store::db::now())?;
    const SQL: &str = "UPDATE customers SET \
        email = CASE WHEN $1 THEN $2 ELSE email END, \
        language = CASE WHEN $3 THEN $4 ELSE language END, \
        preferred_channel = CASE WHEN $5 THEN $6 ELSE preferred_channel END, \
        opt_out = CASE WHEN $7 THEN $8 ELSE opt_out END \
        WHERE id = $9";
    let target = id.clone();
    let changed = state
        .db
        .write(move |tx| {
            let (c, p, id) = (checked.clone(), patch.clone(), target.clone());
            Box::pin(async move {
                Ok(on_tx!(tx, |conn| {
                    sqlx::query(SQL)
                        .bind(p.email.is_some())
                        .bind(&c.email)
                        .bind(p.language.is_some())
                        .bind(&c.language)
                        .bind(p.preferred_channel.is_some())
                        .bind(&c.preferred_channel)
                        .bind(p.opt_out.is_some())
                        .bind(c.opt_out.stored())
                        .bind(&id)
                        .execute(&mut *conn)
                        .await
                        .map(|r| r.rows_affected())
                })?)
            })
        })
        .await?;
    if changed == 0 {
        return Err(ApiError::not_found("customer", id));
    }
    tracing::info!(customer = %id, by = %auth.key_id, "customer preferences changed");
    state
        .db
        .customer(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("customer", id))
}

// ---------------------------------------------------------------------------------------
// Store

const COLUMNS: &str = "id, name, phone, email, lat, lon, address, time_zone, language, \
    preferred_channel, opt_out, created_at";

/// Inserts `customer`; `false` when the id is taken.
pub async fn insert(tx: &mut Tx, c: &Customer) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "INSERT INTO customers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (id) DO NOTHING"
    );
    let done = on_tx!(tx, |conn| {
        sqlx::query(&sql)
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.phone)
            .bind(&c.email)
            .bind(c.lat)
            .bind(c.lon)
            .bind(&c.address)
            .bind(&c.time_zone)
            .bind(&c.language)
            .bind(&c.preferred_channel)
            .bind(c.opt_out.stored())
            .bind(c.created_at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// Whether customer `id` is stored.
pub async fn exists(tx: &mut Tx, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    Ok(found.is_some())
}

impl Db {
    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM customers WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })
    }

    pub async fn list_customers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Customer>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM customers WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        );
        let rows: Vec<Customer> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
        })?;
        Ok(Page::new(rows, limit, |c| c.id.clone()))
    }
}
