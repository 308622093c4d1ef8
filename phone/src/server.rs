//! The server as the phone sees it: `POST /v1/sync/push` and `/v1/sync/pull` over
//! plain HTTP with a technician's API key (blocking `ureq`; [`crate::Phone`] calls it
//! from tokio's blocking pool). The answer's status decides what the phone does:
//! 200 is taken in, 503 and no answer at all are "try again later" (nothing is known
//! to have happened, and a resend is harmless because the server applies each
//! mutation id once), anything else is a refusal to show.

use crate::error::{PhoneError, TransportError};
use despacho_mobile_sync::{PullRequest, PullResponse, PushMessage, ServerMessage};
use serde_json::Value;
use std::time::Duration;

/// How long one request may take before the phone gives up on its answer.
const TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Despacho service and the technician's key.
#[derive(Clone)]
pub struct Server {
    agent: ureq::Agent,
    base: String,
    key: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Server").field("base", &self.base).finish()
    }
}

impl Server {
    /// `base` is the service's URL (`http://host:port`), `key` a technician's API key.
    pub fn new(base: &str, key: &str) -> Result<Server, PhoneError> {
        let base = base.trim().trim_end_matches('/');
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(PhoneError::InvalidInput {
                field: "server",
                message: format!("{base:?} is not an http:// URL (e.g. http://127.0.0.1:8080)"),
            });
        }
        if key.trim().is_empty() {
            return Err(PhoneError::InvalidInput {
                field: "key",
                message: "the technician's API key is empty".into(),
            });
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .build();
        Ok(Server {
            agent: ureq::Agent::new_with_config(config),
            base: base.to_owned(),
            key: key.trim().to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a push and returns the server's acknowledgement.
    pub fn push(&self, message: &PushMessage) -> Result<ServerMessage, TransportError> {
        let path = "/v1/sync/push";
        let text = self.post(path, &message.encode())?;
        ServerMessage::decode(&text).map_err(|e| TransportError::BadAnswer {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    /// Sends a pull and returns the server's answer.
    pub fn pull(&self, request: &PullRequest) -> Result<PullResponse, TransportError> {
        let path = "/v1/sync/pull";
        let text = self.post(path, &request.encode())?;
        PullResponse::decode(&text).map_err(|e| TransportError::BadAnswer {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    /// One POST of a JSON body; the body of a 200, or what went wrong.
    pub fn post(&self, path: &str, body: &str) -> Result<String, TransportError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| TransportError::Unreachable {
            url: url.clone(),
            detail: e.to_string(),
        };
        let mut response = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.key))
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        // An answer cut short is no answer: the request may or may not have committed.
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(unreachable)?;
        if status == 200 {
            return Ok(text);
        }
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = error["error"]["code"].as_str().unwrap_or("").to_owned();
        let message = error["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| text.chars().take(200).collect());
        if status == 503 {
            return Err(TransportError::Busy { code, message });
        }
        Err(TransportError::Refused {
            path: path.into(),
            status,
            code,
            message,
        })
    }
}
