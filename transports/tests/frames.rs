//! The frame codec: round trips, the exact layout, and bad input.
#![allow(missing_docs, clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tether_semantics::{AbstractionKind, ErrorKind};
use tether_transports::frame::*;

fn encode(frame: &Frame) -> Bytes {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf).unwrap();
    buf.freeze()
}

fn round_trip(frame: Frame) {
    let bytes = encode(&frame);
    assert_eq!(&bytes[..4], &frame.tag().0.to_le_bytes(), "tag first");
    assert_eq!(Frame::decode(bytes, &Limits::default()).unwrap(), frame);
}

fn context() -> WireContext {
    WireContext {
        chain: 0x0102_0304_0506_0708,
        transaction: Some(42),
        deadline_ms: Some(1500),
        trace: Some(u128::MAX),
        lineage: vec![7, u64::MAX],
    }
}

#[test]
fn every_frame_round_trips() {
    round_trip(Frame::Hello(Hello {
        version: VERSION,
        node: u64::MAX,
        bootstrap: Some(1),
        credentials: Some(Credentials {
            principal: "alice".into(),
            secret: b"s3cret".to_vec(),
        }),
        max_frame: 1 << 20,
        max_in_flight: 64,
    }));
    round_trip(Frame::Goodbye(Goodbye {
        reason: "shutting down".into(),
    }));
    round_trip(Frame::Call(CallFrame {
        id: 1,
        key: 2,
        selector: 0xdead_beef,
        version: 3,
        context: context(),
        refs: Vec::new(),
        args: Bytes::from_static(b"\x01\x02"),
    }));
    round_trip(Frame::Call(CallFrame {
        id: 0,
        key: 0,
        selector: 0,
        version: 0,
        context: WireContext::default(),
        refs: Vec::new(),
        args: Bytes::new(),
    }));
    round_trip(Frame::Oneway(OnewayFrame {
        key: 9,
        selector: 3,
        version: u32::MAX,
        context: context(),
        refs: Vec::new(),
        args: Bytes::from_static(b"x"),
    }));
    round_trip(Frame::Cancel(Cancel { id: u64::MAX }));
    round_trip(Frame::Return(Return {
        id: 5,
        outcome: Outcome::Ok(Vec::new(), Bytes::from_static(b"\x2a")),
    }));
    round_trip(Frame::Return(Return {
        id: 6,
        outcome: Outcome::Err(WireError {
            kind: error_code(ErrorKind::Failed),
            message: "no".into(),
            callee: Some(vec![1, 2]),
        }),
    }));
    round_trip(Frame::Release(Release::one(4, 2)));
    round_trip(Frame::Release(Release {
        entries: vec![
            Released { key: 1, count: 1 },
            Released {
                key: u32::MAX,
                count: 300,
            },
        ],
    }));
    round_trip(Frame::Describe(Describe {
        id: 3,
        keys: vec![4, 5],
    }));
    round_trip(Frame::Description(Description {
        id: 3,
        views: vec![
            Some(WireView {
                interface: "Account".into(),
                fingerprint: 0xfeed_face_cafe_beef,
                view: "teller".into(),
                version: 2,
                methods: vec![
                    WireMethod {
                        selector: 7,
                        name: "note".into(),
                        kind: abstraction_code(AbstractionKind::Oneway),
                        types: None,
                    },
                    WireMethod {
                        selector: 8,
                        name: "withdraw".into(),
                        kind: abstraction_code(AbstractionKind::Sync),
                        types: Some(WireTypes {
                            params: vec![("cents".into(), vec![0x04])],
                            result: vec![0x04],
                            error: Some(vec![0x0e]),
                        }),
                    },
                ],
            }),
            None,
        ],
    }));
    round_trip(Frame::Description(Description {
        id: 4,
        views: vec![None],
    }));
    round_trip(Frame::Revised(Revised { key: 4, version: 9 }));
    round_trip(Frame::Ping(Ping { nonce: u64::MAX }));
    round_trip(Frame::Pong(Pong { nonce: 1 }));
    round_trip(Frame::Extension {
        tag: Tag(0x8000_0001),
        body: Bytes::from_static(b"relay"),
    });
}

#[test]
fn a_call_has_the_layout_protocol_md_draws() {
    let call = Frame::Call(CallFrame {
        id: 300,
        key: 1,
        selector: 0x1122_3344,
        version: 5,
        context: WireContext {
            chain: 1,
            transaction: None,
            deadline_ms: Some(2),
            trace: None,
            lineage: vec![0x0102_0304_0506_0708],
        },
        refs: Vec::new(),
        args: Bytes::from_static(&[0xaa, 0xbb]),
    });
    let expected: &[u8] = &[
        0x03, 0x00, 0x00, 0x00, // tag 3: call
        0xac, 0x02, // id 300 as a varint
        0x01, // key 1
        0x44, 0x33, 0x22, 0x11, // selector, 4 bytes little endian
        0x05, // the view's version the caller went by
        0x01, 0, 0, 0, 0, 0, 0, 0,    // chain, 8 bytes little endian
        0x00, // no transaction
        0x01, 0x02, // deadline: some, 2 ms
        0x00, // no trace
        0x01, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // lineage: one activation
        0x00, // no references
        0xaa, 0xbb, // the arguments: the rest of the frame
    ];
    assert_eq!(&encode(&call)[..], expected);
    let ok = Frame::Return(Return {
        id: 300,
        outcome: Outcome::Ok(Vec::new(), Bytes::from_static(&[0x2a])),
    });
    assert_eq!(
        &encode(&ok)[..],
        &[0x06, 0, 0, 0, 0xac, 0x02, 0x00, 0x00, 0x2a],
        "tag, id, ok, no references, the value"
    );
}

#[test]
fn pipelining_frames_have_the_layout_protocol_md_draws() {
    let first = Frame::Pipeline(PipelineFrame {
        id: 7,
        keep: true,
        target: PipelineTarget::Export { key: 1 },
        selector: 0x1122_3344,
        version: 0,
        context: WireContext::default(),
        refs: Vec::new(),
        args: Bytes::from_static(&[0xaa]),
    });
    let expected: &[u8] = &[
        0x0d, 0x00, 0x00, 0x00, // tag 13: pipeline
        0x07, // id 7
        0x01, // keep: hold the answer for pipelining
        0x00, 0x01, // target: export 1
        0x44, 0x33, 0x22, 0x11, // selector
        0x00, // no description
        0, 0, 0, 0, 0, 0, 0, 0, // chain 0
        0x00, 0x00, 0x00, 0x00, // no transaction, deadline, trace; empty lineage
        0x00, // no references
        0xaa, // the arguments
    ];
    assert_eq!(&encode(&first)[..], expected);
    let second = Frame::Pipeline(PipelineFrame {
        id: 8,
        keep: false,
        target: PipelineTarget::Answer {
            question: 7,
            index: 0,
            fingerprint: 0x0102_0304_0506_0708,
        },
        selector: 0x1122_3344,
        version: 0,
        context: WireContext::default(),
        refs: Vec::new(),
        args: Bytes::new(),
    });
    let expected: &[u8] = &[
        0x0d, 0x00, 0x00, 0x00, // tag 13
        0x08, // id 8
        0x00, // keep: no
        0x01, 0x07, 0x00, // target: the answer to call 7, reference 0
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // its fingerprint
        0x44, 0x33, 0x22, 0x11, // selector
        0x00, // no description
        0, 0, 0, 0, 0, 0, 0, 0, // chain 0
        0x00, 0x00, 0x00, 0x00, // no transaction, deadline, trace; empty lineage
        0x00, // no references, and no arguments
    ];
    assert_eq!(&encode(&second)[..], expected);
    let oneway = Frame::PipelineOneway(PipelineOnewayFrame {
        target: PipelineTarget::Export { key: 2 },
        selector: 0x1122_3344,
        version: 0,
        context: WireContext::default(),
        refs: Vec::new(),
        args: Bytes::new(),
    });
    assert_eq!(
        &encode(&oneway)[..],
        &[
            0x0e, 0, 0, 0, 0x00, 0x02, 0x44, 0x33, 0x22, 0x11, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0
        ],
        "tag 14, target export 2, selector, version, context, no references"
    );
    assert_eq!(
        &encode(&Frame::Finish(Finish { question: 300 }))[..],
        &[0x0f, 0, 0, 0, 0xac, 0x02],
        "tag 15, the question"
    );
    for frame in [first, second, oneway, Frame::Finish(Finish { question: 1 })] {
        round_trip(frame);
    }
    // keep is 0 or 1; a target kind other than 0 or 1 is malformed.
    let mut bad = encode(&Frame::Pipeline(PipelineFrame {
        id: 1,
        keep: true,
        target: PipelineTarget::Export { key: 1 },
        selector: 0,
        version: 0,
        context: WireContext::default(),
        refs: Vec::new(),
        args: Bytes::new(),
    }))
    .to_vec();
    bad[5] = 2;
    assert!(Frame::decode(Bytes::from(bad.clone()), &Limits::default()).is_err());
    bad[5] = 1;
    bad[6] = 2;
    assert!(Frame::decode(Bytes::from(bad), &Limits::default()).is_err());
}

#[test]
fn a_lineage_longer_than_the_limit_is_malformed() {
    let mut context = WireContext {
        lineage: vec![1; MAX_LINEAGE],
        ..WireContext::default()
    };
    let call = |context: &WireContext| {
        encode(&Frame::Oneway(OnewayFrame {
            key: 1,
            selector: 1,
            version: 0,
            context: context.clone(),
            refs: Vec::new(),
            args: Bytes::new(),
        }))
    };
    assert!(Frame::decode(call(&context), &Limits::default()).is_ok());
    // A sender that writes more than the limit: the encoder keeps the
    // innermost 32, so forge the count by hand.
    let mut bytes = call(&context).to_vec();
    let at = bytes
        .windows(1 + 8)
        .position(|w| w[0] == MAX_LINEAGE as u8 && w[1..] == 1u64.to_le_bytes())
        .unwrap();
    bytes[at] = MAX_LINEAGE as u8 + 1;
    bytes.splice(at + 1..at + 1, 1u64.to_le_bytes());
    let e = Frame::decode(Bytes::from(bytes), &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("lineage of more than 32"), "{e}");
    context.lineage.push(2);
    let Frame::Oneway(decoded) = Frame::decode(call(&context), &Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!(
        decoded.context.lineage.len(),
        MAX_LINEAGE,
        "the encoder bounds it"
    );
}

#[test]
fn arguments_are_not_copied_on_decode() {
    let call = Frame::Call(CallFrame {
        id: 1,
        key: 1,
        selector: 1,
        version: 1,
        context: WireContext::default(),
        refs: Vec::new(),
        args: Bytes::from(vec![7; 1000]),
    });
    let bytes = encode(&call);
    let Frame::Call(decoded) = Frame::decode(bytes.clone(), &Limits::default()).unwrap() else {
        panic!()
    };
    let end = bytes.as_ptr() as usize + bytes.len();
    assert_eq!(
        decoded.args.as_ptr() as usize + decoded.args.len(),
        end,
        "a slice of the frame"
    );
}

#[test]
fn bad_frames_get_clear_errors() {
    let limits = Limits::default();
    for short in [&b""[..], b"\x01", b"\x01\x00\x00"] {
        let e = Frame::decode(Bytes::copy_from_slice(short), &limits).unwrap_err();
        assert!(matches!(e, FrameError::TooShort { .. }), "{e}");
    }
    let e = Frame::decode(Bytes::from(vec![0; 65]), &Limits { max_frame: 64 }).unwrap_err();
    assert_eq!(e.to_string(), "a frame of 65 bytes exceeds the limit of 64");
    let e = Frame::decode(Bytes::from_static(b"\x10\x00\x00\x00"), &limits).unwrap_err();
    assert!(matches!(e, FrameError::UnknownTag(Tag(16))), "{e}");
    // A call cut off inside its header.
    let e =
        Frame::decode(Bytes::from_static(b"\x03\x00\x00\x00\x01\x01\x44"), &limits).unwrap_err();
    assert!(
        matches!(e, FrameError::Malformed { tag: Tag::CALL, .. }),
        "{e}"
    );
    // A cancel with bytes after its id.
    let e = Frame::decode(Bytes::from_static(b"\x05\x00\x00\x00\x07\x00"), &limits).unwrap_err();
    assert!(e.to_string().contains("1 bytes left over"), "{e}");
    // An error return with bytes after it.
    let mut err = BytesMut::from(
        &encode(&Frame::Return(Return {
            id: 1,
            outcome: Outcome::Err(WireError {
                kind: 1,
                message: String::new(),
                callee: None,
            }),
        }))[..],
    );
    err.extend_from_slice(b"\xff");
    let e = Frame::decode(err.freeze(), &limits).unwrap_err();
    assert!(e.to_string().contains("after an error outcome"), "{e}");
    // An extension frame needs an extension tag.
    let e = Frame::Extension {
        tag: Tag(3),
        body: Bytes::new(),
    }
    .encode(&mut BytesMut::new())
    .unwrap_err();
    assert!(matches!(e, FrameError::Encode { .. }), "{e}");
}

#[test]
fn codes_round_trip_and_unknown_codes_are_safe() {
    use ErrorKind::*;
    for kind in [
        Failed,
        UnknownObject,
        UnknownMethod,
        BadArguments,
        Incompatible,
        AccessDenied,
        Overloaded,
        DeadlineExceeded,
        Disconnected,
        Internal,
    ] {
        assert_eq!(error_from_code(error_code(kind)), kind);
    }
    assert_eq!(error_from_code(200), Internal);
    for kind in [
        AbstractionKind::Sync,
        AbstractionKind::Oneway,
        AbstractionKind::Future,
    ] {
        assert_eq!(abstraction_from_code(abstraction_code(kind)), kind);
    }
    assert_eq!(abstraction_from_code(9), AbstractionKind::Sync);
}

#[test]
fn credentials_never_print_their_secret() {
    let c = Credentials {
        principal: "alice".into(),
        secret: b"hunter2".to_vec(),
    };
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("7 bytes"),
        "{shown}"
    );
}

proptest! {
    #[test]
    fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Frame::decode(Bytes::from(bytes), &Limits::default());
    }

    #[test]
    fn any_core_tag_with_junk_is_an_error_or_a_frame(tag in 1_u32..=15, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = tag.to_le_bytes().to_vec();
        bytes.extend(junk);
        if let Ok(frame) = Frame::decode(Bytes::from(bytes), &Limits::default()) {
            prop_assert_eq!(frame.tag(), Tag(tag));
        }
    }

    #[test]
    fn calls_round_trip(
        id in any::<u64>(), key in any::<u32>(), selector in any::<u32>(),
        chain in any::<u64>(), tx in any::<Option<u64>>(), deadline in any::<Option<u64>>(), trace in any::<Option<u128>>(),
        version in any::<u32>(), lineage in proptest::collection::vec(any::<u64>(), 0..=32),
        args in proptest::collection::vec(any::<u8>(), 0..20_000),
        refs in proptest::collection::vec((any::<bool>(), any::<u32>(), any::<u64>()), 0..40),
    ) {
        let refs = refs.into_iter().map(|(home, key, fingerprint)| if home {
            WireRef::Receiver { key }
        } else {
            WireRef::Sender { key, fingerprint }
        }).collect();
        let frame = Frame::Call(CallFrame {
            id, key, selector, version,
            context: WireContext { chain, transaction: tx, deadline_ms: deadline, trace, lineage },
            refs,
            args: Bytes::from(args),
        });
        // `to_bytes` (a header on the stack, or, when long, straight onto
        // the buffer; then copied out) writes what `encode` does.
        prop_assert_eq!(frame.to_bytes().unwrap(), encode(&frame));
        prop_assert_eq!(Frame::decode(encode(&frame), &Limits::default()).unwrap(), frame);
    }

    #[test]
    fn returns_round_trip(id in any::<u64>(), ok in any::<bool>(), data in proptest::collection::vec(any::<u8>(), 0..64), message in ".{0,20}", key in any::<u32>()) {
        let refs = vec![WireRef::Receiver { key }];
        let outcome = if ok {
            Outcome::Ok(refs.clone(), Bytes::from(data))
        } else {
            Outcome::Err(WireError { kind: 7, message, callee: Some(data) })
        };
        let frame = Frame::Return(Return { id, outcome });
        prop_assert_eq!(Frame::decode(encode(&frame), &Limits::default()).unwrap(), frame);
    }
}
