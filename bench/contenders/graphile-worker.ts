/**
 * graphile-worker 0.17.3 (Postgres) as a contender, twice:
 * - defaults: `run()` with the phase's concurrency, nothing else;
 * - fast: the batching settings of graphile-worker's own performance page
 *   (`localQueue: { size: 500 }`, `completeJobBatchDelay: 0`,
 *   `failJobBatchDelay: 0`) and a pool of concurrency + 2 connections,
 *   capped at 30 because the Postgres server (max_connections 100) is
 *   shared with other test runs.
 * Jobs are added through WorkerUtils (`addJob`, `addJobs`), a separate pool.
 */
import { Logger, makeWorkerUtils, run } from "graphile-worker";
import type { Handler, Namespace, Payload, QueueAdapter, RunningWorker } from "../harness.js";

const TASK = "bench";
const quiet = new Logger(() => () => {});

function adapter(fast: boolean): QueueAdapter {
  return {
    name: fast ? "graphile-worker-fast" : "graphile-worker",
    label: fast ? "graphile-worker 0.17 (fast)" : "graphile-worker 0.17",
    store: "postgres",
    settings: fast ? "localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0, maxPoolSize min(c + 2, 30)" : "defaults",
    async open(ns, endpoints): Promise<Namespace> {
      const schema = ns;
      const utils = await makeWorkerUtils({ connectionString: endpoints.databaseUrl, schema, logger: quiet });
      await utils.migrate();
      const stops: Array<() => Promise<void>> = [];
      return {
        async enqueue(p) {
          await utils.addJob(TASK, p);
        },
        async enqueueMany(ps) {
          await utils.addJobs(ps.map((payload) => ({ identifier: TASK, payload })));
        },
        async startWorker(concurrency: number, handler: Handler): Promise<RunningWorker> {
          const runner = await run({
            connectionString: endpoints.databaseUrl,
            schema,
            concurrency,
            noHandleSignals: true,
            logger: quiet,
            taskList: {
              [TASK]: async (payload) => {
                handler(payload as Payload);
              },
            },
            ...(fast
              ? {
                  maxPoolSize: Math.min(concurrency + 2, 30),
                  preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
                }
              : {}),
          });
          let stopping: Promise<void> | undefined;
          const stop = () => (stopping ??= runner.stop());
          stops.push(stop);
          return { stop };
        },
        async close() {
          await Promise.all(stops.map((stop) => stop()));
          await utils.release();
        },
      };
    },
  };
}

export const graphileWorker = (): QueueAdapter => adapter(false);
export const graphileWorkerFast = (): QueueAdapter => adapter(true);
