/** The embedded Lua scripts: up to date with the .lua files, documented, and in step with core constants. */
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { GENERATED_FILE, readScripts, renderGenerated } from "../../scripts/embed-lua.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
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

  it("no include directive is left unexpanded, and the history limit matches core's", () => {
    for (const s of generated.ALL_SCRIPTS) expect(s.body, s.name).not.toMatch(/^--@include/m);
    const lib = generated.claim.body;
    expect(Number(/local HISTORY_LIMIT = (\d+)/.exec(lib)?.[1])).toBe(HISTORY_LIMIT);
  });

  it("no script reads the server clock: time always comes from the caller", () => {
    for (const s of generated.ALL_SCRIPTS) expect(s.body, s.name).not.toMatch(/redis\.call\(\s*["']TIME["']/i);
  });
});
