/**
 * Rounds (`--rounds=N`): the selected contenders run N times, alternating,
 * and every figure is reported as the median over the rounds with its spread
 * (min–max); a ratio between two contenders as the median of the per-round
 * ratios (each round's A and B ran minutes apart under the same load).
 *
 * Pure arithmetic and formatting: `test/bench/rounds.test.ts` checks it
 * without running anything.
 */
import type { ContenderResult, LatencyResult, ThroughputResult } from "./harness.js";

// ------------------------------------------------------------ arithmetic

/** The median of the finite values (the mean of the middle two for an even count); NaN for none. */
export function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Rounds with a finite value. */
  n: number;
}

/** Median and min–max of the finite values; undefined when there is none. */
export function spread(values: number[]): Spread | undefined {
  const v = values.filter(Number.isFinite);
  if (v.length === 0) return undefined;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/**
 * Per-round ratios a[i] / b[i] (rounds where either is missing, or b is 0,
 * are skipped) and their median and spread.
 */
export function ratioSpread(a: number[], b: number[]): (Spread & { perRound: number[] }) | undefined {
  const perRound: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isFinite(x) && Number.isFinite(y) && y !== 0) perRound.push(x / y);
  }
  const s = spread(perRound);
  return s && { ...s, perRound };
}

/**
 * The order in which the contenders run in round `round` (0-based): one or
 * two contenders keep their order every round (A, B, A, B…), more are
 * rotated by one each round (A B C, B C A, C A B…), so that none always
 * runs first or right after the same neighbour.
 */
export function roundOrder(names: readonly string[], round: number): string[] {
  if (names.length <= 2) return [...names];
  const k = round % names.length;
  return [...names.slice(k), ...names.slice(0, k)];
}

/** `-keylimit` contenders against their plain ones, when both are selected: [a, b] reads a / b. */
export function defaultRatios(names: readonly string[]): Array<[string, string]> {
  return names.filter((n) => n.endsWith("-keylimit") && names.includes(n.slice(0, -"-keylimit".length))).map((n) => [n, n.slice(0, -"-keylimit".length)]);
}

/** `--ratio=a/b` → [a, b]. */
export function parseRatio(value: string): [string, string] {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(value.trim());
  if (!m) throw new Error(`[bench] --ratio needs two contender names as a/b; got ${JSON.stringify(value)}`);
  return [m[1]!, m[2]!];
}

// --------------------------------------------------------------- figures

export type Unit = "jobs/s" | "ms" | "per job" | "per min" | "µs/job";

export interface Figure {
  /** "process c=20", "latency p50", "requests/job"… */
  figure: string;
  unit: Unit;
  value: number;
  /** A throughput phase that hit its time limit (`*`). */
  partial?: boolean;
}

const ok = <T extends { error?: string }>(x: T | undefined): x is T => x !== undefined && !x.error;

/** Every figure one round of one contender measured, in the report's column order. */
export function figuresOf(r: ContenderResult): Figure[] {
  const out: Figure[] = [];
  const rate = (figure: string, t: ThroughputResult | undefined) => {
    if (ok(t) && Number.isFinite(t.perSecond)) out.push({ figure, unit: "jobs/s", value: t.perSecond, ...(t.complete ? {} : { partial: true }) });
  };
  const lat = (prefix: string, l: LatencyResult | undefined) => {
    if (!ok(l)) return;
    out.push({ figure: `${prefix} p50`, unit: "ms", value: l.p50 }, { figure: `${prefix} p99`, unit: "ms", value: l.p99 });
  };
  rate("enqueue single", r.enqueueSingle);
  rate("enqueue bulk", r.enqueueBulk);
  const concurrencies = Object.keys(r.process).sort((a, b) => Number(a) - Number(b));
  for (const c of concurrencies) rate(`process c=${c}`, r.process[c]);
  for (const c of concurrencies) {
    const cpu = r.process[c]?.cpuUsPerJob;
    if (!ok(r.process[c]) || !cpu) continue;
    out.push({ figure: `CPU c=${c} process`, unit: "µs/job", value: cpu.process });
    if (r.store !== "memory") out.push({ figure: `CPU c=${c} store`, unit: "µs/job", value: cpu.store });
    if (cpu.gateways !== undefined) out.push({ figure: `CPU c=${c} gateways`, unit: "µs/job", value: cpu.gateways });
  }
  lat("latency", r.latency);
  lat("latency (separate producer)", r.latencyRemote);
  if (ok(r.requests)) {
    out.push({ figure: "requests/job", unit: "per job", value: r.requests.processPerJob, ...(r.requests.complete ? {} : { partial: true }) });
    if (r.requests.httpProcessPerJob !== undefined) out.push({ figure: "HTTP requests/job", unit: "per job", value: r.requests.httpProcessPerJob });
  }
  if (ok(r.idle)) out.push({ figure: "idle requests/min", unit: "per min", value: r.idle.requestsPerMinute });
  return out;
}

export interface FigureSummary extends Spread {
  contender: string;
  label: string;
  figure: string;
  unit: Unit;
  /** Some round was partial (`*`). */
  partial: boolean;
  rounds: number;
}

export interface RatioSummary extends Spread {
  a: string;
  b: string;
  figure: string;
  unit: Unit;
  perRound: number[];
}

export interface RoundsSummary {
  rounds: number;
  figures: FigureSummary[];
  ratios: RatioSummary[];
}

/** One contender's values of one figure, one per round (NaN where a round did not measure it). */
function series(rounds: ContenderResult[][], name: string): Map<string, { unit: Unit; values: number[]; partial: boolean }> {
  const out = new Map<string, { unit: Unit; values: number[]; partial: boolean }>();
  rounds.forEach((round, i) => {
    const r = round.find((x) => x.name === name);
    for (const f of r ? figuresOf(r) : []) {
      let s = out.get(f.figure);
      if (!s) out.set(f.figure, (s = { unit: f.unit, values: Array<number>(rounds.length).fill(NaN), partial: false }));
      s.values[i] = f.value;
      if (f.partial) s.partial = true;
    }
  });
  return out;
}

/**
 * Medians and spreads of every figure of every contender (`names`, in that
 * order), and of the per-round ratios of every pair in `ratios` over every
 * figure both measured.
 */
export function summarizeRounds(rounds: ContenderResult[][], names: readonly string[], ratios: ReadonlyArray<readonly [string, string]>): RoundsSummary {
  const figures: FigureSummary[] = [];
  const label = (name: string) => rounds.flat().find((r) => r.name === name)?.label ?? name;
  for (const name of names) {
    for (const [figure, s] of series(rounds, name)) {
      const sp = spread(s.values);
      if (sp) figures.push({ contender: name, label: label(name), figure, unit: s.unit, partial: s.partial, rounds: rounds.length, ...sp });
    }
  }
  const out: RatioSummary[] = [];
  for (const [a, b] of ratios) {
    const sa = series(rounds, a);
    const sb = series(rounds, b);
    for (const [figure, x] of sa) {
      const y = sb.get(figure);
      const r = y && ratioSpread(x.values, y.values);
      if (r) out.push({ a, b, figure, unit: x.unit, ...r });
    }
  }
  return { rounds: rounds.length, figures, ratios: out };
}

/**
 * One result whose numbers are the medians over the rounds (for the usual
 * table, the targets and the chart). A throughput phase is complete only if
 * it was complete in every round; a failure in every round stays a failure;
 * the exactly-once check kept is the worst round's.
 */
export function medianResult(rs: ContenderResult[]): ContenderResult {
  if (rs.length === 1) return rs[0]!;
  const first = rs[0]!;
  const med = (get: (r: ContenderResult) => number | undefined) => median(rs.map((r) => get(r) ?? NaN));
  const worst = <T extends { exactlyOnce?: { duplicates: number; missing: number } }>(xs: Array<T | undefined>) =>
    xs
      .filter((x): x is T => x !== undefined)
      .sort((x, y) => (y.exactlyOnce?.duplicates ?? 0) - (x.exactlyOnce?.duplicates ?? 0) || (y.exactlyOnce?.missing ?? 0) - (x.exactlyOnce?.missing ?? 0))[0];
  const throughput = (get: (r: ContenderResult) => ThroughputResult | undefined): ThroughputResult | undefined => {
    const all = rs.map(get);
    const good = all.filter(ok);
    if (good.length === 0) return all.find((x) => x !== undefined);
    const w = worst(good)!;
    return {
      jobs: median(good.map((t) => t.jobs)),
      ms: median(good.map((t) => t.ms)),
      perSecond: Math.round(median(good.map((t) => t.perSecond))),
      complete: good.every((t) => t.complete),
      ...(w.exactlyOnce ? { exactlyOnce: w.exactlyOnce } : {}),
      ...(good.every((t) => t.cpuUsPerJob)
        ? {
            cpuUsPerJob: {
              process: median(good.map((t) => t.cpuUsPerJob!.process)),
              store: median(good.map((t) => t.cpuUsPerJob!.store)),
              ...(good.every((t) => t.cpuUsPerJob!.gateways !== undefined) ? { gateways: median(good.map((t) => t.cpuUsPerJob!.gateways!)) } : {}),
            },
          }
        : {}),
    };
  };
  const latency = (get: (r: ContenderResult) => LatencyResult | undefined): LatencyResult | undefined => {
    const all = rs.map(get);
    const good = all.filter(ok);
    if (good.length === 0) return all.find((x) => x !== undefined);
    return {
      jobs: good[0]!.jobs,
      p50: median(good.map((l) => l.p50)),
      p95: median(good.map((l) => l.p95)),
      p99: median(good.map((l) => l.p99)),
      max: median(good.map((l) => l.max)),
      mean: median(good.map((l) => l.mean)),
      exactlyOnce: worst(good)!.exactlyOnce,
    };
  };
  const out: ContenderResult = {
    name: first.name,
    label: first.label,
    store: first.store,
    settings: first.settings,
    process: {},
    wallMs: Math.round(med((r) => r.wallMs)),
  };
  const set = <K extends keyof ContenderResult>(key: K, v: ContenderResult[K] | undefined) => {
    if (v !== undefined) out[key] = v;
  };
  set(
    "enqueueSingle",
    throughput((r) => r.enqueueSingle),
  );
  set(
    "enqueueBulk",
    throughput((r) => r.enqueueBulk),
  );
  for (const c of new Set(rs.flatMap((r) => Object.keys(r.process)))) {
    const t = throughput((r) => r.process[c]);
    if (t) out.process[c] = t;
  }
  set(
    "latency",
    latency((r) => r.latency),
  );
  set(
    "latencyRemote",
    latency((r) => r.latencyRemote),
  );
  const requests = rs.map((r) => r.requests).filter(ok);
  if (requests.length > 0) {
    const q = requests[0]!;
    out.requests = {
      ...q,
      jobs: median(requests.map((x) => x.jobs)),
      complete: requests.every((x) => x.complete),
      enqueueBulkPerJob: median(requests.map((x) => x.enqueueBulkPerJob)),
      processPerJob: median(requests.map((x) => x.processPerJob)),
      ...(q.httpProcessPerJob !== undefined ? { httpProcessPerJob: median(requests.map((x) => x.httpProcessPerJob ?? NaN)) } : {}),
      ...(q.httpEnqueueBulkPerJob !== undefined ? { httpEnqueueBulkPerJob: median(requests.map((x) => x.httpEnqueueBulkPerJob ?? NaN)) } : {}),
    };
  } else set("requests", rs.find((r) => r.requests)?.requests);
  const idle = rs.map((r) => r.idle).filter(ok);
  if (idle.length > 0) {
    const i = idle[0]!;
    out.idle = {
      ...i,
      requestsPerMinute: median(idle.map((x) => x.requestsPerMinute)),
      ...(i.httpRequestsPerMinute !== undefined ? { httpRequestsPerMinute: median(idle.map((x) => x.httpRequestsPerMinute ?? NaN)) } : {}),
    };
  } else set("idle", rs.find((r) => r.idle)?.idle);
  const errors = [...new Set(rs.map((r) => r.error).filter((e) => e !== undefined))];
  if (errors.length > 0) out.error = `${rs.filter((r) => r.error).length} of ${rs.length} rounds: ${errors.join("; ")}`;
  return out;
}

// ------------------------------------------------------------ formatting

function fmtValue(v: number, unit: Unit): string {
  if (!Number.isFinite(v)) return "–";
  if (unit === "jobs/s") return Math.round(v).toLocaleString("en-US");
  if (unit === "per job") return v.toFixed(3);
  return v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** "89,980 (63,293–111,615)"; a single round: the value alone. */
export function fmtSpread(s: Spread, unit: Unit, partial = false): string {
  const star = partial ? "*" : "";
  if (s.n === 1) return `${fmtValue(s.median, unit)}${star}`;
  return `${fmtValue(s.median, unit)}${star} (${fmtValue(s.min, unit)}–${fmtValue(s.max, unit)})`;
}

/** "0.97× (0.91–1.02)". */
export function fmtRatio(s: Spread): string {
  const f = (v: number) => v.toFixed(2);
  return s.n === 1 ? `${f(s.median)}×` : `${f(s.median)}× (${f(s.min)}–${f(s.max)})`;
}

const UNIT_NOTE: Record<Unit, string> = {
  "jobs/s": "jobs/s",
  ms: "ms",
  "per job": "store requests per job",
  "per min": "store requests per minute",
  "µs/job": "CPU µs per job",
};

/** Contenders as rows, figures as columns: "median (min–max)" in each cell. */
export function roundsTable(summary: RoundsSummary): string {
  const cols: Array<{ figure: string; unit: Unit }> = [];
  for (const f of summary.figures) if (!cols.some((c) => c.figure === f.figure)) cols.push({ figure: f.figure, unit: f.unit });
  const names: Array<{ name: string; label: string }> = [];
  for (const f of summary.figures) if (!names.some((n) => n.name === f.contender)) names.push({ name: f.contender, label: f.label });
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rows = names.map(({ name, label }) => [
    label,
    ...cols.map((c) => {
      const f = summary.figures.find((x) => x.contender === name && x.figure === c.figure);
      return f ? fmtSpread(f, f.unit, f.partial) + (f.n < f.rounds ? ` [${f.n} of ${f.rounds}]` : "") : "–";
    }),
  ]);
  return [line(["contender", ...cols.map((c) => `${c.figure} (${UNIT_NOTE[c.unit]})`)]), line(["---", ...cols.map(() => "---:")]), ...rows.map(line)].join(
    "\n",
  );
}

/** One row per pair and figure: the median of the per-round ratios a / b, min–max, and the rounds it is over. */
export function ratiosTable(summary: RoundsSummary): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(["ratio", "figure", "median (min–max)", "rounds"]),
    line(["---", "---", "---:", "---:"]),
    ...summary.ratios.map((r) => line([`\`${r.a}\` / \`${r.b}\``, r.figure, fmtRatio(r), String(r.n)])),
  ].join("\n");
}

/**
 * The run's line in results/history.md: when, what, and the processing
 * medians (spreads with more than one round) and ratios. Small on purpose:
 * the raw rounds stay in latest.json and results/tmp/.
 */
export function historyLine(
  info: { date: string; runId: string; commit?: string; n: number; loadBefore: number[]; loadAfter: number[]; quick: boolean },
  summary: RoundsSummary,
): string {
  const head = [
    info.date.slice(0, 16).replace("T", " ") + " UTC",
    `run ${info.runId}`,
    ...(info.commit ? [`commit ${info.commit}`] : []),
    `N = ${info.n.toLocaleString("en-US")}`,
    `${summary.rounds} round${summary.rounds === 1 ? "" : "s"}`,
    `load ${info.loadBefore[0] ?? "?"} → ${info.loadAfter[0] ?? "?"}`,
    ...(info.quick ? ["QUICK"] : []),
  ].join(" · ");
  const byContender = new Map<string, string[]>();
  for (const f of summary.figures.filter((x) => x.figure.startsWith("process ") || x.figure === "requests/job")) {
    const list = byContender.get(f.contender) ?? [];
    list.push(`${f.figure.replace("process ", "")} ${fmtSpread(f, f.unit, f.partial)}`);
    byContender.set(f.contender, list);
  }
  const figures = [...byContender].map(([name, list]) => `${name} ${list.join(", ")}`).join("; ");
  const ratios = summary.ratios
    .filter((r) => r.figure.startsWith("process ") || r.figure === "requests/job")
    .map((r) => `${r.a}/${r.b} ${r.figure.replace("process ", "")} ${fmtRatio(r)}`)
    .join("; ");
  return `- ${head}: ${figures || "no processing figures"}${ratios ? `; ratios: ${ratios}` : ""}`;
}
