/**
 * Store restart: the store goes away mid-run and comes back.
 *
 * - Redis: a private redis-server (its own port, append-only file with
 *   `appendfsync always`) is SIGKILLed while jobs are enqueued and run, and
 *   started again on the same port and data.
 * - PostgreSQL: every session of the run (found by its application_name)
 *   is terminated with pg_terminate_backend, repeatedly, while jobs are
 *   enqueued and run.
 *
 * Producers enqueue through the library and through the REST API, each job
 * with a unique key, and retry what failed, as a client should. The
 * invariants: a failed enqueue is a StorageUnavailableError (HTTP 503 with
 * Retry-After on the API), never any other error and never a success for a
 * job that was not written (every acknowledged job is in the store
 * afterwards); one job per key; the same servers, never restarted, finish
 * every job; duplicates only after an expired lease.
 */
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { BackgroundJobServer, Job, ServerConfig, StorageUnavailableError, WorkerRegistry, WorkerResult, silentLogger, type Storage } from "../../src/index.js";
import { DATABASE_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { analyse, countBy, listAll } from "./analysis.js";
import { between, figures, rand, scale, timeout, until } from "./helpers.js";
import { removeTempDirs, startAofRedis, stopAll } from "./processes.js";
import { openRunLog } from "./run-log.js";
import { openStore, withApplicationName, type StoreSpec } from "./stores.js";

const JOBS = scale(300, 3000);
const PRODUCERS = 6;
const TOKEN = "chaos-restart-admin-token-0123456789";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Progress {
  acked: number;
  /** Library enqueues that failed with StorageUnavailableError. */
  unavailable: number;
  /** API enqueues answered 503 with a Retry-After header. */
  api503: number;
  /** Anything else: must stay empty. */
  unexpected: string[];
}

type Outage = (p: Progress) => Promise<{ disruptions: number; note: string }>;

async function restartRun(label: string, spec: StoreSpec, outage: Outage): Promise<void> {
  const storage = await openStore(spec);
  const runLog = await openRunLog({ kind: "memory" });
  const servers: Array<{ server: BackgroundJobServer; storage: Storage }> = [];
  const registry = new WorkerRegistry().register("work", async (job, ctx) => {
    await runLog.record({ id: job.id, attempt: ctx.attempt, token: ctx.leaseToken, server: ctx.serverId, at: Date.now() });
    await sleep(Number(job.arguments[0]));
    return WorkerResult.success();
  });
  try {
    for (let i = 0; i < 2; i++) {
      const s = await openStore(spec);
      const server = new BackgroundJobServer(
        s,
        registry,
        new ServerConfig(`restart-${i}-${rand()}`)
          .workerCount(4)
          .leaseDuration(1000)
          .schedulerInterval(200)
          .pollingInterval(20)
          .maxPollingInterval(250)
          .logger(silentLogger),
      );
      await server.start();
      servers.push({ server, storage: s });
    }
    const app = createApp({ storage, auth: { adminTokens: [TOKEN] }, logger: silentLogger });

    const p: Progress = { acked: 0, unavailable: 0, api503: 0, unexpected: [] };
    const acked = new Map<string, string>(); // key -> id
    let next = 0;
    const viaLibrary = async (key: string, ms: number): Promise<string | undefined> => {
      try {
        return await storage.enqueue(new Job("work", [ms], { uniqueKey: key, maxAttempts: 50 }));
      } catch (e) {
        if (e instanceof StorageUnavailableError) p.unavailable++;
        else p.unexpected.push(`library: ${String(e)}`);
        return undefined;
      }
    };
    const viaApi = async (key: string, ms: number): Promise<string | undefined> => {
      const res = await app.request("/api/jobs", {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "work", args: [ms], uniqueKey: key, maxAttempts: 50 }),
      });
      const body = (await res.json()) as { id?: string; code?: string };
      if (res.status === 201 || res.status === 200) return body.id;
      if (res.status === 503 && /^\d+$/.test(res.headers.get("retry-after") ?? "") && body.code === "STORAGE_UNAVAILABLE") p.api503++;
      else p.unexpected.push(`api: ${res.status} ${JSON.stringify(body)} retry-after=${res.headers.get("retry-after")}`);
      return undefined;
    };
    const producer = async (n: number) => {
      for (;;) {
        const i = next++;
        if (i >= JOBS) return;
        const key = `${label}-${i}`;
        const ms = between(5, 20);
        // Retry until acknowledged: the unique key makes a retry of a write that did land return the same job.
        for (;;) {
          const id = await (n % 2 === 0 ? viaLibrary(key, ms) : viaApi(key, ms));
          if (id !== undefined) {
            acked.set(key, id);
            p.acked++;
            break;
          }
          if (p.unexpected.length > 0) return;
          await sleep(50);
        }
      }
    };
    const producing = Promise.all(Array.from({ length: PRODUCERS }, (_, n) => producer(n)));
    const { disruptions, note } = await outage(p);
    const recoveredAt = Date.now();
    await producing;

    const ids = [...acked.values()];
    const done = await until(
      async () => {
        const s = await storage.stats({ minutes: 1, hours: 1 });
        return s.states.succeeded >= JOBS ? true : undefined;
      },
      scale(30_000, 300_000),
      100,
    );
    const records = await listAll(storage);
    const runs = await runLog.all();
    const analysis = analyse(ids, records, runs);
    const perKey = countBy(records, (r) => r.uniqueKey);
    const ranAfterRecovery = runs.filter((r) => r.at > recoveredAt).length;
    figures(
      `store-restart/${label}`,
      {
        jobs: JOBS,
        disruptions,
        enqueue_unavailable: p.unavailable,
        api_503: p.api503,
        unexpected: p.unexpected.length,
        stored: records.length,
        lost: analysis.lost.length,
        duplicates: analysis.duplicates,
        unexplained: analysis.unexplained.length,
      },
      note,
    );
    expect(p.unexpected).toEqual([]);
    expect(p.unavailable, "some library enqueue should have failed").toBeGreaterThan(0);
    expect(p.api503, "some API enqueue should have answered 503").toBeGreaterThan(0);
    expect(done).toBe(true);
    expect(records.length).toBe(JOBS);
    expect([...perKey.values()].every((n) => n === 1)).toBe(true);
    expect(analysis.lost).toEqual([]);
    expect(analysis.unexplained).toEqual([]);
    expect(analysis.badHistories).toEqual([]);
    // The servers were never restarted, and kept working once the store came back.
    expect(servers.every(({ server }) => server.isRunning)).toBe(true);
    expect(ranAfterRecovery).toBeGreaterThan(0);
  } finally {
    for (const { server, storage: s } of servers) {
      await server.stop(0);
      await s.close();
    }
    await storage.close();
  }
}

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

describeWithService("redis", await serviceUp("redis"), "chaos: redis restarted mid-run", () => {
  it(
    "enqueue fails typed (503 + Retry-After on the API) while it is down; nothing acknowledged is lost; workers recover by themselves",
    async () => {
      const redis = await startAofRedis();
      try {
        await restartRun("redis", { kind: "redis", url: redis.url, prefix: `qmlt-chaos-restart-${rand()}:`, commandTimeoutMs: 1000 }, async (p) => {
          await until(() => (p.acked >= JOBS / 3 ? true : undefined), 20_000, 10);
          await redis.kill();
          const t = Date.now();
          await until(() => (p.unavailable >= 3 && p.api503 >= 1 ? true : undefined), 20_000, 20);
          // Down for longer than a lease: heartbeats fail, leases run out, outcomes wait.
          await sleep(Math.max(0, t + 1500 - Date.now()));
          await redis.start();
          return { disruptions: 1, note: `down ${Date.now() - t} ms, SIGKILL then restart on the same AOF` };
        });
      } finally {
        await redis.stop();
      }
    },
    timeout(55_000, 600_000),
  );
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: postgres connections terminated mid-run", () => {
  afterAll(() => janitor.dropAll());
  it(
    "enqueue fails typed (503 + Retry-After on the API) when its session dies; nothing acknowledged is lost; workers recover by themselves",
    async () => {
      const app = `qml_chaos_${rand()}`;
      const schema = janitor.next("qml_chaos");
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      try {
        await restartRun("postgres", { kind: "postgres", driver: "pg", url: withApplicationName(DATABASE_URL, app), schema, maxConnections: 4 }, async (p) => {
          await until(() => (p.acked >= JOBS / 4 ? true : undefined), 20_000, 10);
          let rounds = 0;
          let terminated = 0;
          // Terminate (five times at least) until both kinds of enqueue were caught mid-statement.
          while (rounds < 200 && (rounds < 5 || !(p.unavailable >= 1 && p.api503 >= 1)) && p.acked < JOBS) {
            const r = await admin.query<{ n: string }>(
              "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()) t",
              [app],
            );
            terminated += Number(r.rows[0]!.n);
            rounds++;
            await sleep(between(20, 80));
          }
          return { disruptions: terminated, note: `${rounds} rounds of pg_terminate_backend` };
        });
      } finally {
        await admin.end();
      }
    },
    timeout(55_000, 600_000),
  );
});
