/**
 * A worker process for the chaos tests: one BackgroundJobServer on the
 * store of QML_CHAOS_CONFIG, with the chaos jobs registered. The tests
 * bundle it (processes.ts) and spawn it, kill it with SIGKILL, restart it,
 * skew its clock (fixtures/skew-clock.mjs) and read what it says on stdout:
 *
 *   READY <serverId> <Date.now()>     the server is started
 *   STARTED <jobId> <attempt>          a fence-* job began (job:start)
 *   LOST <jobId> <reason>              the store refused this worker's write (job:lost)
 *   HEARTBEAT <jobId> <true|false>     what a fence-heartbeat job's own heartbeat got
 *   PROGRESS <jobId> <true|false>      … and its progress write
 *   SKEWED <Date.now()>                the clock moved after a `JUMP <ms>` line on stdin
 *
 * Every job records its execution in the run log before it does anything
 * else, so an execution cut short by a kill is still on record.
 */
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { BackgroundJobServer } from "../../src/core/server.js";
import { ServerConfig } from "../../src/core/config/index.js";
import { WorkerRegistry, WorkerResult, type WorkerContext } from "../../src/core/registry.js";
import type { Job } from "../../src/core/job.js";
import { silentLogger } from "../../src/core/logger.js";
import { openRunLog, type RunLogSpec } from "./run-log.js";
import { openStore, type StoreSpec } from "./stores.js";

export interface WorkerConfig {
  store: StoreSpec;
  runLog: RunLogSpec;
  serverId: string;
  leaseMs: number;
  concurrency: number;
  schedulerMs: number;
  pollMs: number;
  maxPollMs?: number;
  enableScheduler?: boolean;
  /** Follow the store's clock (default true, as a server does by default). */
  clockSync?: boolean;
  /** fence-* jobs block (synchronously: no heartbeat, no timer runs) until this file exists. */
  flagFile?: string;
}

const config = JSON.parse(process.env.QML_CHAOS_CONFIG ?? "") as WorkerConfig;
const say = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const storage = await openStore(config.store);
const runLog = await openRunLog(config.runLog);
const record = (job: Job, ctx: WorkerContext) =>
  runLog.record({ id: job.id, attempt: ctx.attempt, token: ctx.leaseToken, server: config.serverId, at: Date.now() });

/** Blocks the whole process, timers and heartbeats included, as a handler stuck in synchronous work does. */
function blockUntilFlag(): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(config.flagFile!)) Atomics.wait(cell, 0, 0, 5);
}

const registry = new WorkerRegistry()
  .register("work", async (job, ctx) => {
    await record(job, ctx);
    await sleep(Number(job.arguments[0] ?? 10));
    return WorkerResult.success({ by: config.serverId });
  })
  .register("gather", async (job, ctx) => {
    // A flow's parent: what it saw of its children when it ran, in the run log's note.
    const children = await ctx.dependencies();
    const waited = job.flow?.dependsOn.length ?? 0;
    const open = children.filter((c) => c.state !== "succeeded").map((c) => `${c.id}:${c.state}`);
    const note = children.length === waited && open.length === 0 ? "children-done" : `children-open ${children.length}/${waited} ${open.join(" ")}`;
    await runLog.record({ id: job.id, attempt: ctx.attempt, token: ctx.leaseToken, server: config.serverId, at: Date.now(), note });
    await sleep(Number(job.arguments[0] ?? 10));
    return WorkerResult.success({ children: children.length });
  })
  .register("crash", async (job, ctx) => {
    await record(job, ctx);
    // An error nobody catches: the process dies, as with a native crash or an async throw.
    setImmediate(() => {
      throw new Error(`poison pill ${job.id} crashed ${config.serverId}`);
    });
    await new Promise(() => {});
  })
  .register("tick", async (job, ctx) => {
    await runLog.record({ id: job.id, attempt: ctx.attempt, token: ctx.leaseToken, server: config.serverId, at: Date.now(), note: String(job.metadata.slot) });
    return WorkerResult.success();
  })
  .register("fence-complete", () => {
    blockUntilFlag();
    return WorkerResult.success("stale owner");
  })
  .register("fence-fail", () => {
    blockUntilFlag();
    return WorkerResult.failure(new Error("stale owner failed"));
  })
  .register("fence-heartbeat", async (job, ctx) => {
    blockUntilFlag();
    say(`HEARTBEAT ${job.id} ${await ctx.heartbeat()}`);
    say(`PROGRESS ${job.id} ${await ctx.progress("stale owner")}`);
    return WorkerResult.success("stale owner");
  });

const server = new BackgroundJobServer(
  storage,
  registry,
  new ServerConfig(config.serverId)
    .workerCount(config.concurrency)
    .leaseDuration(config.leaseMs)
    .schedulerInterval(config.schedulerMs)
    .pollingInterval(config.pollMs)
    .maxPollingInterval(config.maxPollMs ?? Math.max(config.pollMs, 250))
    .enableScheduler(config.enableScheduler ?? true)
    .clockSync(config.clockSync ?? true)
    .logger(silentLogger),
);
server.on("job:start", (e) => {
  if (e.job.name.startsWith("fence-")) say(`STARTED ${e.job.id} ${e.job.attempts}`);
});
server.on("job:lost", (e) => say(`LOST ${e.id} ${e.reason}`));

// The test holds our stdin: when it goes away (even killed), so do we, instead of polling the store forever.
const commands = createInterface({ input: process.stdin });
commands.on("close", () => process.exit(0));
commands.on("line", (line) => {
  const m = /^JUMP (-?\d+)$/.exec(line.trim());
  const clock = (globalThis as { __qmlChaosClock?: { offsetMs: number } }).__qmlChaosClock;
  if (m && clock) {
    clock.offsetMs += Number(m[1]);
    say(`SKEWED ${Date.now()}`);
  }
});

const stop = async () => {
  await server.stop(0);
  await storage.close();
  await runLog.close();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());

await server.start();
say(`READY ${config.serverId} ${Date.now()}`);
