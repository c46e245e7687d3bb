/**
 * Scale-out on one store: combined throughput of 1, 2 and 4 qml server
 * processes sharing one backlog, with the store's CPU and each process's.
 *
 *   npx tsx bench/tools/scale-out.ts [--stores=redis,postgres] [--processes=1,2,4] [--jobs=40000] [--rounds=5] [--concurrency=20]
 *
 * A round runs every (store, processes) layout once, in an order rotated
 * each round. A layout: a fresh key prefix or schema, N no-op jobs enqueued
 * first (bulk), then k processes (BackgroundJobServer at its defaults,
 * workerCount = the concurrency) open their storages and say READY; all get
 * GO at once. Each reports how many jobs it ran and when its last one
 * finished; the layout ends when the counts add up to N. Combined jobs/s =
 * N / (last finish - GO). CPU per job: the store's server (redis-server or
 * PostgreSQL, bench/cpu.ts, server-wide: run it alone) and the qml
 * processes together, from GO to the end. Every job must have run exactly
 * once (the counts add up to N and no more).
 */
import { spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { RedisConfig, redisBackend } from "../../src/adapters/storage/redis/index.js";
import { cpuSample } from "../cpu.js";
import { median } from "../rounds.js";
import { REDIS_URL, createDatabase, deleteKeys, dropDatabase } from "../services.js";

type StoreName = "redis" | "postgres";

function flag(name: string, fallback: string): string {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}

/** `space`: a Redis key prefix, or the URL of a PostgreSQL database of the layout's own (the harness's createDatabase). */
function storageFor(store: StoreName, space: string): Storage {
  return store === "redis"
    ? new Storage(redisBackend(new RedisConfig(REDIS_URL).withKeyPrefix(space)))
    : new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(space)));
}

// ------------------------------------------------------------------ child

async function child(): Promise<void> {
  const [store, space, concurrency] = process.argv.slice(3) as [StoreName, string, string];
  const storage = storageFor(store, space);
  await storage.migrate();
  let count = 0;
  let lastAt = 0;
  const registry = new WorkerRegistry().register("noop", () => WorkerResult.success());
  const server = new BackgroundJobServer(storage, registry, new ServerConfig().workerCount(Number(concurrency)).logger(silentLogger));
  server.on("job:succeeded", () => {
    count++;
    lastAt = Date.now();
  });
  const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  say({ ready: true });
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
  const cpu0 = process.cpuUsage();
  await server.start();
  // Progress every 20 ms while it changes; the parent stops everyone when the counts add up.
  let said = -1;
  const progress = setInterval(() => {
    if (count !== said) say({ count, lastAt });
    said = count;
  }, 20);
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
  clearInterval(progress);
  const cpu = process.cpuUsage(cpu0);
  await server.stop();
  say({ final: true, count, lastAt, cpuUs: cpu.user + cpu.system });
  await storage.close();
  process.exit(0);
}

// ----------------------------------------------------------------- parent

interface Result {
  store: StoreName;
  processes: number;
  jobsPerSec: number;
  perProcess: number[];
  storeCpuUsPerJob: number;
  qmlCpuUsPerJob: number;
}

async function runLayout(store: StoreName, k: number, n: number, concurrency: number): Promise<Result> {
  const tag = crypto.randomUUID().replace(/-/g, "").slice(0, 8);
  const database = `qmlb_scale_${tag}`;
  const space = store === "redis" ? `qmlb-scale-${tag}:` : await createDatabase(database);
  const producer = storageFor(store, space);
  await producer.migrate();
  for (let i = 0; i < n; i += 1000) await producer.enqueue(Array.from({ length: Math.min(1000, n - i) }, (_, j) => new Job("noop", [i + j])));
  await producer.close();
  try {
    const children = Array.from({ length: k }, () => {
      const c = spawn(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, "--child", store, space, String(concurrency)], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      const state = { count: 0, lastAt: 0, final: undefined as undefined | { count: number; lastAt: number; cpuUs: number } };
      let buf = "";
      let onReady!: () => void;
      const ready = new Promise<void>((resolve) => (onReady = resolve));
      const listeners: Array<() => void> = [];
      c.stdout.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const m = JSON.parse(line) as { ready?: boolean; final?: boolean; count?: number; lastAt?: number; cpuUs?: number };
          if (m.ready) onReady();
          else if (m.final) state.final = { count: m.count!, lastAt: m.lastAt!, cpuUs: m.cpuUs! };
          else {
            state.count = m.count!;
            state.lastAt = m.lastAt!;
          }
          for (const l of listeners) l();
        }
      });
      const exited = new Promise<number | null>((resolve) => c.once("exit", resolve));
      return { c, ready, state, listeners, exited };
    });
    await Promise.all(children.map((c) => c.ready));
    const cpu0 = cpuSample();
    const go = Date.now();
    for (const c of children) c.c.stdin.write("GO\n");
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${store} × ${k}: not all ${n} jobs ran within 120 s`)), 120_000);
      const check = () => {
        if (children.reduce((s, c) => s + c.state.count, 0) >= n) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const c of children) c.listeners.push(check);
    });
    const cpu1 = cpuSample();
    for (const c of children) c.c.stdin.write("STOP\n");
    const codes = await Promise.all(children.map((c) => c.exited));
    if (codes.some((code) => code !== 0)) throw new Error(`a server process exited with ${codes.join(", ")}`);
    const finals = children.map((c) => c.state.final!);
    const total = finals.reduce((s, f) => s + f.count, 0);
    if (total !== n) throw new Error(`${store} × ${k}: ${total} runs for ${n} jobs (exactly once violated)`);
    const last = Math.max(...finals.map((f) => f.lastAt));
    const storeMs = store === "redis" ? cpu1.redis - cpu0.redis : cpu1.postgres - cpu0.postgres;
    return {
      store,
      processes: k,
      jobsPerSec: n / ((last - go) / 1000),
      perProcess: finals.map((f) => f.count),
      storeCpuUsPerJob: (storeMs * 1000) / n,
      qmlCpuUsPerJob: finals.reduce((s, f) => s + f.cpuUs, 0) / n,
    };
  } finally {
    if (store === "redis") await deleteKeys(`${space}*`);
    else await dropDatabase(database);
  }
}

const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

async function main(): Promise<void> {
  const n = Number(flag("jobs", "40000"));
  const rounds = Number(flag("rounds", "5"));
  const concurrency = Number(flag("concurrency", "20"));
  const stores = flag("stores", "redis,postgres").split(",") as StoreName[];
  const ks = flag("processes", "1,2,4").split(",").map(Number);
  const layouts = stores.flatMap((store) => ks.map((k) => ({ store, k })));
  console.log(`# N = ${n} jobs per layout, c = ${concurrency} per process, ${rounds} rounds; ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}`);
  const results: Result[][] = layouts.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < layouts.length; j++) {
      const i = (j + r) % layouts.length;
      const res = await runLayout(layouts[i]!.store, layouts[i]!.k, n, concurrency);
      results[i]!.push(res);
      console.log(
        `round ${r + 1} ${res.store} × ${res.processes}: ${fmt(res.jobsPerSec)} jobs/s (jobs per process ${res.perProcess.join(", ")}; CPU µs/job store ${res.storeCpuUsPerJob.toFixed(1)}, qml ${res.qmlCpuUsPerJob.toFixed(1)}; load ${loadavg()[0]!.toFixed(2)})`,
      );
    }
  }
  console.log(`\nload average after: ${loadavg()[0]!.toFixed(2)}`);
  console.log(
    "| store | processes | combined jobs/s, median (min–max) | ÷ 1 process, median of per-round ratios (min–max) | CPU µs/job: store / qml processes, medians |",
  );
  console.log("|---|---:|---:|---:|---:|");
  layouts.forEach(({ store, k }, i) => {
    const rs = results[i]!;
    const v = rs.map((x) => x.jobsPerSec);
    const base = results[layouts.findIndex((l) => l.store === store && l.k === ks[0])]!;
    const ratio = rs.map((x, round) => x.jobsPerSec / base[round]!.jobsPerSec);
    console.log(
      `| ${store} | ${k} | ${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))}) | ${median(ratio).toFixed(2)}× (${Math.min(...ratio).toFixed(2)}–${Math.max(...ratio).toFixed(2)}) | ${median(rs.map((x) => x.storeCpuUsPerJob)).toFixed(0)} / ${median(rs.map((x) => x.qmlCpuUsPerJob)).toFixed(0)} |`,
    );
  });
}

if (process.argv[2] === "--child") await child();
else await main();
