//! The relay (PROTOCOL.md, §10): many clients per server, refusals with
//! clear errors, limits, and prompt news of either side going away. The
//! conformance suite also runs through a relay (`conformance.rs`).

#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tether::transports::relay::{Credential, Relay, RelayConfig, RelayFrame, ServerId};
use tether::transports::{Config, relay};
use tether::{ErrorKind, Node};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

mod support;
use support::{bounded, eventually};

#[tether::interface]
pub trait Echo {
    async fn echo(&self, text: String) -> String;
    async fn slow(&self, ms: u64) -> u64;
}

struct Parrot;

impl Echo for Parrot {
    async fn echo(&self, text: String) -> String {
        text
    }
    async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

fn server_node() -> Node {
    let node = Node::new();
    let parrot = node
        .expose(Parrot)
        .with_view("public", EchoInterface::view())
        .unwrap();
    node.publish("echo", parrot.view("public").unwrap());
    node
}

/// A relay, a server registered at it, and one client's stub.
async fn through_a_relay() -> (
    Relay,
    relay::Registration,
    tether::transports::Peer,
    EchoClient,
) {
    let relay = Relay::serve("127.0.0.1:0", None, RelayConfig::default())
        .await
        .unwrap();
    let registration = relay::serve_through(&server_node(), relay.tcp_addr(), None, Config::new())
        .await
        .unwrap();
    let peer = relay::connect(
        &Node::new(),
        relay.tcp_addr(),
        registration.server_id(),
        Config::new(),
    )
    .await
    .unwrap();
    let echo: EchoClient = peer.lookup("echo").await.unwrap();
    (relay, registration, peer, echo)
}

/// A raw connection to the relay, framed as the TCP carrier frames.
async fn raw(relay: &Relay) -> Framed<TcpStream, LengthDelimitedCodec> {
    let codec = LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .max_frame_length(32 << 20)
        .new_codec();
    Framed::new(TcpStream::connect(relay.tcp_addr()).await.unwrap(), codec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_serves_many_clients_at_once() {
    bounded(async {
        let relay = Relay::serve("127.0.0.1:0", None, RelayConfig::default())
            .await
            .unwrap();
        let registration =
            relay::serve_through(&server_node(), relay.tcp_addr(), None, Config::new())
                .await
                .unwrap();
        let mut clients = Vec::new();
        for i in 0..3 {
            let peer = relay::connect(
                &Node::new(),
                relay.tcp_addr(),
                registration.server_id(),
                Config::new(),
            )
            .await
            .unwrap();
            let echo: EchoClient = peer.lookup("echo").await.unwrap();
            clients.push((i, peer, echo));
        }
        // All three at once, each on its own link.
        let answers = futures_util::future::join_all(
            clients
                .iter()
                .map(|(i, _, echo)| echo.echo(format!("client {i}"))),
        )
        .await;
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.unwrap(), format!("client {i}"));
        }
        // A frame larger than a link's queue budget (1 MiB) still passes
        // when nothing else waits.
        let big = "x".repeat(3 << 20);
        assert_eq!(clients[0].2.echo(big.clone()).await.unwrap(), big);
        assert_eq!(registration.peers().len(), 3);
        assert_eq!(relay.tables().clients, 3);
        assert_eq!(relay.tables().servers, 1);

        // One client goes away: the server's session for it ends promptly,
        // the others go on.
        let (_, gone, _) = clients.remove(0);
        gone.close().await;
        eventually("the server's session for it closes", || {
            registration.peers().len() == 2
        })
        .await;
        eventually("the relay forgets the link", || relay.tables().clients == 2).await;
        assert_eq!(
            clients[0].2.echo("still here".into()).await.unwrap(),
            "still here"
        );
    })
    .await;
}

#[tokio::test]
async fn a_forged_credential_and_an_unknown_server_are_refused() {
    bounded(async {
        let relay = Relay::serve("127.0.0.1:0", None, RelayConfig::default())
            .await
            .unwrap();
        let node = server_node();
        let forged = Credential([7; 16]);
        let e = relay::serve_through(&node, relay.tcp_addr(), Some(&forged), Config::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
        assert!(e.message().contains("unknown credential"), "{e}");

        let first = relay::serve_through(&node, relay.tcp_addr(), None, Config::new())
            .await
            .unwrap();
        // The issued credential registers again: a second server id.
        let second = relay::serve_through(
            &node,
            relay.tcp_addr(),
            Some(first.credential()),
            Config::new(),
        )
        .await
        .unwrap();
        assert_ne!(first.server_id(), second.server_id());
        assert_eq!(first.credential(), second.credential());
        assert!(
            !format!("{:?}", first.credential()).contains("07"),
            "the secret is never printed"
        );

        let e = relay::connect(&Node::new(), relay.tcp_addr(), ServerId(42), Config::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected);
        assert!(e.message().contains("no server 000000000000002a"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn limits_refuse_with_clear_errors() {
    bounded(async {
        let config = RelayConfig {
            max_servers_per_credential: 2,
            max_clients_per_server: 1,
            ..RelayConfig::default()
        };
        let relay = Relay::serve("127.0.0.1:0", None, config).await.unwrap();
        let node = server_node();
        let a = relay::serve_through(&node, relay.tcp_addr(), None, Config::new())
            .await
            .unwrap();
        let _b = relay::serve_through(&node, relay.tcp_addr(), Some(a.credential()), Config::new())
            .await
            .unwrap();
        let e = relay::serve_through(&node, relay.tcp_addr(), Some(a.credential()), Config::new())
            .await
            .unwrap_err();
        assert!(
            e.message()
                .contains("2 servers are registered with this credential"),
            "{e}"
        );

        let _first = relay::connect(&Node::new(), relay.tcp_addr(), a.server_id(), Config::new())
            .await
            .unwrap();
        let e = relay::connect(&Node::new(), relay.tcp_addr(), a.server_id(), Config::new())
            .await
            .unwrap_err();
        assert!(e.message().contains("has 1 clients, its most"), "{e}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_or_server_is_news_at_once() {
    bounded(async {
        let (relay, registration, _peer, echo) = through_a_relay().await;
        let pending = tokio::spawn({
            let echo = echo.clone();
            async move { echo.slow(60_000).await }
        });
        eventually("the slow call reached the server", || {
            registration
                .peers()
                .first()
                .is_some_and(|p| p.tables().answers == 1)
        })
        .await;

        relay.close().await;
        let e = pending.await.unwrap().unwrap_err();
        assert!(e.is_disconnected(), "{e}");
        assert!(
            echo.echo("again".into())
                .await
                .unwrap_err()
                .is_disconnected()
        );
        let reason = registration.closed().await;
        assert!(reason.contains("relay"), "{reason}");
        eventually("the server's sessions end", || {
            registration.peers().is_empty()
        })
        .await;

        // A server that goes away: its clients learn it at once.
        let (relay, registration, peer, echo) = through_a_relay().await;
        assert_eq!(echo.echo("hi".into()).await.unwrap(), "hi");
        drop(registration);
        let closed = peer.closed().await;
        assert!(!closed.reason.is_empty());
        assert!(echo.echo("hi".into()).await.unwrap_err().is_disconnected());
        eventually("the relay forgets the server", || {
            relay.tables().servers == 0
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_first_frame_that_is_not_the_relays_is_refused() {
    bounded(async {
        let relay = Relay::serve("127.0.0.1:0", None, RelayConfig::default())
            .await
            .unwrap();
        let mut conn = raw(&relay).await;
        // A Tether Ping is not how one talks to a relay.
        let mut ping = vec![11, 0, 0, 0];
        ping.extend_from_slice(&1_u64.to_le_bytes());
        conn.send(Bytes::from(ping)).await.unwrap();
        let answer = conn.next().await.unwrap().unwrap().freeze();
        let Ok(Some(RelayFrame::Refused { reason })) = RelayFrame::decode(&answer) else {
            panic!("{answer:?}")
        };
        assert!(reason.contains("Register or Connect"), "{reason}");
        assert!(conn.next().await.is_none(), "then it closes");
    })
    .await;
}

/// A server that stops reading loses the client's link, not the relay's
/// memory: the relay queues at most `max_queued_bytes` toward it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_costs_a_bounded_queue() {
    bounded(async {
        let config = RelayConfig {
            max_queued_bytes: 256 * 1024,
            ..RelayConfig::default()
        };
        let relay = Relay::serve("127.0.0.1:0", None, config).await.unwrap();
        let mut server = raw(&relay).await;
        server
            .send(RelayFrame::Register { credential: None }.encode())
            .await
            .unwrap();
        let registered = server.next().await.unwrap().unwrap().freeze();
        let Ok(Some(RelayFrame::Registered { server: id, .. })) = RelayFrame::decode(&registered)
        else {
            panic!("{registered:?}")
        };
        // The server never reads again. A client sends 1 MiB frames.
        let mut client = raw(&relay).await;
        client
            .send(RelayFrame::Connect { server: id }.encode())
            .await
            .unwrap();
        let connected = client.next().await.unwrap().unwrap().freeze();
        assert_eq!(
            RelayFrame::decode(&connected),
            Ok(Some(RelayFrame::Connected))
        );
        let big = Bytes::from(vec![0_u8; 1 << 20]);
        let mut sent = 0;
        for _ in 0..200 {
            if client.send(big.clone()).await.is_err() {
                break;
            }
            sent += 1;
            if relay.tables().clients == 0 {
                break;
            }
        }
        eventually("the relay cut the client's link", || {
            relay.tables().clients == 0
        })
        .await;
        assert!(
            sent < 200,
            "the relay kept taking frames a server does not read"
        );
        drop(server);
    })
    .await;
}

/// The examples of PROTOCOL.md, §10, byte by byte.
#[test]
fn relay_frames_as_protocol_md_gives_them() {
    let connect = RelayFrame::Connect {
        server: ServerId(0x0102_0304_0506_0708),
    };
    assert_eq!(
        connect.encode()[..],
        [0x03, 0x01, 0x00, 0x80, 8, 7, 6, 5, 4, 3, 2, 1]
    );
    let mut ping = vec![0x0b, 0, 0, 0];
    ping.extend_from_slice(&1_u64.to_le_bytes());
    let data = RelayFrame::Data {
        link: 5,
        frame: Bytes::from(ping),
    };
    assert_eq!(
        data.encode()[..],
        [
            0x07, 0x01, 0x00, 0x80, 5, 0x0b, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0
        ]
    );
    for frame in [
        connect,
        data,
        RelayFrame::Register { credential: None },
        RelayFrame::Register {
            credential: Some(vec![1; 16]),
        },
        RelayFrame::Registered {
            server: ServerId(9),
            credential: Credential([2; 16]),
        },
        RelayFrame::Connected,
        RelayFrame::Refused {
            reason: "no".into(),
        },
        RelayFrame::Open { link: 300 },
        RelayFrame::Close {
            link: 1,
            reason: "bye".into(),
        },
    ] {
        assert_eq!(RelayFrame::decode(&frame.encode()), Ok(Some(frame)));
    }
    // A session's frame is not the relay's; a truncated one is malformed.
    assert_eq!(
        RelayFrame::decode(&Bytes::from_static(&[11, 0, 0, 0])),
        Ok(None)
    );
    assert!(RelayFrame::decode(&Bytes::from_static(&[0x03, 0x01, 0x00, 0x80, 1])).is_err());
    assert!(RelayFrame::decode(&Bytes::from_static(&[0x05, 0x01, 0x00, 0x80, 9, b'x'])).is_err());
    assert_eq!("00000000000000ff".parse::<ServerId>(), Ok(ServerId(255)));
    assert!("nope".parse::<ServerId>().is_err());
}
