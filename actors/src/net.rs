//! The network seam (DESIGN.md §8).
//!
//! Node code opens listeners and connections only through [`Net`], so the
//! same actors run over real sockets in production and over turmoil's
//! simulated network in the deterministic tests. (Time has its own seam,
//! `clock`.)

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;

use futures_util::stream::{self, Stream};
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future that may hold `!Send` state (actors are single-threaded).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A byte stream to a peer or a client.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Connection for T {}

/// A boxed connection.
pub type BoxConnection = Box<dyn Connection>;

/// A listening socket.
pub trait Listener {
    /// Waits for the next connection.
    fn accept(&mut self) -> LocalBoxFuture<'_, io::Result<(BoxConnection, SocketAddr)>>;
    /// The bound address (useful with port 0).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Opens listeners and connections.
pub trait Net {
    /// Binds a listener.
    fn bind(&self, addr: SocketAddr) -> LocalBoxFuture<'static, io::Result<Box<dyn Listener>>>;
    /// Connects to `addr`.
    fn connect(&self, addr: SocketAddr) -> LocalBoxFuture<'static, io::Result<BoxConnection>>;
}

/// Shared handle to the network seam.
pub type SharedNet = Rc<dyn Net>;

/// Real TCP through tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNet;

struct TokioListener(tokio::net::TcpListener);

impl Listener for TokioListener {
    fn accept(&mut self) -> LocalBoxFuture<'_, io::Result<(BoxConnection, SocketAddr)>> {
        Box::pin(async move {
            let (stream, addr) = self.0.accept().await?;
            // Small request/response frames: do not wait for Nagle.
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxConnection, addr))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Net for TokioNet {
    fn bind(&self, addr: SocketAddr) -> LocalBoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TokioListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> LocalBoxFuture<'static, io::Result<BoxConnection>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxConnection)
        })
    }
}

/// Which remote addresses a listener serves: the accept-time check of
/// protected mode (a node without `--cluster-secret-file`), as Redis's
/// `protected-mode` does it. Applied by the bridge and the client API to
/// every connection they accept, before any byte is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptPolicy {
    /// Anyone (peers still prove the cluster secret in the handshake).
    Any,
    /// Loopback addresses only: this machine.
    LoopbackOnly,
}

impl AcceptPolicy {
    /// Whether a connection from `remote` may be served.
    pub fn admits(self, remote: SocketAddr) -> bool {
        match self {
            AcceptPolicy::Any => true,
            AcceptPolicy::LoopbackOnly => is_loopback(remote.ip()),
        }
    }
}

/// Whether `ip` is a loopback address: 127.0.0.0/8, `::1`, or
/// `::ffff:127.x.y.z` (an IPv4 loopback seen through an IPv6 socket).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Turns a listener into a stream of accepted connections (the client
/// API's and the bridge's accept loop).
pub fn accept_stream(
    listener: Box<dyn Listener>,
) -> impl Stream<Item = io::Result<(BoxConnection, SocketAddr)>> {
    stream::unfold(listener, |mut listener| async move {
        let next = listener.accept().await;
        Some((next, listener))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_admits_this_machine_alone() {
        let admits = |a: &str| AcceptPolicy::LoopbackOnly.admits(a.parse().unwrap());
        assert!(admits("127.0.0.1:1"));
        assert!(admits("127.9.8.7:1"));
        assert!(admits("[::1]:1"));
        assert!(admits("[::ffff:127.0.0.1]:1"));
        assert!(!admits("10.77.0.1:1"));
        assert!(!admits("0.0.0.0:1"));
        assert!(!admits("[::]:1"));
        assert!(!admits("[::ffff:10.0.0.1]:1"));
        assert!(!admits("[fe80::1]:1"));
        assert!(AcceptPolicy::Any.admits("10.77.0.1:1".parse().unwrap()));
    }
}
