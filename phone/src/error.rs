//! Why a phone operation failed. Every variant says what to do next; none loses a
//! recorded mutation (the queue is on disk before any sending starts).

use despacho_mobile_sync::ReceiveError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    #[error("cannot use the phone's store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("the store {path} is in use by another process (one process owns a phone at a time)")]
    StoreInUse { path: PathBuf },
    #[error(
        "the store {path} belongs to device {stored:?}, not {given:?} (use --device {stored} \
         or another --store)"
    )]
    DeviceMismatch {
        path: PathBuf,
        stored: String,
        given: String,
    },
    #[error("the store {path} is damaged: {detail}")]
    CorruptStore { path: PathBuf, detail: String },
    /// Bad input from the technician, refused before it is queued.
    #[error("{field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server's answer contradicts this phone's queue (e.g. it acknowledges ids this
    /// device never issued: the store was replaced while the server kept the device).
    #[error("the server's answer does not fit this phone's queue: {0}")]
    Receive(#[from] ReceiveError),
    #[error("pushing made no progress: the server acknowledged up to {acknowledged} while {pending} mutations wait")]
    NoProgress { acknowledged: u64, pending: usize },
}

/// A failed exchange with the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer (offline, refused, reset, timed out): nothing is known to have
    /// happened; sending again is safe.
    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// 503: the server kept nothing of the request; send again later.
    #[error("the server is busy ({code}): {message}; try again")]
    Busy { code: String, message: String },
    /// A 4xx/5xx the same request would get again (bad key, another technician's
    /// device, an unsupported schema version).
    #[error("the server refused {path} with {status} {code}: {message}")]
    Refused {
        path: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server's answer to {path} is not a sync message: {detail}")]
    BadAnswer { path: String, detail: String },
}

impl TransportError {
    /// Whether the same request may succeed later (offline, busy).
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Busy { .. })
    }
}

impl PhoneError {
    /// Whether the operation may succeed if tried again later (the phone was offline
    /// or the server busy); the queue is intact either way.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Transport(t) if t.is_temporary())
    }
}
