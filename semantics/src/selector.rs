//! Selectors: the stable numeric name of a method.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Names one method of an interface.
///
/// The `id` is the 32-bit FNV-1a hash of the method's name ([`selector_id`]),
/// so adding, removing or reordering methods never renumbers the others; the
/// interface macro rejects two methods of one trait whose ids collide. The
/// `name` is carried for logs and error messages only: two selectors are
/// equal when their ids are.
#[derive(Clone, Copy)]
pub struct Selector {
    id: u32,
    name: &'static str,
}

impl Selector {
    /// The selector of the method called `name`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            id: selector_id(name),
            name,
        }
    }

    /// The stable numeric id that travels on the wire.
    pub const fn id(self) -> u32 {
        self.id
    }

    /// The method's name, for logs and errors.
    pub const fn name(self) -> &'static str {
        self.name
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Selector {}

impl Hash for Selector {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:08x}", self.name, self.id)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The 32-bit FNV-1a hash of a method name: the selector id.
///
/// ```
/// use tether::ext::selector_id;
/// assert_eq!(selector_id("deposit"), selector_id("deposit"));
/// assert_ne!(selector_id("deposit"), selector_id("withdraw"));
/// ```
pub const fn selector_id(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_vectors() {
        // Published FNV-1a 32-bit test vectors.
        assert_eq!(selector_id(""), 0x811c_9dc5);
        assert_eq!(selector_id("a"), 0xe40c_292c);
        assert_eq!(selector_id("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn equality_is_by_id() {
        let a = Selector::new("add");
        assert_eq!(a, Selector::new("add"));
        assert_ne!(a, Selector::new("sub"));
        assert_eq!(format!("{a}"), "add");
    }
}
