// A Tether connection over a WebSocket: calls to the peer's objects
// through proxies learnt from Descriptions, and JavaScript objects served
// to the peer under declared interfaces (PROTOCOL.md, §6).

import { DecodeError, Reader, Writer, selectorOf } from "./codec.js";
import {
  type CallFrame, type Frame, type Hello, type PipelineFrame, type ReturnFrame, TAG, VERSION, type WireContext,
  type WireError, type WireRef, type WireView, decodeFrame, encodeFrame,
} from "./frames.js";
import {
  EncodeError, type InterfaceDecl, type MethodDecl, type RefCodec, type Schema, decodeSchema,
  encodeSchema, fingerprintOf, list, readValue, writeValue,
} from "./schema.js";

/** The kinds of error a call can end in (PROTOCOL.md, §4). */
export const ERROR_KINDS: Record<number, string> = {
  1: "failed",
  2: "unknown object",
  3: "unknown method",
  4: "bad arguments",
  5: "incompatible interface",
  6: "access denied",
  7: "overloaded",
  8: "deadline exceeded",
  9: "disconnected",
  10: "internal error",
};

/** A call that failed: its kind says how to react; `callee` is the callee's own error value. */
export class TetherError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly callee?: unknown,
  ) {
    super(`${kind}: ${message}`);
    this.name = "TetherError";
  }
}

/** Thrown by an exported method to fail with the interface's typed error value. */
export class CalleeError extends Error {
  constructor(readonly value: unknown, message = "the callee returned an error") {
    super(message);
    this.name = "CalleeError";
  }
}

/** What a call of the peer's into an exported object knows. */
export interface CallInfo {
  /** Aborted when the caller cancels, its deadline passes, or the connection closes. */
  signal: AbortSignal;
  /** When the caller stops waiting, if it said (milliseconds since the epoch). */
  deadline: number | null;
  /** @internal the context calls made while serving this one carry. */
  readonly context: WireContext;
}

/** Options of one call through a proxy, given after its arguments. */
export interface CallOptions {
  /** Cancels the call: the peer stops it and the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The most milliseconds to wait; the peer gets the deadline too. */
  timeoutMs?: number;
  /** The call being served that this call is made for (a callback's nesting). */
  nestedIn?: CallInfo;
}

/** How to connect. */
export interface ConnectOptions {
  /** Who this side is, for the peer's authenticator. */
  credentials?: { principal: string; secret: string | Uint8Array };
  /** Give up opening after this many milliseconds (10 000 by default). */
  timeoutMs?: number;
  /** The largest frame this side accepts (16 MiB by default). */
  maxFrame?: number;
  /** A WebSocket constructor, where there is no global one. */
  WebSocket?: typeof WebSocket;
}

/** What a proxy knows of the reference it stands for. */
export interface RefInfo {
  readonly key: number;
  readonly fingerprint: bigint;
  readonly peer: Peer;
}

/**
 * What a connection runs over: frames in and out. {@link connect} makes
 * one of a WebSocket; a relay link is another.
 */
export interface Transport {
  /** Starts delivering: `onOpen` once frames can be sent, `onFrame` per frame, `onClose` once. */
  start(events: { onOpen(): void; onFrame(frame: Uint8Array): void; onClose(reason: string): void }): void;
  /** Sends one frame. */
  send(frame: Uint8Array): void;
  /** Ends the transport. */
  close(reason: string): void;
  /** Whether frames can be sent. */
  readonly isOpen: boolean;
  /** Bytes sent but not yet on the wire, where the transport knows (a WebSocket's `bufferedAmount`). */
  readonly buffered?: number;
}

/** A WebSocket's binary messages as frames (one frame per message). */
export function webSocketTransport(ws: WebSocket): Transport {
  return {
    start({ onOpen, onFrame, onClose }) {
      let ended = false;
      const end = (reason: string) => {
        if (ended) return;
        ended = true;
        onClose(reason);
      };
      if (ws.readyState === 1) queueMicrotask(onOpen);
      else ws.addEventListener("open", onOpen);
      ws.addEventListener("message", (event: MessageEvent) => {
        if (!(event.data instanceof ArrayBuffer)) {
          end("a text message: Tether frames are binary messages");
          ws.close(1003, "binary frames only");
          return;
        }
        onFrame(new Uint8Array(event.data));
      });
      ws.addEventListener("close", (event: CloseEvent) =>
        end(event.reason || `the WebSocket closed (code ${event.code})`));
      ws.addEventListener("error", () => end("the WebSocket failed"));
    },
    send: (frame) => ws.send(frame),
    close: (reason) => ws.close(1000, reason.slice(0, 120)),
    get isOpen() {
      return ws.readyState === 1;
    },
    get buffered() {
      return ws.bufferedAmount;
    },
  };
}

const INFO = Symbol("tether.ref");
const DECLS = new WeakMap<object, InterfaceDecl>();

/** Marks `object` as offering `decl`, so that it travels by reference to any peer. */
export function implement<T extends object>(object: T, decl: InterfaceDecl): T {
  DECLS.set(object, decl);
  return object;
}

/** The reference behind a proxy, or undefined for anything else. */
export function refInfo(value: unknown): RefInfo | undefined {
  if ((typeof value === "object" || typeof value === "function") && value !== null) {
    return (value as { [INFO]?: RefInfo })[INFO];
  }
  return undefined;
}

/** The interface a Description gives, as a declaration an object can be exported under. */
export function declarationOf(view: WireView): InterfaceDecl {
  // No prototype: a method named `__proto__` is a method like any other.
  const methods: Record<string, MethodDecl> = Object.create(null);
  for (const m of view.methods) {
    if (!m.types) continue;
    methods[m.name] = {
      params: m.types.params.map(([name, s]) => [name, decodeSchema(s)]),
      result: decodeSchema(m.types.result),
      error: m.types.error ? decodeSchema(m.types.error) : null,
      kind: m.kind === 1 ? "oneway" : "sync",
    };
  }
  // The view may offer only some of the interface's methods: the
  // fingerprint is the whole interface's, as the Description gives it.
  return { name: view.interface, methods, fingerprint: view.fingerprint };
}

interface Question {
  /** The tag of the frame that answers it: Return or Description. */
  expects: number;
  resolve(frame: Frame): void;
  reject(error: unknown): void;
}

interface Import {
  proxy: WeakRef<object>;
  count: number;
  fingerprint: bigint;
  view: Promise<WireView> | null;
  released: boolean;
}

interface Export {
  target: object;
  decl: InterfaceDecl;
  fingerprint: bigint;
  count: number;
}

interface Running {
  abort: AbortController;
  cancelled: boolean;
}

const MAX_FRAME = 16 * 1024 * 1024;
/** The most of the peer's calls this side runs at once (announced in its Hello). */
const MAX_IN_FLIGHT = 1024;
/** The most references one frame may carry (PROTOCOL.md, §6.5). */
const MAX_REFS_PER_FRAME = 1024;
/** Keepalive (PROTOCOL.md, §5.11): a Ping after this long unheard, a close after `IDLE_TIMEOUT_MS`. */
const KEEPALIVE_MS = 10_000;
const IDLE_TIMEOUT_MS = 30_000;
/** How long a Describe may go unanswered. */
const DESCRIBE_TIMEOUT_MS = 10_000;
/** Bytes a WebSocket may hold unsent before the peer counts as not reading (PROTOCOL.md, §8). */
const MAX_UNSENT = 64 * 1024 * 1024;
const REGISTRY_KEY = 0;
const REGISTRY_FINGERPRINT = 0x7e7e726567697374n;

function randomU64(): bigint {
  const b = new Uint32Array(2);
  crypto.getRandomValues(b);
  return (BigInt(b[0]) << 32n) | BigInt(b[1]);
}

function disconnected(reason: string): TetherError {
  return new TetherError("disconnected", reason);
}

/** Opens a connection to the Tether node serving WebSocket at `url`. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<Peer> {
  const Ws = options.WebSocket ?? globalThis.WebSocket;
  if (!Ws) throw new Error("no WebSocket here: pass options.WebSocket");
  const ws = new Ws(url, "tether");
  ws.binaryType = "arraybuffer";
  const peer = new Peer(webSocketTransport(ws), options);
  await peer.opened(options.timeoutMs ?? 10_000);
  return peer;
}

/** Runs a connection over `transport` (a relay link, a custom carrier) and waits for it to open. */
export async function openPeer(transport: Transport, options: ConnectOptions = {}): Promise<Peer> {
  const peer = new Peer(transport, options);
  await peer.opened(options.timeoutMs ?? 10_000);
  return peer;
}

/** One connection to a Tether node. */
export class Peer {
  private readonly questions = new Map<bigint, Question>();
  private nextQuestion = 1n;
  private readonly imports = new Map<number, Import>();
  private readonly exports = new Map<number, Export>();
  private readonly exportKeys = new WeakMap<object, number>();
  private nextExport = 1;
  private readonly running = new Map<bigint, Running>();
  private readonly published = new Map<string, object>();
  private onewaysRunning = 0;
  private readonly onewayAborts = new Set<AbortController>();
  /** Oneway calls refused because too many were running. */
  refusedOneways = 0;
  private readonly finalizer = new FinalizationRegistry<{ key: number; entry: Import }>(
    ({ key, entry }) => this.dropImport(key, entry),
  );
  private peerHello: Hello | null = null;
  private lastHeard = Date.now();
  private keepalive: ReturnType<typeof setInterval> | undefined;
  private closedReason: string | null = null;
  private readonly opening: Promise<void>;
  private readonly closing: Promise<string>;
  private resolveClosed!: (reason: string) => void;

  /** @internal use {@link connect} or {@link openPeer}. */
  constructor(private readonly transport: Transport, options: ConnectOptions) {
    this.closing = new Promise((resolve) => (this.resolveClosed = resolve));
    this.opening = new Promise((resolve, reject) => {
      const onOpen = () => {
        const credentials = options.credentials
          ? {
            principal: options.credentials.principal,
            secret: typeof options.credentials.secret === "string"
              ? new TextEncoder().encode(options.credentials.secret)
              : options.credentials.secret,
          }
          : null;
        this.send({
          tag: TAG.HELLO,
          hello: {
            version: VERSION,
            node: randomU64(),
            bootstrap: REGISTRY_KEY,
            credentials,
            maxFrame: options.maxFrame ?? MAX_FRAME,
            maxInFlight: MAX_IN_FLIGHT,
          },
        });
      };
      const onFrame = (bytes: Uint8Array) => {
        this.lastHeard = Date.now();
        const max = options.maxFrame ?? MAX_FRAME;
        if (bytes.length > max) {
          this.close(`a frame of ${bytes.length} bytes exceeds this side's limit of ${max}`);
          return;
        }
        let frame: Frame;
        try {
          frame = decodeFrame(bytes);
        } catch (e) {
          this.close(`malformed frame: ${(e as Error).message}`);
          return;
        }
        if (!this.peerHello) {
          if (frame.tag !== TAG.HELLO || !("hello" in frame)) {
            this.close("the first frame was not a Hello");
            return;
          }
          if (frame.hello.version !== VERSION) {
            this.close(`the peer speaks version ${frame.hello.version}, this side ${VERSION}`);
            return;
          }
          this.peerHello = frame.hello;
          this.startKeepalive();
          resolve();
          return;
        }
        try {
          this.receive(frame);
        } catch (e) {
          // Whatever the peer's frame made go wrong ends this connection only.
          this.close(`cannot handle a frame: ${(e as Error).message}`);
        }
      };
      const onClose = (reason: string) => {
        this.closed(reason);
        reject(disconnected(this.closedReason ?? reason));
      };
      transport.start({ onOpen, onFrame, onClose });
    });
  }

  /** @internal resolves once both Hellos are exchanged. */
  async opened(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.close("no Hello in time");
        reject(disconnected(`no Hello within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.opening, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Why the connection closed, once it has. */
  get closedWith(): string | null {
    return this.closedReason;
  }

  /** Resolves with the reason when the connection closes. */
  whenClosed(): Promise<string> {
    return this.closing;
  }

  /** The sizes of this side's tables, for tests and tools. */
  tables(): { questions: number; imports: number; exports: number; running: number } {
    return {
      questions: this.questions.size,
      imports: this.imports.size,
      exports: this.exports.size,
      running: this.running.size,
    };
  }

  /** Looks `name` up in the peer's registry: a proxy for what it published. */
  async lookup<T = Record<string, (...args: any[]) => Promise<any>>>(name: string, options: CallOptions = {}): Promise<T> {
    const hello = this.peerHello;
    if (!hello || hello.bootstrap === null) throw new TetherError("unknown object", "the peer offers no registry");
    const w = new Writer();
    w.string(name);
    const ret = await this.question(hello.bootstrap, selectorOf("lookup"), 0, w.finish(), [], options);
    const proxies = this.takeRefs(ret.ok?.refs ?? []);
    const r = new Reader(ret.ok?.value ?? new Uint8Array());
    const index = r.varint32();
    const found = proxies[index];
    if (!found) throw new TetherError("internal error", "lookup returned no reference");
    return found as T;
  }

  /** Offers `object` under `name` to the peer's lookups on this connection. */
  publish(name: string, object: object): void {
    if (!DECLS.has(object)) throw new TypeError("publish an object made with implement(object, decl)");
    this.published.set(name, object);
  }

  /** What the view behind `proxy` offers (cached; asked again after a Revised). */
  describe(proxy: unknown): Promise<WireView> {
    const info = refInfo(proxy);
    if (!info || info.peer !== this) return Promise.reject(new TypeError("not a proxy of this connection"));
    if (this.closedReason !== null) return Promise.reject(disconnected(this.closedReason));
    const entry = this.imports.get(info.key);
    if (!entry || entry.released) return Promise.reject(new TetherError("unknown object", "the reference was released"));
    if (!entry.view) {
      entry.view = this.describeKey(info.key).catch((e) => {
        entry.view = null;
        throw e;
      });
    }
    return entry.view;
  }

  /** Gives the reference behind `proxy` back now; later calls through it fail. */
  release(proxy: unknown): void {
    const info = refInfo(proxy);
    if (!info || info.peer !== this) return;
    const entry = this.imports.get(info.key);
    if (entry) this.dropImport(info.key, entry);
  }

  /** Closes the connection with a Goodbye. */
  close(reason = "goodbye"): void {
    if (this.closedReason !== null) return;
    if (this.transport.isOpen) {
      try {
        this.send({ tag: TAG.GOODBYE, reason });
      } catch {
        // Closed by the send itself (the peer was not reading).
      }
    }
    this.closed(reason);
    this.transport.close(reason);
  }

  private startKeepalive(): void {
    this.keepalive = setInterval(() => {
      const silent = Date.now() - this.lastHeard;
      if (silent >= IDLE_TIMEOUT_MS) {
        this.close(`the peer showed no sign of life for ${IDLE_TIMEOUT_MS} ms`);
      } else if (silent >= KEEPALIVE_MS) {
        try {
          this.send({ tag: TAG.PING, nonce: randomU64() });
        } catch {
          // Closed meanwhile.
        }
      }
    }, KEEPALIVE_MS / 2);
  }

  private closed(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    clearInterval(this.keepalive);
    for (const q of this.questions.values()) q.reject(disconnected(reason));
    this.questions.clear();
    for (const r of this.running.values()) r.abort.abort(disconnected(reason));
    this.running.clear();
    for (const a of this.onewayAborts) a.abort(disconnected(reason));
    this.onewayAborts.clear();
    this.exports.clear();
    for (const entry of this.imports.values()) entry.released = true;
    this.imports.clear();
    this.resolveClosed(reason);
  }

  private send(frame: Frame): void {
    if (!this.transport.isOpen) return;
    if ((this.transport.buffered ?? 0) > MAX_UNSENT) {
      const reason = `the peer is not reading: more than ${MAX_UNSENT} bytes unsent`;
      this.closed(reason);
      this.transport.close(reason);
      throw disconnected(reason);
    }
    const bytes = encodeFrame(frame);
    const max = this.peerHello?.maxFrame ?? MAX_FRAME;
    if (bytes.length > max) {
      throw new TetherError("bad arguments", `a frame of ${bytes.length} bytes exceeds the peer's limit of ${max}`);
    }
    this.transport.send(bytes);
  }

  private receive(frame: Frame): void {
    switch (frame.tag) {
      case TAG.GOODBYE:
        if ("reason" in frame) {
          this.closed(`goodbye: ${frame.reason}`);
          this.transport.close("goodbye");
        }
        return;
      case TAG.CALL:
      case TAG.ONEWAY:
        if ("call" in frame) this.serve(frame.call);
        return;
      case TAG.PIPELINE:
      case TAG.PIPELINE_ONEWAY:
        if ("pipeline" in frame) this.servePipelined(frame.pipeline);
        return;
      case TAG.FINISH:
        return; // no answer is ever kept here

      case TAG.CANCEL:
        if ("id" in frame) {
          const id = (frame as { id: bigint }).id;
          const running = this.running.get(id);
          if (running && !running.cancelled) {
            // The handler may run on (JavaScript cannot stop it), so the call keeps its place
            // until it settles; no Return is sent for it.
            running.cancelled = true;
            running.abort.abort(new TetherError("failed", "cancelled by the caller"));
          }
        }
        return;
      case TAG.RETURN:
        if ("ret" in frame) this.answer(frame.ret.id, frame, frame.ret.ok?.refs ?? []);
        return;
      case TAG.DESCRIPTION:
        if ("views" in frame) this.answer(frame.id, frame, []);
        return;
      case TAG.RELEASE:
        if ("entries" in frame) {
          for (const [key, count] of frame.entries) {
            const e = this.exports.get(key);
            if (!e) continue;
            e.count -= count;
            if (e.count <= 0) {
              this.exports.delete(key);
              this.exportKeys.delete(e.target);
            }
          }
        }
        return;
      case TAG.DESCRIBE:
        if ("keys" in frame) {
          // Keys past the limit get none, as for the Rust side.
          const views = frame.keys.map((key, i) => (i < MAX_REFS_PER_FRAME ? this.viewOf(key) : null));
          this.send({ tag: TAG.DESCRIPTION, id: frame.id, views });
        }
        return;
      case TAG.REVISED:
        if ("version" in frame) {
          const entry = this.imports.get(frame.key);
          if (entry) entry.view = null;
        }
        return;
      case TAG.PING:
        if ("nonce" in frame) this.send({ tag: TAG.PONG, nonce: frame.nonce });
        return;
      case TAG.PONG:
        return;
      case TAG.HELLO:
        this.close("a second Hello");
        return;
      default:
        return; // an extension: ignored
    }
  }

  private answer(id: bigint, frame: Frame, refs: WireRef[]): void {
    const q = this.questions.get(id);
    if (!q) {
      // Nobody waits: give back what it brought.
      this.giveBack(refs);
      return;
    }
    if (q.expects !== frame.tag) {
      this.giveBack(refs);
      this.close(`protocol error: frame ${frame.tag} answers question ${id}, which expects ${q.expects}`);
      return;
    }
    this.questions.delete(id);
    q.resolve(frame);
  }

  private context(options: CallOptions): WireContext {
    const outer = options.nestedIn?.context;
    let deadlineMs: bigint | null = null;
    const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : options.nestedIn?.deadline ?? null;
    if (deadline !== null) deadlineMs = BigInt(Math.max(0, Math.round(deadline - Date.now())));
    return {
      chain: outer?.chain ?? randomU64(),
      transaction: outer?.transaction ?? null,
      deadlineMs,
      trace: outer?.trace ?? null,
      lineage: outer ? outer.lineage : [],
    };
  }

  /** Sends a Call and waits for its Return; errors become {@link TetherError}s. */
  private question(
    key: number, selector: number, version: number, args: Uint8Array, refs: WireRef[], options: CallOptions,
    errorSchema: Schema | null = null,
  ): Promise<ReturnFrame> {
    if (this.closedReason !== null) return Promise.reject(disconnected(this.closedReason));
    options.signal?.throwIfAborted();
    const id = this.nextQuestion++;
    return new Promise<ReturnFrame>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const stop = (error: unknown) => {
        if (!this.questions.delete(id)) return;
        finish();
        reject(error);
        try {
          this.send({ tag: TAG.CANCEL, id });
        } catch {
          // Closed meanwhile: nothing to cancel.
        }
      };
      const onAbort = () => stop(options.signal?.reason);
      this.questions.set(id, {
        expects: TAG.RETURN,
        resolve: (frame) => {
          finish();
          const ret = (frame as { ret: ReturnFrame }).ret;
          if (ret.error) reject(this.errorOf(ret.error, errorSchema));
          else resolve(ret);
        },
        reject: (e) => {
          finish();
          reject(e);
        },
      });
      options.signal?.addEventListener("abort", onAbort);
      const inherited = options.nestedIn?.deadline ?? null;
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => stop(new TetherError("deadline exceeded", `no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
      } else if (inherited !== null) {
        // The deadline of the call this one is made for holds here too.
        timer = setTimeout(() => stop(new TetherError("deadline exceeded", "the enclosing call's deadline passed")), Math.max(0, inherited - Date.now()));
      }
      try {
        this.send({ tag: TAG.CALL, call: { id, key, selector, version, context: this.context(options), refs, args } });
      } catch (e) {
        this.questions.delete(id);
        finish();
        this.unexport(refs);
        reject(e);
      }
    });
  }

  private errorOf(e: WireError, errorSchema: Schema | null): TetherError {
    let callee: unknown;
    if (e.callee && errorSchema) {
      try {
        const r = new Reader(e.callee);
        callee = readValue(r, errorSchema, this.noRefs());
      } catch {
        callee = undefined;
      }
    }
    return new TetherError(ERROR_KINDS[e.kind] ?? "internal error", e.message, callee);
  }

  private noRefs(): RefCodec {
    return {
      writeRef: () => { throw new EncodeError("a reference cannot travel here"); },
      readRef: () => { throw new DecodeError("a reference cannot travel here"); },
    };
  }

  private async describeKey(key: number): Promise<WireView> {
    if (this.closedReason !== null) throw disconnected(this.closedReason);
    const id = this.nextQuestion++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const frame = await new Promise<Frame>((resolve, reject) => {
      this.questions.set(id, { expects: TAG.DESCRIPTION, resolve, reject });
      // A peer that never describes must not hold the call forever.
      timer = setTimeout(() => {
        if (this.questions.delete(id)) {
          reject(new TetherError("deadline exceeded", `no Description of export ${key} within ${DESCRIBE_TIMEOUT_MS} ms`));
        }
      }, DESCRIBE_TIMEOUT_MS);
      try {
        this.send({ tag: TAG.DESCRIBE, id, keys: [key] });
      } catch (e) {
        this.questions.delete(id);
        reject(e);
      }
    }).finally(() => clearTimeout(timer));
    const view = (frame as { views: (WireView | null)[] }).views[0];
    if (!view) throw new TetherError("unknown object", `export ${key} is not (or no longer) offered`);
    const entry = this.imports.get(key);
    if (entry && view.fingerprint !== entry.fingerprint) {
      throw new TetherError("incompatible interface", `the view's fingerprint ${view.fingerprint.toString(16)} is not the reference's`);
    }
    return view;
  }

  /** Counts the sender references of a received frame and returns one proxy (or home object) per entry. */
  private takeRefs(refs: WireRef[]): object[] {
    if (refs.length > MAX_REFS_PER_FRAME) {
      this.giveBack(refs);
      throw new TetherError("bad arguments", `${refs.length} references in one frame, more than ${MAX_REFS_PER_FRAME}`);
    }
    // A forged receiver reference refuses the whole frame before anything is counted.
    for (const ref of refs) {
      if (!ref.sender && !this.exports.has(ref.key)) {
        this.giveBack(refs);
        throw new TetherError("unknown object", `export ${ref.key} is not this side's`);
      }
    }
    return refs.map((ref) => {
      if (!ref.sender) {
        const e = this.exports.get(ref.key);
        if (!e) throw new TetherError("unknown object", `export ${ref.key} is not this side's`);
        return e.target;
      }
      const existing = this.imports.get(ref.key);
      const alive = existing?.proxy.deref();
      if (existing && alive && !existing.released) {
        existing.count += 1;
        return alive;
      }
      if (existing) this.dropImport(ref.key, existing);
      const entry: Import = { proxy: new WeakRef({}), count: 1, fingerprint: ref.fingerprint, view: null, released: false };
      const proxy = this.makeProxy(ref.key, ref.fingerprint, entry);
      entry.proxy = new WeakRef(proxy);
      this.imports.set(ref.key, entry);
      this.finalizer.register(proxy, { key: ref.key, entry }, entry);
      return proxy;
    });
  }

  /** Gives back the sender references of a frame this side will not use, without touching its proxies. */
  private giveBack(refs: WireRef[]): void {
    const counts = new Map<number, number>();
    for (const r of refs) if (r.sender) counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
    if (counts.size > 0 && this.closedReason === null) {
      try {
        this.send({ tag: TAG.RELEASE, entries: [...counts.entries()] });
      } catch {
        // A Release too large for the peer: it keeps the references until the connection closes.
      }
    }
  }

  /** Takes back the export counts of a frame that was not sent. */
  private unexport(refs: WireRef[]): void {
    for (const r of refs) {
      if (!r.sender) continue;
      const e = this.exports.get(r.key);
      if (!e) continue;
      e.count -= 1;
      if (e.count <= 0) {
        this.exports.delete(r.key);
        this.exportKeys.delete(e.target);
      }
    }
  }

  private dropImport(key: number, entry: Import): void {
    if (entry.released) return;
    entry.released = true;
    this.finalizer.unregister(entry);
    if (this.imports.get(key) === entry) this.imports.delete(key);
    if (this.closedReason === null && entry.count > 0) {
      this.send({ tag: TAG.RELEASE, entries: [[key, entry.count]] });
    }
  }

  private makeProxy(key: number, fingerprint: bigint, entry: Import): object {
    const info: RefInfo = { key, fingerprint, peer: this };
    const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
    const proxy: object = new Proxy(Object.freeze({}), {
      get: (_target, prop) => {
        if (prop === INFO) return info;
        if (typeof prop !== "string" || prop === "then" || prop === "toJSON") return undefined;
        let method = methods.get(prop);
        if (!method) {
          // The method holds the proxy: `const { add } = proxy` keeps the reference alive.
          method = (...args: unknown[]) => this.callThrough(key, entry, prop, args, proxy);
          methods.set(prop, method);
        }
        return method;
      },
      has: (_target, prop) => prop === INFO,
    });
    return proxy;
  }

  private async callThrough(key: number, entry: Import, name: string, args: unknown[], proxy: object): Promise<unknown> {
    if (this.closedReason !== null) throw disconnected(this.closedReason);
    if (entry.released) throw new TetherError("unknown object", "the reference was released");
    const view = await this.describe(proxy);
    const method = view.methods.find((m) => m.name === name);
    const selector = method?.selector ?? selectorOf(name);
    if (!method) {
      // Not offered: the peer is the judge, and says so.
      await this.question(key, selector, view.version, new Uint8Array(), [], {});
      throw new TetherError("internal error", `${name} answered though it is not offered`);
    }
    if (!method.types) throw new TetherError("incompatible interface", `${view.interface}::${name} has no wire schema`);
    const params = method.types.params.map(([, s]) => decodeSchema(s));
    let options: CallOptions = {};
    if (args.length === params.length + 1) options = (args.pop() ?? {}) as CallOptions;
    if (args.length !== params.length) {
      throw new TetherError("bad arguments", `${view.interface}::${name} takes ${params.length} arguments, got ${args.length}`);
    }
    const refs: WireRef[] = [];
    const w = new Writer();
    try {
      writeValue(w, list(params), params.length === 1 ? args[0] : args, this.refWriter(refs), name);
    } catch (e) {
      this.unexport(refs);
      if (e instanceof EncodeError) throw new TetherError("bad arguments", `${view.interface}::${e.message}`);
      throw e;
    }
    if (method.kind === 1) {
      try {
        this.send({ tag: TAG.ONEWAY, call: { id: null, key, selector, version: view.version, context: this.context(options), refs, args: w.finish() } });
      } catch (e) {
        this.unexport(refs);
        throw e;
      }
      return null;
    }
    const errorSchema = method.types.error ? decodeSchema(method.types.error) : null;
    const ret = await this.question(key, selector, view.version, w.finish(), refs, options, errorSchema);
    const ok = ret.ok!;
    const proxies = this.takeRefs(ok.refs);
    const r = new Reader(ok.value);
    const result = readValue(r, decodeSchema(method.types.result), {
      writeRef: () => { throw new EncodeError("no references are written while reading"); },
      readRef: (index) => {
        const p = proxies[index];
        if (!p) throw new DecodeError(`reference index ${index} of ${proxies.length}`);
        return p;
      },
    });
    r.end(`${name}'s result`);
    return result;
  }

  private refWriter(refs: WireRef[]): RefCodec {
    return {
      writeRef: (value) => {
        const info = refInfo(value);
        if (info) {
          if (info.peer !== this) throw new EncodeError("a proxy of another connection cannot be passed on (no forwarding)");
          refs.push({ sender: false, key: info.key });
          return refs.length - 1;
        }
        if (typeof value !== "object" || value === null || !DECLS.has(value)) {
          throw new EncodeError("a reference must be a proxy or an object made with implement(object, decl)");
        }
        const decl = DECLS.get(value)!;
        let key = this.exportKeys.get(value);
        let e = key !== undefined ? this.exports.get(key) : undefined;
        if (!e) {
          key = this.nextExport++;
          e = { target: value, decl, fingerprint: decl.fingerprint ?? fingerprintOf(decl), count: 0 };
          this.exports.set(key, e);
          this.exportKeys.set(value, key);
        }
        e.count += 1;
        refs.push({ sender: true, key: key!, fingerprint: e.fingerprint });
        return refs.length - 1;
      },
      readRef: () => { throw new DecodeError("no references are read while writing"); },
    };
  }

  private viewOf(key: number): WireView | null {
    if (key === REGISTRY_KEY) return null;
    const e = this.exports.get(key);
    if (!e) return null;
    return {
      interface: e.decl.name,
      fingerprint: e.fingerprint,
      view: "js",
      version: 0,
      methods: Object.entries(e.decl.methods).map(([name, m]) => ({
        selector: selectorOf(name),
        name,
        kind: m.kind === "oneway" ? 1 : 0,
        types: {
          params: m.params.map(([p, s]) => [p, encodeSchema(s)] as [string, Uint8Array]),
          result: encodeSchema(m.result),
          error: m.error ? encodeSchema(m.error) : null,
        },
      })),
    };
  }

  /** Runs one of the peer's calls into an exported object (or the registry). */
  /**
   * A Pipeline or PipelineOneway frame (PROTOCOL.md §6.7). This peer keeps no answers for
   * pipelining (its `max_promises` is 0): a call to an export is served as a Call (or Oneway);
   * one asking to keep its answer is refused with error 7, and one addressed to an answer
   * with error 2, as for any question that is not kept.
   */
  private servePipelined(p: PipelineFrame): void {
    const refuse = (kind: number, message: string) => {
      this.giveBack(p.refs);
      if (p.id === null) console.warn(`refused a pipelined oneway call: ${message}`);
      else this.send({ tag: TAG.RETURN, ret: { id: p.id, ok: null, error: { kind, message, callee: null } } });
    };
    if (!("key" in p.target)) {
      refuse(2, `this peer keeps no answer to call ${p.target.question} (it keeps no answers for pipelining)`);
      return;
    }
    if (p.keep) {
      refuse(7, "this peer keeps no answers for pipelining (max_promises 0)");
      return;
    }
    const { id, selector, version, context, refs, args } = p;
    this.serve({ id, key: p.target.key, selector, version, context, refs, args });
  }

  private serve(call: CallFrame): void {
    const abort = new AbortController();
    const mine: Running = { abort, cancelled: false };
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Sends the Return, unless the call was cancelled or another call took its id; the
    // references counted for a frame that is not sent are taken back.
    const reply = (ret: ReturnFrame) => {
      clearTimeout(timer);
      if (call.id === null || this.running.get(call.id) !== mine) {
        this.unexport(ret.ok?.refs ?? []);
        return;
      }
      this.running.delete(call.id);
      if (mine.cancelled || this.closedReason !== null) {
        this.unexport(ret.ok?.refs ?? []);
        return;
      }
      try {
        this.send({ tag: TAG.RETURN, ret });
      } catch (e) {
        this.unexport(ret.ok?.refs ?? []);
        const message = (e as Error).message.slice(0, 1024);
        try {
          this.send({ tag: TAG.RETURN, ret: { id: call.id, ok: null, error: { kind: 1, message, callee: null } } });
        } catch {
          this.close("cannot answer within the peer's frame limit");
        }
      }
    };
    const fail = (kind: number, message: string, callee: Uint8Array | null = null) =>
      reply({ id: call.id ?? 0n, ok: null, error: { kind, message, callee } });
    if (call.id !== null) {
      if (this.running.has(call.id)) {
        this.close(`call id ${call.id} reused while in flight`);
        return;
      }
      if (this.running.size >= MAX_IN_FLIGHT) {
        // Refused without running: what it brought goes back at once.
        this.giveBack(call.refs);
        this.send({
          tag: TAG.RETURN,
          ret: { id: call.id, ok: null, error: { kind: 7, message: `more than ${MAX_IN_FLIGHT} calls in flight`, callee: null } },
        });
        return;
      }
      this.running.set(call.id, mine);
    } else if (this.onewaysRunning >= MAX_IN_FLIGHT) {
      this.refusedOneways += 1;
      console.warn(`refused a oneway call: more than ${MAX_IN_FLIGHT} running`);
      this.giveBack(call.refs);
      return;
    }
    let proxies: object[];
    try {
      proxies = this.takeRefs(call.refs);
    } catch (e) {
      fail(e instanceof TetherError && e.kind === "bad arguments" ? 4 : 2, (e as Error).message);
      return;
    }
    if (call.key === REGISTRY_KEY) {
      this.serveRegistry(call, fail, reply);
      return;
    }
    const e = this.exports.get(call.key);
    if (!e) {
      proxies.forEach((p) => this.release(p));
      fail(2, `no export ${call.key} on this connection`);
      return;
    }
    const entry = Object.entries(e.decl.methods).find(([name]) => selectorOf(name) === call.selector);
    if (!entry) {
      fail(3, `${e.decl.name} has no method with selector ${call.selector.toString(16).padStart(8, "0")}`);
      return;
    }
    const [name, m] = entry;
    const fn = (e.target as Record<string, unknown>)[name];
    if (typeof fn !== "function") {
      fail(3, `${e.decl.name}::${name} is not implemented here`);
      return;
    }
    let args: unknown[];
    try {
      const r = new Reader(call.args);
      const refs: RefCodec = {
        writeRef: () => { throw new EncodeError("no references are written while reading"); },
        readRef: (index) => {
          const p = proxies[index];
          if (!p) throw new DecodeError(`reference index ${index} of ${proxies.length}`);
          return p;
        },
      };
      args = m.params.map(([, s]) => readValue(r, s, refs));
      r.end("the arguments");
    } catch (err) {
      fail(4, `${e.decl.name}::${name}: ${(err as Error).message}`);
      return;
    }
    // A Call to a method this side makes oneway is answered at once and runs on (§6.4).
    let oneway = call.id === null;
    if (!oneway && m.kind === "oneway") {
      reply({ id: call.id ?? 0n, ok: { refs: [], value: new Uint8Array() }, error: null });
      oneway = true;
    }
    const deadline = call.context.deadlineMs !== null ? Date.now() + Number(call.context.deadlineMs) : null;
    if (deadline !== null && !oneway) {
      // The caller's deadline: the handler is told, and the call ends with error 8.
      timer = setTimeout(() => {
        abort.abort(new TetherError("deadline exceeded", "the caller's deadline passed"));
        fail(8, `${e.decl.name}::${name}: the caller's deadline passed`);
      }, Math.max(0, deadline - Date.now()));
    }
    const info: CallInfo = {
      signal: abort.signal,
      deadline,
      context: { ...call.context, deadlineMs: null, lineage: [randomU64(), ...call.context.lineage].slice(0, 32) },
    };
    if (oneway) {
      this.onewaysRunning += 1;
      this.onewayAborts.add(abort);
    }
    Promise.resolve()
      .then(() => (fn as (...a: unknown[]) => unknown).apply(e.target, [...args, info]))
      .finally(() => {
        if (oneway) {
          this.onewaysRunning -= 1;
          this.onewayAborts.delete(abort);
        }
        // A cancelled call keeps its place until its handler settles.
        if (call.id !== null && mine.cancelled && this.running.get(call.id) === mine) this.running.delete(call.id);
      })
      .then(
        (result) => {
          if (oneway || mine.cancelled || (call.id !== null && this.running.get(call.id) !== mine)) return;
          const refs: WireRef[] = [];
          const w = new Writer();
          try {
            writeValue(w, m.result, result, this.refWriter(refs), `${name}'s result`);
          } catch (err) {
            this.unexport(refs);
            fail(1, `${e.decl.name}::${name} returned a value its schema refuses: ${(err as Error).message}`);
            return;
          }
          reply({ id: call.id ?? 0n, ok: { refs, value: w.finish() }, error: null });
        },
        (err: unknown) => {
          if (oneway) {
            console.warn(`oneway ${e.decl.name}::${name} failed`, err);
            return;
          }
          if (err instanceof CalleeError && m.error) {
            let bytes: Uint8Array | null = null;
            try {
              const w = new Writer();
              writeValue(w, m.error, err.value, this.noRefs());
              bytes = w.finish();
            } catch {
              bytes = null;
            }
            fail(1, err.message, bytes);
          } else {
            fail(1, `${e.decl.name}::${name} threw: ${err instanceof Error ? err.message : String(err)}`);
          }
        },
      );
  }

  private serveRegistry(call: CallFrame, fail: (kind: number, message: string) => void, reply: (r: ReturnFrame) => void): void {
    if (call.selector === selectorOf("names")) {
      const w = new Writer();
      writeValue(w, { type: "seq", of: { type: "string" } }, [...this.published.keys()].sort(), this.noRefs());
      reply({ id: call.id ?? 0n, ok: { refs: [], value: w.finish() }, error: null });
      return;
    }
    if (call.selector !== selectorOf("lookup")) {
      fail(3, "this side's registry offers lookup and names only");
      return;
    }
    let name: string;
    try {
      const r = new Reader(call.args);
      name = r.string();
      r.end("lookup's argument");
    } catch (e) {
      fail(4, `lookup: ${(e as Error).message}`);
      return;
    }
    const object = this.published.get(name);
    if (!object) {
      fail(2, `nothing is published under ${JSON.stringify(name)}`);
      return;
    }
    const refs: WireRef[] = [];
    const w = new Writer();
    writeValue(w, { type: "ref", interface: "" }, object, this.refWriter(refs));
    reply({ id: call.id ?? 0n, ok: { refs, value: w.finish() }, error: null });
  }
}

export { REGISTRY_FINGERPRINT };
