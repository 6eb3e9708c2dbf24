//! The session's receive path: after a Hello, any sequence of frames (the
//! input split at 0xff 0xfe 0xfd markers) never panics, and every frame the
//! session sends decodes.
#![no_main]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tether_transports::frame::{Frame, Hello, Limits, VERSION};
use tether_transports::session::{Session, SessionConfig};

fn hello() -> Bytes {
    let mut out = BytesMut::new();
    Frame::Hello(Hello {
        version: VERSION,
        node: 2,
        bootstrap: Some(1),
        credentials: None,
        max_frame: 1 << 20,
        max_in_flight: 8,
    })
    .encode(&mut out)
    .expect("a Hello encodes");
    out.freeze()
}

fn check_sent(session: &mut Session) {
    while let Some(frame) = session.poll_transmit() {
        Frame::decode(frame, &Limits::default()).expect("the session sends only frames that decode");
    }
    while session.poll_event().is_some() {}
    drop(session.take_released());
    drop(session.take_exported());
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut session = Session::new(SessionConfig::default(), None, start);
    session.receive(hello(), start);
    check_sent(&mut session);
    let mut now = start;
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        now += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)) * 100);
        session.receive(Bytes::copy_from_slice(chunk), now);
        if i % 4 == 3 {
            session.handle_timeout(now);
        }
        check_sent(&mut session);
        if session.is_closed() {
            break;
        }
    }
});
