/**
 * A/B of two builds of qml on one contender's processing, alternating
 * child processes so that both see the same machine load: to check that a
 * hot-path change pays before proposing it.
 *
 *   tsx bench/tools/ab.ts --a=<build dir> --b=<build dir> [--contender=qml-memory] [--n=50000] [--concurrency=20] [--rounds=5]
 *
 * A build dir is what bench/build.ts writes (compiled src/ and infra/);
 * make B by building, then editing the compiled files (or building from a
 * patched checkout).
 */
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, "").split(/=(.*)/s).slice(0, 2) as [string, string]));
if (!args.a || !args.b) {
  console.error("usage: tsx bench/tools/ab.ts --a=<build dir> --b=<build dir> [--contender=qml-memory] [--n=50000] [--concurrency=20] [--rounds=5]");
  process.exit(1);
}
const contender = args.contender ?? "qml-memory";
const rounds = Number(args.rounds ?? 5);
const rates: Record<"a" | "b", number[]> = { a: [], b: [] };
for (let r = 0; r < rounds; r++) {
  for (const which of r % 2 === 0 ? (["a", "b"] as const) : (["b", "a"] as const)) {
    const out = execFileSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--import",
        pathToFileURL(join(HERE, "..", "build-hooks.mjs")).href,
        join(HERE, "profile-process.ts"),
        contender,
        `--n=${args.n ?? 50000}`,
        `--concurrency=${args.concurrency ?? 20}`,
        "--no-profile",
      ],
      { env: { ...process.env, QML_BENCH_BUILD: args[which] }, encoding: "utf8" },
    );
    const rate = Number(/: (\d+) jobs\/s/.exec(out)?.[1]);
    rates[which].push(rate);
    console.log(`round ${r + 1} ${which}: ${rate} jobs/s`);
  }
}
const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
const a = median(rates.a);
const b = median(rates.b);
console.log(`median A ${a} jobs/s, B ${b} jobs/s: B/A = ${(b / a).toFixed(2)}`);
