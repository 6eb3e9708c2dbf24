//! Giving references back.

use serde::{Deserialize, Serialize};

/// Gives back `count` references to the export `key` of the receiver.
///
/// ```text
/// body = key: varint u32
///        count: varint u32
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The export, in the receiver's table for this connection.
    pub key: u32,
    /// How many references the sender gives back.
    pub count: u32,
}
