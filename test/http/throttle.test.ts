/**
 * Throttling of failed credentials per client address, counted in the
 * store: over the limit, logins and bearer requests are answered 429 with
 * Retry-After without the token being checked, on every server.
 */
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { clientAddress, throttleOption } from "../../src/adapters/http/throttle.js";
import { authFromEnv } from "../../src/adapters/runtime/cloudflare/worker.js";
import { dashboardAuth } from "../../src/adapters/runtime/node/node-server.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { ConfigError, ManualClock, Storage, memoryBackend, readEnv, silentLogger } from "../../src/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes, redisStorage } from "../redis/helpers.js";
import { ADMIN, HOST, ORIGIN, READER, T0, harness, login, problem } from "./helpers.js";

type App = ReturnType<typeof createApp>;
const WRONG = "wrong-token-0123456789abcdef";

/** The env @hono/node-server gives a request from `address`. */
const from = (address: string) => ({ incoming: { socket: { remoteAddress: address } } });

function formLogin(app: App, token: string, address = "198.51.100.7"): Promise<Response> {
  return Promise.resolve(
    app.request(
      `${ORIGIN}/login`,
      {
        method: "POST",
        headers: { Host: HOST, Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token }).toString(),
      },
      from(address),
    ),
  );
}

function bearer(app: App, token: string, address = "198.51.100.7", headers: Record<string, string> = {}): Promise<Response> {
  return Promise.resolve(app.request(`${ORIGIN}/api/jobs`, { headers: { Host: HOST, Authorization: `Bearer ${token}`, ...headers } }, from(address)));
}

describe("failed logins", () => {
  it("answers 429 with Retry-After from the 11th failure in a minute, without checking the token, until the window ends", async () => {
    const { app, clock } = harness();
    for (let i = 0; i < 10; i++) {
      const res = await formLogin(app, WRONG);
      expect(res.status, `failure ${i + 1}`).toBe(303);
      expect(res.headers.get("location")).toBe("/login?error=1");
    }
    const refused = await formLogin(app, WRONG);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("60");
    expect(await refused.text()).toMatch(/Too many failed attempts from this address\. Try again in 60 s\./);
    // The right token is not even looked at.
    const right = await formLogin(app, ADMIN);
    expect(right.status).toBe(429);
    expect(right.headers.get("set-cookie")).toBeNull();
    clock.advance(45_000);
    expect((await formLogin(app, ADMIN)).headers.get("retry-after")).toBe("15");
    clock.advance(15_000);
    const after = await formLogin(app, ADMIN);
    expect(after.status).toBe(303);
    expect(after.headers.get("set-cookie")).toMatch(/^qml_session=/);
  });

  it("answers a JSON login with a problem document", async () => {
    const { app } = harness();
    const json = (token: string) =>
      app.request(
        `${ORIGIN}/login`,
        { method: "POST", headers: { Host: HOST, Origin: ORIGIN, "Content-Type": "application/json" }, body: JSON.stringify({ token }) },
        from("192.0.2.1"),
      );
    for (let i = 0; i < 10; i++) await json(WRONG);
    const res = await json(WRONG);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect((await problem(res)).code).toBe("TOO_MANY_FAILURES");
  });

  it("counts per address: another address is not refused", async () => {
    const { app } = harness();
    for (let i = 0; i < 11; i++) await formLogin(app, WRONG, "203.0.113.1");
    expect((await formLogin(app, WRONG, "203.0.113.1")).status).toBe(429);
    expect((await formLogin(app, WRONG, "203.0.113.2")).status).toBe(303);
    expect((await formLogin(app, ADMIN, "203.0.113.2")).headers.get("set-cookie")).toMatch(/^qml_session=/);
  });

  it("does not count successful logins", async () => {
    const { app } = harness();
    for (let i = 0; i < 30; i++) expect((await formLogin(app, ADMIN)).status).toBe(303);
    for (let i = 0; i < 9; i++) await formLogin(app, WRONG);
    expect((await formLogin(app, ADMIN)).headers.get("set-cookie")).toMatch(/^qml_session=/);
  });
});

describe("failed bearer tokens", () => {
  it("answers 429 with Retry-After from the 11th wrong token; the right one too while blocked", async () => {
    const { app, clock } = harness();
    for (let i = 0; i < 10; i++) expect((await bearer(app, WRONG)).status).toBe(401);
    const res = await bearer(app, WRONG);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect((await problem(res)).code).toBe("TOO_MANY_FAILURES");
    expect((await bearer(app, ADMIN)).status).toBe(429);
    expect((await bearer(app, READER)).status).toBe(429);
    clock.advance(60_000);
    expect((await bearer(app, ADMIN)).status).toBe(200);
  });

  it("counts logins and bearer tokens together, and never throttles a session cookie", async () => {
    const { app } = harness();
    const { cookie } = await login(app);
    for (let i = 0; i < 5; i++) await formLogin(app, WRONG, "unknown");
    for (let i = 0; i < 5; i++) await bearer(app, WRONG, "unknown");
    expect((await bearer(app, ADMIN, "unknown")).status).toBe(429);
    expect((await formLogin(app, ADMIN, "unknown")).status).toBe(429);
    const withCookie = await app.request(`${ORIGIN}/api/jobs`, { headers: { Host: HOST, Cookie: cookie } }, from("unknown"));
    expect(withCookie.status).toBe(200);
  });

  it("does not count successful requests", async () => {
    const { app } = harness();
    for (let i = 0; i < 50; i++) expect((await bearer(app, ADMIN)).status).toBe(200);
    for (let i = 0; i < 9; i++) await bearer(app, WRONG);
    expect((await bearer(app, ADMIN)).status).toBe(200);
  });

  it("cannot be escaped with a client-set address header on Node", async () => {
    const { app } = harness();
    for (let i = 0; i < 11; i++) await bearer(app, WRONG, "198.51.100.9", { "CF-Connecting-IP": `10.0.0.${i}`, "X-Forwarded-For": `10.0.1.${i}` });
    expect((await bearer(app, ADMIN, "198.51.100.9", { "CF-Connecting-IP": "10.9.9.9" })).status).toBe(429);
  });
});

describe("configuration", () => {
  it("takes maxFailures and windowMs, or false for none", async () => {
    const clock = new ManualClock(T0);
    const mk = (throttle: unknown) =>
      createApp({ storage: new Storage(memoryBackend(), { clock }), auth: { adminTokens: [ADMIN], throttle } as never, logger: silentLogger });
    const strict = mk({ maxFailures: 2, windowMs: 5_000 });
    await bearer(strict, WRONG);
    await bearer(strict, WRONG);
    const res = await bearer(strict, ADMIN);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("5");
    const off = mk(false);
    for (let i = 0; i < 30; i++) await bearer(off, WRONG);
    expect((await bearer(off, ADMIN)).status).toBe(200);
    for (const bad of [{ maxFailures: 0 }, { windowMs: 10 }, { maxFailures: 1.5 }, "10"]) expect(() => mk(bad), JSON.stringify(bad)).toThrow(ConfigError);
  });

  it("is set from QML_LOGIN_THROTTLE on every runtime (0 turns it off)", () => {
    expect(readEnv({ QML_LOGIN_THROTTLE: "3" }).loginThrottle).toBe(3);
    expect(() => readEnv({ QML_LOGIN_THROTTLE: "-1" })).toThrow(/QML_LOGIN_THROTTLE/);
    expect(throttleOption(undefined)).toEqual({});
    expect(throttleOption(0)).toEqual({ throttle: false });
    const cfg = { dashboardTokens: [ADMIN], dashboardReadTokens: [], sessionSecret: undefined, host: "0.0.0.0" };
    expect(dashboardAuth({ ...cfg, loginThrottle: 5 })).toMatchObject({ throttle: { maxFailures: 5 } });
    expect(dashboardAuth({ ...cfg, loginThrottle: undefined })).not.toHaveProperty("throttle");
    expect(authFromEnv({ QML_DASHBOARD_TOKEN: ADMIN, QML_LOGIN_THROTTLE: "0" })).toMatchObject({ throttle: false });
  });

  it("reads the client address from the runtime, never from a header alone", () => {
    const ctx = (env: unknown, headers: Record<string, string> = {}, cf?: unknown) =>
      ({ env, req: { raw: Object.assign(new Request("http://x/", { headers }), cf === undefined ? {} : { cf }), header: (n: string) => headers[n] } }) as never;
    expect(clientAddress(ctx(from("::1")))).toBe("::1");
    expect(clientAddress(ctx({ requestContext: { http: { sourceIp: "203.0.113.5" } } }))).toBe("203.0.113.5");
    expect(clientAddress(ctx({ requestContext: { identity: { sourceIp: "203.0.113.6" } } }))).toBe("203.0.113.6");
    expect(clientAddress(ctx({}, { "cf-connecting-ip": "203.0.113.7" }, { colo: "AMS" }))).toBe("203.0.113.7");
    expect(clientAddress(ctx({}, { "cf-connecting-ip": "203.0.113.7" }))).toBe("unknown");
    expect(clientAddress(ctx(undefined))).toBe("unknown");
  });
});

/** Two app instances on two storages of one store: failures add up across them. */
function acrossServers(label: string, newStore: () => (clock: ManualClock) => Storage): void {
  describe(`across two servers on one store: ${label}`, () => {
    const opened: Storage[] = [];
    afterAll(async () => {
      await Promise.all(opened.map((s) => s.close().catch(() => {})));
    });

    it("11 wrong logins split over two servers are refused on both", async () => {
      const clock = new ManualClock(T0);
      const store = newStore();
      const [s1, s2] = [store(clock), store(clock)];
      opened.push(s1, s2);
      await s1.migrate();
      const a = createApp({ storage: s1, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
      const b = createApp({ storage: s2, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
      for (let i = 0; i < 5; i++) expect((await formLogin(a, WRONG)).status).toBe(303);
      for (let i = 0; i < 5; i++) expect((await formLogin(b, WRONG)).status).toBe(303);
      const res = await formLogin(a, WRONG);
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("60");
      expect((await formLogin(b, ADMIN)).status).toBe(429);
      expect((await bearer(b, ADMIN)).status).toBe(429);
      expect((await bearer(a, ADMIN, "198.51.100.8")).status).toBe(200);
    });

    it("concurrent failures are each counted", async () => {
      const clock = new ManualClock(T0);
      const store = newStore();
      const [s1, s2] = [store(clock), store(clock)];
      opened.push(s1, s2);
      await s1.migrate();
      const a = createApp({ storage: s1, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
      const b = createApp({ storage: s2, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
      await Promise.all(Array.from({ length: 10 }, (_, i) => bearer(i % 2 ? a : b, WRONG, "192.0.2.44")));
      expect((await bearer(a, ADMIN, "192.0.2.44")).status).toBe(429);
    });
  });
}

const redisKeys = prefixes("throttle");
describeWithService("redis", await serviceUp("redis"), "throttling on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, redisKeys.pattern));
  acrossServers("redis", () => {
    const prefix = redisKeys.next();
    return (clock) => redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix), { clock });
  });
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "throttling on postgres", () => {
  afterAll(() => janitor.dropAll());
  acrossServers("postgres", () => {
    const schema = janitor.next();
    return (clock) =>
      new Storage(
        postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(schema).withMaxConnections(2).withAutoMigrate(true)),
        {
          clock,
        },
      );
  });
});
