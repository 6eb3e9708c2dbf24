// The TypeScript peer's session rules against a scripted peer over an
// in-memory transport (PROTOCOL.md, §6): frames in, frames out.

import assert from "node:assert/strict";
import { test } from "node:test";

import { implement, openPeer, selectorOf, t } from "../dist/index.js";
import { decodeFrame, encodeFrame } from "../dist/frames.js";

const ctx = { chain: 1n, transaction: null, deadlineMs: null, trace: null, lineage: [] };

/** A transport whose other end is the test: `sent` collects the peer's frames. */
function scripted() {
  const sent = [];
  let events;
  const transport = {
    buffered: 0,
    start(e) {
      events = e;
      queueMicrotask(() => e.onOpen());
    },
    send: (bytes) => sent.push(decodeFrame(bytes)),
    close: () => {},
    isOpen: true,
  };
  const deliver = (frame) => events.onFrame(encodeFrame(frame));
  const hello = { tag: 1, hello: { version: 4, node: 9n, bootstrap: 0, credentials: null, maxFrame: 1 << 24, maxInFlight: 8 } };
  return { transport, sent, deliver, hello };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

async function opened() {
  const s = scripted();
  const peerP = openPeer(s.transport);
  await tick();
  s.deliver(s.hello);
  const peer = await peerP;
  s.sent.length = 0; // our Hello
  return { ...s, peer };
}

test("a Return nobody awaits gives its references back, and leaves held proxies alone", async () => {
  const { peer, sent, deliver } = await opened();
  // The app holds a proxy for export 5 ...
  const lookup = peer.lookup("thing");
  await tick();
  deliver({ tag: 6, ret: { id: 1n, ok: { refs: [{ sender: true, key: 5, fingerprint: 1n }], value: new Uint8Array([0]) }, error: null } });
  const thing = await lookup;
  sent.length = 0;
  // ... when a Return nobody awaits brings two more references to it.
  deliver({ tag: 6, ret: { id: 77n, ok: { refs: [{ sender: true, key: 5, fingerprint: 1n }, { sender: true, key: 5, fingerprint: 1n }], value: new Uint8Array() }, error: null } });
  deliver({ tag: 11, nonce: 42n });
  assert.deepEqual(sent.map((f) => f.tag), [7, 12]);
  assert.deepEqual(sent[0].entries, [[5, 2]], "exactly the two it brought");
  assert.equal(sent[1].nonce, 42n, "a Ping is answered");
  assert.equal(peer.tables().imports, 1, "the app's proxy is untouched");
  assert.ok(thing);
  peer.close();
});

test("an answer of the wrong kind closes the connection, naming it", async () => {
  const { peer, deliver } = await opened();
  const pending = peer.lookup("x").catch((e) => e);
  await tick();
  deliver({ tag: 9, id: 1n, views: [] }); // a Description for the lookup's Call
  const reason = await peer.whenClosed();
  assert.match(reason, /protocol error: frame 9 answers question 1/);
  assert.equal((await pending).kind, "disconnected");
});

test("a frame with too many references is refused, and they are given back", async () => {
  const { peer, sent, deliver } = await opened();
  const listener = implement({ notify: () => "x" }, { name: "Listener", methods: { notify: { params: [["n", t.u32]], result: t.string } } });
  peer.publish("l", listener);
  const refs = Array.from({ length: 1025 }, (_, i) => ({ sender: true, key: i + 1, fingerprint: 1n }));
  deliver({ tag: 3, call: { id: 1n, key: 0, selector: 0, version: 0, context: ctx, refs, args: new Uint8Array() } });
  const ret = sent.find((f) => f.tag === 6);
  assert.equal(ret.ret.error.kind, 4);
  assert.match(ret.ret.error.message, /1025 references/);
  const release = sent.find((f) => f.tag === 7);
  assert.equal(release.entries.length, 1025);
  assert.equal(peer.tables().imports, 0);
  peer.close();
});

test("a Call to a method this side makes oneway is answered at once and runs on", async () => {
  const { peer, sent, deliver } = await opened();
  let ran = false;
  const decl = { name: "Notes", methods: { note: { params: [], result: t.unit, kind: "oneway" } } };
  const notes = implement({ note: async () => { await tick(); ran = true; } }, decl);
  peer.publish("notes", notes);
  // Look it up through this side's registry, as the node would.
  const w = [5, 0x6e, 0x6f, 0x74, 0x65, 0x73]; // the string "notes"
  deliver({ tag: 3, call: { id: 1n, key: 0, selector: 0xf758858b, version: 0, context: ctx, refs: [], args: new Uint8Array(w) } });
  const looked = sent.find((f) => f.tag === 6 && f.ret.id === 1n);
  assert.ok(looked.ret.ok, JSON.stringify(looked.ret.error));
  const key = looked.ret.ok.refs[0].key;
  const { selectorOf } = await import("../dist/index.js");
  deliver({ tag: 3, call: { id: 2n, key, selector: selectorOf("note"), version: 0, context: ctx, refs: [], args: new Uint8Array() } });
  const answered = sent.find((f) => f.tag === 6 && f.ret.id === 2n);
  assert.ok(answered.ret.ok, "answered () at once");
  assert.equal(ran, false, "before the method finished");
  await tick();
  await tick();
  assert.equal(ran, true);
  peer.close();
});

test("a peer that stops reading closes the connection instead of growing the buffer", async () => {
  const { peer, transport } = await opened();
  transport.buffered = 65 * 1024 * 1024;
  const e = await peer.lookup("x").catch((err) => err);
  assert.equal(e.kind, "disconnected");
  assert.match(await peer.whenClosed(), /not reading/);
});

test("pipelined calls: served when to an export, refused when asked to keep an answer", async () => {
  const { peer, sent, deliver } = await opened();
  const names = selectorOf("names");
  const pipelined = (id, keep, target) =>
    deliver({ tag: 13, pipeline: { id, keep, target, selector: names, version: 0, context: ctx, refs: [], args: new Uint8Array() } });
  pipelined(1n, false, { key: 0 });
  pipelined(2n, true, { key: 0 });
  pipelined(3n, false, { question: 2n, index: 0, fingerprint: 1n });
  deliver({ tag: 15, question: 2n });
  await tick();
  const returns = new Map(sent.filter((f) => f.tag === 6).map((f) => [f.ret.id, f.ret]));
  assert.ok(returns.get(1n).ok, "keep = 0 to an export: a plain call");
  assert.equal(returns.get(2n).error.kind, 7, "no answers are kept here");
  assert.match(returns.get(2n).error.message, /keeps no answers/);
  assert.equal(returns.get(3n).error.kind, 2, "a question not kept names nothing");
  assert.equal(peer.closedReason ?? null, null, "Finish is accepted");
  peer.close();
});
