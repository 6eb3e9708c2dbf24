//! The logging filter with no subscriber at all. A separate test binary:
//! tracing caches per process whether anybody listens at a call site.
#![allow(missing_docs, clippy::unwrap_used)]

use tether::Node;
use tether::filters::LoggingLayer;

#[tether::interface]
pub trait Echo {
    async fn echo(&self, text: String) -> String;
    async fn refuse(&self) -> Result<(), String>;
}

struct Parrot;

impl Echo for Parrot {
    async fn echo(&self, text: String) -> String {
        text
    }
    async fn refuse(&self) -> Result<(), String> {
        Err("no".into())
    }
}

#[tokio::test]
async fn logging_without_a_subscriber_passes_calls_through_unchanged() {
    assert!(
        !tracing::enabled!(tracing::Level::ERROR),
        "no subscriber here"
    );
    let node = Node::new();
    let client: EchoClient = node
        .expose(Parrot)
        .with_view("v", EchoInterface::view().layer(LoggingLayer::new()))
        .unwrap()
        .client("v")
        .unwrap();
    assert_eq!(client.echo("q".into()).await.unwrap(), "q");
    let e = client.refuse().await.unwrap_err();
    assert_eq!(e.callee().map(String::as_str), Some("no"));
}
