/** The README's quick start, as written, runs. */
import { expect, it } from "vitest";
import { BackgroundJobServer, Job, Storage, memoryBackend, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import type { Worker, WorkerContext } from "../../src/index.js";
import { waitForEvents } from "./helpers.js";

it("runs the quick start", async () => {
  const sent: string[] = [];
  class EmailWorker implements Worker {
    readonly methodName = "send_email";
    async execute(job: Job, ctx: WorkerContext): Promise<WorkerResult> {
      const email = job.arguments[0];
      ctx.logger.info(`Sending email to: ${email}`);
      sent.push(String(email));
      return WorkerResult.success();
    }
  }

  const storage = new Storage(memoryBackend());
  const registry = new WorkerRegistry();
  registry.register(new EmailWorker());
  const job = new Job("send_email", ["user@example.com"]);
  await storage.enqueue(job);

  const server = new BackgroundJobServer(storage, registry, new ServerConfig("server-1").workerCount(4).logger(silentLogger));
  const done = waitForEvents(server, "job:succeeded");
  await server.start();
  await done;
  await server.stop();

  expect(sent).toEqual(["user@example.com"]);
  const stored = await storage.get(job.id);
  expect(stored?.state).toBe("succeeded");
  expect(stored?.attempts).toBe(1);
  expect(stored?.history.map((h) => h.state)).toEqual(["enqueued", "processing", "succeeded"]);
});

it("registers plain functions too", async () => {
  const storage = new Storage(memoryBackend());
  const registry = new WorkerRegistry().register("add", async (job) => WorkerResult.success((job.arguments[0] as number) + (job.arguments[1] as number)));
  const id = await storage.enqueue(new Job("add", [2, 3]));
  const server = new BackgroundJobServer(storage, registry, new ServerConfig().logger(silentLogger));
  const done = waitForEvents(server, "job:succeeded");
  await server.start();
  await done;
  await server.stop();
  expect((await storage.get(id))?.result).toBe(5);
});
