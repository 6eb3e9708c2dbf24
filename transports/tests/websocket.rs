//! The WebSocket carrier's handshake, as a browser or another language's
//! client makes it (PROTOCOL.md, §1): any path, the `tether` subprotocol
//! selected when offered, none needed.

#![allow(missing_docs, clippy::unwrap_used)]

use tether::Node;
use tether::transports::{Config, ws};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn handshake(url: &str, offer: Option<&'static str>) -> Option<String> {
    let mut request = url.into_client_request().unwrap();
    if let Some(offer) = offer {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(offer));
    }
    let connect = tokio_tungstenite::connect_async(request);
    let (_ws, response) = tokio::time::timeout(std::time::Duration::from_secs(10), connect)
        .await
        .expect("the handshake ends")
        .expect("the listener accepts");
    response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn the_subprotocol_is_selected_when_offered_and_never_required() {
    let listener = ws::serve(&Node::new(), "127.0.0.1:0", Config::new())
        .await
        .unwrap();
    let addr = listener.local_addr();
    assert_eq!(ws::SUBPROTOCOL, "tether");

    let root = format!("ws://{addr}/");
    assert_eq!(
        handshake(&root, Some("tether")).await.as_deref(),
        Some("tether")
    );
    assert_eq!(
        handshake(&format!("ws://{addr}/any/path?x=1"), Some("chat, tether"))
            .await
            .as_deref(),
        Some("tether"),
        "any path; chosen from a list"
    );
    assert_eq!(handshake(&root, None).await, None, "no subprotocol is fine");

    // The carrier's own client offers it, and gets a working connection.
    let peer = ws::connect(&Node::new(), addr, Config::new())
        .await
        .unwrap();
    peer.opened().await.unwrap();
    peer.close().await;
    listener.close().await;
}

#[tokio::test]
async fn urls_by_name_and_ipv6_connect_and_wss_is_refused_clearly() {
    // An IPv6 literal, bracketed in the URL (where the machine has IPv6
    // loopback at all).
    match ws::serve(&Node::new(), "[::1]:0", Config::new()).await {
        Ok(listener) => {
            let port = listener.local_addr().port();
            opens(format!("ws://[::1]:{port}/x")).await;
            listener.close().await;
        }
        Err(e) => eprintln!("no IPv6 loopback here ({e}): the bracketed URL is not tried"),
    }

    let listener = ws::serve(&Node::new(), "127.0.0.1:0", Config::new())
        .await
        .unwrap();
    let port = listener.local_addr().port();
    // A host name.
    opens(format!("ws://localhost:{port}/")).await;

    let e = ws::connect(
        &Node::new(),
        format!("wss://127.0.0.1:{port}/"),
        Config::new(),
    )
    .await
    .unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    assert!(e.message().contains("only ws:// URLs"), "{e}");
    listener.close().await;
}

/// Connects to `url` and sees the connection open.
async fn opens(url: String) {
    let peer = ws::connect(&Node::new(), url, Config::new()).await.unwrap();
    peer.opened().await.unwrap();
    peer.close().await;
}
