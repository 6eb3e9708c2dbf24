//! Giving references back.

use serde::{Deserialize, Serialize};

/// Gives back references to exports of the receiver: for each entry,
/// `count` references to the export `key`.
///
/// One frame carries as many entries as fit, so a burst of references
/// (a refused call that carried hundreds) costs one frame, not one each.
///
/// ```text
/// body = entries: varint n, then n × (key: varint u32, count: varint u32)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// What is given back.
    pub entries: Vec<Released>,
}

/// One entry of a [`Release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The export, in the receiver's table for this connection.
    pub key: u32,
    /// How many references the sender gives back.
    pub count: u32,
}

impl Release {
    /// A Release of `count` references to `key`.
    pub fn one(key: u32, count: u32) -> Self {
        Release {
            entries: vec![Released { key, count }],
        }
    }
}
