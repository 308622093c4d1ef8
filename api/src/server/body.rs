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

use super::error::{ApiError, ErrorDetail};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::{DeserializeOwned, IgnoredAny};

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
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
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
        if self.media_type != MediaType::Json {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send JSON with `Content-Type: application/json`, not `{}`",
                self.content_type.as_deref().unwrap_or("")
            )));
        }
        parse_json(&self.bytes)
    }

    /// Like [`Body::json`] for a body that must be a JSON object: anything else (an
    /// array, a string…) is a 422 at `$` instead of serde's puzzling "expected a string"
    /// when an array meets a struct.
    pub fn json_object<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.expect_top_level(b'{', "object")?;
        self.json()
    }

    /// Like [`Body::json`] for a body that must be a JSON array.
    pub fn json_array<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.expect_top_level(b'[', "array")?;
        self.json()
    }

    fn expect_top_level(&self, open: u8, what: &str) -> Result<(), ApiError> {
        let first = self.bytes.iter().find(|b| !b.is_ascii_whitespace());
        let well_formed = || serde_json::from_slice::<IgnoredAny>(&self.bytes).is_ok();
        match first {
            // Empty bodies and JSON syntax errors are reported by `json`.
            Some(&b) if b != open && well_formed() => Err(ApiError::InvalidBody {
                message: format!("the body must be a JSON {what}"),
                details: vec![ErrorDetail::new(
                    "$",
                    "invalid_type",
                    format!("expected a JSON {what}"),
                )],
            }),
            _ => Ok(()),
        }
    }
}

/// Parses `bytes` as JSON of type `T`, with errors that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            code: "malformed_json",
            message: "the request body is empty; send a JSON document".to_owned(),
            details: Vec::new(),
        });
    }
    // Syntax first, so that a truncated document is "malformed", not "missing field".
    if let Err(error) = serde_json::from_slice::<IgnoredAny>(bytes) {
        return Err(ApiError::BadRequest {
            code: "malformed_json",
            message: format!("the request body is not valid JSON: {error}"),
            details: Vec::new(),
        });
    }
    refuse_control_characters(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|error| {
        let path = json_path(error.path());
        let error = error.into_inner();
        let detail = match error.classify() {
            serde_json::error::Category::Data => data_error_detail(path, &error),
            // serde_json reports a few type mismatches of well-formed JSON as syntax
            // ("expected value" for a number where an enum's string belongs).
            _ => ErrorDetail::new(
                path,
                "invalid_type",
                "a value of the wrong type (e.g. a number where a name belongs)",
            ),
        };
        ApiError::InvalidBody {
            message: format!("{}: {}", detail.path, detail.message),
            details: vec![detail],
        }
    })
}

/// At most this many control-character findings are listed in one answer.
const MAX_CONTROL_CHARACTER_DETAILS: usize = 20;

/// Refuses strings (values or keys) holding NUL or another control character other
/// than tab, line feed and carriage return: PostgreSQL cannot store NUL (it was a 500),
/// and escapes such as `\u001b[31m` would reach customers' messages and the logs.
/// Every offending field is named (422 `control_character`).
fn refuse_control_characters(bytes: &[u8]) -> Result<(), ApiError> {
    // Cheap pre-check: C0 controls can only appear escaped (`\u00XX`; raw ones are a
    // JSON syntax error); DEL and C1 controls (UTF-8 `C2 80`–`C2 9F`) may also be raw.
    let may_hold_one = bytes
        .windows(2)
        .any(|w| w == b"\\u" || w[0] == 0x7f || (w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1])))
        || bytes.last() == Some(&0x7f);
    if !may_hold_one {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // reported by the typed parse
    };
    let mut details = Vec::new();
    collect_control_characters(&value, "$".to_owned(), &mut details);
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

fn collect_control_characters(value: &serde_json::Value, path: String, out: &mut Vec<ErrorDetail>) {
    use serde_json::Value;
    if out.len() >= MAX_CONTROL_CHARACTER_DETAILS {
        return;
    }
    let refuse = |path: &str, text: &str, what: &str, out: &mut Vec<ErrorDetail>| {
        if let Some(c) = text.chars().find(|&c| is_refused_control(c)) {
            out.push(ErrorDetail::new(
                path,
                "control_character",
                format!(
                    "{what} holds the control character U+{:04X}; only tab and line breaks are allowed",
                    c as u32
                ),
            ));
        }
    };
    match value {
        Value::String(text) => refuse(&path, text, "the text", out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_control_characters(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                let item_path = member(&path, key);
                refuse(&item_path, key, "the key", out);
                collect_control_characters(item, item_path, out);
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
            Segment::Unknown => out.push_str("[?]"),
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
        let Err(ApiError::InvalidBody { details, .. }) = refuse_control_characters(body) else {
            panic!("expected a 422");
        };
        let mut paths: Vec<&str> = details.iter().map(|d| d.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["$.name", "$.notes[1]", "$[\"k\\u0007\"]"]);
        assert!(details.iter().all(|d| d.code == "control_character"));
        // Tabs and line breaks are text; raw DEL is refused too.
        assert!(refuse_control_characters(br#"{"notes":"a\tb\r\nc"}"#).is_ok());
        assert!(refuse_control_characters(b"{\"name\":\"a\x7f\"}").is_err());
    }
}
