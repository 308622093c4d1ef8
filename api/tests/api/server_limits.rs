//! Slow and greedy clients (issue 26, "no timeouts"), over a real socket against the
//! accept loop of `despacho serve` (`listener::serve`) with short limits: a connection
//! with no or partial headers is closed, a declared body that never comes is a 408, and
//! one client address holds at most its share of connections. Each runs on SQLite and
//! PostgreSQL.

use crate::common::*;
use despacho_api::server::http::listener::{self, Limits};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves `s`'s router on a free loopback port under `limits`; the address.
async fn serve(s: &TestServer, limits: Limits) -> std::net::SocketAddr {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let router = s.router.clone();
    tokio::spawn(listener::serve(
        socket,
        router,
        limits,
        std::future::pending(),
    ));
    addr
}

/// Reads until the server closes the connection (or `within` passes): what it sent,
/// and whether it closed.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

fn short() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
        connections_per_client: 64,
    }
}

async fn slow_clients_are_cut_off(s: TestServer) {
    let addr = serve(&s, short()).await;
    // Nothing sent at all, then partial headers: closed after the header deadline
    // (they stayed open 150 s before), long before the 20 s this waits.
    for sent in ["", "GET /healthz HTTP/1.1\r\nHost: x\r\n"] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(sent.as_bytes()).await.unwrap();
        let (_, closed) = read_to_close(&mut stream, Duration::from_secs(20)).await;
        assert!(closed, "a connection that sent {sent:?} is still open");
    }
    // A body declared and never sent: 408 `body_timeout`.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/technicians HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"id\":",
        s.admin_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = read_to_close(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    // A normal request is served.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_to_close(&mut stream, Duration::from_secs(20)).await;
    assert!(closed && answer.starts_with("HTTP/1.1 200"), "{answer}");
}

async fn one_client_holds_at_most_its_share_of_connections(s: TestServer) {
    let limits = Limits {
        header_timeout: Duration::from_secs(30),
        connections_per_client: 3,
        ..short()
    };
    let addr = serve(&s, limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the accept loop count them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let (_, closed) = read_to_close(&mut fourth, Duration::from_secs(10)).await;
    assert!(closed, "the fourth connection of one client was kept");
    // A held one still works, and a freed place can be taken again.
    held[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut held[0], Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    held.remove(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut again, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

both_backends!(
    slow_clients_are_cut_off,
    one_client_holds_at_most_its_share_of_connections,
);
