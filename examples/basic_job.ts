/**
 * The quick start: one worker, one job, a server that runs it.
 *
 *   npx tsx examples/basic_job.ts
 */
import { BackgroundJobServer, Job, Storage, memoryBackend, ServerConfig, WorkerRegistry, WorkerResult } from "../src/index.js";
import type { Worker, WorkerContext } from "../src/index.js";

class EmailWorker implements Worker {
  readonly methodName = "send_email";
  async execute(job: Job, ctx: WorkerContext): Promise<WorkerResult> {
    const email = job.arguments[0];
    ctx.logger.info(`Sending email to: ${email}`);
    return WorkerResult.success();
  }
}

const storage = new Storage(memoryBackend());
const registry = new WorkerRegistry();
registry.register(new EmailWorker());
const job = new Job("send_email", ["user@example.com"]);
await storage.enqueue(job);

const server = new BackgroundJobServer(storage, registry, new ServerConfig("server-1").workerCount(4));
const done = new Promise((resolve) => server.on("job:succeeded", resolve));
await server.start();
await done;
await server.stop();

const stored = await storage.get(job.id);
console.log(`job ${stored?.id} is ${stored?.state} after ${stored?.attempts} attempt(s)`);
console.log(stored?.history.map((h) => `${h.at.toISOString()} ${h.state} ${h.reason ?? ""}`).join("\n"));
