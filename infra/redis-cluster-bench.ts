/**
 * Combined throughput of 1, 2 and 3 qml instances on the local three-master
 * Redis Cluster (infra/redis-cluster.sh), each instance with its own hash
 * tag on its own master and its own server process, plus one instance on
 * the standalone Redis for reference.
 *
 *   npx tsx infra/redis-cluster-bench.ts [--jobs=20000] [--rounds=5] [--concurrency=20] [--layouts=standalone,1,2,3]
 *
 * A round runs every layout once, in an order rotated each round. A layout:
 * N no-op jobs enqueued into each instance first (bulk), then one process
 * per instance (BackgroundJobServer at its defaults, workerCount = the
 * concurrency) opens its storage and says READY; all get GO at once; each
 * reports when its N-th job succeeded. Combined jobs/s = all jobs / (last
 * finish - GO). Also CPU per job: each master's Redis (INFO cpu, user +
 * sys) and each qml process's (process.cpuUsage). Prints every round, then
 * the median over the rounds with min–max.
 */
import { spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { Redis } from "ioredis";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, silentLogger } from "../src/index.js";
import { RedisConfig, redisBackend } from "../src/adapters/storage/redis/index.js";
import { keySlot } from "../src/adapters/storage/redis/keys.js";

const CLUSTER_URL = process.env.QML_BENCH_REDIS_CLUSTER_URL ?? "redis://127.0.0.1:7000";
const STANDALONE_URL = process.env.QML_BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

function flag(name: string, fallback: string): string {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}

function config(url: string, cluster: boolean, prefix: string, tag: string): RedisConfig {
  const c = new RedisConfig(url).withKeyPrefix(prefix).withHashTag(tag);
  return cluster ? c.withCluster(true) : c;
}

// ------------------------------------------------------------------ child

async function child(): Promise<void> {
  const [url, cluster, prefix, tag, n, concurrency] = process.argv.slice(3);
  const storage = new Storage(redisBackend(config(url!, cluster === "1", prefix!, tag!)));
  await storage.migrate();
  const total = Number(n);
  let done = 0;
  const registry = new WorkerRegistry().register("noop", () => WorkerResult.success());
  const server = new BackgroundJobServer(storage, registry, new ServerConfig(`bench-${tag}`).workerCount(Number(concurrency)).logger(silentLogger));
  const finished = new Promise<number>((resolve) =>
    server.on("job:succeeded", () => {
      if (++done === total) resolve(Date.now());
    }),
  );
  process.stdout.write("READY\n");
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
  const cpu0 = process.cpuUsage();
  await server.start();
  const at = await finished;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${JSON.stringify({ finishedAt: at, cpuUs: cpu.user + cpu.system })}\n`);
  await server.stop();
  await storage.close();
  process.exit(0);
}

// ----------------------------------------------------------------- parent

interface Master {
  id: string;
  url: string;
  slots: Array<[number, number]>;
}

async function masters(): Promise<Master[]> {
  const r = new Redis(CLUSTER_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    return String(await r.call("CLUSTER", "NODES"))
      .trim()
      .split("\n")
      .map((l) => l.split(" "))
      .filter((f) => f[2]!.includes("master"))
      .map((f) => ({
        id: f[0]!,
        url: `redis://${f[1]!.split("@")[0]!}`,
        slots: f.slice(8).map((s) => {
          const [a, b] = s.split("-").map(Number);
          return [a!, b ?? a!] as [number, number];
        }),
      }));
  } finally {
    r.disconnect();
  }
}

/** `k` hash tags for `prefix`, each on a different master. */
function tags(all: Master[], prefix: string, k: number): Array<{ tag: string; master: Master }> {
  const out: Array<{ tag: string; master: Master }> = [];
  for (let i = 0; out.length < k && i < 10_000; i++) {
    const tag = `b${i}`;
    const slot = keySlot(`${prefix}{${tag}}:meta`);
    const master = all.find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b))!;
    if (!out.some((o) => o.master.id === master.id)) out.push({ tag, master });
  }
  if (out.length < k) throw new Error(`only ${out.length} masters for ${k} instances`);
  return out;
}

async function cpuSeconds(url: string): Promise<number> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    const info = String(await r.info("cpu"));
    const get = (k: string) => Number(new RegExp(`^${k}:([0-9.]+)`, "m").exec(info)?.[1] ?? 0);
    return get("used_cpu_user") + get("used_cpu_sys");
  } finally {
    r.disconnect();
  }
}

async function deleteKeys(urls: string[], pattern: string): Promise<void> {
  for (const url of urls) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      let cursor = "0";
      do {
        const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) {
          const p = r.pipeline();
          for (const k of keys) p.del(k);
          await p.exec();
        }
      } while (cursor !== "0");
    } finally {
      r.disconnect();
    }
  }
}

interface Result {
  layout: string;
  jobsPerSec: number;
  perInstance: number[];
  /** Redis CPU µs per job, per master used. */
  cpuUsPerJob: number[];
  /** The qml server process's CPU µs per job, per instance. */
  qmlCpuUsPerJob: number[];
}

async function runLayout(layout: string, n: number, concurrency: number, all: Master[]): Promise<Result> {
  const standalone = layout === "standalone";
  const k = standalone ? 1 : Number(layout);
  const prefix = `qmlb-cluster-${crypto.randomUUID().slice(0, 8)}:`;
  const placed = standalone ? [{ tag: "b0", master: { id: "standalone", url: STANDALONE_URL, slots: [] } as Master }] : tags(all, prefix, k);
  const url = standalone ? STANDALONE_URL : CLUSTER_URL;
  // Enqueued before the servers start: the phase measures processing only.
  for (const { tag } of placed) {
    const s = new Storage(redisBackend(config(url, !standalone, prefix, tag)));
    await s.migrate();
    for (let i = 0; i < n; i += 1000) await s.enqueue(Array.from({ length: Math.min(1000, n - i) }, (_, j) => new Job("noop", [i + j])));
    await s.close();
  }
  const children = placed.map(({ tag }) => {
    const c = spawn(
      process.execPath,
      ["--import", "tsx", new URL(import.meta.url).pathname, "--child", url, standalone ? "0" : "1", prefix, tag, String(n), String(concurrency)],
      {
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    let out = "";
    c.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    const ready = new Promise<void>((resolve, reject) => {
      c.stdout.on("data", () => out.includes("READY") && resolve());
      c.once("exit", (code) => reject(new Error(`child exited ${code} before READY`)));
    });
    const done = new Promise<{ finishedAt: number; cpuUs: number }>((resolve, reject) =>
      c.once("exit", (code) => {
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (code !== 0 || !line) return reject(new Error(`child exited ${code}: ${out}`));
        resolve(JSON.parse(line) as { finishedAt: number; cpuUs: number });
      }),
    );
    return { c, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  const cpu0 = await Promise.all(placed.map((p) => cpuSeconds(p.master.url)));
  const go = Date.now();
  for (const c of children) c.c.stdin.write("GO\n");
  const reports = await Promise.all(children.map((c) => c.done));
  const ends = reports.map((r) => r.finishedAt);
  const cpu1 = await Promise.all(placed.map((p) => cpuSeconds(p.master.url)));
  await deleteKeys(
    placed.map((p) => p.master.url),
    `${prefix}*`,
  );
  const last = Math.max(...ends);
  return {
    layout,
    jobsPerSec: (k * n) / ((last - go) / 1000),
    perInstance: ends.map((e) => n / ((e - go) / 1000)),
    cpuUsPerJob: cpu1.map((c, i) => ((c - cpu0[i]!) * 1e6) / n),
    qmlCpuUsPerJob: reports.map((r) => r.cpuUs / n),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
/** Per-round ratios of a layout's jobs/s to the reference layout's, as "median (min–max)". */
function ratios(rs: Result[], ref: Result[] | undefined): string {
  if (!ref) return "";
  const r = rs.map((x, i) => x.jobsPerSec / ref[i]!.jobsPerSec);
  return `${median(r).toFixed(2)}× (${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)})`;
}
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

async function main(): Promise<void> {
  const n = Number(flag("jobs", "20000"));
  const rounds = Number(flag("rounds", "5"));
  const concurrency = Number(flag("concurrency", "20"));
  const layouts = flag("layouts", "standalone,1,2,3").split(",");
  const all = await masters();
  console.log(`# ${all.length} masters; N = ${n} jobs per instance, c = ${concurrency}, ${rounds} rounds`);
  const results: Result[][] = layouts.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < layouts.length; j++) {
      const i = (j + r) % layouts.length;
      const res = await runLayout(layouts[i]!, n, concurrency, all);
      results[i]!.push(res);
      console.log(
        `round ${r + 1} ${res.layout}: ${fmt(res.jobsPerSec)} jobs/s (instances ${res.perInstance.map(fmt).join(", ")}; CPU µs/job Redis ${res.cpuUsPerJob.map((c) => c.toFixed(1)).join(", ")}, qml ${res.qmlCpuUsPerJob.map((c) => c.toFixed(1)).join(", ")}; load ${loadavg()[0]!.toFixed(2)})`,
      );
    }
  }
  console.log(
    `\n${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  const base = layouts.indexOf("1");
  console.log(
    "| layout | instances | combined jobs/s, median (min–max) | ÷ 1 master, median of per-round ratios (min–max) | per instance, median | CPU µs/job: Redis / qml process, medians |",
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  layouts.forEach((layout, i) => {
    const rs = results[i]!;
    const v = rs.map((x) => x.jobsPerSec);
    const k = rs[0]!.perInstance.length;
    const label = layout === "standalone" ? "standalone Redis (6379)" : `cluster, ${layout} master${layout === "1" ? "" : "s"}`;
    console.log(
      `| ${label} | ${k} | ${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))}) | ${ratios(rs, base >= 0 ? results[base]! : undefined)} | ${fmt(median(rs.flatMap((x) => x.perInstance)))} | ${median(rs.flatMap((x) => x.cpuUsPerJob)).toFixed(0)} / ${median(rs.flatMap((x) => x.qmlCpuUsPerJob)).toFixed(0)} |`,
    );
  });
}

if (process.argv[2] === "--child") await child();
else await main();
