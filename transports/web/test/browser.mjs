// Runs test/page.mjs in headless Chromium against a real native node
// (`cargo run --example browser`), then stops the node and checks that the
// page sees the disconnect. Exits non-zero if anything failed.
//
// Environment: TETHER_BROWSER_EXAMPLE, the example's binary (default:
// `cargo run --example browser`); CHROMIUM, the browser (default
// /usr/bin/chromium).

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const repo = resolve(import.meta.dirname, "../../..");
const failures = [];
let server;
let context;
const userData = mkdtempSync(join(tmpdir(), "tether-chromium-"));

const watchdog = setTimeout(() => {
  console.error("browser tests: no end after 300 s");
  cleanup().finally(() => process.exit(1));
}, 300_000);

async function cleanup() {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  if (server && server.exitCode === null) server.kill("SIGKILL");
  rmSync(userData, { recursive: true, force: true });
}

function startServer() {
  const bin = process.env.TETHER_BROWSER_EXAMPLE;
  const child = bin
    ? spawn(bin, ["--port", "0"], { cwd: repo, stdio: ["pipe", "pipe", "inherit"] })
    : spawn("cargo", ["run", "--quiet", "--example", "browser", "--", "--port", "0"], {
      cwd: repo,
      stdio: ["pipe", "pipe", "inherit"],
    });
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout });
    const found = { child };
    lines.on("line", (line) => {
      const m = /^serving (http:\/\/\S+)\/\?ws=(ws:\/\/\S+)$/.exec(line);
      if (m) Object.assign(found, { http: m[1], ws: m[2] });
      const r = /^relay (ws:\/\/\S+)/.exec(line);
      if (r) found.relay = r[1];
      if (found.http && found.relay) resolvePromise(found);
    });
    child.on("exit", (code) => reject(new Error(`the node exited (${code}) before serving`)));
  });
}

function checkDeclarations(ws) {
  const web = resolve(import.meta.dirname, "..");
  const dir = mkdtempSync(join(tmpdir(), "tether-types-"));
  try {
    const types = execFileSync(
      process.execPath,
      ["--experimental-websocket", "--no-warnings", join(web, "bin/tether-types.mjs"), ws, "counter", "lab", "echo-listener"],
      { encoding: "utf8", timeout: 30_000 },
    );
    writeFileSync(join(dir, "types.ts"), types);
    writeFileSync(join(dir, "usage.ts"), `
import { connect } from "@tether/web";
import type { Counter, Lab } from "./types";
export async function use(): Promise<bigint> {
  const peer = await connect("ws://127.0.0.1:1/");
  const lab = await peer.lookup<Lab>("lab");
  const counter: Counter = await lab.fresh();
  const heard: string[] = await lab.visit(await peer.lookup("echo-listener"), 2);
  // @ts-expect-error slow takes a bigint
  await lab.slow("5");
  return (await counter.add(1n)) + (await lab.slow(5n, { timeoutMs: 10 })) + BigInt(heard.length);
}
`);
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: "ES2022", module: "ES2022", moduleResolution: "bundler",
        lib: ["ES2022", "DOM"], skipLibCheck: true, baseUrl: ".",
        paths: { "@tether/web": [join(web, "dist/index.d.ts")] },
      },
      files: ["usage.ts"],
    }));
    execFileSync(process.execPath, [join(web, "node_modules/typescript/bin/tsc"), "-p", dir], { encoding: "utf8", timeout: 60_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  const started = await startServer();
  server = started.child;
  context = await chromium.launchPersistentContext(userData, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--js-flags=--expose-gc",
    ],
  });
  const page = await context.newPage();
  page.on("console", (m) => console.log(`  [page] ${m.text()}`));
  page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));

  await page.goto(`${started.http}/test/page.html?ws=${encodeURIComponent(started.ws)}`);
  await page.waitForFunction(() => window.__tether?.done || window.__tether === undefined && false, null, {
    timeout: 180_000,
  });
  const results = await page.evaluate(() => window.__tether.results);
  for (const r of results) {
    if (!r.ok) failures.push(`${r.name}: ${r.error}`);
  }
  console.log(`browser tests: ${results.filter((r) => r.ok).length} of ${results.length} passed`);

  // Browser to browser through the relay: one page serves, another calls.
  const serving = await context.newPage();
  serving.on("console", (m) => console.log(`  [relay server page] ${m.text()}`));
  serving.on("pageerror", (e) => failures.push(`relay server page error: ${e.message}`));
  const relayArg = encodeURIComponent(started.relay);
  await serving.goto(`${started.http}/test/relay.html?role=server&relay=${relayArg}`);
  await serving.waitForFunction(() => window.__relay?.done, null, { timeout: 60_000 });
  const serverId = await serving.evaluate(() => window.__relay.serverId);
  const calling = await context.newPage();
  calling.on("console", (m) => console.log(`  [relay client page] ${m.text()}`));
  calling.on("pageerror", (e) => failures.push(`relay client page error: ${e.message}`));
  await calling.goto(`${started.http}/test/relay.html?role=client&relay=${relayArg}&server=${serverId}`);
  await calling.waitForFunction(() => window.__relay?.done, null, { timeout: 60_000 });
  const relayResults = [
    ...(await serving.evaluate(() => window.__relay.results)),
    ...(await calling.evaluate(() => window.__relay.results)),
  ];
  for (const r of relayResults) {
    if (!r.ok) failures.push(`relay: ${r.name}: ${r.error}`);
    else console.log(`ok   relay: ${r.name}`);
  }
  const posts = await serving.evaluate(() => window.__relay.posts);
  if (posts.join() !== "hello through the relay") failures.push(`relay: the serving page saw ${posts}`);

  // The README's demos: the example page, and two tabs through the relay.
  try {
    const demo = await context.newPage();
    demo.on("pageerror", (e) => failures.push(`demo page error: ${e.message}`));
    await demo.goto(`${started.http}/?ws=${encodeURIComponent(started.ws)}`);
    await demo.waitForFunction(() => document.getElementById("log").textContent.includes("the page heard 2"), null, { timeout: 30_000 });
    const tabA = await context.newPage();
    tabA.on("pageerror", (e) => failures.push(`relay demo (serving) error: ${e.message}`));
    await tabA.goto(`${started.http}/example/relay.html?relay=${relayArg}`);
    const link = await tabA.waitForSelector("#intro a", { timeout: 30_000 });
    const tabB = await context.newPage();
    tabB.on("pageerror", (e) => failures.push(`relay demo (calling) error: ${e.message}`));
    await tabB.goto(new URL(await link.getAttribute("href"), started.http).href);
    await tabB.waitForSelector("#form:not([hidden])", { timeout: 30_000 });
    await tabB.click("#form button");
    await tabB.waitForFunction(() => document.getElementById("log").textContent.includes("the calling tab heard 1"), null, { timeout: 30_000 });
    await tabA.waitForFunction(() => document.getElementById("log").textContent.includes("post("), null, { timeout: 30_000 });
    console.log("ok   the demos: the example page, and two tabs through the relay");
  } catch (e) {
    failures.push(`demos: ${e.message}`);
  }

  // Declarations generated from the node's descriptions type-check a
  // use of the proxies, and refuse a wrong argument type.
  try {
    checkDeclarations(started.ws);
    console.log("ok   generated declarations type-check, and catch a wrong argument");
  } catch (e) {
    failures.push(`generated declarations: ${e.stdout ?? ""}${e.message}`);
  }

  // The node goes away without a word: the page must see it, promptly.
  server.kill("SIGKILL");
  const afterKill = await Promise.race([
    page.evaluate(() => window.__afterKill()),
    new Promise((r) => setTimeout(() => r(["no answer within 30 s"]), 30_000)),
  ]);
  const names = ["a pending call fails disconnected", "the peer reports it closed", "a later call fails disconnected"];
  afterKill.forEach((outcome, i) => {
    if (outcome === "ok") console.log(`ok   ${names[i]}`);
    else failures.push(`${names[i]}: ${outcome}`);
  });
  const afterRelayKill = await Promise.race([
    calling.evaluate(() => window.__afterRelayKill()),
    new Promise((r) => setTimeout(() => r("no answer within 30 s"), 30_000)),
  ]);
  if (afterRelayKill === "ok") console.log("ok   relay: a killed relay fails the call disconnected");
  else failures.push(`relay: a killed relay: ${afterRelayKill}`);
  if (results.length < 10) failures.push(`only ${results.length} tests ran`);
} catch (e) {
  failures.push(`driver: ${e.stack ?? e}`);
} finally {
  await cleanup();
}

if (failures.length) {
  console.error(`\n${failures.length} failed:\n${failures.map((f) => `  ${f}`).join("\n")}`);
  process.exit(1);
}
console.log("browser tests: all passed");
