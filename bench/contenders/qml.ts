/**
 * qml as a contender: one BackgroundJobServer (the long-running Node loop)
 * over each backend and driver, all with qml's defaults (workers = the
 * phase's concurrency, polling 1 s backing off to 5 s, fetch batch 100,
 * lease 30 s), logging off as for every contender.
 *
 * The Redis and Postgres variants are in qml-stores.ts.
 */
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, memoryBackend, silentLogger, type JobOptions } from "../../src/index.js";
import { type StorageDriver } from "../../src/core/driver.js";
import type { Endpoints, Handler, Namespace, Payload, Phase, Producer, QueueAdapter, RunningWorker, Store } from "../harness.js";

const JOB = "bench";
const POLLING_INTERVAL_MS = 1000;
/** Jobs held ahead of workers in the prefetch variants: graphile-worker (fast)'s `localQueue: { size: 500 }`. */
const PREFETCH = 500;
/**
 * The per-key limit variants: each job carries a concurrency key, one of
 * KEYS, limited to KEY_LIMIT: a limit the run never reaches (KEYS ×
 * KEY_LIMIT is far above any phase's concurrency), so the figure is what
 * the limit costs the store and the claim, not what it holds back.
 */
const KEYS = 10;
const KEY_LIMIT = 1000;

/**
 * The same storage over a driver that reports every call (the memory
 * store's "requests"; timings for the tools). Every driver method is one
 * store round trip.
 */
function instrumentedStorage(storage: Storage, onCall: NonNullable<Endpoints["onStoreCall"]>): Storage {
  const driver = new Proxy(storage.driver, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v === "function" && typeof prop === "string" && prop !== "close") {
        return (...args: unknown[]) => {
          const done = onCall(prop, args);
          const r = (v as (...a: unknown[]) => unknown).apply(target, args);
          if (done) void Promise.resolve(r).then(done, () => {});
          return r;
        };
      }
      return v;
    },
  }) as StorageDriver;
  return new Storage(driver, { clock: storage.clock, logger: storage.logger });
}

class QmlNamespace implements Namespace {
  private readonly servers: BackgroundJobServer[] = [];
  constructor(
    private readonly storage: Storage,
    private readonly ns: string,
    private readonly prefetch: boolean,
    private readonly makeStorage?: () => Promise<Storage>,
    private readonly keyLimit = false,
  ) {}

  private sent = 0;
  private options(): JobOptions {
    return this.keyLimit ? { concurrency: { key: `customer:${this.sent++ % KEYS}`, limit: KEY_LIMIT } } : {};
  }

  async enqueue(p: Payload): Promise<void> {
    await this.storage.enqueue(new Job(JOB, [p], this.options()));
  }

  async enqueueMany(ps: Payload[]): Promise<void> {
    await this.storage.enqueue(ps.map((p) => new Job(JOB, [p], this.options())));
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
          await storage.enqueue(new Job(JOB, [p], this.options()));
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
  /** Every job under a per-key concurrency limit it never reaches (KEYS, KEY_LIMIT). */
  keyLimit?: boolean;
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
    // The limit changes how jobs are claimed: only the phases that process a backlog
    // (throughput, and store requests per job: a claim under a limit is still one script / statement).
    ...(v.keyLimit ? { phases: ["process", "requests"] as Phase[] } : {}),
    async open(ns, endpoints) {
      let storage = await v.create(ns, endpoints);
      if (endpoints.onStoreCall) storage = instrumentedStorage(storage, endpoints.onStoreCall);
      const again = v.store === "memory" ? undefined : () => v.create(ns, endpoints);
      return new QmlNamespace(storage, ns, v.prefetch === true, again, v.keyLimit === true);
    },
    close: v.close ? () => v.close!() : undefined,
  };
}

// ------------------------------------------------------------------ memory

export function qmlMemory(tuning: { keyLimit?: boolean } = {}): QueueAdapter {
  return qmlAdapter({
    name: tuning.keyLimit ? "qml-memory-keylimit" : "qml-memory",
    label: tuning.keyLimit ? "qml · memory + per-key limit" : "qml · memory",
    store: "memory",
    settings: tuning.keyLimit
      ? "defaults; each job with concurrency { key: one of 10, limit: 1000 } (never reached: the figure is the limit's cost)"
      : "defaults",
    ...(tuning.keyLimit ? { keyLimit: true } : {}),
    create: async () => new Storage(memoryBackend()),
  });
}
