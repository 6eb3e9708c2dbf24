//! `Vec<u8>` parameters and results travel as byte strings: the same bytes
//! as serde's element-by-element encoding (so every peer, schema and tool
//! reads them unchanged), in one copy.

#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

use tether::ErrorKind;

#[tether::interface]
pub trait Blob {
    async fn store(&self, data: Vec<u8>, tag: u32, more: std::vec::Vec<u8>) -> Vec<u8>;
    async fn words(&self, v: Vec<u16>) -> Vec<u16>;
}

#[test]
fn byte_vectors_encode_as_serde_does_and_decode_back() {
    let codec = &BlobInterface::__TETHER_CODEC_STORE;
    let args = (vec![1_u8, 2, 3], 7_u32, vec![9_u8; 300]);
    let mut out = vec![0xee]; // appends after what is there
    (codec.encode_args)(&args, &mut out).unwrap();
    assert_eq!(out[0], 0xee);
    assert_eq!(&out[1..], &postcard::to_allocvec(&args).unwrap()[..]);
    assert_eq!((codec.decode_args)(&out[1..], &[]).unwrap(), args);

    let result = vec![0_u8, 255, 128];
    let mut out = Vec::new();
    (codec.encode_result)(&result, &mut out).unwrap();
    assert_eq!(out, postcard::to_allocvec(&result).unwrap());
    assert_eq!((codec.decode_result)(&out, &[]).unwrap(), result);

    // Bad input is refused as before: too short, and bytes left over.
    let e = (codec.decode_result)(&[5, 1, 2], &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments);
    let e = (codec.decode_result)(&[1, 1, 2], &[]).unwrap_err();
    assert!(e.message().contains("left over"), "{e}");
    assert!(e.message().contains("Vec<u8>"), "errors name the type: {e}");

    // Other vectors keep serde's form.
    let codec = &BlobInterface::__TETHER_CODEC_WORDS;
    let mut out = Vec::new();
    (codec.encode_args)(&(vec![300_u16],), &mut out).unwrap();
    assert_eq!(out, postcard::to_allocvec(&(vec![300_u16],)).unwrap());
}

/// A `Vec<u8>` inside a type of the user's: `serde_bytes` gives it the
/// same fast path, and `derive(Schema)` accepts it (same bytes, same schema).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, tether::Schema)]
pub struct Chunk {
    pub id: u32,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

#[derive(Debug, serde::Serialize, tether::Schema)]
pub struct PlainChunk {
    pub id: u32,
    pub data: Vec<u8>,
}

#[test]
fn serde_bytes_fields_keep_the_encoding_and_the_schema() {
    use tether::Schema;
    use tether::ext::WireSchema;
    let fast = Chunk {
        id: 1,
        data: vec![7; 10],
    };
    let plain = PlainChunk {
        id: 1,
        data: vec![7; 10],
    };
    assert_eq!(
        postcard::to_allocvec(&fast).unwrap(),
        postcard::to_allocvec(&plain).unwrap()
    );
    let fast = WireSchema::from_named(Chunk::SCHEMA).unwrap();
    let plain = WireSchema::from_named(PlainChunk::SCHEMA).unwrap();
    assert_eq!(fast.to_string(), plain.to_string());
}
