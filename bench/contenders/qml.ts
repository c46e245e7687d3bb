/**
 * qml as a contender: one BackgroundJobServer (the long-running Node loop)
 * over each backend and driver, all with qml's defaults (workers = the
 * phase's concurrency, polling 1 s backing off to 5 s, fetch batch 100,
 * lease 30 s), logging off as for every contender.
 *
 * The Redis and Postgres variants are in qml-stores.ts.
 */
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, silentLogger } from "../../src/index.js";
import { MemoryStorage } from "../../src/adapters/storage/memory/index.js";
import type { Endpoints, Handler, Namespace, Payload, Phase, Producer, QueueAdapter, RunningWorker, Store } from "../harness.js";

const JOB = "bench";
const POLLING_INTERVAL_MS = 1000;
/** Jobs held ahead of workers in the prefetch variants: graphile-worker (fast)'s `localQueue: { size: 500 }`. */
const PREFETCH = 500;

/** The storage methods that are one store round trip each (the seam). */
const SEAM = new Set([
  "migrate",
  "insertJobs",
  "claim",
  "extendLeases",
  "complete",
  "promoteDue",
  "reclaimExpired",
  "getRecord",
  "listRecords",
  "statsAt",
  "transition",
  "purge",
  "setProgress",
  "upsertRecurring",
  "listRecurring",
  "removeRecurring",
  "markRecurringFired",
]);

/** The same storage, reporting every seam call (the memory store's "requests"; timings for the tools). */
function instrumentedStorage<S extends Storage>(storage: S, onCall: NonNullable<Endpoints["onStoreCall"]>): S {
  return new Proxy(storage, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v === "function" && typeof prop === "string" && SEAM.has(prop)) {
        return (...args: unknown[]) => {
          const done = onCall(prop, args);
          const r = (v as (...a: unknown[]) => unknown).apply(receiver, args);
          if (done) void Promise.resolve(r).then(done, () => {});
          return r;
        };
      }
      return v;
    },
  });
}

class QmlNamespace implements Namespace {
  private readonly servers: BackgroundJobServer[] = [];
  constructor(
    private readonly storage: Storage,
    private readonly ns: string,
    private readonly prefetch: boolean,
    private readonly makeStorage?: () => Promise<Storage>,
  ) {}

  async enqueue(p: Payload): Promise<void> {
    await this.storage.enqueue(new Job(JOB, [p]));
  }

  async enqueueMany(ps: Payload[]): Promise<void> {
    await this.storage.enqueue(ps.map((p) => new Job(JOB, [p])));
  }

  async startWorker(concurrency: number, handler: Handler): Promise<RunningWorker> {
    const registry = new WorkerRegistry().register(JOB, (job) => {
      handler(job.arguments[0] as Payload);
    });
    const config = new ServerConfig(`bench-${this.ns.slice(-20)}`).workerCount(concurrency).pollingInterval(POLLING_INTERVAL_MS).logger(silentLogger);
    // The settings the README suggests for throughput on short jobs, sized as
    // graphile-worker's fast run (a local queue of 500, fetched 500 at a time).
    if (this.prefetch) config.prefetch(PREFETCH).fetchBatchSize(PREFETCH);
    const server = new BackgroundJobServer(this.storage, registry, config);
    this.servers.push(server);
    await server.start();
    return { stop: () => server.stop() };
  }

  get openProducer(): (() => Promise<Producer>) | undefined {
    const make = this.makeStorage;
    if (!make) return undefined;
    return async () => {
      const storage = await make();
      return {
        enqueue: async (p: Payload) => {
          await storage.enqueue(new Job(JOB, [p]));
        },
        close: () => storage.close(),
      };
    };
  }

  async close(): Promise<void> {
    // Stopped already unless a phase failed; stop() is a no-op on a stopped server.
    await Promise.all(this.servers.map((s) => s.stop()));
    await this.storage.close();
  }
}

export interface QmlVariant {
  name: string;
  label: string;
  store: Store;
  settings: string;
  http?: boolean;
  /** `prefetch(PREFETCH)` and `fetchBatchSize(PREFETCH)`: jobs claimed ahead of busy workers (off by default). */
  prefetch?: boolean;
  /** A new Storage on a fresh namespace, migrated. */
  create(ns: string, endpoints: Endpoints): Promise<Storage>;
  close?(): Promise<void>;
}

export function qmlAdapter(v: QmlVariant): QueueAdapter {
  return {
    name: v.name,
    label: v.label,
    store: v.store,
    settings: v.settings,
    pollingIntervalMs: POLLING_INTERVAL_MS,
    ...(v.http ? { http: true } : {}),
    // Prefetch changes how work is claimed, nothing else: only the phases that process a backlog.
    ...(v.prefetch ? { phases: ["process", "requests"] as Phase[] } : {}),
    async open(ns, endpoints) {
      let storage = await v.create(ns, endpoints);
      if (endpoints.onStoreCall) storage = instrumentedStorage(storage, endpoints.onStoreCall);
      const again = v.store === "memory" ? undefined : () => v.create(ns, endpoints);
      return new QmlNamespace(storage, ns, v.prefetch === true, again);
    },
    close: v.close ? () => v.close!() : undefined,
  };
}

// ------------------------------------------------------------------ memory

export function qmlMemory(): QueueAdapter {
  return qmlAdapter({
    name: "qml-memory",
    label: "qml · memory",
    store: "memory",
    settings: "defaults",
    create: async () => new MemoryStorage(),
  });
}
