//! Ids: the one rule every id a client chooses follows (technicians, jobs, customers,
//! territories, in single requests and in imports), and the ids the service makes.
//!
//! An id is 1 to [`MAX_ID_CHARS`] ASCII letters, digits and `._:-`: safe in a URL path,
//! a log line and a database index on both backends (a 10 MB id was stored on SQLite
//! and a 500 on PostgreSQL, "index row requires 114488 bytes").

use crate::server::http::error::{ApiError, ErrorDetail};

/// The longest id accepted, characters.
pub const MAX_ID_CHARS: usize = 100;

/// Whether `id` follows the id rule.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// The problem with `id` at `path` (`$.id`, `$[3].id`), if it breaks the id rule; `what`
/// names the resource ("a technician id").
pub fn check_id(path: &str, id: &str, what: &str) -> Option<ErrorDetail> {
    if is_valid_id(id) {
        return None;
    }
    let shown = shorten(id, 40);
    let why = if id.is_empty() {
        "it is empty".to_owned()
    } else if id.chars().count() > MAX_ID_CHARS {
        format!("it has {} characters", id.chars().count())
    } else {
        "it holds other characters".to_owned()
    };
    Some(ErrorDetail::new(
        path,
        "invalid_id",
        format!(
            "`{shown}` is not {what}: {why}; use 1 to {MAX_ID_CHARS} letters, digits or `._:-`"
        ),
    ))
}

/// `text` cut to `max` characters with `…`, for quoting a value in a message (a 10 MB
/// value must not come back in the answer).
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// `prefix_` and `2 × N` random hex digits: ids the service makes (`key_…`, `cus_…`).
pub fn new_id<const N: usize>(prefix: &str) -> Result<String, ApiError> {
    Ok(format!("{prefix}_{}", hex(&random_bytes::<N>()?)))
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("the system's random source failed: {e}")))?;
    Ok(bytes)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_rule() {
        assert!(is_valid_id("tech-003"));
        assert!(is_valid_id("cus:42.a_b"));
        assert!(is_valid_id(&"x".repeat(MAX_ID_CHARS)));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"x".repeat(MAX_ID_CHARS + 1)));
        assert!(!is_valid_id("tech 3"));
        assert!(!is_valid_id("técnico"));
        assert!(!is_valid_id("a/b"));
        let long = "x".repeat(10_000);
        let detail = check_id("$.id", &long, "a job id").expect("refused");
        assert_eq!(detail.code, "invalid_id");
        assert!(detail.message.len() < 200, "{}", detail.message);
        assert!(detail.message.contains("10000 characters"));
    }
}
