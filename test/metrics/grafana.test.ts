/**
 * deploy/grafana/qml.json, the example dashboard: valid JSON, every panel
 * queries something, every metric name its expressions use is one GET
 * /metrics exposes, and every family exposed is graphed somewhere.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { JobMetrics } from "../../src/index.js";
import { exposedNames, parseExposition } from "./parse.js";

interface Target {
  expr?: string;
}
interface Panel {
  title?: string;
  targets?: Target[];
}

const dashboard = JSON.parse(readFileSync(new URL("../../deploy/grafana/qml.json", import.meta.url), "utf8")) as {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ definition?: string; query?: unknown }> };
};

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
function expressions(): string[] {
  const out: string[] = [];
  for (const p of dashboard.panels) for (const t of p.targets ?? []) if (t.expr !== undefined) out.push(t.expr);
  for (const v of dashboard.templating.list) if (v.definition !== undefined) out.push(v.definition);
  return out;
}

describe("the Grafana dashboard", () => {
  const exposed = exposedNames(parseExposition(new JobMetrics().render()));

  it("is a dashboard whose every panel queries something", () => {
    expect(dashboard.title).toBe("qml");
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.panels.length).toBeGreaterThan(5);
    for (const p of dashboard.panels) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.expr, p.title).toMatch(/qml_/);
    }
  });

  it("uses only metric names the endpoint exposes", () => {
    const used = new Set(expressions().flatMap((e) => e.match(/\bqml_[a-z0-9_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(0);
    const unknown = [...used].filter((n) => !exposed.has(n));
    expect(unknown).toEqual([]);
  });

  it("graphs every family the endpoint exposes", () => {
    const text = expressions().join("\n");
    const families = parseExposition(new JobMetrics().render()).keys();
    const missing = [...families].filter((f) => !new RegExp(`\\b${f}(_bucket|_sum|_count)?\\b`).test(text));
    expect(missing).toEqual([]);
  });
});
