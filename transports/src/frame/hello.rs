//! Opening and closing a connection.

use serde::{Deserialize, Serialize};

/// The protocol version this implementation speaks.
pub const VERSION: u16 = 4;

/// The first frame each side sends.
///
/// ```text
/// body = version: varint u16
///        node: varint u64                 the sender's node id
///        bootstrap: option<varint u32>    key of the object offered first
///        credentials: option<Credentials>
///        max_frame: varint u32            largest frame the sender accepts
///        max_in_flight: varint u32        most calls it serves at once
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the sender speaks.
    pub version: u16,
    /// The sender's node id.
    pub node: u64,
    /// The export key of the sender's bootstrap object, if it offers one.
    pub bootstrap: Option<u32>,
    /// Who the sender says it is, for access control.
    pub credentials: Option<Credentials>,
    /// The largest frame the sender accepts, in bytes.
    pub max_frame: u32,
    /// How many of the peer's calls the sender serves at once; more get
    /// an `overloaded` error.
    pub max_in_flight: u32,
}

/// A principal and the proof of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The principal's name.
    pub principal: String,
    /// Whatever the receiver's authenticator checks (a token, a password).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Credentials")
            .field("principal", &self.principal)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

/// The last frame a side sends.
///
/// ```text
/// body = reason: string
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goodbye {
    /// Why the connection closes, for the peer's log.
    pub reason: String,
}
