//! Mobile sync, server side (issue 8): technicians' phones push mutations and pull
//! their scope, in `despacho_mobile_sync`'s versioned wire format; the dispatcher
//! moves jobs between scopes. The protocol's decisions are the sans-IO core's
//! ([`despacho_mobile_sync::server`], [`despacho_mobile_sync::merge`]); this module
//! stores them. docs/sync.md has the wire protocol and the tables.
//!
//! - `POST /v1/sync/push` (technician key): **one write transaction per push**: the
//!   device is registered to the key's technician at first use (another technician's
//!   key is refused), [`plan_push`] skips what was applied before, each new mutation
//!   is parsed ([`Fact::parse`]) and merged into its job ([`apply_fact`]) or recorded
//!   as a rejection, `last_mutation_id` moves to the last one, and each scope that
//!   changed moves to its next version. A temporary database error rolls all of it
//!   back (503); the phone sends again and nothing is applied twice.
//! - `POST /v1/sync/pull` (technician key): one read transaction (a snapshot:
//!   REPEATABLE READ on PostgreSQL, a WAL read transaction on SQLite) gives the scope
//!   version, the changes since the cookie's version (or `clear` + everything) and
//!   `last_mutation_id`, all consistent.
//! - `POST /v1/jobs/{id}/assign` (dispatcher): moves a job between scopes in one
//!   transaction: a `del` for the former holder, a `put` for the new one.
//!
//! **Commit order.** A scope's version is taken with `INSERT … ON CONFLICT DO UPDATE
//! SET version = version + 1 RETURNING version` on the scope's row, as the last
//! statements of the writing transaction. On PostgreSQL that holds the row's lock until
//! commit, so a second writer of the same scope waits for the first to commit and gets
//! the next number: versions of one scope commit in the order they are taken, and a
//! pull that saw version v has seen every change up to v. SQLite runs one writer at a
//! time anyway. Scopes are bumped in technician order, so two transactions that touch
//! the same two scopes never wait for each other in a cycle.

use crate::server::catalog::equipment;
use crate::server::catalog::technicians;
use crate::server::catalog::upsells;
use crate::server::http::auth::{roles, Auth};
use crate::server::http::body::{self, Body, MediaType};
use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::state::AppState;
use crate::server::messages::job_lifecycle::{self, MissedSlots};
use crate::server::store::db::{now, on_tx, Backend, Db, Tx};
use crate::server::store::ids::new_id;
use crate::server::sync::sync_flags;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use despacho_mobile_sync::merge::{
    apply_dispatch, apply_fact, duplicate_of, raise_flag, FactContext, FactOutcome, SerialSighting,
};
use despacho_mobile_sync::server::{
    check_device, plan_pull, plan_push, pull_response, PullPlan, ScopeSnapshot, ServerError,
};
use despacho_mobile_sync::{
    job_key, rejection_key, ClientId, CookieKey, DecodeError, DispatchChange, DispatchFields,
    Epoch, EquipmentAction, Fact, FactKind, Flag, JobId, JobRecord, Mutation, MutationId, PatchOp,
    PullRequest, PushMessage, Rejection, ScopeVersion, ServerMessage, ServerSeq, TechnicianId,
    TimeWindow, Timestamp, SCHEMA_VERSION,
};
use despacho_solver::field::input::JobInput;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

/// The longest device id accepted.
pub const MAX_CLIENT_ID: usize = 100;
/// The most mutations one push may carry (the app sends 100 at a time).
pub const MAX_MUTATIONS_PER_PUSH: usize = 1_000;
/// Mutation names longer than this are cut in the stored rejection.
const MAX_STORED_NAME: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sync/push", post(push))
        .route("/v1/sync/pull", post(pull))
        .route("/v1/jobs/{id}/assign", post(assign))
        .route("/v1/jobs/{id}/facts", get(job_facts))
}

/// A sync message in its versioned envelope (the body of push and pull, and of their
/// answers). See docs/sync.md for the messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncEnvelope {
    /// 1. Another version is refused with 426 `unsupported_schema_version`.
    pub schema_version: u32,
    /// Push: `{client_id, mutations: [{id, name, args}]}` → `{type: "ack", client_id,
    /// last_mutation_id}`. Pull: `{client_id, cookie?}` → `{client_id, base_cookie,
    /// cookie, last_mutation_id, patch: [{op: put|del|clear, key?, value?}]}`.
    #[schema(value_type = Object)]
    pub message: Value,
}

// ---------------------------------------------------------------------------------------
// Cookie key

/// The key that signs pull cookies and the server's epoch, kept in `settings` as
/// `sync_cookie` = `{"secret": "…", "epoch": 1}` (made at first use). After restoring
/// the database from a backup, raise `epoch`: every phone then gets a full snapshot.
#[derive(Clone, Debug)]
pub struct SyncCookie {
    pub key: CookieKey,
    pub epoch: Epoch,
}

#[derive(Serialize, Deserialize)]
struct StoredCookie {
    secret: String,
    epoch: u64,
}

async fn sync_cookie(state: &AppState) -> Result<SyncCookie, ApiError> {
    state
        .sync_cookie
        .get_or_try_init(|| stored_cookie(&state.db))
        .await
        .cloned()
}

async fn stored_cookie(db: &Db) -> Result<SyncCookie, ApiError> {
    let fresh = serde_json::to_string(&StoredCookie {
        secret: new_id::<32>("syc")?,
        epoch: 1,
    })
    .expect("a cookie secret serialises");
    let value =
        crate::server::catalog::settings::stored_or_insert(db, "sync_cookie", fresh).await?;
    let stored: StoredCookie = serde_json::from_str(&value)
        .map_err(|e| ApiError::Internal(format!("stored sync cookie key is not valid: {e}")))?;
    Ok(SyncCookie {
        key: CookieKey::new(stored.secret.into_bytes()),
        epoch: Epoch(stored.epoch),
    })
}

// ---------------------------------------------------------------------------------------
// Decoding at the edge

/// The body's text, for the sync decoders.
fn body_text(body: &Body) -> Result<&str, ApiError> {
    if body.media_type != MediaType::Json {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the sync message as JSON with `Content-Type: application/json`, not `{}`",
            body.content_type.as_deref().unwrap_or("")
        )));
    }
    std::str::from_utf8(&body.bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_sync_message",
            format!("the body is not UTF-8 text: {e}"),
        )
    })
}

/// A phone's sync message, read strictly. The protocol crate ignores unknown fields (a
/// phone can read a newer server's answers), but the server refuses them from a phone
/// as every other route does (422 `unknown_field`: a typo must not be dropped
/// silently), and names the field of every other problem: `$.schema_version` (missing
/// → 400, another version → 426, not a number → 400), `$.message.mutations[0].id`.
fn decode_strict<T: Serialize + serde::de::DeserializeOwned>(body: &Body) -> Result<T, ApiError> {
    let malformed = |path: &str, message: String| ApiError::BadRequest {
        code: "malformed_sync_message",
        details: vec![ErrorDetail::new(path, "malformed", message.clone())],
        message,
    };
    let text = body_text(body)?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| decode_error(DecodeError::Malformed(e)))?;
    let Value::Object(envelope) = &value else {
        return Err(malformed(
            "$",
            format!(
                "a sync message is `{{\"schema_version\": {SCHEMA_VERSION}, \"message\": {{…}}}}`"
            ),
        ));
    };
    match envelope.get("schema_version") {
        None | Some(Value::Null) => return Err(decode_error(DecodeError::MissingVersion)),
        Some(version) => match version.as_u64() {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(decode_error(DecodeError::UnsupportedVersion {
                    found,
                    supported: SCHEMA_VERSION,
                }))
            }
            None => {
                return Err(malformed(
                    "$.schema_version",
                    format!("schema_version is the number {SCHEMA_VERSION}, not {version}"),
                ))
            }
        },
    }
    let Some(message) = envelope.get("message") else {
        return Err(malformed(
            "$.message",
            "the envelope has no `message`".to_owned(),
        ));
    };
    body::refuse_bad_text(message)?;
    let decoded: T =
        body::from_value(message.clone(), "$.message").map_err(|detail| ApiError::BadRequest {
            code: "malformed_sync_message",
            message: format!(
                "the body is not a sync message of schema version {SCHEMA_VERSION}: {}: {}",
                detail.path, detail.message
            ),
            details: vec![detail],
        })?;
    let mut unknown: Vec<String> = envelope
        .keys()
        .filter(|k| !matches!(k.as_str(), "schema_version" | "message"))
        .map(|k| body::member("$", k))
        .collect();
    let read = serde_json::to_value(&decoded)
        .map_err(|e| ApiError::Internal(format!("a sync message did not serialise: {e}")))?;
    unknown_keys(message, &read, "$.message", &mut unknown);
    if unknown.is_empty() {
        return Ok(decoded);
    }
    Err(ApiError::InvalidBody {
        message: format!("{}: unknown field", unknown[0]),
        details: unknown
            .into_iter()
            .map(|path| {
                ErrorDetail::new(
                    path,
                    "unknown_field",
                    "this field is not part of sync schema version 1",
                )
            })
            .collect(),
    })
}

/// Paths of the keys of `sent` that the decoded message `read` (serialised again) does
/// not have: the fields serde ignored.
fn unknown_keys(sent: &Value, read: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, read) {
        (Value::Object(sent), Value::Object(read)) => {
            for (key, value) in sent {
                let at = body::member(path, key);
                match read.get(key) {
                    None => out.push(at),
                    Some(kept) => unknown_keys(value, kept, &at, out),
                }
            }
        }
        (Value::Array(sent), Value::Array(read)) => {
            for (i, (value, kept)) in sent.iter().zip(read).enumerate() {
                unknown_keys(value, kept, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A sync decoder's error as the answer: 400 naming the field, or 426 for a schema
/// version this server does not speak.
pub fn decode_error(error: DecodeError) -> ApiError {
    match error {
        DecodeError::UnsupportedVersion { found, supported } => {
            ApiError::UnsupportedSchemaVersion {
                found,
                supported,
                details: vec![ErrorDetail::new(
                    "$.schema_version",
                    "unsupported_schema_version",
                    format!("this server speaks sync schema version {supported}"),
                )],
            }
        }
        DecodeError::MissingVersion => ApiError::BadRequest {
            code: "missing_schema_version",
            message: format!(
                "a sync message is `{{\"schema_version\": {SCHEMA_VERSION}, \"message\": {{…}}}}`"
            ),
            details: vec![ErrorDetail::new(
                "$.schema_version",
                "missing_field",
                "schema_version is required",
            )],
        },
        DecodeError::Malformed(e) => ApiError::BadRequest {
            code: "malformed_sync_message",
            message: format!(
                "the body is not a sync message of schema version {SCHEMA_VERSION}: {e}"
            ),
            details: vec![ErrorDetail::new("$.message", "malformed", e.to_string())],
        },
        other => ApiError::bad_request("malformed_sync_message", other.to_string()),
    }
}

fn check_client_id(client_id: &ClientId) -> Result<(), ApiError> {
    let id = &client_id.0;
    let problem = if id.trim().is_empty() {
        Some("client_id is empty")
    } else if id.chars().count() > MAX_CLIENT_ID {
        Some("client_id is longer than 100 characters")
    } else if id.chars().any(char::is_control) {
        Some("client_id contains control characters")
    } else {
        None
    };
    match problem {
        Some(p) => Err(ApiError::validation(vec![ErrorDetail::new(
            "$.message.client_id",
            "invalid_client_id",
            p,
        )])),
        None => Ok(()),
    }
}

/// The protocol's refusals as answers.
fn server_error(error: ServerError) -> ApiError {
    match error {
        ServerError::Decode(e) => decode_error(e),
        ServerError::DeviceOfAnotherTechnician { .. } | ServerError::DeviceNotRegistered { .. } => {
            ApiError::DeviceRefused {
                message: error.to_string(),
            }
        }
        ServerError::MissingMutations { .. } => ApiError::Conflict {
            code: "missing_mutations",
            message: error.to_string(),
            details: vec![ErrorDetail::new(
                "$.message.mutations[0].id",
                "missing_mutations",
                "send every pending mutation, oldest first",
            )],
        },
        other => ApiError::Internal(other.to_string()),
    }
}

fn login(auth: &Auth) -> Result<TechnicianId, ApiError> {
    auth.require(roles::TECHNICIAN)?;
    let id = auth
        .technician_scope()?
        .ok_or_else(|| ApiError::Internal("a technician key without technician".into()))?;
    Ok(TechnicianId(id.to_owned()))
}

fn wire(text: String) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], text)
}

fn db_int(v: u64) -> Result<i64, ApiError> {
    i64::try_from(v).map_err(|_| ApiError::Internal(format!("{v} does not fit the database")))
}

fn stamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp(at.timestamp_millis())
}

// ---------------------------------------------------------------------------------------
// Push

#[utoipa::path(post, path = "/v1/sync/push", tag = "sync", security(("bearer" = [])),
    description = "A phone's pending mutations, applied each exactly once, in order, in one transaction; \
        a mutation that can never succeed is recorded as rejected (shown in the scope) and still \
        acknowledged. Answers `{type: ack, client_id, last_mutation_id}`. Role: technician (the device \
        is registered to the key's technician at first use; another technician's key gets 403).",
    request_body = SyncEnvelope,
    responses((status = 200, body = SyncEnvelope),
        (status = 400, body = crate::server::http::error::ErrorBody, description = "not a sync message"),
        (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody, description = "not a technician key, or another technician's device"),
        (status = 409, body = crate::server::http::error::ErrorBody, description = "`missing_mutations`: the push skips ids"),
        (status = 422, body = crate::server::http::error::ErrorBody),
        (status = 426, body = crate::server::http::error::ErrorBody, description = "`unsupported_schema_version`"),
        (status = 503, body = crate::server::http::error::ErrorBody, description = "nothing was applied; send again")))]
pub async fn push(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let login = login(&auth)?;
    let message: PushMessage = decode_strict(&body)?;
    check_client_id(&message.client_id)?;
    if message.mutations.len() > MAX_MUTATIONS_PER_PUSH {
        return Err(ApiError::validation(vec![ErrorDetail::new(
            "$.message.mutations",
            "too_many_mutations",
            format!("send at most {MAX_MUTATIONS_PER_PUSH} mutations per push"),
        )]));
    }
    // Missed visits' follow-up slots come from searches of their own snapshots, before
    // the write (as for POST /v1/bookings/{id}/events).
    let slots = job_lifecycle::missed_slots(&state, &message.mutations).await;
    let answer = state
        .db
        .write(move |tx| {
            let (login, message, slots) = (login.clone(), message.clone(), slots.clone());
            Box::pin(async move { push_with(tx, &login, &message, &slots, now()).await })
        })
        .await?;
    Ok(wire(answer.encode()))
}

/// Applies `push` from `login`'s device in `tx` (see the module docs).
pub async fn push_in(
    tx: &mut Tx,
    login: &TechnicianId,
    push: &PushMessage,
    at: DateTime<Utc>,
) -> Result<ServerMessage, ApiError> {
    push_with(tx, login, push, &MissedSlots::new(), at).await
}

/// [`push_in`] with the follow-up slots of the missed visits the push reports.
pub async fn push_with(
    tx: &mut Tx,
    login: &TechnicianId,
    push: &PushMessage,
    slots: &MissedSlots,
    at: DateTime<Utc>,
) -> Result<ServerMessage, ApiError> {
    let last = touch_device(tx, login, &push.client_id, at).await?;
    let todo = plan_push(last, push).map_err(server_error)?;
    let mut run = PushRun {
        login: login.clone(),
        client_id: push.client_id.clone(),
        at,
        jobs: BTreeMap::new(),
        views: BTreeSet::new(),
        writes: Writes::new(),
        slots,
    };
    let mut done = last;
    for m in todo {
        run.apply(tx, m).await?;
        done = m.id;
    }
    if done != last {
        const ADVANCE: &str = "UPDATE sync_devices SET last_mutation_id = $2 WHERE client_id = $1";
        let id = db_int(done.0)?;
        on_tx!(tx, |conn| {
            sqlx::query(ADVANCE)
                .bind(&push.client_id.0)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        run.finish(tx).await?;
    }
    Ok(ServerMessage::Ack {
        client_id: push.client_id.clone(),
        last_mutation_id: done,
    })
}

/// Registers the device to `login` if it is new, refuses it if it is another
/// technician's, and returns its `last_mutation_id` (its row locked until commit on
/// PostgreSQL, so two pushes of one device take turns).
async fn touch_device(
    tx: &mut Tx,
    login: &TechnicianId,
    client_id: &ClientId,
    at: DateTime<Utc>,
) -> Result<MutationId, ApiError> {
    const SQL: &str = "INSERT INTO sync_devices \
        (client_id, technician_id, last_mutation_id, registered_at, last_seen_at) \
        VALUES ($1, $2, 0, $3, $3) \
        ON CONFLICT (client_id) DO UPDATE SET last_seen_at = excluded.last_seen_at \
        RETURNING technician_id, last_mutation_id";
    let (owner, last): (String, i64) = on_tx!(tx, |conn| {
        sqlx::query_as(SQL)
            .bind(&client_id.0)
            .bind(&login.0)
            .bind(at)
            .fetch_one(&mut *conn)
            .await
    })?;
    check_device(client_id, Some(&TechnicianId(owner)), login).map_err(server_error)?;
    Ok(MutationId(u64::try_from(last).unwrap_or(0)))
}

/// One push's work in progress: the job records it read (and whether it changed them),
/// and the scope writes to make at the end.
struct PushRun<'s> {
    login: TechnicianId,
    client_id: ClientId,
    at: DateTime<Utc>,
    /// Job records read in this transaction: record, changed.
    jobs: BTreeMap<JobId, (JobRecord, bool)>,
    /// Jobs whose holder's view changed.
    views: BTreeSet<JobId>,
    writes: Writes,
    slots: &'s MissedSlots,
}

impl PushRun<'_> {
    async fn apply(&mut self, tx: &mut Tx, m: &Mutation) -> Result<(), ApiError> {
        let outcome = match Fact::parse(m) {
            Ok(fact) => self.record(tx, m, fact).await?,
            Err(rejection) => Err(rejection),
        };
        let Err(rejection) = outcome else {
            return Ok(());
        };
        let name: String = m.name.chars().take(MAX_STORED_NAME).collect();
        let stored = json!({"mutation": name, "id": m.id, "rejection": rejection});
        const SQL: &str = "INSERT INTO sync_rejections \
            (client_id, mutation_id, technician_id, name, rejection, rejected_at) \
            VALUES ($1, $2, $3, $4, $5, $6)";
        let (id, text) = (db_int(m.id.0)?, rejection_json(&rejection));
        on_tx!(tx, |conn| {
            sqlx::query(SQL)
                .bind(&self.client_id.0)
                .bind(id)
                .bind(&self.login.0)
                .bind(&name)
                .bind(&text)
                .bind(self.at)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.writes.put(
            &self.login,
            rejection_key(&self.client_id, m.id),
            Some(stored),
        );
        Ok(())
    }

    /// Merges `fact` into its job: `Ok(Err(_))` is a rejection to record.
    async fn record(
        &mut self,
        tx: &mut Tx,
        m: &Mutation,
        fact: Fact,
    ) -> Result<Result<(), Rejection>, ApiError> {
        let job_id = fact.job.clone();
        // Fact ids are unique across jobs (the primary key of sync_facts).
        const FACT_JOB: &str = "SELECT job_id FROM sync_facts WHERE fact_id = $1";
        let used_on: Option<String> = on_tx!(tx, |conn| {
            sqlx::query_scalar(FACT_JOB)
                .bind(&fact.id.0)
                .fetch_optional(&mut *conn)
                .await
        })?;
        if used_on.is_some_and(|j| j != job_id.0) {
            return Ok(Err(Rejection::FactIdReused { fact: fact.id }));
        }
        if !self.load(tx, &job_id).await? {
            return Ok(Err(
                if crate::server::catalog::jobs::exists(tx, &job_id.0).await? {
                    // Stored, but never assigned to anyone.
                    Rejection::NotYourJob { job: job_id }
                } else {
                    Rejection::UnknownJob { job: job_id }
                },
            ));
        }
        let sightings = match &fact.kind {
            FactKind::Equipment { serial, .. } => sightings(tx, serial).await?,
            _ => Vec::new(),
        };
        let mut candidate = self.jobs[&job_id].0.clone();
        let ctx = FactContext {
            technician: self.login.clone(),
            client_id: self.client_id.clone(),
            mutation_id: m.id,
            // Facts of a job in the order its (locked) record received them.
            seq: ServerSeq(candidate.facts().last().map_or(1, |f| f.seq.0 + 1)),
            received_at: stamp(self.at),
        };
        let flags = match apply_fact(&mut candidate, &ctx, fact, &sightings) {
            Err(rejection) => return Ok(Err(rejection)),
            Ok(FactOutcome::AlreadyRecorded) => return Ok(Ok(())),
            Ok(FactOutcome::Recorded { flags }) => flags,
        };
        let recorded = candidate.facts().last().expect("just recorded").clone();
        if !insert_fact(tx, &recorded, self.at).await? {
            // Another device's transaction took this fact id (on another job) after we
            // looked: its row won.
            return Ok(Err(Rejection::FactIdReused {
                fact: recorded.fact.id,
            }));
        }
        for flag in &flags {
            insert_flag(tx, &job_id, flag, self.at).await?;
            if let Flag::DuplicateSerial { other_job, .. } = flag {
                let mirror = duplicate_of(&job_id, &self.login, flag).expect("a duplicate");
                if other_job != &job_id && self.load(tx, other_job).await? {
                    let (other, changed) = self.jobs.get_mut(other_job).expect("loaded");
                    raise_flag(other, mirror.clone());
                    *changed = true;
                    insert_flag(tx, other_job, &mirror, self.at).await?;
                } else if other_job == &job_id {
                    raise_flag(&mut candidate, mirror.clone());
                    insert_flag(tx, &job_id, &mirror, self.at).await?;
                }
            }
        }
        // What the fact means beyond the job: customer messages, equipment records,
        // upsell offers; what does not fit the server's records is flagged.
        for flag in self.after_fact(tx, m, &candidate, &recorded).await? {
            sync_flags::raise(tx, &job_id.0, &flag, self.at).await?;
        }
        self.jobs.insert(job_id.clone(), (candidate, true));
        self.views.insert(job_id);
        Ok(Ok(()))
    }

    /// The consequences of a newly recorded fact outside its job record (see
    /// job_lifecycle.rs, equipment.rs, upsells.rs); returns the flags to raise.
    async fn after_fact(
        &self,
        tx: &mut Tx,
        m: &Mutation,
        record: &JobRecord,
        recorded: &despacho_mobile_sync::RecordedFact,
    ) -> Result<Vec<Value>, ApiError> {
        // The job's customer and booking, read only by the facts that need them (notes,
        // the commonest facts, need neither).
        async fn links(
            tx: &mut Tx,
            job: &str,
        ) -> Result<(Option<String>, Option<String>), ApiError> {
            const JOB: &str = "SELECT customer_id, booking_id FROM jobs WHERE id = $1";
            Ok(on_tx!(tx, |conn| {
                sqlx::query_as(JOB).bind(job).fetch_one(&mut *conn).await
            })?)
        }
        let fact = &recorded.fact;
        let job = &fact.job.0;
        let technician = &recorded.technician.0;
        match &fact.kind {
            FactKind::Status { status, reason } => {
                let (_, booking) = links(tx, job).await?;
                let mut flags = Vec::new();
                if let Some(booking) = &booking {
                    let s = job_lifecycle::StatusFact {
                        fact: &fact.id.0,
                        booking,
                        status: *status,
                        reason: *reason,
                        args: &m.args,
                        by: format!("sync:{}", self.client_id),
                    };
                    flags = job_lifecycle::status_reached(tx, &s, self.slots, self.at).await?;
                }
                if *status == despacho_mobile_sync::JobStatus::Completed {
                    equipment::complete_returns(tx, job, self.at).await?;
                }
                Ok(flags)
            }
            FactKind::Equipment { serial, action } => {
                let (customer, _) = links(tx, job).await?;
                let f = equipment::SerialFact {
                    fact: &fact.id.0,
                    job,
                    customer: customer.as_deref(),
                    technician,
                    serial,
                    installed: *action == EquipmentAction::Installed,
                    job_completed: record.status().0 == despacho_mobile_sync::JobStatus::Completed,
                };
                equipment::record_serial(tx, &f, self.at).await
            }
            FactKind::Upsell {
                product_code,
                price,
                billing,
                outcome,
            } => {
                let offer = upsells::Offer {
                    offer_id: &fact.id.0,
                    job,
                    technician,
                    product_code,
                    price_cents: price.0,
                    billing: match billing {
                        despacho_mobile_sync::Billing::OneOff => upsells::Billing::OneOff,
                        despacho_mobile_sync::Billing::Monthly => upsells::Billing::Monthly,
                    },
                    accepted: *outcome == despacho_mobile_sync::OfferOutcome::Accepted,
                    day: visit_day(tx, record).await?,
                };
                upsells::record_offer(tx, &offer, self.at).await
            }
            // Notes, photos and the customer's confirmation live in the record and in
            // sync_facts; dispatchers read them with GET /v1/jobs/{id}/facts.
            _ => Ok(Vec::new()),
        }
    }

    /// Reads job `id`'s record into the cache (locked on PostgreSQL); `false` if the
    /// job has none (never assigned, or no such job).
    async fn load(&mut self, tx: &mut Tx, id: &JobId) -> Result<bool, ApiError> {
        if self.jobs.contains_key(id) {
            return Ok(true);
        }
        match read_record(tx, id).await? {
            Some(record) => {
                self.jobs.insert(id.clone(), (record, false));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Saves the changed records and makes the scope writes, moving the versions.
    async fn finish(mut self, tx: &mut Tx) -> Result<(), ApiError> {
        for (id, (record, changed)) in &self.jobs {
            if *changed {
                save_record(tx, record, self.at).await?;
            }
            if self.views.contains(id) {
                if let Some(holder) = record.technician() {
                    let view = job_view(tx, record).await?;
                    self.writes.put(holder, job_key(id), Some(view));
                }
            }
        }
        commit_writes(tx, self.writes).await?;
        Ok(())
    }
}

fn rejection_json(rejection: &Rejection) -> String {
    serde_json::to_string(rejection).expect("a rejection serialises")
}

/// Earlier records of `serial`, on any job.
async fn sightings(tx: &mut Tx, serial: &str) -> Result<Vec<SerialSighting>, ApiError> {
    const SQL: &str = "SELECT fact FROM sync_facts WHERE serial = $1 ORDER BY received_at";
    let rows: Vec<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar(SQL)
            .bind(serial)
            .fetch_all(&mut *conn)
            .await
    })?;
    rows.iter()
        .map(|text| {
            let stored: StoredFact = serde_json::from_str(text)
                .map_err(|e| ApiError::Internal(format!("stored fact is not valid: {e}")))?;
            Ok(stored.sighting())
        })
        .collect()
}

/// A row of `sync_facts` as `fact` holds it: the fact and who sent it.
#[derive(Serialize, Deserialize)]
struct StoredFact {
    fact: Fact,
    technician: TechnicianId,
}

impl StoredFact {
    fn sighting(&self) -> SerialSighting {
        let (serial, action) = match &self.fact.kind {
            FactKind::Equipment { serial, action } => (serial.clone(), *action),
            _ => (String::new(), EquipmentAction::Installed),
        };
        SerialSighting {
            serial,
            action,
            job: self.fact.job.clone(),
            fact: self.fact.id.clone(),
            technician: self.technician.clone(),
        }
    }
}

/// Inserts a recorded fact; `false` if its id is taken.
async fn insert_fact(
    tx: &mut Tx,
    recorded: &despacho_mobile_sync::RecordedFact,
    at: DateTime<Utc>,
) -> Result<bool, ApiError> {
    const SQL: &str = "INSERT INTO sync_facts (fact_id, job_id, technician_id, client_id, \
        mutation_id, seq, kind, fact, serial, action, device_at, received_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
        ON CONFLICT (fact_id) DO NOTHING";
    let fact = &recorded.fact;
    let stored = serde_json::to_value(StoredFact {
        fact: fact.clone(),
        technician: recorded.technician.clone(),
    })
    .expect("a fact serialises");
    let kind = stored["fact"]["kind"].as_str().unwrap_or("").to_owned();
    let (serial, action) = match &fact.kind {
        FactKind::Equipment { serial, action } => (
            Some(serial.clone()),
            Some(serde_json::to_value(action).expect("an action serialises")),
        ),
        _ => (None, None),
    };
    let action = action.and_then(|a| a.as_str().map(str::to_owned));
    let (mutation_id, seq) = (db_int(recorded.mutation_id.0)?, db_int(recorded.seq.0)?);
    let text = stored.to_string();
    let n = on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(&fact.id.0)
            .bind(&fact.job.0)
            .bind(&recorded.technician.0)
            .bind(&recorded.client_id.0)
            .bind(mutation_id)
            .bind(seq)
            .bind(&kind)
            .bind(&text)
            .bind(serial.as_deref())
            .bind(action.as_deref())
            .bind(fact.at.0)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(n == 1)
}

/// Adds a flag to the dispatcher's queue (once per job and flag).
async fn insert_flag(
    tx: &mut Tx,
    job: &JobId,
    flag: &Flag,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let value = serde_json::to_value(flag).expect("a flag serialises");
    sync_flags::raise(tx, &job.0, &value, at).await
}

/// The day of `record`'s visit: its window's start in the operation's time zone.
async fn visit_day(tx: &mut Tx, record: &JobRecord) -> Result<chrono::NaiveDate, ApiError> {
    let tz: chrono_tz::Tz = crate::server::catalog::settings::settings_in(tx)
        .await?
        .time_zone
        .parse()
        .unwrap_or(chrono_tz::UTC);
    let start = DateTime::<Utc>::from_timestamp_millis(record.dispatch().window.start().0)
        .ok_or_else(|| {
            ApiError::Internal(format!("job {} has a window out of range", record.id()))
        })?;
    Ok(start.with_timezone(&tz).date_naive())
}

/// Job `id`'s sync record, locked until commit on PostgreSQL (SQLite has one writer).
pub(crate) async fn read_record(tx: &mut Tx, id: &JobId) -> Result<Option<JobRecord>, ApiError> {
    let sql = match tx.backend() {
        Backend::Sqlite => "SELECT record FROM sync_jobs WHERE job_id = $1",
        Backend::Postgres => "SELECT record FROM sync_jobs WHERE job_id = $1 FOR UPDATE",
    };
    let text: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar(sql)
            .bind(&id.0)
            .fetch_optional(&mut *conn)
            .await
    })?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| ApiError::Internal(format!("sync record of job {id} is not valid: {e}")))
    })
    .transpose()
}

pub(crate) async fn save_record(
    tx: &mut Tx,
    record: &JobRecord,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    const SQL: &str = "INSERT INTO sync_jobs (job_id, record, updated_at) VALUES ($1, $2, $3) \
        ON CONFLICT (job_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at";
    let text = serde_json::to_string(record).expect("a job record serialises");
    on_tx!(tx, |conn| {
        sqlx::query(SQL)
            .bind(&record.id().0)
            .bind(&text)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scope writes

/// Changes to technicians' scopes made by one transaction: (technician, key) → new
/// value, `None` to delete. The last write of a key wins.
#[derive(Debug, Default)]
pub struct Writes(BTreeMap<(TechnicianId, String), Option<Value>>);

impl Writes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, technician: &TechnicianId, key: String, value: Option<Value>) {
        self.0.insert((technician.clone(), key), value);
    }
}

/// Makes `writes` in `tx`: each scope that really changes moves to its next version
/// once (the row lock taken here is held until commit), and each written key records
/// that version. Scopes are taken in technician order. Returns the new versions.
pub async fn commit_writes(
    tx: &mut Tx,
    writes: Writes,
) -> Result<BTreeMap<TechnicianId, ScopeVersion>, ApiError> {
    const PRESENT: &str = "SELECT key FROM sync_entries \
        WHERE technician_id = $1 AND key = $2 AND value IS NOT NULL";
    const BUMP: &str = "INSERT INTO sync_scopes (technician_id, version) VALUES ($1, 1) \
        ON CONFLICT (technician_id) DO UPDATE SET version = sync_scopes.version + 1 \
        RETURNING version";
    const WRITE: &str = "INSERT INTO sync_entries (technician_id, key, value, version) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (technician_id, key) \
        DO UPDATE SET value = excluded.value, version = excluded.version";
    let mut by_scope: BTreeMap<TechnicianId, Vec<(String, Option<Value>)>> = BTreeMap::new();
    for ((technician, key), value) in writes.0 {
        by_scope.entry(technician).or_default().push((key, value));
    }
    let mut versions = BTreeMap::new();
    for (technician, entries) in by_scope {
        let mut real = Vec::new();
        for (key, value) in entries {
            // Deleting what the scope does not hold is no change.
            if value.is_none() {
                let present: Option<String> = on_tx!(tx, |conn| {
                    sqlx::query_scalar(PRESENT)
                        .bind(&technician.0)
                        .bind(&key)
                        .fetch_optional(&mut *conn)
                        .await
                })?;
                if present.is_none() {
                    continue;
                }
            }
            real.push((key, value));
        }
        if real.is_empty() {
            continue;
        }
        let version: i64 = on_tx!(tx, |conn| {
            sqlx::query_scalar(BUMP)
                .bind(&technician.0)
                .fetch_one(&mut *conn)
                .await
        })?;
        for (key, value) in real {
            let text = value.map(|v| v.to_string());
            on_tx!(tx, |conn| {
                sqlx::query(WRITE)
                    .bind(&technician.0)
                    .bind(&key)
                    .bind(text.as_deref())
                    .bind(version)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        versions.insert(
            technician,
            ScopeVersion(u64::try_from(version).unwrap_or(0)),
        );
    }
    Ok(versions)
}

// ---------------------------------------------------------------------------------------
// Pull

#[utoipa::path(post, path = "/v1/sync/pull", tag = "sync", security(("bearer" = [])),
    description = "The technician's scope since the cookie: `{client_id, base_cookie, cookie, \
        last_mutation_id, patch}`, read from one snapshot. A missing, forged, stale or foreign \
        cookie gets `clear` + the whole scope, never an error. Role: technician.",
    request_body = SyncEnvelope,
    responses((status = 200, body = SyncEnvelope),
        (status = 400, body = crate::server::http::error::ErrorBody, description = "not a sync message"),
        (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody, description = "not a technician key, or another technician's device"),
        (status = 422, body = crate::server::http::error::ErrorBody),
        (status = 426, body = crate::server::http::error::ErrorBody, description = "`unsupported_schema_version`"),
        (status = 503, body = crate::server::http::error::ErrorBody)))]
pub async fn pull(
    State(state): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let login = login(&auth)?;
    let request: PullRequest = decode_strict(&body)?;
    check_client_id(&request.client_id)?;
    let cookie = sync_cookie(&state).await?;
    for _ in 0..2 {
        let mut tx = state.db.begin_read().await?;
        let answer = pull_in(&mut tx, &login, &request, &cookie).await;
        tx.rollback().await?;
        match answer? {
            Some(text) => return Ok(wire(text)),
            None => {
                // First contact of this device: register it, then read.
                let (login, client_id) = (login.clone(), request.client_id.clone());
                state
                    .db
                    .write(move |tx| {
                        let (login, client_id) = (login.clone(), client_id.clone());
                        Box::pin(async move {
                            touch_device(tx, &login, &client_id, now()).await.map(drop)
                        })
                    })
                    .await?;
            }
        }
    }
    Err(ApiError::Internal(
        "a device registered for a pull is not visible".into(),
    ))
}

/// Answers `request` from the snapshot of `tx`; `None` if the device is not registered.
pub async fn pull_in(
    tx: &mut Tx,
    login: &TechnicianId,
    request: &PullRequest,
    cookie: &SyncCookie,
) -> Result<Option<String>, ApiError> {
    const DEVICE: &str =
        "SELECT technician_id, last_mutation_id FROM sync_devices WHERE client_id = $1";
    const VERSION: &str = "SELECT version FROM sync_scopes WHERE technician_id = $1";
    const SINCE: &str = "SELECT key, value FROM sync_entries \
        WHERE technician_id = $1 AND version > $2 ORDER BY key";
    const ALL: &str = "SELECT key, value FROM sync_entries \
        WHERE technician_id = $1 AND value IS NOT NULL ORDER BY key";
    let device: Option<(String, i64)> = on_tx!(tx, |conn| {
        sqlx::query_as(DEVICE)
            .bind(&request.client_id.0)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let Some((owner, last)) = device else {
        return Ok(None);
    };
    check_device(&request.client_id, Some(&TechnicianId(owner)), login).map_err(server_error)?;
    let version: Option<i64> = on_tx!(tx, |conn| {
        sqlx::query_scalar(VERSION)
            .bind(&login.0)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let snapshot = ScopeSnapshot {
        key: &cookie.key,
        epoch: cookie.epoch,
        technician: login,
        version: ScopeVersion(version.map_or(0, |v| u64::try_from(v).unwrap_or(0))),
        // Tombstones are kept, so any version of this epoch can be diffed from.
        oldest_diffable: ScopeVersion(0),
    };
    let plan = plan_pull(request.cookie.as_ref(), &snapshot);
    let rows: Vec<(String, Option<String>)> = match &plan {
        PullPlan::ChangesSince(since) => {
            let since = db_int(since.0)?;
            on_tx!(tx, |conn| {
                sqlx::query_as(SINCE)
                    .bind(&login.0)
                    .bind(since)
                    .fetch_all(&mut *conn)
                    .await
            })?
        }
        PullPlan::Reset(_) => on_tx!(tx, |conn| {
            sqlx::query_as(ALL)
                .bind(&login.0)
                .fetch_all(&mut *conn)
                .await
        })?,
    };
    let mut patch = Vec::with_capacity(rows.len() + 1);
    if let PullPlan::Reset(reason) = &plan {
        tracing::debug!(?reason, client = %request.client_id, "pull answered with a full snapshot");
        patch.push(PatchOp::Clear);
    }
    for (key, value) in rows {
        patch.push(match value {
            Some(text) => PatchOp::Put {
                key,
                value: serde_json::from_str(&text).map_err(|e| {
                    ApiError::Internal(format!("sync entry is not valid JSON: {e}"))
                })?,
            },
            None => PatchOp::Del { key },
        });
    }
    let last = MutationId(u64::try_from(last).unwrap_or(0));
    Ok(Some(
        pull_response(request, &snapshot, last, patch).encode(),
    ))
}

// ---------------------------------------------------------------------------------------
// Assignment (the dispatcher moves a job between scopes)

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Who should do the job.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignJob {
    /// A stored technician's id, or `null` to take the job from everyone. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub technician: Option<Option<String>>,
}

/// What an assignment did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub job_id: String,
    pub technician: Option<String>,
    pub previous_technician: Option<String>,
    /// `false` when the job already had this technician (nothing was written).
    pub changed: bool,
}

#[utoipa::path(post, path = "/v1/jobs/{id}/assign", tag = "jobs", security(("bearer" = [])),
    description = "Gives the job to a technician (or to nobody with `null`). In one transaction the \
        job leaves the former technician's sync scope and enters the new one's: it disappears from \
        one phone and appears on the other at their next pull. Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    request_body = AssignJob,
    responses((status = 200, body = Assignment),
        (status = 400, body = crate::server::http::error::ErrorBody), (status = 401, body = crate::server::http::error::ErrorBody),
        (status = 403, body = crate::server::http::error::ErrorBody), (status = 404, body = crate::server::http::error::ErrorBody),
        (status = 422, body = crate::server::http::error::ErrorBody, description = "missing or unknown technician")))]
pub async fn assign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Assignment>, ApiError> {
    auth.require(roles::STAFF)?;
    let input: AssignJob = body.json_object()?;
    let Some(technician) = input.technician else {
        return Err(ApiError::InvalidBody {
            message: "technician is required (a technician id, or null)".into(),
            details: vec![ErrorDetail::new(
                "$.technician",
                "missing_field",
                "technician is required (a technician id, or null)",
            )],
        });
    };
    let done = state
        .db
        .write(move |tx| {
            let (id, technician) = (id.clone(), technician.clone());
            Box::pin(async move { assign_in(tx, &id, technician.as_deref(), now()).await })
        })
        .await?;
    tracing::info!(job = %done.job_id, technician = ?done.technician, changed = done.changed, by = %auth.key_id, "job assigned");
    Ok(Json(done))
}

/// Assigns job `id` to `technician` in `tx` and moves it between sync scopes.
pub async fn assign_in(
    tx: &mut Tx,
    id: &str,
    technician: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Assignment, ApiError> {
    let sql = match tx.backend() {
        Backend::Sqlite => "SELECT data, assigned_technician FROM jobs WHERE id = $1",
        Backend::Postgres => "SELECT data, assigned_technician FROM jobs WHERE id = $1 FOR UPDATE",
    };
    let row: Option<(String, Option<String>)> = on_tx!(tx, |conn| {
        sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let Some((data, previous)) = row else {
        return Err(ApiError::not_found("job", id));
    };
    if let Some(t) = technician {
        if !technicians::exists(tx, t).await? {
            return Err(ApiError::validation(vec![ErrorDetail::new(
                "$.technician",
                "unknown_technician",
                format!("there is no technician with id `{t}`"),
            )]));
        }
    }
    let job_id = JobId(id.to_owned());
    let mut record = match read_record(tx, &job_id).await? {
        Some(r) => r,
        None => {
            let input: JobInput = serde_json::from_str(&data)
                .map_err(|e| ApiError::Internal(format!("stored job `{id}`: {e}")))?;
            JobRecord::new(job_id.clone(), dispatch_fields(&input)?)
        }
    };
    let before = record.technician().cloned();
    let change = DispatchChange::Assign {
        technician: technician.map(TechnicianId::from),
    };
    let changed = apply_dispatch(&mut record, change);
    if changed || previous.as_deref() != technician {
        const SQL: &str = "UPDATE jobs SET assigned_technician = $2, updated_at = $3 WHERE id = $1";
        on_tx!(tx, |conn| {
            sqlx::query(SQL)
                .bind(id)
                .bind(technician)
                .bind(at)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
    }
    if changed {
        save_record(tx, &record, at).await?;
        let mut writes = Writes::new();
        if let Some(old) = &before {
            writes.put(old, job_key(&job_id), None);
        }
        if let Some(holder) = record.technician() {
            writes.put(holder, job_key(&job_id), Some(job_view(tx, &record).await?));
        }
        commit_writes(tx, writes).await?;
    }
    Ok(Assignment {
        job_id: id.to_owned(),
        technician: technician.map(str::to_owned),
        previous_technician: before.map(|t| t.0).or(previous),
        changed,
    })
}

/// The dispatcher's fields of a stored job: its first window and its address (or
/// coordinates).
pub(crate) fn dispatch_fields(job: &JobInput) -> Result<DispatchFields, ApiError> {
    let window = job
        .windows
        .first()
        .and_then(|w| {
            TimeWindow::new(
                Timestamp(w.start.timestamp_millis()),
                Timestamp(w.end.timestamp_millis()),
            )
        })
        .ok_or_else(|| {
            ApiError::Internal(format!("stored job `{}` has no valid window", job.id))
        })?;
    let address = job
        .place
        .address
        .clone()
        .unwrap_or_else(|| format!("{:.5}, {:.5}", job.place.lat, job.place.lon));
    Ok(DispatchFields {
        technician: None,
        window,
        address,
        cancelled: false,
    })
}

/// What the holder's phone shows of a job: the sync record's view (dispatcher fields,
/// status, facts) and `details`, the dispatcher's other words on it (kind, duration,
/// notes, serials to collect, customer, booking), read from `jobs`.
pub async fn job_view(tx: &mut Tx, record: &JobRecord) -> Result<Value, ApiError> {
    const SQL: &str =
        "SELECT data, notes, collect_serials, customer_id, booking_id FROM jobs WHERE id = $1";
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = on_tx!(tx, |conn| {
        sqlx::query_as(SQL)
            .bind(&record.id().0)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let mut view = record.view();
    if let Some((data, notes, serials, customer, booking)) = row {
        let job: JobInput = serde_json::from_str(&data)
            .map_err(|e| ApiError::Internal(format!("stored job `{}`: {e}", record.id())))?;
        let serials: Vec<String> = serials
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| ApiError::Internal(format!("stored serials of `{}`: {e}", record.id())))?
            .unwrap_or_default();
        view["details"] = json!({
            "kind": job.kind,
            "duration_minutes": job.duration_minutes,
            "notes": notes,
            "collect_serials": serials,
            "customer_id": customer,
            "booking_id": booking,
        });
    }
    Ok(view)
}

/// A dispatcher's edit of job `id` reaching its holder's phone: `changes` (window,
/// address) go into the sync record, and the holder's scope gets the job's new view
/// (which also shows the notes and serials to collect) at the next version. Nothing
/// happens for a job never assigned (it has no record; its first assignment shows it).
pub async fn dispatcher_edit(
    tx: &mut Tx,
    id: &str,
    changes: Vec<DispatchChange>,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let job_id = JobId(id.to_owned());
    let Some(mut record) = read_record(tx, &job_id).await? else {
        return Ok(());
    };
    let mut changed = false;
    for change in changes {
        changed |= apply_dispatch(&mut record, change);
    }
    if changed {
        save_record(tx, &record, at).await?;
    }
    if let Some(holder) = record.technician() {
        let mut writes = Writes::new();
        writes.put(holder, job_key(&job_id), Some(job_view(tx, &record).await?));
        commit_writes(tx, writes).await?;
    }
    Ok(())
}

/// What technicians recorded on a job, for dispatchers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JobFacts {
    pub job_id: String,
    /// As the holder's phone shows it: dispatcher fields, `status`, `failure_reason`,
    /// `facts` (status events, notes, photos, upsell offers, serials, the customer's
    /// confirmation) in server order, each with its technician, and `details`.
    #[schema(value_type = Object)]
    pub record: Value,
    /// Every flag raised on the job, open or resolved, oldest first.
    pub flags: Vec<crate::server::sync::sync_flags::SyncFlag>,
}

#[utoipa::path(get, path = "/v1/jobs/{id}/facts", tag = "jobs", security(("bearer" = [])),
    description = "What technicians recorded on the job (status events, notes, photos, upsell offers, serials, the \
        customer's confirmation) in server order, and the flags raised on it. A job never assigned has no facts. \
        Roles: admin, dispatcher.",
    params(("id" = String, Path)),
    responses((status = 200, body = JobFacts),
        (status = 401, body = crate::server::http::error::ErrorBody), (status = 403, body = crate::server::http::error::ErrorBody),
        (status = 404, body = crate::server::http::error::ErrorBody)))]
pub async fn job_facts(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<JobFacts>, ApiError> {
    auth.require(roles::STAFF)?;
    let mut tx = state.db.begin_read().await?;
    let found = job_facts_in(&mut tx, &id).await;
    tx.rollback().await?;
    Ok(Json(found?))
}

async fn job_facts_in(tx: &mut Tx, id: &str) -> Result<JobFacts, ApiError> {
    if !crate::server::catalog::jobs::exists(tx, id).await? {
        return Err(ApiError::not_found("job", id));
    }
    // A read snapshot: no lock (read_record locks on PostgreSQL).
    let text: Option<String> = on_tx!(tx, |conn| {
        sqlx::query_scalar("SELECT record FROM sync_jobs WHERE job_id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    })?;
    let record = match text {
        Some(t) => {
            let record: JobRecord = serde_json::from_str(&t).map_err(|e| {
                ApiError::Internal(format!("sync record of job {id} is not valid: {e}"))
            })?;
            job_view(tx, &record).await?
        }
        None => json!({"job": id, "facts": []}),
    };
    Ok(JobFacts {
        job_id: id.to_owned(),
        record,
        flags: crate::server::sync::sync_flags::of_job(tx, id).await?,
    })
}
