/**
 * The claim stays on its index as finished jobs pile up: with 100,000
 * finished rows in the table, the plan reads the partial index of ready
 * jobs and never scans the table, a paused queue or not. Inserts find a
 * key's holder and an id by index too. Asserted on EXPLAIN, not on time.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, ManualClock, Storage } from "../../src/index.js";
import { PostgresConfig, createPgDriver, postgresBackend, type PostgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { type PgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { planInsert } from "../../src/adapters/storage/postgres/insert-plan.js";
import { newJobRecord } from "../../src/core/job.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "./helpers.js";

const janitor = new SchemaJanitor();

interface PlanNode {
  "Node Type": string;
  "Parent Relationship"?: string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

describeWithService("postgres", await serviceUp("postgres"), "postgres claim plan with 100,000 finished jobs", () => {
  let driver: PgDriver;
  let backend: PostgresBackend;
  let storage: Storage;
  let schema: string;
  const clock = new ManualClock(Date.UTC(2030, 0, 1));

  beforeAll(async () => {
    schema = janitor.next();
    driver = await createPgDriver({ connectionString: DATABASE_URL, max: 2 });
    backend = postgresBackend(new PostgresConfig().withDriver(driver).withSchema(schema));
    storage = new Storage(backend, { clock });
    await storage.migrate();
    const now = clock.now();
    await driver.query(
      `INSERT INTO "${schema}".jobs (id, name, queue, priority, state, attempts, max_attempts, created_at, updated_at, run_at, finished_at, args, history)
       SELECT 'done-' || g, 'done', CASE g % 2 WHEN 0 THEN 'default' ELSE 'other' END, 0,
              CASE g % 3 WHEN 0 THEN 'succeeded' WHEN 1 THEN 'failed' ELSE 'deleted' END,
              1, 3, $1::bigint - g, $1::bigint - g, $1::bigint - g, $1::bigint - g, '[]', ''
       FROM generate_series(1, 100000) AS g`,
      [now],
    );
    await storage.enqueue(Array.from({ length: 5 }, (_, i) => new Job("live", [i])));
    await driver.query(`ANALYZE "${schema}".jobs`);
  });
  afterAll(async () => {
    await storage?.close();
    await driver?.close();
    await janitor.dropAll();
  });

  async function plan(text: string, params: unknown[]): Promise<PlanNode[]> {
    const { rows } = await driver.query<{ "QUERY PLAN": Array<{ Plan: PlanNode }> }>(`EXPLAIN (FORMAT JSON) ${text}`, params);
    const raw = rows[0]!["QUERY PLAN"];
    const doc = typeof raw === "string" ? (JSON.parse(raw) as Array<{ Plan: PlanNode }>) : raw;
    return nodes(doc[0]!.Plan);
  }

  /** Index names in the plan, and whether any node reads the jobs table from end to end. */
  function summary(all: PlanNode[]) {
    return {
      indexes: new Set(all.map((n) => n["Index Name"]).filter(Boolean)),
      orderedScans: new Set(all.filter((n) => n["Node Type"].startsWith("Index")).map((n) => n["Index Name"])),
      tableScans: all.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "jobs").length,
    };
  }

  it("claim: walks the ready index in order, writes by ctid (a TID scan), never scans the table", async () => {
    const all = await plan(backend.statements.claim, [JSON.stringify(["default", "other"]), 10, clock.now(), "w", 30_000]);
    const s = summary(all);
    expect(s.tableScans).toBe(0);
    expect(s.orderedScans.has("jobs_ready_idx")).toBe(true);
    expect(all.some((n) => n["Node Type"] === "Tid Scan" && n["Relation Name"] === "jobs")).toBe(true);
    expect(s.indexes.has("jobs_delayed_queue_idx") || s.indexes.has("jobs_delayed_idx")).toBe(true);
    // And it claims the live jobs, not the finished ones.
    const claimed = await backend.claim({ queues: ["default", "other"], limit: 10, owner: "w", leaseMs: 30_000, now: clock.now() });
    expect(claimed.map((r) => r.args)).toEqual([[0], [1], [2], [3], [4]]);
  });

  it("claim with a paused queue: the other queues keep their index walk; the paused one gives nothing", async () => {
    await backend.setPaused("other", true, clock.now());
    try {
      const all = await plan(backend.statements.claim, [JSON.stringify(["other", "default"]), 10, clock.now(), "w", 30_000]);
      const s = summary(all);
      expect(s.tableScans).toBe(0);
      expect(s.orderedScans.has("jobs_ready_idx")).toBe(true);
      expect(all.some((n) => n["Node Type"] === "Tid Scan" && n["Relation Name"] === "jobs")).toBe(true);
      expect(all.some((n) => n["Relation Name"] === "paused_queues")).toBe(true);
      const [, ready] = await storage.enqueue([new Job("paused", [], { queue: "other" }), new Job("ready", [], { queue: "default" })]);
      const claimed = await backend.claim({ queues: ["other", "default"], limit: 10, owner: "w", leaseMs: 30_000, now: clock.now() });
      expect(claimed.map((r) => r.id)).toEqual([ready]);
    } finally {
      await backend.setPaused("other", false, clock.now());
    }
  });

  it("insert finds each key's holder on the unique index and each id on the primary key, never by a scan", async () => {
    const now = clock.now();
    const records = [
      { ...newJobRecord(new Job("d", [1], { uniqueKey: "plan-k1", uniqueMode: "debounce" }), now), debounce: true },
      newJobRecord(new Job("d", [2], { uniqueKey: "plan-k2", uniqueTtl: 1000 }), now),
      newJobRecord(new Job("d", [3]), now),
    ];
    const { groups } = planInsert(records, now);
    const all = await plan(backend.statements.insert, [
      JSON.stringify(groups.map((g) => g.row)),
      now,
      backend.channel,
      JSON.stringify(groups.flatMap((g) => g.records)),
    ]);
    const s = summary(all);
    expect(s.tableScans).toBe(0);
    expect(s.indexes.has("jobs_unique_key_idx")).toBe(true);
    expect(s.indexes.has("jobs_pkey")).toBe(true);
  });

  it("complete (keeping or deleting finished jobs) reads jobs by index only, and once per batch or by key per outcome", async () => {
    // The planner does not know how many outcomes a batch holds. Allowed: a
    // key lookup per outcome, or one read of the processing jobs hashed for
    // the batch. Not allowed: a table scan, or a read of many jobs repeated
    // per outcome (a plan like that cost a 4,000-job batch minutes).
    const outcomes = JSON.stringify(
      Array.from({ length: 2000 }, (_, i) => ({ i, id: `done-${i + 1}`, token: 1, state: i % 2 ? "succeeded" : "awaiting_retry", reason: "r", worker: "w" })),
    );
    for (const statement of [backend.statements.complete, backend.statements.completeAndDelete]) {
      const [root] = await plan(statement, [outcomes, clock.now(), null]);
      const reads: Array<{ node: PlanNode; perOutcome: boolean }> = [];
      const walk = (n: PlanNode, perOutcome: boolean) => {
        if (n["Relation Name"] === "jobs" && n["Node Type"] !== "ModifyTable") reads.push({ node: n, perOutcome });
        // A Materialize node reads its input once, whoever asks it again.
        for (const c of n.Plans ?? [])
          walk(
            c,
            n["Node Type"] !== "Materialize" &&
              (perOutcome || (n["Node Type"] === "Nested Loop" && c["Parent Relationship"] === "Inner" && c["Node Type"] !== "Materialize")),
          );
      };
      walk(root!, false);
      expect(reads.length).toBeGreaterThan(0);
      for (const { node, perOutcome } of reads) {
        if (perOutcome) {
          expect(node).toMatchObject({ "Node Type": "Index Scan", "Index Name": "jobs_pkey" });
          continue;
        }
        // Once per batch: an index scan or a bitmap of one of these indexes.
        expect(["Index Scan", "Bitmap Heap Scan"]).toContain(node["Node Type"]);
        const used = nodes(node).filter((n) => n["Index Name"] !== undefined);
        expect(used.length).toBeGreaterThan(0);
        for (const n of used) expect(["jobs_pkey", "jobs_processing_idx"]).toContain(n["Index Name"]);
      }
    }
  });

  it("transition (cancel, delete, requeue, settling a waiter) reaches its jobs by primary key, never by a scan of the table", async () => {
    const ids = JSON.stringify(["done-1", "done-2", "done-3"]);
    const error = JSON.stringify({ name: "DependencyError", message: "dependency done-4 ended failed" });
    for (const [from, to, err] of [
      [["scheduled", "enqueued", "processing", "awaiting_retry"], "deleted", null],
      [["failed", "succeeded", "deleted"], "enqueued", null],
      [["awaiting"], "failed", error],
      [["awaiting"], "enqueued", null],
    ] as const) {
      const s = summary(await plan(backend.statements.transition, [ids, JSON.stringify(from), to, "cancelled by ops", clock.now(), backend.channel, err]));
      expect(s.tableScans).toBe(0);
      expect(s.indexes.has("jobs_pkey")).toBe(true);
    }
  });

  it("promoteDue and reclaimExpired (with its pruning) stay on their indexes too", async () => {
    const promote = summary(await plan(backend.statements.promoteDue, [clock.now(), 100, null]));
    expect(promote.tableScans).toBe(0);
    expect(promote.indexes.has("jobs_delayed_idx")).toBe(true);
    const reclaim = summary(await plan(backend.statements.reclaimExpired, [clock.now(), 100, null, 86_400_000, 10_000, 1000]));
    expect(reclaim.tableScans).toBe(0);
    expect(reclaim.indexes.has("jobs_processing_idx")).toBe(true);
    expect(reclaim.indexes.has("jobs_finished_idx")).toBe(true);
  });

  it("flows: the sweep's page of awaiting jobs walks their partial index; dependents probe the edges' key; the claim never reads edges", async () => {
    const now = clock.now();
    await driver.query(
      `INSERT INTO "${schema}".jobs (id, name, queue, priority, state, attempts, max_attempts, created_at, updated_at, run_at, args, history, flow)
       SELECT 'waits-' || g, 'parent', 'default', 0, 'awaiting', 0, 3, $1::bigint - g, $1::bigint - g, $1::bigint - g, '[]', '',
              json_build_object('dependsOn', json_build_array('done-' || g), 'on', 'success', 'otherwise', 'fail')
       FROM generate_series(1, 2000) AS g`,
      [now],
    );
    await driver.query(`INSERT INTO "${schema}".edges (dep, waiter) SELECT 'done-' || g, 'waits-' || g FROM generate_series(1, 2000) AS g`);
    await driver.query(`ANALYZE "${schema}".jobs`);
    await driver.query(`ANALYZE "${schema}".edges`);
    try {
      for (const order of ["asc", "desc"] as const) {
        for (const after of [null, now - 1000]) {
          const s = summary(await plan(backend.statements.listAwaiting[order], [null, null, null, after, after === null ? null : "waits-1000", 101]));
          expect(s.tableScans).toBe(0);
          expect(s.orderedScans.has("jobs_awaiting_idx")).toBe(true);
        }
      }
      const page = await storage.driver.list({ state: "awaiting" }, { limit: 3, sort: "createdAt", order: "asc" });
      expect(page.items.map((r) => r.id)).toEqual(["waits-2000", "waits-1999", "waits-1998"]);
      expect(page.items[0]!.flow).toEqual({ dependsOn: ["done-2000"], on: "success", otherwise: "fail" });

      const deps = summary(await plan(backend.statements.dependents, [JSON.stringify(["done-1", "done-2"])]));
      expect(deps.tableScans).toBe(0);
      expect(deps.indexes.has("edges_pkey")).toBe(true);
      expect((await storage.driver.dependents(["done-1", "done-2", "nobody"])).sort()).toEqual(["waits-1", "waits-2"]);

      const claim = await plan(backend.statements.claim, [JSON.stringify(["default", "other"]), 10, now, "w", 30_000]);
      expect(claim.some((n) => n["Relation Name"] === "edges")).toBe(false);
      expect(summary(claim).tableScans).toBe(0);
    } finally {
      await driver.query(`DELETE FROM "${schema}".edges`);
      await driver.query(`DELETE FROM "${schema}".jobs WHERE state = 'awaiting'`);
    }
  });
});
