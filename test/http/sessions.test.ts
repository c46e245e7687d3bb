/**
 * Sessions that end in the store: logout revokes the session on every
 * server at once, "end all sessions" refuses every session issued before
 * it, and the cookie key is a per-deployment secret (given, or generated
 * once and kept in the store), never derived from the tokens alone.
 */
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createApp } from "../../src/adapters/http/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { DashboardServer } from "../../src/adapters/runtime/node/dashboard-server.js";
import { ManualClock, Storage, memoryBackend, silentLogger } from "../../src/index.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes, redisStorage } from "../redis/helpers.js";
import { ADMIN, ORIGIN, READER, T0, call, harness, login, problem } from "./helpers.js";

type App = ReturnType<typeof createApp>;
const TOKENS = { adminTokens: [ADMIN], readTokens: [READER] };

function appOn(storage: Storage, auth: Record<string, unknown> = {}): App {
  return createApp({ storage, auth: { ...TOKENS, ...auth }, logger: silentLogger });
}

const jobs = (app: App, cookie: string) => call(app, "GET", "/api/jobs", { token: null, cookie });
const enqueue = (app: App, cookie: string, csrf: string) =>
  call(app, "POST", "/api/jobs", { token: null, cookie, headers: { Origin: ORIGIN, "X-CSRF-Token": csrf }, body: { name: "send_email" } });
const logout = (app: App, cookie: string) => call(app, "POST", "/logout", { token: null, cookie, headers: { Origin: ORIGIN } });
const endAll = (app: App, cookie: string, csrf: string) =>
  call(app, "POST", "/api/sessions/end-all", { token: null, cookie, headers: { Origin: ORIGIN, "X-CSRF-Token": csrf } });

describe("logout", () => {
  it("revokes the session: the old cookie and its CSRF token stop working at once", async () => {
    const { app } = harness();
    const { cookie, csrf } = await login(app);
    expect((await enqueue(app, cookie, csrf)).status).toBe(201);
    expect((await logout(app, cookie)).status).toBe(303);
    expect((await jobs(app, cookie)).status).toBe(401);
    const res = await enqueue(app, cookie, csrf);
    expect(res.status).toBe(401);
    expect((await problem(res)).code).toBe("UNAUTHORIZED");
    expect((await call(app, "GET", "/", { token: null, cookie })).status).toBe(302);
  });

  it("ends only that session: another session of the same token goes on", async () => {
    const { app } = harness();
    const a = await login(app);
    const b = await login(app);
    await logout(app, a.cookie);
    expect((await jobs(app, a.cookie)).status).toBe(401);
    expect((await jobs(app, b.cookie)).status).toBe(200);
    expect((await enqueue(app, b.cookie, b.csrf)).status).toBe(201);
  });

  it("without a session (or with a forged cookie) still clears the cookie", async () => {
    const { app } = harness();
    for (const cookie of [undefined, "qml_session=v1.e30.AAAA"]) {
      const res = await call(app, "POST", "/logout", { token: null, ...(cookie ? { cookie } : {}), headers: { Origin: ORIGIN } });
      expect(res.status).toBe(303);
      expect(res.headers.get("set-cookie")).toMatch(/^qml_session=; .*Max-Age=0/);
    }
  });
});

describe("end all sessions", () => {
  it("refuses every session issued before it, the caller's too; bearer tokens and new logins go on", async () => {
    const { app, clock } = harness();
    const admin = await login(app);
    const reader = await login(app, READER);
    clock.advance(1000);
    const res = await endAll(app, admin.cookie, admin.csrf);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ endedBefore: new Date(T0 + 1000).toISOString() });
    expect((await jobs(app, admin.cookie)).status).toBe(401);
    expect((await jobs(app, reader.cookie)).status).toBe(401);
    expect((await call(app, "GET", "/api/jobs")).status).toBe(200);
    clock.advance(1);
    const again = await login(app);
    expect((await jobs(app, again.cookie)).status).toBe(200);
    expect((await enqueue(app, again.cookie, again.csrf)).status).toBe(201);
  });

  it("is an admin action that needs the CSRF token with a cookie", async () => {
    const { app } = harness();
    const reader = await login(app, READER);
    expect((await endAll(app, reader.cookie, reader.csrf)).status).toBe(403);
    const admin = await login(app);
    expect((await endAll(app, admin.cookie, "wrong")).status).toBe(403);
    expect((await jobs(app, admin.cookie)).status).toBe(200);
    expect((await call(app, "POST", "/api/sessions/end-all", { token: READER })).status).toBe(403);
    expect((await call(app, "POST", "/api/sessions/end-all")).status).toBe(200);
    expect((await jobs(app, admin.cookie)).status).toBe(401);
  });
});

describe("the cookie key", () => {
  it("is generated once per store: apps on one store share it, apps on another store with the same tokens refuse its cookies", async () => {
    const clock = new ManualClock(T0);
    const shared = new Storage(memoryBackend(), { clock });
    const a = appOn(shared);
    const b = appOn(shared);
    const other = appOn(new Storage(memoryBackend(), { clock }));
    const { cookie } = await login(a);
    expect((await jobs(b, cookie)).status).toBe(200);
    expect((await jobs(other, cookie)).status).toBe(401);
    const theirs = await login(other);
    expect((await jobs(a, theirs.cookie)).status).toBe(401);
  });

  it("is the given sessionSecret when there is one", async () => {
    const clock = new ManualClock(T0);
    const sessionSecret = "k".repeat(40);
    const a = appOn(new Storage(memoryBackend(), { clock }), { sessionSecret });
    const b = appOn(new Storage(memoryBackend(), { clock }), { sessionSecret });
    const c = appOn(new Storage(memoryBackend(), { clock }), { sessionSecret: "j".repeat(40) });
    const { cookie } = await login(a);
    expect((await jobs(b, cookie)).status).toBe(200);
    expect((await jobs(c, cookie)).status).toBe(401);
  });

  it("still ends the sessions of a token removed from the configuration (generated secret)", async () => {
    const { storage } = harness();
    const second = "second-admin-token-0123456789";
    const before = appOn(storage, { adminTokens: [ADMIN, second] });
    const after = appOn(storage, { adminTokens: [second] });
    const { cookie } = await login(before);
    const kept = await login(before, second);
    expect((await jobs(after, cookie)).status).toBe(401);
    expect((await jobs(after, kept.cookie)).status).toBe(200);
  });
});

/** A new store (its own key prefix or schema) as a function that opens storages (own connections) on it. */
type NewStore = () => (clock: ManualClock) => Storage;

/** Two app instances ("servers") over two storages on one store. */
function sharedStoreSuite(label: string, newStore: NewStore): void {
  describe(`two servers on one store: ${label}`, () => {
    const opened: Storage[] = [];
    afterAll(async () => {
      await Promise.all(opened.map((s) => s.close().catch(() => {})));
    });
    const server = async (store: (clock: ManualClock) => Storage, clock: ManualClock) => {
      const storage = store(clock);
      opened.push(storage);
      await storage.migrate();
      return appOn(storage);
    };
    const servers = async () => {
      const clock = new ManualClock(T0);
      const store = newStore();
      return { a: await server(store, clock), b: await server(store, clock), clock };
    };

    it("a session from one server works on the other; logout on one is refused at once on the other", async () => {
      const { a, b } = await servers();
      const { cookie, csrf } = await login(a);
      expect((await jobs(b, cookie)).status).toBe(200);
      expect((await enqueue(b, cookie, csrf)).status).toBe(201);
      expect((await logout(a, cookie)).status).toBe(303);
      expect((await jobs(b, cookie)).status).toBe(401);
      expect((await enqueue(b, cookie, csrf)).status).toBe(401);
    });

    it("end all on one server ends the sessions the other issued", async () => {
      const { a, b, clock } = await servers();
      const fromA = await login(a);
      const fromB = await login(b);
      clock.advance(1);
      expect((await endAll(b, fromB.cookie, fromB.csrf)).status).toBe(200);
      expect((await jobs(a, fromA.cookie)).status).toBe(401);
      expect((await jobs(b, fromA.cookie)).status).toBe(401);
      expect((await jobs(a, fromB.cookie)).status).toBe(401);
    });

    it("another deployment (another store) with the same tokens refuses the cookies", async () => {
      const { a, clock } = await servers();
      const other = await server(newStore(), clock);
      const { cookie } = await login(a);
      expect((await jobs(other, cookie)).status).toBe(401);
      const theirs = await login(other);
      expect((await jobs(a, theirs.cookie)).status).toBe(401);
    });
  });
}

const redisKeys = prefixes("sessions");
describeWithService("redis", await serviceUp("redis"), "sessions on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, redisKeys.pattern));
  sharedStoreSuite("redis", () => {
    const prefix = redisKeys.next();
    return (clock) => redisStorage(new RedisConfig(REDIS_URL).withKeyPrefix(prefix), { clock });
  });
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "sessions on postgres", () => {
  afterAll(() => janitor.dropAll());
  sharedStoreSuite("postgres", () => {
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

describe("live connections of an ended session", () => {
  const started: DashboardServer[] = [];
  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
  });

  async function server() {
    const dashboard = new DashboardServer(new Storage(memoryBackend()), { auth: { adminTokens: [ADMIN] }, logger: silentLogger, liveIntervalMs: 50 });
    const { port } = await dashboard.start("127.0.0.1:0");
    started.push(dashboard);
    const origin = `http://127.0.0.1:${port}`;
    const res = await fetch(`${origin}/login`, {
      method: "POST",
      redirect: "manual",
      headers: { Origin: origin, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: ADMIN }).toString(),
    });
    const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0]!;
    return { origin, cookie };
  }

  it("a WebSocket is closed (1008) within a few seconds of the session's logout", async () => {
    const { origin, cookie } = await server();
    const ws = new WebSocket(`${origin.replace("http", "ws")}/ws`, { headers: { Origin: origin, Cookie: cookie } });
    await new Promise((resolve, reject) => {
      ws.once("message", resolve);
      ws.once("error", reject);
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    await fetch(`${origin}/logout`, { method: "POST", redirect: "manual", headers: { Origin: origin, Cookie: cookie } });
    expect(await closed).toEqual({ code: 1008, reason: "the session has ended" });
  });

  it("an event stream ends after end-all, and its reconnect is refused", async () => {
    const { origin, cookie } = await server();
    const stream = await fetch(`${origin}/api/events`, { headers: { Cookie: cookie } });
    expect(stream.status).toBe(200);
    const session = (await (await fetch(`${origin}/api/session`, { headers: { Cookie: cookie } })).json()) as { csrfToken: string };
    const ended = await fetch(`${origin}/api/sessions/end-all`, {
      method: "POST",
      headers: { Origin: origin, Cookie: cookie, "X-CSRF-Token": session.csrfToken },
    });
    expect(ended.status).toBe(200);
    // The body ends (the server stops the stream) well before sseMaxDurationMs (30 s).
    await stream.text();
    expect((await fetch(`${origin}/api/events`, { headers: { Cookie: cookie } })).status).toBe(401);
  });
});
