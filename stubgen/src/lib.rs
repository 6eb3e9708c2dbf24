//! The interface macro: typed stubs, skeletons and descriptors from plain
//! Rust traits. Use it through the `tether` crate as
//! `#[tether::interface]`; see its documentation there.
//!
//! Set `TETHER_MACRO_DEBUG=1` while building to print the generated code.

use proc_macro::TokenStream;

mod expand;
mod parse;

/// Makes a trait of `async fn`s callable through Tether.
///
/// See the `tether` crate for the full description.
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
