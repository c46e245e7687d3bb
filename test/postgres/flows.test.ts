/**
 * Flows on PostgreSQL beyond the shared suite (test/storage/flows-conformance.ts):
 * migration 0007 over a schema at version 6, the edges table as the
 * statements keep it, and the retention paths only this backend has
 * (completeAndDelete under maxFinishedJobs 0, kept_at past the TTL).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, ManualClock, Storage, type JobRecord } from "../../src/index.js";
import { PostgresConfig, createPgDriver, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { type PgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { MIGRATIONS } from "../../src/adapters/storage/postgres/migrations.generated.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor, adminQuery } from "./helpers.js";

const janitor = new SchemaJanitor();
const HOUR = 3_600_000;

describeWithService("postgres", await serviceUp("postgres"), "postgres flows", () => {
  let driver: PgDriver;
  beforeAll(async () => {
    driver = await createPgDriver({ connectionString: DATABASE_URL, max: 3 });
  });
  afterAll(async () => {
    await driver?.close();
    await janitor.dropAll();
  });

  function open(clock: ManualClock, configure: (c: PostgresConfig) => PostgresConfig = (c) => c) {
    const schema = janitor.next();
    const backend = postgresBackend(configure(new PostgresConfig().withDriver(driver).withSchema(schema)));
    return { backend, storage: new Storage(backend, { clock }), schema };
  }

  async function claimAll(storage: Storage, clock: ManualClock): Promise<JobRecord[]> {
    return storage.driver.claim({ queues: ["default"], limit: 100, owner: "w", leaseMs: 60_000, now: clock.now() });
  }

  async function succeed(storage: Storage, clock: ManualClock, rs: JobRecord[]) {
    const res = await storage.driver.complete(
      rs.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" })),
      clock.now(),
    );
    const flagged = res.filter((r) => r.dependents).map((r) => r.id);
    if (flagged.length > 0) await storage.settleDependents(flagged);
    return res;
  }

  const edges = async (schema: string) =>
    (await adminQuery<{ dep: string; waiter: string }>(`SELECT dep, waiter FROM "${schema}".edges ORDER BY dep, waiter`)).map((e) => `${e.dep}>${e.waiter}`);

  it("0007 over a schema at version 6: old rows stay, 'awaiting' is accepted, other states still refused", async () => {
    const schema = janitor.next();
    const s = `"${schema}"`;
    await adminQuery(`
      CREATE SCHEMA ${s};
      CREATE TABLE ${s}.migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
      ${MIGRATIONS.slice(0, 6)
        .map((m) => `${m.sql.replaceAll(":QML_SCHEMA", s)};\n      INSERT INTO ${s}.migrations (version, name) VALUES (${m.version}, '${m.name}');`)
        .join("\n")}`);
    const T = Date.UTC(2030, 0, 1);
    await adminQuery(
      `INSERT INTO ${s}.jobs (id, name, queue, state, max_attempts, created_at, updated_at, run_at, finished_at, args, history, hn)
       VALUES ('old', 'old', 'default', 'succeeded', 3, $1::bigint, $1::bigint, $1::bigint, $1::bigint, '[1]', '', 0)`,
      [T],
    );
    const clock = new ManualClock(T + 1000);
    const storage = new Storage(postgresBackend(new PostgresConfig().withDriver(driver).withSchema(schema)), { clock });
    await storage.migrate();
    expect((await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.migrations`))[0]!.n).toBe(MIGRATIONS.length);
    const [old] = await storage.driver.get(["old"]);
    expect(old).toMatchObject({ state: JobState.Succeeded, args: [1] });
    expect(old!.flow).toBeUndefined();
    const next = await storage.continueWith("old", new Job("next"));
    const [released] = await storage.driver.get([next]);
    expect(released).toMatchObject({ state: JobState.Enqueued, flow: { dependsOn: ["old"], on: "success", otherwise: "delete" } });
    await expect(adminQuery(`UPDATE ${s}.jobs SET state = 'nonsense' WHERE id = 'old'`)).rejects.toThrow(/jobs_state_check/);
  });

  it("edges: written by the insert that creates the waiter (not by a retried one), gone when it leaves awaiting; purge takes a waiter's own", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage, schema } = open(clock);
    await storage.migrate();
    const tree = () => ({ job: new Job("p", [], {}, "p1"), children: [{ job: new Job("c", [], {}, "c1") }, { job: new Job("c", [], {}, "c2") }] });
    await storage.enqueueFlow(tree());
    await storage.enqueueFlow(tree());
    expect(await edges(schema)).toEqual(["c1>p1", "c2>p1"]);
    const later = await storage.continueWith("p1", new Job("then", [], {}, "t1"));
    expect(await edges(schema)).toEqual(["c1>p1", "c2>p1", "p1>t1"]);
    await succeed(storage, clock, await claimAll(storage, clock));
    expect(await storage.get("p1")).toMatchObject({ state: JobState.Enqueued });
    expect(await edges(schema)).toEqual(["p1>t1"]);
    // An operator's purge of awaiting jobs takes their edges with them.
    clock.advance(1000);
    expect(await storage.driver.purge([JobState.Awaiting], clock.now(), 10)).toBe(1);
    expect(await storage.get(later)).toBeNull();
    expect(await edges(schema)).toEqual([]);
  });

  it("a dependency failed by a transition is tallied as a failed run and flags its own waiters", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage } = open(clock);
    await storage.migrate();
    const ids = await storage.enqueueFlow({ job: new Job("root"), children: [{ job: new Job("mid"), children: [{ job: new Job("leaf") }] }] });
    const mid = ids.children[0]!.id;
    const [t] = await storage.driver.transition({
      ids: [mid],
      from: [JobState.Awaiting],
      to: JobState.Failed,
      reason: "dependency x ended failed",
      error: { name: "DependencyError", message: "dependency x ended failed", code: "DEPENDENCY" },
      now: clock.now(),
    });
    expect(t).toMatchObject({ applied: true, dependents: true, record: { state: JobState.Failed, finishedAt: clock.now() } });
    expect(t!.record.error).toMatchObject({ name: "DependencyError", code: "DEPENDENCY" });
    expect(t!.record.history.at(-1)).toMatchObject({ state: JobState.Failed, reason: "dependency x ended failed" });
    const stats = await storage.stats();
    expect(stats.perMinute.at(-1)).toMatchObject({ succeeded: 0, failed: 1 });
    expect(stats.perHour.at(-1)).toMatchObject({ succeeded: 0, failed: 1 });
    // Not applied a second time; a release flags nothing.
    const [again] = await storage.driver.transition({ ids: [mid], from: [JobState.Awaiting], to: JobState.Failed, reason: "again", now: clock.now() });
    expect(again).toMatchObject({ applied: false });
    expect(again!.dependents).toBeUndefined();
    const [released] = await storage.driver.transition({
      ids: [ids.id],
      from: [JobState.Awaiting],
      to: JobState.Enqueued,
      reason: "released",
      now: clock.now(),
    });
    expect(released).toMatchObject({ applied: true, record: { state: JobState.Enqueued } });
    expect(released!.dependents).toBeUndefined();
  });

  it("maxFinishedJobs 0: a child others wait for is kept at completion, and pruned once they stopped waiting", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage } = open(clock, (c) => c.withMaxFinishedJobs(0));
    await storage.migrate();
    const ids = await storage.enqueueFlow({ job: new Job("p"), children: [{ job: new Job("c", [1]) }, { job: new Job("c", [2]) }] });
    const lone = await storage.enqueue(new Job("lone"));
    const claimed = await claimAll(storage, clock);
    const first = claimed.find((r) => r.id === ids.children[0]!.id)!;
    const res = await succeed(storage, clock, [first, claimed.find((r) => r.id === lone)!]);
    expect(res.map((r) => r.dependents)).toEqual([true, undefined]);
    expect(await storage.get(lone)).toBeNull();
    expect(await storage.get(first.id)).toMatchObject({ state: JobState.Succeeded });
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect(await storage.get(first.id)).toMatchObject({ state: JobState.Succeeded });
    expect((await storage.stats()).perMinute.at(-1)).toMatchObject({ succeeded: 2 });
    await succeed(storage, clock, [claimed.find((r) => r.id === ids.children[1]!.id)!]);
    expect(await storage.get(ids.id)).toMatchObject({ state: JobState.Enqueued });
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect(await storage.get(first.id)).toBeNull();
  });

  it("past the TTL a dependency is kept while awaited, and for a TTL more from when the pruning found it", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const { storage } = open(clock, (c) => c.withFinishedJobTtl(HOUR));
    await storage.migrate();
    const ids = await storage.enqueueFlow({ job: new Job("p"), children: [{ job: new Job("c", [1]) }, { job: new Job("c", [2]) }] });
    const claimed = await claimAll(storage, clock);
    const [a, b] = ids.children.map((c) => claimed.find((r) => r.id === c.id)!) as [JobRecord, JobRecord];
    await succeed(storage, clock, [a]);
    clock.advance(2 * HOUR);
    await storage.driver.reclaimExpired(clock.now(), 0);
    expect(await storage.get(a.id)).toMatchObject({ state: JobState.Succeeded });
    clock.advance(HOUR / 2);
    // b's lease lapsed long ago: reclaimed, then claimed and finished; the parent is released.
    expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(1);
    expect(await storage.get(a.id)).toMatchObject({ state: JobState.Succeeded });
    const again = await claimAll(storage, clock);
    expect(again.map((r) => r.id)).toEqual([b.id]);
    await succeed(storage, clock, again);
    expect(await storage.get(ids.id)).toMatchObject({ state: JobState.Enqueued });
    await storage.driver.reclaimExpired(clock.now(), 100);
    // Found pinned 30 minutes ago: a TTL (an hour) from then is not over.
    expect(await storage.get(a.id)).toMatchObject({ state: JobState.Succeeded });
    clock.advance(HOUR);
    await storage.driver.reclaimExpired(clock.now(), 100);
    expect(await storage.get(a.id)).toBeNull();
  });
});
