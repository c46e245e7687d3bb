/**
 * The dashboard with something to watch: a job server, a producer that
 * keeps enqueueing a mix of jobs (some slow, some flaky, some scheduled,
 * a few recurring), and the dashboard on http://127.0.0.1:8080/.
 *
 *   npx tsx examples/dashboard_demo.ts
 *
 * Open the printed URL and log in with the printed token (or set
 * QML_DASHBOARD_TOKEN to choose one). QML_DASHBOARD_ADDR changes the
 * address ("127.0.0.1:0" picks a free port); QML_DEMO_SECONDS stops the
 * demo after that many seconds. Ctrl-C stops it gracefully.
 */
import { DashboardServer } from "../src/adapters/runtime/node/dashboard-server.js";
import { BackgroundJobServer, Job, Storage, memoryBackend, RetryPolicy, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../src/index.js";

const pause = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

const storage = new Storage(memoryBackend());
const registry = new WorkerRegistry()
  .register("send_email", async (job, ctx) => {
    await pause(50 + Math.random() * 400, ctx.signal);
    return WorkerResult.success({ delivered: job.arguments[0] });
  })
  .register("resize_image", async (job, ctx) => {
    await pause(100 + Math.random() * 900, ctx.signal);
    return WorkerResult.success({ size: job.arguments[1] });
  })
  .register("charge_card", async (job, ctx) => {
    await pause(80 + Math.random() * 200, ctx.signal);
    // About one charge in five is declined once: the retry shows in the job's history.
    if (ctx.attempt === 1 && Math.random() < 0.2) throw new Error(`card declined for order ${String(job.arguments[0])}`);
    return WorkerResult.success({ charged: true });
  })
  .register("sync_inventory", async (_job, ctx) => {
    await pause(200 + Math.random() * 600, ctx.signal);
    // Fails for good now and then: these land on the Failed page, ready for a retry.
    if (Math.random() < 0.08) return WorkerResult.failure(new Error("warehouse API answered 503 Service Unavailable"));
    return WorkerResult.success({ items: Math.floor(Math.random() * 500) });
  })
  .register("build_report", async (job, ctx) => {
    for (let step = 1; step <= 5; step++) {
      await pause(400 + Math.random() * 400, ctx.signal);
      await ctx.progress({ step, of: 5 });
    }
    return WorkerResult.success({ report: `${String(job.arguments[0])}.pdf` });
  })
  .register("heartbeat", () => WorkerResult.success("alive"));

const server = new BackgroundJobServer(
  storage,
  registry,
  new ServerConfig("demo-server")
    .workerCount(8)
    .queues(["critical", "default", "mail", "reports"])
    .pollingInterval(100)
    .schedulerInterval(500)
    .retryPolicy(RetryPolicy.exponential({ baseMs: 2000, maxMs: 30_000 }))
    .logger(silentLogger),
);

await storage.addOrUpdateRecurring("heartbeat", "*/10 * * * * *", "heartbeat"); // every 10 seconds
await storage.addOrUpdateRecurring("nightly-report", "0 3 * * *", "build_report", ["nightly"], { queue: "reports", timezone: "Europe/Paris" });

const dashboard = new DashboardServer(storage, { registry, logger: silentLogger });
await server.start();
const { url } = await dashboard.start(process.env.QML_DASHBOARD_ADDR ?? "127.0.0.1:8080");
console.log(`dashboard: ${url}`);
console.log(dashboard.token ? `token: ${dashboard.token}` : "token: the one in QML_DASHBOARD_TOKEN");

// The producer: a burst every 400 ms, like a busy web app.
const stop = new AbortController();
const producer = (async () => {
  let order = 1000;
  while (!stop.signal.aborted) {
    const burst: Job[] = [];
    for (let i = 0, n = 1 + Math.floor(Math.random() * 6); i < n; i++) {
      switch (pick(["mail", "mail", "image", "card", "inventory", "report"] as const)) {
        case "mail":
          burst.push(
            new Job("send_email", [`user${Math.floor(Math.random() * 900)}@example.com`, { template: pick(["welcome", "receipt", "reset"]) }], {
              queue: "mail",
            }),
          );
          break;
        case "image":
          burst.push(new Job("resize_image", [`photo-${Math.floor(Math.random() * 1e5)}.jpg`, pick([128, 256, 1024])]));
          break;
        case "card":
          burst.push(new Job("charge_card", [order++], { queue: "critical", priority: 10 }));
          break;
        case "inventory":
          burst.push(new Job("sync_inventory", [pick(["eu-west", "us-east", "ap-south"])], { maxAttempts: 1 }));
          break;
        case "report":
          burst.push(
            new Job("build_report", [`sales-${new Date().toISOString().slice(0, 10)}`], {
              queue: "reports",
              delay: Math.random() < 0.5 ? 0 : Math.round(15_000 + Math.random() * 60_000),
            }),
          );
          break;
      }
    }
    await storage.enqueue(burst);
    await pause(400, stop.signal);
  }
})();

let timer: ReturnType<typeof setTimeout> | undefined;
async function shutdown(): Promise<void> {
  if (stop.signal.aborted) return;
  stop.abort();
  clearTimeout(timer);
  await producer;
  await dashboard.stop();
  await server.stop(2000);
  const s = await storage.stats();
  console.log(`stopped: ${s.states.succeeded} succeeded, ${s.states.failed} failed, ${s.total} jobs in the store`);
}

process.once("SIGINT", () => void shutdown());
process.once("SIGTERM", () => void shutdown());
const seconds = Number(process.env.QML_DEMO_SECONDS ?? 0);
if (seconds > 0) timer = setTimeout(() => void shutdown(), seconds * 1000);
