//! The pull cursor ("cookie"): opaque to the phone, signed by the server.
//!
//! A cookie says "this phone holds technician T's scope as of version V, in the
//! server's epoch E". Text form: `c1.<epoch>.<version>.<technician as hex>.<hmac>`,
//! where the HMAC-SHA256 (key held by the server only) covers everything before
//! the last dot.
//!
//! Why signed: a cookie the server did not make (edited on the phone, or made
//! with an old key) must not be trusted as a base for a diff, or the phone would
//! silently miss changes. The server answers any cookie it cannot use with `clear`
//! and a full snapshot ([`crate::plan_pull`]), never with an error the phone would
//! retry forever.
//!
//! Why the phone may read the order: the phone must never move its cursor
//! backwards when answers arrive late or twice. [`Cookie::order`] reads
//! `(epoch, version)` without checking the signature; that is only used to ignore
//! old answers, never to trust data.

use crate::ids::{Epoch, ScopeVersion, TechnicianId};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "c1";

/// The server's secret for signing cookies. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct CookieKey(Vec<u8>);

impl CookieKey {
    /// A key from secret bytes (at least 32 random bytes in production).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// What a valid cookie says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieClaims {
    pub epoch: Epoch,
    pub technician: TechnicianId,
    pub version: ScopeVersion,
}

/// A cookie as it travels: any string (so a garbled one still decodes as a
/// message and gets a full snapshot, not a decode error).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cookie(String);

/// Why the server cannot use a cookie. Every case leads to `clear` + full snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    #[error("cookie is not in a format this server makes")]
    Malformed,
    #[error("cookie signature does not match (forged, or made with another key)")]
    BadSignature,
}

impl Cookie {
    /// Signs `claims` with `key`.
    pub fn issue(key: &CookieKey, claims: &CookieClaims) -> Self {
        let body = format!(
            "{PREFIX}.{}.{}.{}",
            claims.epoch.0,
            claims.version.0,
            hex(claims.technician.0.as_bytes())
        );
        let mut mac = key.mac();
        mac.update(body.as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        Self(format!("{body}.{signature}"))
    }

    /// A cookie from its text, unchecked (as read from the wire or the phone's storage).
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the signature and returns what the cookie says.
    pub fn verify(&self, key: &CookieKey) -> Result<CookieClaims, CookieError> {
        let (body, signature) = self.0.rsplit_once('.').ok_or(CookieError::Malformed)?;
        let claims = parse_body(body).ok_or(CookieError::Malformed)?;
        let signature = unhex(signature).ok_or(CookieError::Malformed)?;
        let mut mac = key.mac();
        mac.update(body.as_bytes());
        // Constant-time comparison, so the signature cannot be guessed byte by byte.
        mac.verify_slice(&signature)
            .map_err(|_| CookieError::BadSignature)?;
        Ok(claims)
    }

    /// `(epoch, version)` as written in the cookie, unchecked: for the phone, to
    /// keep its cursor from going backwards. `None` if the text is not a cookie.
    pub fn order(&self) -> Option<(Epoch, ScopeVersion)> {
        let (body, _) = self.0.rsplit_once('.')?;
        parse_body(body).map(|c| (c.epoch, c.version))
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn parse_body(body: &str) -> Option<CookieClaims> {
    let mut parts = body.split('.');
    let (prefix, epoch, version, technician) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() {
        return None;
    }
    let technician = String::from_utf8(unhex(technician)?).ok()?;
    Some(CookieClaims {
        epoch: Epoch(strict_u64(epoch)?),
        version: ScopeVersion(strict_u64(version)?),
        technician: TechnicianId(technician),
    })
}

/// Digits only: `u64::from_str` also takes a leading `+`, which would give one
/// cookie two spellings.
fn strict_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let pairs = s.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> CookieKey {
        CookieKey::new(b"test-secret-test-secret-test-sec".to_vec())
    }

    fn claims() -> CookieClaims {
        CookieClaims {
            epoch: Epoch(3),
            technician: TechnicianId("ana.lopez".into()),
            version: ScopeVersion(42),
        }
    }

    #[test]
    fn an_issued_cookie_verifies_to_its_claims() {
        let cookie = Cookie::issue(&key(), &claims());
        assert!(cookie.as_str().starts_with("c1.3.42."), "{cookie}");
        assert_eq!(cookie.verify(&key()), Ok(claims()));
        assert_eq!(cookie.order(), Some((Epoch(3), ScopeVersion(42))));
    }

    #[test]
    fn a_cookie_edited_on_the_phone_is_refused() {
        let cookie = Cookie::issue(&key(), &claims());
        let edited = Cookie::from_text(cookie.as_str().replacen(".42.", ".41.", 1));
        assert_eq!(edited.verify(&key()), Err(CookieError::BadSignature));
        // The phone still reads its order, which is all it uses it for.
        assert_eq!(edited.order(), Some((Epoch(3), ScopeVersion(41))));
    }

    #[test]
    fn a_cookie_signed_with_another_key_is_refused() {
        let cookie = Cookie::issue(&CookieKey::new(b"old key".to_vec()), &claims());
        assert_eq!(cookie.verify(&key()), Err(CookieError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for text in [
            "",
            ".",
            "c1",
            "c1.1.2.61.zz",
            "c1.+1.2.61.00",
            "c2.1.2.61.00",
            "c1.1.2.6.00",
            "c1.1.2.ff.00",
            "c1.1.2.61.extra.00",
            "c1.99999999999999999999999.2.61.00",
        ] {
            assert_eq!(
                Cookie::from_text(text).verify(&key()),
                Err(CookieError::Malformed),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_key_is_never_printed() {
        assert_eq!(format!("{:?}", key()), "CookieKey(..)");
    }

    proptest! {
        #[test]
        fn any_text_verifies_or_errs_without_panicking(text in ".{0,80}") {
            let cookie = Cookie::from_text(text);
            prop_assert!(cookie.verify(&key()).is_err());
            let _ = cookie.order();
        }

        #[test]
        fn any_claims_round_trip(epoch: u64, version: u64, technician in "\\PC{0,20}") {
            let claims = CookieClaims {
                epoch: Epoch(epoch),
                technician: TechnicianId(technician),
                version: ScopeVersion(version),
            };
            let cookie = Cookie::issue(&key(), &claims);
            prop_assert_eq!(cookie.verify(&key()), Ok(claims));
        }
    }
}
