//! Request bodies and query strings, read so that bad input is always a clear 4xx that
//! names the field.
//!
//! Handlers take a [`Body`] (the raw bytes and their media type) and parse it *after*
//! the role check, so a caller without the right role learns nothing about the body's
//! shape (403 comes before 400/422). [`Body::json`] reports:
//!
//! - not JSON at all (syntax, truncated, empty) → 400 `malformed_json` with line and column
//!   (one documented exception: `POST /v1/plans/{date}/optimize` takes no body as defaults);
//! - NUL or another control character (not tab or a line break) in a string or key →
//!   422 `control_character` naming every such field;
//! - JSON of the wrong shape (wrong type, missing or unknown field, unknown enum
//!   variant, a number out of range) → 422 `invalid_body` with the JSON path of the
//!   field, e.g. `$.shifts[0].start`;
//! - too large → 413; another media type → 415.

use crate::server::http::error::{ApiError, ErrorDetail};
use crate::server::http::listener::{BodyDeadline, Limits};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// The largest request body accepted, bytes (imports of a few thousand jobs fit).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What a request body is, by its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`, any `…+json`, or no `Content-Type` at all.
    Json,
    /// `text/csv`.
    Csv,
    /// Anything else.
    Other,
}

/// A request body, not parsed yet.
#[derive(Debug)]
pub struct Body {
    pub media_type: MediaType,
    /// The `Content-Type` as sent (for messages).
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let media_type = match &content_type {
            None => MediaType::Json,
            Some(ct) => {
                let essence = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                if essence == "application/json" || essence.ends_with("+json") {
                    MediaType::Json
                } else if essence == "text/csv" {
                    MediaType::Csv
                } else {
                    MediaType::Other
                }
            }
        };
        let deadline = req
            .extensions()
            .get::<BodyDeadline>()
            .map_or(BodyDeadline(Limits::default().body_timeout), |d| *d);
        let read = tokio::time::timeout(deadline.0, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::BodyTimeout(deadline.0))?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit_bytes: MAX_BODY_BYTES,
                }
            } else {
                ApiError::bad_request("unreadable_body", rejection.body_text())
            }
        })?;
        Ok(Body {
            media_type,
            content_type,
            bytes,
        })
    }
}

impl Body {
    /// The body as JSON of type `T` (see the module documentation for the errors).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json_shaped(None)
    }

    /// Like [`Body::json`] for a body that must be a JSON object: anything else (an
    /// array, a string…) is a 422 at `$` instead of serde's puzzling "expected a string"
    /// when an array meets a struct.
    pub fn json_object<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json_shaped(Some("object"))
    }

    /// Like [`Body::json`] for a body that must be a JSON array.
    pub fn json_array<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json_shaped(Some("array"))
    }

    fn json_shaped<T: DeserializeOwned>(&self, shape: Option<&str>) -> Result<T, ApiError> {
        if self.media_type != MediaType::Json {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send JSON with `Content-Type: application/json`, not `{}`",
                self.content_type.as_deref().unwrap_or("")
            )));
        }
        let value = parse_document(&self.bytes)?;
        let fits = match shape {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            _ => true,
        };
        if let (false, Some(what)) = (fits, shape) {
            return Err(ApiError::InvalidBody {
                message: format!("the body must be a JSON {what}"),
                details: vec![ErrorDetail::new(
                    "$",
                    "invalid_type",
                    format!("expected a JSON {what}"),
                )],
            });
        }
        typed(value)
    }
}

/// Parses `bytes` as JSON of type `T`, with errors that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    typed(parse_document(bytes)?)
}

/// A parsed document as `T`, once its text passed [`refuse_bad_text`].
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    refuse_bad_text(&value)?;
    from_value(value, "$").map_err(|detail| ApiError::InvalidBody {
        message: format!("{}: {}", detail.path, detail.message),
        details: vec![detail],
    })
}

/// The longest string (value or key) of any JSON body, characters; fields have
/// tighter limits of their own (names 200, notes 4000).
pub const MAX_TEXT_CHARS: usize = 10_000;

/// `bytes` as a JSON document: syntax first, so that a truncated document is
/// "malformed", not "missing field". The error says where, as a path when the
/// document got that far (`$.place.lat`), and what to do about the usual causes
/// (`NaN`, invalid UTF-8).
pub fn parse_document(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            code: "malformed_json",
            message: "the request body is empty; send a JSON document".to_owned(),
            details: Vec::new(),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let (path, error) = match serde_path_to_error::deserialize::<_, serde_json::Value>(&mut de) {
        Ok(value) => match de.end() {
            Ok(()) => return Ok(value),
            Err(error) => ("$".to_owned(), error), // trailing characters
        },
        Err(error) => (json_path(error.path()), error.into_inner()),
    };
    let text = error.to_string();
    let (line, column) = (error.line(), error.column());
    let (code, why) = if text.starts_with("invalid unicode code point") {
        (
            "invalid_utf8",
            format!("the text is not valid UTF-8 (line {line}, column {column}); send the body UTF-8 encoded"),
        )
    } else if let Some(token) = non_json_number(bytes, line, column) {
        (
            "malformed_json",
            format!(
                "`{token}` is not a JSON number (line {line}, column {column}); send a finite number, or null where the field may be empty"
            ),
        )
    } else {
        (
            "malformed_json",
            format!("the request body is not valid JSON: {text}"),
        )
    };
    let message = if path == "$" {
        why.clone()
    } else {
        format!("{path}: {why}")
    };
    Err(ApiError::BadRequest {
        code,
        details: vec![ErrorDetail::new(path, code, why)],
        message,
    })
}

/// `NaN`, `Infinity` or `-Infinity` where serde_json stopped (1-based line and
/// column), which JavaScript's `JSON.stringify` never writes but other encoders do.
fn non_json_number(bytes: &[u8], line: usize, column: usize) -> Option<&'static str> {
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(line - 2)
            .map(|(i, _)| i + 1)?
    };
    let at = (line_start + column).saturating_sub(1).min(bytes.len());
    // back to the start of the token serde_json stopped in
    let start = bytes[..at]
        .iter()
        .rposition(|b| !(b.is_ascii_alphabetic() || *b == b'-'))
        .map_or(0, |i| i + 1);
    ["NaN", "-Infinity", "Infinity"]
        .into_iter()
        .find(|token| bytes[start..].starts_with(token.as_bytes()))
}

/// At most this many text findings are listed in one answer.
const MAX_TEXT_DETAILS: usize = 20;

/// Refuses strings (values or keys) holding NUL or another control character other
/// than tab, line feed and carriage return — PostgreSQL cannot store NUL (it was a
/// 500), and escapes such as `\u001b[31m` would reach customers' messages and the logs
/// (422 `control_character`) — and strings over [`MAX_TEXT_CHARS`] (422 `too_long`).
/// Every offending field is named.
pub fn refuse_bad_text(value: &serde_json::Value) -> Result<(), ApiError> {
    let mut details = Vec::new();
    collect_bad_text(value, "$".to_owned(), &mut details);
    if details.is_empty() {
        return Ok(());
    }
    let more = match details.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Err(ApiError::InvalidBody {
        message: format!("{}: {}{more}", details[0].path, details[0].message),
        details,
    })
}

/// Whether `c` is refused in a text field.
pub fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

fn collect_bad_text(value: &serde_json::Value, path: String, out: &mut Vec<ErrorDetail>) {
    use serde_json::Value;
    if out.len() >= MAX_TEXT_DETAILS {
        return;
    }
    let check = |path: &str, text: &str, what: &str, out: &mut Vec<ErrorDetail>| {
        if let Some(c) = text.chars().find(|&c| is_refused_control(c)) {
            out.push(ErrorDetail::new(
                path,
                "control_character",
                format!(
                    "{what} holds the control character U+{:04X}; only tab and line breaks are allowed",
                    c as u32
                ),
            ));
        } else if text.len() > MAX_TEXT_CHARS && text.chars().count() > MAX_TEXT_CHARS {
            out.push(ErrorDetail::new(
                path,
                "too_long",
                format!(
                    "{what} has {} characters; at most {MAX_TEXT_CHARS} are accepted",
                    text.chars().count()
                ),
            ));
        }
    };
    match value {
        Value::String(text) => check(&path, text, "the text", out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_bad_text(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                let item_path = member(&path, &crate::server::store::ids::shorten(key, 40));
                check(&item_path, key, "the key", out);
                collect_bad_text(item, item_path, out);
            }
        }
        _ => {}
    }
}

/// Deserialises one element of a parsed JSON document, `base` being its path
/// (`$[3]`): the error, if any, as a detail with the full path.
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    base: &str,
) -> Result<T, ErrorDetail> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = json_path(error.path());
        let path = format!("{base}{}", &path[1..]);
        data_error_detail(path, &error.into_inner())
    })
}

/// `serde_path_to_error`'s path as a JSON path: `$`, `$.shifts[0].start`,
/// `$.skills["fiber splicing"]`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::from("$");
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = member(&out, key),
            Segment::Enum { variant } => out = member(&out, variant),
            // (an element serde cannot name; its parent's path is the closest we know)
            Segment::Unknown => {}
        }
    }
    out
}

/// `base.key`, or `base["key"]` when the key is not a plain identifier.
pub fn member(base: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{base}.{key}")
    } else {
        let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\""));
        format!("{base}[{quoted}]")
    }
}

/// A code for serde's data error, and the path of the field it is about: serde reports
/// a missing or unknown field at the object that lacks or has it, so the field's name is
/// appended to the path.
fn data_error_detail(path: String, error: &serde_json::Error) -> ErrorDetail {
    // serde_json appends " at line L column C"; the path says more to an API client.
    let text = error.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let backticked = |m: &str| -> Option<String> {
        let start = m.find('`')? + 1;
        let len = m[start..].find('`')?;
        Some(m[start..start + len].to_owned())
    };
    let (code, path) = if let Some(rest) = message.strip_prefix("missing field ") {
        let field = backticked(rest);
        (
            "missing_field",
            field.map_or(path.clone(), |f| member(&path, &f)),
        )
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = backticked(rest);
        // serde_path_to_error already records the unknown key as the last segment for
        // maps; only append it when it is not there yet.
        let path = match field {
            Some(f) if !path.ends_with(&member("", &f)) => member(&path, &f),
            _ => path,
        };
        ("unknown_field", path)
    } else if message.starts_with("unknown variant") {
        ("unknown_variant", path)
    } else if message.starts_with("invalid type") {
        ("invalid_type", path)
    } else if message.starts_with("invalid length") {
        ("invalid_length", path)
    } else if message.starts_with("duplicate field") {
        ("duplicate_field", path)
    } else {
        ("invalid_value", path)
    };
    ErrorDetail::new(path, code, message)
}

/// A query string parsed into `T`; a bad one is a 400 `invalid_query` naming the
/// parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// Middleware: a path whose percent-decoded form holds a control character (`%00`,
/// `%1B`, `%7F`, `%C2%9B`…) is a 400 `invalid_path` before any handler reads it as an
/// id (PostgreSQL cannot compare with a NUL: it was a 500).
pub async fn refuse_control_characters_in_path(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = percent_encoding::percent_decode_str(request.uri().path()).decode_utf8_lossy();
    if let Some(c) = text
        .chars()
        .find(|&c| is_refused_control(c) || c == '\r' || c == '\n')
    {
        return ApiError::bad_request(
            "invalid_path",
            format!(
                "the path holds the control character U+{:04X}; ids are printable text",
                c as u32
            ),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_named_by_path() {
        let body = br#"{"name":"Ana\u0000","notes":["ok\n","\u001b[31m"],"k\u0007":1}"#;
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        let Err(ApiError::InvalidBody { details, .. }) = refuse_bad_text(&body) else {
            panic!("expected a 422");
        };
        let mut paths: Vec<&str> = details.iter().map(|d| d.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["$.name", "$.notes[1]", "$[\"k\\u0007\"]"]);
        assert!(details.iter().all(|d| d.code == "control_character"));
        // Tabs and line breaks are text; raw DEL is refused too.
        let text = |bytes: &[u8]| refuse_bad_text(&serde_json::from_slice(bytes).unwrap());
        assert!(text(br#"{"notes":"a\tb\r\nc"}"#).is_ok());
        assert!(text(b"{\"name\":\"a\x7f\"}").is_err());
        let long = format!("{{\"notes\":\"{}\"}}", "é".repeat(MAX_TEXT_CHARS + 1));
        let Err(ApiError::InvalidBody { details, .. }) = text(long.as_bytes()) else {
            panic!("expected a 422");
        };
        assert_eq!(
            (details[0].path.as_str(), details[0].code.as_str()),
            ("$.notes", "too_long")
        );
    }

    #[test]
    fn syntax_errors_say_where_and_why() {
        let bad = |bytes: &[u8]| match parse_json::<serde_json::Value>(bytes) {
            Err(ApiError::BadRequest {
                code,
                message,
                details,
            }) => (code, message, details),
            other => panic!("expected a 400, got {other:?}"),
        };
        let (code, message, details) = bad(b"{\"place\": {\"lat\": NaN}}");
        assert_eq!(code, "malformed_json");
        assert!(message.contains("`NaN` is not a JSON number"), "{message}");
        assert_eq!(details[0].path, "$.place.lat");
        let (_, message, _) = bad(b"{\"a\": 1,\n \"b\": -Infinity}");
        assert!(message.contains("`-Infinity`"), "{message}");
        let (code, message, details) = bad(b"{\"name\": \"Ana \xff\"}");
        assert_eq!(code, "invalid_utf8");
        assert!(message.contains("not valid UTF-8"), "{message}");
        assert_eq!(details[0].path, "$.name");
        let (code, _, details) = bad(b"{\"name\": ");
        assert_eq!(
            (code, details[0].path.as_str()),
            ("malformed_json", "$.name")
        );
        let (code, _, _) = bad(b"{} x");
        assert_eq!(code, "malformed_json");
    }
}
