/**
 * `npm run bench -- --rounds=N`: the arithmetic (median, spread, per-round
 * ratios), the alternation order, the summary of rounds, and one quick run
 * of two rounds in process (qml-memory beside qml-memory-keylimit: both
 * run in every round, the default ratio is reported). No timing assertions.
 */
import { describe, expect, it } from "vitest";
import type { ContenderResult } from "../../bench/harness.js";
import {
  defaultRatios,
  fmtRatio,
  fmtSpread,
  historyLine,
  median,
  medianResult,
  parseRatio,
  ratioSpread,
  roundOrder,
  spread,
  summarizeRounds,
} from "../../bench/rounds.js";
import { main } from "../../bench/run.js";

function result(name: string, c20: number, extra: Partial<ContenderResult> = {}): ContenderResult {
  return {
    name,
    label: name,
    store: "memory",
    settings: "",
    process: { "20": { jobs: 100, ms: 1, perSecond: c20, complete: true } },
    wallMs: 10,
    ...extra,
  };
}

describe("rounds arithmetic", () => {
  it("median: the middle value, the mean of the middle two for an even count, NaN for none; non-finite values ignored", () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
    expect(median([NaN, 2, Infinity, 4])).toBe(3);
  });

  it("spread: median, min, max and how many rounds counted", () => {
    expect(spread([30, 10, 20, NaN, 50, 40])).toEqual({ median: 30, min: 10, max: 50, n: 5 });
    expect(spread([NaN])).toBeUndefined();
  });

  it("ratios are taken per round, then their median: not the ratio of the medians", () => {
    // A is twice B in rounds 1 and 3, equal in round 2; the medians (200 vs 100) would say 2×.
    const r = ratioSpread([200, 100, 400, 10], [100, 100, 200, NaN])!;
    expect(r.perRound).toEqual([2, 1, 2]);
    expect(r).toMatchObject({ median: 2, min: 1, max: 2, n: 3 });
    expect(ratioSpread([1, 2], [0, 4])!.perRound).toEqual([0.5]);
    expect(ratioSpread([1], [NaN])).toBeUndefined();
    expect(median([100, 300, 50].map((a, i) => a / [100, 100, 100][i]!))).toBe(1);
  });

  it("formats median (min–max), the partial marker, and ratios", () => {
    expect(fmtSpread({ median: 89_980, min: 63_293.4, max: 111_615, n: 5 }, "jobs/s")).toBe("89,980 (63,293–111,615)");
    expect(fmtSpread({ median: 258, min: 258, max: 258, n: 1 }, "jobs/s", true)).toBe("258*");
    expect(fmtSpread({ median: 0.1, min: 0.098, max: 0.1014, n: 3 }, "per job")).toBe("0.100 (0.098–0.101)");
    expect(fmtRatio({ median: 0.966, min: 0.9, max: 1.024, n: 5 })).toBe("0.97× (0.90–1.02)");
  });
});

describe("alternation and pairs", () => {
  it("a pair keeps its order every round: A, B, A, B…", () => {
    const seq = [0, 1, 2].flatMap((r) => roundOrder(["a", "b"], r));
    expect(seq).toEqual(["a", "b", "a", "b", "a", "b"]);
    expect(roundOrder(["a"], 3)).toEqual(["a"]);
  });

  it("more than two rotate by one each round, so each runs first in turn", () => {
    const names = ["a", "b", "c"];
    expect([0, 1, 2, 3].map((r) => roundOrder(names, r).join(""))).toEqual(["abc", "bca", "cab", "abc"]);
    expect(names).toEqual(["a", "b", "c"]);
  });

  it("the default ratios pair each -keylimit contender with its plain one when both run", () => {
    expect(defaultRatios(["qml-memory", "qml-memory-keylimit", "qml-redis-keylimit", "qml-pg", "qml-pg-keylimit"])).toEqual([
      ["qml-memory-keylimit", "qml-memory"],
      ["qml-pg-keylimit", "qml-pg"],
    ]);
    expect(parseRatio("qml-redis/bullmq")).toEqual(["qml-redis", "bullmq"]);
    expect(() => parseRatio("qml-redis")).toThrow(/a\/b/);
  });
});

describe("summary of rounds", () => {
  const rounds: ContenderResult[][] = [
    [result("a", 100), result("b", 50)],
    [result("b", 90), result("a", 90)],
    [result("a", 300), result("b", 100, { process: { "20": { jobs: 0, ms: 0, perSecond: NaN, complete: false, error: "boom" } } })],
  ];

  it("gives each figure's median and spread by contender, and per-round ratios matched by name", () => {
    const s = summarizeRounds(rounds, ["a", "b"], [["a", "b"]]);
    expect(s.rounds).toBe(3);
    expect(s.figures).toEqual([
      { contender: "a", label: "a", figure: "process c=20", unit: "jobs/s", partial: false, rounds: 3, median: 100, min: 90, max: 300, n: 3 },
      { contender: "b", label: "b", figure: "process c=20", unit: "jobs/s", partial: false, rounds: 3, median: 70, min: 50, max: 90, n: 2 },
    ]);
    // Round 3's b failed: ratios over rounds 1 and 2 only (100/50, 90/90).
    expect(s.ratios).toEqual([{ a: "a", b: "b", figure: "process c=20", unit: "jobs/s", median: 1.5, min: 1, max: 2, n: 2, perRound: [2, 1] }]);
    const line = historyLine(
      { date: "2026-12-05T09:30:00.000Z", runId: "abc", commit: "1234567", n: 20_000, loadBefore: [1.2], loadAfter: [1.5], quick: false },
      s,
    );
    expect(line).toBe(
      "- 2026-12-05 09:30 UTC · run abc · commit 1234567 · N = 20,000 · 3 rounds · load 1.2 → 1.5: a c=20 100 (90–300); b c=20 70 (50–90); ratios: a/b c=20 1.50× (1.00–2.00)",
    );
  });

  it("CPU per job: a figure per process phase (process, and the store's server for a store apart), medians in the median result", () => {
    const cpu = (name: string, store: "memory" | "redis", process: number, storeUs: number): ContenderResult =>
      result(name, 100, { store, process: { "20": { jobs: 100, ms: 1, perSecond: 100, complete: true, cpuUsPerJob: { process, store: storeUs } } } });
    const rs = [cpu("r", "redis", 30, 12), cpu("r", "redis", 20, 10), cpu("r", "redis", 90, 11)];
    const s = summarizeRounds(
      rs.map((r) => [r]),
      ["r"],
      [],
    );
    expect(s.figures.filter((f) => f.unit === "µs/job")).toEqual([
      { contender: "r", label: "r", figure: "CPU c=20 process", unit: "µs/job", partial: false, rounds: 3, median: 30, min: 20, max: 90, n: 3 },
      { contender: "r", label: "r", figure: "CPU c=20 store", unit: "µs/job", partial: false, rounds: 3, median: 11, min: 10, max: 12, n: 3 },
    ]);
    expect(medianResult(rs).process["20"]!.cpuUsPerJob).toEqual({ process: 30, store: 11 });
    // Memory runs in the process: no store figure.
    expect(summarizeRounds([[cpu("m", "memory", 5, 0)]], ["m"], []).figures.map((f) => f.figure)).toEqual(["process c=20", "CPU c=20 process"]);
  });

  it("a median result keeps the medians and the worst exactly-once check", () => {
    const m = medianResult(rounds.map((r) => r.find((x) => x.name === "b")!));
    expect(m.process["20"]).toMatchObject({ perSecond: 70, complete: true });
    expect(medianResult([rounds[0]![0]!])).toBe(rounds[0]![0]);
  });
});

describe("bench --rounds", () => {
  it("runs every contender in every round and reports medians and the default ratio", async () => {
    const lines: string[] = [];
    const report = await main(
      ["--quick", "--only=qml-memory,qml-memory-keylimit", "--phases=process", "--concurrency=20", "--rounds=2", "--in-process", "--no-write"],
      (l) => lines.push(l),
    );
    expect(report.info.order).toEqual([
      ["qml-memory", "qml-memory-keylimit"],
      ["qml-memory", "qml-memory-keylimit"],
    ]);
    expect(report.rounds!.map((r) => r.map((x) => x.name))).toEqual(report.info.order);
    for (const r of report.rounds!.flat()) expect(r.process["20"]?.exactlyOnce?.ok).toBe(true);
    // Each round's process phase measured its CPU per job (memory: in the process, no store figure).
    for (const r of report.rounds!.flat()) expect(r.process["20"]?.cpuUsPerJob).toMatchObject({ process: expect.any(Number), store: 0 });
    expect(report.rounds!.flat().some((r) => r.process["20"]!.cpuUsPerJob!.process > 0)).toBe(true);
    expect(report.results.map((r) => r.name)).toEqual(["qml-memory", "qml-memory-keylimit"]);
    const ratio = report.summary!.ratios.find((r) => r.figure === "process c=20")!;
    expect(ratio).toMatchObject({ a: "qml-memory-keylimit", b: "qml-memory", n: 2 });
    expect(ratio.perRound).toHaveLength(2);
    const out = lines.join("\n");
    expect(out).toContain("Medians of 2 rounds");
    expect(out).toContain("| `qml-memory-keylimit` / `qml-memory` | process c=20 |");
  });

  it("refuses a ratio between contenders that are not selected", async () => {
    await expect(main(["--only=qml-memory", "--ratio=qml-memory/bullmq", "--no-write"], () => {})).rejects.toThrow(/not selected/);
    await expect(main(["--rounds=0"], () => {})).rejects.toThrow(/positive integer/);
  });
});
