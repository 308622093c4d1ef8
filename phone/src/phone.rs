//! One technician's phone: mobile-sync's [`ClientState`] kept in a [`Store`], the
//! technician's actions turned into facts, and sync over HTTP with a [`Server`].
//!
//! Order of every step: change the state in memory, write it to the store, and only
//! then report it (or send). If writing fails, the state is read back from the store,
//! so memory never runs ahead of the file.

use crate::error::PhoneError;
use crate::server::Server;
use crate::store::Store;
use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState, Fact,
    FailureReason, JobStatus, Mutation, MutationId, PullOutcome, DEFAULT_MAX_BATCH,
};
use serde_json::{json, Value};
use std::path::Path;

/// The longest device id the server accepts.
const MAX_DEVICE_ID: usize = 100;
/// Pushes one sync sends at most before it stops to pull (each carries up to a batch).
const MAX_PUSHES_PER_SYNC: usize = 10_000;

/// A technician's phone.
#[derive(Debug)]
pub struct Phone {
    state: ClientState,
    store: Store,
    max_batch: usize,
    /// Added to this machine's clock for the facts' `at` (a phone's clock may be off).
    clock_offset_ms: i64,
}

/// What one [`Phone::sync`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// Mutations the server newly acknowledged.
    pub acknowledged: usize,
    pub pushes: usize,
    pub pull: PullOutcome,
}

impl Phone {
    /// Opens the phone kept in the file `store` (created if missing) for device `device`.
    pub async fn open(store: &Path, device: &str) -> Result<Phone, PhoneError> {
        Self::open_with_batch(store, device, DEFAULT_MAX_BATCH).await
    }

    /// [`Phone::open`] with at most `max_batch` mutations per push.
    pub async fn open_with_batch(
        store: &Path,
        device: &str,
        max_batch: usize,
    ) -> Result<Phone, PhoneError> {
        let device = device.trim();
        if device.is_empty()
            || device.chars().count() > MAX_DEVICE_ID
            || device.chars().any(char::is_control)
        {
            return Err(PhoneError::InvalidInput {
                field: "device",
                message: format!(
                    "{device:?} must be 1 to {MAX_DEVICE_ID} characters without control characters"
                ),
            });
        }
        let (store, state) = Store::open(store, &ClientId(device.to_owned()), max_batch).await?;
        Ok(Phone {
            state,
            store,
            max_batch,
            clock_offset_ms: 0,
        })
    }

    /// Closes the store cleanly. (Dropping the phone instead is what a killed app does;
    /// nothing recorded is lost either way.)
    pub async fn close(self) {
        self.store.close().await;
    }

    /// Sets how far this phone's clock is off (for simulating a phone with a wrong clock).
    pub fn set_clock_offset_ms(&mut self, offset: i64) {
        self.clock_offset_ms = offset;
    }

    /// The phone's clock, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.clock_offset_ms
    }

    pub fn state(&self) -> &ClientState {
        &self.state
    }

    pub fn device(&self) -> &ClientId {
        self.state.client_id()
    }

    /// Mutations recorded and not yet acknowledged by the server.
    pub fn pending(&self) -> usize {
        self.state.pending().len()
    }

    /// The jobs as the technician sees them (the server's view with this phone's
    /// unconfirmed work on top), by job id.
    pub fn jobs(&self) -> Vec<Value> {
        self.state
            .view()
            .into_iter()
            .filter(|(k, _)| k.starts_with("job/"))
            .map(|(_, v)| v)
            .collect()
    }

    /// This device's mutations the server refused for good: (mutation id, why).
    pub fn rejections(&self) -> Vec<(u64, Value)> {
        let prefix = format!("rejected/{}/", self.device());
        self.state
            .confirmed()
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.parse().ok()?, v.clone())))
            .collect()
    }

    /// Records a status event on `job` (`reason` only for `failed`).
    pub async fn status(
        &mut self,
        job: &str,
        status: JobStatus,
        reason: Option<FailureReason>,
    ) -> Result<MutationId, PhoneError> {
        let mut args =
            json!({"fact_id": new_fact_id(), "job": job, "at": self.now_ms(), "status": status});
        if let Some(reason) = reason {
            args["reason"] = json!(reason);
        }
        self.record("job_status", args).await
    }

    /// Records a note on `job`.
    pub async fn note(&mut self, job: &str, text: &str) -> Result<MutationId, PhoneError> {
        let args = json!({"fact_id": new_fact_id(), "job": job, "at": self.now_ms(), "text": text});
        self.record("note", args).await
    }

    /// Records any fact (see mobile-sync's `fact.rs` for names and arguments). It is
    /// checked as the server will parse it and must be about a job on this phone; a
    /// mistake is refused here, naming the field, instead of becoming a rejection later.
    pub async fn record(&mut self, name: &str, args: Value) -> Result<MutationId, PhoneError> {
        let candidate = Mutation {
            id: self.state.last_issued().next(),
            name: name.to_owned(),
            args,
        };
        let fact = Fact::parse(&candidate).map_err(|why| PhoneError::InvalidInput {
            field: "mutation",
            message: format!("{name}: {why}"),
        })?;
        if self.state.view_of(&format!("job/{}", fact.job)).is_none() {
            return Err(PhoneError::InvalidInput {
                field: "job",
                message: format!(
                    "job {} is not on this phone (pull to refresh the list)",
                    fact.job
                ),
            });
        }
        let id = self.state.record(candidate.name, candidate.args);
        let mutation = self.state.pending().last().expect("just recorded").clone();
        debug_assert_eq!(mutation.id, id);
        if let Err(e) = self.store.recorded(&mutation).await {
            self.reload().await?;
            return Err(e);
        }
        Ok(id)
    }

    /// Pushes every pending mutation (in batches), then pulls once.
    ///
    /// On a temporary failure (offline, 503) the error says so and the queue is intact
    /// on disk; calling `sync` again later resends, and the server applies each
    /// mutation once however often it arrives.
    pub async fn sync(&mut self, server: &Server) -> Result<SyncReport, PhoneError> {
        let (acknowledged, pushes) = self.push_all(server).await?;
        let pull = self.pull(server).await?;
        Ok(SyncReport {
            acknowledged,
            pushes,
            pull,
        })
    }

    /// Pushes until the queue is empty: (mutations acknowledged, pushes sent).
    pub async fn push_all(&mut self, server: &Server) -> Result<(usize, usize), PhoneError> {
        let (mut acknowledged, mut pushes) = (0, 0);
        while let Some(message) = generate_message(&mut self.state) {
            if pushes == MAX_PUSHES_PER_SYNC {
                break;
            }
            let server = server.clone();
            let answer = tokio::task::spawn_blocking(move || server.push(&message))
                .await
                .expect("the push thread does not panic")?;
            pushes += 1;
            let newly = receive_message(&mut self.state, answer)?;
            if newly == 0 {
                return Err(PhoneError::NoProgress {
                    acknowledged: self.state.last_acknowledged().0,
                    pending: self.pending(),
                });
            }
            acknowledged += newly;
            if let Err(e) = self.store.acknowledged(&self.state).await {
                self.reload().await?;
                return Err(e);
            }
        }
        Ok((acknowledged, pushes))
    }

    /// Pulls once: the changes to the technician's scope since the last pull.
    pub async fn pull(&mut self, server: &Server) -> Result<PullOutcome, PhoneError> {
        let request = generate_pull(&self.state);
        let server = server.clone();
        let answer = tokio::task::spawn_blocking(move || server.pull(&request))
            .await
            .expect("the pull thread does not panic")?;
        let patch = answer.patch.clone();
        let outcome = receive_pull(&mut self.state, answer)?;
        if matches!(outcome, PullOutcome::Applied { .. }) {
            if let Err(e) = self.store.pulled(&self.state, &patch).await {
                self.reload().await?;
                return Err(e);
            }
        }
        Ok(outcome)
    }

    /// Reads the state back from the store after a failed write.
    async fn reload(&mut self) -> Result<(), PhoneError> {
        let device = self.device().clone();
        self.state = self.store.load(&device, self.max_batch).await?;
        Ok(())
    }
}

/// A fact id made on the phone: 16 random bytes in hex, unique without asking anyone.
fn new_fact_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("f-{hex}")
}
