//! What the interface macro generates: descriptors, selectors, fingerprints,
//! hygiene.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

use serde::{Deserialize, Serialize};
use tether::ext::{Interface, selector_id};
use tether::{Client, Node};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, tether::Schema)]
pub struct Receipt {
    pub id: u64,
}

#[tether::interface]
pub trait Shop {
    /// Buys `qty` of `item`.
    async fn buy(&self, item: String, qty: u32) -> Result<Receipt, String>;
    #[tether(read)]
    async fn stock(&self) -> Vec<(String, u32)>;
    async fn restock(&self, r#type: String);
    /// Default bodies are kept.
    async fn motto(&self) -> String {
        "buy more".to_string()
    }
}

#[tokio::test]
async fn the_descriptor_describes_the_trait() {
    let d = ShopInterface::DESCRIPTOR;
    assert_eq!(d.name(), "Shop");
    let names: Vec<_> = d.methods().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["buy", "stock", "restock", "motto"]);

    let buy = &d.methods()[0];
    assert_eq!(buy.selector().id(), selector_id("buy"));
    assert_eq!(buy.selector(), ShopInterface::BUY.selector());
    let params: Vec<_> = buy.params().iter().map(|p| (p.name(), p.ty())).collect();
    assert_eq!(params, [("item", "String"), ("qty", "u32")]);
    assert_eq!(buy.returns(), "Receipt");
    assert_eq!(buy.error(), Some("String"));
    assert!(!buy.oneway_capable());

    let stock = &d.methods()[1];
    assert!(stock.reads(), "marked #[tether(read)]");
    assert!(!buy.reads());
    assert_eq!(stock.returns(), "Vec<(String, u32)>");
    assert_eq!(stock.error(), None);
    assert!(!stock.oneway_capable());

    let restock = &d.methods()[2];
    assert_eq!(
        restock.params()[0].name(),
        "type",
        "raw identifiers lose r#"
    );
    assert_eq!(restock.returns(), "()");
    assert!(restock.oneway_capable());
    assert_eq!(ShopInterface::RESTOCK.selector().name(), "restock");
}

mod same {
    #[tether::interface]
    pub trait Shop {
        async fn motto(&self) -> String;
        async fn restock(&self, r#type: String);
        async fn stock(&self) -> ::std::vec::Vec<(String, u32)>;
        async fn buy(&self, item: String, qty: u32) -> Result<super::Receipt, String>;
    }
}

mod changed {
    #[tether::interface]
    pub trait Shop {
        async fn buy(&self, item: String, qty: u64) -> Result<super::Receipt, String>;
        async fn stock(&self) -> Vec<(String, u32)>;
        async fn restock(&self, r#type: String);
        async fn motto(&self) -> String;
    }
}

#[test]
fn fingerprints_ignore_order_and_see_types() {
    let base = ShopInterface::DESCRIPTOR.fingerprint();
    assert_eq!(
        base,
        same::ShopInterface::DESCRIPTOR.fingerprint(),
        "reordered, other paths"
    );
    assert_ne!(
        base,
        changed::ShopInterface::DESCRIPTOR.fingerprint(),
        "u32 became u64"
    );
}

struct Corner;

impl Shop for Corner {
    async fn buy(&self, item: String, qty: u32) -> Result<Receipt, String> {
        if item == "unicorn" {
            return Err("sold out".into());
        }
        Ok(Receipt { id: u64::from(qty) })
    }
    async fn stock(&self) -> Vec<(String, u32)> {
        vec![("tea".into(), 3)]
    }
    async fn restock(&self, _: String) {}
}

#[tokio::test]
async fn stubs_and_skeletons_round_trip() {
    let node = Node::new();
    let shop = node
        .expose(Corner)
        .with_view("v", ShopInterface::view())
        .unwrap();
    let client: ShopClient = shop.client("v").unwrap();
    assert_eq!(
        client.buy("tea".into(), 2).await.unwrap(),
        Receipt { id: 2 }
    );
    let e = client.buy("unicorn".into(), 1).await.unwrap_err();
    assert_eq!(e.callee().map(String::as_str), Some("sold out"));
    assert_eq!(client.stock().await.unwrap(), [("tea".to_string(), 3)]);
    client.restock("tea".into()).await.unwrap();
    assert_eq!(client.motto().await.unwrap(), "buy more");
    assert_eq!(client.reference(), &shop.view("v").unwrap());
}

/// Generated code uses only fully qualified paths.
mod hygiene {
    #![no_implicit_prelude]

    #[derive(::serde::Serialize, ::serde::Deserialize, ::core::fmt::Debug, ::tether::Schema)]
    pub struct Oops;

    #[::tether::interface]
    pub trait Echo {
        async fn echo(&self, text: ::std::string::String) -> ::std::string::String;
        async fn check(&self, n: u8) -> ::core::result::Result<u8, Oops>;
        async fn nothing(&self);
    }

    pub struct Parrot;

    impl Echo for Parrot {
        async fn echo(&self, text: ::std::string::String) -> ::std::string::String {
            text
        }
        async fn check(&self, n: u8) -> ::core::result::Result<u8, Oops> {
            if n == 0 {
                ::core::result::Result::Err(Oops)
            } else {
                ::core::result::Result::Ok(n)
            }
        }
        async fn nothing(&self) {}
    }
}

#[tokio::test]
async fn generated_code_compiles_without_the_prelude() {
    use hygiene::{EchoClient, EchoInterface, Parrot};
    let node = Node::new();
    let echo: EchoClient = node
        .expose(Parrot)
        .with_view("v", EchoInterface::view())
        .unwrap()
        .client("v")
        .unwrap();
    assert_eq!(echo.echo("hi".into()).await.unwrap(), "hi");
    assert!(echo.check(0).await.unwrap_err().callee().is_some());
    echo.nothing().await.unwrap();
}

#[test]
fn compile_errors_point_at_the_users_trait() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
