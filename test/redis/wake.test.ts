/** A job enqueued by one process wakes servers of another at once (PUBLISH on insert, SUBSCRIBE on the TCP driver). */
import { afterAll, expect, it } from "vitest";
import { BackgroundJobServer, Job, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { RedisConfig, type RedisDriver } from "../../src/adapters/storage/redis/index.js";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, redisStorage, type StorageOnRedis } from "./helpers.js";

const prefix = `qml-wake-${Math.random().toString(36).slice(2, 8)}:`;
const opened: StorageOnRedis[] = [];
async function open(): Promise<StorageOnRedis> {
  const s = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix));
  await s.migrate();
  opened.push(s);
  return s;
}

/** A server that polls once a minute (so only a wake-up runs a job soon), and the result of its first job. */
async function slowPollingServer(storage: StorageOnRedis, name: string, result: string) {
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
    // The subscription is made on the first listener.
    expect(await consumer.subscribed()).toBe(true);
    await producer.enqueue([new Job("w", [], { queue: "mail" }), new Job("w", [], { queue: "mail" }), new Job("w", [], { queue: "reports" })]);
    const jobs = await heard;
    expect(jobs.map((j) => j.queue).sort()).toEqual(["mail", "reports"]);
  });

  it("a server's claim for a job enqueued through its own storage is sent before the insert is answered (one connection)", async () => {
    // No subscription (so no pub/sub wake-up): only the storage's own enqueue event wakes the server.
    const inner = new IoredisDriver({ url: REDIS_URL });
    const log: string[] = [];
    const driver: RedisDriver = {
      kind: inner.kind,
      ordered: inner.ordered,
      async evalScript(script, keys, args) {
        if (script.name === "insert" || script.name === "claim") log.push(`${script.name} sent`);
        const reply = await inner.evalScript(script, keys, args);
        if (script.name === "insert" || script.name === "claim") log.push(`${script.name} answered`);
        return reply;
      },
      command: (args) => inner.command(args),
      loadScripts: (scripts) => inner.loadScripts(scripts),
      close: () => inner.close(),
    };
    expect(driver.ordered).toBe(true);
    const storage = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix), { driver });
    // A given driver's answer is the backend's, and is known before the first call.
    expect(storage.driver.ordered).toBe(true);
    expect(storage.driver.transport).toBe("ioredis");
    await storage.migrate();
    opened.push(storage);
    const { server, done } = await slowPollingServer(storage, "early", "ran");
    // The server's first (empty) claim is over, however slow the machine: the next claim is the enqueue's.
    for (let i = 0; i < 200 && !log.includes("claim answered"); i++) await new Promise((r) => setTimeout(r, 25));
    expect(log).toContain("claim answered");
    await storage.enqueue(new Job("early", []));
    expect(await done).toBe("ran");
    await server.stop();
    // Redis runs the claim after the insert (one connection, in order), one round trip sooner than after the reply.
    const sent = log.indexOf("insert sent");
    expect(log.slice(sent, sent + 3)).toEqual(["insert sent", "claim sent", "insert answered"]);
  });

  it("ordered is known from the configuration before the lazy connect, and is what the loaded driver says", async () => {
    const single = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix));
    const pooled = redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix).withPoolSize(2));
    const rest = redisStorage(new RedisConfig("https://x.upstash.io").withToken("t"));
    opened.push(single, pooled, rest);
    expect(single.driver.ordered).toBe(true);
    // With several connections calls may overtake each other: no early claim.
    expect(pooled.driver.ordered).toBe(false);
    expect(rest.driver.ordered).toBe(false);
    expect((await single.driver.connection()).ordered).toBe(true);
    expect((await pooled.driver.connection()).ordered).toBe(false);
    expect((await rest.driver.connection()).ordered).not.toBe(true);
  });

  it("over the Upstash REST API there is no subscription: subscribe resolves undefined and servers poll", async () => {
    const rest = redisStorage(new RedisConfig("https://x.upstash.io").withToken("t"));
    opened.push(rest);
    expect(await rest.driver.subscribe({ enqueued: () => {}, cancelled: () => {} })).toBeUndefined();
    rest.onEnqueue(() => {});
    expect(await rest.subscribed()).toBe(false);
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
