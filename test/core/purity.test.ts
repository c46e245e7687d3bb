/** The core speaks Web Standards only: no node:*, no drivers, no adapters. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";

it("src/core imports nothing from node, drivers or adapters", () => {
  const dir = join(import.meta.dirname, "../../src/core");
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));
  expect(files.length).toBeGreaterThan(8);
  for (const f of files) {
    const src = readFileSync(join(dir, f), "utf8");
    const imports = [...src.matchAll(/from\s+"([^"]+)"/g)].map((m) => m[1]!);
    for (const spec of imports) {
      expect(spec.startsWith(".") || spec === "croner", `${f} imports ${spec}`).toBe(true);
      expect(spec.includes("adapters"), `${f} imports ${spec}`).toBe(false);
    }
    const code = src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    expect(/\bprocess\.|\bBuffer\b|\brequire\(|\bsetImmediate\b|\b__dirname\b/.test(code), `${f} uses a Node global`).toBe(false);
  }
});
