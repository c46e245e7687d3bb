/**
 * Cancellation across processes, as the Redis and PostgreSQL tests check
 * it: a server on one storage runs a job that waits on its AbortSignal;
 * the test cancels it through another storage on the same keys or schema
 * (another process, as far as the stores can tell) and waits for the run
 * to end.
 */
import { expect } from "vitest";
import { CancelledError, Job, JobState, WorkerRegistry, type BackgroundJobServer, type Storage } from "../../src/index.js";
import { testServer, waitForEvents } from "../core/helpers.js";

export interface RunningJob {
  id: string;
  server: BackgroundJobServer;
  /** Settles with the signal's reason when the run is aborted. */
  aborted: Promise<unknown>;
  /** Settles when the server reports `job:cancelled` for it. */
  cancelled: Promise<unknown>;
}

/**
 * Starts a server on `runner` (one worker, queue `queue`, the lease given)
 * and a job there that runs until its signal fires. Resolves once it runs
 * and `runner`'s subscription, if it has one, is up.
 */
export async function runningJob(runner: Storage, options: { leaseMs: number; queue?: string }): Promise<RunningJob> {
  const queue = options.queue ?? `cancel_${Math.random().toString(36).slice(2, 8)}`;
  let aborted!: (reason: unknown) => void;
  const abortedP = new Promise<unknown>((resolve) => (aborted = resolve));
  const registry = new WorkerRegistry().register(
    "wait_for_abort",
    (_job, ctx) =>
      new Promise<void>((resolve) =>
        ctx.signal.addEventListener("abort", () => {
          aborted(ctx.signal.reason);
          resolve();
        }),
      ),
  );
  const server = testServer(runner, registry, (c) => c.workerCount(1).queues([queue]).leaseDuration(options.leaseMs));
  const started = waitForEvents(server, "job:start");
  const cancelled = waitForEvents(server, "job:cancelled");
  await server.start();
  await runner.subscribed();
  const id = await runner.enqueue(new Job("wait_for_abort", [], { queue }));
  await started;
  return { id, server, aborted: abortedP, cancelled };
}

/**
 * Cancels (or deletes) the running job through `other` and checks what a
 * caller sees: the run aborted with a CancelledError naming who, the
 * server's `job:cancelled`, the job `deleted` with that reason. Returns the
 * time from the call to the run's abort, in ms.
 */
export async function cancelElsewhere(run: RunningJob, other: Storage, how: "cancel" | "delete" = "cancel"): Promise<number> {
  const t0 = performance.now();
  if (how === "cancel") expect(await other.cancel(run.id, { by: "ops" })).toBe(true);
  else expect(await other.delete(run.id)).toBe(true);
  const reason = await run.aborted;
  const ms = performance.now() - t0;
  const why = how === "cancel" ? "cancelled by ops" : "deleted";
  expect(reason).toBeInstanceOf(CancelledError);
  expect((reason as Error).message).toBe(`job ${run.id} was ${why}`);
  await run.cancelled;
  const job = (await other.get(run.id))!;
  expect(job.state).toBe(JobState.Deleted);
  expect(job.history.at(-1)).toMatchObject({ state: JobState.Deleted, reason: why });
  return ms;
}
