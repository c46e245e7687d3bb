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
import { mkdir, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { processAll, toolArgs, withBacklog } from "./backlog.js";

const args = toolArgs("profile-process.ts", 50000, " [--out=file.cpuprofile] [--no-profile]");
const profiling = !args.has("--no-profile");
const out = args.flag(
  "out",
  join(dirname(fileURLToPath(import.meta.url)), "..", "results", "tmp", "prof", `${args.name}-process-c${args.concurrency}.cpuprofile`),
);

await withBacklog(args, "prof", {}, async (ns) => {
  const session = new Session();
  let profile: unknown;
  const run = await processAll(ns, args, {
    async started() {
      if (!profiling) return;
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: 100 });
      await session.post("Profiler.start");
    },
    async finished() {
      if (profiling) profile = (await session.post("Profiler.stop")).profile;
    },
  });
  console.log(`${args.name} c=${args.concurrency}: ${run.perSecond} jobs/s${profiling ? " with the profiler on" : ""}; exactly once: ${run.exactlyOnce}`);
  if (profile) {
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify(profile));
    console.log(`wrote ${out}`);
  }
});
process.exit(0);
