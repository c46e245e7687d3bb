/**
 * Configuration, driver choice, failure mapping, and the Workers promise:
 * the Redis backend bundles for workerd without ioredis or `node:*`, and
 * runs there over the Upstash REST driver.
 */
import * as esbuild from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUpstashGateway, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { ConfigError, Job, StorageUnavailableError } from "../../src/index.js";
import { RedisConfig, UpstashDriver } from "../../src/adapters/storage/redis/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";
import { deleteKeys, freePort, prefixes, redisStorage } from "./helpers.js";

const keys = prefixes("drivers");

describe("RedisConfig", () => {
  it("picks the driver from the URL scheme", () => {
    expect(new RedisConfig("redis://127.0.0.1:6379").resolve().transport).toBe("tcp");
    expect(new RedisConfig("rediss://user:pw@example.com:6380/2").resolve().transport).toBe("tcp");
    expect(new RedisConfig("https://eu1-x.upstash.io").withToken("t").resolve().transport).toBe("upstash");
    expect(new RedisConfig("http://127.0.0.1:8079").withToken("t").resolve().transport).toBe("upstash");
  });

  it("refuses what cannot work, with a ConfigError that says what to do", () => {
    expect(() => new RedisConfig("ftp://x")).toThrow(ConfigError);
    expect(() => new RedisConfig("not a url")).toThrow(ConfigError);
    expect(() => new RedisConfig().resolve()).toThrow(/withUrl/);
    expect(() => new RedisConfig("https://eu1-x.upstash.io").resolve()).toThrow(/withToken/);
    for (const p of ["", "a{b}", "q*", "has space", "x".repeat(65)]) expect(() => new RedisConfig().withKeyPrefix(p), p).toThrow(ConfigError);
    expect(() => new RedisConfig().withHashTag("a}b")).toThrow(ConfigError);
    expect(() => new RedisConfig().withPoolSize(0)).toThrow(ConfigError);
    expect(() => new RedisConfig().withCommandTimeout(1.5)).toThrow(ConfigError);
    expect(() => new RedisConfig().withMaxFinishedJobs(-1)).toThrow(ConfigError);
    // The component is the error's scope, not a prefix of its message.
    const err = (() => {
      try {
        new RedisConfig("ftp://x");
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err).toMatchObject({ scope: "redis", message: expect.stringMatching(/^url must start with/) });
  });

  it("keeps defaults and options, and never prints a password", () => {
    const c = new RedisConfig("redis://u:secret@host:6379").withKeyPrefix("app:").withFinishedJobTtl(null).withMaxFinishedJobs(5).resolve();
    expect(c).toMatchObject({ keyPrefix: "app:", hashTag: "q", finishedJobTtlMs: 0, maxFinishedJobs: 5, allowEviction: false, poolSize: 1 });
    expect(new RedisConfig("redis://h").resolve()).toMatchObject({ finishedJobTtlMs: 24 * 3_600_000, maxFinishedJobs: 10_000 });
    expect(new RedisConfig("redis://h").withFinishedJobTtl(60_000).resolve().finishedJobTtlMs).toBe(60_000);
    expect(String(new RedisConfig("redis://u:secret@host:6379"))).not.toContain("secret");
  });

  it("reads a Worker's env (or process.env)", () => {
    const c = RedisConfig.fromEnv({ UPSTASH_REDIS_REST_URL: "https://x.upstash.io", UPSTASH_REDIS_REST_TOKEN: "tok", QML_REDIS_PREFIX: "p:" }).resolve();
    expect(c).toMatchObject({ url: "https://x.upstash.io", token: "tok", transport: "upstash", keyPrefix: "p:" });
    expect(() => RedisConfig.fromEnv({})).toThrow(ConfigError);
  });
});

describe("drivers", () => {
  it("a redis:// URL gets the TCP driver, an https:// URL the Upstash one", async () => {
    // Synchronous and lazy: nothing listens on port 1, and nothing is asked of it until a call.
    const tcp = redisStorage(new RedisConfig("redis://127.0.0.1:1"));
    const http = redisStorage(new RedisConfig("https://x.upstash.io").withToken("t"));
    expect(tcp.driver).toMatchObject({ kind: "redis", transport: "ioredis" });
    expect(http.driver).toMatchObject({ kind: "redis", transport: "upstash" });
    expect((await tcp.driver.connection()).kind).toBe("ioredis");
    expect(await http.driver.connection()).toBeInstanceOf(UpstashDriver);
    await Promise.all([tcp.close(), http.close()]);
  });

  it("an unreachable server is a StorageUnavailableError on either driver", async () => {
    const port = await freePort();
    const tcp = redisStorage(new RedisConfig(`redis://127.0.0.1:${port}`).withCommandTimeout(500));
    const http = redisStorage(new RedisConfig(`http://127.0.0.1:${port}`).withToken("t").withRetries(0).withCommandTimeout(500));
    for (const s of [tcp, http]) {
      const err = await s.enqueue(new Job("x", [])).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, s.driver.transport).toBeInstanceOf(StorageUnavailableError);
      expect(err).toMatchObject({ scope: "redis", message: expect.stringMatching(/^insert failed/) });
      await s.close();
    }
  });

  it("over TCP, the error names the connection's failure, not ioredis's 'max retries per request'", async () => {
    const port = await freePort();
    const tcp = redisStorage(new RedisConfig(`redis://127.0.0.1:${port}`).withCommandTimeout(500));
    try {
      const err = await tcp.enqueue(new Job("x", [])).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect((err as Error).message).toMatch(new RegExp(`^insert failed \\(ioredis\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
      expect((err as Error).message).not.toMatch(/max retries/i);
      expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
    } finally {
      await tcp.close();
    }
  });
});

/**
 * A TCP pass-through to Redis that, once armed, holds every reply for
 * `holdMs` and logs, in order, when a request carrying `marker` reached it
 * and when a held reply went on to the client.
 */
async function startHoldingProxy(holdMs: number, marker: string) {
  const u = new URL(REDIS_URL);
  const log: string[] = [];
  let armed = false;
  const proxy = new TcpProxy(u.hostname, Number(u.port || 6379), {
    toService: (d) => void (armed && d.includes(marker) && log.push("request")),
    toClient: (_d, forward) => {
      if (!armed) return forward();
      setTimeout(() => {
        log.push("reply");
        forward();
      }, holdMs);
    },
  });
  const port = await proxy.up();
  return { url: `redis://127.0.0.1:${port}`, log, arm: () => void (armed = true), close: () => proxy.down() };
}

describeWithService("redis", await serviceUp("redis"), "redis over TCP: calls are not held behind others", () => {
  // ioredis's auto-pipelining sends one batch at a time: a call made while
  // another awaits its reply waits for that reply before it is even sent (a
  // claim behind a completion paid a whole extra round trip). The TCP driver
  // turns it off by default; the connection still pipelines.
  async function order(config: RedisConfig): Promise<string[]> {
    const proxy = await startHoldingProxy(1000, "qml-second-call");
    const storage = redisStorage(config.withUrl(proxy.url));
    try {
      const redis = await storage.driver.connection();
      await redis.command(["PING"]);
      proxy.arm();
      const first = redis.command(["PING"]);
      await new Promise((r) => setTimeout(r, 20));
      const second = redis.command(["ECHO", "qml-second-call"]);
      expect(await first).toBe("PONG");
      expect(await second).toBe("qml-second-call");
      return proxy.log.slice(0, 2);
    } finally {
      await storage.close();
      await proxy.close();
    }
  }

  it("by default a second call goes out while the first awaits its reply", async () => {
    expect(new RedisConfig("redis://127.0.0.1:6379").resolve().autoPipelining).toBe(false);
    expect(await order(new RedisConfig())).toEqual(["request", "reply"]);
  });

  it("withAutoPipelining(true) batches, and the second call waits for the first's reply (why it is off over TCP)", async () => {
    expect(await order(new RedisConfig().withAutoPipelining(true))).toEqual(["reply", "request"]);
  });

  it("Upstash keeps auto-pipelining on by default: calls of one tick share one HTTP request", () => {
    expect(new RedisConfig("https://x.upstash.io").withToken("t").resolve().autoPipelining).toBe(true);
    expect(new RedisConfig("https://x.upstash.io").withToken("t").withAutoPipelining(false).resolve().autoPipelining).toBe(false);
  });
});

describeWithService("redis", await serviceUp("redis"), "redis server time", () => {
  it("serverTime() is Redis's TIME in epoch ms, on either driver (the core aligns its clock to it)", async () => {
    const gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
    const storages = [
      redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(keys.next())),
      redisStorage(new RedisConfig(gateway.url).withToken(gateway.token).withKeyPrefix(keys.next())),
    ];
    try {
      for (const s of storages) {
        const t = await s.serverTime();
        // Redis runs on this machine: its clock is ours, give or take the round trip.
        expect(Math.abs(t! - Date.now()), s.driver.transport).toBeLessThan(5_000);
      }
    } finally {
      await Promise.all(storages.map((s) => s.close()));
      await gateway.close();
    }
  });
});

describeWithService("redis", await serviceUp("redis"), "redis backend in workerd", () => {
  let gateway: UpstashGateway;
  let bundle: esbuild.BuildResult & { metafile: esbuild.Metafile };
  beforeAll(async () => {
    gateway = await startUpstashGateway({ redisUrl: REDIS_URL });
    bundle = await esbuild.build({
      stdin: {
        contents: `
          import { Job } from "./src/core/job.js";
          import { Storage } from "./src/core/storage.js";
          import { RedisConfig, redisBackend } from "./src/adapters/storage/redis/index.js";
          export default {
            async fetch(request, env) {
              const { url, token, prefix } = await request.json();
              const storage = new Storage(redisBackend(new RedisConfig(url).withToken(token).withKeyPrefix(prefix)));
              await storage.migrate();
              const id = await storage.enqueue(new Job("from-a-worker", [1, "two"]));
              const claimed = await storage.driver.claim({ queues: ["default"], limit: 5, owner: "worker", leaseMs: 10000, now: Date.now() });
              return Response.json({ id, claimed: claimed.map((r) => ({ id: r.id, args: r.args, state: r.state })) });
            },
          };`,
        resolveDir: process.cwd(),
        loader: "ts",
      },
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      conditions: ["workerd", "worker", "browser"],
      metafile: true,
      logLevel: "silent",
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });

  it("bundles for Workers without ioredis or node:* (the TCP driver is never pulled in)", () => {
    const inputs = Object.keys(bundle.metafile.inputs);
    expect(inputs.some((p) => p.includes("@upstash/redis"))).toBe(true);
    expect(inputs.filter((p) => /node_modules\/ioredis|^node:|^(net|tls|dns|stream|crypto)$/.test(p))).toEqual([]);
  });

  it("runs in workerd: enqueue and claim over the Upstash driver", async () => {
    // Miniflare's own module discovery, which refuses a bundle with a dynamic import().
    const mf = new Miniflare({
      modules: true,
      script: bundle.outputFiles![0]!.text,
      compatibilityDate: "2026-04-01",
      cf: false,
    });
    try {
      const res = await mf.dispatchFetch("http://worker/", {
        method: "POST",
        body: JSON.stringify({ url: gateway.url, token: gateway.token, prefix: keys.next() }),
      });
      const body = (await res.json()) as { id: string; claimed: Array<{ id: string; args: unknown[]; state: string }> };
      expect(res.status).toBe(200);
      expect(body.claimed).toEqual([{ id: body.id, args: [1, "two"], state: "processing" }]);
    } finally {
      await mf.dispose();
    }
  });
});
