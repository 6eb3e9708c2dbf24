// Two tabs, neither able to listen: the first registers at the relay and
// serves a Chat; the second reaches it by its server id and posts, and the
// first calls the poster back before answering.

import { connectThroughRelay, implement, serveThroughRelay, t } from "/dist/index.js";

const params = new URLSearchParams(location.search);
const relay = params.get("relay");
const server = params.get("server");
const logEl = document.getElementById("log");
const log = (text, cls) => {
  const line = document.createElement("div");
  line.textContent = text;
  if (cls) line.className = cls;
  logEl.append(line);
};

const listenerDecl = { name: "Listener", methods: { notify: { params: [["n", t.u32]], result: t.string } } };
const chatDecl = {
  name: "Chat",
  methods: {
    post: { params: [["text", t.string], ["from", t.ref("Listener")]], result: t.seq(t.string) },
    count: { params: [], result: t.u32 },
  },
};

if (!relay) {
  log("open this page with ?relay=ws://HOST:PORT/ (the relay's WebSocket address)", "err");
} else if (!server) {
  // The serving tab.
  let posts = 0;
  const chat = implement(
    {
      async post(text, from) {
        posts += 1;
        log(`other tab → this tab: post(${JSON.stringify(text)})`, "from");
        log("  this tab → other tab: from.notify(1)", "to");
        const heard = [await from.notify(1)];
        return heard;
      },
      count: () => posts,
    },
    chatDecl,
  );
  const registration = await serveThroughRelay(relay);
  registration.publish("chat", chat);
  const link = `${location.pathname}?relay=${encodeURIComponent(relay)}&server=${registration.serverId}`;
  document.getElementById("title").textContent = `Serving as ${registration.serverId}`;
  document.getElementById("intro").innerHTML = `Registered at the relay. Open <a href="${link}" target="_blank">this link</a> in another tab (or browser) to call this tab.`;
  log(`registered: server id ${registration.serverId}`);
  registration.whenClosed().then((reason) => log(`registration ended: ${reason}`, "err"));
} else {
  // The calling tab.
  const peer = await connectThroughRelay(relay, server);
  const chat = await peer.lookup("chat");
  const me = implement(
    {
      notify(n) {
        log(`  other tab → this tab: notify(${n})`, "from");
        return `the calling tab heard ${n}`;
      },
    },
    listenerDecl,
  );
  document.getElementById("title").textContent = `Calling ${server} through the relay`;
  const form = document.getElementById("form");
  form.hidden = false;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const text = document.getElementById("text").value;
    log(`this tab → other tab: chat.post(${JSON.stringify(text)}, me)`, "to");
    try {
      log(`  = ${JSON.stringify(await chat.post(text, me))}`, "to");
    } catch (e) {
      log(`  failed: ${e}`, "err");
    }
  };
  peer.whenClosed().then((reason) => log(`connection closed: ${reason}`, "err"));
}
