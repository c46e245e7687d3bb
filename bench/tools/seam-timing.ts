/**
 * Where a qml contender's processing time goes, seen from the client: every
 * Storage seam call (claim, complete, extendLeases…) timed while N jobs are
 * processed at one concurrency. Shows how many jobs a claim and a
 * completion carry and what each round trip costs.
 *
 *   tsx bench/tools/seam-timing.ts <qml contender> [--n=20000] [--concurrency=20]
 */
import { performance } from "node:perf_hooks";
import { CONTENDERS } from "../contenders/index.js";
import { Tracker, payload, type Payload } from "../harness.js";
import { DATABASE_URL, REDIS_URL, createDatabase, deleteKeys, dropDatabase } from "../services.js";

const [name, ...rest] = process.argv.slice(2);
const flag = (f: string, d: string) => rest.find((a) => a.startsWith(`--${f}=`))?.slice(f.length + 3) ?? d;
const entry = name?.startsWith("qml-") ? CONTENDERS[name] : undefined;
if (!entry) {
  console.error(`usage: tsx bench/tools/seam-timing.ts <${Object.keys(CONTENDERS).filter((n) => n.startsWith("qml-")).join("|")}> [--n=20000] [--concurrency=20]`);
  process.exit(1);
}
const n = Number(flag("n", "20000"));
const concurrency = Number(flag("concurrency", "20"));

const calls = new Map<string, { count: number; ms: number[]; items: number }>();
let recording = false;
const onStoreCall = (method: string, args: unknown[]) => {
  if (!recording) return;
  const t0 = performance.now();
  const first = args[0];
  const items = Array.isArray(first) ? first.length : method === "claim" ? -1 : 1;
  return (result: unknown) => {
    let c = calls.get(method);
    if (!c) calls.set(method, (c = { count: 0, ms: [], items: 0 }));
    c.count++;
    c.ms.push(performance.now() - t0);
    c.items += items === -1 ? (Array.isArray(result) ? result.length : 0) : items;
  };
};

const runId = Math.random().toString(16).slice(2, 10);
const db = `qb${runId}_seam`;
const databaseUrl = entry.store === "postgres" ? await createDatabase(db) : DATABASE_URL;
const adapter = await entry.load();
const ns = await adapter.open(`qb${runId}_seam`, { redisUrl: REDIS_URL, databaseUrl, onStoreCall });
try {
  for (let start = 0; start < n; start += 1000) {
    const batch: Payload[] = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) batch.push(payload(i));
    await ns.enqueueMany(batch);
  }
  const tracker = new Tracker(n);
  recording = true;
  const worker = await ns.startWorker(concurrency, (p) => tracker.hit(p.i));
  await tracker.waitAll(300_000);
  recording = false;
  await worker.stop();
  const ms = tracker.lastAt - tracker.firstAt;
  console.log(`${name} c=${concurrency}: ${Math.round(((n - 1) / ms) * 1000)} jobs/s (seam calls timed); exactly once: ${tracker.check().ok}`);
  console.log("method           calls   jobs/call   mean ms    p50 ms    p95 ms   total ms");
  for (const [method, c] of [...calls.entries()].sort((a, b) => b[1].count - a[1].count)) {
    const sorted = [...c.ms].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
    const total = c.ms.reduce((s, v) => s + v, 0);
    console.log(
      `${method.padEnd(15)} ${String(c.count).padStart(6)} ${(c.items / c.count).toFixed(1).padStart(11)} ${(total / c.count).toFixed(2).padStart(9)} ${pct(0.5).toFixed(2).padStart(9)} ${pct(0.95).toFixed(2).padStart(9)} ${total.toFixed(0).padStart(10)}`,
    );
  }
} finally {
  await ns.close();
  await adapter.close?.();
  if (entry.store === "postgres") await dropDatabase(db);
  if (entry.store === "redis") await deleteKeys(`*qb${runId}_*`);
}
process.exit(0);
