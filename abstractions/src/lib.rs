//! Tether's invocation abstractions: how a call is sent and how the caller
//! waits.
//!
//! A view gives each method one of these (the receiver decides, not the
//! caller):
//!
//! | abstraction | the caller | dropping the handle |
//! |---|---|---|
//! | [`SyncCall`] (the default) | awaits the reply; the call runs when awaited | cancels the call |
//! | [`Oneway`] | returns at once with `Ok(())`; failures are logged | nothing (already sent) |
//! | [`FutureCall`] | gets a handle; the call starts at once, in its own task | does not cancel |
//!
//! [`Multicast`] sends one call to a group of references and combines the
//! replies by a [`Policy`]. A caller forms a group from references it
//! holds; a receiver exposes a replicated object as one object whose
//! views fan out to every replica. Each member's own view still decides
//! how that member is called, so a group of oneway members is a oneway
//! broadcast.
//!
//! ```
//! use tether::abstractions::{FutureCall, Oneway};
//! use tether::Node;
//!
//! #[tether::interface]
//! pub trait Report {
//!     async fn render(&self, pages: u32) -> String;
//!     async fn log(&self, line: String);
//! }
//! struct Printer;
//! impl Report for Printer {
//!     async fn render(&self, pages: u32) -> String { format!("{pages} pages") }
//!     async fn log(&self, line: String) { println!("{line}") }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::new();
//! let printer = node.expose(Printer).with_view("async", ReportInterface::view()
//!     .method(ReportInterface::RENDER, FutureCall)
//!     .method(ReportInterface::LOG, Oneway))?;
//! let report: ReportClient = printer.client("async")?;
//!
//! let pending = report.render(3);             // already running
//! report.log("rendering".into()).await?;      // sent; returns at once
//! assert_eq!(pending.await?, "3 pages");
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod multicast;
mod wait;

pub use multicast::{Multicast, Policy};
pub use wait::{FutureCall, Oneway, SyncCall};
