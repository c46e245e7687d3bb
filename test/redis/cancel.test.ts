/**
 * Cancellation across processes on Redis: transition.lua PUBLISHes the
 * running jobs it ended on `<base>cancel`; a server subscribed over TCP
 * aborts their runs at once. Over the REST API (Upstash), which has no
 * subscriptions, the run stops at its next heartbeat instead.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { Job, JobState, LeaseLostError } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import * as scripts from "../../src/adapters/storage/redis/scripts.generated.js";
import { cancelElsewhere, runningJob } from "../helpers/remote-cancel.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("cancel");
const opened: StorageOnRedis[] = [];
let gateway: UpstashGateway | undefined;
/** Set by a test: the next transition request through the gateway is applied and its connection dropped, so the client sends it again. */
let dropNextTransition = false;
let transitionsDropped = 0;

/** A migrated storage on `prefix`, over TCP or the local Upstash gateway. */
async function open(prefix: string, transport: "tcp" | "upstash" = "tcp"): Promise<StorageOnRedis> {
  const config = transport === "tcp" ? new RedisConfig(REDIS_URL) : new RedisConfig(gateway!.url).withToken(gateway!.token);
  const storage = redisStorage(config.withKeyPrefix(prefix));
  await storage.migrate();
  opened.push(storage);
  return storage;
}

/** Messages on `<base>cancel`, as another subscriber sees them. */
async function listen(base: string): Promise<{ messages: unknown[]; next: () => Promise<unknown>; close: () => void }> {
  const sub = new Redis(REDIS_URL, { lazyConnect: true });
  const messages: unknown[] = [];
  const waiters: Array<(m: unknown) => void> = [];
  sub.on("message", (_channel: string, message: string) => {
    const m = JSON.parse(message) as unknown;
    messages.push(m);
    waiters.shift()?.(m);
  });
  await sub.subscribe(`${base}cancel`);
  return { messages, next: () => new Promise((resolve) => waiters.push(resolve)), close: () => sub.disconnect() };
}

describeWithService("redis", await serviceUp("redis"), "redis cross-process cancellation", () => {
  beforeAll(async () => {
    gateway = await startUpstashGateway({
      redisUrl: REDIS_URL,
      faults: (req) => {
        if (!dropNextTransition || !req.commands.some((c) => c.includes(scripts.transition.sha) || c.includes(scripts.transition.body))) return undefined;
        dropNextTransition = false;
        transitionsDropped++;
        return { kind: "reset", when: "after" };
      },
    });
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  for (const how of ["cancel", "delete"] as const) {
    it(`a ${how} through another process's storage stops the run there within a second (pub/sub over TCP)`, async () => {
      const prefix = keys.next();
      const [runner, other] = [await open(prefix), await open(prefix)];
      // A minute's lease: only the message can stop the run in time.
      const run = await runningJob(runner, { leaseMs: 60_000 });
      expect(await runner.subscribed()).toBe(true);
      try {
        expect(await cancelElsewhere(run, other, how)).toBeLessThan(1000);
      } finally {
        await run.server.stop();
      }
    });
  }

  it("publishes, once per call, only the ids the call took out of processing, with the reason it recorded; a retried call publishes nothing", async () => {
    const prefix = keys.next();
    const [runner, other, rest] = [await open(prefix), await open(prefix), await open(prefix, "upstash")];
    const heard: Array<[string[], string]> = [];
    runner.onCancel((ids, reason) => heard.push([[...ids], reason]));
    expect(await runner.subscribed()).toBe(true);
    const channel = await listen(runner.driver.base);
    try {
      const [idle, later, a, b, c] = await other.enqueue([
        new Job("x", [], { queue: "idle" }),
        new Job("x", [], { queue: "idle", delay: 60_000 }),
        new Job("x", [], { queue: "run" }),
        new Job("x", [], { queue: "run" }),
        new Job("x", [], { queue: "run" }),
      ]);
      const claimed = await other.driver.claim({ queues: ["run"], limit: 3, owner: "elsewhere", leaseMs: 60_000, now: other.clock.now() });
      expect(claimed.map((r) => r.id).sort()).toEqual([a, b, c].sort());

      // Jobs not running: ended, and nothing published (no error either).
      expect(await other.cancel([idle!, later!], { by: "ops" })).toEqual([
        { id: idle, status: "applied", state: JobState.Deleted },
        { id: later, status: "applied", state: JobState.Deleted },
      ]);
      // Running ones: one message for the call, the ids it ended and its reason.
      let message = channel.next();
      expect(await other.cancel([a!, idle!, b!, "missing"], { by: "ops" })).toEqual([
        { id: a, status: "applied", state: JobState.Deleted },
        { id: idle, status: "invalid_state", state: JobState.Deleted },
        { id: b, status: "applied", state: JobState.Deleted },
        { id: "missing", status: "not_found" },
      ]);
      expect(await message).toEqual({ ids: [a, b], reason: "cancelled by ops" });

      // Over the REST API the request is applied, its connection dropped and
      // the client sends it again, with the same operation id: the retry
      // finds the job deleted already and answers applied without a second
      // message. The script publishes whatever the caller's transport.
      message = channel.next();
      dropNextTransition = true;
      expect(await rest.delete(c!)).toBe(true);
      expect(transitionsDropped).toBe(1);
      expect(await message).toEqual({ ids: [c], reason: "deleted" });
      expect((await rest.get(c!))!.history.filter((h) => h.state === JobState.Deleted)).toHaveLength(1);

      // Messages keep their order: one more call, and nothing came in between.
      const [d] = await other.enqueue([new Job("x", [], { queue: "run" })]);
      await other.driver.claim({ queues: ["run"], limit: 1, owner: "elsewhere", leaseMs: 60_000, now: other.clock.now() });
      message = channel.next();
      await other.cancel(d!);
      expect(await message).toEqual({ ids: [d], reason: "cancelled" });
      expect(channel.messages).toEqual([
        { ids: [a, b], reason: "cancelled by ops" },
        { ids: [c], reason: "deleted" },
        { ids: [d], reason: "cancelled" },
      ]);
      // The other storage's subscription heard the same, through onCancel.
      await expect.poll(() => heard.length).toBe(3);
      expect(heard).toEqual([
        [[a, b], "cancelled by ops"],
        [[c], "deleted"],
        [[d], "cancelled"],
      ]);
    } finally {
      channel.close();
    }
  });

  it("over the REST API (no subscription) the run stops at its next heartbeat, with a CancelledError", async () => {
    const prefix = keys.next();
    const [runner, other] = [await open(prefix, "upstash"), await open(prefix, "upstash")];
    // 300 ms lease: a heartbeat every 100 ms.
    const run = await runningJob(runner, { leaseMs: 300 });
    expect(await runner.subscribed()).toBe(false);
    try {
      expect(await cancelElsewhere(run, other)).toBeLessThan(1000);
    } finally {
      await run.server.stop();
    }
  });

  it("a lease lost some other way is still a LeaseLostError at the heartbeat", async () => {
    const prefix = keys.next();
    const [runner, other] = [await open(prefix, "upstash"), await open(prefix, "upstash")];
    const run = await runningJob(runner, { leaseMs: 300 });
    const lost = new Promise<string>((resolve) => run.server.on("job:lost", (e) => resolve(e.id)));
    try {
      // Another process's reclaim, its clock past the lease: the job is enqueued again, not deleted.
      expect(await other.driver.reclaimExpired(other.clock.now() + 60_000, 10)).toBe(1);
      expect(await run.aborted).toBeInstanceOf(LeaseLostError);
      expect(await lost).toBe(run.id);
    } finally {
      // The job is enqueued again and this server runs it anew: no grace for that run.
      await run.server.stop(0);
    }
  });
});
