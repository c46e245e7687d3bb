/**
 * HTTP driver faults: the local Upstash and Neon gateways, in front of the
 * real Redis and PostgreSQL, fail requests at random while producers
 * enqueue and servers run jobs through them:
 *
 * - 5 % answered 5xx (on Neon half of them after the statement ran);
 * - 5 % time out after the command was applied (the reply is held past the
 *   client's timeout, then the connection dropped);
 * - 1 % connection resets, half before and half after applying.
 *
 * The Upstash client resends a request whose connection failed, so a reset
 * after apply is a write sent twice; producers retry whatever failed with
 * the same job (same id and unique key), as a client should. Invariants:
 * exactly one job per unique key, with the id the producer was given; every
 * job ends succeeded; no job's history shows a transition made twice;
 * duplicates only after an expired lease.
 *
 * Short: 400 enqueues per gateway. Long: 5,000.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { startNeonGateway, type HttpFault, type NeonGateway } from "../../infra/neon-gateway.js";
import { startUpstashGateway, type GatewayFault, type UpstashGateway } from "../../infra/upstash-gateway.js";
import { BackgroundJobServer, Job, ServerConfig, StorageUnavailableError, WorkerRegistry, WorkerResult, silentLogger, type Storage } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { analyse, countBy, listAll } from "./analysis.js";
import { startFaultProxy, type FaultProxy } from "./fault-proxy.js";
import { between, figures, pick, rand, scale, timeout, until } from "./helpers.js";
import { openRunLog } from "./run-log.js";
import { openStore, type StoreSpec } from "./stores.js";

const ENQUEUES = scale(400, 5000);
const PRODUCERS = 16;
/** Client-side timeout; a held reply outlasts it. */
const CLIENT_TIMEOUT_MS = 1000;
const HOLD_MS = 1500;

type Roll = "5xx" | "timeout" | "reset" | undefined;
const roll = (): Roll => {
  const x = Math.random();
  return x < 0.05 ? "5xx" : x < 0.1 ? "timeout" : x < 0.11 ? "reset" : undefined;
};

interface Injected {
  "5xx": number;
  timeout: number;
  reset: number;
}

/**
 * Producers, servers and the checks, over `faulty` (the store as the
 * drivers under test see it, through the gateway) and `direct` (a
 * fault-free view of the same data, for the checks).
 */
async function faultRun(label: string, faulty: StoreSpec, direct: StoreSpec, setFaults: (on: boolean) => void, injected: Injected): Promise<void> {
  const producerStore = await openStore(faulty);
  const check = await openStore(direct);
  const runLog = await openRunLog({ kind: "memory" });
  const registry = new WorkerRegistry().register("work", async (job, ctx) => {
    await runLog.record({ id: job.id, attempt: ctx.attempt, token: ctx.leaseToken, server: ctx.serverId, at: Date.now() });
    await new Promise((r) => setTimeout(r, Number(job.arguments[0])));
    return WorkerResult.success();
  });
  const servers: Array<{ server: BackgroundJobServer; storage: Storage }> = [];
  try {
    for (let i = 0; i < 2; i++) {
      const storage = await openStore(faulty);
      const server = new BackgroundJobServer(
        storage,
        registry,
        new ServerConfig(`faults-${i}-${rand()}`)
          .workerCount(8)
          .leaseDuration(3000)
          .schedulerInterval(300)
          .pollingInterval(20)
          .maxPollingInterval(200)
          .logger(silentLogger),
      );
      await server.start();
      servers.push({ server, storage });
    }
    setFaults(true);

    const acked = new Map<string, string>();
    let failures = 0;
    const unexpected: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: PRODUCERS }, async () => {
        for (;;) {
          const i = next++;
          if (i >= ENQUEUES) return;
          const key = `${label}-${i}`;
          const job = new Job("work", [between(1, 5)], { uniqueKey: key, maxAttempts: 50 });
          for (;;) {
            try {
              acked.set(key, await producerStore.enqueue(job));
              break;
            } catch (e) {
              if (!(e instanceof StorageUnavailableError)) {
                unexpected.push(String(e));
                return;
              }
              failures++;
              await new Promise((r) => setTimeout(r, 20));
            }
          }
        }
      }),
    );

    const done = await until(
      async () => {
        const s = await check.stats({ minutes: 1, hours: 1 });
        return s.states.succeeded >= ENQUEUES ? true : undefined;
      },
      scale(40_000, 600_000),
      200,
    );
    setFaults(false);
    const records = await listAll(check);
    const analysis = analyse(acked.values(), records, await runLog.all());
    const perKey = countBy(records, (r) => r.uniqueKey);
    const wrongId = records
      .filter((r) => acked.get(r.uniqueKey ?? "") !== r.id)
      .map((r) => `${r.uniqueKey}: stored ${r.id}, acknowledged ${acked.get(r.uniqueKey ?? "")}`);
    figures(
      `http-faults/${label}`,
      {
        enqueues: ENQUEUES,
        injected_5xx: injected["5xx"],
        injected_timeouts: injected.timeout,
        injected_resets: injected.reset,
        enqueue_retries: failures,
        jobs: records.length,
        keys_with_one_job: [...perKey.values()].filter((n) => n === 1).length,
        double_transitions: analysis.badHistories.length,
        lost: analysis.lost.length,
        lease_expiries: analysis.reclaims,
        duplicates: analysis.duplicates,
        unexplained: analysis.unexplained.length,
      },
      "faults on every request of producers and servers",
    );
    expect(unexpected).toEqual([]);
    expect(injected["5xx"] + injected.timeout + injected.reset, "faults should have been injected").toBeGreaterThan(10);
    expect(done).toBe(true);
    expect(records.length).toBe(ENQUEUES);
    expect(perKey.size).toBe(ENQUEUES);
    expect([...perKey.values()].every((n) => n === 1)).toBe(true);
    expect(wrongId).toEqual([]);
    expect(analysis.badHistories).toEqual([]);
    expect(analysis.lost).toEqual([]);
    expect(analysis.unexplained).toEqual([]);
  } finally {
    setFaults(false);
    for (const { server, storage } of servers) {
      await server.stop(0);
      await storage.close();
    }
    await producerStore.close();
    await check.close();
  }
}

const keys = prefixes("chaos-faults");
describeWithService("redis", await serviceUp("redis"), "chaos: Upstash gateway faults", () => {
  let gateway: UpstashGateway;
  let on = false;
  const injected: Injected = { "5xx": 0, timeout: 0, reset: 0 };
  beforeAll(async () => {
    gateway = await startUpstashGateway({
      redisUrl: REDIS_URL,
      faults: (): GatewayFault | undefined => {
        if (!on) return undefined;
        const r = roll();
        if (r) injected[r]++;
        if (r === "5xx") return { kind: "status", status: pick([500, 502, 503]) };
        if (r === "timeout") return { kind: "hang", when: "after", ms: HOLD_MS };
        if (r === "reset") return { kind: "reset", when: pick(["before", "after"] as const) };
        return undefined;
      },
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await deleteKeys(REDIS_URL, keys.pattern);
  });
  it(
    "unique keys leave exactly one job each, and no job makes a transition twice",
    async () => {
      const prefix = keys.next();
      await faultRun(
        "upstash",
        { kind: "upstash", url: gateway.url, token: gateway.token, prefix, commandTimeoutMs: CLIENT_TIMEOUT_MS },
        { kind: "redis", url: REDIS_URL, prefix },
        (v) => (on = v),
        injected,
      );
    },
    timeout(55_000, 900_000),
  );
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: Neon HTTP gateway faults", () => {
  let gateway: NeonGateway;
  let proxy: FaultProxy;
  let on = false;
  const injected: Injected = { "5xx": 0, timeout: 0, reset: 0 };
  beforeAll(async () => {
    gateway = await startNeonGateway({ databaseUrl: DATABASE_URL });
    gateway.setFaults({
      http: (): HttpFault | undefined => {
        if (!on) return undefined;
        const r = roll();
        // Timeouts are the proxy's (below): the gateway cannot hold an applied reply.
        if (r === "5xx") {
          injected["5xx"]++;
          const status = pick([500, 502, 503]);
          return Math.random() < 0.5 ? { kind: "status", status } : { kind: "status-after-apply", status };
        }
        if (r === "reset") {
          injected.reset++;
          return Math.random() < 0.5 ? { kind: "reset" } : { kind: "reset-after-apply" };
        }
        return undefined;
      },
    });
    proxy = await startFaultProxy({
      target: `http://${gateway.host}:${gateway.port}`,
      holdAfterApply: () => {
        if (!on || Math.random() >= 0.05) return undefined;
        injected.timeout++;
        return HOLD_MS;
      },
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await gateway?.close();
    await janitor.dropAll();
  });
  it(
    "unique keys leave exactly one job each, and no job makes a transition twice",
    async () => {
      const schema = janitor.next("qml_chaos");
      await faultRun(
        "neon-http",
        { kind: "postgres", driver: "neon-http", url: DATABASE_URL, schema, fetchEndpoint: `${proxy.url}/sql`, queryTimeoutMs: CLIENT_TIMEOUT_MS },
        { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 2 },
        (v) => (on = v),
        injected,
      );
    },
    timeout(55_000, 900_000),
  );
});
