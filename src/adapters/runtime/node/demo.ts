/** Demo workers and a producer, so that `npm start` shows jobs flowing. */
import { Job, WorkerResult, type Storage, type WorkerRegistry } from "../../../index.js";

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

export function registerDemoWorkers(registry: WorkerRegistry): WorkerRegistry {
  return registry
    .register("send_email", async (job, ctx) => {
      ctx.logger.info(`Sending email to: ${String(job.arguments[0])}`);
      await pause(50 + Math.random() * 150, ctx.signal);
      return WorkerResult.success({ delivered: true });
    })
    .register("generate_report", async (job, ctx) => {
      for (let step = 1; step <= 4; step++) {
        await pause(100, ctx.signal);
        await ctx.progress({ step, of: 4 });
      }
      return WorkerResult.success({ report: String(job.arguments[0] ?? "daily"), rows: Math.floor(Math.random() * 1000) });
    })
    .register("flaky_task", async (_job, ctx) => {
      await pause(20 + Math.random() * 50, ctx.signal);
      // Fails at random so that retries and failures show up.
      if (Math.random() < 0.4) throw new Error("flaky_task failed at random (this is the demo)");
      return WorkerResult.success();
    });
}

const emails = ["ada@example.com", "grace@example.com", "linus@example.com", "margaret@example.com"];

function demoJob(i: number, uniqueKey?: string): Job {
  const key = uniqueKey !== undefined ? { uniqueKey } : {};
  switch (i % 4) {
    case 0:
    case 1:
      return new Job("send_email", [emails[i % emails.length]], { metadata: { demo: true }, ...key });
    case 2:
      return new Job("flaky_task", [i], { maxAttempts: 3, retry: { kind: "exponential", baseMs: 500, maxMs: 5000, jitter: 0.2 }, ...key });
    default:
      return new Job("generate_report", ["daily"], { queue: "default", priority: 1, ...key });
  }
}

/**
 * Enqueues the demo jobs, each under a unique key (`demo-seed:<i>`): on a
 * store that outlives the process (the default SQLite file) a restart, or
 * two servers starting at once, add none while the first ones are kept.
 * Returns how many were new.
 */
export async function seedDemoJobs(storage: Storage, count = 24): Promise<{ created: number; existing: number }> {
  const jobs = Array.from({ length: count }, (_, i) => demoJob(i, `demo-seed:${i}`));
  await storage.enqueue(jobs);
  // Storage.enqueue writes state and times back onto the jobs it created only.
  const created = jobs.filter((j) => j.createdAt !== undefined).length;
  return { created, existing: count - created };
}

/** Enqueues a few jobs per second until the signal aborts. */
export function startDemoProducer(storage: Storage, signal: AbortSignal, perSecond = 3): void {
  let i = 0;
  const timer = setInterval(() => {
    const batch = Array.from({ length: perSecond }, () => demoJob(i++));
    storage.enqueue(batch).catch(() => {});
  }, 1000);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}
