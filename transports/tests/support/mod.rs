//! A peer driven by hand over TCP: a sans-IO session and a framed socket,
//! for tests that send what a well-behaved node would not.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tether::transports::frame::{Hello, WireContext};
use tether::transports::session::{
    Answer, Callee, Event, Incoming, OutgoingRef, Session, SessionConfig,
};
use tether::{Selector, Value};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// A peer that speaks the protocol by hand: a session over a TCP stream.
pub struct Raw {
    pub session: Session,
    pub io: Framed<TcpStream, LengthDelimitedCodec>,
    pub bootstrap: u32,
    /// The tag of every frame received, in order.
    pub seen: Vec<u32>,
}

impl Raw {
    /// Connects to a node at `addr` and waits for its Hello.
    pub async fn connect(addr: std::net::SocketAddr) -> Raw {
        let codec = LengthDelimitedCodec::builder()
            .little_endian()
            .length_field_length(4)
            .max_frame_length(64 * 1024 * 1024)
            .new_codec();
        let io = Framed::new(TcpStream::connect(addr).await.unwrap(), codec);
        let config = SessionConfig {
            node: 0xbad,
            ..SessionConfig::default()
        };
        let mut raw = Raw {
            session: Session::new(config, None, std::time::Instant::now()),
            io,
            bootstrap: 0,
            seen: Vec::new(),
        };
        match raw.next_event().await {
            Event::Opened(Hello {
                bootstrap: Some(key),
                ..
            }) => raw.bootstrap = key,
            other => panic!("{other:?}"),
        }
        raw
    }

    /// Sends what the session has to send.
    pub async fn flush(&mut self) {
        self.try_flush().await.unwrap();
    }

    /// Sends what the session has to send, or says why it cannot.
    pub async fn try_flush(&mut self) -> std::io::Result<()> {
        while let Some(frame) = self.session.poll_transmit() {
            self.io.send(frame).await?;
        }
        Ok(())
    }

    /// The next event, sending and receiving as needed.
    pub async fn next_event(&mut self) -> Event {
        loop {
            self.flush().await;
            if let Some(event) = self.session.poll_event() {
                return event;
            }
            let frame = self.io.next().await.unwrap().unwrap();
            if let Some(tag) = frame.first_chunk::<4>() {
                self.seen.push(u32::from_le_bytes(*tag));
            }
            self.session
                .receive(frame.freeze(), std::time::Instant::now());
        }
    }

    /// Calls `method` on export `key` with `args`, and waits for the answer.
    pub async fn call(&mut self, key: u32, method: &'static str, args: Value) -> Answer {
        let id = self.send(key, method, args, WireContext::default(), Vec::new());
        self.answer(id).await
    }

    /// Sends a call of `method` on export `key` with `args`, `context`
    /// and `refs` beside the arguments (which must index them); returns
    /// its id.
    pub fn send(
        &mut self,
        key: u32,
        method: &'static str,
        args: Value,
        context: WireContext,
        refs: Vec<OutgoingRef>,
    ) -> u64 {
        let mut bytes = Vec::new();
        args.encode(&mut bytes).unwrap();
        let selector = Selector::new(method).id();
        self.session
            .call(
                Callee::new(key, selector),
                context,
                refs,
                Bytes::from(bytes),
                None,
            )
            .unwrap()
    }

    /// The key of the peer's export published under `name`, looked up
    /// through its registry.
    pub async fn lookup(&mut self, name: &str) -> Option<u32> {
        let args = Value::serializable((name.to_string(),));
        match self.call(self.bootstrap, "lookup", args).await {
            Answer::Value(refs, _) => match refs[..] {
                [Incoming::Import { key, .. }] => Some(key),
                _ => None,
            },
            _ => None,
        }
    }

    /// Pings export `key` until the peer has given back every reference
    /// this side exported (a Release arrives between two answers), at most
    /// 100 times.
    pub async fn until_given_back(&mut self, key: u32) {
        for _ in 0..100 {
            if self.session.tables().exports == 0 {
                return;
            }
            let id = self.send(
                key,
                "ping",
                Value::serializable(()),
                WireContext::default(),
                Vec::new(),
            );
            self.answer(id).await;
        }
    }

    /// Waits for the answer to question `id`.
    pub async fn answer(&mut self, id: u64) -> Answer {
        loop {
            if let Event::Answer(got, answer) = self.next_event().await {
                if got == id {
                    return answer;
                }
            }
        }
    }
}

/// Runs `f` with a bound, so that a hang fails the test instead of CI.
pub async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), f)
        .await
        .expect("the test took more than 30 s")
}

/// Polls `cond` every 10 ms, up to 5 s; fails the test if it never holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}
