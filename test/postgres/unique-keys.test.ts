/**
 * Unique keys on PostgreSQL where the shared suite cannot reach: a batch
 * folded into key groups gives the memory backend's answers for every kind
 * of holder; concurrent debounces of one key (with claimers taking the
 * holder between a statement's read and its write) still give one waiting
 * job, and never touch a job that started; a debounce in a caller's
 * transaction shows only on commit; a debounce that makes a job due wakes
 * listeners.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, Storage, memoryBackend, type JobRecord } from "../../src/index.js";
import type { InsertRecord, InsertResult, StorageDriver } from "../../src/core/driver.js";
import { newJobRecord, type JobOptions } from "../../src/core/job.js";
import { PostgresConfig, createPgDriver, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { type PgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "./helpers.js";

const janitor = new SchemaJanitor();
const T = Date.UTC(2030, 0, 1);

type Holder = "none" | "waiting" | "running" | "finished" | "expired";
type Step = "F" | "D" | "Dlater";

/** What a caller can see of a job: everything but lease and timing details the backends may word differently. */
function visible(r: JobRecord | null) {
  if (!r) return null;
  return {
    id: r.id,
    args: r.args,
    state: r.state,
    runAt: r.runAt,
    uniqueKey: r.uniqueKey,
    uniqueUntil: r.uniqueUntil,
    metadata: r.metadata,
    history: r.history.map((h) => ({ state: h.state, at: h.at, reason: h.reason })),
  };
}

function rec(id: string, args: unknown[], options: JobOptions, now: number, debounce = false): InsertRecord {
  const r: InsertRecord = newJobRecord(new Job("u", args, options, id), now);
  if (debounce) r.debounce = true;
  return r;
}

/** Leaves the key `key` with a holder in the given state, at T. */
async function setUp(driver: StorageDriver, holder: Holder, key: string): Promise<void> {
  if (holder === "none") return;
  await driver.insert([rec(`${key}:h`, ["h"], { uniqueKey: key, queue: key, ...(holder === "expired" ? { uniqueTtl: 10 } : {}) }, T)], T);
  if (holder !== "running" && holder !== "finished") return;
  const [claimed] = await driver.claim({ queues: [key], limit: 1, owner: "w", leaseMs: 60_000, now: T });
  if (holder === "finished") await driver.complete([{ id: claimed!.id, token: claimed!.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" }], T);
}

/** One batch of steps on the key, at T + 10: F first-mode, D debounce now, Dlater debounce 5 s out (with a window). */
function batch(key: string, steps: Step[]): InsertRecord[] {
  const now = T + 10;
  return steps.map((step, i) => {
    const options: JobOptions = { uniqueKey: key, queue: key, metadata: { step: i } };
    if (step === "F") return rec(`${key}:${i}`, [i], options, now);
    if (step === "D") return rec(`${key}:${i}`, [i], { ...options, uniqueMode: "debounce" }, now, true);
    return rec(`${key}:${i}`, [i], { ...options, uniqueMode: "debounce", delay: 5000, uniqueTtl: 60_000 }, now, true);
  });
}

async function outcome(driver: StorageDriver, holder: Holder, key: string, steps: Step[]): Promise<{ results: InsertResult[]; jobs: unknown[] }> {
  await setUp(driver, holder, key);
  const records = batch(key, steps);
  const results = await driver.insert(records, T + 10);
  const ids = [`${key}:h`, ...records.map((r) => r.id)];
  return { results, jobs: (await driver.get(ids)).map(visible) };
}

describeWithService("postgres", await serviceUp("postgres"), "postgres unique keys", () => {
  const schema = janitor.next();
  let pool: PgDriver;
  let storage: Storage;
  let clock: ManualClock;

  beforeAll(async () => {
    pool = await createPgDriver({ connectionString: DATABASE_URL, max: 10 });
    clock = new ManualClock(T);
    storage = new Storage(postgresBackend(new PostgresConfig().withDriver(pool).withSchema(schema)), { clock });
    await storage.migrate();
  });
  afterAll(async () => {
    await storage?.close();
    await pool?.close();
    await janitor.dropAll();
  });

  const holders: Holder[] = ["none", "waiting", "running", "finished", "expired"];
  const batches: Step[][] = [["D"], ["F"], ["F", "D", "D", "F"], ["D", "F", "Dlater"], ["F", "F", "Dlater", "D"], ["Dlater", "Dlater"]];

  it("a batch folded into key groups answers as the memory backend does, for every kind of holder", async () => {
    const memory = memoryBackend();
    for (const holder of holders) {
      for (const steps of batches) {
        const key = `${holder}-${steps.join("-")}`;
        const want = await outcome(memory, holder, key, steps);
        const got = await outcome(storage.driver, holder, key, steps);
        expect({ key, ...got }).toEqual({ key, ...want });
      }
    }
  });

  it("20 concurrent debounces of one key: one job, which took one of them and a history entry for each other", async () => {
    const jobs = Array.from({ length: 20 }, (_, i) => new Job("race", [i], { uniqueKey: "race-all", uniqueMode: "debounce", queue: "race-all" }));
    const ids = await Promise.all(jobs.map((j) => storage.enqueue(j)));
    expect(new Set(ids).size).toBe(1);
    const job = (await storage.get(ids[0]!))!;
    expect(jobs.map((j) => j.id)).toContain(job.id);
    expect(job.history.filter((h) => h.reason === "debounced")).toHaveLength(19);
    expect((await storage.list({ queue: "race-all" })).items).toHaveLength(1);
  });

  it("debounces racing with claimers: one waiting job holds the key at a time, and no job is changed after it started", async () => {
    const key = "race-claim";
    let writing = true;
    const claimers = Array.from({ length: 3 }, async () => {
      let claimed = 0;
      while (writing) claimed += (await storage.driver.claim({ queues: [key], limit: 1, owner: "c", leaseMs: 60_000, now: clock.now() })).length;
      return claimed;
    });
    const answered = new Set<string>();
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let n = 0; n < 25; n++) {
        answered.add(await storage.enqueue(new Job("race", [w, n], { uniqueKey: key, uniqueMode: "debounce", queue: key })));
      }
    });
    await Promise.all(writers).finally(() => (writing = false));
    const claimed = (await Promise.all(claimers)).reduce((a, b) => a + b, 0);
    const all = (await storage.list({ queue: key }, { limit: 500 })).items;
    expect(new Set(all.map((j) => j.id))).toEqual(answered);
    // Every job but the one holding the key was claimed; the holder is the only one still waiting.
    const waiting = all.filter((j) => j.state === JobState.Enqueued);
    expect(waiting.length).toBeLessThanOrEqual(1);
    expect(claimed).toBe(all.length - waiting.length);
    const holders = all.filter((j) => j.uniqueKey === key);
    expect(holders).toHaveLength(1);
    if (waiting.length === 1) expect(holders[0]!.id).toBe(waiting[0]!.id);
    for (const job of all) {
      const started = job.history.findIndex((h) => h.state === JobState.Processing);
      if (started >= 0) expect(job.history.slice(started).filter((h) => h.reason === "debounced")).toEqual([]);
    }
  });

  it("concurrent enqueues after a window ends: one new job takes the key", async () => {
    const key = "race-window";
    const first = await storage.enqueue(new Job("w", [0], { uniqueKey: key, uniqueTtl: 1000 }));
    clock.advance(1000);
    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => storage.enqueue(new Job("w", [i + 1], { uniqueKey: key, uniqueTtl: 1000 }))));
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).not.toBe(first);
    expect((await storage.get(first))!.uniqueKey).toBeUndefined();
    expect((await storage.get(ids[0]!))!.uniqueKey).toBe(key);
  });

  it("a debounce inside a caller's transaction shows on commit only; rolled back, the job is as it was", async () => {
    const key = "tx-debounce";
    const id = await storage.enqueue(new Job("t", [0], { uniqueKey: key, uniqueMode: "debounce", delay: 60_000 }));
    const client = await pool.pool.connect();
    try {
      await client.query("BEGIN");
      expect(await storage.enqueue(new Job("t", [1], { uniqueKey: key, uniqueMode: "debounce" }), { transaction: client })).toBe(id);
      expect((await storage.get(id))!.arguments).toEqual([0]);
      await client.query("ROLLBACK");
      expect((await storage.get(id))!).toMatchObject({ arguments: [0], state: JobState.Scheduled });
      await client.query("BEGIN");
      expect(await storage.enqueue(new Job("t", [2], { uniqueKey: key, uniqueMode: "debounce" }), { transaction: client })).toBe(id);
      await client.query("COMMIT");
      expect((await storage.get(id))!).toMatchObject({ arguments: [2], state: JobState.Enqueued });
    } finally {
      client.release();
    }
  });

  it("a debounce that makes a scheduled job due wakes listeners (NOTIFY)", async () => {
    const key = "notify-debounce";
    const listener = new Storage(postgresBackend(new PostgresConfig().withDriver(pool).withSchema(schema)));
    try {
      const id = await storage.enqueue(new Job("n", [0], { uniqueKey: key, uniqueMode: "debounce", delay: 60_000, queue: key }));
      const heard = new Promise<{ id: string; runAt: number }>((resolve) =>
        listener.onEnqueue((jobs) => {
          const due = jobs.find((j) => j.queue === key && j.runAt <= clock.now());
          if (due) resolve(due);
        }),
      );
      expect(await listener.subscribed()).toBe(true);
      expect(await storage.enqueue(new Job("n", [1], { uniqueKey: key, uniqueMode: "debounce", queue: key }))).toBe(id);
      expect(await heard).toMatchObject({ id, runAt: clock.now() });
    } finally {
      await listener.close();
    }
  });
});
