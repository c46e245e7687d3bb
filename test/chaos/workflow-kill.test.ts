/**
 * Durable steps under SIGKILL: workflows of five steps (run, run, sleep,
 * event wait, run) on worker processes that are killed at random and
 * restarted, on Redis, PostgreSQL and SQLite (one server on its file). The
 * test process sends each workflow's event once it waits for it.
 *
 * Each step's function records its completion in the run log as its last
 * act (worker-process.ts, "workflow"). Invariants: every workflow
 * succeeds, none is lost; a step whose function completed more than once
 * did so only after its job's lease expired (a process killed between the
 * function's return and the step's save: at-least-once, and no more), so
 * a step's completions never exceed one plus the job's reclaims; the
 * result each workflow ends with is one of its steps' recorded
 * completions (the stored result, never a later run's own).
 */
import { afterAll, describe, expect, it } from "vitest";
import { Job, JobState, type Storage } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { listAll } from "./analysis.js";
import { figures, scale, timeout, until } from "./helpers.js";
import { removeTempDirs, spawnWorker, stopAll, tempPath, type ChaosWorker } from "./processes.js";
import { openRunLog, type RunLogSpec } from "./run-log.js";
import { betterSqlite3Path, openStore, sqliteSpec, type StoreSpec } from "./stores.js";
import type { WorkerConfig } from "./worker-process.js";

const WORKFLOWS = scale(60, 600);
const STEP_MS = 150;
const LEASE_MS = 1000;
const KILL_EVERY_MS = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function succeeded(storage: Storage): Promise<number> {
  return (await storage.stats({ minutes: 1, hours: 1 })).states.succeeded;
}

/** Sends each waiting workflow its event; returns how many were delivered. */
async function sendEvents(storage: Storage): Promise<number> {
  let n = 0;
  for (const r of await listAll(storage, { state: JobState.Scheduled })) {
    if (r.steps?.some((s) => s.id === "go" && s.status === "waiting")) n += (await storage.sendEvent(`go:${r.id}`, { n: 1 })).delivered.length;
  }
  return n;
}

async function workflowKillRun(label: string, spec: StoreSpec, runLogSpec: RunLogSpec, o: { processes: number; kills: number }): Promise<void> {
  const storage = await openStore(spec);
  const runLog = await openRunLog(runLogSpec);
  const workers: ChaosWorker[] = [];
  try {
    const ids = await storage.enqueue(Array.from({ length: WORKFLOWS }, () => new Job("workflow", [STEP_MS], { maxAttempts: 50 })));
    let generation = 0;
    const configFor = (slot: number): WorkerConfig => ({
      store: spec,
      runLog: runLogSpec,
      serverId: `wf-${slot}-${++generation}`,
      leaseMs: LEASE_MS,
      concurrency: 4,
      schedulerMs: 200,
      pollMs: 20,
    });
    for (let slot = 0; slot < o.processes; slot++) workers.push(await spawnWorker(configFor(slot)));
    await Promise.all(workers.map((w) => w.waitFor(/^READY /)));

    let kills = 0;
    let delivered = 0;
    while (kills < o.kills && (await succeeded(storage)) < WORKFLOWS * 0.9) {
      await sleep(KILL_EVERY_MS);
      delivered += await sendEvents(storage);
      const ready = workers.map((w, slot) => ({ w, slot })).filter(({ w }) => w.alive && w.lines.some((l) => l.startsWith("READY ")));
      if (ready.length < Math.min(2, o.processes)) continue;
      const { w, slot } = ready[Math.floor(Math.random() * ready.length)]!;
      await w.kill();
      kills++;
      workers[slot] = await spawnWorker(configFor(slot));
    }
    await until(
      async () => {
        delivered += await sendEvents(storage);
        return (await succeeded(storage)) >= WORKFLOWS ? true : undefined;
      },
      scale(60_000, 600_000),
      200,
    );

    const records = await listAll(storage);
    const runs = await runLog.all();
    const byJob = new Map(records.map((r) => [r.id, r]));
    let completions = 0;
    let repeated = 0;
    const unexplained: string[] = [];
    const wrongResult: string[] = [];
    const notDone: string[] = [];
    for (const id of ids) {
      const r = byJob.get(id);
      if (r?.state !== JobState.Succeeded) {
        notDone.push(`${id}: ${r?.state ?? "lost"}`);
        continue;
      }
      const reclaims = r.history.filter((h) => /lease expired/.test(h.reason ?? "")).length;
      const result = r.result as Record<string, { token: number } | { n: number } | null>;
      for (const step of ["a", "b", "c"]) {
        const done = runs.filter((x) => x.id === id && x.note === `step:${step}`);
        completions += done.length;
        if (done.length > 1) repeated++;
        if (done.length === 0 || done.length > 1 + reclaims) unexplained.push(`${id} step ${step}: ${done.length} completions, ${reclaims} reclaims`);
        const token = (result[step] as { token: number } | undefined)?.token;
        if (!done.some((x) => x.token === token))
          wrongResult.push(`${id} step ${step}: result from token ${token}, completions ${done.map((x) => x.token).join(",")}`);
      }
      if ((result.go as { n: number } | null)?.n !== 1) wrongResult.push(`${id}: event ${JSON.stringify(result.go)}`);
    }
    figures(
      `workflow-kill/${label}`,
      {
        workflows: WORKFLOWS,
        processes: o.processes,
        kills,
        events_delivered: delivered,
        step_completions: completions,
        steps_completed_more_than_once: repeated,
        unexplained: unexplained.length,
        not_done: notDone.length,
      },
      unexplained.length === 0 ? "each repeat after a lease expiry" : "UNEXPLAINED repeats",
    );
    expect(kills, "the run should have killed workers").toBeGreaterThanOrEqual(Math.min(5, o.kills));
    expect(notDone).toEqual([]);
    expect(unexplained).toEqual([]);
    expect(wrongResult).toEqual([]);
    expect(delivered).toBe(WORKFLOWS);
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await runLog.close();
    await storage.close();
  }
}

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

const keys = prefixes("chaos-wf");
describeWithService("redis", await serviceUp("redis"), "chaos: workflows on redis, workers killed", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it(
    "every workflow finishes; a step's work repeats only after a lease expiry",
    async () => {
      const prefix = keys.next();
      await workflowKillRun(
        "redis",
        { kind: "redis", url: REDIS_URL, prefix },
        { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` },
        { processes: 3, kills: 10 },
      );
    },
    timeout(90_000, 900_000),
  );
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: workflows on postgres, workers killed", () => {
  afterAll(() => janitor.dropAll());
  it(
    "every workflow finishes; a step's work repeats only after a lease expiry",
    async () => {
      const schema = janitor.next("qml_chaos_wf");
      await workflowKillRun(
        "postgres",
        { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 3 },
        { kind: "postgres", url: DATABASE_URL, schema },
        { processes: 3, kills: 10 },
      );
    },
    timeout(90_000, 900_000),
  );
});

describe("chaos: workflows on sqlite, the server killed", () => {
  it(
    "every workflow finishes; a step's work repeats only after a lease expiry",
    async () => {
      const runs: RunLogSpec = { kind: "sqlite", path: tempPath("wf-runs.db"), module: betterSqlite3Path() };
      await workflowKillRun("sqlite", sqliteSpec(tempPath("wf-jobs.db")), runs, { processes: 1, kills: 5 });
    },
    timeout(90_000, 900_000),
  );
});
