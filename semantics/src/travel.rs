//! How references travel inside encoded values.
//!
//! A reference inside an argument tuple or a result is not bytes: it is an
//! entry in a table that travels beside the bytes. Encoding a value
//! collects the references it holds, in order, and writes each as its
//! index in that list (a postcard varint); decoding reads the index and
//! takes the reference from the list the value arrived with. What an entry
//! is on the wire (an export of the sender, or the receiver's own object
//! coming home) is the transport's business; this module only keeps the
//! list.

use std::cell::RefCell;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Ref;

thread_local! {
    /// The references of the value being encoded on this thread.
    static SENDING: RefCell<Option<Vec<Ref>>> = const { RefCell::new(None) };
    /// The references of the value being decoded on this thread.
    static RECEIVING: RefCell<Option<Vec<Ref>>> = const { RefCell::new(None) };
    /// Why a reference in the value being decoded could not be taken as
    /// the stub it was read as (its interface differs): serde's error
    /// keeps only text, and this keeps the kind.
    static REFUSED: RefCell<Option<crate::Error>> = const { RefCell::new(None) };
}

/// Records why a reference in the value being decoded was refused.
pub(crate) fn refuse(error: crate::Error) {
    REFUSED.with(|r| *r.borrow_mut() = Some(error));
}

/// Restores a thread-local list when dropped, even on panic.
struct Restore {
    slot: &'static std::thread::LocalKey<RefCell<Option<Vec<Ref>>>>,
    previous: Option<Option<Vec<Ref>>>,
}

impl Restore {
    fn set(
        slot: &'static std::thread::LocalKey<RefCell<Option<Vec<Ref>>>>,
        refs: Vec<Ref>,
    ) -> Self {
        let previous = slot.with(|s| s.replace(Some(refs)));
        Restore {
            slot,
            previous: Some(previous),
        }
    }

    fn take(mut self) -> Vec<Ref> {
        let previous = self.previous.take().unwrap_or_default();
        self.slot.with(|s| s.replace(previous)).unwrap_or_default()
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            self.slot.with(|s| *s.borrow_mut() = previous);
        }
    }
}

/// Runs `encode`, collecting the references it serializes.
pub(crate) fn collecting<R>(encode: impl FnOnce() -> R) -> (R, Vec<Ref>) {
    let guard = Restore::set(&SENDING, Vec::new());
    let out = encode();
    (out, guard.take())
}

/// Runs `decode` with `refs` as the references the bytes index; also
/// returns why a reference was refused, if one was.
pub(crate) fn resolving<R>(refs: &[Ref], decode: impl FnOnce() -> R) -> (R, Option<crate::Error>) {
    let _guard = Restore::set(&RECEIVING, refs.to_vec());
    REFUSED.with(|r| r.borrow_mut().take());
    let out = decode();
    (out, REFUSED.with(|r| r.borrow_mut().take()))
}

/// A reference serializes as its index in the value's list of references;
/// it can only be serialized while a value is encoded for another node.
impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = SENDING.with(|s| {
            let mut s = s.borrow_mut();
            let list = s.as_mut()?;
            list.push(self.clone());
            Some(list.len() - 1)
        });
        match index.map(u32::try_from) {
            Some(Ok(index)) => serializer.serialize_u32(index),
            Some(Err(_)) => Err(S::Error::custom("too many references in one value")),
            None => Err(S::Error::custom(
                "a reference can only be serialized as an argument or result of a Tether call",
            )),
        }
    }
}

/// Reads a reference: an index into the list the value arrived with.
pub(crate) fn deserialize_ref<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Ref, D::Error> {
    let index = u32::deserialize(deserializer)?;
    RECEIVING.with(|r| {
        let r = r.borrow();
        let Some(list) = r.as_ref() else {
            return Err(D::Error::custom(
                "a reference can only be deserialized from an argument or result of a Tether call",
            ));
        };
        list.get(index as usize).cloned().ok_or_else(|| {
            D::Error::custom(format!(
                "reference #{index} is not among the {} the value carries",
                list.len()
            ))
        })
    })
}
