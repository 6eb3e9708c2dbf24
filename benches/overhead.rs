//! What Tether's semantics cost on a local call, against a direct call and
//! a plain tower stack, all in one run on one current-thread runtime.
//!
//! `cargo bench -p tether-benches --bench overhead`
#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use tether::abstractions::{FutureCall, Multicast, Oneway, Policy};
use tether::filters::access::{AccessLayer, Who};
use tether::filters::transaction::TxCell;
use tether::filters::{LoggingLayer, MutexLayer, TransactionLayer};
use tether::{Client, Node};
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tether::interface]
pub trait Calc {
    async fn add(&self, a: u64, b: u64) -> u64;
    async fn tick(&self, n: u64);
    /// Yields once inside the object, so that concurrent callers overlap.
    async fn work(&self) -> u64;
    /// Adds one to a transactional cell.
    async fn bump(&self) -> u64;
}

#[derive(Debug)]
pub struct Adder(AtomicU64, TxCell<u64>);

impl Default for Adder {
    fn default() -> Self {
        Adder(AtomicU64::new(0), TxCell::new(0))
    }
}

impl Calc for Adder {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a.wrapping_add(b)
    }
    async fn tick(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    async fn work(&self) -> u64 {
        tokio::task::yield_now().await;
        self.0.fetch_add(1, Ordering::Relaxed)
    }
    async fn bump(&self) -> u64 {
        self.1
            .update(|v| {
                *v += 1;
                *v
            })
            .await
            .unwrap_or_default()
    }
}

#[path = "support/pass.rs"]
mod pass;
use pass::PassLayer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(
    node: &Node,
    view: tether::View<
        CalcInterface,
        impl tether::ext::Filters<CalcInterface, tether::Object<Adder>>,
    >,
) -> CalcClient {
    node.expose(Adder::default())
        .with_view("v", view)
        .unwrap()
        .client("v")
        .unwrap()
}

/// The object's method as a plain tower service: what a hand-written
/// tower service around the object does.
fn adder_service(
    object: Arc<Adder>,
) -> impl Service<(u64, u64), Response = u64, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |(a, b): (u64, u64)| {
        let object = object.clone();
        async move { Ok::<_, Infallible>(object.add(a, b).await) }
    })
}

/// Times a tower service the way a caller that owns it calls it: ready,
/// then call, no clone per call.
fn bench_tower(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    svc: BoxCloneService<(u64, u64), u64, Infallible>,
) {
    g.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let mut svc = svc.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let ready = svc.ready().await.unwrap();
                    black_box(ready.call((black_box(1), black_box(2))).await.unwrap());
                }
                start.elapsed()
            }
        })
    });
}

fn local_call(c: &mut Criterion) {
    let rt = runtime();
    let node = Node::new();
    let mut g = c.benchmark_group("local_call");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));

    let object = Arc::new(Adder::default());
    g.bench_function("direct", |b| {
        b.to_async(&rt).iter(|| {
            let o = &object;
            async move { o.add(black_box(1), black_box(2)).await }
        })
    });

    let svc = BoxCloneService::new(adder_service(object.clone()));
    bench_tower(&mut g, &rt, "tower_box_clone_service", svc.clone());
    // A service shared between tasks must be cloned per call, as a
    // Tether reference is shared: the like-for-like peer.
    g.bench_function("tower_box_clone_service_shared", |b| {
        b.to_async(&rt).iter(|| {
            let svc = svc.clone();
            async move { svc.oneshot((black_box(1), black_box(2))).await.unwrap() }
        })
    });

    let five = BoxCloneService::new(
        ServiceBuilder::new()
            .layer(PassLayer)
            .layer(PassLayer)
            .layer(PassLayer)
            .layer(PassLayer)
            .layer(PassLayer)
            .service(adder_service(object.clone())),
    );
    bench_tower(&mut g, &rt, "tower_stack_5_pass", five);

    let cases: Vec<(&str, CalcClient)> = vec![
        ("tether_sync", client(&node, CalcInterface::view())),
        (
            "tether_sync_pass_1",
            client(&node, CalcInterface::view().layer(PassLayer)),
        ),
        (
            "tether_sync_pass_3",
            client(
                &node,
                CalcInterface::view()
                    .layer(PassLayer)
                    .layer(PassLayer)
                    .layer(PassLayer),
            ),
        ),
        (
            "tether_sync_pass_5",
            client(
                &node,
                CalcInterface::view()
                    .layer(PassLayer)
                    .layer(PassLayer)
                    .layer(PassLayer)
                    .layer(PassLayer)
                    .layer(PassLayer),
            ),
        ),
        (
            "tether_logging_no_subscriber",
            client(&node, CalcInterface::view().layer(LoggingLayer::new())),
        ),
        (
            "tether_mutex_uncontended",
            client(&node, CalcInterface::view().layer(MutexLayer::exclusive())),
        ),
        (
            "tether_access_allowed",
            client(
                &node,
                CalcInterface::view().layer(AccessLayer::deny_all().allow(Who::Anyone)),
            ),
        ),
        (
            "tether_future",
            client(&node, CalcInterface::view().abstraction(FutureCall)),
        ),
    ];
    for (name, client) in &cases {
        g.bench_function(*name, |b| {
            b.to_async(&rt)
                .iter(|| async { client.add(black_box(1), black_box(2)).await.unwrap() })
        });
    }

    // A transaction that touches one cell, against the same call without.
    for (name, stub) in [
        (
            "tether_cell_no_transaction",
            client(&node, CalcInterface::view()),
        ),
        (
            "tether_cell_transaction",
            client(
                &node,
                CalcInterface::view().layer(TransactionLayer::create()),
            ),
        ),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { stub.bump().await.unwrap() })
        });
    }

    let logged = client(&node, CalcInterface::view().layer(LoggingLayer::new()));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("tether_logging_subscriber", |b| {
            b.to_async(&rt)
                .iter(|| async { logged.add(black_box(1), black_box(2)).await.unwrap() })
        });
    });

    let oneway = client(
        &node,
        CalcInterface::view().method(CalcInterface::TICK, Oneway),
    );
    g.bench_function("tether_oneway_and_run", |b| {
        // The oneway call returns at once; yielding lets its task run, so
        // this is the whole cost of a oneway call, not just its dispatch.
        b.to_async(&rt).iter(|| async {
            oneway.tick(black_box(1)).await.unwrap();
            tokio::task::yield_now().await;
        })
    });

    let members: Vec<_> = (0..3)
        .map(|_| client(&node, CalcInterface::view()).reference().clone())
        .collect();
    let group: CalcClient = Multicast::new(members, Policy::All)
        .unwrap()
        .client()
        .unwrap();
    g.bench_function("tether_multicast_3", |b| {
        b.to_async(&rt)
            .iter(|| async { group.add(black_box(1), black_box(2)).await.unwrap() })
    });
    g.finish();
}

/// The mutex under contention: `callers` tasks on a two-worker runtime call
/// a method that yields once inside the object; the time is per call.
fn contention(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = Node::new();
    let mut g = c.benchmark_group("mutex_contention");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let plain = client(&node, CalcInterface::view());
    let locked = client(&node, CalcInterface::view().layer(MutexLayer::exclusive()));
    for callers in [2_u64, 8] {
        for (name, stub) in [("no_filter", &plain), ("mutex", &locked)] {
            g.bench_function(format!("{name}_{callers}_callers"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let stub = stub.clone();
                    async move {
                        let per_caller = iters.div_ceil(callers);
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..callers)
                            .map(|_| {
                                let stub = stub.clone();
                                tokio::spawn(async move {
                                    for _ in 0..per_caller {
                                        black_box(stub.work().await.unwrap());
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                        start.elapsed()
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, local_call, contention);
criterion_main!(benches);
