//! The frame decoder: any bytes either fail to decode or decode to a frame
//! that encodes and decodes to itself.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tether_transports::frame::{Frame, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data), &limits) else {
        return;
    };
    let mut encoded = BytesMut::new();
    frame
        .encode(&mut encoded)
        .expect("a decoded frame encodes");
    let again = Frame::decode(encoded.freeze(), &limits).expect("an encoded frame decodes");
    assert_eq!(again, frame, "decode → encode → decode is stable");
});
