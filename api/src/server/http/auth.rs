//! Who is calling: API keys sent as `Authorization: Bearer KEY`, each with one [`Role`].
//!
//! Keys are random (`dsp_` + 64 hex digits, 256 bits); the database keeps only their
//! SHA-256 ([`hash_key`]), so a leaked database does not leak usable keys, and a key's
//! secret is shown once, when it is created.
//!
//! Handlers take an [`Auth`] (any valid key; 401 otherwise) and check the role first
//! thing, before reading the body:
//!
//! ```ignore
//! async fn create(State(state): State<AppState>, auth: Auth, body: Body) -> Result<…, ApiError> {
//!     auth.require(roles::STAFF)?;            // 403 for chatbot and technician keys
//!     let input: NewThing = body.json_object()?; // 400/422 only for allowed callers
//!     …
//! }
//! ```

use crate::server::http::error::ApiError;
use crate::server::http::state::AppState;
use crate::server::store::db::on_pool;
use crate::server::store::ids::{hex, random_bytes};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The customers' chat bot: creates and reads customers (and, later, books slots).
    Chatbot,
    /// Plans the work: reads and writes technicians, customers, jobs and settings.
    Dispatcher,
    /// A field technician: sees only their own jobs. The key names the technician.
    Technician,
    /// Everything a dispatcher can, plus API keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Chatbot,
        Role::Dispatcher,
        Role::Technician,
        Role::Admin,
    ];

    /// The name used in JSON and in the database: `chatbot`, `dispatcher`, `technician`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Chatbot => "chatbot",
            Role::Dispatcher => "dispatcher",
            Role::Technician => "technician",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// The sets of roles endpoints allow.
pub mod roles {
    use crate::server::Role;

    /// API keys.
    pub const ADMIN: &[Role] = &[Role::Admin];
    /// Planning data: technicians, jobs, settings, imports.
    pub const STAFF: &[Role] = &[Role::Admin, Role::Dispatcher];
    /// Customers (the chat bot registers the people it talks to).
    pub const STAFF_AND_CHATBOT: &[Role] = &[Role::Admin, Role::Dispatcher, Role::Chatbot];
    /// Reading jobs (a technician sees their own only).
    pub const STAFF_AND_TECHNICIAN: &[Role] = &[Role::Admin, Role::Dispatcher, Role::Technician];
    /// A technician's phone (mobile sync): the key names the technician.
    pub const TECHNICIAN: &[Role] = &[Role::Technician];
    /// Any valid key.
    pub const ANY: &[Role] = &Role::ALL;
}

/// The caller, authenticated by a valid (known, not revoked) API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub key_id: String,
    pub key_name: String,
    pub role: Role,
    /// The technician this key belongs to (role `technician` only).
    pub technician_id: Option<String>,
}

impl Auth {
    /// `Ok` when the caller's role is one of `allowed`, else 403 `forbidden`.
    pub fn require(&self, allowed: &'static [Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: self.role,
                allowed,
            })
        }
    }

    pub fn is(&self, role: Role) -> bool {
        self.role == role
    }

    /// Whose data the caller is limited to: `Some(technician id)` for a technician key,
    /// `None` (no limit) for the other roles.
    pub fn technician_scope(&self) -> Result<Option<&str>, ApiError> {
        match (self.role, self.technician_id.as_deref()) {
            (Role::Technician, Some(id)) => Ok(Some(id)),
            // The database refuses such a key (a CHECK constraint); never widen access.
            (Role::Technician, None) => Err(ApiError::Forbidden {
                role: self.role,
                allowed: roles::STAFF,
            }),
            _ => Ok(None),
        }
    }
}

impl<S> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let key = bearer_key(parts).ok_or(ApiError::Unauthorized)?;
        let auth = lookup_key(&state, key).await?;
        let auth = auth.ok_or(ApiError::Unauthorized)?;
        tracing::Span::current().record("role", auth.role.as_str());
        Ok(auth)
    }
}

/// The key of `Authorization: Bearer KEY` (scheme case-insensitive), if any.
fn bearer_key(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    name: String,
    role: String,
    technician_id: Option<String>,
}

async fn lookup_key(state: &AppState, key: &str) -> Result<Option<Auth>, ApiError> {
    const SQL: &str = "SELECT id, name, role, technician_id FROM api_keys \
                       WHERE key_hash = $1 AND revoked_at IS NULL";
    let hash = hash_key(key);
    let row: Option<KeyRow> = on_pool!(&state.db, |pool| {
        sqlx::query_as(SQL).bind(&hash).fetch_optional(pool).await
    })?;
    row.map(|r| {
        let role = r.role.parse().map_err(ApiError::Internal)?;
        Ok(Auth {
            key_id: r.id,
            key_name: r.name,
            role,
            technician_id: r.technician_id,
        })
    })
    .transpose()
}

/// SHA-256 of a key's secret, lowercase hex: what the database stores.
pub fn hash_key(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new key's secret: `dsp_` and 64 hex digits from the operating system's CSPRNG.
pub fn new_secret() -> Result<String, ApiError> {
    Ok(format!("dsp_{}", hex(&random_bytes::<32>()?)))
}
