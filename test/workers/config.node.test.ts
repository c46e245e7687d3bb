/**
 * The runtime's settings: defaults that stay inside the platform's limits,
 * and every bad value refused with a message that names it.
 */
import { describe, expect, it } from "vitest";
import { authFromEnv, configFromEnv, resolveConfig } from "../../src/adapters/runtime/cloudflare/index.js";
import { ConfigError, ValidationError } from "../../src/index.js";

describe("Cloudflare runtime config", () => {
  it("defaults to a 25 s budget with a 2 s margin, 10 jobs at once, the default queue", () => {
    const c = resolveConfig();
    expect(c.budgetMs).toBe(25_000);
    expect(c.safetyMs).toBe(2_000);
    expect(c.concurrency).toBe(10);
    expect(c.queues).toEqual(["default"]);
    expect(c.leaseMs).toBe(30_000);
    expect(c.maxJobs).toBeUndefined();
  });

  it("refuses budgets the platform would cut short, margins that leave no time, and bad queues", () => {
    expect(() => resolveConfig({ budgetMs: 15 * 60_000 })).toThrow(ConfigError);
    expect(() => resolveConfig({ budgetMs: 1000, safetyMs: 1000 })).toThrow(/safetyMs/);
    expect(() => resolveConfig({ concurrency: 0 })).toThrow(/concurrency/);
    expect(() => resolveConfig({ queues: [] })).toThrow(/queues/);
    expect(() => resolveConfig({ queues: ["no spaces"] })).toThrow(ValidationError);
  });

  it("reads vars from the env and names the one that is wrong", () => {
    const c = configFromEnv({
      QML_QUEUES: "critical, default",
      QML_BUDGET_MS: "60000",
      QML_MAX_JOBS: "40",
      QML_DEAD_LETTER_QUEUE: "dlq",
      QML_LOG_LEVEL: "warn",
    });
    expect(c).toMatchObject({ queues: ["critical", "default"], budgetMs: 60_000, maxJobs: 40, deadLetterQueue: "dlq" });
    expect(() => configFromEnv({ QML_BUDGET_MS: "25s" })).toThrow(/QML_BUDGET_MS/);
    expect(() => configFromEnv({ QML_LOG_LEVEL: "loud" })).toThrow(/QML_LOG_LEVEL/);
    expect(configFromEnv({})).toEqual({});
  });

  it("takes API tokens from secrets and is never open", () => {
    expect(authFromEnv({ QML_DASHBOARD_TOKEN: "a-very-long-admin-token, another-admin-token-x", QML_DASHBOARD_READ_TOKEN: "reader-token-0123456789" })).toEqual(
      {
        adminTokens: ["a-very-long-admin-token", "another-admin-token-x"],
        readTokens: ["reader-token-0123456789"],
      },
    );
    expect(authFromEnv({})).toEqual({ adminTokens: [], readTokens: [] });
  });
});
