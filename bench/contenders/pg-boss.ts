/**
 * pg-boss 10.4.2 (Postgres) as a contender: one PgBoss instance that
 * produces, another that works, as a producer process and a worker process
 * would. pg-boss 10 has no per-job concurrency setting: a worker fetches
 * `batchSize` jobs per poll and hands them to the handler together, so
 * concurrency c is `batchSize: c` (handled in parallel). Its worker polls
 * (it is not woken by new jobs), so the polling interval is set to its
 * minimum, 0.5 s (default 2 s), to give it its best throughput and latency.
 */
import PgBoss from "pg-boss";
import type { Handler, Namespace, Payload, QueueAdapter, RunningWorker } from "../harness.js";

const QUEUE = "bench";
const POLLING_SECONDS = 0.5;

async function startBoss(connectionString: string, schema: string): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString, schema });
  boss.on("error", () => {});
  await boss.start();
  return boss;
}

export function pgBoss(): QueueAdapter {
  return {
    name: "pg-boss",
    label: "pg-boss 10.4",
    store: "postgres",
    settings: `batchSize = c, pollingIntervalSeconds ${POLLING_SECONDS} (its minimum)`,
    pollingIntervalMs: POLLING_SECONDS * 1000,
    async open(ns, endpoints): Promise<Namespace> {
      const producer = await startBoss(endpoints.databaseUrl, ns);
      await producer.createQueue(QUEUE);
      const stops: Array<() => Promise<void>> = [];
      return {
        async enqueue(p) {
          await producer.send(QUEUE, p);
        },
        async enqueueMany(ps) {
          await producer.insert(ps.map((data) => ({ name: QUEUE, data })));
        },
        async startWorker(concurrency: number, handler: Handler): Promise<RunningWorker> {
          const boss = await startBoss(endpoints.databaseUrl, ns);
          let stopping: Promise<void> | undefined;
          const stop = () => (stopping ??= boss.stop({ graceful: true, wait: true, timeout: 30_000 }));
          stops.push(stop);
          await boss.work<Payload>(QUEUE, { batchSize: concurrency, pollingIntervalSeconds: POLLING_SECONDS }, async (jobs) => {
            await Promise.all(jobs.map(async (job) => handler(job.data)));
          });
          return { stop };
        },
        async close() {
          await Promise.all(stops.map((stop) => stop()));
          await producer.stop({ graceful: true, wait: true, timeout: 30_000 });
        },
      };
    },
  };
}
