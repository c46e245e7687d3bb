/**
 * Cancellation across processes on PostgreSQL: the transition statement
 * NOTIFYs the running jobs it ended (on commit, in parts under the 8000-byte
 * payload limit); a server LISTENing on another pool aborts their runs at
 * once. Over Neon's HTTP endpoint, which has no LISTEN, the run stops at
 * its next heartbeat instead.
 */
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { Job, JobState, Storage } from "../../src/index.js";
import { PostgresConfig, postgresBackend, type PostgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { cancelElsewhere, runningJob } from "../helpers/remote-cancel.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "./helpers.js";

const janitor = new SchemaJanitor();
type StorageOnPostgres = Storage & { readonly driver: PostgresBackend };

/** The cancellation payloads on a backend's channel, as another session hears them. */
async function listen(channel: string): Promise<{ payloads: string[]; next: () => Promise<string>; close: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  const payloads: string[] = [];
  const waiters: Array<(p: string) => void> = [];
  client.on("notification", (msg) => {
    if (msg.channel !== channel || !msg.payload?.includes('"cancelled"')) return;
    payloads.push(msg.payload);
    waiters.shift()?.(msg.payload);
  });
  await client.connect();
  await client.query(`LISTEN "${channel}"`);
  return { payloads, next: () => new Promise((resolve) => waiters.push(resolve)), close: () => client.end() };
}

const sorted = <T>(ids: readonly T[]): T[] => [...ids].sort();

describeWithService("postgres", await serviceUp("postgres"), "postgres cross-process cancellation", () => {
  let gateway: NeonGateway;
  const opened: Storage[] = [];
  /** A migrated storage on `schema` with a pool of its own (another process, as the database sees it), or over Neon's HTTP endpoint. */
  async function open(schema: string, driver: "pg" | "neon-http" = "pg"): Promise<StorageOnPostgres> {
    const config = new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema);
    const storage = new Storage(
      postgresBackend(driver === "pg" ? config.withMaxConnections(3) : config.withDriver("neon-http").withNeonFetchEndpoint(gateway.fetchEndpoint)),
    ) as StorageOnPostgres;
    await storage.migrate();
    opened.push(storage);
    return storage;
  }

  beforeAll(async () => {
    gateway = await startNeonGateway({ port: 0, databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await gateway?.close();
    await janitor.dropAll();
  });

  for (const how of ["cancel", "delete"] as const) {
    it(`a ${how} through another process's storage stops the run there within a second (LISTEN/NOTIFY)`, async () => {
      const schema = janitor.next();
      const [runner, other] = [await open(schema), await open(schema)];
      // A minute's lease: only the notification can stop the run in time.
      const run = await runningJob(runner, { leaseMs: 60_000 });
      expect(await runner.subscribed()).toBe(true);
      try {
        expect(await cancelElsewhere(run, other, how)).toBeLessThan(1000);
      } finally {
        await run.server.stop();
      }
    });
  }

  it("NOTIFYs only the ids the statement took out of processing, with its reason, in a payload the enqueue ones cannot be taken for", async () => {
    const schema = janitor.next();
    const [runner, other] = [await open(schema), await open(schema)];
    const heard: Array<[string[], string]> = [];
    runner.onCancel((ids, reason) => heard.push([sorted(ids), reason]));
    const enqueued: string[] = [];
    runner.onEnqueue((jobs) => enqueued.push(...jobs.map((j) => j.queue)));
    expect(await runner.subscribed()).toBe(true);
    const channel = await listen(other.driver.channel);
    try {
      const [idle, later, a, b] = await other.enqueue([
        new Job("x", [], { queue: "idle" }),
        new Job("x", [], { queue: "idle", delay: 60_000 }),
        new Job("x", [], { queue: "run" }),
        new Job("x", [], { queue: "run" }),
      ]);
      const claimed = await other.driver.claim({ queues: ["run"], limit: 2, owner: "elsewhere", leaseMs: 60_000, now: other.clock.now() });
      expect(sorted(claimed.map((r) => r.id))).toEqual(sorted([a, b]));

      // Jobs not running: ended, and nothing announced (no error either).
      expect(await other.cancel([idle!, later!], { by: "ops" })).toEqual([
        { id: idle, status: "applied", state: JobState.Deleted },
        { id: later, status: "applied", state: JobState.Deleted },
      ]);
      const message = channel.next();
      expect(await other.cancel([a!, idle!, b!, "missing"], { by: "ops" })).toEqual([
        { id: a, status: "applied", state: JobState.Deleted },
        { id: idle, status: "invalid_state", state: JobState.Deleted },
        { id: b, status: "applied", state: JobState.Deleted },
        { id: "missing", status: "not_found" },
      ]);
      const payload = JSON.parse(await message) as { cancelled: string[]; reason: string };
      expect({ ...payload, cancelled: sorted(payload.cancelled) }).toEqual({ cancelled: sorted([a, b]), reason: "cancelled by ops" });
      // Notifications keep their order: nothing came before it.
      expect(channel.payloads).toHaveLength(1);
      await expect.poll(() => heard).toEqual([[sorted([a, b]), "cancelled by ops"]]);
      // The enqueue notifications still wake, and a cancellation is not taken for one.
      expect(enqueued.sort()).toEqual(["idle", "run"]);
    } finally {
      await channel.close();
    }
  });

  it("sends a large batch in parts under the 8000-byte payload limit", async () => {
    const schema = janitor.next();
    const [runner, other] = [await open(schema), await open(schema)];
    const heard: string[] = [];
    runner.onCancel((ids) => heard.push(...ids));
    expect(await runner.subscribed()).toBe(true);
    const channel = await listen(other.driver.channel);
    try {
      // The longest ids and reason there are, in three-byte characters, with quotes to escape.
      const ids = Array.from({ length: 60 }, (_, i) => `${i}"`.padEnd(200, "€"));
      await other.enqueue(ids.map((id) => new Job("x", [], { queue: "bulk" }, id)));
      expect(await other.driver.claim({ queues: ["bulk"], limit: 60, owner: "elsewhere", leaseMs: 60_000, now: other.clock.now() })).toHaveLength(60);
      const by = "€".repeat(200);
      const results = await other.cancel(ids, { by });
      expect(results.every((r) => r.status === "applied")).toBe(true);
      await expect.poll(() => heard.length).toBe(60);
      expect(sorted(heard)).toEqual(sorted(ids));
      expect(channel.payloads.length).toBeGreaterThan(1);
      const parts = channel.payloads.map((p) => {
        expect(Buffer.byteLength(p)).toBeLessThan(8000);
        return JSON.parse(p) as { cancelled: string[]; reason: string };
      });
      expect(new Set(parts.map((p) => p.reason))).toEqual(new Set([`cancelled by ${by}`]));
      expect(sorted(parts.flatMap((p) => p.cancelled))).toEqual(sorted(ids));
    } finally {
      await channel.close();
    }
  });

  it("over Neon's HTTP endpoint (no LISTEN) the run stops at its next heartbeat, with a CancelledError", async () => {
    const schema = janitor.next();
    const [runner, other] = [await open(schema, "neon-http"), await open(schema)];
    // 300 ms lease: a heartbeat every 100 ms.
    const run = await runningJob(runner, { leaseMs: 300 });
    expect(await runner.subscribed()).toBe(false);
    try {
      expect(await cancelElsewhere(run, other)).toBeLessThan(1000);
    } finally {
      await run.server.stop();
    }
  });
});
