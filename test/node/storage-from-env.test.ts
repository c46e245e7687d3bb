/**
 * QML_STORAGE and its variables select the store the stock server runs on:
 * each backend (and both Redis transports) from the environment alone, with
 * its file, key prefix or schema honoured, runs a job end to end.
 */
import { afterEach, expect, it } from "vitest";
import { Job, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { loadEnvConfig, startNodeServer, type NodeServerHandle } from "../../src/adapters/runtime/node/index.js";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { testStore, type TestStore } from "./helpers/stores.js";

let handle: NodeServerHandle | undefined;
let store: TestStore | undefined;
let gateway: UpstashGateway | undefined;
afterEach(async () => {
  await handle?.stop(0);
  await store?.cleanup();
  await gateway?.close();
  handle = undefined;
  store = undefined;
  gateway = undefined;
});

/** Starts the server from `env`, runs one job through it, and reads the job back through the test's own view of the store. */
async function roundTrip(env: Record<string, string>, kind: string): Promise<void> {
  const registry = new WorkerRegistry().register("echo", (job) => WorkerResult.success({ echoed: job.arguments[0] }));
  handle = await startNodeServer({ config: loadEnvConfig({ ...env, PORT: "0", QML_POLL_MS: "20" }), registry, logger: silentLogger });
  expect(handle.storage.kind).toBe(kind);
  await handle.started;
  expect((await fetch(`${handle.url}/readyz`)).status).toBe(200);
  const done = new Promise<string>((resolve) => handle!.server.on("job:succeeded", (e) => resolve(e.job.id)));
  const id = await handle.storage.enqueue(new Job("echo", ["hi"]));
  expect(await done).toBe(id);
  // The event comes as the outcome is decided; a stop flushes it to the store.
  await handle.stop();
  // Written where the environment said: the test's storage (same prefix or schema) sees it.
  if (store) expect(await store.storage.get(id)).toMatchObject({ state: "succeeded", result: { echoed: "hi" } });
}

it("SQLite by default, in the file QML_SQLITE_PATH names", async () => {
  store = await testStore("sqlite");
  const { QML_STORAGE: _default, ...env } = store.env;
  await roundTrip({ ...env, QML_DEMO: "off" }, "sqlite");
});

it("memory, when QML_STORAGE says so", async () => {
  await roundTrip({ QML_STORAGE: "memory", QML_DEMO: "off" }, "memory");
});

describeWithService("redis", await serviceUp("redis"), "redis from the environment", () => {
  it("REDIS_URL redis://… and QML_REDIS_PREFIX: TCP", async () => {
    store = await testStore("redis");
    await roundTrip(store.env, "redis");
  });

  it("an Upstash REST URL and token (the local REST gateway)", async () => {
    store = await testStore("redis");
    gateway = await startUpstashGateway({ port: 0, redisUrl: REDIS_URL });
    const { REDIS_URL: _tcp, ...rest } = store.env;
    await roundTrip({ ...rest, UPSTASH_REDIS_REST_URL: gateway.url, UPSTASH_REDIS_REST_TOKEN: gateway.token }, "redis");
    expect(gateway.stats.commands).toBeGreaterThan(0);
  });
});

describeWithService("postgres", await serviceUp("postgres"), "postgres from the environment", () => {
  it("DATABASE_URL and QML_POSTGRES_SCHEMA", async () => {
    store = await testStore("postgres");
    await roundTrip(store.env, "postgres");
  });
});
