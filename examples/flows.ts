/**
 * Flows and continuations: a parent that runs once its children have
 * finished and reads their results, and a job that runs after another one
 * (on success, on failure, or either way).
 *
 *   npx tsx examples/flows.ts
 */
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger } from "../src/index.js";

const storage = new Storage(memoryBackend());
const registry = new WorkerRegistry()
  .register("resize", (job) => WorkerResult.success({ image: job.arguments[0], bytes: 1000 * (job.arguments[1] as number) }))
  .register("publish_album", async (_job, ctx) => {
    // The children's records: state, result, error.
    const photos = await ctx.dependencies();
    const bytes = photos.reduce((sum, p) => sum + (p.result as { bytes: number }).bytes, 0);
    return WorkerResult.success({ photos: photos.length, bytes });
  })
  .register("notify", (job) => WorkerResult.success(`told ${job.arguments[0]}`))
  .register("charge", () => {
    throw new Error("card declined");
  })
  .register("refund_hold", () => WorkerResult.success("hold released"));

// The whole tree is stored in one atomic call: three children, one parent waiting for them.
const album = await storage.enqueueFlow({
  job: new Job("publish_album", ["holidays"]),
  children: [1, 2, 3].map((n) => ({ job: new Job("resize", [`img-${n}.jpg`, n]) })),
  // A child that fails fails the parent (default); "ignore" or "remove" would let it run.
  onChildFailure: "fail",
});
// Hangfire's ContinueJobWith: after the album is published, notify.
const notify = await storage.continueWith(album.id, new Job("notify", ["ada@example.com"]));
// A continuation on failure: runs only if the charge fails; otherwise it ends deleted.
const charge = await storage.enqueue(new Job("charge", [42], { maxAttempts: 1 }));
const refund = await storage.continueWith(charge, new Job("refund_hold", [42]), { on: "failure" });

console.log(`album ${(await storage.get(album.id))!.state}, notify ${(await storage.get(notify))!.state}`);

const server = new BackgroundJobServer(storage, registry, new ServerConfig("flows-example").workerCount(4).pollingInterval(20).logger(silentLogger));
const finished = new Set([notify, refund]);
const done = new Promise<void>((resolve) =>
  server.on("job:succeeded", ({ job }) => {
    finished.delete(job.id);
    if (finished.size === 0) resolve();
  }),
);
await server.start();
await done;
await server.stop();

const published = (await storage.get(album.id))!;
console.log(`album ${published.state}: ${JSON.stringify(published.result)}`);
console.log(`notify ${(await storage.get(notify))!.state}: ${JSON.stringify((await storage.get(notify))!.result)}`);
console.log(`charge ${(await storage.get(charge))!.state}, refund_hold ${(await storage.get(refund))!.state}`);
await storage.close();
