/**
 * `npm run bench`: every contender, one after the other, on this machine.
 *
 *   tsx bench/run.ts [--quick] [--only=qml-memory,bullmq|qml|graphile] [--n=20000]
 *                    [--phases=enqueue,process,latency,idle,requests] [--idle-window=30000]
 *                    [--idle-warmup=15000] [--latency-jobs=500] [--process-timeout=60000] [--requests-jobs=5000]
 *                    [--in-process] [--from-src] [--no-write] [--profile]
 *                    [--rounds=5] [--ratio=qml-redis/bullmq ...]
 *   tsx bench/run.ts --render=bench/results/latest.json   (latest.md and chart.svg again)
 *
 * Each contender runs in its own child process (a fresh heap and event loop,
 * nothing left over from the previous one) unless --in-process. qml runs
 * compiled (build.ts), as the peers do, unless --from-src. Results:
 * a markdown table on stdout, bench/results/latest.json, latest.md and
 * chart.svg, a line appended to bench/results/history.md, and the raw run
 * in bench/results/tmp/<date>.json (out of git; with --quick everything
 * goes under bench/results/tmp/).
 * --rounds=N runs the contenders N times, alternating (rounds.ts), and
 * reports medians with min–max, and medians of per-round ratios for the
 * pairs of --ratio=a/b (default: each -keylimit contender / its plain one).
 * --profile writes a V8 CPU profile per contender to bench/results/tmp/prof/.
 */
import { fork } from "node:child_process";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildQml } from "./build.js";
import { CONTENDERS, select } from "./contenders/index.js";
import { PHASES, defaultOptions, runContender, type BenchOptions, type ContenderResult, type Phase } from "./harness.js";
import {
  chartSvg,
  evaluateTargets,
  markdownReport,
  markdownTable,
  roundsSection,
  settingsList,
  targetsTable,
  type BenchReport,
  type RunInfo,
} from "./report.js";
import { defaultRatios, historyLine, medianResult, parseRatio, roundOrder, summarizeRounds } from "./rounds.js";
import { DATABASE_URL, REDIS_URL, reachable } from "./services.js";

const HERE = dirname(fileURLToPath(import.meta.url));

const HISTORY_HEAD = `# Bench runs

One line per \`npm run bench\` run that wrote its results (bench/run.ts appends it): processing
in jobs/s (with \`--rounds\`: median and min–max over the rounds), store requests per job, and the
ratios of \`--ratio\` pairs. The latest run's raw numbers are in latest.json; older raw runs stay
out of git (results/tmp/).

`;

export interface CliArgs {
  quick: boolean;
  only: string[] | undefined;
  inProcess: boolean;
  fromSrc: boolean;
  write: boolean;
  profile: boolean;
  child: string | undefined;
  runId: string | undefined;
  outDir: string | undefined;
  /** Re-render the table, latest.md and chart.svg of a results JSON instead of running. */
  render: string | undefined;
  /** Times every contender runs, alternating; figures are medians over the rounds. */
  rounds: number;
  /** Pairs [a, b] reported as the median of per-round a / b; undefined: `defaultRatios`. */
  ratios: Array<[string, string]> | undefined;
  overrides: Partial<BenchOptions>;
}

export function parseArgs(argv: string[]): CliArgs {
  const args: CliArgs = {
    quick: false,
    only: undefined,
    inProcess: false,
    fromSrc: false,
    write: true,
    profile: false,
    child: undefined,
    runId: undefined,
    outDir: undefined,
    render: undefined,
    rounds: 1,
    ratios: undefined,
    overrides: {},
  };
  const int = (flag: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`[bench] ${flag} needs a positive integer; got ${JSON.stringify(v)}`);
    return n;
  };
  for (const a of argv) {
    const [flag, value = ""] = a.split(/=(.*)/s) as [string, string?];
    switch (flag) {
      case "--quick":
        args.quick = true;
        break;
      case "--only":
        args.only = value
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case "--in-process":
        args.inProcess = true;
        break;
      case "--from-src":
        args.fromSrc = true;
        break;
      case "--no-write":
        args.write = false;
        break;
      case "--profile":
        args.profile = true;
        break;
      case "--child":
        args.child = value;
        break;
      case "--run-id":
        args.runId = value;
        break;
      case "--render":
        args.render = value;
        break;
      case "--out-dir":
        args.outDir = value;
        break;
      case "--rounds":
        args.rounds = int(flag, value);
        break;
      case "--ratio":
        (args.ratios ??= []).push(parseRatio(value));
        break;
      case "--n":
        args.overrides.n = int(flag, value);
        break;
      case "--concurrency":
        args.overrides.concurrencies = value.split(",").map((v) => int(flag, v));
        break;
      case "--phases": {
        const phases = value.split(",").map((s) => s.trim()) as Phase[];
        for (const p of phases) if (!PHASES.includes(p)) throw new Error(`[bench] unknown phase ${JSON.stringify(p)}; known: ${PHASES.join(", ")}`);
        args.overrides.phases = phases;
        break;
      }
      case "--idle-window":
        args.overrides.idleWindowMs = int(flag, value);
        break;
      case "--idle-warmup":
        args.overrides.idleWarmupMs = int(flag, value);
        break;
      case "--latency-jobs":
        args.overrides.latencyJobs = int(flag, value);
        break;
      case "--requests-jobs":
        args.overrides.requestsJobs = int(flag, value);
        break;
      case "--process-timeout":
        args.overrides.processTimeoutMs = int(flag, value);
        break;
      default:
        throw new Error(`[bench] unknown flag ${JSON.stringify(a)} (see the top of bench/run.ts)`);
    }
  }
  return args;
}

function optionsOf(args: CliArgs, log: (line: string) => void): BenchOptions {
  return { ...defaultOptions(args.quick), ...args.overrides, log };
}

function passThrough(args: CliArgs): string[] {
  const out: string[] = [];
  if (args.quick) out.push("--quick");
  const o = args.overrides;
  if (o.n) out.push(`--n=${o.n}`);
  if (o.concurrencies) out.push(`--concurrency=${o.concurrencies.join(",")}`);
  if (o.phases) out.push(`--phases=${o.phases.join(",")}`);
  if (o.idleWindowMs) out.push(`--idle-window=${o.idleWindowMs}`);
  if (o.idleWarmupMs) out.push(`--idle-warmup=${o.idleWarmupMs}`);
  if (o.latencyJobs) out.push(`--latency-jobs=${o.latencyJobs}`);
  if (o.processTimeoutMs) out.push(`--process-timeout=${o.processTimeoutMs}`);
  if (o.requestsJobs) out.push(`--requests-jobs=${o.requestsJobs}`);
  return out;
}

function failedResult(name: string, error: string): ContenderResult {
  const entry = CONTENDERS[name];
  return { name, label: name, store: entry?.store ?? "memory", settings: "", process: {}, error, wallMs: 0 };
}

/** Runs one contender in a child process; its result comes back over IPC. */
function runChild(name: string, runId: string, args: CliArgs, build: string | undefined, log: (line: string) => void): Promise<ContenderResult> {
  const execArgv = ["--import", "tsx", "--max-old-space-size=2048"];
  if (build) execArgv.push("--import", pathToFileURL(join(HERE, "build-hooks.mjs")).href);
  if (args.profile) execArgv.push("--cpu-prof", `--cpu-prof-dir=${join(HERE, "results", "tmp", "prof")}`, `--cpu-prof-name=${name}-${runId}.cpuprofile`);
  return new Promise((resolve) => {
    let result: ContenderResult | undefined;
    let partial: ContenderResult | undefined;
    const child = fork(fileURLToPath(import.meta.url), [`--child=${name}`, `--run-id=${runId}`, ...passThrough(args)], {
      execArgv,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, ...(build ? { QML_BENCH_BUILD: build } : {}) },
    });
    // A contender that hangs must not hang the whole run.
    const timer = setTimeout(() => child.kill("SIGKILL"), 30 * 60_000);
    child.on("message", (m: { type: string; line?: string; result?: ContenderResult }) => {
      if (m.type === "log" && m.line) log(m.line);
      if (m.type === "partial") partial = m.result;
      if (m.type === "result") result = m.result;
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (result) return resolve(result);
      const error = `child process exited (${signal ?? code}) before the end`;
      log(`  ${name}: ${error}`);
      resolve(partial ? { ...partial, error } : failedResult(name, error));
    });
  });
}

async function childMain(args: CliArgs): Promise<void> {
  const name = args.child!;
  const send = (m: unknown) => process.send?.(m);
  const options: BenchOptions = { ...optionsOf(args, (line) => send({ type: "log", line })), onProgress: (result) => send({ type: "partial", result }) };
  // A peer's background error (a pool losing its connection at shutdown) must not lose the phases measured so far.
  process.on("uncaughtException", (e) =>
    send({ type: "log", line: `  ${name}: uncaught ${e instanceof Error ? e.stack?.split("\n").slice(0, 3).join(" | ") : String(e)}` }),
  );
  const adapter = await CONTENDERS[name]!.load();
  const result = await runContender(adapter, args.runId!, options);
  send({ type: "result", result });
  // Drivers may keep sockets or timers alive: the result is out, so leave.
  process.disconnect?.();
  setTimeout(() => process.exit(0), 100).unref();
}

function gitCommit(): string | undefined {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: HERE, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

/** Writes latest.md and chart.svg again from a results JSON (after a change to the report's layout). */
async function render(file: string, out: (line: string) => void): Promise<BenchReport> {
  const report = JSON.parse(await readFile(file, "utf8")) as BenchReport;
  report.targets = evaluateTargets(report.results);
  const dir = dirname(file);
  await writeFile(join(dir, "latest.md"), markdownReport(report));
  await writeFile(join(dir, "chart.svg"), chartSvg(report));
  out(markdownReport(report));
  out(`[bench] wrote ${join(dir, "latest.md")} and chart.svg from ${file}`);
  return report;
}

/** Runs the selected contenders and reports. Returns the report (the smoke test reads it). */
export async function main(argv: string[], out: (line: string) => void = (l) => console.log(l)): Promise<BenchReport> {
  const args = parseArgs(argv);
  if (args.child) {
    await childMain(args);
    return { info: {} as RunInfo, results: [], targets: [] };
  }
  if (args.render) return render(args.render, out);
  const names = select(args.only);
  const ratios = args.ratios ?? defaultRatios(names);
  for (const [a, b] of ratios)
    for (const n of [a, b]) if (!names.includes(n)) throw new Error(`[bench] --ratio names ${JSON.stringify(n)}, which is not selected (${names.join(", ")})`);
  const options = optionsOf(args, out);
  const runId = args.runId ?? Math.random().toString(16).slice(2, 10);
  const info: RunInfo = {
    runId,
    date: new Date().toISOString(),
    quick: args.quick,
    n: options.n,
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    loadBefore: loadavg().map((v) => Math.round(v * 100) / 100),
    loadAfter: [],
    commit: gitCommit(),
    options: Object.fromEntries(Object.entries(options).filter(([k]) => k !== "log")),
  };
  out(
    `[bench] run ${runId}: ${names.join(", ")}; N = ${options.n}${args.rounds > 1 ? `; ${args.rounds} rounds` : ""}; load average ${info.loadBefore.join(" ")} on ${info.cpus} CPUs`,
  );
  if (info.loadBefore[0]! > 1.5)
    out(`[bench] the machine is busy (load ${info.loadBefore[0]}): numbers will be noisy; ratios within this run are still comparable`);

  const up = { redis: await reachable(REDIS_URL, 6379), postgres: await reachable(DATABASE_URL, 5432), memory: true };
  const peersInstalled =
    existsSync(join(HERE, "node_modules", "bullmq")) &&
    existsSync(join(HERE, "node_modules", "graphile-worker")) &&
    existsSync(join(HERE, "node_modules", "pg-boss"));

  // In process, qml is whatever this process loaded (tsx sources under `tsx`, vitest's transform in tests).
  const build = args.inProcess || args.fromSrc ? undefined : await buildQml();
  info.qmlCode = build ? "compiled (esbuild, bench/build.ts)" : args.inProcess ? "as loaded in process" : "TypeScript sources through tsx";

  // Why a contender cannot run, decided once for all rounds.
  const skip = new Map<string, string>();
  for (const name of names) {
    const entry = CONTENDERS[name]!;
    if (!up[entry.store]) skip.set(name, `${entry.store} is not reachable`);
    else if (entry.peer && !peersInstalled) skip.set(name, "bench dependencies not installed (npm ci --prefix bench)");
    if (skip.has(name)) out(`[bench] SKIPPING ${name}: ${skip.get(name)}`);
  }

  const rounds: ContenderResult[][] = [];
  info.order = [];
  for (let round = 0; round < args.rounds; round++) {
    const order = roundOrder(names, round);
    info.order.push(order);
    // Each round has its own namespaces and databases (a failed cleanup cannot collide with the next round).
    const roundId = args.rounds > 1 ? `${runId}r${round + 1}` : runId;
    if (args.rounds > 1) out(`[bench] round ${round + 1} of ${args.rounds}: ${order.join(", ")}; load average ${loadavg()[0]!.toFixed(2)}`);
    const results: ContenderResult[] = [];
    for (const name of order) {
      const entry = CONTENDERS[name]!;
      const why = skip.get(name);
      if (why) {
        results.push(failedResult(name, why));
        continue;
      }
      out(`[bench] ${name}`);
      if (args.inProcess) {
        try {
          results.push(await runContender(await entry.load(), roundId, options));
        } catch (e) {
          results.push(failedResult(name, String(e)));
        }
      } else {
        results.push(await runChild(name, roundId, args, build, out));
      }
    }
    rounds.push(results);
  }
  info.loadAfter = loadavg().map((v) => Math.round(v * 100) / 100);

  const summary = summarizeRounds(rounds, names, ratios);
  // One result per contender in the selection's order: with rounds, the medians.
  const results = names.map((name) => medianResult(rounds.map((round) => round.find((r) => r.name === name)!)));
  const report: BenchReport = { info, results, targets: evaluateTargets(results) };
  if (args.rounds > 1) {
    info.rounds = args.rounds;
    report.rounds = rounds;
    report.summary = summary;
  } else {
    delete info.order;
  }
  out("");
  for (const line of roundsSection(report)) out(line);
  out(markdownTable(report));
  out("");
  out(targetsTable(report));
  out("");
  out("Settings (everything else at its defaults):");
  out(settingsList(report));
  out("");
  out(`* = partial: the phase reached its time limit (${options.processTimeoutMs / 1000} s) before all N jobs ran; the rate is over the jobs that ran.`);

  if (args.write) {
    // Raw runs stay out of git (results/tmp/ is ignored): the latest run and a line per run in history.md are kept.
    const tmp = join(HERE, "results", "tmp");
    const dir = args.outDir ?? (args.quick ? tmp : join(HERE, "results"));
    const history = join(args.quick ? tmp : join(HERE, "results"), "history.md");
    await mkdir(dir, { recursive: true });
    await mkdir(tmp, { recursive: true });
    const json = JSON.stringify(report, null, 2) + "\n";
    const stamp = join(tmp, `${info.date.replace(/[:.]/g, "-")}.json`);
    await writeFile(stamp, json);
    await writeFile(join(dir, "latest.json"), json);
    await writeFile(join(dir, "latest.md"), markdownReport(report));
    await writeFile(join(dir, "chart.svg"), chartSvg(report));
    if (!existsSync(history)) await writeFile(history, HISTORY_HEAD);
    await appendFile(history, historyLine(info, summary) + "\n");
    out(`[bench] wrote ${stamp}, ${join(dir, "latest.json")}, latest.md and chart.svg; appended a line to ${history}`);
  }
  return report;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (report) => {
      const all = report.rounds?.flat() ?? report.results;
      if (all.some((r) => Object.values(r.process).some((p) => p.exactlyOnce && p.exactlyOnce.duplicates > 0))) process.exitCode = 1;
    },
    (e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
