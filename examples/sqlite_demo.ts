/**
 * SQLite storage: jobs in a file that outlives the process.
 *
 *   npx tsx examples/sqlite_demo.ts [path]
 *
 * A server runs three jobs and stops while a fourth waits for its time;
 * then, as after a restart, a new storage on the same file finds all four.
 * Without a path the file goes to a temporary folder, removed at the end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, silentLogger } from "../src/index.js";
import { SqliteConfig, sqliteBackend } from "../src/adapters/storage/sqlite/index.js";

const scratch = process.argv[2] ? undefined : mkdtempSync(join(tmpdir(), "qml-sqlite-demo-"));
const path = process.argv[2] ?? join(scratch!, "jobs.db");

const registry = new WorkerRegistry().register("send_welcome", (job) => WorkerResult.success({ sent: String(job.arguments[0]) }));

// The first process: enqueue, run what is due, stop.
const first = new Storage(sqliteBackend(new SqliteConfig(path)));
await first.migrate(); // creates the tables (a server does it at start)
await first.enqueue([new Job("send_welcome", ["ada@example.com"]), new Job("send_welcome", ["grace@example.com"])]);
await first.enqueue(new Job("send_welcome", ["linus@example.com"], { uniqueKey: "welcome:linus" }));
await first.enqueue(new Job("send_welcome", ["linus@example.com"], { uniqueKey: "welcome:linus" })); // the same job: not added twice
await first.enqueue(new Job("send_welcome", ["margaret@example.com"], { delay: 3_600_000 })); // in an hour

const server = new BackgroundJobServer(first, registry, new ServerConfig("sqlite-demo").workerCount(2).pollingInterval(50).logger(silentLogger));
let succeeded = 0;
const done = new Promise<void>((resolve) => server.on("job:succeeded", () => ++succeeded === 3 && resolve()));
await server.start();
await done;
await server.stop();
await first.close();
console.log(`first process: ${succeeded} jobs succeeded, then it stopped`);

// The next process, on the same file.
const second = new Storage(sqliteBackend(new SqliteConfig(path)));
await second.migrate(); // already current: one read
const stats = await second.stats();
console.log(`after a restart: ${stats.total} jobs in ${path}: succeeded ${stats.states.succeeded}, scheduled ${stats.states.scheduled}`);
for (const job of (await second.list({}, { sort: "createdAt", order: "asc" })).items) {
  console.log(`  ${job.name}(${String(job.arguments[0])}) ${job.state}`);
}
await second.close();
if (scratch) rmSync(scratch, { recursive: true, force: true });
