//! # despacho-mobile-sync
//!
//! The sync protocol between technicians' phones and the Despacho server, as a
//! sans-IO core: functions that say what to send and take in what arrived, with
//! transport, timers and storage left to the caller. That keeps the protocol
//! testable by deterministic simulation of flaky networks.
//!
//! Today this holds the *push* half (the shape of Replicache's protocol):
//! - the phone records each mutation in a durable queue with a per-device id that
//!   increases by one ([`ClientState::record`]);
//! - [`generate_message`] gives the push to send: the pending mutations, in order;
//! - the server applies each id exactly once and answers with the highest id it
//!   has applied; [`receive_message`] drops the acknowledged mutations. Old or
//!   duplicated acknowledgements change nothing.
//!
//! Messages are versioned ([`SCHEMA_VERSION`]) and have their own [`DecodeError`].
//! Pull (cursor, patches), the server's state machine and the field merge rules
//! come later.
//!
//! ```
//! use despacho_mobile_sync::{generate_message, receive_message, ClientId, ClientState, MutationId, PushMessage, ServerMessage};
//! use serde_json::json;
//!
//! let mut phone = ClientState::new(ClientId("phone-1".into()));
//! phone.record("job_status", json!({"job": "J-12", "status": "on_site"}));
//! phone.record("serial_returned", json!({"job": "J-12", "serial": "ZTE-0042"}));
//!
//! // Send this over the network however the app likes.
//! let wire = generate_message(&mut phone).unwrap().encode();
//! assert_eq!(PushMessage::decode(&wire).unwrap().mutations.len(), 2);
//!
//! // The server applied both.
//! let answer = ServerMessage::Ack { client_id: ClientId("phone-1".into()), last_mutation_id: MutationId(2) };
//! let answer = ServerMessage::decode(&answer.encode()).unwrap();
//! assert_eq!(receive_message(&mut phone, answer), Ok(2));
//! assert!(generate_message(&mut phone).is_none());
//! ```
//!
//! ## Glossary
//! - **client** / **device**: one installation of the phone app, used by one technician;
//! - **mutation**: a change made on the phone (status event, upsell, returned serial, note);
//! - **ack**: the server's cumulative "applied up to mutation n" for a device.

mod client;
mod message;

pub use client::{generate_message, receive_message, ClientState, ReceiveError, DEFAULT_MAX_BATCH};
pub use message::{
    ClientId, DecodeError, Mutation, MutationId, PushMessage, ServerMessage, SCHEMA_VERSION,
};
