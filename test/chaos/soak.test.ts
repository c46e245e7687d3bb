/**
 * Soak: the Node server (node-server.ts: the job server plus /readyz, in
 * this process) runs a steady stream of jobs on Redis and on PostgreSQL,
 * with a small retention (MAX_FINISHED finished jobs kept), for 30 minutes
 * per store (`npm run chaos -- soak`; QML_CHAOS_SOAK_MS overrides) or 20 s
 * in `npm test`.
 *
 * Measured at the start (after a warm-up) and at the end: heap, RSS, open
 * handles (process.getActiveResourcesInfo()), the store connections of the
 * run (Redis `CLIENT LIST` by the connection name, PostgreSQL
 * `pg_stat_activity` by application_name), and the jobs the store holds.
 * Asserted within generous bounds, never on timing: nothing grows with the
 * number of jobs run; the store holds at most the retention plus what is
 * in flight.
 */
import pg from "pg";
import * as ioredis from "ioredis";
import { afterAll, expect, it } from "vitest";
import { Job, Storage, WorkerRegistry, WorkerResult } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { createPgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes, scanKeys } from "../redis/helpers.js";
import { between, figures, rand, scale, until } from "./helpers.js";
import { startChaosNodeServer } from "./node-server.js";
import { withApplicationName } from "./stores.js";

const SOAK_MS = Number(process.env.QML_CHAOS_SOAK_MS ?? scale(20_000, 30 * 60_000));
const WARMUP_MS = scale(3000, 30_000);
const MAX_FINISHED = 200;
/** Jobs enqueued per tick of ENQUEUE_EVERY_MS: about 100 jobs/s, well within what one server with 4 workers runs. */
const BATCH = 5;
const ENQUEUE_EVERY_MS = 50;
/**
 * PostgreSQL prunes finished jobs in its housekeeping pass (every 5 s by
 * default), Redis in the claim script: between two passes up to 5 s of
 * jobs (about 500) finish on top of the retention.
 */
const PRUNE_SLACK = ((BATCH * 1000) / ENQUEUE_EVERY_MS) * 5 + 100;
const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  heapMb: number;
  rssMb: number;
  handles: number;
  connections: number;
  storedJobs: number;
}

interface SoakStore {
  storage: Storage;
  /** The run's connections to the store, counted by the store. */
  connections(): Promise<number>;
  /** Jobs the store holds (Redis: job hashes; PostgreSQL: rows of jobs). */
  storedJobs(): Promise<number>;
  /** Everything else the store holds for the run (Redis: other keys; PostgreSQL: rows of the other tables). */
  otherEntries(): Promise<number>;
  close(): Promise<void>;
}

async function sample(store: SoakStore): Promise<Sample> {
  const m = process.memoryUsage();
  return {
    heapMb: Math.round(m.heapUsed / MB),
    rssMb: Math.round(m.rss / MB),
    handles: process.getActiveResourcesInfo().length,
    connections: await store.connections(),
    storedJobs: await store.storedJobs(),
  };
}

async function soakRun(label: string, store: SoakStore): Promise<void> {
  let ran = 0;
  const registry = new WorkerRegistry().register("soak", async (job) => {
    await sleep(Number(job.arguments[0]));
    // A payload of some size, so that a leak of results shows in the heap.
    ran++;
    return WorkerResult.success({ echo: "x".repeat(256) });
  });
  const node = await startChaosNodeServer(store.storage, registry, { serverId: `soak-${label}-${rand()}`, workers: 4, pollMs: 50, leaseMs: 5000 });
  let enqueued = 0;
  let enqueueErrors = 0;
  const errorSamples: string[] = [];
  let producing = true;
  await node.handle.started;
  const producer = (async () => {
    while (producing) {
      try {
        await store.storage.enqueue(Array.from({ length: BATCH }, (_, i) => new Job("soak", [between(1, 5)], { metadata: { n: enqueued + i } })));
        enqueued += BATCH;
      } catch (e) {
        enqueueErrors++;
        if (errorSamples.length < 3) errorSamples.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      }
      await sleep(ENQUEUE_EVERY_MS);
    }
  })();
  try {
    await sleep(WARMUP_MS);
    const start = await sample(store);
    const peak = { ...start };
    const end0 = Date.now() + SOAK_MS;
    while (Date.now() < end0) {
      await sleep(Math.min(scale(2000, 30_000), Math.max(0, end0 - Date.now())));
      const s = await sample(store);
      for (const k of Object.keys(peak) as Array<keyof Sample>) peak[k] = Math.max(peak[k], s[k]);
    }
    producing = false;
    await producer;
    // Drained: every job enqueued has run (the last ones a moment after the producer stopped).
    const drained = await until(() => (ran >= enqueued ? true : undefined), 60_000, 100);
    const inFlight = enqueued - ran;
    const end = await sample(store);
    const other = await store.otherEntries();
    const ready = await node.readyz();
    figures(
      `soak/${label}`,
      {
        minutes: Math.round(SOAK_MS / 600) / 100,
        jobs: ran,
        enqueue_errors: enqueueErrors,
        heap_mb: `${start.heapMb}->${end.heapMb}`,
        rss_mb: `${start.rssMb}->${end.rssMb}`,
        rss_peak_mb: peak.rssMb,
        handles: `${start.handles}->${end.handles}`,
        connections: `${start.connections}->${end.connections}`,
        connections_peak: peak.connections,
        stored_jobs: `${start.storedJobs}->${end.storedJobs}`,
        stored_peak: peak.storedJobs,
        retention: MAX_FINISHED,
        in_flight_at_end: inFlight,
        other_entries: other,
      },
      "in-process Node server, 4 workers",
    );
    expect(drained).toBe(true);
    expect(errorSamples).toEqual([]);
    expect(ready.status).toBe(200);
    // Generous bounds: a leak per job (tens of thousands of them in the long run) exceeds them; noise does not.
    expect(end.heapMb - start.heapMb, "heap growth (MB)").toBeLessThan(scale(64, 96));
    expect(end.rssMb - start.rssMb, "RSS growth (MB)").toBeLessThan(scale(128, 192));
    expect(end.handles - start.handles, "open handles").toBeLessThanOrEqual(5);
    expect(end.connections, "store connections").toBeLessThanOrEqual(start.connections + 2);
    expect(peak.connections, "store connections at their peak").toBeLessThanOrEqual(start.connections + 4);
    // Retention: the finished jobs kept, plus what was in flight, plus what finishes between two prunes.
    expect(end.storedJobs, "jobs stored at the end").toBeLessThanOrEqual(MAX_FINISHED + inFlight + PRUNE_SLACK);
    expect(peak.storedJobs, "jobs stored at their peak").toBeLessThanOrEqual(MAX_FINISHED + 2 * PRUNE_SLACK);
  } finally {
    producing = false;
    await producer;
    await node.handle.stop(1000);
  }
}

const janitor = new SchemaJanitor();
afterAll(() => janitor.dropAll());

const keys = prefixes("chaos-soak");
describeWithService("redis", await serviceUp("redis"), "chaos: soak on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it(
    "heap, RSS, handles and connections flat; the store holds the retention plus what is in flight",
    async () => {
      const prefix = keys.next();
      const name = `qml-soak-${rand()}`;
      const admin = new ioredis.Redis(REDIS_URL);
      const driver = new IoredisDriver({ url: REDIS_URL, ioredis, redisOptions: { connectionName: name } });
      const storage = new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(prefix).withMaxFinishedJobs(MAX_FINISHED).resolve(), { driver }));
      const all = () => scanKeys(REDIS_URL, `${prefix}*`);
      try {
        await soakRun("redis", {
          storage,
          connections: async () =>
            String(await admin.call("CLIENT", "LIST"))
              .split("\n")
              .filter((l) => l.includes(` name=${name} `)).length,
          storedJobs: async () => (await all()).filter((k) => /:job:[^:]+$/.test(k)).length,
          otherEntries: async () => (await all()).filter((k) => !/:job:[^:]+$/.test(k)).length,
          close: () => storage.close(),
        });
      } finally {
        admin.disconnect();
      }
    },
    SOAK_MS + 120_000,
  );
});

describeWithService("postgres", await serviceUp("postgres"), "chaos: soak on postgres", () => {
  it(
    "heap, RSS, handles and connections flat; the store holds the retention plus what is in flight",
    async () => {
      const schema = janitor.next("qml_chaos");
      const app = `qml_soak_${rand()}`;
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      const driver = await createPgDriver({ connectionString: withApplicationName(DATABASE_URL, app), max: 4, pg });
      const storage = new Storage(postgresBackend(new PostgresConfig().withDriver(driver).withSchema(schema).withMaxFinishedJobs(MAX_FINISHED)));
      const count = async (sql: string, params: unknown[] = []) => Number((await admin.query<{ n: string }>(sql, params)).rows[0]!.n);
      try {
        await soakRun("postgres", {
          storage,
          connections: () => count("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [app]),
          storedJobs: () => count(`SELECT count(*) AS n FROM "${schema}".jobs`),
          otherEntries: () =>
            count(`SELECT coalesce(sum(n_live_tup), 0) AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname NOT IN ('jobs', 'schema_migrations')`, [
              schema,
            ]),
          close: () => storage.close(),
        });
      } finally {
        await admin.end();
      }
    },
    SOAK_MS + 120_000,
  );
});
