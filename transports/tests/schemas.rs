//! A peer without Rust types learns an interface's wire schemas on demand:
//! a raw peer over a real socket asks for a Description and reads the
//! types of every method it offers (PROTOCOL.md, §6 and §9).

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use serde::{Deserialize, Serialize};
use tether::ext::Interface;
use tether::ext::schema::WireSchema;
use tether::transports::frame::{WireTypes, WireView};
use tether::transports::session::{Answer, Incoming};
use tether::transports::{Config, tcp};
use tether::{Node, Schema};

use support::{Raw, bounded};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
pub struct Refused {
    pub short_by: u64,
}

#[tether::interface]
pub trait Account {
    async fn balance(&self) -> u64;
    async fn withdraw(&self, cents: u64, memo: String) -> Result<u64, Refused>;
    async fn audit(&self, by: AccountClient) -> Vec<u8>;
}

struct Wallet;

impl Account for Wallet {
    async fn balance(&self) -> u64 {
        0
    }
    async fn withdraw(&self, cents: u64, _memo: String) -> Result<u64, Refused> {
        Err(Refused { short_by: cents })
    }
    async fn audit(&self, _by: AccountClient) -> Vec<u8> {
        Vec::new()
    }
}

/// The types a described view gives for `method`.
fn types_of<'a>(view: &'a WireView, method: &str) -> &'a WireTypes {
    view.methods
        .iter()
        .find(|m| m.name == method)
        .and_then(|m| m.types.as_ref())
        .unwrap_or_else(|| panic!("{method}'s types"))
}

#[tokio::test]
async fn a_description_carries_every_offered_methods_schemas() {
    let server = Node::new();
    let wallet = server
        .expose(Wallet)
        .with_view("teller", AccountInterface::view())
        .unwrap()
        .with_view(
            "guest",
            AccountInterface::view().only([AccountInterface::BALANCE]),
        )
        .unwrap();
    server.publish("teller", wallet.view("teller").unwrap());
    server.publish("guest", wallet.view("guest").unwrap());
    let listener = tcp::serve(&server, "127.0.0.1:0", Config::new())
        .await
        .unwrap();

    bounded(async {
        let mut raw = Raw::connect(listener.local_addr()).await;
        let teller = raw.lookup("teller").await.expect("an import");
        let guest = raw.lookup("guest").await.expect("an import");

        // Describe ids come from the same counter as call ids.
        let id = raw.session.describe(vec![teller, guest, 999]).unwrap();
        raw.flush().await;
        let Answer::Description(views) = raw.answer(id).await else {
            panic!("a Description")
        };
        let [Some(teller), Some(guest), None] = &views[..] else {
            panic!("{views:?}")
        };
        assert_eq!(teller.fingerprint, AccountInterface::DESCRIPTOR.fingerprint());

        let withdraw = types_of(teller, "withdraw");
        assert_eq!(
            withdraw.params().unwrap(),
            [
                ("cents".to_string(), WireSchema::U64),
                ("memo".to_string(), WireSchema::String)
            ]
        );
        assert_eq!(withdraw.result().unwrap(), WireSchema::U64);
        assert_eq!(
            withdraw.error().unwrap(),
            Some(WireSchema::Struct(vec![("short_by".into(), WireSchema::U64)]))
        );

        let audit = types_of(teller, "audit");
        assert_eq!(
            audit.params().unwrap(),
            [("by".to_string(), WireSchema::Ref("Account".into()))]
        );
        assert_eq!(audit.result().unwrap(), WireSchema::Bytes);

        // A restricted view describes only what it offers: a caller learns
        // nothing of the methods it cannot call.
        let names: Vec<&str> = guest.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["balance"]);
        assert_eq!(guest.fingerprint, teller.fingerprint);

        // The reference's fingerprint, in the lookup's reply, is the same.
        let args = tether::Value::serializable(("teller".to_string(),));
        let Answer::Value(refs, _) = raw.call(raw.bootstrap, "lookup", args).await else {
            panic!("a reference")
        };
        assert!(matches!(
            refs[..],
            [Incoming::Import { fingerprint, .. }] if fingerprint == AccountInterface::DESCRIPTOR.fingerprint()
        ));
    })
    .await;
    listener.close().await;
}
