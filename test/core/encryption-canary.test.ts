/**
 * The canary: a job whose secret argument is a unique string runs through a
 * BackgroundJobServer, with the dashboard app, on Redis, PostgreSQL and
 * SQLite; then every place the secret could leak to is read and searched:
 * every key of the run's Redis prefix (each by its type, and its DUMP), every
 * row of every table of the run's PostgreSQL schema, every row of the
 * SQLite file (and its bytes), the server's JSON logs, the dashboard's HTML,
 * the REST API's JSON for the jobs, the live-updates (SSE) frames, the
 * error recorded for a job whose handler threw, and /metrics. The handler
 * itself must have received the plaintext.
 */
import { existsSync, readFileSync } from "node:fs";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import type { StorageDriver } from "../../src/core/driver.js";
import { Job, JsonLogger, Keyring, Storage, WorkerRegistry, WorkerResult, type JobEventMap } from "../../src/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { TempFiles } from "../sqlite/helpers.js";
import { testServer } from "./helpers.js";

const ADMIN = "admin-token-0123456789abcdef";
const ORIGIN = "http://dash.test";
const KEYS = Keyring.parse(`k2:${Keyring.generateKey()},k1:${Keyring.generateKey()}`);

interface Run {
  canary: string;
  ids: { fields: string; whole: string; failing: string };
  /** Where the secret could have gone, by name: each is searched for it. */
  surfaces: Record<string, string>;
}

/** Reads an SSE response into `out` until stopped. */
function collectSse(res: Response, out: { text: string }): { stop: () => Promise<void> } {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const loop = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      out.text += value;
    }
  })();
  return {
    stop: async () => {
      await reader.cancel().catch(() => {});
      await loop;
    },
  };
}

/**
 * Enqueues three jobs carrying the canary (named fields sealed, all
 * arguments sealed, and one whose handler throws), runs them through a
 * server with the dashboard app in front, and gathers what the app, the
 * logs and the live frames show. The store's own contents are read by the caller.
 */
async function runCanary(storage: Storage, logs: string[], sealed = true): Promise<Run> {
  const canary = `CANARY-${crypto.randomUUID()}`;
  const received = new Map<string, unknown[]>();
  const registry = new WorkerRegistry()
    .register("charge", (job, ctx) => {
      received.set(job.id, job.arguments);
      ctx.logger.info("charging", { attempt: ctx.attempt });
      return WorkerResult.success({ charged: true });
    })
    .register("refund", (job) => {
      received.set(job.id, job.arguments);
      // A generic message: what a handler's error says is the handler's business.
      throw new Error("card declined");
    });
  const logger = new JsonLogger("debug", { test: "canary" }, (line) => logs.push(line));
  const app = createApp({ storage, registry, auth: { adminTokens: [ADMIN] }, logger, liveIntervalMs: 20, sseMaxDurationMs: 60_000 });
  const get = async (path: string): Promise<Response> => app.request(`${ORIGIN}${path}`, { headers: { Host: "dash.test", Authorization: `Bearer ${ADMIN}` } });

  const sse = { text: "" };
  const events = await get("/api/events");
  expect(events.status).toBe(200);
  const stream = collectSse(events, sse);

  // Unsealed (the control): the same jobs in the clear, to show that the search finds what is there.
  const seal = <T>(spec: T): { encrypt?: T } => (sealed ? { encrypt: spec } : {});
  const fields = new Job("charge", [{ customer: 42, card: canary, note: { secret: canary } }, "visible"], seal(["card", "note"]));
  const whole = new Job("charge", [canary, { cvc: canary }], seal(true));
  const failing = new Job("refund", [{ card: canary, amount: 5 }], { ...seal(["card"]), maxAttempts: 1 });
  await storage.enqueue([fields, whole]);
  await storage.enqueue(failing);

  const server = testServer(storage, registry, (c) => c.logger(logger));
  let ended = 0;
  const done = new Promise<void>((resolve) => {
    const on = (_: JobEventMap["job:succeeded"] | JobEventMap["job:failed"]) => {
      if (++ended === 3) resolve();
    };
    server.on("job:succeeded", on);
    server.on("job:failed", on);
  });
  await server.start();
  await done;
  await server.stop();

  // A frame after the outcomes: the live feed has shown them.
  const framesBefore = (sse.text.match(/event: snapshot/g) ?? []).length;
  await expect.poll(() => (sse.text.match(/event: snapshot/g) ?? []).length, { timeout: 5_000, interval: 20 }).toBeGreaterThan(framesBefore + 1);
  await stream.stop();

  // The handlers got the plaintext.
  expect(received.get(fields.id)).toEqual([{ customer: 42, card: canary, note: { secret: canary } }, "visible"]);
  expect(received.get(whole.id)).toEqual([canary, { cvc: canary }]);
  expect(received.get(failing.id)).toEqual([{ card: canary, amount: 5 }]);

  const surfaces: Record<string, string> = {};
  for (const path of [
    "/",
    "/login",
    `/api/jobs/${fields.id}`,
    `/api/jobs/${whole.id}`,
    `/api/jobs/${failing.id}`,
    "/api/jobs?limit=50",
    "/api/jobs?state=failed",
    `/api/jobs?text=${encodeURIComponent(canary)}`,
    "/api/live",
    "/api/stats",
    "/api/queues",
    "/metrics",
  ]) {
    const res = await get(path);
    surfaces[`GET ${path} (${res.status})`] = await res.text();
  }
  const failedJob = (JSON.parse(surfaces[`GET /api/jobs/${failing.id} (200)`]!) as { job: { state: string; error: { message: string; stack?: string } } }).job;
  expect(failedJob.state).toBe("failed");
  expect(failedJob.error.message).toBe("card declined");
  surfaces["the failed job's error"] = JSON.stringify(failedJob.error);
  const shown = JSON.parse(surfaces[`GET /api/jobs/${fields.id} (200)`]!) as { job: { arguments: Array<Record<string, unknown>> } };
  if (sealed) expect(shown.job.arguments[0]).toMatchObject({ customer: 42, card: { "qml:enc": 1, kid: "k2" } });
  expect(surfaces["GET /metrics (200)"], "GET /metrics answers").toBeDefined();
  surfaces["live frames (SSE)"] = sse.text;
  surfaces["server, storage and app logs"] = logs.join("\n");
  expect(logs.length).toBeGreaterThan(0);
  expect(sse.text).toContain("event: snapshot");
  return { canary, ids: { fields: fields.id, whole: whole.id, failing: failing.id }, surfaces };
}

/** Where the canary was found. */
function leaks(run: Run, storeSurfaces: Record<string, string>): string[] {
  // The search reads the store: the jobs are there.
  expect(Object.values(storeSurfaces).join("\n")).toContain(run.ids.fields);
  return Object.entries({ ...run.surfaces, ...storeSurfaces })
    .filter(([, text]) => text.includes(run.canary))
    .map(([where]) => where);
}

/**
 * The canary sealed is found nowhere; the control (the same jobs unsealed)
 * is found in the store and the API by the same search.
 */
function canaryOn(
  open: () => Promise<{ storage: Storage; logs: string[] }>,
  readStore: (storage: Storage, run: Run) => Promise<Record<string, string>>,
  store: RegExp,
): void {
  it("a sealed canary is nowhere but in the handler", async () => {
    const { storage, logs } = await open();
    const run = await runCanary(storage, logs);
    expect(leaks(run, await readStore(storage, run))).toEqual([]);
  });

  it("the control: the same jobs unsealed are found by the same search", async () => {
    const { storage, logs } = await open();
    const run = await runCanary(storage, logs, false);
    const found = leaks(run, await readStore(storage, run));
    expect(found).toContain("stored records");
    expect(found.some((w) => store.test(w))).toBe(true);
    expect(found).toContain(`GET /api/jobs/${run.ids.fields} (200)`);
  });
}

/** The stored records (a driver read) of the three jobs: the ciphertext is there, the canary is not. */
async function storedRecords(driver: StorageDriver, run: Run): Promise<string> {
  return JSON.stringify(await driver.get(Object.values(run.ids)));
}

const keys = prefixes("canary");
describeWithService("redis", await serviceUp("redis"), "the canary on Redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  const prefixOf = new WeakMap<Storage, string>();
  canaryOn(
    async () => {
      const prefix = keys.next();
      const logs: string[] = [];
      const storage = new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(prefix)), {
        encryption: KEYS,
        logger: new JsonLogger("debug", { storage: "redis" }, (l) => logs.push(l)),
      });
      prefixOf.set(storage, prefix);
      await storage.migrate();
      return { storage, logs };
    },
    async (storage, run) => {
      const prefix = prefixOf.get(storage)!;
      const surfaces: Record<string, string> = { "stored records": await storedRecords(storage.driver, run) };
      await storage.close();
      const redis = new Redis(REDIS_URL, { lazyConnect: true });
      try {
        const found: string[] = [];
        let cursor = "0";
        do {
          const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
          found.push(...batch);
          cursor = next;
        } while (cursor !== "0");
        expect(found.length).toBeGreaterThan(3);
        for (const key of found) {
          const type = await redis.type(key);
          let value: unknown;
          if (type === "string") value = await redis.get(key);
          else if (type === "hash") value = await redis.hgetall(key);
          else if (type === "list") value = await redis.lrange(key, 0, -1);
          else if (type === "set") value = await redis.smembers(key);
          else if (type === "zset") value = await redis.zrange(key, "0", "-1", "WITHSCORES");
          else if (type === "stream") value = await redis.xrange(key, "-", "+");
          else value = `(type ${type})`;
          surfaces[`redis ${type} ${key}`] = JSON.stringify(value);
          // DUMP too (compressed when large, so not instead of the reads above).
          surfaces[`redis DUMP ${key}`] = (await redis.dumpBuffer(key))?.toString("latin1") ?? "";
        }
      } finally {
        redis.disconnect();
      }
      return surfaces;
    },
    /^redis hash /,
  );
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "the canary on PostgreSQL", () => {
  afterAll(() => janitor.dropAll());
  const schemaOf = new WeakMap<Storage, string>();
  canaryOn(
    async () => {
      const schema = janitor.next();
      const logs: string[] = [];
      const storage = new Storage(
        postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(schema).withMaxConnections(4).withAutoMigrate(true)),
        { encryption: KEYS, logger: new JsonLogger("debug", { storage: "postgres" }, (l) => logs.push(l)) },
      );
      schemaOf.set(storage, schema);
      await storage.migrate();
      return { storage, logs };
    },
    async (storage, run) => {
      const schema = schemaOf.get(storage)!;
      const surfaces: Record<string, string> = { "stored records": await storedRecords(storage.driver, run) };
      await storage.close();
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      try {
        const tables = await client.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", [schema]);
        expect(tables.rows.length).toBeGreaterThan(1);
        for (const { table_name } of tables.rows) {
          // Names from the catalog of our own random schema; quoted anyway.
          const rows = await client.query<{ row: string }>(`SELECT t::text AS row FROM "${schema}"."${table_name}" t`);
          surfaces[`postgres ${table_name} (${rows.rowCount} rows)`] = rows.rows.map((r) => r.row).join("\n");
        }
      } finally {
        await client.end();
      }
      return surfaces;
    },
    /^postgres jobs /,
  );
});

describe("the canary on SQLite", () => {
  const files = new TempFiles();
  afterAll(() => files.removeAll());
  const fileOf = new WeakMap<Storage, string>();
  canaryOn(
    async () => {
      const file = files.next();
      const logs: string[] = [];
      const storage = new Storage(sqliteBackend(new SqliteConfig(file).withAutoMigrate(true)), {
        encryption: KEYS,
        logger: new JsonLogger("debug", { storage: "sqlite" }, (l) => logs.push(l)),
      });
      fileOf.set(storage, file);
      await storage.migrate();
      return { storage, logs };
    },
    async (storage, run) => {
      const file = fileOf.get(storage)!;
      const surfaces: Record<string, string> = { "stored records": await storedRecords(storage.driver, run) };
      // The file's bytes, WAL included, before and after the checkpoint of close.
      for (const f of [file, `${file}-wal`]) if (existsSync(f)) surfaces[`bytes of ${f}`] = readFileSync(f).toString("latin1");
      await storage.close();
      const db = new Database(file, { readonly: true });
      try {
        const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>;
        expect(tables.length).toBeGreaterThan(1);
        for (const { name } of tables) {
          const rows = db.prepare(`SELECT * FROM "${name.replaceAll('"', '""')}"`).all();
          surfaces[`sqlite ${name} (${rows.length} rows)`] = JSON.stringify(rows, (_, v: unknown) => (Buffer.isBuffer(v) ? v.toString("latin1") : v));
        }
      } finally {
        db.close();
      }
      surfaces[`bytes of ${file} after close`] = readFileSync(file).toString("latin1");
      return surfaces;
    },
    /^sqlite qml_jobs /,
  );
});
