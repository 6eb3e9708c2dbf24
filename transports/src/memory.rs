//! The in-memory carrier: two nodes in one process, frames handed over as
//! `Bytes` through channels. For tests, and for nodes that share a
//! process but should still see each other as remote.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{sink, stream};
use tether_semantics::Node;
use tokio::sync::mpsc;

use crate::connection::{FrameSink, FrameStream};
use crate::{Config, Peer};

/// How many frames may wait in each direction before the sender waits.
const CAPACITY: usize = 256;

/// Connects `a` and `b`; returns `a`'s end (its peer is `b`) and `b`'s.
pub fn pair(a: &Node, b: &Node, config_a: Config, config_b: Config) -> (Peer, Peer) {
    let (a_to_b, from_a) = mpsc::channel(CAPACITY);
    let (b_to_a, from_b) = mpsc::channel(CAPACITY);
    let peer_a = Peer::spawn(a, config_a, receiver(from_b), sender(a_to_b));
    let peer_b = Peer::spawn(b, config_b, receiver(from_a), sender(b_to_a));
    (peer_a, peer_b)
}

/// [`pair`], with every frame arriving `latency` after it was sent, in
/// order: a link across a slow network, for tests and benchmarks of what
/// round trips cost (a call takes two latencies, however small it is).
/// Frames sent close together stay close together: the link delays, it
/// does not serialize.
///
/// ```
/// use std::time::Duration;
/// use tether::Node;
/// use tether::transports::{Config, memory};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (a, b) = (Node::new(), Node::new());
/// let (to_b, _to_a) = memory::pair_with_latency(&a, &b, Config::new(), Config::new(), Duration::from_millis(20));
/// let start = tokio::time::Instant::now();
/// to_b.opened().await.unwrap();
/// assert_eq!(start.elapsed(), Duration::from_millis(20), "one Hello's way");
/// # }
/// ```
pub fn pair_with_latency(
    a: &Node,
    b: &Node,
    config_a: Config,
    config_b: Config,
    latency: Duration,
) -> (Peer, Peer) {
    let (a_to_b, from_a) = mpsc::channel(CAPACITY);
    let (b_to_a, from_b) = mpsc::channel(CAPACITY);
    let peer_a = Peer::spawn(
        a,
        config_a,
        delayed_receiver(from_b),
        delayed_sender(a_to_b, latency),
    );
    let peer_b = Peer::spawn(
        b,
        config_b,
        delayed_receiver(from_a),
        delayed_sender(b_to_a, latency),
    );
    (peer_a, peer_b)
}

/// Frames stamped with when they are due, delivered then.
fn delayed_receiver(rx: mpsc::Receiver<(tokio::time::Instant, Bytes)>) -> FrameStream {
    Box::pin(stream::unfold(rx, |mut rx| async move {
        let (due, frame) = rx.recv().await?;
        tokio::time::sleep_until(due).await;
        Some((Ok(frame), rx))
    }))
}

fn delayed_sender(tx: mpsc::Sender<(tokio::time::Instant, Bytes)>, latency: Duration) -> FrameSink {
    Box::pin(sink::unfold(tx, move |tx, frame: Bytes| async move {
        let due = tokio::time::Instant::now() + latency;
        tx.send((due, frame))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone"))?;
        Ok(tx)
    }))
}

fn receiver(rx: mpsc::Receiver<Bytes>) -> FrameStream {
    Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (Ok(frame), rx))
    }))
}

fn sender(tx: mpsc::Sender<Bytes>) -> FrameSink {
    Box::pin(sink::unfold(tx, |tx, frame: Bytes| async move {
        tx.send(frame)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone"))?;
        Ok(tx)
    }))
}
