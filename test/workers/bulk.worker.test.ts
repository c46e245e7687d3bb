/**
 * Bulk dashboard actions on 1,000 jobs inside workerd, through the app
 * (createApp) over Upstash Redis, Neon HTTP and D1: the store calls a bulk
 * action makes fit in one Workers invocation. Every store call is a
 * `fetch` (Upstash, Neon) or a D1 query or batch, and a Worker on the Free
 * plan may make 50 subrequests (and 50 D1 queries) per invocation; this
 * counts them by wrapping `globalThis.fetch` and the D1 binding around each
 * API request.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { JobState } from "../../src/core/job.js";
import { Job, Storage, silentLogger } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { d1Driver, type D1DatabaseLike, type D1PreparedStatementLike } from "../../src/adapters/storage/sqlite/drivers/d1.js";
import { d1Binding, deployEnvFor, freshD1, suiteFor } from "./backends.js";

const TOKEN = "bulk-admin-token-0123456789abcdef";
const JOBS = 1000;
/** Subrequests per invocation on the Workers Free plan. */
const WORKERS_FREE_SUBREQUESTS = 50;

let subrequests = 0;
const realFetch = globalThis.fetch;
beforeAll(() => {
  globalThis.fetch = ((...args: Parameters<typeof fetch>) => {
    subrequests++;
    return realFetch(...args);
  }) as typeof fetch;
});
afterAll(() => {
  globalThis.fetch = realFetch;
});

/** The D1 binding, each query or batch sent through it counted as a subrequest. */
function countedD1(db: D1DatabaseLike): D1DatabaseLike {
  const inner = new WeakMap<D1PreparedStatementLike, D1PreparedStatementLike>();
  const wrap = (s: D1PreparedStatementLike): D1PreparedStatementLike => {
    const w: D1PreparedStatementLike = {
      bind: (...values) => wrap(s.bind(...values)),
      all: () => {
        subrequests++;
        return s.all();
      },
    };
    inner.set(w, s);
    return w;
  };
  return {
    prepare: (sql) => wrap(db.prepare(sql)),
    batch: (statements) => {
      subrequests++;
      return db.batch(statements.map((s) => inner.get(s)!));
    },
    exec: (sql) => {
      subrequests++;
      return db.exec(sql);
    },
  };
}

async function storeFor(backend: "upstash" | "neon" | "d1"): Promise<Storage> {
  if (backend === "d1") {
    await freshD1();
    return new Storage(sqliteBackend(new SqliteConfig().withDriver(d1Driver(countedD1(d1Binding())))));
  }
  const env = deployEnvFor(backend);
  if (backend === "upstash") {
    return new Storage(
      redisBackend(new RedisConfig().withUrl(env.UPSTASH_REDIS_REST_URL!).withToken(env.UPSTASH_REDIS_REST_TOKEN!).withKeyPrefix(env.QML_REDIS_PREFIX!)),
    );
  }
  return new Storage(
    postgresBackend(
      new PostgresConfig()
        .withDatabaseUrl(env.DATABASE_URL!)
        .withDriver("neon-http")
        .withNeonFetchEndpoint(env.QML_NEON_FETCH_ENDPOINT!)
        .withSchema(env.QML_POSTGRES_SCHEMA!)
        .withAutoMigrate(true),
    ),
  );
}

interface BulkReply {
  action: string;
  matched: number;
  applied: number;
  skipped: Array<{ id: string; reason: string }>;
  truncated: boolean;
}

for (const backend of ["upstash", "neon", "d1"] as const) {
  suiteFor(backend, `bulk actions on ${JOBS} jobs in workerd (${backend})`, () => {
    let storage: Storage;
    let app: ReturnType<typeof createApp>;
    const measured: Record<string, number> = {};

    /** A bulk action through the app, with the subrequests the store client made for it. */
    async function bulk(action: string, body: unknown): Promise<{ reply: BulkReply; subrequests: number }> {
      const before = subrequests;
      const res = await app.request(`https://qml.test/api/jobs/bulk/${action}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const n = subrequests - before;
      expect(res.status, await res.clone().text()).toBe(200);
      return { reply: (await res.json()) as BulkReply, subrequests: n };
    }

    /** `count` jobs in `queue`, failed through the seam as a worker would fail them. */
    async function failedJobs(queue: string, count: number): Promise<string[]> {
      const ids = await storage.enqueue(Array.from({ length: count }, (_, i) => new Job("bulk.job", [i], { queue, maxAttempts: 1 })));
      const now = storage.clock.now();
      for (let done = 0; done < count;) {
        const claimed = await storage.driver.claim({ queues: [queue], limit: 500, owner: "bulk-test", leaseMs: 60_000, now });
        expect(claimed.length).toBeGreaterThan(0);
        const outcomes = claimed.map((r) => ({
          id: r.id,
          token: r.leaseToken,
          state: JobState.Failed,
          reason: "failed",
          worker: "bulk-test/1",
          error: { name: "Error", message: "boom" },
        }));
        await storage.driver.complete(outcomes, now);
        done += claimed.length;
      }
      return ids;
    }

    beforeAll(async () => {
      storage = await storeFor(backend);
      await storage.migrate();
      app = createApp({ storage, auth: { adminTokens: [TOKEN] }, logger: silentLogger });
    });

    afterAll(async () => {
      console.log(`[bulk.worker] ${backend}: subrequests per bulk request for ${JOBS} jobs: ${JSON.stringify(measured)}`);
      await storage?.close();
    });

    it(`deletes ${JOBS} jobs matching a filter`, async () => {
      await storage.enqueue(Array.from({ length: JOBS }, (_, i) => new Job("bulk.job", [i], { queue: "bulk-delete" })));
      const { reply, subrequests: n } = await bulk("delete", { filter: { queue: "bulk-delete" } });
      measured["delete by filter"] = n;
      expect(reply).toEqual({ action: "delete", matched: JOBS, applied: JOBS, skipped: [], truncated: false });
      expect(n).toBeLessThanOrEqual(WORKERS_FREE_SUBREQUESTS);
      expect((await storage.stats()).queues.find((q) => q.name === "bulk-delete")?.counts.deleted).toBe(JOBS);
    });

    it(`retries ${JOBS} failed jobs matching a filter`, async () => {
      await failedJobs("bulk-retry", JOBS);
      const { reply, subrequests: n } = await bulk("retry", { filter: { queue: "bulk-retry" } });
      measured["retry by filter"] = n;
      expect(reply).toEqual({ action: "retry", matched: JOBS, applied: JOBS, skipped: [], truncated: false });
      expect(n).toBeLessThanOrEqual(WORKERS_FREE_SUBREQUESTS);
      expect((await storage.stats()).queues.find((q) => q.name === "bulk-retry")?.counts.enqueued).toBe(JOBS);
    });

    it(`retries ${JOBS} jobs by id, skipping the ones not failed`, async () => {
      const ids = await failedJobs("bulk-ids", JOBS - 10);
      const enqueued = await storage.enqueue(Array.from({ length: 10 }, (_, i) => new Job("bulk.job", [i], { queue: "bulk-ids" })));
      const { reply, subrequests: n } = await bulk("retry", { ids: [...ids, ...enqueued] });
      measured["retry by ids"] = n;
      expect(reply).toMatchObject({ matched: JOBS, applied: JOBS - 10, truncated: false });
      expect(reply.skipped.map((s) => s.id).sort()).toEqual([...enqueued].sort());
      expect(n).toBeLessThanOrEqual(WORKERS_FREE_SUBREQUESTS);
    });
  });
}
