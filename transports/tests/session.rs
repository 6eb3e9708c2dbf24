//! The session state machine alone: two sessions, bytes handed across by
//! hand, time passed in. No sockets, no runtime.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tether::transports::frame::{CallFrame, Frame, Hello, Tag, WireContext, WireRef};
use tether::transports::session::{
    Answer, Callee, Event, Incoming, OutgoingRef, Session, SessionConfig,
};
use tether::{ErrorKind, Node, Ref};

#[tether::interface]
pub trait Thing {
    async fn poke(&self) -> u64;
}

struct T;
impl Thing for T {
    async fn poke(&self) -> u64 {
        1
    }
}

fn thing(node: &Node) -> Ref {
    node.expose(T)
        .with_view("v", ThingInterface::view())
        .unwrap()
        .view("v")
        .unwrap()
}

/// Moves every frame `from` has to send into `to`.
fn pump(from: &mut Session, to: &mut Session) {
    while let Some(frame) = from.poll_transmit() {
        to.receive(frame, Instant::now());
    }
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn config(node: u64) -> SessionConfig {
    SessionConfig {
        node,
        ..SessionConfig::default()
    }
}

/// Two open sessions; `a` offers `bootstrap` (its key is returned).
fn open(bootstrap: Ref, now: Instant) -> (Session, Session, u32) {
    let mut a = Session::new(config(1), Some(bootstrap), now);
    let mut b = Session::new(config(2), None, now);
    pump_at(&mut a, &mut b, now);
    pump_at(&mut b, &mut a, now);
    let key = match events(&mut b).pop() {
        Some(Event::Opened(Hello {
            bootstrap: Some(key),
            node: 1,
            ..
        })) => key,
        other => panic!("expected a Hello, got {other:?}"),
    };
    assert!(matches!(events(&mut a).pop(), Some(Event::Opened(_))));
    (a, b, key)
}

fn frame(f: Frame) -> Bytes {
    let mut buf = BytesMut::new();
    f.encode(&mut buf).unwrap();
    buf.freeze()
}

#[test]
fn a_call_and_its_answer() {
    let now = Instant::now();
    let node = Node::new();
    let (mut a, mut b, key) = open(thing(&node), now);
    let id = b
        .call(
            Callee::new(key, 7),
            WireContext::default(),
            Vec::new(),
            Bytes::from_static(b"\x01"),
            None,
        )
        .unwrap();
    assert_eq!(b.tables().questions, 1);
    pump(&mut b, &mut a);
    let call = match events(&mut a).pop() {
        Some(Event::Call(call)) => call,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (call.id, call.selector, &call.args[..]),
        (Some(id), 7, &b"\x01"[..])
    );
    assert_eq!(a.tables().answers, 1);
    a.answer(id, Ok((Vec::new(), Bytes::from_static(b"\x2a"))));
    pump(&mut a, &mut b);
    match events(&mut b).pop() {
        Some(Event::Answer(got, Answer::Value(refs, bytes))) => {
            assert_eq!((got, refs.len(), &bytes[..]), (id, 0, &b"\x2a"[..]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((a.tables().answers, b.tables().questions), (0, 0));
}

#[test]
fn keys_never_handed_out_reach_nothing() {
    let now = Instant::now();
    let node = Node::new();
    let (mut a, mut b, key) = open(thing(&node), now);
    // A guessed key.
    let id = b
        .call(
            Callee::new(key + 41, 7),
            WireContext::default(),
            Vec::new(),
            Bytes::new(),
            None,
        )
        .unwrap();
    pump(&mut b, &mut a);
    assert!(events(&mut a).is_empty(), "nothing runs");
    pump(&mut a, &mut b);
    match events(&mut b).pop() {
        Some(Event::Answer(got, Answer::Error(e))) => {
            assert_eq!((got, e.kind()), (id, ErrorKind::UnknownObject));
        }
        other => panic!("{other:?}"),
    }
    // A forged reference to one of `a`'s exports inside the arguments.
    b.call(
        Callee::new(key, 7),
        WireContext::default(),
        vec![OutgoingRef::Home(999)],
        Bytes::new(),
        None,
    )
    .unwrap();
    pump(&mut b, &mut a);
    assert!(events(&mut a).is_empty(), "nothing runs");
    pump(&mut a, &mut b);
    assert!(matches!(
        events(&mut b).pop(),
        Some(Event::Answer(_, Answer::Error(e))) if e.is_unknown_object()
    ));
    assert!(a.is_open() && b.is_open(), "the connection survives");
}

#[test]
fn references_are_counted_and_released() {
    let now = Instant::now();
    let node = Node::new();
    let (mut a, mut b, key) = open(thing(&node), now);
    let cb = thing(&node);
    // b sends its object twice; a imports it once, counting two.
    for _ in 0..2 {
        b.call(
            Callee::new(key, 7),
            WireContext::default(),
            vec![OutgoingRef::Export(cb.clone())],
            Bytes::new(),
            None,
        )
        .unwrap();
    }
    assert_eq!((b.tables().exports, b.tables().export_refs), (1, 2));
    pump(&mut b, &mut a);
    let mut generation = 0;
    let mut alive = false;
    for event in events(&mut a) {
        let Event::Call(call) = event else { continue };
        let [Incoming::Import { key, fingerprint }] = call.refs[..] else {
            panic!("{:?}", call.refs)
        };
        assert_eq!(
            fingerprint,
            <ThingInterface as tether::ext::Interface>::DESCRIPTOR.fingerprint()
        );
        generation = a.import(key, alive);
        alive = true;
    }
    assert_eq!(a.tables().imports, 1);
    // A proxy of an older generation going away gives back nothing.
    a.drop_import(1, generation + 100);
    pump(&mut a, &mut b);
    assert_eq!(b.tables().export_refs, 2);
    // The last proxy goes: both references are given back at once (b
    // exports nothing but `cb`, and keys start at 1).
    a.drop_import(1, generation);
    pump(&mut a, &mut b);
    assert_eq!(a.tables().imports, 0);
    assert_eq!((b.tables().exports, b.tables().export_refs), (0, 0));
}

#[test]
fn deadlines_expire_and_cancel() {
    let now = Instant::now();
    let node = Node::new();
    let (mut a, mut b, key) = open(thing(&node), now);
    let deadline = now + Duration::from_millis(50);
    let id = b
        .call(
            Callee::new(key, 7),
            WireContext::default(),
            Vec::new(),
            Bytes::new(),
            Some(deadline),
        )
        .unwrap();
    pump(&mut b, &mut a);
    assert!(matches!(events(&mut a)[..], [Event::Call(_)]));
    assert_eq!(a.tables().answers, 1);
    assert_eq!(b.poll_timeout(), Some(deadline));
    b.handle_timeout(now + Duration::from_millis(10));
    assert!(events(&mut b).is_empty(), "not yet");
    b.handle_timeout(deadline);
    assert!(matches!(
        events(&mut b).pop(),
        Some(Event::Answer(got, Answer::Error(e))) if got == id && e.is_deadline_exceeded()
    ));
    pump(&mut b, &mut a);
    let evs = events(&mut a);
    assert!(
        matches!(evs[..], [Event::Cancel(got)] if got == id),
        "{evs:?}"
    );
    assert_eq!(a.tables().answers, 0);
    // The late answer is dropped on both sides.
    a.answer(id, Ok((Vec::new(), Bytes::new())));
    pump(&mut a, &mut b);
    assert!(events(&mut b).is_empty());
}

#[test]
fn bad_input_closes_only_that_connection_with_a_goodbye() {
    let now = Instant::now();
    let node = Node::new();
    let (mut a, mut b, key) = open(thing(&node), now);
    let (mut c, mut d, _) = open(thing(&node), now);
    let id = b
        .call(
            Callee::new(key, 7),
            WireContext::default(),
            Vec::new(),
            Bytes::new(),
            None,
        )
        .unwrap();
    pump(&mut b, &mut a);
    events(&mut a);
    a.receive(Bytes::from_static(&[0x03, 0, 0, 0, 0xff]), now); // a truncated Call
    assert!(a.is_closed());
    let evs = events(&mut a);
    assert!(
        matches!(evs.last(), Some(Event::Closed(c)) if c.reason.contains("bad frame")),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Cancel(got) if *got == id)),
        "running calls stop"
    );
    pump(&mut a, &mut b);
    let evs = events(&mut b);
    assert!(evs.iter().any(|e| matches!(e, Event::Answer(got, Answer::Error(e)) if *got == id && e.is_disconnected())), "{evs:?}");
    assert!(b.is_closed() && a.tables().exports == 0);
    // The other connection is untouched.
    assert!(c.is_open() && d.is_open());
    d.call(
        Callee::new(1, 7),
        WireContext::default(),
        Vec::new(),
        Bytes::new(),
        None,
    )
    .unwrap();
    pump(&mut d, &mut c);
    assert!(matches!(events(&mut c).pop(), Some(Event::Call(_))));
}

#[test]
fn the_first_frame_must_be_a_hello_of_this_version() {
    let now = Instant::now();
    let mut a = Session::new(config(1), None, now);
    a.receive(
        frame(Frame::Call(CallFrame {
            id: 1,
            key: 1,
            selector: 1,
            version: 0,
            context: WireContext::default(),
            refs: vec![WireRef::Receiver { key: 1 }],
            args: Bytes::new(),
        })),
        now,
    );
    assert!(a.is_closed());
    let mut b = Session::new(config(1), None, now);
    b.receive(
        frame(Frame::Hello(Hello {
            version: 99,
            node: 2,
            bootstrap: None,
            credentials: None,
            max_frame: 1024,
            max_in_flight: 1,
        })),
        now,
    );
    assert!(
        matches!(events(&mut b).pop(), Some(Event::Closed(c)) if c.reason.contains("version 99"))
    );
    // A silent peer is dropped after the hello timeout.
    let mut c = Session::new(config(1), None, now);
    c.handle_timeout(now + Duration::from_secs(11));
    assert!(c.is_closed());
}

#[test]
fn a_peer_that_stops_reading_is_cut_off() {
    let now = Instant::now();
    let node = Node::new();
    let small = SessionConfig {
        max_unsent: 4096,
        ..config(2)
    };
    let mut a = Session::new(config(1), Some(thing(&node)), now);
    let mut b = Session::new(small, None, now);
    pump(&mut a, &mut b);
    events(&mut b);
    let mut failed = None;
    for _ in 0..100 {
        if let Err(e) = b.call(
            Callee::new(1, 7),
            WireContext::default(),
            Vec::new(),
            Bytes::from(vec![0; 100]),
            None,
        ) {
            failed = Some(e);
            break;
        }
    }
    assert!(failed.unwrap().is_disconnected());
    assert!(
        matches!(events(&mut b).pop(), Some(Event::Closed(c)) if c.reason.contains("stopped reading"))
    );
}

/// Moves every frame `from` has to send into `to`, received at `at`.
fn pump_at(from: &mut Session, to: &mut Session, at: Instant) {
    while let Some(frame) = from.poll_transmit() {
        to.receive(frame, at);
    }
}

#[test]
fn a_silent_peer_is_pinged_then_dropped_and_pending_calls_fail() {
    let now = Instant::now();
    let node = Node::new();
    let (mut a, mut b, key) = open(thing(&node), now);
    let id = b
        .call(
            Callee::new(key, 7),
            WireContext::default(),
            Vec::new(),
            Bytes::new(),
            None,
        )
        .unwrap();
    pump_at(&mut b, &mut a, now);
    events(&mut a);
    // `a` now stops: it reads what it is sent but never answers.
    let keepalive = SessionConfig::default().keepalive;
    let idle = SessionConfig::default().idle_timeout;
    assert_eq!(b.poll_timeout(), Some(now + keepalive));
    b.handle_timeout(now + keepalive);
    let Some(ping) = b.poll_transmit() else {
        panic!("a Ping after the keepalive interval")
    };
    assert_eq!(&ping[..4], &Tag::PING.0.to_le_bytes());
    assert_eq!(b.poll_timeout(), Some(now + idle), "then the idle timeout");
    b.handle_timeout(now + idle - Duration::from_millis(1));
    assert!(b.is_open(), "not yet");
    b.handle_timeout(now + idle);
    assert!(b.is_closed());
    let evs = events(&mut b);
    assert!(
        matches!(&evs[0], Event::Answer(got, Answer::Error(e)) if *got == id && e.is_disconnected()),
        "{evs:?}"
    );
    assert!(
        matches!(evs.last(), Some(Event::Closed(c)) if c.reason.contains("no sign of life")),
        "{evs:?}"
    );
}

#[test]
fn a_peer_that_answers_pings_stays() {
    let now = Instant::now();
    let node = Node::new();
    let (mut a, mut b, _) = open(thing(&node), now);
    let keepalive = SessionConfig::default().keepalive;
    let mut t = now;
    // Four idle timeouts pass; the peer answers every Ping.
    for _ in 0..12 {
        t += keepalive;
        b.handle_timeout(t);
        pump_at(&mut b, &mut a, t);
        a.handle_timeout(t);
        pump_at(&mut a, &mut b, t);
        assert!(a.is_open() && b.is_open());
    }
    assert!(events(&mut b).is_empty());
}

/// Sends a pipelined call from `b`: to export `key` when `on` is `None`,
/// else to reference 0 of the answer to `on`.
fn pipelined(b: &mut Session, key: u32, on: Option<u64>, keep: bool, fingerprint: u64) -> u64 {
    use tether::transports::frame::PipelineTarget;
    let target = match on {
        None => PipelineTarget::Export { key },
        Some(question) => PipelineTarget::Answer {
            question,
            index: 0,
            fingerprint,
        },
    };
    b.pipeline(
        target,
        keep,
        (7, 0),
        WireContext::default(),
        Vec::new(),
        Bytes::new(),
        None,
    )
    .unwrap()
}

fn calls(s: &mut Session) -> Vec<tether::transports::session::IncomingCall> {
    events(s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Call(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn errors(s: &mut Session) -> Vec<(u64, ErrorKind, String)> {
    events(s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Answer(id, Answer::Error(e)) => Some((id, e.kind(), e.message().to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn pipelined_calls_are_held_in_order_and_the_answer_goes_after_them() {
    let now = Instant::now();
    let node = Node::new();
    let target = thing(&node);
    let fp = target.interface().fingerprint();
    let (mut a, mut b, key) = open(target.clone(), now);

    let first = pipelined(&mut b, key, None, true, fp);
    let held: Vec<u64> = (0..3)
        .map(|_| pipelined(&mut b, key, Some(first), false, fp))
        .collect();
    pump(&mut b, &mut a);
    let running = calls(&mut a);
    assert_eq!(running.len(), 1, "only the first call runs");
    assert!(running[0].keep && running[0].id == Some(first));
    let t = a.tables();
    assert_eq!((t.promises, t.held, t.answers), (1, 3, 4));

    // The answer is known: the held calls come out in order, to the
    // reference it holds, before the answer is sent.
    let out = a.drain(first, Some(Ok(vec![(target.clone(), fp)])));
    assert_eq!(out.iter().map(|c| c.id.unwrap()).collect::<Vec<_>>(), held);
    assert!(out.iter().all(|c| c.target == target && !c.keep));
    // One arriving while they are delivered queues behind them.
    let late = pipelined(&mut b, key, Some(first), false, fp);
    pump(&mut b, &mut a);
    assert!(
        calls(&mut a).is_empty(),
        "held while the others are delivered"
    );
    let out = a.drain(first, None);
    assert_eq!(
        out.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![Some(late)]
    );
    assert!(a.drain(first, None).is_empty());
    a.answer(first, Ok((Vec::new(), Bytes::new())));
    // From now on, calls to the answer go straight through.
    let after = pipelined(&mut b, key, Some(first), false, fp);
    pump(&mut b, &mut a);
    assert_eq!(
        calls(&mut a).iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![Some(after)]
    );
    assert_eq!(a.tables().promises, 1, "kept until Finish");
    b.finish(first);
    pump(&mut b, &mut a);
    assert_eq!((a.tables().promises, a.tables().held), (0, 0));
    // A finished question names nothing.
    pipelined(&mut b, key, Some(first), false, fp);
    pump(&mut b, &mut a);
    pump(&mut a, &mut b);
    let errs = errors(&mut b);
    assert!(
        errs.iter()
            .any(|(_, kind, m)| *kind == ErrorKind::UnknownObject && m.contains("keeps no answer")),
        "{errs:?}"
    );
}

#[test]
fn a_failed_answer_fails_the_chain_and_a_wrong_reference_is_refused() {
    let now = Instant::now();
    let node = Node::new();
    let target = thing(&node);
    let fp = target.interface().fingerprint();
    let (mut a, mut b, key) = open(target.clone(), now);

    let first = pipelined(&mut b, key, None, true, fp);
    let second = pipelined(&mut b, key, Some(first), true, fp);
    let third = pipelined(&mut b, key, Some(second), false, fp);
    pump(&mut b, &mut a);
    let _ = calls(&mut a);
    assert!(
        a.drain(
            first,
            Some(Err(tether::Error::new(ErrorKind::AccessDenied, "no entry")))
        )
        .is_empty()
    );
    pump(&mut a, &mut b);
    let errs = errors(&mut b);
    assert_eq!(errs.len(), 2, "{errs:?}");
    for (id, kind, message) in &errs {
        assert!([second, third].contains(id));
        assert_eq!(*kind, ErrorKind::AccessDenied, "the original kind");
        assert_eq!(message, "the promised answer failed: no entry");
    }

    // A reference of another interface than the caller expects.
    let kept = pipelined(&mut b, key, None, true, fp);
    let wrong = pipelined(&mut b, key, Some(kept), false, fp ^ 1);
    pump(&mut b, &mut a);
    let _ = calls(&mut a);
    assert!(a.drain(kept, Some(Ok(vec![(target, fp)]))).is_empty());
    pump(&mut a, &mut b);
    let errs = errors(&mut b);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].0, errs[0].1),
        (wrong, ErrorKind::Incompatible),
        "{errs:?}"
    );
    let t = a.tables();
    assert_eq!(
        (t.held, t.answers),
        (0, 2),
        "only the two kept calls' answers are owed"
    );
}

#[test]
fn kept_answers_are_bounded_and_finish_stops_what_nobody_awaits() {
    let now = Instant::now();
    let node = Node::new();
    let target = thing(&node);
    let fp = target.interface().fingerprint();
    let mut a = Session::new(
        SessionConfig {
            max_promises: 1,
            ..config(1)
        },
        Some(target),
        now,
    );
    let mut b = Session::new(config(2), None, now);
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    let key = match events(&mut b).pop() {
        Some(Event::Opened(Hello {
            bootstrap: Some(key),
            ..
        })) => key,
        other => panic!("{other:?}"),
    };
    let _ = events(&mut a);

    let first = pipelined(&mut b, key, None, true, fp);
    let second = pipelined(&mut b, key, None, true, fp);
    pump(&mut b, &mut a);
    assert_eq!(calls(&mut a).len(), 1);
    pump(&mut a, &mut b);
    let errs = errors(&mut b);
    assert_eq!(
        (errs[0].0, errs[0].1),
        (second, ErrorKind::Overloaded),
        "{errs:?}"
    );

    // A held call cancelled leaves its queue; the Finish of a running kept
    // call with nothing held stops it.
    let held = pipelined(&mut b, key, Some(first), false, fp);
    pump(&mut b, &mut a);
    assert_eq!(a.tables().held, 1);
    b.cancel(held);
    pump(&mut b, &mut a);
    assert_eq!(a.tables().held, 0);
    b.finish(first);
    pump(&mut b, &mut a);
    let cancelled: Vec<u64> = events(&mut a)
        .into_iter()
        .filter_map(|e| match e {
            Event::Cancel(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, vec![first]);
    let t = a.tables();
    assert_eq!((t.promises, t.held, t.answers), (0, 0, 0));
    // A Finish of a question never kept is ignored.
    b.finish(12345);
    pump(&mut b, &mut a);
    assert!(!a.is_closed());
}
