// Browser to browser through a relay: one page (role=server) registers and
// serves a Chat object; another (role=client) connects by the server id and
// calls it, with a callback into itself before the call returns. Driven by
// test/browser.mjs.

import {
  TetherError, connectThroughRelay, implement, serveThroughRelay, t,
} from "/dist/index.js";
import { check, rejects, runner } from "/test/harness.mjs";

const params = new URLSearchParams(location.search);
const relayUrl = params.get("relay");
const role = params.get("role");
const results = [];
window.__relay = { results, done: false };
const { test, log } = runner(results);

const listenerDecl = {
  name: "Listener",
  methods: { notify: { params: [["n", t.u32]], result: t.string } },
};
const chatDecl = {
  name: "Chat",
  methods: {
    post: { params: [["text", t.string], ["from", t.ref("Listener")]], result: t.seq(t.string) },
    count: { params: [], result: t.u32 },
  },
};




if (role === "server") {
  const posts = [];
  const chat = implement(
    {
      async post(text, from) {
        posts.push(text);
        // Call the client back before answering.
        const heard = [await from.notify(1), await from.notify(2)];
        return heard;
      },
      count: () => posts.length,
    },
    chatDecl,
  );
  await test("a page registers at the relay, and a forged credential is refused", async () => {
    await rejects(
      serveThroughRelay(relayUrl, { credential: "00".repeat(16) }),
      "access denied",
      "a forged credential",
    );
    const server = await serveThroughRelay(relayUrl);
    check(/^[0-9a-f]{16}$/.test(server.serverId), server.serverId);
    check(/^[0-9a-f]{32}$/.test(server.credential), "a 128-bit credential");
    server.publish("chat", chat);
    window.__relay.serverId = server.serverId;
    window.__relay.server = server;
  });
  window.__relay.posts = posts;
} else {
  await test("an unknown server id is refused plainly", async () => {
    const e = await rejects(connectThroughRelay(relayUrl, "0123456789abcdef"), "disconnected", "connect");
    check(/no server 0123456789abcdef/.test(e.message), e.message);
  });
  await test("another page calls it through the relay, and is called back first", async () => {
    const peer = await connectThroughRelay(relayUrl, params.get("server"));
    window.__relay.peer = peer;
    const chat = await peer.lookup("chat");
    const heard = [];
    const me = implement({ notify: (n) => (heard.push(n), `client heard ${n}`) }, listenerDecl);
    const replies = await chat.post("hello through the relay", me);
    check(heard.join() === "1,2", `two callbacks before the answer: ${heard}`);
    check(replies.join("|") === "client heard 1|client heard 2", replies.join("|"));
    check((await chat.count()) === 1, "one post");
    window.__relay.chat = chat;
  });
  window.__afterRelayKill = async () => {
    const later = await window.__relay.chat.count().then(() => "answered", (e) => e);
    return later instanceof TetherError && later.kind === "disconnected" ? "ok" : `later: ${later}`;
  };
}
window.__relay.done = true;
log("done");
