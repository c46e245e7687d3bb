/** A job enqueued by one process wakes servers of another at once (PUBLISH on insert, SUBSCRIBE on the TCP driver). */
import { afterAll, expect, it } from "vitest";
import { BackgroundJobServer, Job, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { RedisConfig, createRedisStorage, loadIoredisDriver, type RedisDriver, type RedisStorage } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys } from "./helpers.js";

const prefix = `qml-wake-${Math.random().toString(36).slice(2, 8)}:`;
const opened: RedisStorage[] = [];
async function open(): Promise<RedisStorage> {
  const s = await createRedisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix));
  await s.migrate();
  opened.push(s);
  return s;
}

/** A server that polls once a minute (so only a wake-up runs a job soon), and the result of its first job. */
async function slowPollingServer(storage: RedisStorage, name: string, result: string) {
  const registry = new WorkerRegistry().register(name, () => WorkerResult.success(result));
  const server = new BackgroundJobServer(
    storage,
    registry,
    new ServerConfig(name).pollingInterval(60_000).maxPollingInterval(60_000).enableScheduler(false).logger(silentLogger),
  );
  const done = new Promise<unknown>((resolve) => server.on("job:succeeded", (e) => resolve(e.result)));
  await server.start();
  // Its first (empty) claim and, where there is one, its subscription.
  await new Promise((r) => setTimeout(r, 100));
  return { server, done };
}

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await deleteKeys(REDIS_URL, `${prefix}*`);
});

describeWithService("redis", await serviceUp("redis"), "redis cross-process wake-ups", () => {
  it("an enqueue through one connection reaches onEnqueue listeners of another", async () => {
    const producer = await open();
    const consumer = await open();
    const heard = new Promise<Array<{ queue: string; runAt: number }>>((resolve) => consumer.onEnqueue((jobs) => resolve([...jobs])));
    // The subscription is made on the first listener; give it its round trip.
    await new Promise((r) => setTimeout(r, 100));
    await producer.enqueue([new Job("w", [], { queue: "mail" }), new Job("w", [], { queue: "mail" }), new Job("w", [], { queue: "reports" })]);
    const jobs = await heard;
    expect(jobs.map((j) => j.queue).sort()).toEqual(["mail", "reports"]);
  });

  it("a server's claim for a job enqueued through its own storage is sent before the insert is answered (one connection)", async () => {
    // No subscription (so no pub/sub wake-up): only the storage's own enqueue event wakes the server.
    const inner = await loadIoredisDriver({ url: REDIS_URL });
    const log: string[] = [];
    const driver: RedisDriver = {
      kind: inner.kind,
      ordered: inner.ordered,
      async evalScript(script, keys, args) {
        if (script.name === "insert" || script.name === "claim") log.push(`${script.name} sent`);
        const reply = await inner.evalScript(script, keys, args);
        if (script.name === "insert") log.push("insert answered");
        return reply;
      },
      command: (args) => inner.command(args),
      loadScripts: (scripts) => inner.loadScripts(scripts),
      close: () => inner.close(),
    };
    expect(driver.ordered).toBe(true);
    const storage = await createRedisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix), { driver });
    await storage.migrate();
    opened.push(storage);
    const { server, done } = await slowPollingServer(storage, "early", "ran");
    await storage.enqueue(new Job("early", []));
    expect(await done).toBe("ran");
    await server.stop();
    // Redis runs the claim after the insert (one connection, in order), one round trip sooner than after the reply.
    const sent = log.indexOf("insert sent");
    expect(log.slice(sent, sent + 3)).toEqual(["insert sent", "claim sent", "insert answered"]);
  });

  it("with several connections calls may overtake each other: no early claim", async () => {
    const pooled = await createRedisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix).withPoolSize(2));
    opened.push(pooled);
    expect(pooled.driver.ordered).toBe(false);
  });

  it("a server that polls once a minute runs a job enqueued elsewhere at once", async () => {
    const producer = await open();
    const consumer = await open();
    const { server, done } = await slowPollingServer(consumer, "wake_me", "awake");
    await producer.enqueue(new Job("wake_me", []));
    // Without the wake-up this would wait a minute and time the test out.
    expect(await done).toBe("awake");
    await server.stop();
  });
});
