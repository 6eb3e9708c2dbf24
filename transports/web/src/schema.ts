// Canonical wire schemas (PROTOCOL.md, §9): decoding and encoding them,
// the fingerprint of an interface, and values encoded by their schema.

import { DecodeError, Reader, Writer, fnv1a64 } from "./codec.js";

/** A field or variant name and its schema. */
export type Field = [name: string, schema: Schema];

/** One variant of an enum. */
export type Variant =
  | { kind: "unit" }
  | { kind: "newtype"; schema: Schema }
  | { kind: "tuple"; items: Schema[] }
  | { kind: "struct"; fields: Field[] };

/** A canonical wire schema. */
export type Schema =
  | { type: "bool" | "u8" | "u16" | "u32" | "u64" | "u128" }
  | { type: "i8" | "i16" | "i32" | "i64" | "i128" }
  | { type: "f32" | "f64" | "char" | "string" | "bytes" | "unit" }
  | { type: "option"; of: Schema }
  | { type: "seq"; of: Schema }
  | { type: "map"; key: Schema; value: Schema }
  | { type: "tuple"; items: Schema[] }
  | { type: "struct"; fields: Field[] }
  | { type: "enum"; variants: [string, Variant][] }
  | { type: "ref"; interface: string };

const LEAVES = [
  "bool", "u8", "u16", "u32", "u64", "u128", "i8", "i16", "i32", "i64", "i128",
  "f32", "f64", "char", "string", "bytes", "unit",
] as const;

/** The deepest a decoded schema may nest (PROTOCOL.md, §9.1). */
export const MAX_DEPTH = 64;

/** Builders for schemas, for declaring interfaces in TypeScript. */
export const t = {
  bool: { type: "bool" } as Schema,
  u8: { type: "u8" } as Schema,
  u16: { type: "u16" } as Schema,
  u32: { type: "u32" } as Schema,
  u64: { type: "u64" } as Schema,
  u128: { type: "u128" } as Schema,
  i8: { type: "i8" } as Schema,
  i16: { type: "i16" } as Schema,
  i32: { type: "i32" } as Schema,
  i64: { type: "i64" } as Schema,
  i128: { type: "i128" } as Schema,
  f32: { type: "f32" } as Schema,
  f64: { type: "f64" } as Schema,
  char: { type: "char" } as Schema,
  string: { type: "string" } as Schema,
  bytes: { type: "bytes" } as Schema,
  unit: { type: "unit" } as Schema,
  option: (of: Schema): Schema => ({ type: "option", of }),
  /** A sequence; a sequence of u8 is `bytes`, as the canonical form says. */
  seq: (of: Schema): Schema => (of.type === "u8" ? { type: "bytes" } : { type: "seq", of }),
  map: (key: Schema, value: Schema): Schema => ({ type: "map", key, value }),
  tuple: (...items: Schema[]): Schema => list(items),
  struct: (fields: Record<string, Schema>): Schema => {
    const entries = Object.entries(fields);
    return entries.length === 0 ? { type: "unit" } : { type: "struct", fields: entries };
  },
  enum: (variants: Record<string, Schema | null>): Schema => ({
    type: "enum",
    variants: Object.entries(variants).map(([name, s]) => [name, variantOf(s)]),
  }),
  /** A reference to an object offering `iface` ("" for any). */
  ref: (iface: string): Schema => ({ type: "ref", interface: iface }),
};

/** Values sent one after another: none is unit, one is itself, more a tuple. */
export function list(items: Schema[]): Schema {
  if (items.length === 0) return { type: "unit" };
  if (items.length === 1) return items[0];
  return { type: "tuple", items };
}

/** A variant whose fields encode as `s` would (null: no fields). */
function variantOf(s: Schema | null): Variant {
  if (s === null || s.type === "unit") return { kind: "unit" };
  if (s.type === "tuple") return { kind: "tuple", items: s.items };
  if (s.type === "struct") return { kind: "struct", fields: s.fields };
  return { kind: "newtype", schema: s };
}

const TAGS: Record<string, number> = {
  bool: 0, u8: 1, u16: 2, u32: 3, u64: 4, u128: 5, i8: 6, i16: 7, i32: 8, i64: 9, i128: 10,
  f32: 11, f64: 12, char: 13, string: 14, bytes: 15, unit: 16,
  option: 17, seq: 18, map: 19, tuple: 20, struct: 21, enum: 22, ref: 23,
};

/** Writes the canonical encoding of `s` (PROTOCOL.md, §9.1). */
export function writeSchema(w: Writer, s: Schema): void {
  w.byte(TAGS[s.type]);
  switch (s.type) {
    case "option":
    case "seq":
      writeSchema(w, s.of);
      break;
    case "map":
      writeSchema(w, s.key);
      writeSchema(w, s.value);
      break;
    case "tuple":
      w.varint(s.items.length, 32);
      for (const item of s.items) writeSchema(w, item);
      break;
    case "struct":
      writeFields(w, s.fields);
      break;
    case "enum":
      w.varint(s.variants.length, 32);
      for (const [name, v] of s.variants) {
        w.string(name);
        switch (v.kind) {
          case "unit": w.byte(0); break;
          case "newtype": w.byte(1); writeSchema(w, v.schema); break;
          case "tuple":
            w.byte(2);
            w.varint(v.items.length, 32);
            for (const item of v.items) writeSchema(w, item);
            break;
          case "struct": w.byte(3); writeFields(w, v.fields); break;
        }
      }
      break;
    case "ref":
      w.string(s.interface);
      break;
    default:
      break;
  }
}

function writeFields(w: Writer, fields: Field[]): void {
  w.varint(fields.length, 32);
  for (const [name, s] of fields) {
    w.string(name);
    writeSchema(w, s);
  }
}

/** The canonical bytes of `s`. */
export function encodeSchema(s: Schema): Uint8Array {
  const w = new Writer();
  writeSchema(w, s);
  return w.finish();
}

/** Reads one schema; refuses nesting deeper than {@link MAX_DEPTH}. */
export function readSchema(r: Reader, depth = 0): Schema {
  if (depth >= MAX_DEPTH) throw new DecodeError(`schema nested deeper than ${MAX_DEPTH} levels`);
  const tag = r.byte();
  if (tag < LEAVES.length) return { type: LEAVES[tag] } as Schema;
  const next = () => readSchema(r, depth + 1);
  const fields = (): Field[] => {
    const n = r.count();
    const out: Field[] = [];
    for (let i = 0; i < n; i++) out.push([r.string(), next()]);
    return out;
  };
  const items = (): Schema[] => {
    const n = r.count();
    const out: Schema[] = [];
    for (let i = 0; i < n; i++) out.push(next());
    return out;
  };
  switch (tag) {
    case 17: return { type: "option", of: next() };
    case 18: return { type: "seq", of: next() };
    case 19: return { type: "map", key: next(), value: next() };
    case 20: return { type: "tuple", items: items() };
    case 21: return { type: "struct", fields: fields() };
    case 22: {
      const n = r.count();
      const variants: [string, Variant][] = [];
      for (let i = 0; i < n; i++) {
        const name = r.string();
        const kind = r.byte();
        let v: Variant;
        if (kind === 0) v = { kind: "unit" };
        else if (kind === 1) v = { kind: "newtype", schema: next() };
        else if (kind === 2) v = { kind: "tuple", items: items() };
        else if (kind === 3) v = { kind: "struct", fields: fields() };
        else throw new DecodeError(`unknown variant kind ${kind}`);
        variants.push([name, v]);
      }
      return { type: "enum", variants };
    }
    case 23: return { type: "ref", interface: r.string() };
    default: throw new DecodeError(`unknown schema tag ${tag}`);
  }
}

/** The schema that fills `bytes` exactly. */
export function decodeSchema(bytes: Uint8Array): Schema {
  const r = new Reader(bytes);
  const s = readSchema(r);
  r.end("a schema");
  return s;
}

/** A readable form, as the Rust side prints it. */
export function schemaToString(s: Schema): string {
  const fields = (f: Field[]) => `{ ${f.map(([n, t]) => `${n}: ${schemaToString(t)}`).join(", ")} }`;
  const items = (i: Schema[]) => `(${i.map(schemaToString).join(", ")})`;
  switch (s.type) {
    case "string": return "String";
    case "bytes": return "[u8]";
    case "unit": return "()";
    case "option": return `Option<${schemaToString(s.of)}>`;
    case "seq": return `[${schemaToString(s.of)}]`;
    case "map": return `{${schemaToString(s.key)}: ${schemaToString(s.value)}}`;
    case "tuple": return items(s.items);
    case "struct": return fields(s.fields);
    case "enum":
      return s.variants
        .map(([n, v]) =>
          v.kind === "unit" ? n
            : v.kind === "newtype" ? `${n}(${schemaToString(v.schema)})`
              : v.kind === "tuple" ? `${n}${items(v.items)}`
                : `${n} ${fields(v.fields)}`)
        .join(" | ");
    case "ref": return s.interface ? `Ref<${s.interface}>` : "Ref";
    default: return s.type;
  }
}

/** One method of an interface declaration. */
export interface MethodDecl {
  /** The parameters, in order, with their names. */
  params: Field[];
  /** The successful result. */
  result: Schema;
  /** The callee's error type, for a method returning `Result<T, E>`. */
  error?: Schema | null;
  /** How the exporting side carries the method out: "sync" (the default) or "oneway". */
  kind?: "sync" | "oneway";
}

/** An interface: its name and methods. */
export interface InterfaceDecl {
  name: string;
  methods: Record<string, MethodDecl>;
  /** The whole interface's fingerprint, when the methods are only some of it (a view's, from a Description). */
  fingerprint?: bigint;
}

/** The canonical encoding of an interface (PROTOCOL.md, §9.2). */
export function encodeInterface(decl: InterfaceDecl): Uint8Array {
  const w = new Writer();
  w.string(decl.name);
  const enc = new TextEncoder();
  const names = Object.keys(decl.methods).sort((a, b) => {
    const x = enc.encode(a);
    const y = enc.encode(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  });
  w.varint(names.length, 32);
  for (const name of names) {
    const m = decl.methods[name];
    w.string(name);
    writeSchema(w, list(m.params.map(([, s]) => s)));
    writeSchema(w, m.result);
    if (m.error) {
      w.byte(1);
      writeSchema(w, m.error);
    } else {
      w.byte(0);
    }
  }
  return w.finish();
}

/** The fingerprint of an interface: FNV-1a 64 of its encoding (PROTOCOL.md, §9.2). */
export function fingerprintOf(decl: InterfaceDecl): bigint {
  return fnv1a64(encodeInterface(decl));
}

/** What encoding and decoding a value need of the connection: references. */
export interface RefCodec {
  /** The table index of a reference about to be sent. */
  writeRef(value: unknown, iface: string): number;
  /** The reference at a table index of the frame being read. */
  readRef(index: number, iface: string): unknown;
}

const INT_BITS: Record<string, number> = {
  u8: 8, u16: 16, u32: 32, u64: 64, u128: 128, i8: 8, i16: 16, i32: 32, i64: 64, i128: 128,
};

/** Thrown for a value that does not fit its schema. */
export class EncodeError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "EncodeError";
  }
}

function integer(value: unknown, what: string): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  throw new EncodeError(`${what}: expected an integer, got ${typeof value}`);
}

/**
 * Writes `value` as `s` says (PROTOCOL.md, §9.4). JavaScript values:
 * `boolean`; `number` for integers up to 32 bits and floats; `bigint` for
 * 64 and 128 bits (a `number` is accepted); `string` for char and string;
 * `Uint8Array` for bytes; `null` for unit and none; arrays for sequences
 * and tuples; `Map` (or a plain object, for string keys) for maps;
 * objects for structs; `{ Variant: fields }` (or the name alone, for a
 * variant without fields) for enums; a proxy or an exported object for a
 * reference.
 */
export function writeValue(w: Writer, s: Schema, value: unknown, refs: RefCodec, path = "value"): void {
  switch (s.type) {
    case "bool":
      if (typeof value !== "boolean") throw new EncodeError(`${path}: expected a boolean`);
      w.byte(value ? 1 : 0);
      return;
    case "u8": {
      const v = integer(value, path);
      if (v < 0n || v > 255n) throw new EncodeError(`${path}: ${v} does not fit a u8`);
      w.byte(Number(v));
      return;
    }
    case "i8": {
      const v = integer(value, path);
      if (v < -128n || v > 127n) throw new EncodeError(`${path}: ${v} does not fit an i8`);
      w.byte(Number(v) & 0xff);
      return;
    }
    case "u16": case "u32": case "u64": case "u128":
      try {
        w.varint(integer(value, path), INT_BITS[s.type]);
      } catch (e) {
        throw e instanceof RangeError ? new EncodeError(`${path}: ${e.message}`) : e;
      }
      return;
    case "i16": case "i32": case "i64": case "i128":
      try {
        w.zigzag(integer(value, path), INT_BITS[s.type]);
      } catch (e) {
        throw e instanceof RangeError ? new EncodeError(`${path}: ${e.message}`) : e;
      }
      return;
    case "f32": case "f64":
      if (typeof value !== "number") throw new EncodeError(`${path}: expected a number`);
      if (s.type === "f32") w.f32(value);
      else w.f64(value);
      return;
    case "char":
      if (typeof value !== "string" || [...value].length !== 1) {
        throw new EncodeError(`${path}: expected one character`);
      }
      w.string(value);
      return;
    case "string":
      if (typeof value !== "string") throw new EncodeError(`${path}: expected a string`);
      w.string(value);
      return;
    case "bytes":
      if (!(value instanceof Uint8Array)) throw new EncodeError(`${path}: expected a Uint8Array`);
      w.lengthPrefixed(value);
      return;
    case "unit":
      return;
    case "option":
      if (value === null || value === undefined) {
        w.byte(0);
      } else {
        w.byte(1);
        writeValue(w, s.of, value, refs, path);
      }
      return;
    case "seq": {
      if (!Array.isArray(value)) throw new EncodeError(`${path}: expected an array`);
      w.varint(value.length, 32);
      value.forEach((v, i) => writeValue(w, s.of, v, refs, `${path}[${i}]`));
      return;
    }
    case "map": {
      const entries = value instanceof Map ? [...value.entries()]
        : value !== null && typeof value === "object" ? Object.entries(value)
          : null;
      if (entries === null) throw new EncodeError(`${path}: expected a Map`);
      w.varint(entries.length, 32);
      for (const [k, v] of entries) {
        writeValue(w, s.key, k, refs, `${path} key`);
        writeValue(w, s.value, v, refs, `${path}[${String(k)}]`);
      }
      return;
    }
    case "tuple":
      if (!Array.isArray(value) || value.length !== s.items.length) {
        throw new EncodeError(`${path}: expected an array of ${s.items.length}`);
      }
      s.items.forEach((item, i) => writeValue(w, item, value[i], refs, `${path}[${i}]`));
      return;
    case "struct":
      writeFieldsValue(w, s.fields, value, refs, path);
      return;
    case "enum": {
      let name: string;
      let fields: unknown = null;
      if (typeof value === "string") {
        name = value;
      } else if (value !== null && typeof value === "object" && Object.keys(value).length === 1) {
        [name, fields] = Object.entries(value)[0];
      } else {
        throw new EncodeError(`${path}: expected { Variant: value } or a variant's name`);
      }
      const index = s.variants.findIndex(([n]) => n === name);
      if (index < 0) throw new EncodeError(`${path}: no variant ${name}`);
      w.varint(index, 32);
      const v = s.variants[index][1];
      const at = `${path}.${name}`;
      if (v.kind === "newtype") writeValue(w, v.schema, fields, refs, at);
      else if (v.kind === "tuple") writeValue(w, { type: "tuple", items: v.items }, fields, refs, at);
      else if (v.kind === "struct") writeFieldsValue(w, v.fields, fields, refs, at);
      return;
    }
    case "ref":
      w.varint(refs.writeRef(value, s.interface), 32);
      return;
  }
}

function writeFieldsValue(w: Writer, fields: Field[], value: unknown, refs: RefCodec, path: string): void {
  if (value === null || typeof value !== "object") throw new EncodeError(`${path}: expected an object`);
  const record = value as Record<string, unknown>;
  for (const [name, s] of fields) {
    if (!(name in record) && s.type !== "option" && s.type !== "unit") {
      throw new EncodeError(`${path}: missing field ${name}`);
    }
    writeValue(w, s, record[name], refs, `${path}.${name}`);
  }
}

const SMALL = new Set(["u8", "u16", "u32", "i8", "i16", "i32"]);

/** Reads a value of schema `s` (PROTOCOL.md, §9.4). */
export function readValue(r: Reader, s: Schema, refs: RefCodec): unknown {
  switch (s.type) {
    case "bool": {
      const b = r.byte();
      if (b > 1) throw new DecodeError(`a bool byte ${b}`);
      return b === 1;
    }
    case "u8": return r.byte();
    case "i8": { const b = r.byte(); return b > 127 ? b - 256 : b; }
    case "u16": case "u32": case "u64": case "u128": {
      const v = r.varintBig(INT_BITS[s.type]);
      return SMALL.has(s.type) ? Number(v) : v;
    }
    case "i16": case "i32": case "i64": case "i128": {
      const v = r.zigzag(INT_BITS[s.type]);
      return SMALL.has(s.type) ? Number(v) : v;
    }
    case "f32": return r.f32();
    case "f64": return r.f64();
    case "char": {
      const c = r.string();
      if ([...c].length !== 1) throw new DecodeError("a char that is not one character");
      return c;
    }
    case "string": return r.string();
    case "bytes": return r.lengthPrefixed();
    case "unit": return null;
    case "option": return r.option(() => readValue(r, s.of, refs));
    case "seq": {
      const n = r.count();
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) out.push(readValue(r, s.of, refs));
      return out;
    }
    case "map": {
      const n = r.count();
      const out = new Map<unknown, unknown>();
      for (let i = 0; i < n; i++) {
        const k = readValue(r, s.key, refs);
        out.set(k, readValue(r, s.value, refs));
      }
      return out;
    }
    case "tuple": return s.items.map((item) => readValue(r, item, refs));
    case "struct": return readFieldsValue(r, s.fields, refs);
    case "enum": {
      const index = r.varint32();
      const variant = s.variants[index];
      if (!variant) throw new DecodeError(`variant index ${index} of ${s.variants.length}`);
      const [name, v] = variant;
      const fields = v.kind === "unit" ? null
        : v.kind === "newtype" ? readValue(r, v.schema, refs)
          : v.kind === "tuple" ? v.items.map((item) => readValue(r, item, refs))
            : readFieldsValue(r, v.fields, refs);
      return { [name]: fields };
    }
    case "ref": return refs.readRef(r.varint32(), s.interface);
  }
}

function readFieldsValue(r: Reader, fields: Field[], refs: RefCodec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of fields) {
    // defineProperty, so that a field named `__proto__` is a field.
    Object.defineProperty(out, name, { value: readValue(r, s, refs), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Encodes a value of `s` on its own (no references allowed). */
export function encodeValue(s: Schema, value: unknown): Uint8Array {
  const w = new Writer();
  writeValue(w, s, value, NO_REFS);
  return w.finish();
}

/** Decodes a value of `s` that fills `bytes` (no references allowed). */
export function decodeValue(s: Schema, bytes: Uint8Array): unknown {
  const r = new Reader(bytes);
  const v = readValue(r, s, NO_REFS);
  r.end("a value");
  return v;
}

const NO_REFS: RefCodec = {
  writeRef() {
    throw new EncodeError("a reference cannot travel here");
  },
  readRef() {
    throw new DecodeError("a reference cannot travel here");
  },
};
