// @tether/web: a Tether peer for browsers and Node.js.

export { DecodeError, fnv1a64, fromHex, hex, selectorOf } from "./codec.js";
export { VERSION, type WireView, type WireMethod, type WireTypes } from "./frames.js";
export {
  EncodeError, type Field, type InterfaceDecl, type MethodDecl, MAX_DEPTH, type Schema, type Variant,
  decodeSchema, decodeValue, encodeInterface, encodeSchema, encodeValue, fingerprintOf, list,
  schemaToString, t,
} from "./schema.js";
export {
  type CallInfo, type CallOptions, CalleeError, type ConnectOptions, ERROR_KINDS, Peer, type RefInfo,
  TetherError, type Transport, connect, declarationOf, implement, openPeer, refInfo, webSocketTransport,
} from "./peer.js";
export { type RelayServer, type ServeOptions, connectThroughRelay, serveThroughRelay } from "./relay.js";
export { declarationsOf, typeOf } from "./types.js";
