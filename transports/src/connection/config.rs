//! How a connection is set up.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tether_semantics::{Directory, Principal};

use crate::frame::Credentials;
use crate::session::SessionConfig;

/// Checks the credentials a peer sends in its Hello and says who it is.
///
/// `Ok(None)` admits the peer anonymously; `Err` refuses the connection
/// (the peer gets a Goodbye saying why).
pub trait Authenticator: Send + Sync + 'static {
    /// The principal the credentials prove, if any.
    fn authenticate(&self, credentials: Option<&Credentials>) -> Result<Option<Principal>, String>;
}

impl<F> Authenticator for F
where
    F: Fn(Option<&Credentials>) -> Result<Option<Principal>, String> + Send + Sync + 'static,
{
    fn authenticate(&self, credentials: Option<&Credentials>) -> Result<Option<Principal>, String> {
        self(credentials)
    }
}

/// How a connection is set up. The defaults suit most uses.
///
/// A listener passes its config to every connection it accepts, so what
/// is set here for `serve` holds for each of them.
///
/// ```
/// use std::time::Duration;
/// use tether::{Node, Principal};
/// use tether::transports::{Config, tcp};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The server knows one client, and notices a silent peer sooner.
/// let server = Config::new()
///     .authenticator(|credentials: Option<&tether::transports::frame::Credentials>| {
///         match credentials {
///             Some(c) if c.principal == "ada" && c.secret == b"s3cret" => {
///                 Ok(Some(Principal::new("ada", ["staff"])))
///             }
///             _ => Err("unknown principal or wrong secret".to_string()),
///         }
///     })
///     .keepalive(Duration::from_secs(2))
///     .idle_timeout(Duration::from_secs(6))
///     .max_frame(1 << 20);
/// let listener = tcp::serve(&Node::new(), "127.0.0.1:0", server).await?;
///
/// let ada = tcp::connect(&Node::new(), listener.local_addr(), Config::new().credentials("ada", "s3cret")).await?;
/// ada.opened().await?;
/// assert_eq!(listener.peers()[0].principal().map(|p| p.name().to_string()), Some("ada".into()));
///
/// let eve = tcp::connect(&Node::new(), listener.local_addr(), Config::new().credentials("eve", "guess")).await?;
/// assert!(eve.opened().await.unwrap_err().message().contains("wrong secret"));
/// listener.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Config {
    pub(crate) session: SessionConfig,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    transaction_timeout: Option<Duration>,
    max_transactions: Option<usize>,
    write_timeout: Option<Duration>,
    pub(crate) node_max_unsent: Option<usize>,
    pub(crate) directory: Option<Directory>,
}

/// How long a transaction branch may wait for its outcome, unless set.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How many transactions the peer may have open through one connection,
/// unless set.
const MAX_TRANSACTIONS: usize = 1024;

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("session", &self.session)
            .field("authenticator", &self.authenticator.is_some())
            .field("transaction_timeout", &self.tx_timeout())
            .field("directory", &self.directory)
            .finish()
    }
}

impl Config {
    /// The defaults: 16 MiB frames, 1024 calls and 1024 oneway calls in
    /// flight, 1024 references per frame, 1024 open transactions, 10 s for the
    /// peer's Hello, 64 MiB of unsent frames, a Ping after 10 s of silence
    /// and a close after 30 s, anonymous peers, 30 s for a transaction's
    /// outcome, and the node-wide directory of names.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sends `credentials` in this side's Hello.
    pub fn credentials(mut self, principal: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.session.credentials = Some(Credentials {
            principal: principal.into(),
            secret: secret.into(),
        });
        self
    }
    /// Checks the peer's credentials with `authenticator`; the principal it
    /// returns is in the context of every call the peer makes.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }
    /// Offers the peer the names of `directory` instead of the node-wide
    /// one ([`Node::directory`](tether_semantics::Node::directory)): the
    /// peer can look up only what is published there (and use what it is
    /// handed). Given to a listener, it holds for every connection the
    /// listener accepts.
    ///
    /// ```
    /// use tether::{Directory, Node};
    /// use tether::transports::{Config, memory};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (server, client) = (Node::new(), Node::new());
    /// let guests = Directory::new();
    /// // Published node-wide, but this connection offers only `guests`:
    /// # let object = server.expose_service(tower::service_fn(|_: tether::Message| async {
    /// #     Ok::<_, tether::Error>(tether::Value::unit()) }));
    /// # struct I; impl tether::ext::Interface for I {
    /// #   const DESCRIPTOR: &'static tether::ext::InterfaceDescriptor =
    /// #       &tether::ext::InterfaceDescriptor::new("I", &[], 1); }
    /// # let members_only = object.set_view("v", tether::View::<I>::new()).unwrap();
    /// server.publish("members", members_only);
    /// let (to_server, _) = memory::pair(&client, &server, Config::new(), Config::new().directory(guests));
    /// let e = to_server.lookup_ref("members").await.unwrap_err();
    /// assert!(e.is_unknown_object(), "{e}");
    /// # }
    /// ```
    pub fn directory(mut self, directory: Directory) -> Self {
        self.directory = Some(directory);
        self
    }
    /// The largest frame this side accepts, in bytes.
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.session.max_frame = bytes;
        self
    }
    /// How many of the peer's calls run at once; more get `overloaded`.
    pub fn max_in_flight(mut self, calls: u32) -> Self {
        self.session.max_in_flight = calls;
        self
    }
    /// How many of the peer's oneway calls run at once (1024 unless set);
    /// more are dropped, logged at WARN and counted
    /// ([`Tables::refused_oneways`](crate::Tables::refused_oneways)).
    /// Running oneway calls end when the connection closes.
    pub fn max_oneway_in_flight(mut self, calls: u32) -> Self {
        self.session.max_oneway_in_flight = calls;
        self
    }
    /// How many of the peer's calls this side keeps the answers of for
    /// promise pipelining at once (1024 unless set); a call asking for one
    /// more is refused with `overloaded`. A kept answer lasts until the
    /// peer drops its promise.
    pub fn max_promises(mut self, answers: u32) -> Self {
        self.session.max_promises = answers;
        self
    }
    /// How many references one frame may carry (1024 unless set); a call
    /// carrying more is refused with `bad arguments`.
    pub fn max_refs_per_frame(mut self, refs: u32) -> Self {
        self.session.max_refs_per_frame = refs;
        self
    }
    /// How many bytes of frames may wait for a peer that does not read
    /// before the connection is closed.
    pub fn max_unsent(mut self, bytes: usize) -> Self {
        self.session.max_unsent = bytes;
        self
    }
    /// How long without a frame from the peer before this side sends a
    /// Ping (10 s unless set). Any frame counts, so a busy connection never
    /// pings.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.session.keepalive = interval;
        self
    }
    /// How long without any frame from the peer (a Pong included) before
    /// the connection counts as gone (30 s unless set): it closes, and
    /// every call pending on it fails with `disconnected`. This is the
    /// longest a caller without a deadline waits for a peer that stopped
    /// answering (a stopped process, a vanished host). Over QUIC it is
    /// also the transport's idle timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.session.idle_timeout = timeout;
        self
    }
    #[cfg(feature = "quic")]
    pub(crate) fn liveness(&self) -> (Duration, Duration) {
        (self.session.keepalive, self.session.idle_timeout)
    }
    /// How long one frame may take to be written to the peer (30 s unless
    /// set): a peer that reads nothing for that long is cut off, whatever
    /// waits for it, and its calls fail with `disconnected`.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = Some(timeout);
        self
    }
    pub(crate) fn write_timeout_or_default(&self) -> Duration {
        self.write_timeout.unwrap_or(Duration::from_secs(30))
    }
    /// The bytes of frames that may wait to be sent on all of this node's
    /// connections together (256 MiB unless set). When a frame takes the
    /// node over it, the connection sending it is cut off if its own
    /// backlog is at least a sixteenth of the budget. The budget belongs to
    /// the node: the last connection set up with this option sets it for
    /// all.
    pub fn node_max_unsent(mut self, bytes: usize) -> Self {
        self.node_max_unsent = Some(bytes);
        self
    }
    /// How long the peer has to send its Hello.
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.session.hello_timeout = timeout;
        self
    }
    /// How long a transaction that reached this side through the
    /// connection may run before it hears its outcome, and how long this
    /// side waits for the peer's vote when it coordinates. A branch that
    /// hears nothing in time aborts (presumed abort) and releases what it
    /// holds; a peer that does not vote in time counts as a no.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = Some(timeout);
        self
    }
    /// How many of the peer's transactions may be open on this side
    /// through the connection at once (1024 unless set); a call that would
    /// begin one more gets `overloaded`.
    pub fn max_transactions(mut self, transactions: usize) -> Self {
        self.max_transactions = Some(transactions);
        self
    }
    pub(crate) fn max_branches(&self) -> usize {
        self.max_transactions.unwrap_or(MAX_TRANSACTIONS)
    }
    pub(crate) fn tx_timeout(&self) -> Duration {
        self.transaction_timeout.unwrap_or(TRANSACTION_TIMEOUT)
    }
    #[cfg(feature = "tcp")]
    pub(crate) fn max_frame_len(&self) -> usize {
        self.session.max_frame as usize
    }
}
