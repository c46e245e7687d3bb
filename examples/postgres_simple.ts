/**
 * PostgreSQL storage: a worker, a transactional enqueue, a server that runs it.
 *
 *   npx tsx examples/postgres_simple.ts
 *
 * Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) and
 * the schema "qml_example", created on first run (withAutoMigrate) and left
 * in place; rerunning starts from the jobs of the previous run, purged.
 */
import { ALL_STATES, BackgroundJobServer, Job, ServerConfig, WorkerRegistry, WorkerResult } from "../src/index.js";
import { PostgresConfig, createPostgresStorage, type PgDriver } from "../src/adapters/storage/postgres/index.js";

const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const storage = await createPostgresStorage(
  new PostgresConfig()
    .withDatabaseUrl(databaseUrl)
    .withDriver("pg") // or "neon-ws" / "neon-http" for Neon (see the README)
    .withSchema("qml_example")
    .withMaxConnections(5)
    .withAutoMigrate(true),
);
await storage.purgeFinished({ states: [...ALL_STATES] }); // a clean slate for reruns

const registry = new WorkerRegistry().register("send_welcome", async (job, ctx) => {
  ctx.logger.info(`welcome mail to ${String(job.arguments[0])}`);
  return WorkerResult.success({ sent: true });
});

// A plain enqueue, and one inside the application's own transaction: the
// second job exists only because the transaction commits.
await storage.enqueue(new Job("send_welcome", ["ada@example.com"]));
const pool = (storage.driver as PgDriver).pool;
const client = await pool.connect();
let inTx: string;
try {
  await client.query("BEGIN");
  // ... the application's own writes, e.g. INSERT INTO users ...
  inTx = await storage.enqueueWith(client, new Job("send_welcome", ["grace@example.com"]));
  await client.query("COMMIT");
} catch (e) {
  await client.query("ROLLBACK");
  throw e;
} finally {
  client.release();
}

const server = new BackgroundJobServer(storage, registry, new ServerConfig("pg-example").workerCount(4));
let finished = 0;
const done = new Promise<void>((resolve) => server.on("job:succeeded", () => ++finished === 2 && resolve()));
await server.start();
await done;
await server.stop();

const job = await storage.get(inTx);
console.log(`job ${job?.id} is ${job?.state}; history:`);
console.log(job?.history.map((h) => `  ${h.at.toISOString()} ${h.state} ${h.reason ?? ""}`).join("\n"));
const stats = await storage.stats({ minutes: 1, hours: 1 });
console.log("states:", stats.states);
await storage.close();
