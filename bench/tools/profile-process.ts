/**
 * CPU profile of one contender's processing only (the prefill and module
 * loading left out): enqueue N jobs, then profile from starting the worker
 * pool until the N-th job ran.
 *
 *   tsx bench/tools/profile-process.ts <contender> [--n=50000] [--concurrency=20] [--out=file.cpuprofile] [--no-profile]
 *   tsx bench/tools/profile-top.ts <file.cpuprofile>
 *
 * Through tsx, qml runs from its TypeScript sources; to profile the compiled
 * code the benchmark runs (see bench/build.ts):
 *
 *   QML_BENCH_BUILD=$(npx tsx bench/build.ts) node --import tsx --import ./bench/build-hooks.mjs \
 *     bench/tools/profile-process.ts qml-memory
 */
import { writeFile, mkdir } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONTENDERS } from "../contenders/index.js";
import { Tracker, payload, type Payload } from "../harness.js";
import { DATABASE_URL, REDIS_URL, createDatabase, deleteKeys, dropDatabase } from "../services.js";

const [name, ...rest] = process.argv.slice(2);
const flag = (f: string, d: string) => rest.find((a) => a.startsWith(`--${f}=`))?.slice(f.length + 3) ?? d;
const entry = name ? CONTENDERS[name] : undefined;
if (!entry) {
  console.error(`usage: tsx bench/tools/profile-process.ts <${Object.keys(CONTENDERS).join("|")}> [--n=50000] [--concurrency=20]`);
  process.exit(1);
}
const n = Number(flag("n", "50000"));
const concurrency = Number(flag("concurrency", "20"));
const profiling = !rest.includes("--no-profile");
const out = flag("out", join(dirname(fileURLToPath(import.meta.url)), "..", "results", "tmp", "prof", `${name}-process-c${concurrency}.cpuprofile`));

const runId = Math.random().toString(16).slice(2, 10);
const db = `qb${runId}_prof`;
const databaseUrl = entry.store === "postgres" ? await createDatabase(db) : DATABASE_URL;
const adapter = await entry.load();
const ns = await adapter.open(`qb${runId}_prof`, { redisUrl: REDIS_URL, databaseUrl });
try {
  for (let start = 0; start < n; start += 1000) {
    const batch: Payload[] = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) batch.push(payload(i));
    await ns.enqueueMany(batch);
  }
  const session = new Session();
  if (profiling) {
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 100 });
    await session.post("Profiler.start");
  }
  const tracker = new Tracker(n);
  const worker = await ns.startWorker(concurrency, (p) => tracker.hit(p.i));
  await tracker.waitAll(300_000);
  const profile = profiling ? (await session.post("Profiler.stop")).profile : undefined;
  await worker.stop();
  const check = tracker.check();
  const ms = tracker.lastAt - tracker.firstAt;
  console.log(`${name} c=${concurrency}: ${Math.round(((n - 1) / ms) * 1000)} jobs/s${profiling ? " with the profiler on" : ""}; exactly once: ${check.ok}`);
  if (profile) {
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify(profile));
    console.log(`wrote ${out}`);
  }
} finally {
  await ns.close();
  await adapter.close?.();
  if (entry.store === "postgres") await dropDatabase(db);
  if (entry.store === "redis") await deleteKeys(`*qb${runId}_*`);
}
process.exit(0);
