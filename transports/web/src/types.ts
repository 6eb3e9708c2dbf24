// TypeScript declarations for described interfaces, so that proxies get
// completion where the interface is known at build time.

import type { WireView } from "./frames.js";
import { type Schema, decodeSchema } from "./schema.js";

/** The TypeScript type of a value of `s`, as this library encodes and decodes it. */
export function typeOf(s: Schema): string {
  switch (s.type) {
    case "bool": return "boolean";
    case "u8": case "u16": case "u32": case "i8": case "i16": case "i32": case "f32": case "f64": return "number";
    case "u64": case "u128": case "i64": case "i128": return "bigint";
    case "char": case "string": return "string";
    case "bytes": return "Uint8Array";
    case "unit": return "null";
    case "option": return `${typeOf(s.of)} | null`;
    case "seq": return `Array<${typeOf(s.of)}>`;
    case "map": return `Map<${typeOf(s.key)}, ${typeOf(s.value)}>`;
    case "tuple": return `[${s.items.map(typeOf).join(", ")}]`;
    case "struct": return `{ ${s.fields.map(([n, f]) => `${JSON.stringify(n)}: ${typeOf(f)}`).join("; ")} }`;
    case "enum":
      return s.variants
        .map(([n, v]) => {
          const fields = v.kind === "unit" ? "null"
            : v.kind === "newtype" ? typeOf(v.schema)
              : v.kind === "tuple" ? typeOf({ type: "tuple", items: v.items })
                : typeOf({ type: "struct", fields: v.fields });
          return `{ ${JSON.stringify(n)}: ${fields} }`;
        })
        .join(" | ") || "never";
    case "ref": return s.interface ? identifier(s.interface) : "object";
  }
}

function identifier(name: string): string {
  return name.replace(/[^A-Za-z0-9_$]/g, "_");
}

/**
 * A TypeScript declaration of the views' interfaces: one `interface` per
 * interface, each method returning a promise of its result and taking
 * `CallOptions` after its arguments.
 */
export function declarationsOf(views: WireView[]): string {
  const seen = new Set<string>();
  const out = ['import type { CallOptions } from "@tether/web";', ""];
  for (const view of views) {
    if (seen.has(view.interface)) continue;
    seen.add(view.interface);
    out.push(`/** ${view.interface}, fingerprint ${view.fingerprint.toString(16).padStart(16, "0")}. */`);
    out.push(`export interface ${identifier(view.interface)} {`);
    for (const m of view.methods) {
      if (!m.types) continue;
      const params = m.types.params.map(([n, s]) => `${identifier(n)}: ${typeOf(decodeSchema(s))}`);
      params.push("options?: CallOptions");
      const result = m.kind === 1 ? "null" : typeOf(decodeSchema(m.types.result));
      out.push(`  ${identifier(m.name)}(${params.join(", ")}): Promise<${result}>;`);
    }
    out.push("}", "");
  }
  return out.join("\n");
}
