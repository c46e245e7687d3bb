/**
 * Flow control on one storage: pause and resume a queue, debounce and
 * throttle with unique keys, concurrency and rate limits per key, cancel a
 * running job.
 *
 *   npx tsx examples/flow_control.ts
 */
import { BackgroundJobServer, CancelledError, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger } from "../src/index.js";

const storage = new Storage(memoryBackend());
const ran: string[] = [];
const registry = new WorkerRegistry()
  .register("send", (job) => {
    ran.push(`send ${String(job.arguments[0])}`);
    return WorkerResult.success();
  })
  .register("reindex", (job) => {
    ran.push(`reindex ${JSON.stringify(job.arguments)}`);
  })
  .register("export", (_job, ctx) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))));

const server = new BackgroundJobServer(storage, registry, new ServerConfig("flow").queues(["mail", "default"]).pollingInterval(20).logger(silentLogger));
await server.start();

// Pause: the queue accepts jobs and claims none until resumed.
await storage.pauseQueue("mail");
const mail = await storage.enqueue(new Job("send", ["newsletter"], { queue: "mail" }));
await new Promise((r) => setTimeout(r, 200));
console.log(`paused: ${(await storage.pausedQueues()).join(", ")}; the mail job is ${(await storage.get(mail))?.state}`);
const sent = new Promise((resolve) => server.on("job:succeeded", resolve));
await storage.resumeQueue("mail");
await sent;
console.log(`resumed: the mail job is ${(await storage.get(mail))?.state}`);

// Debounce: three edits within the delay make one run, with the last arguments.
const reindexed = new Promise((resolve) => server.on("job:succeeded", (e) => e.job.name === "reindex" && resolve(undefined)));
for (const version of [1, 2, 3]) {
  await storage.enqueue(new Job("reindex", ["doc-7", version], { uniqueKey: "reindex:doc-7", uniqueMode: "debounce", delay: 300 }));
}
// Throttle: one digest per window, however many asks.
const digests = await storage.enqueue([1, 2, 3].map(() => new Job("send", ["digest"], { uniqueKey: "digest:ada", uniqueTtl: 60_000 })));
console.log(`throttled: ${new Set(digests).size} digest job for ${digests.length} asks`);

// Concurrency: at most 2 exports of one customer run at once, across every server.
let inFlight = 0;
let most = 0;
registry.register("export_rows", async () => {
  most = Math.max(most, ++inFlight);
  await new Promise((r) => setTimeout(r, 30));
  inFlight--;
});
const exportsDone = new Promise<void>((resolve) => {
  let n = 0;
  server.on("job:succeeded", (e) => e.job.name === "export_rows" && ++n === 6 && resolve());
});
await storage.enqueue(Array.from({ length: 6 }, (_, i) => new Job("export_rows", [i], { concurrency: { key: "customer:42", limit: 2 } })));
await exportsDone;
console.log(`concurrency: 6 exports, at most ${most} at once`);

// Rate: at most 3 calls to the mail API per 200 ms; the rest wait as scheduled for their window.
const starts: number[] = [];
registry.register("call_api", () => {
  starts.push(Date.now());
});
const callsDone = new Promise<void>((resolve) => {
  let n = 0;
  server.on("job:succeeded", (e) => e.job.name === "call_api" && ++n === 9 && resolve());
});
await storage.enqueue(Array.from({ length: 9 }, (_, i) => new Job("call_api", [i], { rateLimit: { key: "mail-api", limit: 3, interval: 200 } })));
await callsDone;
const windows = new Set(starts.map((t) => Math.floor(t / 200))).size;
console.log(`rate: 9 calls over ${windows} windows of 200 ms`);

// Cancel: a running job's AbortSignal fires with a CancelledError.
const started = new Promise((resolve) => server.on("job:start", (e) => e.job.name === "export" && resolve(undefined)));
const exportId = await storage.enqueue(new Job("export", []));
await started;
const cancelled = new Promise<void>((resolve) => server.on("job:cancelled", () => resolve()));
await storage.cancel(exportId, { by: "the example" });
await cancelled;
const job = await storage.get(exportId);
console.log(`cancelled: the export is ${job?.state} (${job?.history.at(-1)?.reason}); CancelledError is ${CancelledError.name}`);

await reindexed;
await server.stop();
console.log(`ran: ${ran.join("; ")}`);
