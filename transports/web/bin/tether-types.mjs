#!/usr/bin/env -S node --experimental-websocket --no-warnings
// Prints TypeScript declarations for what a Tether node publishes, so that
// proxies get completion:
//
//   tether-types ws://127.0.0.1:7001/ counter lab > tether-types.d.ts
//
// then `const lab = await peer.lookup<Lab>("lab")`.

import { connect, declarationsOf } from "../dist/index.js";

const [url, ...names] = process.argv.slice(2);
if (!url || names.length === 0) {
  console.error("usage: tether-types WS_URL NAME...");
  process.exit(2);
}
const peer = await connect(url);
const views = [];
for (const name of names) {
  views.push(await peer.describe(await peer.lookup(name)));
}
process.stdout.write(declarationsOf(views));
peer.close();
