//! A real local chat-platform receiver for the message tests (server_visit_events.rs,
//! worker_crash.rs): axum on 127.0.0.1:0 that checks every signature with
//! `notify::webhook::verify` and the secret it is given, records each request (event
//! id, JSON body) when it starts and when it is answered, and can hold requests open.
//! Used as `crate::common::receiver`.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use despacho_api::server::messages::notify::webhook;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Hit {
    pub event_id: String,
    pub body: Value,
    pub signature_ok: bool,
}

#[derive(Default)]
pub struct ReceiverState {
    pub secret: Mutex<String>,
    /// How long each request is held before the 200.
    pub delay: Mutex<Duration>,
    /// Every request, when it arrived.
    pub started: Mutex<Vec<Hit>>,
    /// Every request answered 200.
    pub answered: Mutex<Vec<Hit>>,
}

pub struct Receiver {
    pub url: String,
    pub state: Arc<ReceiverState>,
}

async fn receive(
    axum::extract::State(st): axum::extract::State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let timestamp = header("despacho-timestamp").parse::<i64>().unwrap_or(0);
    let secret = st.secret.lock().unwrap().clone();
    let hit = Hit {
        event_id: header("despacho-event-id"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signature_ok: webhook::verify(
            secret.as_bytes(),
            &header("despacho-signature"),
            timestamp,
            chrono::Utc::now().timestamp(),
            &body,
        ),
    };
    st.started.lock().unwrap().push(hit.clone());
    let delay = *st.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    st.answered.lock().unwrap().push(hit);
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/hooks/chat", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/chat", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    pub fn set_secret(&self, secret: &str) {
        *self.state.secret.lock().unwrap() = secret.to_owned();
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    pub fn answered(&self) -> Vec<Hit> {
        self.state.answered.lock().unwrap().clone()
    }

    pub fn started(&self) -> Vec<Hit> {
        self.state.started.lock().unwrap().clone()
    }

    /// The answered messages of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<Hit> {
        self.answered()
            .into_iter()
            .filter(|h| h.body["kind"] == kind)
            .collect()
    }
}
