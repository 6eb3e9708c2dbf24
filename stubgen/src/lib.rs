//! The interface macro: typed stubs, skeletons and descriptors from plain
//! Rust traits. Use it through the `tether` crate as
//! `#[tether::interface]`, documented on the macro itself.
//!
//! Set `TETHER_MACRO_DEBUG=1` while building to print the generated code.

use proc_macro::TokenStream;

mod expand;
mod parse;
mod schema;

/// Makes a trait of `async fn`s callable through Tether.
///
/// On a trait of `async fn(&self, ...)` methods, for `trait Account` it
/// generates:
///
/// * `AccountInterface`, a marker type: the interface's descriptor (its
///   name, methods, parameter and result types, fingerprint), one
///   [`Selector`](../tether/struct.Selector.html) constant per method
///   (`AccountInterface::DEPOSIT`), a `view()` constructor for the object's
///   owner, and the skeleton that serves any `T: Account`;
/// * `AccountClient`, a typed stub whose methods take the same arguments
///   and return a [`Call`](../tether/struct.Call.html) to await.
///
/// The trait itself stays: implement it with `async fn` as usual. Its
/// methods are rewritten to return `Send` futures, so an object can serve
/// calls on a multi-threaded runtime.
///
/// ```
/// use tether::Node;
///
/// #[tether::interface]
/// pub trait Account {
///     /// The balance, in cents.
///     #[tether(read)]
///     async fn balance(&self) -> u64;
///     /// Takes `cents` out; refuses to overdraw.
///     async fn withdraw(&self, cents: u64) -> Result<u64, Refused>;
/// }
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, tether::Schema)]
/// pub struct Refused { pub short_by: u64 }
///
/// struct Wallet(std::sync::Mutex<u64>);
///
/// impl Account for Wallet {
///     async fn balance(&self) -> u64 {
///         *self.0.lock().unwrap()
///     }
///     async fn withdraw(&self, cents: u64) -> Result<u64, Refused> {
///         let mut balance = self.0.lock().unwrap();
///         let left = balance.checked_sub(cents).ok_or_else(|| Refused { short_by: cents - *balance })?;
///         *balance = left;
///         Ok(left)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::new();
/// let wallet = node.expose(Wallet(std::sync::Mutex::new(500)))
///     .with_view("owner", AccountInterface::view())?;
/// let account: AccountClient = wallet.client("owner")?;
///
/// assert_eq!(account.withdraw(200).await?, 300);
/// let refused = account.withdraw(1_000).await.unwrap_err();
/// assert_eq!(refused.callee(), Some(&Refused { short_by: 700 }));
/// assert_eq!(account.balance().await?, 300);
/// # Ok(()) }
/// ```
///
/// # Methods
///
/// * Arguments and results are any `serde` types, taken by value. A
///   parameter or result may be another interface's stub (`ListenerClient`):
///   it travels as a reference, with its identity, and calls made through
///   it go back to the object it names.
/// * A method returning `Result<T, E>` makes the stub return
///   `Result<T, Error<E>>`: the callee's `E` is in `Error::callee()`, and
///   failures of the call itself (unknown method, disconnected, deadline,
///   access denied, ...) are the other [kinds](../tether/enum.ErrorKind.html).
///   Any other method's stub returns `Result<T, Error>`.
/// * Methods returning `()` may be made oneway by a view.
/// * `#[tether(read)]` marks a method that only reads the object: a
///   readers/writer lock (`MutexLayer::readers_writer_of`) lets it run
///   beside other readers.
/// * A parameter or result spelled `Vec<u8>` travels as a byte string: one
///   copy, where serde writes and reads a vector one element at a time.
///   The bytes on the wire are the same either way (postcard writes both
///   as a length and the bytes), so peers, schemas and tools see no
///   difference. A `Vec<u8>` *inside* your own type gets the same path
///   when you mark the field `#[serde(with = "serde_bytes")]` (the
///   `serde_bytes` crate); `derive(tether::Schema)` accepts that attribute,
///   as it keeps the encoding. A `bytes::Bytes` field is a byte string
///   already.
///
/// # Selectors and compatibility
///
/// A selector is the FNV-1a hash of the method's name, so adding a method
/// renumbers no other; two names that collide are a compile error. The
/// interface's fingerprint covers its name and every method's name and
/// types: a reference to another interface (or another version of this
/// one) is refused with an `incompatible` error when it arrives, not
/// misread.
///
/// # What it refuses
///
/// Each mistake is reported at its own span, all at once: a method that is
/// not `async`, takes `&mut self` or `self`, is generic, borrows in its
/// arguments or result, or has an unknown `#[tether(...)]` attribute; a
/// type that is not `Serialize + DeserializeOwned`; arguments to the
/// attribute itself.
///
/// Set `TETHER_MACRO_DEBUG=1` while building to print the generated code.
#[proc_macro_attribute]
pub fn interface(attr: TokenStream, item: TokenStream) -> TokenStream {
    let output = match parse::parse(attr.into(), item.into()) {
        Ok(spec) => expand::expand(&spec),
        Err(errors) => errors.to_compile_error(),
    };
    if std::env::var_os("TETHER_MACRO_DEBUG").is_some() {
        eprintln!("{output}");
    }
    output.into()
}

/// Writes the wire schema of a struct or enum: `#[derive(tether::Schema)]`
/// beside serde's derives. Every type an interface's methods take or
/// return needs one, so that a peer without Rust types (another language,
/// a browser) can encode and decode it; `#[tether::interface]` checks it,
/// at the type.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, tether::Schema)]
/// pub struct Point {
///     pub x: i32,
///     pub y: i32,
/// }
///
/// #[derive(serde::Serialize, serde::Deserialize, tether::Schema)]
/// pub enum Shape {
///     Dot(Point),
///     Line { from: Point, to: Point },
/// }
///
/// let schema = tether::ext::WireSchema::of::<Shape>().unwrap();
/// assert_eq!(
///     schema.to_string(),
///     "Dot { x: i32, y: i32 } | Line { from: { x: i32, y: i32 }, to: { x: i32, y: i32 } }"
/// );
/// // `Dot(Point)` is encoded as a struct variant of Point's fields would be,
/// // so its canonical schema is that (PROTOCOL.md, §9.1).
/// ```
///
/// The schema follows serde's `rename` (of fields and variants) and
/// `transparent`. Attributes that change the encoding in ways a schema
/// cannot describe (`skip`, `flatten`, `with`, `tag`, `untagged`,
/// `rename_all`, …) are refused at their span; implement
/// `tether::Schema` by hand for such a type. The trait is
/// [postcard-schema](https://docs.rs/postcard-schema)'s, so types that
/// derive it there work too.
#[proc_macro_derive(Schema, attributes(serde))]
pub fn derive_schema(item: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(item) {
        Ok(input) => schema::derive(input).into(),
        Err(e) => e.to_compile_error().into(),
    }
}
