// The page of `cargo run --example browser`: calls going both ways.

import { TetherError, connect, implement, t } from "/dist/index.js";

const logEl = document.getElementById("log");
function log(text, cls) {
  const line = document.createElement("div");
  line.textContent = text;
  if (cls) line.className = cls;
  logEl.append(line);
}

const ws = new URLSearchParams(location.search).get("ws");
const peer = await connect(ws, { credentials: { principal: "ada", secret: "s3cret" } });
log(`connected to ${ws}`);
peer.whenClosed().then((reason) => log(`connection closed: ${reason}`, "err"));

const counter = await peer.lookup("counter");
const lab = await peer.lookup("lab");

// An object the node calls back: declared here in TypeScript terms.
const listener = implement(
  {
    notify(n) {
      log(`  node → page: listener.notify(${n})`, "from");
      return `the page heard ${n}`;
    },
  },
  { name: "Listener", methods: { notify: { params: [["n", t.u32]], result: t.string } } },
);

async function run(label, call) {
  log(`page → node: ${label}`, "to");
  try {
    const result = await call();
    log(`  = ${JSON.stringify(result, (_, v) => (typeof v === "bigint" ? `${v}n` : v))}`, "to");
  } catch (e) {
    log(`  failed: ${e instanceof TetherError ? `${e.kind}: ${JSON.stringify(e.callee)}` : e}`, "err");
  }
}

document.getElementById("add").onclick = () => run("counter.add(1n)", () => counter.add(1n));
document.getElementById("visit").onclick = () => run("lab.visit(listener, 3)", () => lab.visit(listener, 3));
document.getElementById("fail").onclick = () => run("lab.fail(7)", () => lab.fail(7));

await run("lab.whoami()", () => lab.whoami());
await run("counter.add(1n)", () => counter.add(1n));
await run("lab.visit(listener, 3)", () => lab.visit(listener, 3));
