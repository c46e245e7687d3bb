/** The embedded Lua scripts: up to date with the .lua files, documented, and in step with core constants. */
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { GENERATED_FILE, readScripts, renderGenerated } from "../../scripts/embed-lua.js";
import { RATE_COUNT_KEEP_MS } from "../../src/core/driver.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { REQUIRED_FIELDS } from "../../src/adapters/storage/redis/codec.js";
import * as generated from "../../src/adapters/storage/redis/scripts.generated.js";

describe("embedded Lua scripts", () => {
  it("scripts.generated.ts is what scripts/embed-lua.ts makes of the .lua files (run it after editing a script)", () => {
    expect(readFileSync(GENERATED_FILE, "utf8")).toBe(renderGenerated());
  });

  it("each embedded sha is the SHA-1 of its body, which is what EVALSHA looks up", () => {
    expect(generated.ALL_SCRIPTS.length).toBeGreaterThan(10);
    for (const s of generated.ALL_SCRIPTS) {
      expect(s.sha, s.name).toBe(createHash("sha1").update(s.body, "utf8").digest("hex"));
    }
  });

  it("each script opens with a header naming what it does, its KEYS, ARGV and output", () => {
    for (const s of readScripts()) {
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(s.body)?.[1] ?? "";
      expect(header, s.file).toContain(s.file);
      expect(header, s.file).toMatch(/KEYS\[1\]/);
      expect(header, s.file).toMatch(/Output:/);
      if (s.body.includes("ARGV[")) expect(header, s.file).toMatch(/ARGV\[1\]/);
    }
  });

  it("no include directive is left unexpanded, and the history limit and the rate counts' keep match core's", () => {
    for (const s of generated.ALL_SCRIPTS) expect(s.body, s.name).not.toMatch(/^--@include/m);
    const lib = generated.claim.body;
    expect(Number(/local HISTORY_LIMIT = (\d+)/.exec(lib)?.[1])).toBe(HISTORY_LIMIT);
    expect(Number(/local RATE_COUNT_KEEP_MS = (\d+)/.exec(lib)?.[1])).toBe(RATE_COUNT_KEEP_MS);
  });

  it("insert.lua stores the required fields' values under the names codec's REQUIRED_FIELDS gives them, in that order", () => {
    const body = generated.insert.body;
    expect(Number(/local NREQ = (\d+)/.exec(body)?.[1])).toBe(REQUIRED_FIELDS.length);
    // Locals taken from the required values, e.g. `local id, queue, state = ARGV[v], ARGV[v + 3], ARGV[v + 5]`.
    const decl = /local ([\w, ]+) = (ARGV\[v[^\n]*)\n/.exec(body)!;
    const offset = (expr: string) => Number(/^ARGV\[v(?: \+ (\d+))?\]$/.exec(expr.trim())?.[1] ?? (expr.trim() === "ARGV[v]" ? 0 : NaN));
    const locals = new Map(decl[1]!.split(",").map((name, j) => [name.trim(), offset(decl[2]!.split(",")[j]!)]));
    const call = /redis\.call\("HSET", k, "seq", I\(seq\), ([\s\S]*?), unpack\(ARGV, first, i - 1\)\)/.exec(body)![1]!;
    const pairs = [...call.matchAll(/"(\w+)", ([^,]+)/g)].map((m) => [m[1], locals.get(m[2]!.trim()) ?? offset(m[2]!)]);
    expect(pairs).toEqual(REQUIRED_FIELDS.map((name, j) => [name, j]));
  });

  it("no script reads the server clock: time always comes from the caller", () => {
    for (const s of generated.ALL_SCRIPTS) expect(s.body, s.name).not.toMatch(/redis\.call\(\s*["']TIME["']/i);
  });
});
