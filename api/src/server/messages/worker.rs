//! The outbox worker: delivers customer messages at least once (RELIABILITY.md,
//! Transactional outbox).
//!
//! One round ([`Worker::run_once`]):
//!
//! 1. **Claim** up to `batch` due rows by lease, in one statement: `status = 'pending'`,
//!    `next_attempt_at <= now`, no live lease; `lease_owner` = a token new for this
//!    claim, `lease_until = now + lease`, `attempts + 1`. On PostgreSQL the candidates
//!    are picked with `FOR UPDATE SKIP LOCKED`, so workers on one database never claim
//!    the same row; on SQLite the claim runs in the single writer's turn.
//! 2. **Decide and deliver** each row concurrently: reminders whose window has begun are
//!    `suppressed`; a reminder due in the customer's quiet hours (21:00–08:00 in their
//!    time zone) is deferred to 08:00 (suppressed if that is after the window); the
//!    channel is the customer's preference unless opted out (`suppressed` when every
//!    channel is; e-mail only with an SMTP relay and an address); the text is rendered
//!    from the templates; the webhook is POSTed or the e-mail sent.
//! 3. **Complete**, only while the row's lease is still this claim's: `delivered`; a
//!    retry at `now + backoff` (exponential from `backoff_base`, capped, with jitter),
//!    or `dead` after `max_attempts`; `dead` at once for a permanent refusal (4xx).
//!
//! A worker that dies between 1 and 3 leaves the lease to expire: the row is claimed
//! again and sent again under the same event id (at most once more per lease). The lease
//! must outlast a delivery (`lease` > endpoints × `http_timeout`).
//!
//! It runs inside `despacho serve` (a task that stops on shutdown, after its current
//! round) and alone as `despacho worker`. Between rounds, once a minute, it also flags
//! tomorrow's visits the customer has not confirmed to the dispatchers
//! ([`crate::server::messages::dispatcher_queue::flag_no_show_risks`]).

use crate::server::catalog::settings::Settings;
use crate::server::http::error::ApiError;
use crate::server::messages::notify::email::{self, SmtpArgs, SmtpConfig};
use crate::server::messages::notify::targets::{WebhookTargetArgs, WebhookTargets};
use crate::server::messages::notify::templates::{
    self, Facts, MessageKind, TemplateError, Templates,
};
use crate::server::messages::notify::webhook::{self, Delivery, Endpoint};
use crate::server::messages::notify::{ics, Channel};
use crate::server::messages::outbox::Payload;
use crate::server::store::db::Db;
use crate::server::store::db::{on_pool, on_tx};
use chrono::{DateTime, Days, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The time a worker goes by (tests move it; the service uses the system clock).
pub use crate::server::store::clock::Clock;

/// How a worker behaves.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Names the worker in leases and logs (a random suffix is added per claim).
    pub name: String,
    /// Rows claimed per round.
    pub batch: u32,
    /// How long a claim is this worker's alone.
    pub lease: Duration,
    /// Pause when nothing was due.
    pub idle_poll: Duration,
    /// Attempts before a retryable failure becomes `dead`.
    pub max_attempts: u32,
    /// First retry after about this long, doubling per attempt…
    pub backoff_base: Duration,
    /// …up to this.
    pub backoff_cap: Duration,
    /// Whole HTTP request (connect, send, answer).
    pub http_timeout: Duration,
    /// Reminders are not sent from `quiet_start` to `quiet_end`, customer's local time.
    pub quiet_start: NaiveTime,
    pub quiet_end: NaiveTime,
    /// The SMTP relay of the e-mail channel; without it there is no e-mail.
    pub smtp: Option<SmtpConfig>,
    /// How often the evening no-show check runs between rounds.
    pub no_show_check: Duration,
    /// Networks webhooks may reach besides the public internet (none by default).
    pub webhook_targets: WebhookTargets,
    pub clock: Clock,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("name", &self.name)
            .field("batch", &self.batch)
            .field("lease", &self.lease)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("http_timeout", &self.http_timeout)
            .field("smtp", &self.smtp)
            .finish_non_exhaustive()
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: "worker".to_owned(),
            batch: 16,
            lease: Duration::from_secs(120),
            idle_poll: Duration::from_secs(1),
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(10),
            quiet_start: NaiveTime::from_hms_opt(21, 0, 0).expect("a time"),
            quiet_end: NaiveTime::from_hms_opt(8, 0, 0).expect("a time"),
            smtp: None,
            no_show_check: Duration::from_secs(60),
            webhook_targets: WebhookTargets::default(),
            clock: crate::server::store::clock::system(),
        }
    }
}

/// Arguments of `despacho worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// sqlite://PATH or postgres://USER@HOST:PORT/DB (the service's database).
    #[arg(long, value_name = "URL", default_value = "sqlite://./despacho.db")]
    pub database_url: String,
    /// Seconds a claimed message stays this worker's before another may take it.
    #[arg(long, default_value_t = 120)]
    pub lease_seconds: u64,
    /// Messages claimed per round.
    #[arg(long, default_value_t = 16)]
    pub batch: u32,
    /// Attempts before a message is dead.
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
    #[command(flatten)]
    pub smtp: SmtpArgs,
    #[command(flatten)]
    pub webhook_targets: WebhookTargetArgs,
}

/// A claimed row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub booking_id: String,
    pub customer_id: String,
    pub channel: String,
    pub payload: String,
    /// Including this claim.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// This claim's lease token.
    pub lease_owner: String,
}

/// What became of one claimed row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        channel: Channel,
    },
    Retry {
        reason: String,
    },
    Dead {
        reason: String,
    },
    Suppressed {
        reason: String,
    },
    /// Quiet hours: due again then (the attempt is given back).
    Deferred {
        until: DateTime<Utc>,
    },
}

/// What a round did, by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
    pub suppressed: usize,
    pub deferred: usize,
    /// Completions refused because the lease had passed to another claim.
    pub lease_lost: usize,
}

/// The customer as a message needs them.
#[derive(Debug, sqlx::FromRow)]
struct Recipient {
    id: String,
    name: String,
    phone: Option<String>,
    email: Option<String>,
    time_zone: Option<String>,
    language: Option<String>,
    preferred_channel: Option<String>,
    #[sqlx(try_from = "String")]
    opt_out: crate::server::catalog::customers::OptOut,
}

/// What every row of a round shares.
struct RoundContext {
    settings: Settings,
    endpoints: Vec<Endpoint>,
}

/// Delivers the outbox. Cheap to clone (a pool, an HTTP agent, `Arc`s).
#[derive(Clone)]
pub struct Worker {
    db: Db,
    config: WorkerConfig,
    templates: &'static Templates,
    agent: ureq::Agent,
    mailer: Option<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `db`; the templates are checked here (an error stops the start).
    pub fn new(db: Db, config: WorkerConfig) -> Result<Worker, TemplateError> {
        Ok(Worker {
            agent: webhook::agent(config.http_timeout, config.webhook_targets.clone()),
            mailer: config.smtp.as_ref().map(SmtpConfig::transport),
            templates: templates::builtin()?,
            db,
            config,
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    fn now(&self) -> DateTime<Utc> {
        (self.config.clock)()
    }

    /// Claims up to `batch` due rows (see the module's step 1).
    pub async fn claim(&self) -> Result<Vec<Claimed>, ApiError> {
        let now = self.now();
        let owner = crate::server::store::ids::new_id::<6>(&self.config.name)?;
        let until = now + TimeDelta::from_std(self.config.lease).unwrap_or(TimeDelta::MAX);
        let limit = i64::from(self.config.batch.max(1));
        let pick = match self.db.backend() {
            crate::server::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            crate::server::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' \
               AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
               ORDER BY next_attempt_at, id LIMIT $4 {pick}) \
             RETURNING id, kind, booking_id, customer_id, channel, payload, attempts, \
               created_at, lease_owner"
        );
        self.db
            .write(move |tx| {
                let (sql, owner) = (sql.clone(), owner.clone());
                Box::pin(async move {
                    Ok(on_tx!(tx, |conn| {
                        sqlx::query_as::<_, Claimed>(&sql)
                            .bind(&owner)
                            .bind(until)
                            .bind(now)
                            .bind(limit)
                            .fetch_all(&mut *conn)
                            .await
                    })?)
                })
            })
            .await
    }

    /// One round: claim, deliver concurrently, complete (see the module's steps).
    pub async fn run_once(&self) -> Result<Round, ApiError> {
        let claimed = self.claim().await?;
        let mut round = Round {
            claimed: claimed.len(),
            ..Round::default()
        };
        if claimed.is_empty() {
            return Ok(round);
        }
        let context = Arc::new(RoundContext {
            settings: self.db.settings().await?,
            endpoints: crate::server::messages::webhook_endpoints::active(&self.db).await?,
        });
        let mut tasks = tokio::task::JoinSet::new();
        for row in claimed {
            let (worker, context) = (self.clone(), context.clone());
            tasks.spawn(async move {
                let outcome = worker.settle(&row, worker.process(&row, &context).await);
                let kept = worker.complete(&row, &outcome).await;
                (row.id, outcome, kept)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (id, outcome, kept) =
                done.map_err(|e| ApiError::Internal(format!("a delivery task failed: {e}")))?;
            match kept {
                Ok(true) => {}
                Ok(false) => {
                    round.lease_lost += 1;
                    tracing::warn!(event = %id, "lease lost before completion; another worker owns the message");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(event = %id, error = %e, "cannot record a delivery; the lease will expire and it is sent again");
                    continue;
                }
            }
            match &outcome {
                Outcome::Delivered { .. } => round.delivered += 1,
                Outcome::Retry { reason } => {
                    round.retried += 1;
                    tracing::info!(event = %id, %reason, "delivery failed; will retry");
                }
                Outcome::Dead { reason } => {
                    round.dead += 1;
                    tracing::warn!(event = %id, %reason, "message dead");
                }
                Outcome::Suppressed { .. } => round.suppressed += 1,
                Outcome::Deferred { .. } => round.deferred += 1,
            }
        }
        Ok(round)
    }

    /// Runs rounds until `shutdown` turns true (or its sender is dropped), pausing
    /// `idle_poll` when nothing was due. The round in progress is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.config.name, "outbox worker started");
        let mut last_check: Option<std::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_check.is_none_or(|t| t.elapsed() >= self.config.no_show_check) {
                last_check = Some(std::time::Instant::now());
                match self.flag_no_show_risks().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(flagged = n, "visits at risk of a no-show"),
                    Err(e) => tracing::warn!(error = %e, "no-show check failed"),
                }
            }
            let busy = match self.run_once().await {
                Ok(round) => round.claimed > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox round failed");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    () = tokio::time::sleep(self.config.idle_poll) => {}
                    changed = shutdown.changed() => if changed.is_err() { break },
                }
            }
        }
        tracing::info!(worker = %self.config.name, "outbox worker stopped");
    }

    /// Decides what to do with a claimed row and does it (no database write).
    async fn process(&self, row: &Claimed, context: &RoundContext) -> Outcome {
        let dead = |reason: String| Outcome::Dead { reason };
        let Some(kind) = MessageKind::parse(&row.kind) else {
            return dead(format!("unknown message kind `{}`", row.kind));
        };
        let payload: Payload = match serde_json::from_str(&row.payload) {
            Ok(p) => p,
            Err(e) => return dead(format!("the stored payload is not valid: {e}")),
        };
        let recipient = match self.recipient(&row.customer_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return dead(format!("customer `{}` is gone", row.customer_id)),
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("cannot read the customer: {e}"),
                }
            }
        };
        let tz: Tz = recipient
            .time_zone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .or_else(|| context.settings.time_zone.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        let window = payload.booking.window;
        // A survey or an equipment-return reminder waits for the end of quiet hours
        // (after the visit: no window to miss).
        if matches!(
            kind,
            MessageKind::SurveyRequest | MessageKind::EquipmentReturnReminder
        ) {
            if let Some(until) = self.quiet_until(self.now(), tz) {
                return Outcome::Deferred { until };
            }
        }
        if kind == MessageKind::BookingReminder {
            let now = self.now();
            if now >= window.start {
                return Outcome::Suppressed {
                    reason: "the visit window has begun; a reminder is pointless".to_owned(),
                };
            }
            if let Some(until) = self.quiet_until(now, tz) {
                if until >= window.end {
                    return Outcome::Suppressed {
                        reason: "quiet hours last until the visit window ends".to_owned(),
                    };
                }
                return Outcome::Deferred { until };
            }
        }
        let channel = match choose_channel(&recipient, &row.channel, self.mailer.is_some()) {
            Ok(c) => c,
            Err(reason) => return Outcome::Suppressed { reason },
        };
        let offered: Vec<(DateTime<Utc>, DateTime<Utc>)> = payload
            .offered_slots
            .iter()
            .flatten()
            .filter_map(|slot| {
                let at = |f: &str| {
                    DateTime::parse_from_rfc3339(slot[f].as_str()?)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                };
                Some((at("start")?, at("end")?))
            })
            .collect();
        let facts = Facts {
            customer_name: &recipient.name,
            visit: payload.booking.kind,
            window: (window.start, window.end),
            previous: payload.previous_window.map(|w| (w.start, w.end)),
            reference: &payload.booking.token,
            eta: payload.eta.map(|w| (w.start, w.end)),
            offered: &offered,
        };
        let rendered = self.templates.render(
            kind,
            recipient.language.as_deref(),
            &context.settings.default_language,
            tz,
            &facts,
        );
        let ics = matches!(
            kind,
            MessageKind::BookingConfirmed | MessageKind::BookingRescheduled
        )
        .then(|| {
            ics::calendar(&ics::Event {
                booking_id: &payload.booking.id,
                start: window.start,
                end: window.end,
                stamp: row.created_at,
                sequence: payload.sequence,
                summary: templates::visit_name(rendered.language, payload.booking.kind),
                description: &rendered.text,
                location: payload.booking.address.as_deref(),
            })
        });
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).fixed_offset();
        let mut body = json!({
            "event_id": row.id,
            "kind": kind.as_str(),
            "created_at": row.created_at,
            "attempt": row.attempts,
            "channel": channel.as_str(),
            "booking": {
                "id": payload.booking.id,
                "reference": payload.booking.token,
                "date": payload.booking.date,
                "window": {"start": local(window.start), "end": local(window.end)},
                "duration_minutes": payload.booking.duration_minutes,
                "kind": payload.booking.kind,
                "address": payload.booking.address,
            },
            "customer": {
                "id": recipient.id,
                "name": recipient.name,
                "phone": recipient.phone,
                "email": recipient.email,
                "time_zone": tz.name(),
            },
            "language": rendered.language,
            "text": rendered.text,
        });
        if let Some(w) = payload.previous_window {
            body["previous_window"] = json!({"start": local(w.start), "end": local(w.end)});
        }
        if let Some(m) = payload.offset_minutes {
            body["reminder_offset_minutes"] = json!(m);
        }
        if let Some(ics) = ics {
            body["ics"] = json!(ics);
        }
        if let Some(w) = payload.eta {
            body["eta"] = json!({"start": local(w.start), "end": local(w.end)});
        }
        if let Some(reason) = &payload.reason {
            body["reason"] = json!(reason);
        }
        if let Some(slots) = &payload.offered_slots {
            body["offered_slots"] = json!(slots);
            body["reschedule_with"] = json!(format!(
                "POST /v1/bookings/{}/reschedule",
                payload.booking.id
            ));
        }
        if kind == MessageKind::SurveyRequest {
            body["survey"] = json!({
                "csat": {"min": 1, "max": 5},
                "nps": {"min": 0, "max": 10},
                "reply_with": "POST /v1/chat/inbound {\"intent\": \"survey\", \"survey\": \"csat\" | \"nps\", \"score\": …}",
            });
        }
        match channel {
            Channel::Webhook => self.send_webhooks(&row.id, &body, &context.endpoints).await,
            Channel::Email => {
                let email = email::Email {
                    event_id: &row.id,
                    to_name: &recipient.name,
                    to_address: recipient.email.as_deref().unwrap_or(""),
                    subject: email::subject(kind, rendered.language, &payload.booking.token),
                    text: &rendered.text,
                    language: rendered.language,
                    ics: body["ics"]
                        .as_str()
                        .map(|ics| (format!("{}.ics", payload.booking.token), ics.to_owned())),
                };
                self.send_email(&email).await
            }
        }
    }

    /// Sends `email` through the SMTP relay.
    async fn send_email(&self, email: &email::Email<'_>) -> Outcome {
        let (Some(mailer), Some(config)) = (&self.mailer, &self.config.smtp) else {
            return Outcome::Retry {
                reason: "no SMTP relay is configured on this worker".to_owned(),
            };
        };
        match email::send(mailer, config, email).await {
            Delivery::Delivered => Outcome::Delivered {
                channel: Channel::Email,
            },
            Delivery::Retry(reason) => Outcome::Retry { reason },
            Delivery::Permanent(reason) => Outcome::Dead { reason },
        }
    }

    /// Flags to the dispatchers, once each, the visits whose evening before (18:00,
    /// customer's time) has come without the customer's confirmation; the number flagged.
    pub async fn flag_no_show_risks(&self) -> Result<usize, ApiError> {
        crate::server::messages::dispatcher_queue::flag_no_show_risks(&self.db, self.now()).await
    }

    /// POSTs `body` to every endpoint in turn; the first that does not take it decides.
    async fn send_webhooks(
        &self,
        event_id: &str,
        body: &serde_json::Value,
        endpoints: &[Endpoint],
    ) -> Outcome {
        if endpoints.is_empty() {
            return Outcome::Retry {
                reason: "no active webhook endpoint; add one with POST /v1/webhook-endpoints"
                    .to_owned(),
            };
        }
        let bytes = Arc::new(serde_json::to_vec(body).expect("a message serialises"));
        for endpoint in endpoints {
            let (agent, endpoint, id, bytes) = (
                self.agent.clone(),
                endpoint.clone(),
                event_id.to_owned(),
                bytes.clone(),
            );
            let sent = tokio::task::spawn_blocking(move || {
                // The receiver's clock, not a test's: the real time.
                let timestamp = Utc::now().timestamp();
                webhook::post(&agent, &endpoint, &id, timestamp, &bytes)
            })
            .await;
            match sent {
                Ok(Delivery::Delivered) => {}
                Ok(Delivery::Retry(reason)) => return Outcome::Retry { reason },
                Ok(Delivery::Permanent(reason)) => return Outcome::Dead { reason },
                Err(e) => {
                    return Outcome::Retry {
                        reason: format!("the delivery task failed: {e}"),
                    }
                }
            }
        }
        Outcome::Delivered {
            channel: Channel::Webhook,
        }
    }

    async fn recipient(&self, id: &str) -> Result<Option<Recipient>, sqlx::Error> {
        on_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT id, name, phone, email, time_zone, language, preferred_channel, opt_out \
                 FROM customers WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })
    }

    /// When quiet hours at `now` in `tz` end (the next `quiet_end`, local), or `None`
    /// outside them.
    fn quiet_until(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&tz);
        let time = local.time();
        let (start, end) = (self.config.quiet_start, self.config.quiet_end);
        let quiet = if start <= end {
            start <= time && time < end
        } else {
            time >= start || time < end
        };
        if !quiet {
            return None;
        }
        let mut day = local.date_naive();
        if time >= end {
            day = day.checked_add_days(Days::new(1))?;
        }
        let at = day.and_time(end);
        // A local time in a DST gap does not exist: the hour after it does.
        tz.from_local_datetime(&at)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(at + TimeDelta::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
    }

    /// How long before attempt `attempts + 1`: `base × 2^(attempts − 1)`, capped, the
    /// second half random (jitter spreads the retries of many rows).
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.max(1) - 1).unwrap_or(0).min(30);
        let full = self
            .config
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.config.backoff_cap);
        let half = full / 2;
        let jitter = fastrand::u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX));
        half + Duration::from_millis(jitter)
    }

    /// `outcome` as it will be recorded: a retry of a row out of attempts is dead.
    pub fn settle(&self, row: &Claimed, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Retry { reason } if row.attempts >= self.max_attempts() => Outcome::Dead {
                reason: format!("gave up after {} attempts: {reason}", row.attempts),
            },
            other => other,
        }
    }

    fn max_attempts(&self) -> i32 {
        i32::try_from(self.config.max_attempts.max(1)).unwrap_or(i32::MAX)
    }

    /// Records `outcome` ([`Worker::settle`]d), only while `row`'s lease is still this claim's and the row is
    /// pending (a reschedule may have superseded it). `false` when it was not.
    pub async fn complete(&self, row: &Claimed, outcome: &Outcome) -> Result<bool, ApiError> {
        let now = self.now();
        let outcome = &self.settle(row, outcome.clone());
        let (status, channel, next, error, attempts_back): (
            &str,
            Option<&str>,
            Option<DateTime<Utc>>,
            Option<String>,
            i32,
        ) = match outcome {
            Outcome::Delivered { channel } => ("delivered", Some(channel.as_str()), None, None, 0),
            Outcome::Retry { reason } => {
                let pause =
                    TimeDelta::from_std(self.backoff(row.attempts)).unwrap_or(TimeDelta::MAX);
                ("pending", None, Some(now + pause), Some(reason.clone()), 0)
            }
            Outcome::Dead { reason } => ("dead", None, None, Some(reason.clone()), 0),
            Outcome::Suppressed { reason } => ("suppressed", None, None, Some(reason.clone()), 0),
            Outcome::Deferred { until } => (
                "pending",
                None,
                Some(*until),
                Some("deferred: quiet hours".to_owned()),
                1,
            ),
        };
        let delivered_at = (status == "delivered").then_some(now);
        const SQL: &str = "UPDATE outbox SET status = $1, channel = COALESCE($2, channel), \
            next_attempt_at = COALESCE($3, next_attempt_at), last_error = $4, \
            delivered_at = $5, attempts = attempts - $6, lease_owner = NULL, lease_until = NULL \
            WHERE id = $7 AND lease_owner = $8 AND status = 'pending'";
        let (id, owner) = (row.id.clone(), row.lease_owner.clone());
        let error = error.map(|e| e.chars().take(1000).collect::<String>());
        let changed = self
            .db
            .write(move |tx| {
                let (id, owner, error) = (id.clone(), owner.clone(), error.clone());
                Box::pin(async move {
                    Ok(on_tx!(tx, |conn| {
                        sqlx::query(SQL)
                            .bind(status)
                            .bind(channel)
                            .bind(next)
                            .bind(&error)
                            .bind(delivered_at)
                            .bind(attempts_back)
                            .bind(&id)
                            .bind(&owner)
                            .execute(&mut *conn)
                            .await
                            .map(|r| r.rows_affected())
                    })?)
                })
            })
            .await?;
        Ok(changed == 1)
    }
}

/// The channel a message goes on: the customer's preference (else the row's), else any
/// other channel this worker can use for them (e-mail needs an SMTP relay and an
/// address), never one the customer opted out of.
fn choose_channel(recipient: &Recipient, row_channel: &str, smtp: bool) -> Result<Channel, String> {
    let preferred = recipient
        .preferred_channel
        .as_deref()
        .or(Some(row_channel))
        .and_then(Channel::parse)
        .unwrap_or(Channel::Webhook);
    let candidates = std::iter::once(preferred).chain(Channel::ALL);
    let mut refused = Vec::new();
    for c in candidates {
        if recipient.opt_out.contains(c) {
            if !refused.contains(&c) {
                refused.push(c);
            }
            continue;
        }
        let reachable = match c {
            Channel::Email => recipient.email.is_some(),
            Channel::Webhook => true,
        };
        if c.available(smtp) && reachable {
            return Ok(c);
        }
    }
    if refused.is_empty() {
        Err("no channel of this worker reaches the customer".to_owned())
    } else {
        let names: Vec<&str> = refused.iter().map(|c| c.as_str()).collect();
        Err(format!("the customer opted out of {}", names.join(", ")))
    }
}

/// `despacho worker`: delivers the outbox of the database at `args.database_url` until
/// Ctrl-C or SIGTERM.
pub async fn run_alone(args: WorkerArgs) -> Result<(), crate::server::ServeError> {
    crate::server::init_logging();
    let db = Db::connect(&args.database_url, 4).await?;
    let config = WorkerConfig {
        name: format!("worker-{}", std::process::id()),
        lease: Duration::from_secs(args.lease_seconds.max(1)),
        batch: args.batch.max(1),
        max_attempts: args.max_attempts.max(1),
        smtp: args
            .smtp
            .config()
            .map_err(crate::server::ServeError::Smtp)?,
        webhook_targets: args.webhook_targets.targets(),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(db.clone(), config).map_err(crate::server::ServeError::Templates)?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(worker.run(stopped));
    crate::server::shutdown_signal().await;
    let _ = stop.send(true);
    let _ = task.await;
    db.close().await;
    Ok(())
}

/// Runs `despacho worker` on a new multi-thread runtime (for the command line).
pub fn run_blocking(args: WorkerArgs) -> Result<(), crate::server::ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(crate::server::ServeError::Runtime)?;
    runtime.block_on(run_alone(args))
}
