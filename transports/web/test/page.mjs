// The browser tests: run in headless Chromium against the native node of
// `cargo run --example browser` (test/browser.mjs drives them).

import {
  CalleeError, TetherError, connect, declarationOf, fingerprintOf, implement, refInfo, t,
} from "/dist/index.js";
import { check, rejects, runner } from "/test/harness.mjs";

const wsUrl = new URLSearchParams(location.search).get("ws");
const results = [];
window.__tether = { results, done: false };
const { test, log } = runner(results);



const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms, at most `tries` times. */
async function eventually(what, cond, tries = 250) {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    if (globalThis.gc) globalThis.gc();
    await sleep(20);
  }
  throw new Error(`never: ${what}`);
}

const listenerDecl = {
  name: "Listener",
  methods: { notify: { params: [["n", t.u32]], result: t.string } },
};


const peer = await connect(wsUrl, { credentials: { principal: "ada", secret: "s3cret" } });
// Every proxy a test looks up stays held, so that only the proxies the
// collection test drops can be collected.
const held = [];
const lookup = async (name) => {
  const proxy = await peer.lookup(name);
  held.push(proxy);
  return proxy;
};
window.__held = held;
const lab = await lookup("lab");

await test("calls a native object: BigInt in, BigInt out", async () => {
  const counter = await lookup("counter");
  const before = await counter.get();
  check(typeof before === "bigint", "a bigint");
  check((await counter.add(5n)) === before + 5n, "the count to grow by 5");
  check((await counter.add(2)) === before + 7n, "a number accepted for a u64");
});

await test("the principal the Hello's credentials proved", async () => {
  check((await lab.whoami()) === "ada", "ada");
});

await test("structs, enums, options, bytes, maps, tuples both ways", async () => {
  const sample = {
    id: 41n,
    delta: -7,
    name: "héllo",
    tags: ["a", "b"],
    data: new Uint8Array([0, 1, 255]),
    scores: new Map([["x", -1n], ["y", 2n ** 62n]]),
    maybe: 1.25,
    shape: { Rect: { w: 3, h: 4 } },
    pair: [true, "λ"],
  };
  const back = await lab.echo(sample);
  check(back.id === 42n, "the id incremented");
  check(back.delta === -7 && back.name === "héllo", "numbers and strings");
  check(back.tags.join() === "a,b", "a sequence");
  check(back.data instanceof Uint8Array && back.data.join() === "0,1,255", "bytes as a Uint8Array");
  check(back.scores instanceof Map && back.scores.get("y") === 2n ** 62n, "a map");
  check(back.maybe === 1.25, "an option");
  check(back.shape.Rect.w === 3 && back.shape.Rect.h === 4, "a struct variant");
  check(back.pair[0] === true && back.pair[1] === "λ", "a tuple");
  const none = await lab.echo({ ...sample, maybe: null, shape: "Empty" });
  check(none.maybe === null && "Empty" in none.shape, "none, and a unit variant");
  const circle = await lab.echo({ ...sample, shape: { Circle: 9 } });
  check(circle.shape.Circle === 9, "a newtype variant");
});

await test("a method the view makes oneway returns at once and runs", async () => {
  const view = await peer.describe(lab);
  check(view.methods.find((m) => m.name === "note").kind === 1, "described as oneway");
  check((await lab.note("from the page")) === null, "null at once");
  await eventually("the note is kept", async () => (await lab.notes()).includes("from the page"));
});

await test("the callee's typed error arrives with its kind and value", async () => {
  const e = await rejects(lab.fail(7), "failed", "fail");
  check(e.callee && e.callee.code === 7 && e.callee.reason === "asked to fail with 7", "the Oops value");
});

await test("an unknown method is the node's clear error", async () => {
  const counter = await lookup("counter");
  const e = await rejects(counter.subtract(1n), "unknown method", "subtract");
  check(/subtract|selector|method/.test(e.message), `a message naming it: ${e.message}`);
});

await test("a bad argument is refused before it is sent, naming the field", async () => {
  const counter = await lookup("counter");
  const e = await rejects(counter.add("five"), "bad arguments", "add");
  check(/integer/.test(e.message), e.message);
  const e2 = await rejects(lab.echo({ id: 1n }), "bad arguments", "echo");
  check(/missing field delta/.test(e2.message), e2.message);
  await rejects(counter.add(1n, 2n, 3n), "bad arguments", "too many arguments");
});

await test("the node calls a JavaScript object back before its call returns", async () => {
  const heard = [];
  const listener = implement(
    {
      notify(n) {
        heard.push(n);
        return `browser heard ${n}`;
      },
    },
    listenerDecl,
  );
  const replies = await lab.visit(listener, 3);
  check(heard.join() === "0,1,2", `three callbacks first: ${heard}`);
  check(replies.join("|") === "browser heard 0|browser heard 1|browser heard 2", replies.join("|"));
});

await test("an interface learnt from the node's description, exported from JavaScript", async () => {
  const native = await lookup("echo-listener");
  check((await native.notify(4)) === "native heard 4", "the native listener");
  const view = await peer.describe(native);
  const decl = declarationOf(view);
  check(fingerprintOf(decl) === view.fingerprint, "the same fingerprint as the Rust interface");
  check(fingerprintOf(listenerDecl) === view.fingerprint, "the TypeScript declaration's too");
  const copy = implement({ notify: async (n) => `copy heard ${n}` }, decl);
  const replies = await lab.visit(copy, 1);
  check(replies[0] === "copy heard 0", replies[0]);
});

await test("references keep their identity both ways", async () => {
  const a = await lookup("counter");
  const b = await lookup("counter");
  check(a === b, "one proxy for one reference");
  const mine = implement({ notify: async () => "mine" }, listenerDecl);
  const back = await lab.round(mine);
  check(back === mine, "a JavaScript object comes home as itself");
  const native = await lookup("echo-listener");
  check((await lab.round(native)) === native, "a proxy comes home as itself");
});

await test("an explicit release gives the reference back to the node", async () => {
  const [exports0] = await lab.tables();
  const fresh = await lab.fresh();
  check((await fresh.add(1n)) === 1n, "a fresh counter");
  const [exports1] = await lab.tables();
  check(exports1 === exports0 + 1n, `one more export (${exports0} → ${exports1})`);
  const importsBefore = peer.tables().imports;
  peer.release(fresh);
  check(peer.tables().imports === importsBefore - 1, "one import less here");
  await eventually("the node drops its export", async () => (await lab.tables())[0] === exports0);
  await rejects(fresh.add(1n), "unknown object", "a call through a released proxy");
});

await test("a proxy nobody holds is released when collected", async () => {
  if (!globalThis.gc) throw new Error("run Chromium with --js-flags=--expose-gc");
  const [exports0] = await lab.tables();
  await (async () => {
    const fresh = await lab.fresh();
    await fresh.get();
  })();
  const [exports1] = await lab.tables();
  check(exports1 === exports0 + 1n, "one more export while held");
  await eventually("the node drops the collected proxy's export", async () => (await lab.tables())[0] === exports0);
});

await test("an AbortSignal cancels: the node stops the call", async () => {
  const abort = new AbortController();
  const call = lab.slow(60000n, { signal: abort.signal });
  await eventually("the slow call runs", async () => (await lab.running()) === 1);
  abort.abort(new DOMException("changed my mind", "AbortError"));
  const e = await rejects(call, DOMException, "the aborted call");
  check(e.name === "AbortError", e.name);
  await eventually("the node stopped it", async () => (await lab.running()) === 0);
});

await test("a deadline travels: both sides give up", async () => {
  const e = await rejects(lab.slow(60000n, { timeoutMs: 150 }), "deadline exceeded", "slow");
  check(/150/.test(e.message), e.message);
  await eventually("the node stopped it too", async () => (await lab.running()) === 0);
  check((await lab.slow(1n, { timeoutMs: 5000 })) === 1n, "a call within its deadline");
});

await test("wrong credentials are refused with the node's reason", async () => {
  // The node answers a Hello it refuses with a Goodbye naming why.
  let reason;
  try {
    const refused = await connect(wsUrl, { credentials: { principal: "eve", secret: "guess" } });
    reason = await Promise.race([refused.whenClosed(), sleep(10000).then(() => "still open after 10 s")]);
    await rejects(refused.lookup("lab"), "disconnected", "a call on the refused connection");
  } catch (e) {
    reason = String(e);
  }
  check(/authentication failed: unknown principal or wrong secret/.test(reason), reason);
});

// The driver stops the node after this, then calls window.__afterKill.
window.__pending = lab.slow(600000n).then(
  () => "answered",
  (e) => e,
);
window.__afterKill = async () => {
  const out = [];
  const pending = await window.__pending;
  out.push(pending instanceof TetherError && pending.kind === "disconnected" ? "ok" : `pending: ${pending}`);
  const reason = await peer.whenClosed();
  out.push(reason ? "ok" : "no reason");
  const later = await lab.running().then(() => "answered", (e) => e);
  out.push(later instanceof TetherError && later.kind === "disconnected" ? "ok" : `later: ${later}`);
  return out;
};
window.__tether.done = true;
log("done");
