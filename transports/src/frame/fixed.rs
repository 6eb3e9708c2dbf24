//! Fixed-width little-endian encodings for hashes and ids, where postcard's
//! varints would only make random values longer.

/// `u32` as 4 bytes, little endian.
pub(crate) mod u32le {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        v.to_le_bytes().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        <[u8; 4]>::deserialize(d).map(u32::from_le_bytes)
    }
}

/// `u64` as 8 bytes, little endian.
pub(crate) mod u64le {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        v.to_le_bytes().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        <[u8; 8]>::deserialize(d).map(u64::from_le_bytes)
    }
}

/// `Option<u64>` as a presence byte and 8 bytes, little endian.
pub(crate) mod opt_u64le {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(u64::to_le_bytes).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<[u8; 8]>::deserialize(d).map(|v| v.map(u64::from_le_bytes))
    }
}

/// `Option<u128>` as a presence byte and 16 bytes, little endian.
pub(crate) mod opt_u128le {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
        v.map(u128::to_le_bytes).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
        Option::<[u8; 16]>::deserialize(d).map(|v| v.map(u128::from_le_bytes))
    }
}

/// A lineage: a varint count, then each activation as 8 bytes, little
/// endian. Decoding keeps at most one more than
/// [`MAX_LINEAGE`](super::MAX_LINEAGE), whatever the count says, so the
/// frame's decoder can refuse a longer one with a clear reason (postcard
/// drops the text of a serde error).
pub(crate) mod lineage {
    use serde::de::{SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserializer, Serializer};

    use super::super::MAX_LINEAGE;

    pub(crate) fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let v = &v[..v.len().min(MAX_LINEAGE)];
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for id in v {
            seq.serialize_element(&id.to_le_bytes())?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        struct Ids;
        impl<'de> Visitor<'de> for Ids {
            type Value = Vec<u64>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "at most {MAX_LINEAGE} activations")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
                let mut ids = Vec::new();
                while ids.len() <= MAX_LINEAGE {
                    match seq.next_element::<[u8; 8]>()? {
                        Some(id) => ids.push(u64::from_le_bytes(id)),
                        None => return Ok(ids),
                    }
                }
                // The rest is read and dropped (postcard cannot skip).
                while seq.next_element::<[u8; 8]>()?.is_some() {}
                Ok(ids)
            }
        }
        d.deserialize_seq(Ids)
    }
}
