// The bytes of the Tether wire protocol: postcard's varints, zigzag,
// strings and fixed-width integers (PROTOCOL.md, §3), and FNV hashes.

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bad input: bytes that do not decode as the protocol says. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

/** Appends bytes to a growing buffer. */
export class Writer {
  private buf = new Uint8Array(64);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b & 0xff;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** An unsigned LEB128 varint of at most `bits` bits. */
  varint(value: number | bigint, bits = 64): void {
    let v = BigInt(value);
    if (v < 0n || v >= 1n << BigInt(bits)) {
      throw new RangeError(`${value} does not fit an unsigned ${bits}-bit varint`);
    }
    if (v < 0x80n) {
      this.byte(Number(v));
      return;
    }
    while (v >= 0x80n) {
      this.byte(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.byte(Number(v));
  }

  /** A zigzag varint of a signed `bits`-bit integer. */
  zigzag(value: number | bigint, bits: number): void {
    const v = BigInt(value);
    const min = -(1n << BigInt(bits - 1));
    if (v < min || v > -min - 1n) {
      throw new RangeError(`${value} does not fit a signed ${bits}-bit integer`);
    }
    this.varint(v >= 0n ? v << 1n : ((-v) << 1n) - 1n, bits);
  }

  /** A fixed-width little-endian unsigned integer. */
  fixed(value: number | bigint, bytes: number): void {
    let v = BigInt(value);
    if (v < 0n || v >= 1n << BigInt(bytes * 8)) {
      throw new RangeError(`${value} does not fit ${bytes} bytes`);
    }
    for (let i = 0; i < bytes; i++) {
      this.byte(Number(v & 0xffn));
      v >>= 8n;
    }
  }

  string(s: string): void {
    const b = encoder.encode(s);
    this.varint(b.length, 32);
    this.bytes(b);
  }

  /** A length-prefixed byte string. */
  lengthPrefixed(b: Uint8Array): void {
    this.varint(b.length, 32);
    this.bytes(b);
  }

  f32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes(b);
  }

  f64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.bytes(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Reads bytes from the front of a buffer; every read checks its bounds. */
export class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get left(): number {
    return this.buf.length - this.pos;
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw new DecodeError("ends early");
    return this.buf[this.pos++];
  }

  bytes(n: number): Uint8Array {
    if (n > this.left) throw new DecodeError("ends early");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  rest(): Uint8Array {
    return this.bytes(this.left);
  }

  /** An unsigned varint of at most `bits` bits, as a bigint. */
  varintBig(bits = 64): bigint {
    const maxBytes = Math.ceil(bits / 7);
    let value = 0n;
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte();
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        if (value >= 1n << BigInt(bits)) {
          throw new DecodeError(`varint over ${bits} bits`);
        }
        return value;
      }
    }
    throw new DecodeError(`varint longer than ${maxBytes} bytes`);
  }

  /** An unsigned varint of at most 32 bits, as a number. */
  varint32(): number {
    return Number(this.varintBig(32));
  }

  zigzag(bits: number): bigint {
    const v = this.varintBig(bits);
    return v & 1n ? -((v + 1n) >> 1n) : v >> 1n;
  }

  fixed(bytes: number): bigint {
    const b = this.bytes(bytes);
    let v = 0n;
    for (let i = bytes - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    return v;
  }

  string(): string {
    const n = this.varint32();
    try {
      return decoder.decode(this.bytes(n));
    } catch (e) {
      if (e instanceof DecodeError) throw e;
      throw new DecodeError("a string that is not UTF-8");
    }
  }

  lengthPrefixed(): Uint8Array {
    return this.bytes(this.varint32()).slice();
  }

  option<T>(read: () => T): T | null {
    const tag = this.byte();
    if (tag === 0) return null;
    if (tag === 1) return read();
    throw new DecodeError(`option tag ${tag}`);
  }

  /** A varint count, checked against the bytes left (each element takes one at least). */
  count(): number {
    const n = this.varint32();
    if (n > this.left) throw new DecodeError("a count larger than the bytes left");
    return n;
  }

  f32(): number {
    return new DataView(this.bytes(4).slice().buffer).getFloat32(0, true);
  }

  f64(): number {
    return new DataView(this.bytes(8).slice().buffer).getFloat64(0, true);
  }

  end(what: string): void {
    if (this.left !== 0) throw new DecodeError(`${this.left} bytes left after ${what}`);
  }
}

/** FNV-1a 64 of `bytes` (PROTOCOL.md, §9.2). */
export function fnv1a64(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

/** FNV-1a 32 of a method's name: its selector (PROTOCOL.md, §5.3). */
export function selectorOf(name: string): number {
  let h = 0x811c9dc5;
  for (const b of encoder.encode(name)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Lower-case hex of bytes, for logs and tests. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes from lower-case hex. */
export function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
