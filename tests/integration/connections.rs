//! Connections are bounded: a stalled request head or body, or an idle
//! connection, is closed after its timeout while others are served; at the
//! connection cap new connections wait instead of starving the workers.
//! Before latch had its own accept loop, 2,000 half-header connections were
//! all still held after 40 s.
//!
//! Each wait below is bounded only to fail instead of hanging; none decides
//! the outcome by how long it took.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::*;

/// Long enough for a loaded machine to do anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(60);

/// A raw connection to the test server.
async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.expect("connect")
}

/// Reads until the server closes the connection (end of stream or reset);
/// returns what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    });
    assert!(closed.await.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&seen).into_owned()
}

/// Sends a keep-alive `GET /healthz` and reads its whole response.
async fn health_on(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: latch\r\n\r\n").await.expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let answered = tokio::time::timeout(PATIENCE, async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                if seen.len() >= end + 4 + length {
                    return;
                }
            }
        }
    });
    assert!(answered.await.is_ok(), "no answer");
    String::from_utf8_lossy(&seen).into_owned()
}

async fn healthz_answers(app: &TestApp) {
    let response = tokio::time::timeout(PATIENCE, app.http.get(app.url("/healthz")).send()).await;
    let response = response.expect("/healthz answered in time").expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout_while_others_are_served() {
    let app = spawn_app_with(std::sync::Arc::new(latch_server::clock::SystemClock), |settings| {
        settings.connections.header_timeout = Duration::from_secs(1);
        settings.connections.idle_timeout = Duration::from_secs(600);
    })
    .await;
    // Opened first and silent: only the idle timeout (long) applies to it.
    let mut silent = connect(&app).await;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = connect(&app).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: latch\r\nX-Slow: ").await.expect("write");
        stalled.push(stream);
    }
    healthz_answers(&app).await;
    for mut stream in stalled {
        let answer = read_until_closed(&mut stream).await;
        assert!(!answer.contains("200 OK"), "an incomplete head is never answered: {answer}");
    }
    healthz_answers(&app).await;
    // The silent connection was not cut by the header timeout its neighbours hit.
    let answer = health_on(&mut silent).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(std::sync::Arc::new(latch_server::clock::SystemClock), |settings| {
        settings.connections.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut kept_alive = connect(&app).await;
    let answer = health_on(&mut kept_alive).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Kept alive after its answer, then closed once idle for the timeout.
    assert_eq!(read_until_closed(&mut kept_alive).await, "");
    let mut never_spoke = connect(&app).await;
    assert_eq!(read_until_closed(&mut never_spoke).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_arriving_gets_408_and_the_connection_closes() {
    let app = spawn_app_with(std::sync::Arc::new(latch_server::clock::SystemClock), |settings| {
        settings.connections.body_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect(&app).await;
    let head = "POST /t/demo/auth/login HTTP/1.1\r\nHost: latch\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(b"{\"email\": ").await.expect("write");
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("request_timeout"), "{answer}");
    healthz_answers(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let app = spawn_app_with(std::sync::Arc::new(latch_server::clock::SystemClock), |settings| {
        settings.connections.max_connections = 2;
        settings.connections.idle_timeout = Duration::from_secs(600);
    })
    .await;
    // Two kept-alive connections, each answered once: both slots are taken.
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    assert!(health_on(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(health_on(&mut second).await.starts_with("HTTP/1.1 200"));

    let third = tokio::spawn({
        let addr = app.addr;
        async move {
            let mut third = TcpStream::connect(addr).await.expect("queued, not refused");
            health_on(&mut third).await
        }
    });
    // A server without a cap answers the third at once. (This can only pass
    // wrongly on a stalled machine, never fail a correct server.)
    tokio::task::yield_now().await;
    let early = tokio::time::timeout(Duration::from_millis(500), async {
        while !third.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(early.await.is_err(), "the third connection was served beyond the cap");
    // A slot frees: the queued connection is accepted and answered.
    drop(first);
    let answer = tokio::time::timeout(PATIENCE, third).await.expect("served once a slot freed").expect("task");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(health_on(&mut second).await.starts_with("HTTP/1.1 200"), "the held connection still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_at_the_cap_give_way_to_new_ones() {
    let app = spawn_app_with(std::sync::Arc::new(latch_server::clock::SystemClock), |settings| {
        settings.connections.max_connections = 4;
        settings.connections.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        hogs.push(connect(&app).await);
    }
    // All slots are held by connections that say nothing; they are closed
    // when idle, so a real client is served without anyone leaving.
    healthz_answers(&app).await;
    drop(hogs);
}
