//! Wire messages between a technician's phone and the server, and their versioned
//! JSON encoding.
//!
//! Every message travels in an envelope `{"schema_version": 1, "message": {...}}`.
//! The version is read first, so a phone or server that speaks another version gets
//! [`DecodeError::UnsupportedVersion`] (a clear refusal), not a confusing field error.
//! This crate's decoder ignores unknown fields inside a known version, so a phone can
//! read a server whose answers grew optional fields; Despacho's server is strict with
//! what phones send (422 `unknown_field`, like every other route).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A device (one installation of the app, logged in as one technician).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A mutation's number on its device: 1 for the first, then +1 for each next one.
/// `MutationId(0)` means "none yet".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MutationId(pub u64);

impl MutationId {
    /// The id before the first mutation.
    pub const NONE: Self = Self(0);

    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for MutationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Something the technician did on the phone (a status event, an upsell, a
/// returned serial, a note), to be applied by the server exactly once, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    pub id: MutationId,
    /// What kind of change, e.g. `"job_status"`; the server maps it to a handler.
    pub name: String,
    /// The change's arguments, as the handler for `name` expects them.
    pub args: serde_json::Value,
}

/// Phone → server: the device's pending mutations, oldest first, ids consecutive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushMessage {
    pub client_id: ClientId,
    pub mutations: Vec<Mutation>,
}

/// Server → phone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The server has applied (or rejected for good) every mutation of `client_id`
    /// up to and including `last_mutation_id`; the phone may forget them.
    Ack {
        client_id: ClientId,
        last_mutation_id: MutationId,
    },
}

/// Why bytes from the network are not a message this build understands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, not an envelope, or fields of the wrong shape.
    #[error("malformed sync message")]
    Malformed(#[from] serde_json::Error),
    #[error("sync message has no schema_version")]
    MissingVersion,
    #[error("unsupported sync schema version {found} (this build speaks version {supported})")]
    UnsupportedVersion { found: u64, supported: u32 },
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    schema_version: u32,
    message: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    message: T,
}

#[derive(Deserialize)]
struct VersionProbe {
    schema_version: Option<u64>,
}

pub(crate) fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(&EnvelopeOut {
        schema_version: SCHEMA_VERSION,
        message,
    })
    .expect("sync messages always serialise")
}

pub(crate) fn decode<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    let probe: VersionProbe = serde_json::from_str(text)?;
    match probe.schema_version {
        None => Err(DecodeError::MissingVersion),
        Some(v) if v == u64::from(SCHEMA_VERSION) => {
            Ok(serde_json::from_str::<EnvelopeIn<T>>(text)?.message)
        }
        Some(found) => Err(DecodeError::UnsupportedVersion {
            found,
            supported: SCHEMA_VERSION,
        }),
    }
}

impl PushMessage {
    /// The message in its versioned JSON envelope.
    pub fn encode(&self) -> String {
        encode(self)
    }

    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode(text)
    }
}

impl ServerMessage {
    /// The message in its versioned JSON envelope.
    pub fn encode(&self) -> String {
        encode(self)
    }

    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push() -> PushMessage {
        PushMessage {
            client_id: ClientId("phone-7".into()),
            mutations: vec![Mutation {
                id: MutationId(1),
                name: "job_status".into(),
                args: json!({"job": "J-12", "status": "on_site"}),
            }],
        }
    }

    #[test]
    fn messages_round_trip_through_their_envelope() {
        let text = push().encode();
        assert!(
            text.starts_with(r#"{"schema_version":1,"message":"#),
            "{text}"
        );
        assert_eq!(PushMessage::decode(&text).unwrap(), push());

        let ack = ServerMessage::Ack {
            client_id: ClientId("phone-7".into()),
            last_mutation_id: MutationId(3),
        };
        let text = ack.encode();
        assert!(text.contains(r#""type":"ack""#), "{text}");
        assert_eq!(ServerMessage::decode(&text).unwrap(), ack);
    }

    #[test]
    fn unknown_schema_version_is_a_decode_error() {
        let text = push()
            .encode()
            .replace(r#""schema_version":1"#, r#""schema_version":2"#);
        match PushMessage::decode(&text) {
            Err(DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1,
            }) => {}
            other => panic!("expected an unsupported version, got {other:?}"),
        }
        // Even when the body no longer looks like version 1 at all.
        let text = r#"{"schema_version":99,"message":{"something":"else"}}"#;
        assert!(matches!(
            ServerMessage::decode(text),
            Err(DecodeError::UnsupportedVersion { found: 99, .. })
        ));
    }

    #[test]
    fn a_message_without_version_is_a_decode_error() {
        let text = r#"{"message":{"type":"ack","client_id":"a","last_mutation_id":1}}"#;
        assert!(matches!(
            ServerMessage::decode(text),
            Err(DecodeError::MissingVersion)
        ));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        for text in [
            "",
            "null",
            "[]",
            "{",
            r#"{"schema_version":"1"}"#,
            r#"{"schema_version":-1}"#,
            r#"{"schema_version":1}"#,
            r#"{"schema_version":1,"message":{"type":"nope"}}"#,
            r#"{"schema_version":1,"message":{"type":"ack","client_id":"a","last_mutation_id":-5}}"#,
            r#"{"schema_version":1,"message":{"type":"ack","client_id":"a","last_mutation_id":1e400}}"#,
        ] {
            assert!(
                matches!(ServerMessage::decode(text), Err(DecodeError::Malformed(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_fields_of_a_known_version_are_ignored() {
        let text = r#"{"schema_version":1,"sent_at":"x","message":{"type":"ack","client_id":"a","last_mutation_id":4,"extra":true}}"#;
        assert_eq!(
            ServerMessage::decode(text).unwrap(),
            ServerMessage::Ack {
                client_id: ClientId("a".into()),
                last_mutation_id: MutationId(4)
            }
        );
    }
}
