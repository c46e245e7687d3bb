// Your own workers for the stock qml server (plain JavaScript: the image has
// no TypeScript tooling). The server loads this module at start because
// QML_WORKERS_MODULE names it; see examples/docker/Dockerfile.
import { Job, WorkerResult } from "qml";

export function register(registry, { storage, logger }) {
  registry
    .register("resize_image", async (job, ctx) => {
      const [url, width] = job.arguments;
      ctx.logger.info("resizing", { url, width });
      await ctx.progress({ step: 1, of: 2 });
      // ... the real work; ctx.signal aborts on timeout, shutdown or a lost lease.
      await ctx.progress({ step: 2, of: 2 });
      // A follow-up job, enqueued by the worker itself.
      await storage.enqueue(new Job("notify_owner", [url], { queue: "default" }));
      return WorkerResult.success({ url, width });
    })
    .register("notify_owner", async (job, ctx) => {
      ctx.logger.info("image ready", { url: job.arguments[0] });
      return WorkerResult.success();
    });
  logger.info("example workers registered", {});
}
