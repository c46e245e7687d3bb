/**
 * BullMQ 6.7 (Redis) as a contender, with its defaults: a Queue to add jobs,
 * a Worker (its own blocking connection) at the phase's concurrency.
 * Completed jobs are kept, as by default.
 */
import { Queue, Worker } from "bullmq";
import type { Handler, Namespace, Payload, QueueAdapter, RunningWorker } from "../harness.js";

const QUEUE = "bench";

function connection(redisUrl: string) {
  const u = new URL(redisUrl);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  // BullMQ requires maxRetriesPerRequest: null on worker connections.
  return { host: u.hostname, port: Number(u.port || 6379), db, maxRetriesPerRequest: null };
}

export function bullmq(): QueueAdapter {
  return {
    name: "bullmq",
    label: "BullMQ 6.7",
    store: "redis",
    settings: "defaults",
    async open(ns, endpoints): Promise<Namespace> {
      const conn = connection(endpoints.redisUrl);
      const queue = new Queue<Payload>(QUEUE, { connection: conn, prefix: ns });
      await queue.waitUntilReady();
      const workers: Worker[] = [];
      return {
        async enqueue(p) {
          await queue.add(QUEUE, p);
        },
        async enqueueMany(ps) {
          await queue.addBulk(ps.map((data) => ({ name: QUEUE, data })));
        },
        async startWorker(concurrency: number, handler: Handler): Promise<RunningWorker> {
          const worker = new Worker<Payload>(
            QUEUE,
            async (job) => {
              handler(job.data);
            },
            { connection: conn, prefix: ns, concurrency },
          );
          worker.on("error", () => {});
          workers.push(worker);
          await worker.waitUntilReady();
          return { stop: () => worker.close() };
        },
        async close() {
          for (const w of workers) await w.close();
          await queue.close();
        },
      };
    },
  };
}
