/**
 * The local Upstash REST gateway (infra/upstash): the protocol the real
 * `@upstash/redis` client speaks, and its fault hook, used here to prove
 * that every write survives the client's retry of a request that was
 * applied but whose answer was lost.
 */
import { Redis as UpstashRedis } from "@upstash/redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startUpstashGateway, type GatewayFault, type GatewayRequest, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { Job, JobState, ManualClock, StorageUnavailableError } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import * as scripts from "../../src/adapters/storage/redis/scripts.generated.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { deleteKeys, prefixes, redisStorage, type StorageOnRedis } from "./helpers.js";

const keys = prefixes("gateway");

describeWithService("redis", await serviceUp("redis"), "upstash REST gateway", () => {
  let gateway: UpstashGateway;
  /** The next request running `script` gets `fault` (once). */
  let pending: { sha: string; fault: GatewayFault } | undefined;
  const seen: GatewayRequest[] = [];

  beforeAll(async () => {
    gateway = await startUpstashGateway({
      redisUrl: REDIS_URL,
      token: "test-token",
      faults: (req) => {
        seen.push(req);
        if (pending && req.commands.some((c) => c[0]!.toLowerCase() === "evalsha" && c[1] === pending!.sha)) {
          const { fault } = pending;
          pending = undefined;
          return fault;
        }
        return undefined;
      },
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${gateway.token}`, ...headers }, body: JSON.stringify(body) });

  describe("protocol", () => {
    const k = () => `${keys.next()}k`;

    it("refuses a request without the bearer token, or with another one", async () => {
      expect((await fetch(gateway.url, { method: "POST", body: '["ping"]' })).status).toBe(401);
      const wrong = await fetch(gateway.url, { method: "POST", headers: { authorization: "Bearer nope" }, body: '["ping"]' });
      expect(wrong.status).toBe(401);
      expect(await wrong.json()).toEqual({ error: "Unauthorized" });
    });

    it("runs one command at /, stringifying JSON numbers; errors are HTTP 400 with {error}", async () => {
      const key = k();
      expect(await (await post("/", ["set", key, 42])).json()).toEqual({ result: "OK" });
      expect(await (await post("/", ["incrby", key, 1])).json()).toEqual({ result: 43 });
      const bad = await post("/", ["hget", key, "f"]);
      expect(bad.status).toBe(400);
      expect((await bad.json()) as { error: string }).toMatchObject({ error: expect.stringMatching(/^WRONGTYPE/) });
    });

    it("pipelines: one result or error per command, in order; multi-exec runs them atomically", async () => {
      const key = k();
      const res = await post("/pipeline", [["set", key, "v"], ["get", key], ["bogus"], ["del", key]]);
      expect(res.status).toBe(200);
      const body = (await res.json()) as Array<{ result?: unknown; error?: string }>;
      expect(body[0]).toEqual({ result: "OK" });
      expect(body[1]).toEqual({ result: "v" });
      expect(body[2]!.error).toMatch(/unknown command/);
      expect(body[3]).toEqual({ result: 1 });
      const tx = await post("/multi-exec", [
        ["incr", key],
        ["incr", key],
        ["del", key],
      ]);
      expect(await tx.json()).toEqual([{ result: 1 }, { result: 2 }, { result: 1 }]);
    });

    it("encodes every string of a result in base64 when asked, nested arrays too; numbers and null stay", async () => {
      const res = await post("/", ["eval", "return {1, 'é\\n', {'x', false}}", 0], { "upstash-encoding": "base64" });
      const { result } = (await res.json()) as { result: [number, string, [string, null]] };
      expect(result[0]).toBe(1);
      expect(Buffer.from(result[1], "base64").toString("utf8")).toBe("é\n");
      expect(Buffer.from(result[2][0], "base64").toString()).toBe("x");
      expect(result[2][1]).toBeNull();
      expect(await (await post("/", ["set", k(), "x"], { "upstash-encoding": "base64" })).json()).toEqual({ result: "OK" });
    });

    it("takes commands in the path, the body as the last argument", async () => {
      const key = k();
      const set = await fetch(`${gateway.url}/set/${encodeURIComponent(key)}`, {
        method: "POST",
        headers: { authorization: `Bearer ${gateway.token}` },
        body: "hello",
      });
      expect(await set.json()).toEqual({ result: "OK" });
      expect(await (await fetch(`${gateway.url}/getdel/${encodeURIComponent(key)}?_token=${gateway.token}`)).json()).toEqual({ result: "hello" });
    });

    it("serves the real @upstash/redis client with its defaults (base64, auto-pipelining, JSON values)", async () => {
      const client = new UpstashRedis({ url: gateway.url, token: gateway.token, enableTelemetry: false });
      const key = k();
      await client.set(key, { a: 1, s: "ünï\n" });
      const [got, missing] = await Promise.all([client.get<{ a: number; s: string }>(key), client.get(`${key}:none`)]);
      expect(got).toEqual({ a: 1, s: "ünï\n" });
      expect(missing).toBeNull();
      await client.hset(`${key}:h`, { f: "OK", g: "8" });
      expect(await client.hgetall(`${key}:h`)).toEqual({ f: "OK", g: 8 });
      await client.del(key, `${key}:h`);
    });
  });

  describe("writes are idempotent under the client's retry", () => {
    const opened: StorageOnRedis[] = [];
    afterEach(async () => {
      pending = undefined;
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    async function open(configure: (c: RedisConfig) => RedisConfig = (c) => c) {
      const clock = new ManualClock();
      const storage = redisStorage(configure(new RedisConfig(gateway.url).withToken(gateway.token).withKeyPrefix(keys.next())), { clock });
      opened.push(storage);
      await storage.migrate();
      return { storage, clock };
    }
    /** Applies the next call of `script`, then drops the connection: the client retries the same request. */
    const lostAnswer = (script: { sha: string }) => {
      pending = { sha: script.sha, fault: { kind: "reset", when: "after" } };
    };
    const claimOne = (storage: StorageOnRedis, clock: ManualClock, limit = 1) =>
      storage.driver.claim({ queues: ["default"], limit, owner: "w", leaseMs: 30_000, now: clock.now() });

    it("enqueue: a retried insert creates each job once", async () => {
      const { storage } = await open();
      lostAnswer(scripts.insert);
      const ids = await storage.enqueue([new Job("a", [1]), new Job("a", [2], { uniqueKey: "u" })]);
      expect(pending).toBeUndefined();
      expect(ids).toHaveLength(2);
      expect((await storage.stats()).total).toBe(2);
    });

    it("claim: a retried claim answers with the jobs the first try took, and takes no more", async () => {
      const { storage, clock } = await open();
      await storage.enqueue([new Job("a", [1]), new Job("a", [2])]);
      lostAnswer(scripts.claim);
      const claimed = await claimOne(storage, clock);
      expect(pending).toBeUndefined();
      expect(claimed).toHaveLength(1);
      expect(claimed[0]!.attempts).toBe(1);
      const st = await storage.stats();
      expect(st.states).toMatchObject({ processing: 1, enqueued: 1 });
    });

    it("complete: a retried completion is applied once and reported applied", async () => {
      const { storage, clock } = await open();
      const id = await storage.enqueue(new Job("a", []));
      const [r] = await claimOne(storage, clock);
      lostAnswer(scripts.complete);
      const res = await storage.driver.complete([{ id, token: r!.leaseToken, state: JobState.Succeeded, result: 7, reason: "ok", worker: "w" }], clock.now());
      expect(pending).toBeUndefined();
      expect(res).toEqual([{ id, status: "applied" }]);
      const got = (await storage.get(id))!;
      expect(got.history.filter((h) => h.state === JobState.Succeeded)).toHaveLength(1);
      expect((await storage.stats()).perMinute.at(-1)!.succeeded).toBe(1);
    });

    it("delete and requeue: a retried transition reports applied and changes the job once", async () => {
      const { storage } = await open();
      const id = await storage.enqueue(new Job("a", []));
      lostAnswer(scripts.transition);
      expect(await storage.delete(id)).toBe(true);
      lostAnswer(scripts.transition);
      expect((await storage.requeue(id)).state).toBe(JobState.Enqueued);
      const h = (await storage.get(id))!.history.map((e) => e.state);
      expect(h).toEqual([JobState.Enqueued, JobState.Deleted, JobState.Enqueued]);
    });

    it("a completion whose answer timed out after it applied reports applied when the core tries again", async () => {
      const { storage, clock } = await open((c) => c.withCommandTimeout(200));
      const id = await storage.enqueue(new Job("a", []));
      const [r] = await claimOne(storage, clock);
      pending = { sha: scripts.complete.sha, fault: { kind: "hang", when: "after", ms: 400 } };
      const outcome = { id, token: r!.leaseToken, state: JobState.Failed, error: { name: "E", message: "x" }, reason: "failed", worker: "w" } as const;
      await expect(storage.driver.complete([outcome], clock.now())).rejects.toBeInstanceOf(StorageUnavailableError);
      clock.advance(50); // the processor retries later, with a new now
      expect(await storage.driver.complete([outcome], clock.now())).toEqual([{ id, status: "applied" }]);
      expect((await storage.get(id))!.history.filter((h) => h.state === JobState.Failed)).toHaveLength(1);
    });

    it("a 5xx answer is a StorageUnavailableError (not retried by the client: nothing was applied)", async () => {
      const { storage, clock } = await open();
      pending = { sha: scripts.claim.sha, fault: { kind: "status", status: 503, message: "ERR overloaded" } };
      await expect(claimOne(storage, clock)).rejects.toThrow(/overloaded/);
      await expect(claimOne(storage, clock)).resolves.toEqual([]);
    });

    it("an idle poll is one request carrying one command", async () => {
      const { storage, clock } = await open();
      seen.length = 0;
      expect(await claimOne(storage, clock, 10)).toEqual([]);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.commands).toHaveLength(1);
      expect(seen[0]!.commands[0]!.slice(0, 2)).toEqual(["evalsha", scripts.claim.sha]);
    });
  });
});
