// Serving and connecting through a Tether relay (PROTOCOL.md, §10): a
// browser cannot listen, so it registers at a relay, and other peers reach
// it there by its server id.

import { DecodeError, Reader, Writer } from "./codec.js";
import { TAG } from "./frames.js";
import {
  type ConnectOptions, type Peer, TetherError, type Transport, openPeer, webSocketTransport,
} from "./peer.js";

const RELAY = {
  REGISTER: 0x80000101, REGISTERED: 0x80000102, CONNECT: 0x80000103, CONNECTED: 0x80000104,
  REFUSED: 0x80000105, OPEN: 0x80000106, DATA: 0x80000107, CLOSE: 0x80000108,
} as const;

type RelayFrame =
  | { tag: typeof RELAY.REGISTERED; server: bigint; credential: Uint8Array }
  | { tag: typeof RELAY.CONNECTED }
  | { tag: typeof RELAY.REFUSED; reason: string }
  | { tag: typeof RELAY.OPEN; link: number }
  | { tag: typeof RELAY.DATA; link: number; frame: Uint8Array }
  | { tag: typeof RELAY.CLOSE; link: number; reason: string }
  | { tag: number; other: Uint8Array };

function frameOf(tag: number, body: (w: Writer) => void = () => {}): Uint8Array {
  const w = new Writer();
  w.fixed(tag, 4);
  body(w);
  return w.finish();
}

function decodeRelay(bytes: Uint8Array): RelayFrame {
  const r = new Reader(bytes);
  const tag = Number(r.fixed(4));
  switch (tag) {
    case RELAY.REGISTERED: return { tag, server: r.fixed(8), credential: r.lengthPrefixed() };
    case RELAY.CONNECTED: return { tag };
    case RELAY.REFUSED: return { tag, reason: r.string() };
    case RELAY.OPEN: return { tag, link: r.varint32() };
    case RELAY.DATA: { const link = r.varint32(); return { tag, link, frame: r.rest().slice() }; }
    case RELAY.CLOSE: return { tag, link: r.varint32(), reason: r.string() };
    default: return { tag, other: bytes };
  }
}

function hex16(v: bigint): string {
  return v.toString(16).padStart(16, "0");
}

function credentialBytes(text: string): Uint8Array {
  if (!/^[0-9a-f]{32}$/.test(text)) throw new TypeError("a relay credential is 32 hex digits");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Opens a WebSocket to the relay and waits for its answer to `first`. */
async function handshake(relayUrl: string, first: Uint8Array, options: ConnectOptions): Promise<[WebSocket, RelayFrame]> {
  const Ws = options.WebSocket ?? globalThis.WebSocket;
  if (!Ws) throw new Error("no WebSocket here: pass options.WebSocket");
  const ws = new Ws(relayUrl, "tether");
  ws.binaryType = "arraybuffer";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const answer = await new Promise<RelayFrame>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.close();
      reject(new TetherError("disconnected", `the relay did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => clearTimeout(timer);
    ws.addEventListener("open", () => ws.send(first));
    const onMessage = (event: MessageEvent) => {
      ws.removeEventListener("message", onMessage);
      done();
      try {
        resolve(decodeRelay(new Uint8Array(event.data as ArrayBuffer)));
      } catch (e) {
        reject(new TetherError("disconnected", `the relay's answer: ${(e as Error).message}`));
      }
    };
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", (event: CloseEvent) => {
      done();
      reject(new TetherError("disconnected", event.reason || "the relay closed the connection"));
    });
    ws.addEventListener("error", () => {
      done();
      reject(new TetherError("disconnected", `cannot connect to the relay at ${relayUrl}`));
    });
  });
  if ("reason" in answer && answer.tag === RELAY.REFUSED) {
    ws.close();
    const kind = /credential/.test(answer.reason) ? "access denied" : "disconnected";
    throw new TetherError(kind, `the relay refused: ${answer.reason}`);
  }
  return [ws, answer];
}

/** Connects to the server `server` (16 hex digits) registered at the relay at `relayUrl`. */
export async function connectThroughRelay(relayUrl: string, server: string, options: ConnectOptions = {}): Promise<Peer> {
  if (!/^[0-9a-f]{16}$/.test(server)) throw new TypeError("a server id is 16 hex digits");
  const connect = frameOf(RELAY.CONNECT, (w) => w.fixed(BigInt(`0x${server}`), 8));
  const [ws, answer] = await handshake(relayUrl, connect, options);
  if (answer.tag !== RELAY.CONNECTED) {
    ws.close();
    throw new TetherError("disconnected", `the relay answered a Connect with frame ${answer.tag.toString(16)}`);
  }
  return openPeer(webSocketTransport(ws), options);
}

/** Options of {@link serveThroughRelay}. */
export interface ServeOptions extends ConnectOptions {
  /** The credential of an earlier registration (32 hex digits); none to be issued one. */
  credential?: string;
  /** Called with each client's connection once it opens. */
  onPeer?: (peer: Peer) => void;
}

/** A registration at a relay: every client that connects through it gets a {@link Peer}. */
export interface RelayServer {
  /** The id clients connect with (16 hex digits). */
  readonly serverId: string;
  /** The credential that registers again (32 hex digits; keep it secret). */
  readonly credential: string;
  /** The clients' connections open now. */
  peers(): Peer[];
  /** Offers `object` under `name` to every client's lookups (see {@link Peer.publish}). */
  publish(name: string, object: object): void;
  /** Resolves with the reason when the registration ends. */
  whenClosed(): Promise<string>;
  /** Ends the registration and every client's connection. */
  close(): void;
}

/** Registers this side as a server at the relay at `relayUrl`. */
export async function serveThroughRelay(relayUrl: string, options: ServeOptions = {}): Promise<RelayServer> {
  const credential = options.credential ? credentialBytes(options.credential) : null;
  const register = frameOf(RELAY.REGISTER, (w) => {
    if (credential) {
      w.byte(1);
      w.lengthPrefixed(credential);
    } else {
      w.byte(0);
    }
  });
  const [ws, answer] = await handshake(relayUrl, register, options);
  if (answer.tag !== RELAY.REGISTERED || !("server" in answer)) {
    ws.close();
    throw new TetherError("disconnected", `the relay answered a Register with frame ${answer.tag.toString(16)}`);
  }
  const links = new Map<number, { deliver(frame: Uint8Array): void; end(reason: string): void; peer?: Peer }>();
  const published = new Map<string, object>();
  let closedReason: string | null = null;
  let resolveClosed!: (reason: string) => void;
  const closing = new Promise<string>((r) => (resolveClosed = r));
  const sendRaw = (bytes: Uint8Array) => {
    if (ws.readyState === 1) ws.send(bytes);
  };
  const end = (reason: string) => {
    if (closedReason !== null) return;
    closedReason = reason;
    for (const link of links.values()) link.end(reason);
    links.clear();
    resolveClosed(reason);
  };

  const openLink = (link: number) => {
    let events: { onOpen(): void; onFrame(frame: Uint8Array): void; onClose(reason: string): void } | null = null;
    let open = true;
    const transport: Transport = {
      start(e) {
        events = e;
        queueMicrotask(() => e.onOpen());
      },
      send(frame) {
        sendRaw(frameOf(RELAY.DATA, (w) => {
          w.varint(link, 32);
          w.bytes(frame);
        }));
      },
      close(reason) {
        if (!open) return;
        open = false;
        links.delete(link);
        sendRaw(frameOf(RELAY.CLOSE, (w) => {
          w.varint(link, 32);
          w.string(reason);
        }));
        events?.onClose(reason);
      },
      get isOpen() {
        return open && ws.readyState === 1;
      },
    };
    const entry: { deliver(frame: Uint8Array): void; end(reason: string): void; peer?: Peer } = {
      deliver: (frame) => events?.onFrame(frame),
      end: (reason) => {
        if (!open) return;
        open = false;
        events?.onClose(reason);
      },
    };
    links.set(link, entry);
    openPeer(transport, options).then(
      (peer) => {
        entry.peer = peer;
        for (const [name, object] of published) peer.publish(name, object);
        options.onPeer?.(peer);
      },
      () => links.delete(link),
    );
  };

  ws.addEventListener("message", (event: MessageEvent) => {
    let frame: RelayFrame;
    try {
      frame = decodeRelay(new Uint8Array(event.data as ArrayBuffer));
    } catch (e) {
      end(`a malformed relay frame: ${(e as DecodeError).message}`);
      ws.close();
      return;
    }
    if (frame.tag === RELAY.OPEN && "link" in frame) openLink(frame.link);
    else if (frame.tag === RELAY.DATA && "frame" in frame) links.get(frame.link)?.deliver(frame.frame);
    else if (frame.tag === RELAY.CLOSE && "link" in frame) {
      const link = links.get(frame.link);
      links.delete(frame.link);
      link?.end(`the client is gone: ${frame.reason}`);
    } else if (frame.tag === TAG.PING && "other" in frame) {
      const pong = frame.other.slice();
      pong.set(new Uint8Array([TAG.PONG, 0, 0, 0]), 0);
      sendRaw(pong);
    } else if (frame.tag === RELAY.REFUSED && "reason" in frame) {
      end(`the relay closed: ${frame.reason}`);
    }
  });
  ws.addEventListener("close", (event: CloseEvent) => end(event.reason || "the relay closed the connection"));
  ws.addEventListener("error", () => end("the relay's connection failed"));

  return {
    serverId: hex16(answer.server),
    credential: Array.from(answer.credential, (b) => b.toString(16).padStart(2, "0")).join(""),
    peers: () => [...links.values()].flatMap((l) => (l.peer && l.peer.closedWith === null ? [l.peer] : [])),
    publish(name, object) {
      published.set(name, object);
      for (const l of links.values()) l.peer?.publish(name, object);
    },
    whenClosed: () => closing,
    close() {
      end("closed by this side");
      ws.close(1000);
    },
  };
}
