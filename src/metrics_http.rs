//! The metrics endpoint (`--metrics-listen`): a tiny HTTP/1.1 responder on
//! tokio that answers `GET /metrics` with the node's [`Metrics`] in the
//! Prometheus text format, 404 for any other path, 405 for another method.
//! One request per connection (`Connection: close`); the request head is
//! bounded ([`METRICS_REQUEST_BYTES_MAX`]) and must arrive within
//! [`METRICS_READ_TIMEOUT_MS`]. The accept policy is the client port's:
//! loopback only in protected mode.
//!
//! Gauges that are state the actors already keep (members by state, hints
//! held) are sampled at scrape time by asking those actors, each answer
//! awaited at most [`METRICS_SAMPLE_TIMEOUT_MS`]: a scrape then costs two
//! messages, and the request path stays untouched.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix::Addr;
use ringkv_actors::failure_detector::{FailureDetector, StatusQuery};
use ringkv_actors::metrics::{Metrics, CONTENT_TYPE};
use ringkv_actors::net::AcceptPolicy;
use ringkv_actors::storage::{HintCountsQuery, Storage};
use ringkv_actors::wire::client::ClientReply;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

/// Largest request head read, in bytes; a longer one is answered 431.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Time a scraper has to send its request head, in milliseconds.
pub const METRICS_READ_TIMEOUT_MS: u64 = 5_000;
/// Time an actor has to answer a scrape-time sample, in milliseconds (a
/// gauge whose actor is late keeps its last value).
pub const METRICS_SAMPLE_TIMEOUT_MS: u64 = 1_000;
/// Scrapes served at once; more connections are closed at accept.
pub const METRICS_CONNECTIONS_MAX: usize = 16;

/// The actors sampled at scrape time.
pub struct Sources {
    /// Members and their states.
    pub failure_detector: Addr<FailureDetector>,
    /// Hints held.
    pub storage: Addr<Storage>,
}

/// Binds `addr` (its bound address is returned) and serves scrapes on the
/// current arbiter until the process ends.
pub async fn start(
    addr: SocketAddr,
    accept: AcceptPolicy,
    metrics: Metrics,
    sources: Sources,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let sources = Rc::new(sources);
    let open = Rc::new(Cell::new(0usize));
    actix::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(actor = "metrics", error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !accept.admits(remote) {
                warn!(actor = "metrics", %remote, "refusing a metrics connection from a non-loopback address: \
                    protected mode (this node has no --cluster-secret-file)");
                continue;
            }
            if open.get() >= METRICS_CONNECTIONS_MAX {
                warn!(actor = "metrics", %remote, limit = METRICS_CONNECTIONS_MAX,
                    "refusing a metrics connection: METRICS_CONNECTIONS_MAX scrapes in progress");
                continue;
            }
            open.set(open.get() + 1);
            let (metrics, sources, open) = (metrics.clone(), sources.clone(), open.clone());
            actix::spawn(async move {
                if let Err(e) = serve(stream, &metrics, &sources).await {
                    debug!(actor = "metrics", %remote, error = %e, "metrics connection failed");
                }
                open.set(open.get().saturating_sub(1));
            });
        }
    });
    info!(actor = "metrics", addr = %bound, "serving Prometheus metrics at /metrics");
    Ok(bound)
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    Malformed,
}

/// Routes a request head (its first line is `METHOD TARGET VERSION`).
fn route(head: &[u8]) -> Route {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Malformed;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics,
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

/// Reads the request head: up to the blank line, at most
/// [`METRICS_REQUEST_BYTES_MAX`] bytes. `None`: over the limit.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() >= METRICS_REQUEST_BYTES_MAX {
            return Ok(None);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the request head",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
}

async fn serve(mut stream: TcpStream, metrics: &Metrics, sources: &Sources) -> std::io::Result<()> {
    let read = tokio::time::timeout(
        Duration::from_millis(METRICS_READ_TIMEOUT_MS),
        read_head(&mut stream),
    )
    .await;
    let head = match read {
        Err(_) => {
            debug!(
                actor = "metrics",
                timeout_ms = METRICS_READ_TIMEOUT_MS,
                "metrics request head not received in time"
            );
            return respond(
                &mut stream,
                "408 Request Timeout",
                "text/plain",
                b"timeout\n",
                false,
            )
            .await;
        }
        Ok(head) => head?,
    };
    let Some(head) = head else {
        return respond(
            &mut stream,
            "431 Request Header Fields Too Large",
            "text/plain",
            b"request head over METRICS_REQUEST_BYTES_MAX\n",
            false,
        )
        .await;
    };
    let head_only = head.starts_with(b"HEAD ");
    match route(&head) {
        Route::Metrics => {
            sample(metrics, sources).await;
            let body = metrics.encode();
            respond(
                &mut stream,
                "200 OK",
                CONTENT_TYPE,
                body.as_bytes(),
                head_only,
            )
            .await
        }
        Route::NotFound => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"not found: metrics are at /metrics\n",
                head_only,
            )
            .await
        }
        Route::MethodNotAllowed => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"only GET\n",
                false,
            )
            .await
        }
        Route::Malformed => {
            respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
                false,
            )
            .await
        }
    }
}

/// Refreshes the gauges sampled at scrape time.
async fn sample(metrics: &Metrics, sources: &Sources) {
    let wait = Duration::from_millis(METRICS_SAMPLE_TIMEOUT_MS);
    let status = sources.failure_detector.send(StatusQuery);
    let hints = sources.storage.send(HintCountsQuery);
    match tokio::time::timeout(wait, status).await {
        Ok(Ok(ClientReply::Status { members, .. })) => {
            metrics.set_members(members.iter().map(|m| m.state.as_str()));
        }
        Ok(_) => debug!(actor = "metrics", "failure detector gave no status"),
        Err(_) => warn!(
            actor = "metrics",
            timeout_ms = METRICS_SAMPLE_TIMEOUT_MS,
            "failure detector did not answer the scrape in time; ringkv_members kept"
        ),
    }
    match tokio::time::timeout(wait, hints).await {
        Ok(Ok(counts)) => metrics.set_hints_pending(counts.iter().map(|h| h.1).sum()),
        Ok(Err(e)) => debug!(actor = "metrics", error = %e, "storage gave no hint counts"),
        Err(_) => warn!(
            actor = "metrics",
            timeout_ms = METRICS_SAMPLE_TIMEOUT_MS,
            "storage did not answer the scrape in time; ringkv_hints_pending kept"
        ),
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_metrics_other_paths_and_methods() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::Malformed);
        assert_eq!(route(b"\x00\x01\r\n\r\n"), Route::Malformed);
    }
}
