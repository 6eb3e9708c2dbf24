// Tether frames (PROTOCOL.md, §2 and §5), encoded and decoded.

import { DecodeError, Reader, Writer } from "./codec.js";

/** The protocol version this library speaks. */
export const VERSION = 4;

export const TAG = {
  HELLO: 1, GOODBYE: 2, CALL: 3, ONEWAY: 4, CANCEL: 5, RETURN: 6, RELEASE: 7,
  DESCRIBE: 8, DESCRIPTION: 9, REVISED: 10, PING: 11, PONG: 12,
  PIPELINE: 13, PIPELINE_ONEWAY: 14, FINISH: 15,
} as const;

export interface Hello {
  version: number;
  node: bigint;
  bootstrap: number | null;
  credentials: { principal: string; secret: Uint8Array } | null;
  maxFrame: number;
  maxInFlight: number;
}

export interface WireContext {
  chain: bigint;
  transaction: bigint | null;
  deadlineMs: bigint | null;
  trace: bigint | null;
  lineage: bigint[];
}

/** A reference in a frame's table: the sender's export, or the receiver's own coming home. */
export type WireRef =
  | { sender: true; key: number; fingerprint: bigint }
  | { sender: false; key: number };

export interface CallFrame {
  id: bigint | null; // null: a Oneway
  key: number;
  selector: number;
  version: number;
  context: WireContext;
  refs: WireRef[];
  args: Uint8Array;
}

/** What a Pipeline or PipelineOneway frame (PROTOCOL.md §5.12–5.13) is addressed to. */
export type PipelineTarget =
  | { key: number }
  | { question: bigint; index: number; fingerprint: bigint };

/** A Pipeline (id set) or PipelineOneway (id null) frame. */
export interface PipelineFrame {
  id: bigint | null;
  keep: boolean;
  target: PipelineTarget;
  selector: number;
  version: number;
  context: WireContext;
  refs: WireRef[];
  args: Uint8Array;
}

export interface WireError {
  kind: number;
  message: string;
  callee: Uint8Array | null;
}

export interface ReturnFrame {
  id: bigint;
  ok: { refs: WireRef[]; value: Uint8Array } | null;
  error: WireError | null;
}

export interface WireTypes {
  params: [string, Uint8Array][];
  result: Uint8Array;
  error: Uint8Array | null;
}

export interface WireMethod {
  selector: number;
  name: string;
  kind: number;
  types: WireTypes | null;
}

export interface WireView {
  interface: string;
  fingerprint: bigint;
  view: string;
  version: number;
  methods: WireMethod[];
}

export type Frame =
  | { tag: 1; hello: Hello }
  | { tag: 2; reason: string }
  | { tag: 3 | 4; call: CallFrame }
  | { tag: 5; id: bigint }
  | { tag: 6; ret: ReturnFrame }
  | { tag: 7; entries: [number, number][] }
  | { tag: 8; id: bigint; keys: number[] }
  | { tag: 9; id: bigint; views: (WireView | null)[] }
  | { tag: 10; key: number; version: number }
  | { tag: 11 | 12; nonce: bigint }
  | { tag: 13 | 14; pipeline: PipelineFrame }
  | { tag: 15; question: bigint }
  | { tag: number; extension: Uint8Array };

function writeContext(w: Writer, c: WireContext): void {
  w.fixed(c.chain, 8);
  optional(w, c.transaction, (v) => w.fixed(v, 8));
  optional(w, c.deadlineMs, (v) => w.varint(v, 64));
  optional(w, c.trace, (v) => w.fixed(v, 16));
  w.varint(c.lineage.length, 32);
  for (const a of c.lineage) w.fixed(a, 8);
}

function readContext(r: Reader): WireContext {
  const chain = r.fixed(8);
  const transaction = r.option(() => r.fixed(8));
  const deadlineMs = r.option(() => r.varintBig(64));
  const trace = r.option(() => r.fixed(16));
  const n = r.varint32();
  if (n > 32) throw new DecodeError(`a lineage of ${n} activations (at most 32)`);
  const lineage: bigint[] = [];
  for (let i = 0; i < n; i++) lineage.push(r.fixed(8));
  return { chain, transaction, deadlineMs, trace, lineage };
}

function optional<T>(w: Writer, v: T | null | undefined, write: (v: T) => void): void {
  if (v === null || v === undefined) {
    w.byte(0);
  } else {
    w.byte(1);
    write(v);
  }
}

function writeRefs(w: Writer, refs: WireRef[]): void {
  w.varint(refs.length, 32);
  for (const ref of refs) {
    if (ref.sender) {
      w.byte(0);
      w.varint(ref.key, 32);
      w.fixed(ref.fingerprint, 8);
    } else {
      w.byte(1);
      w.varint(ref.key, 32);
    }
  }
}

function readRefs(r: Reader): WireRef[] {
  const n = r.count();
  const refs: WireRef[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.varint32();
    const key = r.varint32();
    if (kind === 0) refs.push({ sender: true, key, fingerprint: r.fixed(8) });
    else if (kind === 1) refs.push({ sender: false, key });
    else throw new DecodeError(`a reference of kind ${kind}`);
  }
  return refs;
}

function writeView(w: Writer, v: WireView): void {
  w.string(v.interface);
  w.fixed(v.fingerprint, 8);
  w.string(v.view);
  w.varint(v.version, 32);
  w.varint(v.methods.length, 32);
  for (const m of v.methods) {
    w.fixed(m.selector, 4);
    w.string(m.name);
    w.byte(m.kind);
    optional(w, m.types, (t) => {
      w.varint(t.params.length, 32);
      for (const [name, schema] of t.params) {
        w.string(name);
        w.lengthPrefixed(schema);
      }
      w.lengthPrefixed(t.result);
      optional(w, t.error, (e) => w.lengthPrefixed(e));
    });
  }
}

function readView(r: Reader): WireView {
  const iface = r.string();
  const fingerprint = r.fixed(8);
  const view = r.string();
  const version = r.varint32();
  const n = r.count();
  const methods: WireMethod[] = [];
  for (let i = 0; i < n; i++) {
    const selector = Number(r.fixed(4));
    const name = r.string();
    const kind = r.byte();
    const types = r.option(() => {
      const p = r.count();
      const params: [string, Uint8Array][] = [];
      for (let j = 0; j < p; j++) params.push([r.string(), r.lengthPrefixed()]);
      const result = r.lengthPrefixed();
      const error = r.option(() => r.lengthPrefixed());
      return { params, result, error };
    });
    methods.push({ selector, name, kind, types });
  }
  return { interface: iface, fingerprint, view, version, methods };
}

/** The bytes of one frame. */
export function encodeFrame(f: Frame): Uint8Array {
  const w = new Writer();
  w.fixed(f.tag, 4);
  if ("hello" in f) {
    const h = f.hello;
    w.varint(h.version, 16);
    w.varint(h.node, 64);
    optional(w, h.bootstrap, (k) => w.varint(k, 32));
    optional(w, h.credentials, (c) => {
      w.string(c.principal);
      w.lengthPrefixed(c.secret);
    });
    w.varint(h.maxFrame, 32);
    w.varint(h.maxInFlight, 32);
  } else if ("reason" in f) {
    w.string(f.reason);
  } else if ("call" in f) {
    const c = f.call;
    if (f.tag === TAG.CALL) w.varint(c.id ?? 0n, 64);
    w.varint(c.key, 32);
    w.fixed(c.selector, 4);
    w.varint(c.version, 32);
    writeContext(w, c.context);
    writeRefs(w, c.refs);
    w.bytes(c.args);
  } else if ("ret" in f) {
    w.varint(f.ret.id, 64);
    if (f.ret.ok) {
      w.varint(0, 32);
      writeRefs(w, f.ret.ok.refs);
      w.bytes(f.ret.ok.value);
    } else {
      const e = f.ret.error ?? { kind: 10, message: "no outcome", callee: null };
      w.varint(1, 32);
      w.byte(e.kind);
      w.string(e.message);
      optional(w, e.callee, (c) => w.lengthPrefixed(c));
    }
  } else if ("entries" in f) {
    w.varint(f.entries.length, 32);
    for (const [key, count] of f.entries) {
      w.varint(key, 32);
      w.varint(count, 32);
    }
  } else if ("keys" in f) {
    w.varint(f.id, 64);
    w.varint(f.keys.length, 32);
    for (const k of f.keys) w.varint(k, 32);
  } else if ("views" in f) {
    w.varint(f.id, 64);
    w.varint(f.views.length, 32);
    for (const v of f.views) optional(w, v, (view) => writeView(w, view));
  } else if ("version" in f) {
    w.varint(f.key, 32);
    w.varint(f.version, 32);
  } else if ("nonce" in f) {
    w.fixed(f.nonce, 8);
  } else if ("id" in f) {
    w.varint(f.id, 64);
  } else if ("pipeline" in f) {
    const c = f.pipeline;
    if (f.tag === TAG.PIPELINE) {
      w.varint(c.id ?? 0n, 64);
      w.byte(c.keep ? 1 : 0);
    }
    if ("key" in c.target) {
      w.varint(0, 32);
      w.varint(c.target.key, 32);
    } else {
      w.varint(1, 32);
      w.varint(c.target.question, 64);
      w.varint(c.target.index, 32);
      w.fixed(c.target.fingerprint, 8);
    }
    w.fixed(c.selector, 4);
    w.varint(c.version, 32);
    writeContext(w, c.context);
    writeRefs(w, c.refs);
    w.bytes(c.args);
  } else if ("question" in f) {
    w.varint(f.question, 64);
  } else if ("extension" in f) {
    w.bytes(f.extension);
  }
  return w.finish();
}

/** One frame from its bytes; throws {@link DecodeError} on bad input. */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length < 4) throw new DecodeError(`a frame of ${bytes.length} bytes`);
  const r = new Reader(bytes);
  const tag = Number(r.fixed(4));
  let frame: Frame;
  switch (tag) {
    case TAG.HELLO: {
      const version = Number(r.varintBig(16));
      const node = r.varintBig(64);
      const bootstrap = r.option(() => r.varint32());
      const credentials = r.option(() => ({ principal: r.string(), secret: r.lengthPrefixed() }));
      const maxFrame = r.varint32();
      const maxInFlight = r.varint32();
      frame = { tag, hello: { version, node, bootstrap, credentials, maxFrame, maxInFlight } };
      break;
    }
    case TAG.GOODBYE:
      frame = { tag, reason: r.string() };
      break;
    case TAG.CALL:
    case TAG.ONEWAY: {
      const id = tag === TAG.CALL ? r.varintBig(64) : null;
      const key = r.varint32();
      const selector = Number(r.fixed(4));
      const version = r.varint32();
      const context = readContext(r);
      const refs = readRefs(r);
      return { tag, call: { id, key, selector, version, context, refs, args: r.rest().slice() } };
    }
    case TAG.CANCEL:
      frame = { tag, id: r.varintBig(64) };
      break;
    case TAG.RETURN: {
      const id = r.varintBig(64);
      const outcome = r.varint32();
      if (outcome === 0) {
        const refs = readRefs(r);
        return { tag, ret: { id, ok: { refs, value: r.rest().slice() }, error: null } };
      }
      if (outcome !== 1) throw new DecodeError(`a Return outcome ${outcome}`);
      const kind = r.byte();
      const message = r.string();
      const callee = r.option(() => r.lengthPrefixed());
      frame = { tag, ret: { id, ok: null, error: { kind, message, callee } } };
      break;
    }
    case TAG.RELEASE: {
      const n = r.count();
      const entries: [number, number][] = [];
      for (let i = 0; i < n; i++) entries.push([r.varint32(), r.varint32()]);
      frame = { tag, entries };
      break;
    }
    case TAG.DESCRIBE: {
      const id = r.varintBig(64);
      const n = r.count();
      const keys: number[] = [];
      for (let i = 0; i < n; i++) keys.push(r.varint32());
      frame = { tag, id, keys };
      break;
    }
    case TAG.DESCRIPTION: {
      const id = r.varintBig(64);
      const n = r.count();
      const views: (WireView | null)[] = [];
      for (let i = 0; i < n; i++) views.push(r.option(() => readView(r)));
      frame = { tag, id, views };
      break;
    }
    case TAG.REVISED:
      frame = { tag, key: r.varint32(), version: r.varint32() };
      break;
    case TAG.PING:
    case TAG.PONG:
      frame = { tag, nonce: r.fixed(8) };
      break;
    case TAG.PIPELINE:
    case TAG.PIPELINE_ONEWAY: {
      const id = tag === TAG.PIPELINE ? r.varintBig(64) : null;
      let keep = false;
      if (tag === TAG.PIPELINE) {
        const k = r.byte();
        if (k > 1) throw new DecodeError(`keep ${k} (0 or 1)`);
        keep = k === 1;
      }
      const kind = r.varint32();
      let target: PipelineTarget;
      if (kind === 0) target = { key: r.varint32() };
      else if (kind === 1) target = { question: r.varintBig(64), index: r.varint32(), fingerprint: r.fixed(8) };
      else throw new DecodeError(`a pipeline target of kind ${kind}`);
      const selector = Number(r.fixed(4));
      const version = r.varint32();
      const context = readContext(r);
      const refs = readRefs(r);
      return { tag, pipeline: { id, keep, target, selector, version, context, refs, args: r.rest().slice() } };
    }
    case TAG.FINISH:
      frame = { tag, question: r.varintBig(64) };
      break;
    default:
      if (tag >= 0x8000_0000) return { tag, extension: r.rest().slice() };
      throw new DecodeError(`unknown frame tag ${tag}`);
  }
  r.end(`frame ${tag}`);
  return frame;
}
