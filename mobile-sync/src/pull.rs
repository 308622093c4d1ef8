//! Pull messages: the phone asks "what changed in my scope since this cookie?",
//! the server answers with a patch, a new cookie and the device's
//! `last_mutation_id`, all read from one consistent snapshot.
//!
//! Same versioned envelope as push ([`crate::SCHEMA_VERSION`], [`DecodeError`]).

use crate::cookie::Cookie;
use crate::message::{decode, encode, ClientId, DecodeError, MutationId};
use serde::{Deserialize, Serialize};

/// Phone → server: "my scope, please, from `cookie` on" (`None` on first sync).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullRequest {
    pub client_id: ClientId,
    #[serde(default)]
    pub cookie: Option<Cookie>,
}

/// Server → phone.
///
/// Apply `patch` to the view held at `base_cookie` to get the view at `cookie`.
/// `base_cookie` echoes the request's cookie, so the phone can tell an answer to
/// an old request (delivered late or twice) and ignore it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    pub client_id: ClientId,
    #[serde(default)]
    pub base_cookie: Option<Cookie>,
    pub cookie: Cookie,
    /// Every mutation of this device up to here has been applied or rejected, and
    /// its effect is in the view at `cookie`.
    pub last_mutation_id: MutationId,
    pub patch: Vec<PatchOp>,
}

/// One change to the phone's key → JSON view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PatchOp {
    Put {
        key: String,
        value: serde_json::Value,
    },
    Del {
        key: String,
    },
    /// Forget the whole view (the server could not use the cookie, or this is the
    /// first sync); the puts that follow are the full snapshot.
    Clear,
}

impl PullResponse {
    /// Whether this answer replaces the whole view rather than patching it.
    pub fn is_reset(&self) -> bool {
        self.patch.iter().any(|op| matches!(op, PatchOp::Clear))
    }
}

impl PullRequest {
    /// The message in its versioned JSON envelope.
    pub fn encode(&self) -> String {
        encode(self)
    }

    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode(text)
    }
}

impl PullResponse {
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

    #[test]
    fn pull_messages_round_trip_through_their_envelope() {
        let request = PullRequest {
            client_id: ClientId("phone-1".into()),
            cookie: Some(Cookie::from_text("c1.1.2.61.00")),
        };
        let text = request.encode();
        assert!(text.starts_with(r#"{"schema_version":1,"#), "{text}");
        assert_eq!(PullRequest::decode(&text).unwrap(), request);

        let response = PullResponse {
            client_id: ClientId("phone-1".into()),
            base_cookie: None,
            cookie: Cookie::from_text("c1.1.3.61.00"),
            last_mutation_id: MutationId(7),
            patch: vec![
                PatchOp::Clear,
                PatchOp::Put {
                    key: "job/J-1".into(),
                    value: json!({"status": "arrived"}),
                },
                PatchOp::Del {
                    key: "job/J-2".into(),
                },
            ],
        };
        let text = response.encode();
        assert!(text.contains(r#"{"op":"clear"}"#), "{text}");
        assert!(text.contains(r#"{"op":"del","key":"job/J-2"}"#), "{text}");
        assert_eq!(PullResponse::decode(&text).unwrap(), response);
        assert!(response.is_reset());
    }

    #[test]
    fn a_first_pull_needs_no_cookie_field() {
        let text = r#"{"schema_version":1,"message":{"client_id":"p"}}"#;
        assert_eq!(PullRequest::decode(text).unwrap().cookie, None);
    }

    #[test]
    fn a_pull_of_another_schema_version_is_refused_clearly() {
        let text = r#"{"schema_version":2,"message":{"client_id":"p","cookie":{"v":2}}}"#;
        assert!(matches!(
            PullRequest::decode(text),
            Err(DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn an_unknown_patch_op_is_malformed() {
        let text = r#"{"schema_version":1,"message":{"client_id":"p","cookie":"x","last_mutation_id":0,"patch":[{"op":"merge"}]}}"#;
        assert!(matches!(
            PullResponse::decode(text),
            Err(DecodeError::Malformed(_))
        ));
    }
}
