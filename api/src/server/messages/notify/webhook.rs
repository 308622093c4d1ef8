//! Signed webhooks to the ISP's chat platform integration.
//!
//! `POST <endpoint url>` with the message as JSON and three headers:
//!
//! - `Despacho-Event-Id`: the outbox row's id, the same on every retry: receivers drop
//!   an id they already handled (delivery is at least once);
//! - `Despacho-Timestamp`: Unix seconds when this attempt was signed;
//! - `Despacho-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>` with the
//!   endpoint's own secret. Receivers recompute it over the raw body and refuse a
//!   timestamp more than 5 minutes away from their clock (replay protection).
//!
//! Answers: 2xx → delivered; 429, 5xx, a timeout or a connection failure → retry later;
//! any other status (4xx, 3xx: redirects are not followed) → dead, with the reason.
//! The client is `ureq` (blocking; the worker runs it on `spawn_blocking`), built without
//! a TLS stack, so endpoints are `http://` (docs/messages.md).

use super::targets::{GuardedResolver, RefusedTarget, WebhookTargets};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// Header names.
pub const EVENT_ID_HEADER: &str = "Despacho-Event-Id";
pub const TIMESTAMP_HEADER: &str = "Despacho-Timestamp";
pub const SIGNATURE_HEADER: &str = "Despacho-Signature";

/// How far a receiver should accept a timestamp from its own clock.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Where to send, with the secret that signs.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub secret: String,
}

/// What one POST came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Worth trying again later (429, 5xx, timeout, connection failure).
    Retry(String),
    /// Will never succeed as it is (another 4xx, a redirect, a bad URL).
    Permanent(String),
}

/// `v1=<hex>`: HMAC-SHA256 with `secret` of `"{timestamp}.{body}"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1={}",
        crate::server::store::ids::hex(&mac.finalize().into_bytes())
    )
}

/// Whether `header` (a `Despacho-Signature` value, possibly several `v1=` entries
/// separated by commas during a secret rotation) signs `body` at `timestamp`, and the
/// timestamp is within [`TOLERANCE_SECONDS`] of `now`. For receivers and tests.
pub fn verify(secret: &[u8], header: &str, timestamp: i64, now: i64, body: &[u8]) -> bool {
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return false;
    }
    let expected = signature(secret, timestamp, body);
    header.split(',').map(str::trim).any(|given| {
        given.len() == expected.len()
            && given
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// An HTTP client whose whole request (connect, send, answer) ends within `timeout`,
/// connecting only to addresses `targets` allows (checked after name resolution).
pub fn agent(timeout: Duration, targets: WebhookTargets) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent("despacho-webhooks/1")
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        GuardedResolver {
            targets,
            inner: Default::default(),
        },
    )
}

/// Sends `body` (JSON) to `endpoint`, signed at `timestamp`. Blocking.
pub fn post(
    agent: &ureq::Agent,
    endpoint: &Endpoint,
    event_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Delivery {
    let signed = signature(endpoint.secret.as_bytes(), timestamp, body);
    let sent = agent
        .post(&endpoint.url)
        .header("Content-Type", "application/json")
        .header(EVENT_ID_HEADER, event_id)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signed)
        .send(body);
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("{}: {e}", endpoint.url);
            return match e {
                ureq::Error::BadUri(_)
                | ureq::Error::TlsRequired
                | ureq::Error::Tls(_)
                | ureq::Error::RequireHttpsOnly(_)
                | ureq::Error::InvalidProxyUrl => Delivery::Permanent(reason),
                // an address the operator does not allow: retrying cannot help
                ureq::Error::Io(io) if RefusedTarget::is(&io) => Delivery::Permanent(reason),
                _ => Delivery::Retry(reason),
            };
        }
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Delivery::Delivered;
    }
    let said = response
        .body_mut()
        .with_config()
        .limit(512)
        .read_to_string()
        .unwrap_or_default();
    let said: String = said.chars().take(200).collect();
    let reason = format!("{} answered {status}: {}", endpoint.url, said.trim());
    if status == 429 || status >= 500 {
        Delivery::Retry(reason)
    } else {
        Delivery::Permanent(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_timestamp_and_the_body() {
        let s = signature(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64, "{s}");
        assert!(verify(
            b"secret",
            &s,
            1_700_000_000,
            1_700_000_100,
            b"{\"a\":1}"
        ));
        let rotated = format!("v1=00, {s}");
        assert!(verify(
            b"secret",
            &rotated,
            1_700_000_000,
            1_700_000_000,
            b"{\"a\":1}"
        ));
        // Another body, another secret, another timestamp, a stale timestamp.
        assert!(!verify(
            b"secret",
            &s,
            1_700_000_000,
            1_700_000_000,
            b"{\"a\":2}"
        ));
        assert!(!verify(
            b"other",
            &s,
            1_700_000_000,
            1_700_000_000,
            b"{\"a\":1}"
        ));
        assert!(!verify(
            b"secret",
            &s,
            1_700_000_001,
            1_700_000_001,
            b"{\"a\":1}"
        ));
        assert!(!verify(
            b"secret",
            &s,
            1_700_000_000,
            1_700_000_301,
            b"{\"a\":1}"
        ));
    }
}
