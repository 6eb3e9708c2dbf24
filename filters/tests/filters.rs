//! Filters in views: Tether's logging filter, and tower's own middleware
//! used as filters unchanged.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether::ext::{Transaction, TransactionId};
use tether::filters::LoggingLayer;
use tether::{Context, Error, ErrorKind, Message, Node, Principal, Value};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;

#[tether::interface]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
    /// Fails for empty names.
    async fn strict(&self, name: String) -> Result<String, String>;
    /// Waits for the gate; reports the most calls ever inside at once.
    async fn gated(&self) -> usize;
}

struct Greetings {
    gate: Semaphore,
    inside: AtomicUsize,
    most: AtomicUsize,
}

impl Default for Greetings {
    fn default() -> Self {
        Greetings {
            gate: Semaphore::new(0),
            inside: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }
}

impl Greeter for Greetings {
    async fn greet(&self, name: String) -> String {
        format!("hello {name}")
    }
    async fn strict(&self, name: String) -> Result<String, String> {
        if name.is_empty() {
            Err("no name".into())
        } else {
            Ok(name)
        }
    }
    async fn gated(&self) -> usize {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        self.inside.fetch_sub(1, Ordering::SeqCst);
        self.most.load(Ordering::SeqCst)
    }
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the test waited more than 10 s")
}

/// Serializes this file's tests. tracing caches per call site, process-wide,
/// whether anybody listens; a test without a subscriber hitting a call site
/// while another test installs its own can leave that cache wrong for the
/// other (a known hazard of per-thread subscribers), so these tests take
/// turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Captures what a `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Call sites cache whether anybody listens, process-wide; tests on
    // other threads may have cached "nobody" before this subscriber came.
    tracing::callsite::rebuild_interest_cache();
    (out, guard)
}

#[tokio::test(flavor = "current_thread")]
async fn logging_records_each_call_with_its_outcome() {
    let _serial = serial().await;
    let (out, _guard) = capture(tracing::Level::INFO);
    let node = Node::new();
    let exposed = node
        .expose(Greetings::default())
        .with_view(
            "logged",
            GreeterInterface::view().layer(LoggingLayer::new()),
        )
        .unwrap();
    let client: GreeterClient = exposed.client("logged").unwrap();

    assert_eq!(client.greet("ann".into()).await.unwrap(), "hello ann");
    let ctx = Context::new()
        .with_principal(Principal::new("bob", ["user"]))
        .with_transaction(Transaction::subordinate(TransactionId(0xabc)));
    ctx.scope(async { client.strict(String::new()).await.unwrap_err() })
        .await;

    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let ok = lines[0];
    assert!(ok.contains(" INFO "), "{ok}");
    assert!(ok.contains(&format!("node={}", node.id())), "{ok}");
    assert!(ok.contains(&format!("object={}", exposed.id())), "{ok}");
    assert!(ok.contains("view=\"logged\""), "{ok}");
    assert!(ok.contains("method=Greeter::greet"), "{ok}");
    assert!(ok.contains("outcome=ok"), "{ok}");
    assert!(ok.contains("latency_us="), "{ok}");
    let failed = lines[1];
    assert!(failed.contains(" WARN "), "{failed}");
    assert!(failed.contains("method=Greeter::strict"), "{failed}");
    assert!(failed.contains("principal=bob"), "{failed}");
    assert!(failed.contains("tx=tx-0000000000000abc"), "{failed}");
    assert!(
        failed.contains("outcome=call failed: Greeter::strict returned \"no name\""),
        "{failed}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn logging_below_the_subscriber_level_still_reports_failures() {
    let _serial = serial().await;
    let (out, _guard) = capture(tracing::Level::WARN);
    let node = Node::new();
    let client: GreeterClient = node
        .expose(Greetings::default())
        .with_view("v", GreeterInterface::view().layer(LoggingLayer::new()))
        .unwrap()
        .client("v")
        .unwrap();
    client.greet("quiet".into()).await.unwrap();
    assert_eq!(out.text(), "", "successful calls are below WARN");
    client.strict(String::new()).await.unwrap_err();
    let text = out.text();
    assert!(text.contains(" WARN "), "{text}");
    assert!(text.contains("method=Greeter::strict"), "{text}");
    assert!(text.contains("call failed"), "{text}");
}

/// Refuses every call: a stand-in for an access filter.
type Refuse = tower::filter::FilterLayer<fn(Message) -> Result<Message, Error>>;

fn deny() -> tower::layer::util::Stack<Refuse, tower::layer::util::Identity> {
    fn refuse(m: Message) -> Result<Message, Error> {
        Err(Error::new(
            ErrorKind::AccessDenied,
            format!("{} refused", m.method_path()),
        ))
    }
    ServiceBuilder::new()
        .layer(tower::filter::FilterLayer::new(
            refuse as fn(Message) -> Result<Message, Error>,
        ))
        .into_inner()
}

#[tokio::test(flavor = "current_thread")]
async fn filter_order_decides_what_is_logged() {
    let _serial = serial().await;
    let (out, _guard) = capture(tracing::Level::INFO);
    let node = Node::new();
    let exposed = node
        .expose(Greetings::default())
        .with_view(
            "outer",
            GreeterInterface::view()
                .layer(LoggingLayer::new())
                .layer(deny()),
        )
        .unwrap()
        .with_view(
            "inner",
            GreeterInterface::view()
                .layer(deny())
                .layer(LoggingLayer::new()),
        )
        .unwrap();
    let outer: GreeterClient = exposed.client("outer").unwrap();
    let inner: GreeterClient = exposed.client("inner").unwrap();

    let e = inner.greet("x".into()).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    assert_eq!(
        out.text(),
        "",
        "logging inside the refusal never sees the call"
    );

    let e = outer.greet("x".into()).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    let text = out.text();
    assert!(text.contains("view=\"outer\""), "{text}");
    assert!(
        text.contains("access denied: Greeter::greet refused"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn towers_timeout_is_a_filter() {
    let _serial = serial().await;
    let node = Node::new();
    let exposed = node
        .expose(Greetings::default())
        .with_view(
            "v",
            GreeterInterface::view().layer(tower::timeout::TimeoutLayer::new(
                Duration::from_millis(100),
            )),
        )
        .unwrap();
    let client: GreeterClient = exposed.client("v").unwrap();
    assert_eq!(client.greet("t".into()).await.unwrap(), "hello t");
    let e = client.gated().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeadlineExceeded, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_concurrency_limit_is_a_filter() {
    let _serial = serial().await;
    let node = Node::new();
    let exposed = node
        .expose(Greetings::default())
        .with_view(
            "one-at-a-time",
            GreeterInterface::view().layer(tower::limit::ConcurrencyLimitLayer::new(1)),
        )
        .unwrap();
    let client: GreeterClient = exposed.client("one-at-a-time").unwrap();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.gated().await })
        })
        .collect();
    // Let every call reach the limit, then open the gate for all four.
    tokio::time::sleep(Duration::from_millis(50)).await;
    exposed.object().gate.add_permits(4);
    for call in calls {
        assert_eq!(
            within(call).await.unwrap().unwrap(),
            1,
            "calls never overlapped"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn towers_load_shed_reports_overloaded() {
    let _serial = serial().await;
    let node = Node::new();
    let exposed = node
        .expose(Greetings::default())
        .with_view(
            "shed",
            GreeterInterface::view()
                .layer(tower::load_shed::LoadShedLayer::new())
                .layer(tower::limit::ConcurrencyLimitLayer::new(1)),
        )
        .unwrap();
    let client: GreeterClient = exposed.client("shed").unwrap();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.gated().await }
    });
    within(async {
        while exposed.object().inside.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let e = client.greet("late".into()).await.unwrap_err();
    assert!(e.is_overloaded(), "{e}");
    exposed.object().gate.add_permits(1);
    assert_eq!(within(first).await.unwrap().unwrap(), 1);
    assert_eq!(client.greet("now".into()).await.unwrap(), "hello now");
}

#[test]
fn filters_are_plain_tower_services() {
    let _serial = SERIAL.blocking_lock();
    // A view's stack is an ordinary ServiceBuilder stack: the logging
    // filter composes with anything tower offers and with closures.
    let svc = ServiceBuilder::new()
        .layer(LoggingLayer::new())
        .service_fn(|_m: Message| async { Ok::<_, Error>(Value::unit()) });
    let _: &tether::filters::logging::LoggingService<_> = &svc;
}

fn admin() -> Context {
    Context::new().with_principal(Principal::new("root", ["admin"]))
}

fn guarded() -> tether::filters::AccessLayer {
    use tether::filters::access::{AccessLayer, Who};
    AccessLayer::allow_role("admin")
        .allow_methods(Who::Anyone, [GreeterInterface::GREET])
        .allow_methods(Who::principal("carol"), [GreeterInterface::STRICT])
}

#[tokio::test(flavor = "current_thread")]
async fn access_rules_admit_by_method_role_and_principal() {
    let _serial = serial().await;
    let (out, _guard) = capture(tracing::Level::WARN);
    let node = Node::new();
    let exposed = node
        .expose(Greetings::default())
        .with_view("guarded", GreeterInterface::view().layer(guarded()))
        .unwrap();
    let client: GreeterClient = exposed.client("guarded").unwrap();

    assert_eq!(client.greet("anon".into()).await.unwrap(), "hello anon");
    let e = client.strict("x".into()).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    assert_eq!(
        e.to_string(),
        "access denied: an anonymous caller may not call Greeter::strict through view \"guarded\""
    );
    let carol = Context::new().with_principal(Principal::new("carol", ["user"]));
    assert_eq!(
        carol
            .scope(async { client.strict("c".into()).await })
            .await
            .unwrap(),
        "c"
    );
    let dave = Context::new().with_principal(Principal::new("dave", ["user"]));
    let e = dave
        .scope(async { client.strict("d".into()).await })
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("principal \"dave\" may not call"),
        "{e}"
    );

    // A refused call has no effect: it never reached the object.
    let e = client.gated().await.unwrap_err();
    assert!(e.is_access_denied());
    assert_eq!(exposed.object().inside.load(Ordering::SeqCst), 0);
    let text = out.text();
    assert_eq!(text.matches("access denied").count(), 3, "{text}");
    assert!(text.contains("method=Greeter::gated"), "{text}");

    // Admins may call anything.
    exposed.object().gate.add_permits(1);
    assert_eq!(
        admin().scope(async { client.gated().await }).await.unwrap(),
        1
    );
}

#[tokio::test(flavor = "current_thread")]
async fn access_outside_a_mutex_keeps_refused_callers_out_of_the_queue() {
    let _serial = serial().await;
    use tether::filters::MutexLayer;
    let node = Node::new();
    let exposed = node
        .expose(Greetings::default())
        .with_view(
            "v",
            GreeterInterface::view()
                .layer(guarded())
                .layer(MutexLayer::exclusive()),
        )
        .unwrap();
    let client: GreeterClient = exposed.client("v").unwrap();
    let holder = tokio::spawn({
        let client = client.clone();
        admin().scope(async move { client.gated().await })
    });
    within(async {
        while exposed.object().inside.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // The lock is held; a refused caller is answered at once, not queued.
    let e = within(client.strict("x".into())).await.unwrap_err();
    assert!(e.is_access_denied(), "{e}");
    exposed.object().gate.add_permits(1);
    assert_eq!(within(holder).await.unwrap().unwrap(), 1);
}

/// Another interface, whose methods an access rule can name by mistake.
#[tether::interface]
pub trait Other {
    async fn greet(&self, name: String) -> String;
}

#[tokio::test(flavor = "current_thread")]
async fn an_access_rule_for_another_interface_fails_every_call_plainly() {
    use tether::filters::access::{AccessLayer, Who};
    let node = Node::new();
    // `OtherInterface::GREET` has the same selector as `Greeter::greet`:
    // without the interface check the rule would let it through by
    // accident, and a rule for a method Greeter lacks would grant nothing.
    let exposed = node
        .expose(Greetings::default())
        .with_view(
            "v",
            GreeterInterface::view()
                .layer(AccessLayer::deny_all().allow_methods(Who::Anyone, [OtherInterface::GREET])),
        )
        .unwrap();
    let client: GreeterClient = exposed.client("v").unwrap();
    for _ in 0..2 {
        let e = client.greet("x".into()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
        assert!(
            e.message().contains("offers Greeter") && e.message().contains("methods of Other"),
            "{e}"
        );
    }
}
