//! The in-memory carrier: two nodes in one process, frames handed over as
//! `Bytes` through channels. For tests, and for nodes that share a
//! process but should still see each other as remote.

use std::io;

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
