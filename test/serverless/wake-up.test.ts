/**
 * The one wake-up format both runtimes send and read, the settings both
 * read from the environment, the backoff of retried messages, the store
 * cache, and the outbox that sends each enqueue's wake-up once.
 */
import { describe, expect, it } from "vitest";
import { backoffMs } from "../../src/core/backoff.js";
import { ManualClock } from "../../src/core/clock.js";
import { createClient, type Notifier, type WakeUp } from "../../src/core/client.js";
import { ConfigError, StorageUnavailableError } from "../../src/core/errors.js";
import { Job } from "../../src/core/job.js";
import { JsonLogger } from "../../src/core/logger.js";
import { Outbox } from "../../src/core/outbox.js";
import { Storage } from "../../src/core/storage.js";
import { memoryBackend } from "../../src/adapters/storage/memory/index.js";
import { SERVERLESS_ENV_VARS, configFromEnv } from "../../src/adapters/runtime/serverless/env.js";
import { StoreCache } from "../../src/adapters/runtime/serverless/store-cache.js";
import { decodeWakeUp, encodeWakeUp, groupWakeUps, wakeUpMessage } from "../../src/adapters/runtime/serverless/wake-up.js";

const T0 = Date.UTC(2030, 0, 1);

describe("wake-up format", () => {
  it("round-trips as a string (SQS) and as an object (Queues)", () => {
    const m = wakeUpMessage("default", ["a", "b"], T0);
    expect(decodeWakeUp(encodeWakeUp(m))).toEqual(m);
    expect(decodeWakeUp(m)).toEqual(m);
    expect(encodeWakeUp(m)).toBe(`{"v":1,"queue":"default","ids":["a","b"],"runAt":${T0}}`);
  });

  it("refuses anything else: other versions, the old unversioned shape, bad queues and ids, extra fields, junk", () => {
    for (const body of [
      "",
      "{not json",
      "[]",
      42,
      null,
      { id: "a", queue: "default", runAt: T0 },
      { v: 2, queue: "default", ids: ["a"], runAt: T0 },
      { v: 1, queue: "no spaces", ids: ["a"], runAt: T0 },
      { v: 1, queue: "default", ids: [], runAt: T0 },
      { v: 1, queue: "default", ids: [""], runAt: T0 },
      { v: 1, queue: "default", ids: ["x".repeat(201)], runAt: T0 },
      { v: 1, queue: "default", ids: ["\ud800"], runAt: T0 },
      { v: 1, queue: "default", ids: ["a"], runAt: "soon" },
      { v: 1, queue: "default", ids: ["a"], runAt: T0, job: { secret: true } },
    ]) {
      expect(decodeWakeUp(body), JSON.stringify(body)).toBeNull();
    }
  });

  it("groups by queue and due second, 50 ids a message, and leaves out jobs beyond the notifier's reach", () => {
    const jobs: WakeUp[] = [
      ...Array.from({ length: 120 }, (_, i) => ({ id: `n${i}`, queue: "default", runAt: T0 })),
      { id: "m", queue: "mail", runAt: T0 + 200 },
      { id: "soon", queue: "default", runAt: T0 + 1_500 },
      { id: "edge", queue: "default", runAt: T0 + 900_000 },
      { id: "far", queue: "default", runAt: T0 + 900_001 },
    ];
    const out = groupWakeUps(jobs, { now: T0, maxDelaySeconds: 900 });
    expect(out.map((w) => [w.message.queue, w.message.ids.length, w.delaySeconds])).toEqual([
      ["default", 50, 0],
      ["default", 50, 0],
      ["default", 20, 0],
      ["mail", 1, 1],
      ["default", 1, 2],
      ["default", 1, 900],
    ]);
    expect(out.flatMap((w) => w.message.ids)).not.toContain("far");
  });
});

describe("settings from the environment", () => {
  it("reads one table of QML_* names, the same on both runtimes, and names the variable that is wrong", () => {
    const c = configFromEnv({
      QML_QUEUES: "critical, default",
      QML_BUDGET_MS: "60000",
      QML_SAFETY_MS: 500,
      QML_MAX_JOBS: "40",
      QML_LOG_LEVEL: "warn",
      QML_DEAD_LETTER_QUEUE: "dlq",
      OTHER: "x",
    });
    expect(c).toMatchObject({ queues: ["critical", "default"], budgetMs: 60_000, safetyMs: 500, maxJobs: 40, deadLetterQueue: "dlq" });
    expect(c.logger).toBeInstanceOf(JsonLogger);
    expect(() => configFromEnv({ QML_LEASE_MS: "30s" })).toThrow(/QML_LEASE_MS/);
    expect(() => configFromEnv({ QML_LOG_LEVEL: "loud" })).toThrow(ConfigError);
    expect(configFromEnv({ QML_QUEUES: "" })).toEqual({});
    expect(SERVERLESS_ENV_VARS).toEqual([
      "QML_QUEUES",
      "QML_BUDGET_MS",
      "QML_SAFETY_MS",
      "QML_WORKERS",
      "QML_MAX_JOBS",
      "QML_LEASE_MS",
      "QML_JOB_TIMEOUT_MS",
      "QML_LOG_LEVEL",
      "QML_DEAD_LETTER_QUEUE",
    ]);
  });
});

describe("backoff", () => {
  it("doubles from the base to the cap, and spreads by the jitter asked for", () => {
    const o = { baseMs: 1000, maxMs: 60_000 };
    expect([1, 2, 3, 6, 7, 50, 5000].map((n) => backoffMs(n, o))).toEqual([1000, 2000, 4000, 32_000, 60_000, 60_000, 60_000]);
    expect(backoffMs(0, o)).toBe(1000);
    expect(backoffMs(3, { ...o, jitter: 0.5, random: () => 0 })).toBe(3000);
    expect(backoffMs(3, { ...o, jitter: 0.5, random: () => 1 })).toBe(5000);
  });
});

describe("store cache", () => {
  it("builds once per key, builds again after a failed build, and migrates once", async () => {
    let builds = 0;
    let migrations = 0;
    const storage = new Storage(memoryBackend());
    storage.migrate = async () => void migrations++;
    const cache = new StoreCache<object>({ migrate: true });
    const key = {};
    const build = () => {
      builds++;
      if (builds === 1) throw new StorageUnavailableError("down");
      return storage;
    };
    await expect(cache.get(key, build)).rejects.toThrow("down");
    expect(await cache.get(key, build)).toBe(storage);
    expect(await cache.get(key, build)).toBe(storage);
    expect([builds, migrations]).toEqual([2, 1]);
  });
});

describe("outbox", () => {
  function recording(into: WakeUp[][]): Notifier {
    return { notify: async (jobs) => void into.push(jobs) };
  }

  it("is one per storage: a runtime's notifier and a Client's never both send an enqueue's wake-up", async () => {
    const storage = new Storage(memoryBackend(), { clock: new ManualClock(T0) });
    const runtime: WakeUp[][] = [];
    const client: WakeUp[][] = [];
    Outbox.for(storage).use(recording(runtime), { replace: true });
    const id = await createClient({ storage, notifier: recording(client) }).enqueue("echo");
    await storage.enqueue(new Job("echo"));
    await Outbox.for(storage).settled();
    expect(runtime.flat().map((w) => w.id)).toContain(id);
    expect(runtime.flat()).toHaveLength(2);
    expect(client).toEqual([]);
  });

  it("a Client on a plain storage sends through its own notifier, once, before enqueue returns", async () => {
    const storage = new Storage(memoryBackend(), { clock: new ManualClock(T0) });
    const sent: WakeUp[][] = [];
    const id = await createClient({ storage, notifier: recording(sent) }).enqueue("echo", [], { delay: 5000 });
    expect(sent).toEqual([[{ id, queue: "default", runAt: T0 + 5000 }]]);
  });

  it("a failed send is logged with the error itself; the job stays stored", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = {
      debug() {},
      info() {},
      warn: (msg: string, f?: Record<string, unknown>) => void lines.push({ msg, ...f }),
      error() {},
      child: () => logger,
    };
    const storage = new Storage(memoryBackend());
    const error = new StorageUnavailableError("queue down");
    Outbox.for(storage).use({ notify: () => Promise.reject(error) }, { replace: true, logger });
    const id = await storage.enqueue(new Job("echo"));
    await Outbox.for(storage).settled();
    expect(lines).toEqual([{ msg: expect.stringContaining("could not send wake-ups"), count: 1, error }]);
    expect((await storage.get(id))?.state).toBe("enqueued");
  });
});
