// What the browser test pages share: a test runner that records results,
// and assertions that say what they expected.

import { TetherError } from "/dist/index.js";

/** Runs tests, logs them to #log, and records `{ name, ok, error }` in `results`. */
export function runner(results) {
  const log = (line) => (document.getElementById("log").textContent += line + "\n");
  const test = async (name, body) => {
    try {
      await body();
      results.push({ name, ok: true });
      log(`ok   ${name}`);
    } catch (e) {
      results.push({ name, ok: false, error: String(e && e.stack ? e.stack : e) });
      log(`FAIL ${name}: ${e}`);
    }
  };
  return { test, log };
}

export function check(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

/** Awaits `promise` and returns its error, which must be a TetherError of `kind` (or an instance of the class `kind`). */
export async function rejects(promise, kind, what) {
  try {
    await promise;
  } catch (e) {
    if (kind instanceof Function ? e instanceof kind : e instanceof TetherError && e.kind === kind) return e;
    throw new Error(`${what}: expected ${kind.name ?? kind}, got ${e}`);
  }
  throw new Error(`${what}: expected it to fail`);
}
