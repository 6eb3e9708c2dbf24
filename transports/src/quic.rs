//! The QUIC carrier (quinn, with rustls): frames are length-delimited, as
//! on TCP, on the connection's first bidirectional stream, which the
//! connecting side opens.
//!
//! QUIC always runs over TLS. [`dev_certificate`] makes a self-signed
//! certificate for development and tests; [`server_config`] and
//! [`client_config`] take real certificate chains and trust roots.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use quinn::{ClientConfig, Endpoint, ServerConfig, VarInt};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tether_semantics::Node;

use crate::listener::{Listener, admit};
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

/// Listens on `addr` (UDP) and serves every connection for `node`.
pub async fn serve(
    node: &Node,
    addr: SocketAddr,
    tls: ServerConfig,
    config: Config,
) -> io::Result<Listener> {
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

/// Connects to the node listening at `addr`, whose certificate must be
/// valid for `server_name` under `tls`'s trust roots.
pub async fn connect(
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
