/**
 * What keeps a long-lived Postgres queue healthy: finished jobs pruned by
 * age and by count, throughput buckets pruned, history bounded in the row,
 * rate keys' counts forgotten once no clock can still claim in their windows,
 * and statements rolled back by a deadlock or serialization failure run again.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, Storage, type JobRecord } from "../../src/index.js";
import { RATE_COUNT_KEEP_MS } from "../../src/core/driver.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { PostgresConfig, createPgDriver, postgresBackend, type PostgresBackend, type SqlDriver } from "../../src/adapters/storage/postgres/index.js";
import { type PgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor, adminQuery } from "./helpers.js";

const janitor = new SchemaJanitor();
const HOUR = 3_600_000;

async function finish(storage: Storage, clock: ManualClock, n: number): Promise<string[]> {
  const ids = await storage.enqueue(Array.from({ length: n }, (_, i) => new Job("h", [i])));
  const claimed = await storage.driver.claim({ queues: ["default"], limit: n, owner: "w", leaseMs: 60_000, now: clock.now() });
  await storage.driver.complete(
    claimed.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" })),
    clock.now(),
  );
  return ids;
}

async function record(storage: Storage, id: string): Promise<JobRecord | null> {
  const [r] = await storage.driver.get([id]);
  return r ?? null;
}

describeWithService("postgres", await serviceUp("postgres"), "postgres housekeeping", () => {
  let driver: PgDriver;
  beforeAll(async () => {
    driver = await createPgDriver({ connectionString: DATABASE_URL, max: 3 });
  });

  /** A backend over the shared driver (or `sql`), in a fresh schema unless one is given. */
  function open(clock: ManualClock, configure: (c: PostgresConfig) => PostgresConfig = (c) => c, sql: SqlDriver = driver, schema = janitor.next()) {
    const backend: PostgresBackend = postgresBackend(configure(new PostgresConfig().withDriver(sql).withSchema(schema)));
    return { backend, storage: new Storage(backend, { clock }), schema };
  }
  afterAll(async () => {
    await driver?.close();
    await janitor.dropAll();
  });

  it("prunes finished jobs past the count limit, then past the TTL, leaving live jobs alone", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { backend, storage } = open(clock, (c) => c.withMaxFinishedJobs(3).withFinishedJobTtl(HOUR));
    await storage.migrate();
    const old = await finish(storage, clock, 2);
    clock.advance(1000);
    const recent = await finish(storage, clock, 3);
    const live = await storage.enqueue(new Job("live", []));
    expect(await backend.prune(clock.now())).toBe(0);
    // Count: only the 3 most recent finished jobs stay.
    for (const id of old) expect(await storage.get(id)).toBeNull();
    for (const id of recent) expect(await storage.get(id)).not.toBeNull();
    // Age: an hour later the rest go too; the live job stays.
    clock.advance(HOUR + 1);
    await storage.driver.reclaimExpired(clock.now(), 100);
    for (const id of recent) expect(await storage.get(id)).toBeNull();
    expect((await storage.get(live))?.state).toBe(JobState.Enqueued);
    // Throughput survives pruning of the jobs it counted.
    const st = await storage.stats({ hours: 2 });
    expect(st.perHour.reduce((n, b) => n + b.succeeded, 0)).toBe(5);
  });

  it("with a TTL of 0, keeps finished jobs of any age (the count limit still applies)", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { backend, storage } = open(clock, (c) => c.withFinishedJobTtl(0).withMaxFinishedJobs(2));
    await storage.migrate();
    const finished: string[] = [];
    for (let i = 0; i < 3; i++) {
      finished.push(...(await finish(storage, clock, 1)));
      clock.advance(1);
    }
    const [oldest, ...kept] = finished;
    clock.advance(1000 * 24 * HOUR);
    await backend.prune(clock.now());
    expect(await storage.get(oldest!)).toBeNull();
    for (const id of kept) expect(await storage.get(id)).not.toBeNull();
  });

  it("with maxFinishedJobs 0, deletes a job in the statement that finishes it, and still writes retries, fencing and counts", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, schema } = open(clock, (c) => c.withMaxFinishedJobs(0));
    await storage.migrate();
    const ids = await storage.enqueue([
      new Job("k", ["ok"]),
      new Job("k", ["fail"]),
      new Job("k", ["retry"]),
      new Job("k", ["release"]),
      new Job("k", ["stale"], { uniqueKey: "u-1" }),
    ]);
    const claimed = await storage.driver.claim({ queues: ["default"], limit: 10, owner: "w", leaseMs: 60_000, now: clock.now() });
    const byArg = new Map(claimed.map((r) => [r.args[0] as string, r]));
    const base = (arg: string) => ({ id: byArg.get(arg)!.id, token: byArg.get(arg)!.leaseToken, worker: "w" });
    const res = await storage.driver.complete(
      [
        { ...base("ok"), state: JobState.Succeeded, reason: "succeeded", result: { n: 1 } },
        { ...base("fail"), state: JobState.Failed, reason: "failed", error: { name: "Error", message: "boom" } },
        { ...base("retry"), state: JobState.AwaitingRetry, runAt: clock.now() + 5000, reason: "retry 2/3", error: { name: "Error", message: "again" } },
        { ...base("release"), state: JobState.Enqueued, reason: "released" },
        { ...base("stale"), token: byArg.get("stale")!.leaseToken - 1, state: JobState.Succeeded, reason: "succeeded" },
      ],
      clock.now(),
    );
    expect(res.map((r) => r.status)).toEqual(["applied", "applied", "applied", "applied", "lost"]);
    // Finished jobs are gone at once (no prune has run), the others written as always.
    expect(await storage.get(ids[0]!)).toBeNull();
    expect(await storage.get(ids[1]!)).toBeNull();
    const retry = (await record(storage, ids[2]!))!;
    expect(retry).toMatchObject({ state: JobState.AwaitingRetry, runAt: clock.now() + 5000, error: { message: "again" } });
    expect(retry.history.at(-1)).toMatchObject({ state: JobState.AwaitingRetry, reason: "retry 2/3", worker: "w" });
    const released = (await record(storage, ids[3]!))!;
    expect(released).toMatchObject({ state: JobState.Enqueued, attempts: 0 });
    // The stale outcome is refused: that job is still processing, its unique key still held.
    expect((await record(storage, ids[4]!))!.state).toBe(JobState.Processing);
    expect(await storage.enqueue(new Job("k", ["again"], { uniqueKey: "u-1" }))).toBe(ids[4]);
    const [row] = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".jobs`);
    expect(Number(row!.n)).toBe(3);
    // The throughput counts still see both finished jobs.
    const st = await storage.stats({ hours: 1 });
    expect(st.perHour.reduce((a, b) => a + b.succeeded, 0)).toBe(1);
    expect(st.perHour.reduce((a, b) => a + b.failed, 0)).toBe(1);
  });

  it("drops throughput buckets past the stats windows", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, schema } = open(clock);
    await storage.migrate();
    await finish(storage, clock, 1);
    clock.advance(32 * 24 * HOUR);
    await storage.driver.reclaimExpired(clock.now(), 10);
    const rows = await adminQuery(`SELECT * FROM "${schema}".throughput`);
    expect(rows).toEqual([]);
  });

  it("forgets a rate key's count RATE_COUNT_KEEP_MS after its last window, not as the window ends", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, schema } = open(clock);
    await storage.migrate();
    await storage.enqueue(new Job("r", [], { rateLimit: { key: "api", limit: 5, interval: 1000 } }));
    expect((await storage.driver.claim({ queues: ["default"], limit: 5, owner: "w", leaseMs: 60_000, now: clock.now() })).length).toBe(1);
    const counts = () => adminQuery(`SELECT key FROM "${schema}".rate_starts`);
    await storage.driver.reclaimExpired(clock.now() + 1000 + RATE_COUNT_KEEP_MS - 1, 10);
    expect(await counts()).toEqual([{ key: "api" }]);
    await storage.driver.reclaimExpired(clock.now() + 1000 + RATE_COUNT_KEEP_MS, 10);
    expect(await counts()).toEqual([]);
  });

  it("keeps the history column bounded by HISTORY_LIMIT in the row itself", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, schema } = open(clock);
    await storage.migrate();
    const id = await storage.enqueue(new Job("loop", [], { maxAttempts: 1000 }));
    for (let i = 0; i < HISTORY_LIMIT + 10; i++) {
      const [r] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() });
      await storage.driver.complete([{ id, token: r!.leaseToken, state: JobState.Enqueued, reason: `release ${i}`, worker: "w" }], clock.now());
    }
    // The text holds one entry per line, and hn counts them.
    const [row] = await adminQuery<{ hn: number; history: string }>(`SELECT hn, history FROM "${schema}".jobs WHERE id = $1`, [id]);
    const lines = row!.history.split("\n").map((l) => JSON.parse(l) as { reason: string });
    expect(row!.hn).toBe(HISTORY_LIMIT);
    expect(lines).toHaveLength(HISTORY_LIMIT);
    expect(lines.at(-1)!.reason).toBe(`release ${HISTORY_LIMIT + 9}`);
    expect((await record(storage, id))!.history).toEqual(lines);
  });

  it("trims two entries at once when a due retry is claimed at the limit", async () => {
    // Each round adds three entries (enqueued + processing by the claim, awaiting_retry by the
    // release), so the history crosses HISTORY_LIMIT by one, then by two at every later claim.
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, schema } = open(clock);
    await storage.migrate();
    const id = await storage.enqueue(new Job("retry-loop", [], { maxAttempts: 1000 }));
    const expected = [...(await record(storage, id))!.history];
    for (let i = 0; i < HISTORY_LIMIT; i++) {
      clock.advance(1);
      const [r] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() });
      if (i > 0) expected.push({ state: JobState.Enqueued, at: clock.now(), reason: "retry due" });
      expected.push({ state: JobState.Processing, at: clock.now(), reason: `claimed (attempt ${i + 1})`, worker: "w" });
      expect(r!.history).toEqual(expected.slice(-HISTORY_LIMIT));
      await storage.driver.complete(
        [{ id, token: r!.leaseToken, state: JobState.AwaitingRetry, runAt: clock.now(), reason: `retry ${i}`, worker: "w" }],
        clock.now(),
      );
      expected.push({ state: JobState.AwaitingRetry, at: clock.now(), reason: `retry ${i}`, worker: "w" });
      const got = (await record(storage, id))!.history;
      expect(got).toEqual(expected.slice(-HISTORY_LIMIT));
    }
    expect(expected.length).toBeGreaterThan(HISTORY_LIMIT + 2);
    const [row] = await adminQuery<{ hn: number }>(`SELECT hn FROM "${schema}".jobs WHERE id = $1`, [id]);
    expect(row!.hn).toBe(HISTORY_LIMIT);
  });

  it("runs a statement again after a deadlock or serialization failure, and not after other errors", async () => {
    // The real driver, with the server's verdict on the first attempts of one statement replaced by a
    // deadlock (what Postgres answers when two completions lock rows in opposite orders).
    let failures = 0;
    let calls = 0;
    const flaky = (code: string, times: number): SqlDriver => ({
      name: "pg",
      async query(text, params, options) {
        if (text.includes("throughput AS t")) {
          calls++;
          if (failures < times) {
            failures++;
            throw Object.assign(new Error("deadlock detected"), { code });
          }
        }
        return driver.query(text, params, options);
      },
      close: async () => {},
    });
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, schema } = open(clock, undefined, flaky("40P01", 2));
    await storage.migrate();
    await storage.enqueue(new Job("d", []));
    const [r] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() });
    const res = await storage.driver.complete([{ id: r!.id, token: r!.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" }], clock.now());
    expect(res[0]!.status).toBe("applied");
    expect(calls).toBe(3);

    failures = 0;
    calls = 0;
    const broken = open(clock, undefined, flaky("23505", 1), schema).backend;
    await storage.enqueue(new Job("d2", []));
    const [r2] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: "w", leaseMs: 1000, now: clock.now() });
    await expect(
      broken.complete([{ id: r2!.id, token: r2!.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" }], clock.now()),
    ).rejects.toMatchObject({ code: "23505" });
    expect(calls).toBe(1);

    failures = 0;
    calls = 0;
    const hopeless = open(clock, undefined, flaky("40001", 100), schema).backend;
    await expect(
      hopeless.complete([{ id: r2!.id, token: r2!.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" }], clock.now()),
    ).rejects.toMatchObject({ code: "40001" });
    expect(calls).toBe(5);
  });
});
