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
import { ALL_STATES, Job, JobState, MemoryStorage, RetryPolicy, StorageUnavailableError, type Storage } from "../src/index.js";
import { RedisConfig, createRedisStorage } from "../src/adapters/storage/redis/index.js";
import { PostgresConfig, createPostgresStorage } from "../src/adapters/storage/postgres/index.js";

async function demo(label: string, storage: Storage): Promise<void> {
  console.log(`\n=== ${label} ===`);
  await storage.migrate();
  await storage.purgeFinished({ states: [...ALL_STATES] }); // a clean slate for reruns

  // Enqueue: one job, a delayed one, and a deduplicated pair.
  const email = await storage.enqueue(new Job("send_email", ["ada@example.com"], { queue: "mail", priority: 5, retry: RetryPolicy.fixed(1000) }));
  const report = await storage.enqueue(new Job("build_report", ["daily"], { delay: 60_000 }));
  const charge = await storage.enqueue(new Job("charge", [42], { uniqueKey: "order:42" }));
  const again = await storage.enqueue(new Job("charge", [42], { uniqueKey: "order:42" }));
  console.log("enqueued", { email, report, charge, deduplicated: again === charge });

  // What a server does: claim a batch under a lease, run, record outcomes (fenced by the lease token).
  const now = storage.clock.now();
  const claimed = await storage.claim({ queues: ["mail", "default"], limit: 10, owner: "demo-server", leaseMs: 30_000, now });
  console.log("claimed", claimed.map((r) => `${r.name} (attempt ${r.attempts}, token ${r.leaseToken})`));
  const results = await storage.complete(
    claimed.map((r) =>
      r.name === "send_email"
        ? { id: r.id, token: r.leaseToken, state: JobState.Succeeded, result: { sent: true }, reason: "succeeded", worker: "demo-server/1" }
        : { id: r.id, token: r.leaseToken, state: JobState.AwaitingRetry, runAt: now + 1000, error: { name: "Error", message: "card declined" }, reason: "retry 2/3 in 1000 ms", worker: "demo-server/2" },
    ),
    storage.clock.now(),
  );
  console.log("completed", results.map((r) => r.status));

  const job = (await storage.get(email))!;
  console.log("send_email is", job.state, "with result", job.result, "history", job.history.map((h) => h.state).join(" → "));

  const page = await storage.list({ state: [JobState.Scheduled, JobState.AwaitingRetry] }, { limit: 10, sort: "runAt", order: "asc" });
  console.log("waiting", page.items.map((j) => `${j.name} at ${j.runAt?.toISOString()}`));

  await storage.addOrUpdateRecurring("nightly-cleanup", "0 3 * * *", "cleanup", [], { timezone: "Europe/Paris" });
  console.log("recurring", (await storage.listRecurring()).map((d) => `${d.id}: ${d.cron} ${d.timezone ?? "UTC"}`));

  const stats = await storage.stats({ minutes: 5, hours: 1 });
  console.log("stats", stats.states, "succeeded this minute:", stats.perMinute.at(-1)!.succeeded);

  await storage.delete(report);
  await storage.deleteRecurring("nightly-cleanup");
  await storage.close();
}

async function main(): Promise<void> {
  await demo("memory", new MemoryStorage());

  const url = process.env.REDIS_URL ?? process.env.UPSTASH_REDIS_REST_URL ?? "redis://127.0.0.1:6379";
  const config = new RedisConfig(url).withKeyPrefix("qml-demo:").withCommandTimeout(2000).withRetries(1);
  if (process.env.UPSTASH_REDIS_REST_TOKEN) config.withToken(process.env.UPSTASH_REDIS_REST_TOKEN);
  const redis = await createRedisStorage(config);
  try {
    await demo(`redis (${redis.driver.kind})`, redis);
  } catch (e) {
    await redis.close();
    if (!(e instanceof StorageUnavailableError) || process.env.REDIS_URL) throw e;
    console.log(`\n=== redis: skipped (${String(config)} is not reachable; set REDIS_URL) ===`);
  }

  const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const postgres = await createPostgresStorage(new PostgresConfig().withDatabaseUrl(databaseUrl).withSchema("qml_demo").withConnectTimeout(2000).withNotify(false));
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
