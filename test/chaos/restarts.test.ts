/**
 * The store's server process restarted under a running Node server
 * (node-server.ts, in this process), which is never restarted:
 *
 * - PostgreSQL: a private cluster (processes.ts, startPrivatePostgres) is
 *   stopped with `pg_ctl stop -m immediate` (every backend and the
 *   postmaster quit at once, as in a crash; recovery from the WAL at the
 *   next start) and started again on the same port and data. Nothing
 *   committed is lost: every acknowledged job completes.
 * - Redis without persistence (`--save "" --appendonly no`): a private
 *   redis-server is SIGKILLed and started again, empty. The jobs it held
 *   are gone; that is the store's configuration, and the server must live
 *   with it: keep running, become ready again, re-create what it needs
 *   (scripts are resent on NOSCRIPT, the schema marker is written again),
 *   say clearly that the outcomes of the jobs that vanished were dropped,
 *   and run every job enqueued after the restart.
 *
 * In both: /readyz 503 while the store is down and 200 after, an enqueue
 * that fails is a StorageUnavailableError, no crash loop (the job server
 * started once and is still running), every duplicate run after a lease
 * expiry.
 */
import { afterAll, expect, it } from "vitest";
import { Job, StorageUnavailableError, WorkerRegistry, WorkerResult, type Storage } from "../../src/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { analyse, listAll } from "./analysis.js";
import { between, figures, rand, scale, timeout, until } from "./helpers.js";
import { startChaosNodeServer } from "./node-server.js";
import { removeTempDirs, startPrivatePostgres, startVolatileRedis, stopAll } from "./processes.js";
import { openRunLog } from "./run-log.js";
import { openStore, type StoreSpec } from "./stores.js";

/** Jobs flow this long before the restart and after the store is back. */
const FLOW_MS = scale(2000, 20_000);
/**
 * Down for less than a lease: running jobs finish while the store is away
 * and write their outcomes to the restarted one, where (on the wiped
 * Redis) their jobs no longer exist.
 */
const LEASE_MS = 4000;
const DOWN_MS = 1500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Restart {
  label: string;
  spec: StoreSpec;
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Whether the store keeps its data across the restart. */
  durable: boolean;
}

async function restartRun(r: Restart): Promise<void> {
  const runLog = await openRunLog({ kind: "memory" });
  const registry = new WorkerRegistry().register("work", async (job, ctx) => {
    await runLog.record({ id: job.id, attempt: ctx.attempt, token: ctx.leaseToken, server: ctx.serverId, at: Date.now() });
    await sleep(Number(job.arguments[0]));
    return WorkerResult.success();
  });
  const producerStore: Storage = await openStore(r.spec);
  const node = await startChaosNodeServer(await openStore(r.spec), registry, { serverId: `restart-${rand()}`, workers: 4, pollMs: 20, leaseMs: LEASE_MS });
  const lostEvents: string[] = [];
  node.handle.server.on("job:lost", (e) => lostEvents.push(`${e.id}: ${e.reason}`));

  const acked: Array<{ id: string; at: number }> = [];
  let unavailable = 0;
  const unexpected: string[] = [];
  let producing = true;
  const producer = (async () => {
    while (producing) {
      try {
        const ids = await producerStore.enqueue(Array.from({ length: 3 }, () => new Job("work", [between(20, 150)], { maxAttempts: 50 })));
        const at = Date.now();
        for (const id of ids) acked.push({ id, at });
      } catch (e) {
        if (e instanceof StorageUnavailableError) unavailable++;
        else unexpected.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      }
      await sleep(50);
    }
  })();
  const probes: Array<{ at: number; status: number }> = [];
  let probing = true;
  const prober = (async () => {
    while (probing) {
      const at = Date.now();
      probes.push({ at, status: (await node.readyz()).status });
      await sleep(150);
    }
  })();
  try {
    await node.handle.started;
    await sleep(FLOW_MS);
    const killAt = Date.now();
    await r.kill();
    await sleep(DOWN_MS);
    await r.start();
    const upAt = Date.now();
    const readyAgain = await until(() => probes.find((p) => p.at > upAt && p.status === 200), scale(20_000, 60_000), 100);
    await sleep(FLOW_MS);
    producing = false;
    await producer;

    const expected = r.durable ? acked : acked.filter((a) => a.at > killAt);
    const done = await until(
      async () => {
        const records = await listAll(producerStore);
        const ok = new Set(records.filter((x) => x.state === "succeeded").map((x) => x.id));
        return expected.every((a) => ok.has(a.id)) ? true : undefined;
      },
      scale(30_000, 120_000),
      250,
    );
    probing = false;
    await prober;
    const records = await listAll(producerStore);
    const stored = new Set(records.map((x) => x.id));
    const gone = acked.filter((a) => !stored.has(a.id)).length;
    const analysis = analyse(
      expected.map((a) => a.id),
      records,
      await runLog.all(),
    );
    const down = probes.filter((p) => p.at > killAt && p.at < upAt);
    const goneLogs = node.logs.filter((l) => /no longer exists/.test(l)).length;
    figures(
      `restart/${r.label}`,
      {
        jobs: acked.length,
        down_ms: upAt - killAt,
        enqueue_unavailable: unavailable,
        unexpected: unexpected.length,
        readyz_503_down: `${down.filter((p) => p.status === 503).length}/${down.length}`,
        ready_after_ms: readyAgain ? readyAgain.at - upAt : -1,
        gone_with_the_store: gone,
        outcomes_lost: lostEvents.length,
        gone_logged: goneLogs,
        lost: analysis.lost.length,
        duplicates: analysis.duplicates,
        unexplained: analysis.unexplained.length,
      },
      r.durable ? "pg_ctl stop -m immediate, then start" : "SIGKILL, restarted empty (no persistence)",
    );
    expect(unexpected).toEqual([]);
    expect(readyAgain, "/readyz 200 after the restart").toBeDefined();
    expect(down.some((p) => p.status === 503) || down.length === 0, "/readyz 503 while the store is down").toBe(true);
    expect(done, "every job the store still holds, or was given after the restart, succeeded").toBe(true);
    expect(analysis.lost).toEqual([]);
    expect(analysis.unexplained).toEqual([]);
    expect(node.handle.server.isRunning).toBe(true);
    expect(acked.filter((a) => a.at > upAt).length, "enqueues after the restart were acknowledged").toBeGreaterThan(0);
    if (r.durable) expect(gone).toBe(0);
    else {
      expect(gone, "jobs enqueued before the kill are gone with the store").toBeGreaterThan(0);
      // Outcomes written to the emptied store are refused, each logged as a job that no longer exists
      // (four workers are busy all the time: some run when the store goes).
      expect(goneLogs).toBeGreaterThan(0);
      expect(goneLogs).toBe(lostEvents.filter((e) => e.endsWith("no longer exists in the store")).length);
      expect(lostEvents.every((e) => e.endsWith("no longer exists in the store") || e.includes("lease lost"))).toBe(true);
    }
  } finally {
    producing = false;
    probing = false;
    await producer;
    await prober;
    await node.handle.stop(0);
    await producerStore.close();
  }
}

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

describeWithService("redis", await serviceUp("redis"), "chaos: redis without persistence restarted", () => {
  it(
    "comes back empty: the server keeps running, is ready again, logs the vanished jobs' outcomes as lost, and runs every new job",
    async () => {
      const redis = await startVolatileRedis();
      await restartRun({
        label: "redis-volatile",
        spec: { kind: "redis", url: redis.url, prefix: `qmlt-chaos-wipe-${rand()}:`, commandTimeoutMs: 1000 },
        kill: redis.kill,
        start: redis.start,
        durable: false,
      });
    },
    timeout(55_000, 300_000),
  );
});

describeWithService("postgres", await serviceUp("postgres"), "chaos: postgres server restarted", () => {
  it(
    "pg_ctl stop -m immediate and start: the server keeps running, is ready again, and every acknowledged job completes",
    async () => {
      const cluster = await startPrivatePostgres();
      await restartRun({
        label: "postgres-server",
        spec: { kind: "postgres", driver: "pg", url: cluster.url, schema: "qml_chaos", maxConnections: 4 },
        kill: cluster.kill,
        start: cluster.start,
        durable: true,
      });
    },
    timeout(55_000, 300_000),
  );
});
