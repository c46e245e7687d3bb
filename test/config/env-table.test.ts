/**
 * One table of environment variables (src/core/config/env.ts), read by
 * every runtime, and the README's configuration table checked against it:
 * the same names, runtimes and defaults, nothing missing either way.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ENV, ENV_TABLE, readEnv } from "../../src/core/config/env.js";
import { ConfigError } from "../../src/core/errors.js";

const RUNTIME_LABEL = { node: "Node", workers: "Workers", lambda: "Lambda" } as const;

/** Rows of the README table under "## Configuration": name → its cells. */
function readmeRows(): Map<string, { runtimes: string; meaning: string; default: string }> {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.split(/^## /m).find((s) => s.startsWith("Configuration"));
  expect(section, 'README has a "## Configuration" section').toBeDefined();
  const rows = new Map<string, { runtimes: string; meaning: string; default: string }>();
  for (const line of section!.split("\n")) {
    const m = /^\| `([A-Z_]+)` \| ([^|]+) \| (.+) \| ([^|]+) \|$/.exec(line.trim());
    if (m) rows.set(m[1]!, { runtimes: m[2]!.trim(), meaning: m[3]!.trim(), default: m[4]!.trim() });
  }
  return rows;
}

describe("the table of environment variables", () => {
  it("the README's configuration table lists exactly the table's variables, with their runtimes and defaults", () => {
    const rows = readmeRows();
    expect([...rows.keys()].sort()).toEqual(ENV_TABLE.map((v) => v.name).sort());
    for (const v of ENV_TABLE) {
      const row = rows.get(v.name)!;
      expect(row.runtimes, v.name).toBe(v.runtimes.map((r) => RUNTIME_LABEL[r]).join(", "));
      expect(row.default, v.name).toBe(v.shownDefault);
      expect(row.meaning, v.name).toContain(v.meaning);
    }
  });

  it("every QML_* variable the READMEs name is in the table (or is a deployment's, a binding's or a test's own)", () => {
    const own = new Set([
      "QML_SECRET_ID",
      "QML_QUEUE_URL",
      "QML_NEON_FETCH_ENDPOINT",
      "QML_QUEUE",
      "QML_DB",
      "QML_TEST_REDIS_URL",
      "QML_TEST_DATABASE_URL",
      "QML_SCREENSHOTS",
      "QML_SCHEMA",
      "QML_CHAOS_SOAK_MS",
      "QML_CHAOS_LONG",
    ]);
    const known = new Set(ENV_TABLE.map((v) => v.name));
    for (const file of ["../../README.md", "../../deploy/cloudflare/README.md"]) {
      const text = readFileSync(new URL(file, import.meta.url), "utf8");
      const named = new Set(text.match(/\bQML_[A-Z_]+[A-Z]\b/g) ?? []);
      const stray = [...named].filter((n) => !known.has(n) && !own.has(n));
      expect(stray, file).toEqual([]);
    }
  });

  it("every name is used once", () => {
    const names = ENV_TABLE.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it("reads values and fallbacks, and names the variable in every refusal", () => {
    const e = readEnv({ QML_WORKERS: "7", QML_QUEUES: " a, b ,", QML_FINISHED_JOB_TTL_MS: 0, QML_DASHBOARD_TOKEN: "a".repeat(16) + ",bbbbbbbbbbbbbbbbbb" });
    expect(e).toMatchObject({
      workers: 7,
      queues: ["a", "b"],
      finishedJobTtlMs: 0,
      leaseMs: 30_000,
      logLevel: "info",
      dashboardTokens: ["a".repeat(16), "b".repeat(18)],
    });
    expect(e.jobTimeoutMs).toBeUndefined();
    for (const v of ENV_TABLE) {
      const bad = v.name === "UPSTASH_REDIS_REST_TOKEN" || v.name === "QML_WORKERS_MODULE" ? undefined : "\u0001not valid\u0001";
      if (bad === undefined) continue;
      let thrown: unknown;
      try {
        readEnv({ [v.name]: bad });
      } catch (e) {
        thrown = e;
      }
      expect(thrown, v.name).toBeInstanceOf(ConfigError);
      expect((thrown as Error).message, v.name).toContain(v.name);
    }
  });

  it("a runtime reads only its own variables", () => {
    expect(readEnv({ QML_POLL_MS: "nonsense" }, "workers").pollMs).toBe(ENV.pollMs.fallback);
    expect(() => readEnv({ QML_POLL_MS: "nonsense" }, "node")).toThrow(/QML_POLL_MS/);
    expect(() => readEnv({ QML_BUDGET_MS: "5" }, "lambda")).toThrow(/QML_BUDGET_MS.*from 1000/);
  });
});
