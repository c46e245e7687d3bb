/**
 * Issue 22: /readyz tells a stranger the phase, a code and a generic
 * reason; why the store is down (ECONNREFUSED 127.0.0.1:5999, a host name,
 * a database name) goes to the log and to a caller with an admin token.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../../src/index.js";
import { Readiness, publicReport, type ReadinessReport } from "../../src/adapters/runtime/node/readiness.js";
import { loadEnvConfig, startNodeServer, type NodeServerHandle } from "../../src/adapters/runtime/node/index.js";
import { ADMIN, READER } from "./helpers.js";

class Captured implements Logger {
  readonly lines: Array<{ message: string; fields: Record<string, unknown> }> = [];
  private waiters: Array<{ match: (message: string) => boolean; resolve: () => void }> = [];
  debug(): void {}
  info(): void {}
  warn(message: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ message, fields });
    for (const w of this.waiters.filter((w) => w.match(message))) w.resolve();
  }
  error(message: string, fields: Record<string, unknown> = {}): void {
    this.warn(message, fields);
  }
  /** Resolves when a line whose message contains `text` is logged (or has been). */
  seen(text: string): Promise<void> {
    if (this.lines.some((l) => l.message.includes(text))) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ match: (m) => m.includes(text), resolve }));
  }
  child(): Logger {
    return this;
  }
}

let handle: NodeServerHandle | undefined;
afterEach(async () => {
  await handle?.stop(0);
  handle = undefined;
});

async function readyz(url: string, token?: string): Promise<{ status: number; text: string; body: ReadinessReport }> {
  const res = await fetch(`${url}/readyz`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as ReadinessReport };
}

describe("/readyz with the store unreachable", () => {
  it("gives strangers and read-only tokens a generic reason, an admin token the details, the log the details", async () => {
    const logger = new Captured();
    handle = await startNodeServer({
      config: loadEnvConfig({
        QML_STORAGE: "postgres",
        DATABASE_URL: "postgres://qml:secret@127.0.0.1:5999/test",
        QML_DASHBOARD_TOKEN: ADMIN,
        QML_DASHBOARD_READ_TOKEN: READER,
        QML_HOST: "127.0.0.1",
        PORT: "0",
        QML_DEMO: "off",
      }),
      logger,
      maxStartRetryMs: 200,
    });
    // The start loop logs each failed attempt with its error; wait for one, then ask.
    await logger.seen("cannot start");

    for (const token of [undefined, READER, "not-a-token-0123456789abcdef"]) {
      const stranger = await readyz(handle.url, token);
      expect(stranger.status).toBe(503);
      expect(stranger.body).toMatchObject({ ok: false, phase: "starting", code: "STORAGE_UNAVAILABLE", error: "starting: storage unavailable" });
      for (const secret of ["ECONNREFUSED", "127.0.0.1", "5999", "qml:secret", "connect"]) expect(stranger.text).not.toContain(secret);
    }

    const admin = await readyz(handle.url, ADMIN);
    expect(admin.status).toBe(503);
    expect(admin.body.code).toBe("STORAGE_UNAVAILABLE");
    expect(admin.text).toMatch(/ECONNREFUSED|5999/);
    expect(admin.text).not.toContain("secret");

    const logged = JSON.stringify(logger.lines.map((l) => ({ message: l.message, error: String((l.fields.error as Error | undefined)?.message ?? "") })));
    expect(logged).toMatch(/ECONNREFUSED|5999/);
  });
});

describe("publicReport", () => {
  const base = { storage: "postgres", migrated: true, checkedAt: "2030-01-01T00:00:00.000Z" };

  it("keeps what says nothing of the network, and replaces the rest", () => {
    const ok: ReadinessReport = { ok: true, phase: "ready", ...base };
    expect(publicReport(ok)).toEqual(ok);
    const draining: ReadinessReport = { ok: false, phase: "draining", error: "the server is shutting down", code: "SHUTDOWN", ...base };
    expect(publicReport(draining)).toEqual(draining);
    const waiting: ReadinessReport = { ok: false, phase: "starting", error: "starting: migrations not applied yet", ...base, migrated: false };
    expect(publicReport(waiting)).toEqual(waiting);
    const down: ReadinessReport = {
      ok: false,
      phase: "ready",
      error: 'getaddrinfo ENOTFOUND db.internal; database "jobs" does not exist',
      code: "STORAGE_UNAVAILABLE",
      ...base,
    };
    expect(publicReport(down)).toEqual({ ...down, error: "storage unavailable" });
    const config: ReadinessReport = {
      ok: false,
      phase: "starting",
      error: "starting: maxmemory-policy is allkeys-lru on redis.internal",
      code: "CONFIG",
      ...base,
    };
    expect(publicReport(config).error).toBe("starting: the store's configuration is refused; see the server's log");
  });

  it("a probe failing after start is logged once, with its details", async () => {
    const logger = new Captured();
    let fail = true;
    const storage = {
      kind: "postgres",
      driver: { get: async () => (fail ? Promise.reject(new Error("connect ECONNREFUSED 10.0.3.7:5432")) : []) },
    } as unknown as ConstructorParameters<typeof Readiness>[0];
    const r = new Readiness(storage, { cacheMs: 0, logger });
    r.markStarted();
    expect((await r.check()).error).toContain("ECONNREFUSED");
    await r.check();
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]!.fields.reason).toContain("10.0.3.7:5432");
    fail = false;
    expect((await r.check()).ok).toBe(true);
  });
});
