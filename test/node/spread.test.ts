/**
 * Two servers on one store, both with free workers, at their default
 * (adaptive) prefetch: a backlog enqueued then is spread between them within
 * 20 %. Neither holds jobs the other could start sooner (src/core/prefetch.ts).
 */
import { afterEach, expect, it } from "vitest";
import { Job, Storage, WorkerRegistry, type BackgroundJobServer, type ServerConfig } from "../../src/index.js";
import { MemoryBackend } from "../../src/adapters/storage/memory/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { testServer } from "../core/helpers.js";
import { testStore, type Backend, type TestStore } from "./helpers/stores.js";

const N = 600;
const JOB_MS = 20;
const WORKERS = 10;

/** A second Storage object on the same store: what a second process would open. */
function secondStorage(store: TestStore): Storage {
  const env = store.env;
  if (store.backend === "redis") return new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(env.QML_REDIS_PREFIX!)));
  if (store.backend === "postgres")
    return new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(env.QML_POSTGRES_SCHEMA!)));
  return new Storage(sqliteBackend(new SqliteConfig(env.QML_SQLITE_PATH!)));
}

async function spread(storages: [Storage, Storage], configure: (c: ServerConfig) => ServerConfig = (c) => c): Promise<[number, number]> {
  const ranBy = new Map<number, Set<string>>();
  const counts = [0, 0];
  const servers: BackgroundJobServer[] = storages.map((storage, s) =>
    testServer(
      storage,
      new WorkerRegistry().register("w", async (job) => {
        const i = job.arguments[0] as number;
        counts[s]!++;
        (ranBy.get(i) ?? ranBy.set(i, new Set()).get(i)!).add(`s${s}`);
        await new Promise((r) => setTimeout(r, JOB_MS));
      }),
      (c) => configure(c.workerCount(WORKERS)),
    ),
  );
  try {
    for (const server of servers) await server.start();
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    let finished = 0;
    for (const server of servers) server.on("job:succeeded", () => ++finished === N && done());
    await storages[0].enqueue(Array.from({ length: N }, (_, i) => new Job("w", [i])));
    await all;
  } finally {
    for (const server of servers) await server.stop();
  }
  expect(ranBy.size).toBe(N);
  expect([...ranBy.values()].every((s) => s.size === 1)).toBe(true);
  return [counts[0]!, counts[1]!];
}

function expectEven([a, b]: [number, number]): void {
  expect(a + b).toBe(N);
  // Within 20 %: neither server ran more than 60 % of the backlog.
  expect(Math.abs(a - b), `server 1 ran ${a}, server 2 ran ${b}`).toBeLessThanOrEqual(0.2 * N);
}

it("memory: two servers on one Storage share a backlog within 20 %", async () => {
  const storage = new Storage(new MemoryBackend());
  expectEven(await spread([storage, storage]));
});

it("memory, the control: a fixed prefetch as large as the backlog lets the first claim take all of it", async () => {
  const storage = new Storage(new MemoryBackend());
  const [a, b] = await spread([storage, storage], (c) => c.prefetch(N).fetchBatchSize(N));
  expect(Math.max(a, b)).toBe(N);
});

const backends: Backend[] = ["redis", "postgres", "sqlite"];
for (const backend of backends) {
  const up = backend === "sqlite" ? true : await serviceUp(backend);
  describeWithService(backend, up, `two servers on ${backend}`, () => {
    let store: TestStore | undefined;
    let other: Storage | undefined;
    afterEach(async () => {
      await other?.close();
      await store?.cleanup();
      store = undefined;
      other = undefined;
    });

    it("share a backlog enqueued while both are free within 20 %", async () => {
      store = await testStore(backend);
      other = secondStorage(store);
      await other.migrate();
      expectEven(await spread([store.storage, other]));
    });
  });
}
