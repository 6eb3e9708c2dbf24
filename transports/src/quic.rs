//! The QUIC carrier (quinn, with rustls): frames are length-delimited, as
//! on TCP, on the connection's first bidirectional stream, which the
//! connecting side opens.
//!
//! QUIC always runs over TLS. For development and tests, [`Dev`] makes a
//! self-signed certificate and serves and connects with it in one call
//! each; [`server_config`] and [`client_config`] take real certificate
//! chains and trust roots.
//!
//! ```
//! use tether::Node;
//! use tether::transports::{Config, quic};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dev = quic::Dev::localhost()?;
//! let server = Node::new();
//! let listener = dev.serve(&server, "127.0.0.1:0", Config::new()).await?;
//! let peer = dev.connect(&Node::new(), listener.local_addr(), Config::new()).await?;
//! peer.opened().await?;
//! assert_eq!(peer.peer_node(), Some(server.id()));
//! peer.close().await;
//! listener.close().await;
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use quinn::{ClientConfig, Endpoint, ServerConfig, VarInt};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tether_semantics::{Error, Node};
use tokio::net::ToSocketAddrs;

use crate::listener::{Listener, admit, cannot_connect};
use crate::tcp::framed;
use crate::{Config, Peer};

/// A self-signed certificate for `names` (e.g. `["localhost"]`) and its
/// private key. For development only: clients must trust it explicitly
/// (see [`client_config`]).
pub fn dev_certificate(
    names: &[&str],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((certified.cert.der().clone(), key.into()))
}

/// A server configuration presenting `chain` (leaf first) with `key`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    ServerConfig::with_single_cert(chain, key)
}

/// A client configuration trusting `roots` (for a development
/// certificate: a store holding just that certificate).
pub fn client_config(roots: RootCertStore) -> io::Result<ClientConfig> {
    ClientConfig::with_root_certificates(Arc::new(roots)).map_err(io::Error::other)
}

/// Trust roots holding just `certificate`.
pub fn trust(certificate: CertificateDer<'static>) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(certificate).map_err(io::Error::other)?;
    Ok(roots)
}

/// QUIC's own liveness, consistent with the session's: keepalives at the
/// session's interval and an idle timeout of the session's (see
/// [`Config::idle_timeout`]), so both notice a silent peer at the same
/// time.
fn transport(config: &Config) -> io::Result<Arc<quinn::TransportConfig>> {
    let (keepalive, idle) = config.liveness();
    let idle = quinn::IdleTimeout::try_from(idle).map_err(io::Error::other)?;
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(keepalive));
    transport.max_idle_timeout(Some(idle));
    Ok(Arc::new(transport))
}

/// The first address `addr` names.
async fn resolve(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address names no host"))
}

/// Listens on `addr` (UDP; an address or `"host:port"`) and serves every
/// connection for `node`.
pub async fn serve(
    node: &Node,
    addr: impl ToSocketAddrs,
    tls: ServerConfig,
    config: Config,
) -> io::Result<Listener> {
    let addr = resolve(addr).await?;
    let mut tls = tls;
    tls.transport_config(transport(&config)?);
    let endpoint = Endpoint::server(tls, addr)?;
    let local_addr = endpoint.local_addr()?;
    let peers = Arc::new(Mutex::new(Vec::new()));
    let node = node.clone();
    let accepted = Arc::clone(&peers);
    let accept = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let node = node.clone();
            let config = config.clone();
            let accepted = Arc::clone(&accepted);
            tokio::spawn(async move {
                let setup = async {
                    let connection = incoming.await?;
                    let (send, recv) = connection.accept_bi().await?;
                    Ok::<_, quinn::ConnectionError>((connection, send, recv))
                };
                match tokio::time::timeout(std::time::Duration::from_secs(10), setup).await {
                    Ok(Ok((connection, send, recv))) => {
                        let (frames, sink) = framed(recv, send, config.max_frame_len());
                        let close = Box::new(move || {
                            connection.close(VarInt::from_u32(0), b"closed");
                        });
                        let peer = Peer::spawn_with(&node, config, frames, sink, Some(close));
                        admit(&accepted, peer);
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "QUIC connection failed"),
                    Err(_) => tracing::debug!("QUIC connection setup timed out"),
                }
            });
        }
    });
    Ok(Listener::new(local_addr, peers, accept))
}

/// Connects to the node listening at `addr` (an address or
/// `"host:port"`), whose certificate must be valid for `server_name` under
/// `tls`'s trust roots. A connection that cannot be made fails with
/// `disconnected`.
pub async fn connect(
    node: &Node,
    addr: impl ToSocketAddrs,
    server_name: &str,
    tls: ClientConfig,
    config: Config,
) -> Result<Peer, Error> {
    let addr = resolve(addr)
        .await
        .map_err(|e| cannot_connect("QUIC", &e))?;
    dial(node, addr, server_name, tls, config)
        .await
        .map_err(|e| cannot_connect(&addr.to_string(), &e))
}

async fn dial(
    node: &Node,
    addr: SocketAddr,
    server_name: &str,
    tls: ClientConfig,
    config: Config,
) -> io::Result<Peer> {
    let bind: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    };
    let mut tls = tls;
    tls.transport_config(transport(&config)?);
    let endpoint = Endpoint::client(bind)?;
    let connection = endpoint
        .connect_with(tls, addr, server_name)
        .map_err(io::Error::other)?
        .await
        .map_err(io::Error::other)?;
    let (send, recv) = connection.open_bi().await.map_err(io::Error::other)?;
    let (frames, sink) = framed(recv, send, config.max_frame_len());
    let close = Box::new(move || {
        connection.close(VarInt::from_u32(0), b"closed");
        endpoint.close(VarInt::from_u32(0), b"closed");
    });
    Ok(Peer::spawn_with(node, config, frames, sink, Some(close)))
}

/// A development setup in one value: a self-signed certificate for some
/// names, and the server and client configurations that use it. For
/// development and tests only; see the [module](self) docs for an example.
#[derive(Debug)]
pub struct Dev {
    names: Vec<String>,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// [`connect`] trusting only `certificate` (DER), a server's self-signed
/// development certificate, for `server_name`: what a tool given a
/// certificate file does.
pub async fn connect_trusting(
    node: &Node,
    addr: impl ToSocketAddrs,
    server_name: &str,
    certificate: &[u8],
    config: Config,
) -> Result<Peer, Error> {
    let tls = trust(CertificateDer::from(certificate.to_vec()))
        .and_then(client_config)
        .map_err(|e| cannot_connect("QUIC", &e))?;
    connect(node, addr, server_name, tls, config).await
}

impl Dev {
    /// The certificate (DER), for clients to trust: what
    /// [`connect_trusting`] takes.
    pub fn certificate_der(&self) -> &[u8] {
        self.certificate.as_ref()
    }

    /// A self-signed certificate for `names` (the first is the name
    /// [`connect`](Dev::connect) asks for).
    pub fn new(names: &[&str]) -> io::Result<Dev> {
        let (certificate, key) = dev_certificate(names).map_err(io::Error::other)?;
        Ok(Dev {
            names: names.iter().map(|n| n.to_string()).collect(),
            certificate,
            key,
        })
    }

    /// A self-signed certificate for `localhost`.
    pub fn localhost() -> io::Result<Dev> {
        Self::new(&["localhost"])
    }

    /// [`serve`] with this certificate.
    pub async fn serve(
        &self,
        node: &Node,
        addr: impl ToSocketAddrs,
        config: Config,
    ) -> io::Result<Listener> {
        let tls = server_config(vec![self.certificate.clone()], self.key.clone_key())
            .map_err(io::Error::other)?;
        serve(node, addr, tls, config).await
    }

    /// [`connect`] trusting only this certificate, for its first name.
    pub async fn connect(
        &self,
        node: &Node,
        addr: impl ToSocketAddrs,
        config: Config,
    ) -> Result<Peer, Error> {
        let name = self.names.first().map_or("localhost", String::as_str);
        let tls = trust(self.certificate.clone())
            .and_then(client_config)
            .map_err(|e| cannot_connect("QUIC", &e))?;
        connect(node, addr, name, tls, config).await
    }
}
