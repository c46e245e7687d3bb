/**
 * Concurrency and rate limits held by the store across servers: two job
 * servers, each with its own connection to one store, run jobs of one key.
 * The concurrency test counts the runs in flight across both (they share
 * this process) and never sees more than the limit; the rate test reads
 * each start's time from the job's history (the time the claim used) and
 * counts the starts per window: none over the limit, and the windows the
 * run spans filled to within 10 % of it; also with one server's clock half
 * a window ahead of the other's.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { afterEach, expect, it } from "vitest";
import { BackgroundJobServer, Job, JobState, ServerConfig, Storage, WorkerRegistry, memoryBackend, silentLogger, systemClock } from "../../src/index.js";
import { SkewedClock } from "../../src/core/clock.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";

interface Pair {
  a: Storage;
  b: Storage;
  cleanup(): Promise<void>;
}

const tag = () => crypto.randomUUID().replace(/-/g, "").slice(0, 10);

async function pairOf(kind: "memory" | "sqlite" | "postgres" | "redis"): Promise<Pair> {
  if (kind === "memory") {
    const s = new Storage(memoryBackend());
    return { a: s, b: s, cleanup: () => s.close() };
  }
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "qmlt-limits-"));
    const open = () => new Storage(sqliteBackend(new SqliteConfig(join(dir, "qml.db"))));
    const a = open();
    await a.migrate();
    const b = open();
    return {
      a,
      b,
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (kind === "postgres") {
    const schema = `qmlt_limits_${tag()}`;
    const open = () => new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema)));
    const a = open();
    await a.migrate();
    const b = open();
    return {
      a,
      b,
      async cleanup() {
        await Promise.all([a.close(), b.close()]);
        const client = new pg.Client({ connectionString: DATABASE_URL });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => client.end());
      },
    };
  }
  const prefix = `qmlt-limits-${tag()}:`;
  const open = () => new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(prefix)));
  const a = open();
  await a.migrate();
  const b = open();
  return {
    a,
    b,
    async cleanup() {
      await Promise.all([a.close(), b.close()]);
      const r = new Redis(REDIS_URL);
      const keys = await r.keys(`${prefix}*`);
      if (keys.length > 0) await r.del(...keys);
      r.disconnect();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runOnBoth(
  pair: Pair,
  registry: WorkerRegistry,
  until: () => Promise<boolean>,
  configure: (config: ServerConfig, server: "a" | "b") => ServerConfig = (c) => c,
): Promise<void> {
  const config = (server: "a" | "b") =>
    configure(new ServerConfig(`limits-${server}-${tag()}`).workerCount(10).pollingInterval(20).logger(silentLogger), server);
  const servers = [new BackgroundJobServer(pair.a, registry, config("a")), new BackgroundJobServer(pair.b, registry, config("b"))];
  await Promise.all(servers.map((s) => s.start()));
  try {
    const deadline = Date.now() + 30_000;
    while (!(await until())) {
      if (Date.now() > deadline) throw new Error("the jobs did not finish within 30 s");
      await sleep(50);
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

// Each test's pair is closed when it ends: connections are not held across the file.
const pairs: Pair[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.cleanup()));
});

function suite(kind: "memory" | "sqlite" | "postgres" | "redis"): void {
  it(`${kind}: two servers never run more than the concurrency limit of a key at once`, async () => {
    const pair = await pairOf(kind);
    pairs.push(pair);
    let running = 0;
    let most = 0;
    let freeRunning = 0;
    let freeMost = 0;
    const registry = new WorkerRegistry()
      .register("limited", async () => {
        most = Math.max(most, ++running);
        await sleep(25);
        running--;
      })
      .register("free", async () => {
        freeMost = Math.max(freeMost, ++freeRunning);
        await sleep(25);
        freeRunning--;
      });
    const jobs = Array.from({ length: 60 }, (_, i) => new Job("limited", [i], { concurrency: { key: "customer:42", limit: 5 } }));
    const free = Array.from({ length: 20 }, (_, i) => new Job("free", [i]));
    await pair.a.enqueue([...jobs, ...free]);
    await runOnBoth(pair, registry, async () => (await pair.a.stats()).states.succeeded === 80);
    expect(most).toBeLessThanOrEqual(5);
    expect(most).toBeGreaterThanOrEqual(2);
    // Jobs without the key are not held to it.
    expect(freeMost).toBeGreaterThan(5);
  }, 60_000);

  it(`${kind}: two servers start at most the rate limit per window, and fill each window to within 10 %`, async () => {
    const pair = await pairOf(kind);
    pairs.push(pair);
    const registry = new WorkerRegistry().register("rated", async () => {});
    const LIMIT = 10;
    const INTERVAL = 250;
    const ids = await pair.a.enqueue(
      Array.from({ length: 50 }, (_, i) => new Job("rated", [i], { rateLimit: { key: "api:mail", limit: LIMIT, interval: INTERVAL } })),
    );
    await runOnBoth(pair, registry, async () => (await pair.a.stats()).states.succeeded === 50);
    const jobs = await pair.a.getMany(ids);
    const starts = jobs.map((j) => {
      expect(j!.state).toBe(JobState.Succeeded);
      return j!.history.find((h) => h.state === JobState.Processing)!.at.getTime();
    });
    const perWindow = new Map<number, number>();
    for (const t of starts) perWindow.set(Math.floor(t / INTERVAL), (perWindow.get(Math.floor(t / INTERVAL)) ?? 0) + 1);
    expect(Math.max(...perWindow.values())).toBeLessThanOrEqual(LIMIT);
    const windows = Math.max(...perWindow.keys()) - Math.min(...perWindow.keys()) + 1;
    const achieved = starts.length / windows;
    expect(achieved).toBeGreaterThanOrEqual(LIMIT * 0.9);
  }, 60_000);

  it(`${kind}: with one server's clock half a window ahead of the other's, no window starts more than the limit`, async () => {
    const pair = await pairOf(kind);
    pairs.push(pair);
    const registry = new WorkerRegistry().register("rated", async () => {});
    const LIMIT = 10;
    const INTERVAL = 250;
    const AHEAD = 150;
    const rate = { rateLimit: { key: "api:skew", limit: LIMIT, interval: INTERVAL } };
    // Server a's clock runs AHEAD ms before b's (the system clock) and a
    // runs housekeeping every 10 ms. Each cycle: LIMIT jobs at the start of
    // b's window W take W's starts; LIMIT more come, through b's storage,
    // 120 ms into it, when a's clock is already in W + 1 and b's is still
    // in W. Those must wait for W + 1 whichever server claims them: a
    // housekeeping that forgot the key's count as a's clock left W let b
    // hand out W's starts again. Idle windows between cycles let the count
    // fall behind the clocks, as a quiet key's does.
    const CYCLES = 3;
    const ids: string[] = [];
    const until = (t: number) => sleep(Math.max(0, t - Date.now()));
    const produce = async () => {
      let w = Math.ceil(Date.now() / INTERVAL / 4) * 4 + 4;
      for (let c = 0; c < CYCLES; c++, w += 4) {
        await until(w * INTERVAL + 10);
        ids.push(...(await pair.a.enqueue(Array.from({ length: LIMIT }, (_, i) => new Job("rated", [c, i], rate)))));
        await until(w * INTERVAL + 120);
        ids.push(...(await pair.b.enqueue(Array.from({ length: LIMIT }, (_, i) => new Job("rated", [c, LIMIT + i], rate)))));
      }
    };
    const ahead = new SkewedClock(systemClock, AHEAD);
    let produced = false;
    const producing = produce().finally(() => (produced = true));
    await runOnBoth(
      pair,
      registry,
      async () => produced && (await pair.a.stats()).states.succeeded === CYCLES * 2 * LIMIT,
      (config, server) => config.clock(server === "a" ? ahead : systemClock).schedulerInterval(10),
    );
    await producing;
    const jobs = await pair.a.getMany(ids);
    const perWindow = new Map<number, number>();
    for (const j of jobs) {
      // Stamped with its claimer's clock: the one its window was counted in.
      const w = Math.floor(j!.history.find((h) => h.state === JobState.Processing)!.at.getTime() / INTERVAL);
      perWindow.set(w, (perWindow.get(w) ?? 0) + 1);
    }
    expect([...perWindow.values()].reduce((a, b) => a + b, 0)).toBe(CYCLES * 2 * LIMIT);
    expect(Math.max(...perWindow.values())).toBeLessThanOrEqual(LIMIT);
  }, 60_000);
}

suite("memory");
suite("sqlite");
describeWithService("postgres", await serviceUp("postgres"), "limits on postgres", () => suite("postgres"));
describeWithService("redis", await serviceUp("redis"), "limits on redis", () => suite("redis"));
