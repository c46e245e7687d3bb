/**
 * The real services tests run against. Under CI=true a missing service is a
 * failing test, never a skip; elsewhere the suite says loudly that it skipped.
 */
import { Socket, createServer } from "node:net";
import { describe, it } from "vitest";

export const REDIS_URL = process.env.QML_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const DATABASE_URL = process.env.QML_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
/** A node of the local Redis Cluster (infra/redis-cluster.sh: three masters on 7000-7002). */
export const REDIS_CLUSTER_URL = process.env.QML_TEST_REDIS_CLUSTER_URL ?? "redis://127.0.0.1:7000";

export function isCI(): boolean {
  return process.env.CI === "true" || process.env.CI === "1";
}

/** Whether something accepts TCP connections at host:port (within 1 s). */
export function tcpReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("error", () => done(false));
    s.connect(port, host, () => done(true));
  });
}

function hostPort(url: string, defaultPort: number): [string, number] {
  const u = new URL(url);
  return [u.hostname || "127.0.0.1", Number(u.port || defaultPort)];
}

export const redisAvailable = (): Promise<boolean> => tcpReachable(...hostPort(REDIS_URL, 6379));
export const postgresAvailable = (): Promise<boolean> => tcpReachable(...hostPort(DATABASE_URL, 5432));

/** Whether the node at REDIS_CLUSTER_URL answers CLUSTER INFO with `cluster_state:ok` (within 1 s). */
export function redisClusterAvailable(timeoutMs = 1000): Promise<boolean> {
  const [host, port] = hostPort(REDIS_CLUSTER_URL, 7000);
  return new Promise((resolve) => {
    const s = new Socket();
    let reply = "";
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("error", () => done(false));
    s.on("data", (b: Buffer) => {
      reply += b.toString();
      if (reply.includes("cluster_state:")) done(reply.includes("cluster_state:ok"));
      else if (reply.startsWith("-")) done(false);
    });
    s.connect(port, host, () => s.write("CLUSTER INFO\r\n"));
  });
}

type Service = "redis" | "postgres" | "redis-cluster";
const probes: Record<Service, () => Promise<boolean>> = { redis: redisAvailable, postgres: postgresAvailable, "redis-cluster": redisClusterAvailable };
const availability = new Map<string, boolean>();
/** Resolved before the test files are collected (top-level await in each file). */
export async function serviceUp(name: Service): Promise<boolean> {
  if (!availability.has(name)) availability.set(name, await probes[name]());
  return availability.get(name)!;
}

/**
 * `describe` for a suite that needs a service. Usage (top-level await):
 *
 *   describeWithService("redis", await serviceUp("redis"), "redis storage", () => { ... });
 */
export function describeWithService(service: string, up: boolean, name: string, fn: () => void): void {
  if (up) {
    describe(name, fn);
    return;
  }
  if (isCI()) {
    describe(name, () => {
      it(`needs ${service}, which is not reachable`, () => {
        throw new Error(`[qml] ${service} is not reachable and CI=true: start it (see .ci/run) instead of skipping`);
      });
    });
    return;
  }
  console.warn(`\n[qml] SKIPPING "${name}": ${service} is not reachable (set CI=true to make this a failure)\n`);
  describe.skip(name, fn);
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
