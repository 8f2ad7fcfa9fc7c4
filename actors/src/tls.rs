//! Optional TLS for the client port and the peer port (`--tls-cert`,
//! `--tls-key`, `--tls-ca`), built into the network seam: a [`TlsNet`]
//! wraps another [`Net`] (real sockets, or turmoil's), so the client API
//! and the bridge run unchanged over it.
//!
//! - **Client port**: a TLS server with the node's certificate. Clients
//!   check it against the CA; they are not asked for a certificate (they
//!   authenticate with tokens, `client_api::access`).
//! - **Peer port**: mutual TLS. A node presents its certificate both when
//!   it dials and when it is dialled, and takes a peer only if the peer's
//!   certificate chains to the CA. A dialling node also checks that the
//!   certificate names what it dialled: the peer's IP address, or the
//!   one name every peer certificate carries (`--tls-peer-name`). Each
//!   node certificate must therefore allow both server and client
//!   authentication (extended key usages `serverAuth` and `clientAuth`).
//! - The handshake of an accepted connection runs on the connection's
//!   first read or write, not in the accept loop (which one silent client
//!   would stall), and fails after [`TLS_HANDSHAKE_TIMEOUT_MS`].
//!
//! rustls with the `ring` provider; TLS 1.2 and 1.3 with rustls' safe
//! defaults. Certificates and keys are PEM files, read once at start.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{server, TlsAcceptor, TlsConnector};
use tracing::info;

use crate::net::{BoxConnection, Listener, LocalBoxFuture, Net, SharedNet};

/// Longest a TLS handshake may take, in milliseconds, before the
/// connection is dropped (a client that connects and says nothing holds a
/// connection slot no longer than this).
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Why the TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{flag} {path}: {reason}")]
    Pem {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate, the key or the CA.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The CA does not make a usable verifier for peer certificates.
    #[error("--tls-ca {path}: cannot verify peer certificates with it: {reason}")]
    Verifier {
        /// The CA file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A server name that is neither a DNS name nor an IP address.
    #[error("{name:?} is not a valid TLS server name (a DNS name or an IP address)")]
    ServerName {
        /// The name.
        name: String,
    },
}

/// The files of `--tls-cert`, `--tls-key`, `--tls-ca` and the optional
/// `--tls-peer-name`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The node's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The node's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) (PEM) that peer certificates must chain to
    /// (and that clients check the node's against).
    pub ca: PathBuf,
    /// The name every peer certificate must carry; `None`: the peer's IP
    /// address as dialled.
    pub peer_name: Option<String>,
}

/// A node's TLS settings, loaded once at start. Cheap to clone.
#[derive(Clone)]
pub struct NodeTls {
    /// The client port: the node's certificate, no client certificates.
    client_port: Arc<ServerConfig>,
    /// The peer port: the node's certificate, peer certificates required.
    peer_port: Arc<ServerConfig>,
    /// Dialling peers: the CA, and the node's certificate to present.
    peer_dial: Arc<ClientConfig>,
    /// What a dialled peer's certificate must name (`None`: its IP).
    peer_name: Option<ServerName<'static>>,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("peer_name", &self.peer_name)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Reads and checks the files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let certs = read_certs("--tls-cert", &files.cert)?;
        let key = read_key(&files.key)?;
        let roots = Arc::new(read_roots(&files.ca)?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let rustls_error = |what| move |source| TlsError::Rustls { what, source };

        let client_port = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(rustls_error("TLS protocol versions"))?
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(rustls_error("--tls-cert and --tls-key"))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier {
                path: files.ca.display().to_string(),
                reason: e.to_string(),
            })?;
        let peer_port = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(rustls_error("TLS protocol versions"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(rustls_error("--tls-cert and --tls-key"))?;
        let peer_dial = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(rustls_error("TLS protocol versions"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(rustls_error(
                "--tls-cert and --tls-key as a client certificate",
            ))?;
        let peer_name = files.peer_name.as_deref().map(server_name).transpose()?;
        Ok(Self {
            client_port: Arc::new(client_port),
            peer_port: Arc::new(peer_port),
            peer_dial: Arc::new(peer_dial),
            peer_name,
        })
    }

    /// The client port's network: `inner`'s listeners, with TLS. It dials
    /// nothing.
    pub fn client_net(&self, inner: SharedNet) -> SharedNet {
        Rc::new(TlsNet {
            inner,
            acceptor: TlsAcceptor::from(self.client_port.clone()),
            dialer: None,
        })
    }

    /// The peer port's network: `inner`'s listeners and connections, with
    /// mutual TLS both ways.
    pub fn peer_net(&self, inner: SharedNet) -> SharedNet {
        Rc::new(TlsNet {
            inner,
            acceptor: TlsAcceptor::from(self.peer_port.clone()),
            dialer: Some(Dialer {
                connector: TlsConnector::from(self.peer_dial.clone()),
                name: self.peer_name.clone(),
            }),
        })
    }
}

/// A client's TLS settings (the client library's `--tls-ca`): the CA to
/// check the node's certificate against; no client certificate.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = read_roots(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS protocol versions",
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A DNS name or an IP address, as a certificate must name it.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName {
        name: name.to_owned(),
    })
}

fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        flag,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        flag: "--tls-key",
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("--tls-ca", path)? {
        roots.add(cert).map_err(|source| TlsError::Rustls {
            what: "--tls-ca",
            source,
        })?;
    }
    Ok(roots)
}

/// How a [`TlsNet`] dials.
#[derive(Clone)]
struct Dialer {
    connector: TlsConnector,
    name: Option<ServerName<'static>>,
}

/// A [`Net`] whose connections are TLS over another `Net`'s.
struct TlsNet {
    inner: SharedNet,
    acceptor: TlsAcceptor,
    /// `None`: this network only accepts (the client port).
    dialer: Option<Dialer>,
}

impl Net for TlsNet {
    fn bind(&self, addr: SocketAddr) -> LocalBoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let bound = self.inner.bind(addr);
        let acceptor = self.acceptor.clone();
        Box::pin(async move {
            let inner = bound.await?;
            Ok(Box::new(TlsListener { inner, acceptor }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> LocalBoxFuture<'static, io::Result<BoxConnection>> {
        let Some(dialer) = self.dialer.clone() else {
            return Box::pin(async move {
                Err(io::Error::other(format!(
                    "cannot dial {addr}: this TLS network only accepts connections"
                )))
            });
        };
        let connecting = self.inner.connect(addr);
        Box::pin(async move {
            let conn = connecting.await?;
            let name = dialer
                .name
                .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
            let handshake = dialer.connector.connect(name, conn);
            let stream = with_timeout(handshake).await?;
            Ok(Box::new(stream) as BoxConnection)
        })
    }
}

/// The handshake, or a `TimedOut` error after [`TLS_HANDSHAKE_TIMEOUT_MS`].
async fn with_timeout<T>(handshake: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let limit = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
    match tokio::time::timeout(limit, handshake).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS handshake not done within {TLS_HANDSHAKE_TIMEOUT_MS} ms"),
        )),
    }
}

struct TlsListener {
    inner: Box<dyn Listener>,
    acceptor: TlsAcceptor,
}

impl Listener for TlsListener {
    fn accept(&mut self) -> LocalBoxFuture<'_, io::Result<(BoxConnection, SocketAddr)>> {
        Box::pin(async move {
            let (conn, remote) = self.inner.accept().await?;
            let handshake = Box::pin(with_timeout(self.acceptor.accept(conn)));
            let accepted = AcceptedTls::Handshaking { handshake, remote };
            Ok((Box::new(accepted) as BoxConnection, remote))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

type ServerStream = server::TlsStream<BoxConnection>;

/// An accepted connection whose handshake completes on its first read or
/// write.
enum AcceptedTls {
    /// The handshake is under way.
    Handshaking {
        handshake: LocalBoxFuture<'static, io::Result<ServerStream>>,
        remote: SocketAddr,
    },
    /// The handshake is done: TLS from here on.
    Ready(Box<ServerStream>),
    /// The handshake failed (already reported): every call fails.
    Failed,
}

impl AcceptedTls {
    /// Drives the handshake; then the stream.
    fn stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut ServerStream>> {
        if let AcceptedTls::Handshaking { handshake, remote } = self {
            let remote = *remote;
            match ready!(handshake.as_mut().poll(cx)) {
                Ok(stream) => *self = AcceptedTls::Ready(Box::new(stream)),
                Err(error) => {
                    // A plaintext client, a certificate the CA did not
                    // sign, a silent client: its session sees the error
                    // and closes.
                    info!(%remote, %error, "TLS handshake failed; closing the connection");
                    *self = AcceptedTls::Failed;
                    return Poll::Ready(Err(error));
                }
            }
        }
        match self {
            AcceptedTls::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }
}

impl AsyncRead for AcceptedTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().stream(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AcceptedTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().stream(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().stream(cx))?;
        Pin::new(stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().stream(cx))?;
        Pin::new(stream).poll_shutdown(cx)
    }
}
