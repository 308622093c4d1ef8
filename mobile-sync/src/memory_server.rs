//! A reference server in memory: the protocol's server side end to end, for
//! simulation tests and benches, and the model the API server's SQL follows.
//!
//! - One scope per technician: the jobs assigned to them (`job/<id>`) and their
//!   devices' rejected mutations (`rejected/<device>/<id>`). Each scope has a
//!   version, +1 per writing transaction that changed something in it; every entry
//!   remembers the version that last wrote it (deletions stay as tombstones), so
//!   "changes since version v" is "entries with a version above v".
//! - Every method that writes is one transaction; each mutation of a push is its
//!   own transaction (as in the real server, so a temporary failure part-way keeps
//!   the mutations before it).
//! - A device is registered to one technician; any other login is refused.

use crate::cookie::CookieKey;
use crate::fact::{Fact, FactKind, Rejection};
use crate::ids::{Epoch, FactId, JobId, ScopeVersion, ServerSeq, TechnicianId, Timestamp};
use crate::job::{job_key, rejection_key, DispatchFields, Flag, JobRecord};
use crate::merge::{
    apply_dispatch, apply_fact, duplicate_of, raise_flag, DispatchChange, FactContext, FactOutcome,
    SerialSighting,
};
use crate::message::{ClientId, Mutation, MutationId, PushMessage, ServerMessage};
use crate::pull::{PatchOp, PullRequest, PullResponse};
use crate::server::{
    check_device, plan_pull, plan_push, pull_response, PullPlan, ScopeSnapshot, ServerError,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What became of one mutation, in commit order ([`MemoryServer::log`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub client_id: ClientId,
    pub mutation_id: MutationId,
    pub outcome: MutationOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MutationOutcome {
    Recorded { job: JobId, flags: Vec<Flag> },
    AlreadyRecorded { job: JobId },
    Rejected(Rejection),
}

#[derive(Clone, Debug)]
struct Device {
    technician: TechnicianId,
    last_mutation_id: MutationId,
}

#[derive(Clone, Debug)]
struct Entry {
    /// `None`: deleted (a tombstone, so diffs can say `del`).
    value: Option<Value>,
    version: ScopeVersion,
}

#[derive(Clone, Debug, Default)]
struct Scope {
    version: ScopeVersion,
    entries: BTreeMap<String, Entry>,
}

/// A key's new value (`None` to delete) in a technician's scope.
type Write = (TechnicianId, String, Option<Value>);

/// Why a dispatcher's change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    #[error("job {0} does not exist")]
    UnknownJob(JobId),
    #[error("job {0} exists already")]
    JobExists(JobId),
}

/// The reference server. See the module docs.
#[derive(Clone, Debug)]
pub struct MemoryServer {
    key: CookieKey,
    epoch: Epoch,
    now: Timestamp,
    next_seq: ServerSeq,
    devices: BTreeMap<ClientId, Device>,
    jobs: BTreeMap<JobId, JobRecord>,
    fact_jobs: BTreeMap<FactId, JobId>,
    serials: BTreeMap<String, Vec<SerialSighting>>,
    scopes: BTreeMap<TechnicianId, Scope>,
    temporary_failures: u32,
    log: Vec<Committed>,
}

impl MemoryServer {
    pub fn new(key: CookieKey, epoch: Epoch) -> Self {
        Self {
            key,
            epoch,
            now: Timestamp(0),
            next_seq: ServerSeq(1),
            devices: BTreeMap::new(),
            jobs: BTreeMap::new(),
            fact_jobs: BTreeMap::new(),
            serials: BTreeMap::new(),
            scopes: BTreeMap::new(),
            temporary_failures: 0,
            log: Vec::new(),
        }
    }

    /// Sets the server's clock (stamped on facts as their receive time).
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// The next `n` mutation transactions fail temporarily (a busy database).
    pub fn inject_temporary_failures(&mut self, n: u32) {
        self.temporary_failures = n;
    }

    /// As after a restore from backup: every cookie issued so far becomes stale.
    pub fn start_new_epoch(&mut self) {
        self.epoch = Epoch(self.epoch.0 + 1);
    }

    /// Ties a device to the technician logged in on it. Registering it again to
    /// the same technician is harmless; to another one is refused.
    pub fn register_device(
        &mut self,
        login: &TechnicianId,
        client_id: &ClientId,
    ) -> Result<(), ServerError> {
        match self.devices.get(client_id) {
            Some(d) => check_device(client_id, Some(&d.technician), login),
            None => {
                self.devices.insert(
                    client_id.clone(),
                    Device {
                        technician: login.clone(),
                        last_mutation_id: MutationId::NONE,
                    },
                );
                Ok(())
            }
        }
    }

    /// The dispatcher creates a job.
    pub fn create_job(&mut self, id: JobId, dispatch: DispatchFields) -> Result<(), DispatchError> {
        if self.jobs.contains_key(&id) {
            return Err(DispatchError::JobExists(id));
        }
        self.jobs
            .insert(id.clone(), JobRecord::new(id.clone(), dispatch));
        let writes = self.job_writes(&id, None);
        self.commit(writes);
        Ok(())
    }

    /// The dispatcher changes a job. Returns whether anything changed.
    pub fn dispatch(&mut self, id: &JobId, change: DispatchChange) -> Result<bool, DispatchError> {
        let job = self
            .jobs
            .get_mut(id)
            .ok_or_else(|| DispatchError::UnknownJob(id.clone()))?;
        let before = job.technician().cloned();
        if !apply_dispatch(job, change) {
            return Ok(false);
        }
        let writes = self.job_writes(id, before);
        self.commit(writes);
        Ok(true)
    }

    /// Handles a push from the wire: the answer to send, or why not (see
    /// [`ServerError`] for the HTTP status of each case).
    pub fn handle_push(&mut self, login: &TechnicianId, wire: &str) -> Result<String, ServerError> {
        let push = PushMessage::decode(wire)?;
        Ok(self.push(login, &push)?.encode())
    }

    /// Handles a pull from the wire.
    pub fn handle_pull(&self, login: &TechnicianId, wire: &str) -> Result<String, ServerError> {
        let request = PullRequest::decode(wire)?;
        Ok(self.pull(login, &request)?.encode())
    }

    /// Applies a push: each new mutation exactly once, in order, each in its own
    /// transaction; a permanent refusal is recorded and still advances the
    /// device; a temporary failure stops here with nothing of it applied.
    pub fn push(
        &mut self,
        login: &TechnicianId,
        push: &PushMessage,
    ) -> Result<ServerMessage, ServerError> {
        let last = self.device(login, &push.client_id)?.last_mutation_id;
        for m in plan_push(last, push)? {
            if self.temporary_failures > 0 {
                self.temporary_failures -= 1;
                return Err(ServerError::Temporary);
            }
            self.apply_mutation(login, &push.client_id, m);
        }
        Ok(ServerMessage::Ack {
            client_id: push.client_id.clone(),
            last_mutation_id: self.devices[&push.client_id].last_mutation_id,
        })
    }

    /// Answers a pull from one consistent state of the scope.
    pub fn pull(
        &self,
        login: &TechnicianId,
        request: &PullRequest,
    ) -> Result<PullResponse, ServerError> {
        let last_mutation_id = self.device(login, &request.client_id)?.last_mutation_id;
        let empty = Scope::default();
        let scope = self.scopes.get(login).unwrap_or(&empty);
        let snapshot = ScopeSnapshot {
            key: &self.key,
            epoch: self.epoch,
            technician: login,
            version: scope.version,
            // Tombstones are kept forever here, so any version can be diffed from.
            oldest_diffable: ScopeVersion(0),
        };
        let patch = match plan_pull(request.cookie.as_ref(), &snapshot) {
            PullPlan::ChangesSince(since) => scope
                .entries
                .iter()
                .filter(|(_, e)| e.version > since)
                .map(|(key, e)| match &e.value {
                    Some(value) => PatchOp::Put {
                        key: key.clone(),
                        value: value.clone(),
                    },
                    None => PatchOp::Del { key: key.clone() },
                })
                .collect(),
            PullPlan::Reset(_) => std::iter::once(PatchOp::Clear)
                .chain(scope.entries.iter().filter_map(|(key, e)| {
                    e.value.as_ref().map(|value| PatchOp::Put {
                        key: key.clone(),
                        value: value.clone(),
                    })
                }))
                .collect(),
        };
        Ok(pull_response(request, &snapshot, last_mutation_id, patch))
    }

    /// The technician's scope as the server holds it now (what a device that has
    /// pulled must end up with).
    pub fn scope_view(&self, technician: &TechnicianId) -> BTreeMap<String, Value> {
        self.scopes
            .get(technician)
            .map(|s| {
                s.entries
                    .iter()
                    .filter_map(|(k, e)| e.value.clone().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn scope_version(&self, technician: &TechnicianId) -> ScopeVersion {
        self.scopes
            .get(technician)
            .map(|s| s.version)
            .unwrap_or_default()
    }

    pub fn last_mutation_id(&self, client_id: &ClientId) -> Option<MutationId> {
        self.devices.get(client_id).map(|d| d.last_mutation_id)
    }

    pub fn job(&self, id: &JobId) -> Option<&JobRecord> {
        self.jobs.get(id)
    }

    pub fn jobs(&self) -> impl Iterator<Item = &JobRecord> + '_ {
        self.jobs.values()
    }

    /// Every committed mutation outcome, in commit order.
    pub fn log(&self) -> &[Committed] {
        &self.log
    }

    /// The flags waiting for the dispatcher, job by job.
    pub fn dispatcher_queue(&self) -> Vec<(&JobId, &Flag)> {
        self.jobs
            .values()
            .flat_map(|j| j.flags().iter().map(move |f| (j.id(), f)))
            .collect()
    }

    fn device(&self, login: &TechnicianId, client_id: &ClientId) -> Result<&Device, ServerError> {
        let device = self.devices.get(client_id);
        check_device(client_id, device.map(|d| &d.technician), login)?;
        Ok(device.expect("checked"))
    }

    /// One mutation's transaction: its outcome, the device's new
    /// `last_mutation_id` and the scope writes, all or nothing.
    fn apply_mutation(&mut self, login: &TechnicianId, client_id: &ClientId, m: &Mutation) {
        let seq = self.next_seq;
        self.next_seq = ServerSeq(seq.0 + 1);
        let ctx = FactContext {
            technician: login.clone(),
            client_id: client_id.clone(),
            mutation_id: m.id,
            seq,
            received_at: self.now,
        };
        let (outcome, writes) = match Fact::parse(m).and_then(|fact| self.record(&ctx, fact)) {
            Ok(done) => done,
            Err(rejection) => {
                let record = json!({"mutation": m.name, "id": m.id, "rejection": rejection});
                let writes = vec![(login.clone(), rejection_key(client_id, m.id), Some(record))];
                (MutationOutcome::Rejected(rejection), writes)
            }
        };
        self.devices
            .get_mut(client_id)
            .expect("device checked")
            .last_mutation_id = m.id;
        self.commit(writes);
        self.log.push(Committed {
            client_id: client_id.clone(),
            mutation_id: m.id,
            outcome,
        });
    }

    fn record(
        &mut self,
        ctx: &FactContext,
        fact: Fact,
    ) -> Result<(MutationOutcome, Vec<Write>), Rejection> {
        let job_id = fact.job.clone();
        // Fact ids are unique across jobs (a unique index in SQL).
        if self.fact_jobs.get(&fact.id).is_some_and(|j| j != &job_id) {
            return Err(Rejection::FactIdReused { fact: fact.id });
        }
        let sightings = match &fact.kind {
            FactKind::Equipment { serial, .. } => {
                self.serials.get(serial).cloned().unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let fact_id = fact.id.clone();
        let job = self
            .jobs
            .get_mut(&job_id)
            .ok_or_else(|| Rejection::UnknownJob {
                job: job_id.clone(),
            })?;
        let flags = match apply_fact(job, ctx, fact, &sightings)? {
            FactOutcome::AlreadyRecorded => {
                return Ok((MutationOutcome::AlreadyRecorded { job: job_id }, Vec::new()))
            }
            FactOutcome::Recorded { flags } => flags,
        };
        let recorded = job.facts().last().expect("just recorded");
        if let Some(sighting) = SerialSighting::of(recorded) {
            self.serials
                .entry(sighting.serial.clone())
                .or_default()
                .push(sighting);
        }
        self.fact_jobs.insert(fact_id, job_id.clone());
        for flag in &flags {
            if let Flag::DuplicateSerial { other_job, .. } = flag {
                let mirror = duplicate_of(&job_id, &ctx.technician, flag).expect("a duplicate");
                if let Some(other) = self.jobs.get_mut(other_job) {
                    raise_flag(other, mirror);
                }
            }
        }
        let holder = self.jobs[&job_id].technician().cloned();
        let writes = self.job_writes(&job_id, holder);
        Ok((MutationOutcome::Recorded { job: job_id, flags }, writes))
    }

    /// The scope writes after job `id` changed; `before` held it until now.
    fn job_writes(&self, id: &JobId, before: Option<TechnicianId>) -> Vec<Write> {
        let job = &self.jobs[id];
        let key = job_key(id);
        let mut writes = Vec::new();
        if let Some(old) = before.filter(|old| Some(old) != job.technician()) {
            writes.push((old, key.clone(), None));
        }
        if let Some(holder) = job.technician() {
            writes.push((holder.clone(), key, Some(job.view())));
        }
        writes
    }

    /// Ends a transaction: each scope it changed moves to its next version once.
    fn commit(&mut self, writes: Vec<Write>) {
        let mut by_scope: BTreeMap<TechnicianId, Vec<(String, Option<Value>)>> = BTreeMap::new();
        for (technician, key, value) in writes {
            let scope = self.scopes.entry(technician.clone()).or_default();
            // Writes come only from real changes; deleting what is absent is none.
            let absent = value.is_none() && !scope.entries.contains_key(&key);
            if !absent {
                by_scope.entry(technician).or_default().push((key, value));
            }
        }
        for (technician, writes) in by_scope {
            let scope = self.scopes.get_mut(&technician).expect("created above");
            scope.version = ScopeVersion(scope.version.0 + 1);
            for (key, value) in writes {
                scope.entries.insert(
                    key,
                    Entry {
                        value,
                        version: scope.version,
                    },
                );
            }
        }
    }
}
