/**
 * `npm run chaos`: the chaos suite with the issue's full numbers (10,000
 * jobs under kills, 5,000 enqueues through faulty gateways, 10,000 fuzzed
 * bodies…), one file at a time, then a summary of every figures line, as
 * the README's Reliability section quotes them.
 *
 *   npx tsx test/chaos/run.ts                 # long variants, every file
 *   npx tsx test/chaos/run.ts kill fence      # only files whose name contains these
 *   npx tsx test/chaos/run.ts --short         # the short variants (what npm test runs), with the summary
 *   npm run chaos -- soak                     # the soak: 30 minutes per store (QML_CHAOS_SOAK_MS overrides)
 *
 * A long run of every file leaves the soak out (an hour on its own): name
 * it to run it.
 *
 * Exit code: vitest's.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const args = process.argv.slice(2);
const short = args.includes("--short");
const filters = args.filter((a) => !a.startsWith("--"));
/** Run only when named (or in the short variants): the long soak takes 30 minutes per store. */
const ON_REQUEST = ["soak.test.ts"];
const files = readdirSync(here)
  .filter((f) => f.endsWith(".test.ts") && (filters.length === 0 ? short || !ON_REQUEST.includes(f) : filters.some((x) => f.includes(x))))
  .map((f) => relative(root, join(here, f)));
if (files.length === 0) {
  console.error(`[qml] [chaos] no test file matches ${filters.join(", ")}`);
  process.exit(2);
}

const report = join(tmpdir(), `qml-chaos-${process.pid}-${Date.now()}.jsonl`);
const vitest = join(dirname(createRequire(import.meta.url).resolve("vitest/package.json")), "vitest.mjs");
const started = Date.now();
const child = spawn(process.execPath, [vitest, "run", ...files, "--no-file-parallelism"], {
  cwd: root,
  env: { ...process.env, ...(short ? {} : { QML_CHAOS_LONG: "1" }), QML_CHAOS_REPORT: report },
  stdio: "inherit",
});
const code = await new Promise<number>((resolve) => child.once("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));

interface Entry {
  name: string;
  figures: Record<string, string | number | boolean>;
  note?: string;
  line: string;
}
const entries: Entry[] = existsSync(report)
  ? readFileSync(report, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Entry)
  : [];
rmSync(report, { force: true });

console.log(`\n[qml] [chaos] ${short ? "short" : "long"} variants, ${Math.round((Date.now() - started) / 1000)} s, vitest exit code ${code}\n`);
for (const e of entries) console.log(e.line);
if (entries.length > 0) {
  console.log("\n| run | figures |\n|---|---|");
  for (const e of entries) {
    const f = Object.entries(e.figures)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
    console.log(`| ${e.name} | ${f}${e.note ? ` (${e.note})` : ""} |`);
  }
}
process.exit(code);
