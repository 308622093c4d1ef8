//! # despacho-mobile-sync
//!
//! The sync protocol between technicians' phones and the Despacho server, as a
//! sans-IO core: functions that say what to send and take in what arrived, with
//! transport, timers and storage left to the caller. That keeps the protocol
//! testable by deterministic simulation of flaky networks (`tests/sync/chaos.rs`).
//! The shape is Replicache's.
//!
//! **Push** (phone → server, mutations):
//! - the phone records each mutation in a durable queue with a per-device id that
//!   increases by one ([`ClientState::record`]);
//! - [`generate_message`] gives the push to send: the pending mutations, in order;
//! - the server ([`server`]) applies each id exactly once, in order: new
//!   mutations are parsed into typed [`Fact`]s and merged into the job
//!   ([`merge`]); one that can never succeed is recorded as a [`Rejection`] and
//!   still advances the device, so the queue never blocks; a temporary failure
//!   advances nothing. It answers with the highest id done; [`receive_message`]
//!   drops the acknowledged mutations. Old or duplicated acknowledgements change
//!   nothing.
//!
//! **Pull** (server → phone, the technician's scope):
//! - [`generate_pull`] sends the phone's [`Cookie`]; the server answers with the
//!   changes since then as a patch of `put` / `del` (or `clear` + a full snapshot
//!   when it cannot use the cookie: first sync, forged, stale, other epoch), a new
//!   signed cookie and the device's `last_mutation_id`;
//! - [`receive_pull`] applies an answer only if it answers the cookie held, so the
//!   cursor never goes backwards; [`ClientState::view`] shows the confirmed scope
//!   with the not-yet-confirmed mutations replayed on top.
//!
//! [`MemoryServer`] is the whole server side in memory, for tests and benches.
//! Messages are versioned ([`SCHEMA_VERSION`]) and have their own [`DecodeError`].
//!
//! ```
//! use despacho_mobile_sync::{
//!     generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState,
//!     CookieKey, DispatchFields, Epoch, JobId, MemoryServer, PullResponse, ServerMessage,
//!     TechnicianId, TimeWindow, Timestamp,
//! };
//! use serde_json::json;
//!
//! let ana = TechnicianId::from("ana");
//! let mut server = MemoryServer::new(CookieKey::new(b"server secret".to_vec()), Epoch(1));
//! let window = TimeWindow::new(Timestamp(0), Timestamp(3_600_000)).unwrap();
//! let job = DispatchFields { technician: Some(ana.clone()), window, address: "Calle 5".into(), cancelled: false };
//! server.create_job(JobId::from("J-12"), job).unwrap();
//! server.register_device(&ana, &ClientId("phone-1".into())).unwrap();
//!
//! let mut phone = ClientState::new(ClientId("phone-1".into()));
//! phone.record("job_status", json!({"fact_id": "f-1", "job": "J-12", "at": 60_000, "status": "en_route"}));
//! phone.record("equipment", json!({"fact_id": "f-2", "job": "J-12", "at": 90_000, "serial": "ZTE-0042", "action": "installed"}));
//!
//! // Push, over any transport: the bytes are the versioned JSON envelope.
//! let wire = generate_message(&mut phone).unwrap().encode();
//! let answer = server.handle_push(&ana, &wire).unwrap();
//! assert_eq!(receive_message(&mut phone, ServerMessage::decode(&answer).unwrap()), Ok(2));
//!
//! // Pull: the first one gets `clear` + the whole scope.
//! let answer = server.handle_pull(&ana, &generate_pull(&phone).encode()).unwrap();
//! receive_pull(&mut phone, PullResponse::decode(&answer).unwrap()).unwrap();
//! assert_eq!(phone.view()["job/J-12"]["status"], "en_route");
//! assert_eq!(phone.confirmed(), &server.scope_view(&ana));
//! ```
//!
//! ## Glossary
//! - **client** / **device**: one installation of the phone app, registered to one technician;
//! - **mutation**: a change made on the phone, with a per-device id; it carries a **fact**
//!   (status event, note, photo, upsell outcome, serial, customer confirmation) whose id
//!   is made on the phone, so facts are append-only and never recorded twice;
//! - **ack**: the server's cumulative "applied up to mutation n" for a device;
//! - **scope**: what one technician's phones hold: their jobs (`job/<id>`) and their
//!   rejected mutations (`rejected/<device>/<id>`), with a **scope version** moved by
//!   each writing transaction (commit order, never clocks);
//! - **cookie**: the pull cursor, `(epoch, technician, scope version)` signed by the
//!   server; **epoch**: the server's life, bumped when its history is restored;
//! - **patch**: `put` / `del` / `clear` operations turning one view into the next;
//! - **flag**: a conflict kept for the dispatcher's queue instead of dropping a fact.

mod client;
mod cookie;
mod fact;
mod ids;
mod job;
mod memory_server;
pub mod merge;
mod message;
mod pull;
mod replica;
pub mod server;

pub use client::{generate_message, receive_message, ClientState, ReceiveError, DEFAULT_MAX_BATCH};
pub use cookie::{Cookie, CookieClaims, CookieError, CookieKey};
pub use fact::{
    Billing, EquipmentAction, Fact, FactKind, FailureReason, JobStatus, OfferOutcome, Rejection,
};
pub use ids::{Cents, Epoch, FactId, JobId, ScopeVersion, ServerSeq, TechnicianId, Timestamp};
pub use job::{job_key, rejection_key, DispatchFields, Flag, JobRecord, RecordedFact, TimeWindow};
pub use memory_server::{Committed, DispatchError, MemoryServer, MutationOutcome};
pub use merge::DispatchChange;
pub use message::{
    ClientId, DecodeError, Mutation, MutationId, PushMessage, ServerMessage, SCHEMA_VERSION,
};
pub use pull::{PatchOp, PullRequest, PullResponse};
pub use replica::{generate_pull, receive_pull, PullOutcome};
pub use server::ServerError;
