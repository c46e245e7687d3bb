/**
 * The collector and its text (src/core/metrics.ts), fed by hand through an
 * Emitter: every line parses, label values are escaped, histograms are
 * cumulative with +Inf equal to the count, and the number of label sets is
 * capped with the overflow counted under "other".
 */
import { describe, expect, it } from "vitest";
import { Emitter, type JobEventMap } from "../../src/core/events.js";
import { ALL_STATES, JobMetrics, ManualClock, OVERFLOW_LABEL, escapeLabelValue, type JobRecord, type Stats } from "../../src/index.js";
import { exposedNames, parseExposition, valueOf } from "./parse.js";

const T0 = Date.UTC(2030, 0, 1);

function rec(name: string, queue = "default", runAt = T0): JobRecord {
  return {
    id: crypto.randomUUID(),
    name,
    queue,
    args: [],
    priority: 0,
    state: "processing",
    attempts: 1,
    maxAttempts: 3,
    createdAt: runAt,
    updatedAt: runAt,
    runAt,
    leaseToken: 1,
    history: [],
  };
}

const ERR = { name: "Error", message: "boom" };

function fed(options: ConstructorParameters<typeof JobMetrics>[0] = {}) {
  const clock = new ManualClock(T0);
  const metrics = new JobMetrics({ clock, ...options });
  const events = new Emitter<JobEventMap>();
  const off = metrics.observe(events);
  return { clock, metrics, events, off };
}

function depths(queues: Record<string, Partial<Record<string, number>>>): Pick<Stats, "queues"> {
  return {
    queues: Object.entries(queues).map(([name, counts]) => ({
      name,
      counts: Object.fromEntries(ALL_STATES.map((s) => [s, counts[s] ?? 0])) as Stats["states"],
    })) as Stats["queues"],
  };
}

describe("JobMetrics", () => {
  it("an empty collector still declares every family, and every line parses", () => {
    const families = parseExposition(new JobMetrics().render());
    expect([...exposedNames(families)].sort()).toEqual(
      [
        "qml_jobs_enqueued_total",
        "qml_jobs_started_total",
        "qml_jobs_succeeded_total",
        "qml_jobs_failed_total",
        "qml_jobs_retried_total",
        "qml_jobs_cancelled_total",
        "qml_jobs_suspended_total",
        "qml_jobs_reclaimed_total",
        "qml_job_wait_seconds",
        "qml_job_wait_seconds_bucket",
        "qml_job_wait_seconds_sum",
        "qml_job_wait_seconds_count",
        "qml_job_run_seconds",
        "qml_job_run_seconds_bucket",
        "qml_job_run_seconds_sum",
        "qml_job_run_seconds_count",
        "qml_queue_jobs",
        "qml_store_up",
      ].sort(),
    );
    for (const f of families.values()) expect(f.help.length, f.name).toBeGreaterThan(10);
    expect(valueOf(families, "qml_store_up")).toBe(0);
    expect(valueOf(families, "qml_jobs_reclaimed_total")).toBe(0);
  });

  it("counts events by queue and name, with wait and run histograms", () => {
    const { clock, metrics, events } = fed();
    const a = rec("send_email", "mail", T0 - 1500);
    clock.set(T0);
    events.emit("job:start", { job: a, workerId: "w" });
    events.emit("job:retry", { job: a, workerId: "w", durationMs: 3, error: ERR, runAt: T0 + 10 });
    events.emit("job:start", { job: a, workerId: "w" });
    events.emit("job:succeeded", { job: a, workerId: "w", durationMs: 20_000, result: null });
    const b = rec("report");
    events.emit("job:start", { job: b, workerId: "w" });
    events.emit("job:failed", { job: b, workerId: "w", durationMs: 700, error: ERR });
    events.emit("job:cancelled", { id: b.id, workerId: "w", job: b });
    events.emit("job:suspended", { job: b, runAt: T0 + 60_000, reason: "sleeping" });
    events.emit("jobs:reclaimed", { count: 4 });
    events.emit("job:lost", { id: b.id, reason: "not counted" });

    const f = parseExposition(metrics.render(depths({ mail: { enqueued: 2, processing: 1 }, default: { failed: 5 } })));
    const mail = { queue: "mail", name: "send_email" };
    const def = { queue: "default", name: "report" };
    expect(valueOf(f, "qml_jobs_started_total", mail)).toBe(2);
    expect(valueOf(f, "qml_jobs_retried_total", mail)).toBe(1);
    expect(valueOf(f, "qml_jobs_succeeded_total", mail)).toBe(1);
    expect(valueOf(f, "qml_jobs_failed_total", def)).toBe(1);
    expect(valueOf(f, "qml_jobs_cancelled_total", def)).toBe(1);
    expect(valueOf(f, "qml_jobs_suspended_total", def)).toBe(1);
    expect(valueOf(f, "qml_jobs_reclaimed_total")).toBe(4);
    // Waits: 1.5 s twice (same runAt), 0 s once.
    expect(valueOf(f, "qml_job_wait_seconds_count", mail)).toBe(2);
    expect(valueOf(f, "qml_job_wait_seconds_sum", mail)).toBeCloseTo(3);
    expect(valueOf(f, "qml_job_wait_seconds_bucket", { ...mail, le: "1" })).toBe(0);
    expect(valueOf(f, "qml_job_wait_seconds_bucket", { ...mail, le: "2.5" })).toBe(2);
    expect(valueOf(f, "qml_job_wait_seconds_bucket", { ...def, le: "0.005" })).toBe(1);
    // Runs: 3 ms and 20 s for mail (cumulative from the 0.005 bucket on), 700 ms for default.
    expect(valueOf(f, "qml_job_run_seconds_bucket", { ...mail, le: "0.005" })).toBe(1);
    expect(valueOf(f, "qml_job_run_seconds_bucket", { ...mail, le: "10" })).toBe(1);
    expect(valueOf(f, "qml_job_run_seconds_bucket", { ...mail, le: "30" })).toBe(2);
    expect(valueOf(f, "qml_job_run_seconds_bucket", { ...mail, le: "+Inf" })).toBe(2);
    expect(valueOf(f, "qml_job_run_seconds_sum", mail)).toBeCloseTo(20.003);
    expect(valueOf(f, "qml_job_run_seconds_count", def)).toBe(1);
    // Depths: every state of every queue, zeros included.
    expect(valueOf(f, "qml_queue_jobs", { queue: "mail", state: "enqueued" })).toBe(2);
    expect(valueOf(f, "qml_queue_jobs", { queue: "mail", state: "processing" })).toBe(1);
    expect(valueOf(f, "qml_queue_jobs", { queue: "default", state: "failed" })).toBe(5);
    expect(f.get("qml_queue_jobs")!.samples).toHaveLength(2 * ALL_STATES.length);
    expect(valueOf(f, "qml_store_up")).toBe(1);
  });

  it("stops counting once unsubscribed", () => {
    const { metrics, events, off } = fed();
    events.emit("job:start", { job: rec("a"), workerId: "w" });
    off();
    events.emit("job:start", { job: rec("a"), workerId: "w" });
    expect(valueOf(parseExposition(metrics.render()), "qml_jobs_started_total", { queue: "default", name: "a" })).toBe(1);
  });

  it("escapes label values (backslash, double quote, line feed) and reads them back as they were", () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const { metrics, events } = fed();
    const odd = 'we"ird\\name\nwith } and , and =';
    events.emit("job:start", { job: rec(odd, "q.1"), workerId: "w" });
    const text = metrics.render(depths({ 'q"x': { enqueued: 1 } }));
    expect(text).toContain('name="we\\"ird\\\\name\\nwith } and , and ="');
    const f = parseExposition(text);
    expect(valueOf(f, "qml_jobs_started_total", { queue: "q.1", name: odd })).toBe(1);
    expect(valueOf(f, "qml_queue_jobs", { queue: 'q"x', state: "enqueued" })).toBe(1);
  });

  it('caps distinct (queue, name) pairs at 1000 by default: the rest count under queue and name "other"', () => {
    const { metrics, events } = fed();
    for (let i = 0; i < 1500; i++) {
      const job = rec(`job_${i}`, `q${i % 7}`);
      events.emit("job:start", { job, workerId: "w" });
      events.emit("job:succeeded", { job, workerId: "w", durationMs: 1, result: null });
    }
    // A pair seen before the cap keeps its own labels after it.
    events.emit("job:start", { job: rec("job_0", "q0"), workerId: "w" });
    expect(metrics.labelSetCount).toBe(1000);
    const f = parseExposition(metrics.render());
    const started = f.get("qml_jobs_started_total")!.samples;
    expect(started).toHaveLength(1001);
    const other = { queue: OVERFLOW_LABEL, name: OVERFLOW_LABEL };
    expect(valueOf(f, "qml_jobs_started_total", other)).toBe(500);
    expect(valueOf(f, "qml_jobs_succeeded_total", other)).toBe(500);
    expect(valueOf(f, "qml_job_run_seconds_count", other)).toBe(500);
    expect(valueOf(f, "qml_jobs_started_total", { queue: "q0", name: "job_0" })).toBe(2);
    expect(started.reduce((n, s) => n + s.value, 0)).toBe(1501);
    // Every histogram series has its buckets: (1000 + 1) label sets × (16 bounds + +Inf).
    expect(f.get("qml_job_run_seconds")!.samples.filter((s) => s.name === "qml_job_run_seconds_bucket")).toHaveLength(1001 * 17);
  });

  it('caps the queues of the depth gauges the same way, summing the rest under "other"', () => {
    const metrics = new JobMetrics({ maxLabelSets: 2 });
    const f = parseExposition(metrics.render(depths({ a: { enqueued: 1 }, b: { enqueued: 2 }, c: { enqueued: 3 }, d: { failed: 4 } })));
    expect(valueOf(f, "qml_queue_jobs", { queue: "a", state: "enqueued" })).toBe(1);
    expect(valueOf(f, "qml_queue_jobs", { queue: "b", state: "enqueued" })).toBe(2);
    expect(valueOf(f, "qml_queue_jobs", { queue: OVERFLOW_LABEL, state: "enqueued" })).toBe(3);
    expect(valueOf(f, "qml_queue_jobs", { queue: OVERFLOW_LABEL, state: "failed" })).toBe(4);
    expect(new Set(f.get("qml_queue_jobs")!.samples.map((s) => s.labels.queue))).toEqual(new Set(["a", "b", OVERFLOW_LABEL]));
  });

  it("refuses a bad cap or bad buckets", () => {
    expect(() => new JobMetrics({ maxLabelSets: 0 })).toThrow(/maxLabelSets/);
    expect(() => new JobMetrics({ buckets: [1, 0.5] })).toThrow(/buckets/);
    expect(() => new JobMetrics({ buckets: [] })).toThrow(/buckets/);
  });
});
