//! The server's record of one job: the dispatcher's fields, the technicians'
//! facts in server order, and the flags for the dispatcher's queue; and the view
//! of it that the technician's phone holds.
//!
//! Changes go through [`crate::merge`] only, so the field ownership rules hold.
//! The record is `Serialize`/`Deserialize` so the API server may store it whole.

use crate::fact::{Fact, FactKind, FailureReason, JobStatus};
use crate::ids::{FactId, JobId, ServerSeq, TechnicianId, Timestamp};
use crate::message::{ClientId, MutationId};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A visit's time window (`start < end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct TimeWindow {
    start: Timestamp,
    end: Timestamp,
}

#[derive(Deserialize)]
struct RawWindow {
    start: Timestamp,
    end: Timestamp,
}

impl TryFrom<RawWindow> for TimeWindow {
    type Error = String;
    fn try_from(w: RawWindow) -> Result<Self, String> {
        Self::new(w.start, w.end).ok_or_else(|| "a window ends after it starts".to_owned())
    }
}

impl TimeWindow {
    /// `None` unless `start < end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Option<Self> {
        (start < end).then_some(Self { start, end })
    }

    pub fn start(&self) -> Timestamp {
        self.start
    }

    pub fn end(&self) -> Timestamp {
        self.end
    }
}

/// The fields only the dispatcher (or the solver on their behalf) changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchFields {
    pub technician: Option<TechnicianId>,
    pub window: TimeWindow,
    pub address: String,
    pub cancelled: bool,
}

/// A fact as the server keeps it: who sent it, from which device and mutation,
/// when the server received it and in which order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFact {
    pub fact: Fact,
    pub technician: TechnicianId,
    pub client_id: ClientId,
    pub mutation_id: MutationId,
    /// Orders facts: the phones' clocks do not.
    pub seq: ServerSeq,
    /// The server's clock on receipt, kept beside the phone's `fact.at`.
    pub received_at: Timestamp,
}

/// Something the dispatcher should look at. Raised by [`crate::merge`], never
/// instead of keeping a fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Flag {
    /// The dispatcher cancelled the job, yet the technician recorded this after
    /// (typically: completed it while offline).
    WorkOnCancelledJob {
        fact: FactId,
        technician: TechnicianId,
    },
    /// A technician the job was taken from recorded this (typically offline,
    /// before they heard of the reassignment).
    FactFromFormerTechnician {
        fact: FactId,
        technician: TechnicianId,
    },
    /// The same serial was recorded with the same action by another fact.
    DuplicateSerial {
        serial: String,
        fact: FactId,
        other_job: JobId,
        other_fact: FactId,
        other_technician: TechnicianId,
    },
    /// The phone's clock disagrees with the server's by more than is plausible.
    DeviceClockOff {
        fact: FactId,
        device_time: Timestamp,
        received_at: Timestamp,
    },
}

/// The server's full record of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub(crate) id: JobId,
    pub(crate) dispatch: DispatchFields,
    /// +1 at each (re)assignment; shown to the phone.
    pub(crate) assignment: u64,
    /// Everyone the job was ever assigned to, current holder included.
    pub(crate) technicians_ever: Vec<TechnicianId>,
    /// In server order (`seq` increasing).
    pub(crate) facts: Vec<RecordedFact>,
    pub(crate) flags: Vec<Flag>,
}

impl JobRecord {
    /// A new job, as the dispatcher creates it.
    pub fn new(id: JobId, dispatch: DispatchFields) -> Self {
        let technicians_ever = dispatch.technician.iter().cloned().collect();
        Self {
            id,
            assignment: u64::from(dispatch.technician.is_some()),
            dispatch,
            technicians_ever,
            facts: Vec::new(),
            flags: Vec::new(),
        }
    }

    pub fn id(&self) -> &JobId {
        &self.id
    }

    pub fn dispatch(&self) -> &DispatchFields {
        &self.dispatch
    }

    pub fn technician(&self) -> Option<&TechnicianId> {
        self.dispatch.technician.as_ref()
    }

    /// Facts in the order the server received them.
    pub fn facts(&self) -> &[RecordedFact] {
        &self.facts
    }

    pub fn flags(&self) -> &[Flag] {
        &self.flags
    }

    pub fn was_ever_assigned_to(&self, technician: &TechnicianId) -> bool {
        self.technicians_ever.contains(technician)
    }

    /// The job's status: the latest status event in server order, or `assigned`.
    pub fn status(&self) -> (JobStatus, Option<FailureReason>) {
        self.facts
            .iter()
            .rev()
            .find_map(|f| match f.fact.kind {
                FactKind::Status { status, reason } => Some((status, reason)),
                _ => None,
            })
            .unwrap_or((JobStatus::Assigned, None))
    }

    /// The latest status `technician` reported on this job (each technician's
    /// events must move forward on their own, so a reassignment never turns the
    /// previous holder's offline events into "out of order" rejections).
    pub fn status_by(&self, technician: &TechnicianId) -> JobStatus {
        self.facts
            .iter()
            .rev()
            .filter(|f| &f.technician == technician)
            .find_map(|f| match f.fact.kind {
                FactKind::Status { status, .. } => Some(status),
                _ => None,
            })
            .unwrap_or(JobStatus::Assigned)
    }

    /// The key of this job in a technician's scope.
    pub fn key(&self) -> String {
        job_key(&self.id)
    }

    /// What the holder's phone sees of the job: dispatcher fields, status and the
    /// facts (without flags, which are for the dispatcher).
    pub fn view(&self) -> serde_json::Value {
        let (status, reason) = self.status();
        let facts: Vec<_> = self
            .facts
            .iter()
            .map(|f| {
                let mut v = serde_json::to_value(&f.fact).expect("facts serialise");
                v["technician"] = json!(f.technician);
                v["seq"] = json!(f.seq);
                v
            })
            .collect();
        json!({
            "job": self.id,
            "technician": self.dispatch.technician,
            "assignment": self.assignment,
            "window": {"start": self.dispatch.window.start, "end": self.dispatch.window.end},
            "address": self.dispatch.address,
            "cancelled": self.dispatch.cancelled,
            "status": status,
            "failure_reason": reason,
            "facts": facts,
        })
    }
}

/// The key of a job in a technician's scope: `job/<id>`.
pub fn job_key(id: &JobId) -> String {
    format!("job/{id}")
}

/// The key of a rejected mutation in its technician's scope:
/// `rejected/<device>/<mutation id>`, so the phone can tell the technician.
pub fn rejection_key(client_id: &ClientId, mutation_id: MutationId) -> String {
    format!("rejected/{client_id}/{mutation_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{apply_fact, FactContext};

    fn record() -> JobRecord {
        let window = TimeWindow::new(Timestamp(0), Timestamp(10)).unwrap();
        JobRecord::new(
            JobId::from("J-1"),
            DispatchFields {
                technician: Some("ana".into()),
                window,
                address: "Calle 1".into(),
                cancelled: false,
            },
        )
    }

    #[test]
    fn a_window_must_end_after_it_starts() {
        assert!(TimeWindow::new(Timestamp(5), Timestamp(5)).is_none());
        assert!(serde_json::from_str::<TimeWindow>(r#"{"start":9,"end":3}"#).is_err());
        assert!(serde_json::from_str::<TimeWindow>(r#"{"start":3,"end":9}"#).is_ok());
    }

    #[test]
    fn a_stored_record_reads_back_the_same() {
        let mut job = record();
        let fact = Fact {
            id: FactId::from("f-1"),
            job: JobId::from("J-1"),
            at: Timestamp(3),
            kind: FactKind::Status {
                status: JobStatus::Failed,
                reason: Some(FailureReason::NoAccess),
            },
        };
        let ctx = FactContext {
            technician: "ana".into(),
            client_id: ClientId("p".into()),
            mutation_id: MutationId(1),
            seq: ServerSeq(1),
            received_at: Timestamp(4),
        };
        apply_fact(&mut job, &ctx, fact, &[]).unwrap();
        let stored = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<JobRecord>(&stored).unwrap(), job);
        let view = job.view();
        assert_eq!(view["status"], "failed");
        assert_eq!(view["failure_reason"], "no_access");
        assert_eq!(view["facts"][0]["seq"], 1);
        assert_eq!(view["assignment"], 1);
    }
}
