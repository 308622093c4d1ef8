//! Merge rules by field: who may change what, and what happens when the
//! dispatcher and a technician who was offline changed the same job.
//!
//! - **Dispatcher-owned** (technician, window, address, cancelled): changed only by
//!   [`apply_dispatch`]; a technician's mutation never touches them.
//! - **Technician facts** (status events, notes, photos, upsells, serials,
//!   confirmations): append-only, with ids made on the phone; changed only by
//!   [`apply_fact`]. Nothing recorded in the field is dropped for a conflict:
//!
//! | situation                                               | result                                          |
//! |---------------------------------------------------------|-------------------------------------------------|
//! | job cancelled, technician completed it offline          | facts kept, [`Flag::WorkOnCancelledJob`]         |
//! | job reassigned, old holder recorded facts offline       | facts kept, [`Flag::FactFromFormerTechnician`]   |
//! | same serial and action recorded by two facts            | both kept, [`Flag::DuplicateSerial`]             |
//! | phone clock a day off                                   | device time kept beside the server's receive time, order by server sequence, [`Flag::DeviceClockOff`] |
//! | same fact resent (new mutation id after a reinstall)    | recorded once                                   |
//! | fact id reused for different content                    | rejected                                        |
//! | someone who never held the job                          | rejected                                        |
//! | status not after this technician's previous one         | rejected                                        |

use crate::fact::{EquipmentAction, Fact, FactKind, Rejection};
use crate::ids::{FactId, JobId, ServerSeq, TechnicianId, Timestamp};
use crate::job::{Flag, JobRecord, RecordedFact, TimeWindow};
use crate::message::{ClientId, MutationId};
use serde::{Deserialize, Serialize};

/// A phone clock ahead of the server by more than this is wrong, not early.
pub const CLOCK_AHEAD_TOLERANCE: i64 = 5 * Timestamp::MINUTE;
/// A fact older than this on arrival is more likely a wrong clock than a long
/// offline stretch (a shift is shorter); flagged, still kept.
pub const CLOCK_BEHIND_TOLERANCE: i64 = 12 * Timestamp::HOUR;

/// Who sent a fact and when the server got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactContext {
    pub technician: TechnicianId,
    pub client_id: ClientId,
    pub mutation_id: MutationId,
    pub seq: ServerSeq,
    pub received_at: Timestamp,
}

/// An earlier record of a serial (on any job), for duplicate detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialSighting {
    pub serial: String,
    pub action: EquipmentAction,
    pub job: JobId,
    pub fact: FactId,
    pub technician: TechnicianId,
}

impl SerialSighting {
    /// The sighting a fact makes, if it records a serial.
    pub fn of(fact: &RecordedFact) -> Option<Self> {
        match &fact.fact.kind {
            FactKind::Equipment { serial, action } => Some(Self {
                serial: serial.clone(),
                action: *action,
                job: fact.fact.job.clone(),
                fact: fact.fact.id.clone(),
                technician: fact.technician.clone(),
            }),
            _ => None,
        }
    }
}

/// What [`apply_fact`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FactOutcome {
    /// Appended; these flags were raised on the job.
    Recorded { flags: Vec<Flag> },
    /// The same fact was already there (resent under another mutation id).
    AlreadyRecorded,
}

/// Adds a technician's fact to `job`. `sightings` are the earlier records of the
/// fact's serial on any job (empty for facts without a serial); the caller looks
/// them up, and should raise a matching flag on those jobs too
/// ([`duplicate_of`]).
pub fn apply_fact(
    job: &mut JobRecord,
    ctx: &FactContext,
    fact: Fact,
    sightings: &[SerialSighting],
) -> Result<FactOutcome, Rejection> {
    if fact.job != job.id {
        return Err(Rejection::InvalidArgs {
            detail: format!("fact is about job {}, not {}", fact.job, job.id),
        });
    }
    if let Some(existing) = job.facts.iter().find(|f| f.fact.id == fact.id) {
        return if existing.fact == fact && existing.technician == ctx.technician {
            Ok(FactOutcome::AlreadyRecorded)
        } else {
            Err(Rejection::FactIdReused { fact: fact.id })
        };
    }
    // Why "ever", not "now": a technician who worked offline did not know the job
    // had been moved; what they recorded happened and is kept.
    if !job.was_ever_assigned_to(&ctx.technician) {
        return Err(Rejection::NotYourJob { job: fact.job });
    }
    if let FactKind::Status { status, .. } = fact.kind {
        let from = job.status_by(&ctx.technician);
        if status.rank() <= from.rank() {
            return Err(Rejection::StatusOutOfOrder {
                job: fact.job,
                from,
                to: status,
            });
        }
    }

    let mut flags = Vec::new();
    if job.dispatch.cancelled {
        flags.push(Flag::WorkOnCancelledJob {
            fact: fact.id.clone(),
            technician: ctx.technician.clone(),
        });
    }
    if job.dispatch.technician.as_ref() != Some(&ctx.technician) {
        flags.push(Flag::FactFromFormerTechnician {
            fact: fact.id.clone(),
            technician: ctx.technician.clone(),
        });
    }
    let skew = fact.at.0.saturating_sub(ctx.received_at.0);
    if !(-CLOCK_BEHIND_TOLERANCE..=CLOCK_AHEAD_TOLERANCE).contains(&skew) {
        flags.push(Flag::DeviceClockOff {
            fact: fact.id.clone(),
            device_time: fact.at,
            received_at: ctx.received_at,
        });
    }
    let recorded = RecordedFact {
        fact,
        technician: ctx.technician.clone(),
        client_id: ctx.client_id.clone(),
        mutation_id: ctx.mutation_id,
        seq: ctx.seq,
        received_at: ctx.received_at,
    };
    if let Some(new) = SerialSighting::of(&recorded) {
        flags.extend(
            sightings
                .iter()
                .filter(|old| old.serial == new.serial && old.action == new.action)
                .filter(|old| old.fact != new.fact)
                .map(|old| Flag::DuplicateSerial {
                    serial: new.serial.clone(),
                    fact: new.fact.clone(),
                    other_job: old.job.clone(),
                    other_fact: old.fact.clone(),
                    other_technician: old.technician.clone(),
                }),
        );
    }
    // Facts stay in server order whatever the phones' clocks say.
    debug_assert!(job.facts.last().is_none_or(|f| f.seq < recorded.seq));
    job.facts.push(recorded);
    job.flags.extend(flags.iter().cloned());
    Ok(FactOutcome::Recorded { flags })
}

/// The flag to raise on the *earlier* job when `flag` (raised by [`apply_fact`]
/// on `job`) names it as the other holder of a serial.
pub fn duplicate_of(job: &JobId, technician: &TechnicianId, flag: &Flag) -> Option<Flag> {
    match flag {
        Flag::DuplicateSerial {
            serial,
            fact,
            other_fact,
            ..
        } => Some(Flag::DuplicateSerial {
            serial: serial.clone(),
            fact: other_fact.clone(),
            other_job: job.clone(),
            other_fact: fact.clone(),
            other_technician: technician.clone(),
        }),
        _ => None,
    }
}

/// Adds a flag found elsewhere (see [`duplicate_of`]) to a job.
pub fn raise_flag(job: &mut JobRecord, flag: Flag) {
    if !job.flags.contains(&flag) {
        job.flags.push(flag);
    }
}

/// A change by the dispatcher. It never touches the technicians' facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DispatchChange {
    /// Give the job to a technician (or to nobody).
    Assign {
        technician: Option<TechnicianId>,
    },
    Window {
        window: TimeWindow,
    },
    Address {
        address: String,
    },
    Cancel,
    Reinstate,
}

/// Applies a dispatcher change. Returns whether anything changed.
pub fn apply_dispatch(job: &mut JobRecord, change: DispatchChange) -> bool {
    let d = &mut job.dispatch;
    match change {
        DispatchChange::Assign { technician } => {
            if d.technician == technician {
                return false;
            }
            if let Some(t) = &technician {
                if !job.technicians_ever.contains(t) {
                    job.technicians_ever.push(t.clone());
                }
            }
            d.technician = technician;
            job.assignment += 1;
        }
        DispatchChange::Window { window } => {
            if d.window == window {
                return false;
            }
            d.window = window;
        }
        DispatchChange::Address { address } => {
            if d.address == address {
                return false;
            }
            d.address = address;
        }
        DispatchChange::Cancel | DispatchChange::Reinstate => {
            let cancelled = change == DispatchChange::Cancel;
            if d.cancelled == cancelled {
                return false;
            }
            d.cancelled = cancelled;
        }
    }
    true
}
