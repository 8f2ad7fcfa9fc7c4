//! The turmoil side of the test harness: the network seam over turmoil's
//! simulated TCP, a raw protocol client, and a clock whose wall reading a
//! test can step. Shared by the simulations (`tests/simulation.rs`,
//! `tests/sim_cluster.rs`).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ringkv_actors::clock::{Clock, TokioClock};
use ringkv_actors::net::{BoxConnection, Listener, LocalBoxFuture, Net};
use ringkv_actors::wire::client::{
    encode_request, map_field, parse_response, ClientError, ClientOp, ClientRequest,
};
use ringkv_actors::wire::frame::encode_frame;
use rmpv::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The simulated nodes' peer port.
pub const PEER_PORT: u16 = 7101;
/// The simulated nodes' client port.
pub const CLIENT_PORT: u16 = 7001;

/// The network seam over turmoil's simulated TCP.
pub struct TurmoilNet;

struct TurmoilListener(turmoil::net::TcpListener);

impl Listener for TurmoilListener {
    fn accept(&mut self) -> LocalBoxFuture<'_, std::io::Result<(BoxConnection, SocketAddr)>> {
        Box::pin(async move {
            let (stream, addr) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxConnection, addr))
        })
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Net for TurmoilNet {
    fn bind(
        &self,
        addr: SocketAddr,
    ) -> LocalBoxFuture<'static, std::io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let l = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TurmoilListener(l)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> LocalBoxFuture<'static, std::io::Result<BoxConnection>> {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(s) as BoxConnection)
        })
    }
}

pub fn any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

/// The simulated cluster's secret file (`--cluster-secret-file`): the
/// simulated nodes listen on turmoil's non-loopback addresses, which a node
/// without a secret refuses (protected mode). Written once per test binary
/// under cargo's scratch dir (to a temporary name, then renamed, so tests
/// running in parallel never read half a file).
pub fn secret_file() -> std::path::PathBuf {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("sim-cluster-secret");
        let partial = dir.join(format!("sim-cluster-secret.{}", std::process::id()));
        std::fs::write(&partial, "5e".repeat(32)).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    })
    .clone()
}

/// A simulated node's handshake nonces: seeded from its id and boot, so a
/// run replays, and distinct per node and boot, as random ones would be.
pub fn nonces(id: &str, boot: u32) -> ringkv_actors::bridge::NonceRng {
    use rand::SeedableRng;
    let seed = ringkv_actors::ring::hash_bytes(format!("nonces/{id}/{boot}").as_bytes());
    std::rc::Rc::new(std::cell::RefCell::new(
        rand::rngs::SmallRng::seed_from_u64(seed),
    ))
}

/// A raw protocol client over the simulated network.
pub struct SimClient {
    stream: turmoil::net::TcpStream,
    next_id: u64,
}

impl SimClient {
    pub async fn connect(node: &str) -> SimClient {
        let stream = turmoil::net::TcpStream::connect((node, CLIENT_PORT))
            .await
            .unwrap();
        SimClient { stream, next_id: 1 }
    }

    /// Connects to `node`'s client port; an error when it does not answer.
    pub async fn try_connect(node: &str) -> std::io::Result<SimClient> {
        let stream = turmoil::net::TcpStream::connect((node, CLIENT_PORT)).await?;
        Ok(SimClient { stream, next_id: 1 })
    }

    /// Sends `op` and reads its answer; an I/O error when the connection
    /// fails on the way (a crashed node, a cut link).
    pub async fn try_call(&mut self, op: ClientOp) -> std::io::Result<Result<Value, ClientError>> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&encode_request(&ClientRequest {
            id,
            op,
            timeout_ms: None,
            consistency: None,
        }));
        self.stream.write_all(&frame).await?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await?;
        let (got, result) = parse_response(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        if got != id {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("answer for request {got}, expected {id}"),
            ));
        }
        Ok(result)
    }

    pub async fn call(&mut self, op: ClientOp) -> Result<Value, ClientError> {
        self.try_call(op).await.unwrap()
    }

    pub async fn put(&mut self, key: &str, value: &str, w: usize) -> Result<Value, ClientError> {
        self.call(ClientOp::Put {
            key: key.into(),
            value: value.into(),
            context: None,
            w: Some(w),
            pw: None,
            ttl_ms: None,
        })
        .await
    }

    pub async fn get(&mut self, key: &str, r: usize) -> Result<Vec<Vec<u8>>, ClientError> {
        let body = self
            .call(ClientOp::Get {
                key: key.into(),
                r: Some(r),
                pr: None,
            })
            .await?;
        match map_field(&body, "values") {
            Some(Value::Array(vs)) => {
                Ok(vs.iter().map(|v| v.as_slice().unwrap().to_vec()).collect())
            }
            other => panic!("bad values {other:?}"),
        }
    }

    pub async fn alive(&mut self) -> usize {
        self.states()
            .await
            .iter()
            .filter(|(_, s)| s == "alive")
            .count()
    }

    /// Every member's state as this node reports it.
    pub async fn states(&mut self) -> Vec<(String, String)> {
        let body = self.call(ClientOp::Status).await.unwrap();
        match map_field(&body, "members") {
            Some(Value::Array(ms)) => ms
                .iter()
                .map(|m| {
                    let get = |k| {
                        map_field(m, k)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    (get("id"), get("state"))
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub async fn state_of(&mut self, node: &str) -> String {
        self.states()
            .await
            .into_iter()
            .find(|(id, _)| id == node)
            .map(|(_, s)| s)
            .unwrap_or_default()
    }
}

/// A node's clock whose wall reading the test can step while its timers
/// follow simulated time, as a real host's `CLOCK_MONOTONIC` does when
/// `CLOCK_REALTIME` jumps.
pub struct SteppedClock {
    /// The simulated clock.
    pub simulated: TokioClock,
    /// Added to the wall reading, in ms; the test stores a step here.
    pub wall_step_ms: Arc<AtomicI64>,
}

impl Clock for SteppedClock {
    fn now_ms(&self) -> u64 {
        self.simulated
            .now_ms()
            .saturating_add_signed(self.wall_step_ms.load(Ordering::Relaxed))
    }

    fn monotonic_ms(&self) -> u64 {
        self.simulated.monotonic_ms()
    }
}
