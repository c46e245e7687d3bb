/**
 * The workers this deployment runs. Replace these with your own: every job
 * name enqueued anywhere (the API, a client) needs a worker registered here.
 */
import { WorkerRegistry, WorkerResult } from "../../../src/index.js";

export function registerWorkers(registry: WorkerRegistry): WorkerRegistry {
  return registry
    .register("send_email", async (job, ctx) => {
      ctx.logger.info("sending email", { to: String(job.arguments[0]) });
      return WorkerResult.success({ delivered: true });
    })
    .register("generate_report", async (job, ctx) => {
      await ctx.progress({ step: 1, of: 1 });
      return WorkerResult.success({ report: String(job.arguments[0] ?? "daily") });
    });
}
