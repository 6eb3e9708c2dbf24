// Unit tests of @tether/web under Node.js: the codec, the schemas and
// fingerprints (the test vectors of PROTOCOL.md, §9.3, which the Rust
// tests check too), values by schema, and frames byte by byte (§5).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DecodeError, EncodeError, MAX_DEPTH, decodeSchema, decodeValue, encodeInterface, encodeSchema,
  encodeValue, fingerprintOf, fnv1a64, fromHex, hex, schemaToString, selectorOf, t,
} from "../dist/index.js";
import { decodeFrame, encodeFrame } from "../dist/frames.js";

const point = t.struct({ x: t.i32, y: t.i32 });
const shape = t.enum({ Empty: null, Circle: t.u32, Rect: t.struct({ w: t.u32, h: t.u32 }) });

test("the schema test vectors of PROTOCOL.md §9.3", () => {
  const vectors = [
    [t.u64, "04"],
    [t.seq(t.u8), "0f"],
    [t.option(t.string), "110e"],
    [t.map(t.string, t.i64), "130e09"],
    [t.tuple(t.bool, t.f64), "1402000c"],
    [point, "1502017808017908"],
    [shape, "160305456d7074790006436972636c65010304526563740302017703016803"],
    [t.ref("Counter"), "1707436f756e746572"],
  ];
  for (const [schema, bytes] of vectors) {
    assert.equal(hex(encodeSchema(schema)), bytes, schemaToString(schema));
    assert.deepEqual(decodeSchema(fromHex(bytes)), schema);
  }
  assert.equal(fnv1a64(new Uint8Array()), 0xcbf29ce484222325n);
  assert.equal(fnv1a64(new TextEncoder().encode("a")), 0xaf63dc4c8601ec8cn);
});

test("the interface test vector and its fingerprint", () => {
  const counter = {
    name: "Counter",
    methods: {
      get: { params: [], result: t.u64 },
      add: { params: [["n", t.u64]], result: t.u64 },
      reset: { params: [["to", t.u64], ["note", t.string]], result: t.unit, error: t.string },
    },
  };
  assert.equal(
    hex(encodeInterface(counter)),
    "07436f756e7465720303616464040400036765741004000572657365741402040e10010e",
  );
  assert.equal(fingerprintOf(counter), 0x11fbddac91d89dcfn);
  // Parameter names are not part of it; method order is not either.
  const renamed = {
    name: "Counter",
    methods: {
      reset: { params: [["value", t.u64], ["why", t.string]], result: t.unit, error: t.string },
      add: { params: [["amount", t.u64]], result: t.u64 },
      get: { params: [], result: t.u64 },
    },
  };
  assert.equal(fingerprintOf(renamed), fingerprintOf(counter));
  renamed.methods.add.params[0][1] = t.u32;
  assert.notEqual(fingerprintOf(renamed), fingerprintOf(counter));
});

test("a selector is FNV-1a 32 of the method's name", () => {
  assert.equal(selectorOf(""), 0x811c9dc5);
  assert.equal(selectorOf("a"), 0xe40c292c);
});

test("values round-trip by their schema, as postcard encodes them", () => {
  const cases = [
    [t.bool, true, "01"],
    [t.u8, 255, "ff"],
    [t.u16, 300, "ac02"],
    [t.u64, 2n ** 64n - 1n, "ffffffffffffffffff01"],
    [t.i8, -1, "ff"],
    [t.i32, -2, "03"],
    [t.i64, -(2n ** 63n), "ffffffffffffffffff01"],
    [t.f32, 1.5, "0000c03f"],
    [t.f64, -0.5, "000000000000e0bf"],
    [t.char, "é", "02c3a9"],
    [t.string, "hé", "0368c3a9"],
    [t.bytes, new Uint8Array([1, 2]), "020102"],
    [t.unit, null, ""],
    [t.option(t.u8), null, "00"],
    [t.option(t.u8), 7, "0107"],
    [t.seq(t.string), ["a", "b"], "0201610162"],
    [t.map(t.string, t.u8), new Map([["k", 1]]), "01016b01"],
    [t.tuple(t.u8, t.bool), [1, false], "0100"],
    [point, { x: 1, y: -1 }, "0201"],
    [shape, { Empty: null }, "00"],
    [shape, { Circle: 3 }, "0103"],
    [shape, { Rect: { w: 2, h: 4 } }, "020204"],
    [t.u128, 2n ** 100n, "808080808080808080808080808004"],
  ];
  for (const [schema, value, bytes] of cases) {
    const encoded = encodeValue(schema, value);
    assert.equal(hex(encoded), bytes, `${schemaToString(schema)} ${String(value)}`);
    assert.deepEqual(decodeValue(schema, encoded), value);
  }
  // A unit variant may be written by its name alone; a plain object is a map with string keys.
  assert.equal(hex(encodeValue(shape, "Empty")), "00");
  assert.equal(hex(encodeValue(t.map(t.string, t.u8), { k: 1 })), "01016b01");
});

test("values that do not fit their schema are refused with a clear error", () => {
  const refusals = [
    [t.u8, 256, /does not fit a u8/],
    [t.u16, 70000, /does not fit/],
    [t.i8, 128, /does not fit an i8/],
    [t.u64, -1n, /does not fit/],
    [t.u64, "5", /expected an integer/],
    [t.u32, 1.5, /expected an integer/],
    [t.bool, 1, /expected a boolean/],
    [t.char, "ab", /one character/],
    [t.bytes, [1, 2], /Uint8Array/],
    [point, { x: 1 }, /missing field y/],
    [shape, { Square: 1 }, /no variant Square/],
    [t.tuple(t.u8, t.u8), [1], /array of 2/],
  ];
  for (const [schema, value, message] of refusals) {
    assert.throws(() => encodeValue(schema, value), (e) => e instanceof EncodeError && message.test(e.message));
  }
});

test("bad bytes are refused, and decoding is bounded", () => {
  const bad = [
    [t.bool, "02"],
    [t.u16, "ffff07"],
    [t.u32, "ffffffffff01"],
    [t.char, "026162"],
    [t.string, "02c328"],
    [shape, "05"],
    [t.seq(t.u8), "ff01"],
    [t.u8, "0102"],
  ];
  for (const [schema, bytes] of bad) {
    assert.throws(() => decodeValue(schema, fromHex(bytes)), DecodeError, `${schemaToString(schema)} ${bytes}`);
  }
  assert.throws(() => decodeSchema(new Uint8Array(MAX_DEPTH + 1).fill(0x11)), /deeper than 64/);
  const fine = new Uint8Array(MAX_DEPTH).fill(0x11);
  fine[MAX_DEPTH - 1] = 0x04;
  assert.doesNotThrow(() => decodeSchema(fine));
  assert.throws(() => decodeSchema(fromHex("14ffffffff0f")), /count larger/);
  assert.throws(() => decodeSchema(fromHex("18")), /unknown schema tag/);
});

test("frames as PROTOCOL.md §5 gives them", () => {
  // §5.3's example Call.
  const call = fromHex("03000000ac0201443322110501000000000000000001020001080706050403020100aabb");
  const frame = decodeFrame(call);
  assert.equal(frame.tag, 3);
  assert.equal(frame.call.id, 300n);
  assert.equal(frame.call.key, 1);
  assert.equal(frame.call.selector, 0x11223344);
  assert.equal(frame.call.version, 5);
  assert.equal(frame.call.context.chain, 1n);
  assert.equal(frame.call.context.deadlineMs, 2n);
  assert.deepEqual(frame.call.context.lineage, [0x0102030405060708n]);
  assert.deepEqual([...frame.call.args], [0xaa, 0xbb]);
  assert.equal(hex(encodeFrame(frame)), hex(call));

  // §5.6's Return of 42u64, and §5.7's Release.
  const ret = fromHex("06000000ac0200002a");
  assert.equal(hex(encodeFrame(decodeFrame(ret))), hex(ret));
  assert.equal(decodeFrame(ret).ret.ok.value[0], 42);
  const release = fromHex("07000000020402" + "0901");
  assert.deepEqual(decodeFrame(release).entries, [[4, 2], [9, 1]]);

  for (const f of [
    { tag: 1, hello: { version: 3, node: 7n, bootstrap: 0, credentials: { principal: "ada", secret: new Uint8Array([1]) }, maxFrame: 1024, maxInFlight: 8 } },
    { tag: 2, reason: "bye" },
    { tag: 5, id: 9n },
    { tag: 8, id: 3n, keys: [4, 5] },
    { tag: 9, id: 3n, views: [null, { interface: "A", fingerprint: 1n, view: "v", version: 2, methods: [{ selector: 7, name: "m", kind: 1, types: { params: [["n", fromHex("04")]], result: fromHex("10"), error: null } }] }] },
    { tag: 10, key: 4, version: 9 },
    { tag: 11, nonce: 2n ** 64n - 1n },
    { tag: 15, question: 300n },
  ]) {
    assert.deepEqual(decodeFrame(encodeFrame(f)), f);
  }
  assert.throws(() => decodeFrame(fromHex("10000000")), /unknown frame tag/);
  assert.throws(() => decodeFrame(fromHex("0200000005")), DecodeError);
  assert.throws(() => decodeFrame(fromHex("0500000001ff")), /bytes left/);
});

test("pipelining frames have the bytes PROTOCOL.md §5.12-5.14 gives", () => {
  const empty = { chain: 0n, transaction: null, deadlineMs: null, trace: null, lineage: [] };
  const first = { tag: 13, pipeline: { id: 7n, keep: true, target: { key: 1 }, selector: 0x11223344, version: 0, context: empty, refs: [], args: fromHex("aa") } };
  assert.deepEqual(encodeFrame(first), fromHex("0d000000" + "07" + "01" + "0001" + "44332211" + "00" + "0000000000000000" + "00000000" + "00" + "aa"));
  const second = { tag: 13, pipeline: { id: 8n, keep: false, target: { question: 7n, index: 0, fingerprint: 0x0102030405060708n }, selector: 0x11223344, version: 0, context: empty, refs: [], args: new Uint8Array() } };
  assert.deepEqual(encodeFrame(second), fromHex("0d000000" + "08" + "00" + "010700" + "0807060504030201" + "44332211" + "00" + "0000000000000000" + "00000000" + "00"));
  const oneway = { tag: 14, pipeline: { id: null, keep: false, target: { key: 2 }, selector: 0x11223344, version: 0, context: empty, refs: [], args: new Uint8Array() } };
  assert.deepEqual(encodeFrame(oneway), fromHex("0e000000" + "0002" + "44332211" + "00" + "0000000000000000" + "00000000" + "00"));
  assert.deepEqual(encodeFrame({ tag: 15, question: 300n }), fromHex("0f000000ac02"));
  for (const f of [first, second, oneway]) assert.deepEqual(decodeFrame(encodeFrame(f)), f);
  assert.throws(() => decodeFrame(fromHex("0d000000" + "01" + "02" + "0001" + "44332211" + "00" + "0000000000000000" + "00000000" + "00")), /keep 2/);
  assert.throws(() => decodeFrame(fromHex("0d000000" + "01" + "01" + "0201" + "44332211" + "00" + "0000000000000000" + "00000000" + "00")), /target of kind 2/);
});
