/**
 * What a run produces: a markdown table (stdout, README), the targets with
 * met / missed and the measured figure, and an SVG chart written by hand
 * (no dependency).
 */
import type { ContenderResult, LatencyResult, ThroughputResult } from "./harness.js";
import { ratiosTable, roundsTable, type RoundsSummary } from "./rounds.js";

export interface RunInfo {
  runId: string;
  date: string;
  quick: boolean;
  n: number;
  node: string;
  platform: string;
  cpus: number;
  cpuModel: string;
  /** 1-minute load average before and after the run: other work on the machine skews numbers. */
  loadBefore: number[];
  loadAfter: number[];
  commit: string | undefined;
  /** How qml's code ran: compiled JavaScript (the default) or TypeScript through tsx. */
  qmlCode?: string;
  /** `--rounds`: how many times every contender ran, and the order of each round. */
  rounds?: number;
  order?: string[][];
  options: Record<string, unknown>;
}

export interface BenchReport {
  info: RunInfo;
  /** One per contender; with more than one round, the medians over the rounds (`medianResult`). */
  results: ContenderResult[];
  targets: TargetResult[];
  /** Every round's raw results, in the order they ran (more than one round only). */
  rounds?: ContenderResult[][];
  /** Medians, spreads and ratios over the rounds (more than one round only). */
  summary?: RoundsSummary;
}

export interface TargetResult {
  target: string;
  goal: string;
  measured: string;
  /** null: not measured in this run (contender not selected or failed). */
  met: boolean | null;
}

// ---------------------------------------------------------------- numbers

export function fmtRate(r: ThroughputResult | undefined): string {
  if (!r) return "–";
  if (r.error) return "error";
  if (!Number.isFinite(r.perSecond)) return "–";
  const v = fmtInt(r.perSecond);
  return r.complete ? v : `${v}*`;
}

function fmtInt(v: number): string {
  return Math.round(v).toLocaleString("en-US");
}

function fmtMs(v: number): string {
  if (!Number.isFinite(v)) return "–";
  return v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function fmtPerJob(v: number): string {
  return !Number.isFinite(v) ? "–" : v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2);
}

function fmtLatency(l: LatencyResult | undefined): string {
  if (!l) return "–";
  if (l.error) return "error";
  return `${fmtMs(l.p50)} / ${fmtMs(l.p95)} / ${fmtMs(l.p99)}`;
}

function exactlyOnce(r: ContenderResult): string {
  const checks = [...Object.values(r.process).map((p) => p.exactlyOnce), r.latency?.exactlyOnce, r.latencyRemote?.exactlyOnce].filter((x) => x !== undefined);
  const errors = [...Object.values(r.process), r.latency, r.latencyRemote].filter((x) => x?.error).length;
  if (checks.length === 0) return errors > 0 ? "error" : "–";
  const bad = checks.filter((c) => c.duplicates > 0 || (c.missing > 0 && c.ran >= c.expected));
  if (bad.length > 0) return "**no**";
  const partial = Object.values(r.process).some((p) => !p.complete);
  return errors > 0 ? "yes (some phases failed)" : partial ? "yes (* partial runs: no duplicates)" : "yes";
}

// ------------------------------------------------------------------ table

export function markdownTable(report: BenchReport): string {
  const conc = [...new Set(report.results.flatMap((r) => Object.keys(r.process)))].sort((a, b) => Number(a) - Number(b));
  const head = [
    "contender",
    "enqueue (single)",
    "enqueue (bulk)",
    ...conc.map((c) => `process c=${c}`),
    "latency p50 / p95 / p99 ms",
    "requests/job (c=20)",
    "CPU µs/job (c=20): process + store",
    "idle requests/min",
    "exactly once",
  ];
  const rows = report.results.map((r) => {
    const latency = r.latencyRemote ? `${fmtLatency(r.latency)}<br>separate producer: ${fmtLatency(r.latencyRemote)}` : fmtLatency(r.latency);
    const idle = r.idle
      ? r.idle.error
        ? "error"
        : `${fmtMs(r.idle.requestsPerMinute)} ${r.idle.unit.split(" ").pop()}${r.idle.httpRequestsPerMinute !== undefined ? ` (${fmtMs(r.idle.httpRequestsPerMinute)} HTTP)` : ""}`
      : "–";
    const q = r.requests;
    const requests = !q
      ? "–"
      : q.error
        ? "error"
        : `${fmtPerJob(q.processPerJob)}${q.httpProcessPerJob !== undefined ? ` (${fmtPerJob(q.httpProcessPerJob)} HTTP)` : ""}${q.complete ? "" : "*"}`;
    const cpu = r.process["20"]?.cpuUsPerJob;
    const cpuCell = !cpu ? "–" : `${cpu.process} + ${cpu.store}${cpu.gateways !== undefined ? ` (+ ${cpu.gateways} gateways)` : ""}`;
    return [
      r.error && Object.keys(r.process).length === 0 && !r.enqueueSingle ? `${r.label} (error)` : r.label,
      fmtRate(r.enqueueSingle),
      fmtRate(r.enqueueBulk),
      ...conc.map((c) => fmtRate(r.process[c])),
      latency,
      requests,
      cpuCell,
      idle,
      exactlyOnce(r),
    ];
  });
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const align = ["---", ...head.slice(1).map(() => "---:")];
  align[align.length - 1] = ":---:";
  return [line(head), line(align), ...rows.map(line)].join("\n");
}

export function targetsTable(report: BenchReport): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(["target", "goal", "measured", "verdict"]),
    line(["---", "---", "---", ":---:"]),
    ...report.targets.map((t) => line([t.target, t.goal, t.measured, t.met === null ? "not measured" : t.met ? "met" : "**missed**"])),
  ].join("\n");
}

export function settingsList(report: BenchReport): string {
  return report.results.map((r) => `- **${r.label}** (\`${r.name}\`): ${r.settings}`).join("\n");
}

/** The whole report as markdown: what `results/latest.md` holds and the README quotes. */
export function markdownReport(report: BenchReport): string {
  const i = report.info;
  return [
    `Run \`${i.runId}\` on ${i.date.slice(0, 10)}: N = ${fmtInt(i.n)} jobs per phase, Node ${i.node}, ${i.cpus} CPUs (${i.cpuModel}), load average ${i.loadBefore[0]} before and ${i.loadAfter[0]} after${i.commit ? `, commit ${i.commit}` : ""}; qml ${i.qmlCode ?? "compiled"}.${i.quick ? " QUICK run: not representative." : ""}`,
    "",
    ...roundsSection(report),
    markdownTable(report),
    "",
    "Throughput in jobs/s. `*` = partial: the phase reached its time limit before all N jobs ran; the rate is over the jobs that ran. Requests/job: store requests (Redis commands, SQL statements; HTTP requests in brackets) per job processed at concurrency 20. CPU µs/job: CPU time of the contender's process and of the store's server (redis-server, PostgreSQL; memory and SQLite run in the process) per job, from the worker pool's start to the last job at concurrency 20 (the local gateways apart, in brackets). Idle: store requests per minute of one idle worker pool (concurrency 20) and producer.",
    "",
    targetsTable(report),
    "",
    "Settings (everything else at its defaults):",
    "",
    settingsList(report),
    "",
  ].join("\n");
}

/** With more than one round: the medians with their spreads and the ratios, before the table of medians. */
export function roundsSection(report: BenchReport): string[] {
  const s = report.summary;
  if (!s || s.rounds < 2) return [];
  return [
    `Medians of ${s.rounds} rounds (min–max); the contenders alternated (order per round in latest.json, \`info.order\`).`,
    "",
    roundsTable(s),
    "",
    ...(s.ratios.length > 0 ? ["Ratios: the median of the per-round ratios (min–max).", "", ratiosTable(s), ""] : []),
    "The table below and the targets are on the medians.",
    "",
  ];
}

// ---------------------------------------------------------------- targets

function at(r: ContenderResult | undefined, c: string): number | undefined {
  const p = r?.process[c];
  return p && !p.error && Number.isFinite(p.perSecond) ? p.perSecond : undefined;
}

export function evaluateTargets(results: ContenderResult[]): TargetResult[] {
  const by = (name: string) => results.find((r) => r.name === name);
  const out: TargetResult[] = [];

  // Each target is checked for qml's defaults and, when they ran, for the
  // prefetch variant and the prefetch variant that keeps no finished jobs.
  const variants = (name: string) => [name, `${name}-prefetch`, `${name}-prefetch-keep0`].filter((n, i) => i === 0 || by(n));
  const tag = (name: string) => (name.endsWith("-prefetch") ? " (prefetch)" : name.endsWith("-prefetch-keep0") ? " (prefetch, keep 0)" : "");

  const ratio = (target: string, base: string, peer: string, factor: number) => {
    for (const ours of variants(base)) {
      const a = at(by(ours), "20");
      const b = at(by(peer), "20");
      out.push({
        target: target + tag(ours),
        goal: `≥ ${factor}× ${peer} at concurrency 20`,
        measured: a !== undefined && b !== undefined ? `${fmtInt(a)} vs ${fmtInt(b)} jobs/s = ${(a / b).toFixed(2)}×` : "–",
        met: a !== undefined && b !== undefined ? a >= factor * b : null,
      });
    }
  };
  // The targets of issue 21: medians at c=20, qml at its defaults unless a variant says otherwise.
  ratio("Redis over TCP: processing", "qml-redis", "bullmq", 2.5);
  ratio("Postgres over pg: processing", "qml-pg", "graphile-worker-fast", 1.5);

  const floor = (target: string, base: string, goal: number) => {
    for (const name of variants(base)) {
      const v = at(by(name), "20");
      out.push({
        target: target + tag(name),
        goal: `≥ ${fmtInt(goal)} jobs/s processed at concurrency 20`,
        measured: v !== undefined ? `${fmtInt(v)} jobs/s` : "–",
        met: v !== undefined ? v >= goal : null,
      });
    }
  };
  floor("Memory: processing", "qml-memory", 200_000);
  floor("Redis over Upstash REST: processing", "qml-redis-upstash", 20_000);
  floor("Postgres over Neon WebSocket: processing", "qml-neon-ws", 20_000);
  floor("Postgres over Neon HTTP: processing", "qml-neon-http", 15_000);

  const p50 = (r: ContenderResult | undefined) => (r?.latency && !r.latency.error ? r.latency.p50 : undefined);
  const latency = (target: string, ours: string, peers: string[]) => {
    const a = p50(by(ours));
    const bs = peers.map((p) => ({ p, v: p50(by(p)) })).filter((x): x is { p: string; v: number } => x.v !== undefined);
    const b = bs.sort((x, y) => x.v - y.v)[0];
    out.push({
      target,
      goal: `p50 below every peer's (${peers.join(", ")})`,
      measured: a !== undefined && b ? `${fmtMs(a)} ms vs ${fmtMs(b.v)} ms (${b.p}, the lowest)` : "–",
      met: a !== undefined && b ? a < b.v : null,
    });
  };
  latency("Redis over TCP: latency", "qml-redis", ["bullmq"]);
  latency("Postgres over pg: latency", "qml-pg", ["graphile-worker", "graphile-worker-fast", "pg-boss"]);

  for (const r of results.filter((x) => x.name.startsWith("qml-") && !x.name.includes("-prefetch"))) {
    const idle = r.idle;
    const ok = idle && !idle.error && idle.budgetPerMinute !== undefined;
    out.push({
      target: `${r.label}: idle`,
      goal: ok ? `≤ 1 store request per polling interval (${fmtMs(idle.budgetPerMinute!)}/min)` : "≤ 1 store request per polling interval",
      measured: ok
        ? `${fmtMs(idle.requestsPerMinute)} ${idle.unit}/min${idle.httpRequestsPerMinute !== undefined ? `, ${fmtMs(idle.httpRequestsPerMinute)} HTTP requests/min` : ""}`
        : "–",
      met: ok ? idle.requestsPerMinute <= idle.budgetPerMinute! : null,
    });
  }
  return out;
}

// ------------------------------------------------------------------ chart

const COLORS = ["#9ecae1", "#4292c6", "#08306b"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Grouped horizontal bars on a log scale: processing throughput per concurrency, then latency p50/p99. */
export function chartSvg(report: BenchReport): string {
  const results = report.results;
  const conc = [...new Set(results.flatMap((r) => Object.keys(r.process)))].sort((a, b) => Number(a) - Number(b));
  const W = 960;
  const labelW = 250;
  const plotW = W - labelW - 90;
  const barH = 11;
  const groupGap = 12;
  const parts: string[] = [];
  let y = 0;

  const logAxis = (min: number, max: number) => {
    const lo = Math.floor(Math.log10(Math.max(min, 1e-3)));
    const hi = Math.ceil(Math.log10(Math.max(max, 10)));
    return { lo, hi, x: (v: number) => labelW + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotW };
  };

  const panel = (
    title: string,
    rows: Array<{ label: string; qml: boolean; bars: Array<{ v: number | undefined; color: string; text: string }> }>,
    legend: Array<[string, string]>,
    unit: (v: number) => string,
  ) => {
    const values = rows.flatMap((r) => r.bars.map((b) => b.v)).filter((v): v is number => v !== undefined && Number.isFinite(v) && v > 0);
    if (values.length === 0) return;
    const axis = logAxis(Math.min(...values), Math.max(...values));
    parts.push(`<text x="${labelW}" y="${y + 18}" class="title">${esc(title)}</text>`);
    let lx = labelW;
    for (const [name, color] of legend) {
      parts.push(`<rect x="${lx}" y="${y + 28}" width="12" height="10" fill="${color}"/><text x="${lx + 16}" y="${y + 37}" class="small">${esc(name)}</text>`);
      lx += 16 + name.length * 6.5 + 18;
    }
    y += 50;
    const top = y;
    const gridAt = parts.length;
    for (const row of rows) {
      const h = row.bars.length * barH;
      parts.push(`<text x="${labelW - 8}" y="${y + h / 2 + 4}" text-anchor="end" class="${row.qml ? "qml" : "peer"}">${esc(row.label)}</text>`);
      for (const b of row.bars) {
        if (b.v !== undefined && Number.isFinite(b.v) && b.v > 0) {
          const x2 = axis.x(b.v);
          parts.push(`<rect x="${labelW}" y="${y}" width="${Math.max(1, x2 - labelW).toFixed(1)}" height="${barH - 2}" fill="${b.color}"/>`);
          parts.push(`<text x="${(x2 + 4).toFixed(1)}" y="${y + barH - 3}" class="value">${esc(b.text)}</text>`);
        } else {
          parts.push(`<text x="${labelW + 4}" y="${y + barH - 3}" class="value">${esc(b.text)}</text>`);
        }
        y += barH;
      }
      y += groupGap;
    }
    const grid: string[] = [];
    for (let e = axis.lo; e <= axis.hi; e++) {
      const x = axis.x(10 ** e).toFixed(1);
      grid.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${y - groupGap + 4}" class="grid"/>`);
      parts.push(`<text x="${x}" y="${y + 6}" text-anchor="middle" class="small">${esc(unit(10 ** e))}</text>`);
    }
    // Grid lines go under the bars.
    parts.splice(gridAt, 0, ...grid);
    y += 34;
  };

  const kilo = (v: number) => (v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v));
  panel(
    `Processing throughput, jobs/s (log scale) · no-op handler, N = ${fmtInt(report.info.n)} · * = partial run`,
    results.map((r) => ({
      label: r.label,
      qml: r.name.startsWith("qml-"),
      bars: conc.map((c, i) => {
        const p = r.process[c];
        const v = p && !p.error ? p.perSecond : undefined;
        return { v, color: COLORS[i % COLORS.length]!, text: p?.error ? "error" : p ? fmtRate(p) : "–" };
      }),
    })),
    conc.map((c, i) => [`concurrency ${c}`, COLORS[i % COLORS.length]!]),
    kilo,
  );
  panel(
    "Latency, enqueue → handler start, ms (log scale) · one job every 10 ms",
    results
      .filter((r) => r.latency)
      .flatMap((r) => {
        const rows = [
          {
            label: r.label,
            qml: r.name.startsWith("qml-"),
            bars: [
              { v: r.latency?.p50, color: COLORS[1]!, text: r.latency?.error ? "error" : `p50 ${fmtMs(r.latency!.p50)}` },
              { v: r.latency?.p99, color: COLORS[2]!, text: r.latency?.error ? "" : `p99 ${fmtMs(r.latency!.p99)}` },
            ],
          },
        ];
        if (r.latencyRemote) {
          rows.push({
            label: "↳ separate producer",
            qml: true,
            bars: [
              { v: r.latencyRemote.p50, color: COLORS[1]!, text: r.latencyRemote.error ? "error" : `p50 ${fmtMs(r.latencyRemote.p50)}` },
              { v: r.latencyRemote.p99, color: COLORS[2]!, text: r.latencyRemote.error ? "" : `p99 ${fmtMs(r.latencyRemote.p99)}` },
            ],
          });
        }
        return rows;
      }),
    [
      ["p50", COLORS[1]!],
      ["p99", COLORS[2]!],
    ],
    (v) => (v >= 1000 ? `${v / 1000}s` : v >= 1 ? `${v}` : String(v)),
  );
  const info = report.info;
  parts.push(
    `<text x="${labelW}" y="${y}" class="small">${esc(`${info.date.slice(0, 10)} · Node ${info.node} · ${info.cpus} CPUs (${info.cpuModel}) · load ${info.loadBefore[0]?.toFixed(2)} → ${info.loadAfter[0]?.toFixed(2)} · run ${info.runId}${info.quick ? " · QUICK" : ""}`)}</text>`,
  );
  y += 12;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    `<style>.title{font-size:14px;font-weight:600;fill:#111}.small{font-size:11px;fill:#555}.value{font-size:10px;fill:#222}.qml{font-size:12px;font-weight:700;fill:#08306b}.peer{font-size:12px;fill:#333}.grid{stroke:#ddd;stroke-width:1}</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    `</svg>`,
    "",
  ].join("\n");
}
