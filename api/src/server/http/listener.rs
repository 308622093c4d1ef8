//! Accepting connections, bounded so that a slow or greedy client cannot hold the
//! service: a deadline for the request head, for the body, and for the whole request,
//! and at most so many open connections per client address.
//!
//! `axum::serve` sets no timer, so hyper's header timeout never fired (a connection
//! with partial headers stayed open 150 s, a declared body that never came held a
//! request 45 s). The accept loop here is hyper-util's connection builder with a timer
//! and a graceful shutdown, around the same router.
//!
//! | limit | default | option of `despacho serve` | when it is hit |
//! |---|---|---|---|
//! | request head (line and headers) | 10 s | `--header-timeout-seconds` | the connection is closed |
//! | request body | 30 s | `--body-timeout-seconds` | 408 `body_timeout` |
//! | whole request (body and answer) | 60 s | `--request-timeout-seconds` | 503 `request_timeout`; the transaction rolls back |
//! | open connections per client address | 64 | `--max-connections-per-client` | a new connection is closed at once |
//!
//! Behind a reverse proxy every connection comes from the proxy's address: raise
//! `--max-connections-per-client` to what the proxy may open (or bound clients there).

use crate::server::http::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The bounds of one request and of one client's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    pub connections_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            connections_per_client: 64,
        }
    }
}

/// The options of `despacho serve` for [`Limits`].
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Seconds a client has to send a request's line and headers (then the connection
    /// is closed).
    #[arg(long, value_name = "S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body (then 408).
    #[arg(long, value_name = "S", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_seconds: u64,
    /// Seconds a whole request may take, body and answer (then 503).
    #[arg(long, value_name = "S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,
    /// Open connections one client address may hold; more are closed at once. Behind a
    /// reverse proxy every client has the proxy's address: raise it there.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections_per_client: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            connections_per_client: usize::try_from(self.max_connections_per_client)
                .unwrap_or(usize::MAX),
        }
    }
}

/// How long the body extractor waits for a request's body (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub Duration);

/// Middleware: the whole-request deadline, and the body deadline handed to the body
/// extractor ([`crate::server::http::body::Body`]).
async fn bound_request(State(limits): State<Limits>, mut request: Request, next: Next) -> Response {
    request
        .extensions_mut()
        .insert(BodyDeadline(limits.body_timeout));
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(limits.request_timeout).into_response(),
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes, then lets
/// the requests in flight finish (at most 30 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let router = router.layer(axum::middleware::from_fn_with_state(limits, bound_request));
    let clients = Clients::default();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = clients.take(peer.ip(), limits.connections_per_client) else {
            tracing::warn!(client = %peer.ip(), limit = limits.connections_per_client,
                "too many open connections from one client address; closed the new one");
            continue;
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|r: Request<hyper::body::Incoming>| r.map(axum::body::Body::new)),
        );
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or times out is not the service's error.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("requests still in flight after 30 s; stopping anyway");
        }
    }
}

/// Open connections per client address.
#[derive(Clone, Default)]
struct Clients(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection of a client; gives its place back when dropped.
struct Slot {
    clients: Clients,
    ip: IpAddr,
}

impl Clients {
    fn take(&self, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_of_connections() {
        let clients = Clients::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = clients.take(a, 2).unwrap();
        let _second = clients.take(a, 2).unwrap();
        assert!(clients.take(a, 2).is_none());
        assert!(
            clients.take(b, 2).is_some(),
            "another client is not affected"
        );
        drop(first);
        assert!(
            clients.take(a, 2).is_some(),
            "a closed connection frees its place"
        );
        assert_eq!(
            clients.0.lock().unwrap().len(),
            1,
            "b's place was given back"
        );
    }
}
