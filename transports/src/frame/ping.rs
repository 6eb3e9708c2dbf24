//! Keepalive: a sign of life when there is nothing else to say.

use serde::{Deserialize, Serialize};

/// Asks the receiver for a sign of life; it answers with a [`Pong`]
/// carrying the same nonce.
///
/// A side sends one when it has heard nothing from the peer for its
/// keepalive interval. Any frame counts as a sign of life, so a busy
/// connection never pings.
///
/// ```text
/// body = nonce: u64 (8 bytes, little endian)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Chosen by the sender; the Pong carries it back.
    #[serde(with = "super::fixed::u64le")]
    pub nonce: u64,
}

/// The answer to a [`Ping`].
///
/// ```text
/// body = nonce: u64 (8 bytes, little endian)   the Ping's
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The nonce of the Ping answered.
    #[serde(with = "super::fixed::u64le")]
    pub nonce: u64,
}
