/**
 * The same storage operations on every backend: memory, Redis, PostgreSQL.
 *
 *   npx tsx examples/storage_demo.ts
 *
 * Redis: REDIS_URL (redis://… over TCP, or an Upstash https:// URL with
 * UPSTASH_REDIS_REST_TOKEN), else redis://127.0.0.1:6379 if it answers.
 * Keys go under the prefix "qml-demo:"; the demo clears its jobs first.
 * PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test if
 * it answers; tables go in the schema "qml_demo".
 */
import { Job, JobState, RetryPolicy, Storage, StorageUnavailableError, WorkerRegistry, WorkerResult, memoryBackend, tick } from "../src/index.js";
import { RedisConfig, redisBackend } from "../src/adapters/storage/redis/index.js";
import { PostgresConfig, postgresBackend } from "../src/adapters/storage/postgres/index.js";

async function demo(label: string, storage: Storage): Promise<void> {
  console.log(`\n=== ${label} ===`);
  await storage.migrate();
  // A clean slate for reruns: every job finished, then purged.
  const { items } = await storage.list({ state: [JobState.Scheduled, JobState.Enqueued, JobState.AwaitingRetry, JobState.Processing] }, { limit: 500 });
  await storage.delete(items.map((j) => j.id));
  await storage.purgeFinished();

  // Enqueue: one job, a delayed one, and a deduplicated pair.
  const email = await storage.enqueue(new Job("send_email", ["ada@example.com"], { queue: "mail", priority: 5, retry: RetryPolicy.fixed(1000) }));
  const report = await storage.enqueue(new Job("build_report", ["daily"], { delay: 60_000 }));
  const charge = await storage.enqueue(new Job("charge", [42], { uniqueKey: "order:42" }));
  const again = await storage.enqueue(new Job("charge", [42], { uniqueKey: "order:42" }));
  console.log("enqueued", { email, report, charge, deduplicated: again === charge });

  // What a server does: claim under a lease, run, record the outcome (fenced by the lease token).
  const registry = new WorkerRegistry()
    .register("send_email", () => WorkerResult.success({ sent: true }))
    .register("charge", () => WorkerResult.retry(new Error("card declined"), { delay: 60_000 }));
  const report1 = await tick({ storage, registry, deadline: Date.now() + 5000, queues: ["mail", "default"] });
  console.log("one pass:", { succeeded: report1.succeeded, retried: report1.retried });

  const job = (await storage.get(email))!;
  console.log("send_email is", job.state, "with result", job.result, "history", job.history.map((h) => h.state).join(" → "));

  const page = await storage.list({ state: [JobState.Scheduled, JobState.AwaitingRetry] }, { limit: 10, sort: "runAt", order: "asc" });
  console.log(
    "waiting",
    page.items.map((j) => `${j.name} at ${j.runAt?.toISOString()}`),
  );

  await storage.addOrUpdateRecurring("nightly-cleanup", "0 3 * * *", "cleanup", [], { timezone: "Europe/Paris" });
  console.log(
    "recurring",
    (await storage.listRecurring()).map((d) => `${d.id}: ${d.cron} ${d.timezone ?? "UTC"}`),
  );

  const stats = await storage.stats({ minutes: 5, hours: 1 });
  console.log("stats", stats.states, "succeeded this minute:", stats.perMinute.at(-1)!.succeeded);

  await storage.delete(report);
  await storage.deleteRecurring("nightly-cleanup");
  await storage.close();
}

async function main(): Promise<void> {
  await demo("memory", new Storage(memoryBackend()));

  const url = process.env.REDIS_URL ?? process.env.UPSTASH_REDIS_REST_URL ?? "redis://127.0.0.1:6379";
  const config = new RedisConfig(url).withKeyPrefix("qml-demo:").withCommandTimeout(2000).withRetries(1);
  if (process.env.UPSTASH_REDIS_REST_TOKEN) config.withToken(process.env.UPSTASH_REDIS_REST_TOKEN);
  const redis = new Storage(redisBackend(config));
  try {
    await demo(`redis (${redis.driver.transport})`, redis);
  } catch (e) {
    await redis.close();
    if (!(e instanceof StorageUnavailableError) || process.env.REDIS_URL) throw e;
    console.log(`\n=== redis: skipped (${String(config)} is not reachable; set REDIS_URL) ===`);
  }

  const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const postgres = new Storage(
    postgresBackend(new PostgresConfig().withDatabaseUrl(databaseUrl).withSchema("qml_demo").withConnectTimeout(2000).withNotify(false)),
  );
  try {
    await demo("postgres (pg)", postgres);
  } catch (e) {
    await postgres.close();
    if (!(e instanceof StorageUnavailableError) || process.env.DATABASE_URL) throw e;
    console.log("\n=== postgres: skipped (not reachable; set DATABASE_URL) ===");
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
