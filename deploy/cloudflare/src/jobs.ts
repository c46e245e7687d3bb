/**
 * The jobs this reference deployment runs. Replace them with your own: a
 * worker is a name and a function of the job (see the README's "Workers").
 * They are small on purpose, so a fresh deployment shows jobs flowing
 * through the dashboard without calling anything outside.
 */
import { WorkerResult, type WorkerRegistry } from "../../../src/index.js";

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

export function registerJobs(registry: WorkerRegistry): WorkerRegistry {
  return (
    registry
      .register("send_email", async (job, ctx) => {
        ctx.logger.info("sending email", { to: String(job.arguments[0]) });
        await pause(50, ctx.signal);
        return WorkerResult.success({ delivered: true });
      })
      .register("generate_report", async (job, ctx) => {
        for (let step = 1; step <= 4; step++) {
          await pause(100, ctx.signal);
          await ctx.progress({ step, of: 4 });
        }
        return WorkerResult.success({ report: String(job.arguments[0] ?? "daily") });
      })
      // A durable workflow (README, "Durable steps"): each step runs once across
      // cron ticks and Queue invocations; the sleep and the wait hold no
      // invocation. Send the event with POST /api/events
      // { "name": "customer.verified", "data": { "email": "…" } }.
      .register("onboard_customer", async (job, ctx) => {
        const email = String(job.arguments[0]);
        const coolOffMs = Number((job.arguments[1] as { coolOffMs?: number } | undefined)?.coolOffMs ?? 60_000);
        const account = await ctx.step.run("create-account", async () => {
          await pause(20, ctx.signal);
          return { account: `acct_${email.split("@")[0]}` };
        });
        await ctx.step.sleep("cool-off", coolOffMs);
        const verified = await ctx.step.waitForEvent<{ email: string }>("verified", { event: "customer.verified", match: { email }, timeout: 86_400_000 });
        const welcome = await ctx.step.run("send-welcome", async () => {
          await pause(20, ctx.signal);
          return { sent: verified !== null };
        });
        return WorkerResult.success({ ...account, verified: verified !== null, ...welcome });
      })
  );
}
