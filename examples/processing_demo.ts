/**
 * Processing at a glance: 200 jobs over three queues with priorities,
 * retries with backoff, a timeout, a scheduled job and a recurring one.
 *
 *   npx tsx examples/processing_demo.ts
 */
import { BackgroundJobServer, Job, Storage, memoryBackend, RetryPolicy, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../src/index.js";

const storage = new Storage(memoryBackend());
const registry = new WorkerRegistry()
  .register("resize_image", async (job) => {
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    return WorkerResult.success({ size: job.arguments[1] });
  })
  .register("charge_card", async (job, ctx) => {
    // Fails on the first attempt, succeeds on the second: shows retries.
    if (ctx.attempt === 1) throw new Error(`card declined for order ${String(job.arguments[0])}`);
    return WorkerResult.success({ charged: true });
  })
  .register("slow_export", (_job, ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(undefined))))
  .register("heartbeat", () => WorkerResult.success("alive"));

const jobs: Job[] = [];
for (let i = 0; i < 150; i++) jobs.push(new Job("resize_image", [`img-${i}.png`, 256], { queue: "default" }));
for (let i = 0; i < 40; i++) jobs.push(new Job("charge_card", [1000 + i], { queue: "critical", priority: 10, retry: RetryPolicy.fixed(100) }));
jobs.push(new Job("slow_export", [], { queue: "low", timeout: 200, maxAttempts: 1 }));
jobs.push(new Job("resize_image", ["later.png", 64], { delay: 500 }));
await storage.enqueue(jobs);
await storage.addOrUpdateRecurring("heartbeat", "* * * * * *", "heartbeat"); // every second

const server = new BackgroundJobServer(
  storage,
  registry,
  new ServerConfig("demo").workerCount(20).queues(["critical", "default", "low"]).pollingInterval(50).schedulerInterval(250).logger(silentLogger),
);
let succeeded = 0;
let retried = 0;
let failed = 0;
server.on("job:succeeded", () => succeeded++);
server.on("job:retry", () => retried++);
server.on("job:failed", (e) => {
  failed++;
  console.log(`failed: ${e.job.name} (${e.error.code ?? e.error.name}: ${e.error.message})`);
});

const started = Date.now();
await server.start();
while ((await storage.stats()).states.succeeded < 191) await new Promise((r) => setTimeout(r, 50));
await server.stop();
const stats = await storage.stats();
console.log(`done in ${Date.now() - started} ms: ${succeeded} succeeded, ${retried} retried, ${failed} failed`);
console.log("by state:", stats.states);
console.log("by queue:", Object.fromEntries(stats.queues.map((q) => [q.name, { succeeded: q.counts.succeeded, failed: q.counts.failed }])));
