/**
 * Where a contender's processing time goes. For every contender: the CPU
 * time per job processed of this process (and its children: the HTTP
 * gateways), of the PostgreSQL server processes and of redis-server, read
 * from /proc while N jobs are processed at one concurrency; on a machine
 * where both cores are busy, CPU per job is what bounds throughput. For qml
 * contenders also every Storage seam call (claim, complete,
 * extendLeases…), timed from the client: how many jobs a claim and a
 * completion carry and what each round trip costs.
 *
 *   tsx bench/tools/seam-timing.ts <contender> [--n=20000] [--concurrency=20]
 */
import { performance } from "node:perf_hooks";
import { cpuSample } from "../cpu.js";
import { processAll, toolArgs, withBacklog } from "./backlog.js";

const args = toolArgs("seam-timing.ts", 20000);
const calls = new Map<string, { count: number; ms: number[]; items: number }>();
let recording = false;
const onStoreCall = (method: string, callArgs: unknown[]) => {
  if (!recording) return;
  const t0 = performance.now();
  const first = callArgs[0];
  const items = Array.isArray(first) ? first.length : method === "claim" ? -1 : 1;
  return (result: unknown) => {
    let c = calls.get(method);
    if (!c) calls.set(method, (c = { count: 0, ms: [], items: 0 }));
    c.count++;
    c.ms.push(performance.now() - t0);
    c.items += items === -1 ? (Array.isArray(result) ? result.length : 0) : items;
  };
};

await withBacklog(args, "seam", { onStoreCall }, async (ns) => {
  let cpu0 = cpuSample();
  let cpu1 = cpu0;
  const run = await processAll(ns, args, {
    started() {
      recording = true;
      cpu0 = cpuSample();
    },
    finished() {
      recording = false;
      cpu1 = cpuSample();
    },
  });
  const { name, n, concurrency } = args;
  console.log(`${name} c=${concurrency}: ${run.perSecond} jobs/s (seam calls timed); exactly once: ${run.exactlyOnce}`);
  const per = (k: keyof typeof cpu0) => (((cpu1[k] - cpu0[k]) / n) * 1000).toFixed(1);
  console.log(
    `CPU per job processed (µs): this process ${per("self")}, its children (gateways) ${per("children")}, other gateways ${per("gateways")}, postgres ${per("postgres")}, redis-server ${per("redis")}`,
  );
  if (calls.size > 0) console.log("method           calls   jobs/call   mean ms    p50 ms    p95 ms   total ms");
  for (const [method, c] of [...calls.entries()].sort((a, b) => b[1].count - a[1].count)) {
    const sorted = [...c.ms].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
    const total = c.ms.reduce((s, v) => s + v, 0);
    console.log(
      `${method.padEnd(15)} ${String(c.count).padStart(6)} ${(c.items / c.count).toFixed(1).padStart(11)} ${(total / c.count).toFixed(2).padStart(9)} ${pct(0.5).toFixed(2).padStart(9)} ${pct(0.95).toFixed(2).padStart(9)} ${total.toFixed(0).padStart(10)}`,
    );
  }
});
process.exit(0);
