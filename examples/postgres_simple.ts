/**
 * PostgreSQL storage: a worker, a transactional enqueue, a server that runs it.
 *
 *   npx tsx examples/postgres_simple.ts
 *
 * Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) and
 * the schema "qml_example", created on first run (withAutoMigrate) and left
 * in place; rerunning starts from the jobs of the previous run, purged.
 */
import pg from "pg";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult } from "../src/index.js";
import { PostgresConfig, postgresBackend } from "../src/adapters/storage/postgres/index.js";

const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const storage = new Storage(
  postgresBackend(
    new PostgresConfig()
      .withDatabaseUrl(databaseUrl)
      .withDriver("pg") // or "neon-ws" / "neon-http" for Neon (see the README)
      .withSchema("qml_example")
      .withMaxConnections(5),
  ),
);
await storage.migrate();
await storage.purgeFinished(); // a clean slate for reruns

const registry = new WorkerRegistry().register("send_welcome", async (job, ctx) => {
  ctx.logger.info(`welcome mail to ${String(job.arguments[0])}`);
  return WorkerResult.success({ sent: true });
});

// A plain enqueue, and one inside the application's own transaction: the
// second job exists only because the transaction commits.
await storage.enqueue(new Job("send_welcome", ["ada@example.com"]));
const app = new pg.Client({ connectionString: databaseUrl });
await app.connect();
let inTx: string;
try {
  await app.query("BEGIN");
  // ... the application's own writes, e.g. INSERT INTO users ...
  inTx = await storage.enqueue(new Job("send_welcome", ["grace@example.com"]), { transaction: app });
  await app.query("COMMIT");
} catch (e) {
  await app.query("ROLLBACK");
  throw e;
} finally {
  await app.end();
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
