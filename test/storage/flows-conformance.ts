/**
 * Flows and continuations in the conformance suite (conformance.ts runs
 * this inside every backend's describe): what the store keeps (state
 * `awaiting`, the flow, dependency edges), and what the core decides over
 * it (src/core/flows.ts), on every backend and driver.
 */
import { describe, expect, it } from "vitest";
import {
  BackgroundJobServer,
  Job,
  JobState,
  NotFoundError,
  ServerConfig,
  ValidationError,
  WorkerRegistry,
  WorkerResult,
  silentLogger,
  type JobRecord,
  type ManualClock,
  type Storage,
} from "../../src/index.js";
import type { Outcome } from "../../src/core/driver.js";

const LEASE = 30_000;

export function runFlowConformance(fresh: () => Promise<{ storage: Storage; clock: ManualClock }>): void {
  async function claim(storage: Storage, clock: ManualClock, limit = 100): Promise<JobRecord[]> {
    return storage.driver.claim({ queues: ["default"], limit, owner: "w1", leaseMs: LEASE, now: clock.now() });
  }
  /** Completes claimed jobs as the engine does: the outcome, then the settling of what the store flagged. */
  async function finish(storage: Storage, clock: ManualClock, rs: JobRecord[], state: Outcome["state"] = JobState.Succeeded, result?: unknown) {
    const res = await storage.driver.complete(
      rs.map((r) => ({ id: r.id, token: r.leaseToken, state, reason: state, worker: "w1/1", ...(result !== undefined ? { result } : {}) })),
      clock.now(),
    );
    const flagged = res.filter((r) => r.dependents).map((r) => r.id);
    if (flagged.length > 0) await storage.settleDependents(flagged);
    return res;
  }
  const state = async (storage: Storage, id: string) => (await storage.get(id))?.state;
  const tree = () => ({
    job: new Job("parent", ["p"]),
    children: [{ job: new Job("child", [1]) }, { job: new Job("child", [2]) }],
  });

  describe("flows and continuations", () => {
    it("enqueueFlow stores the tree in one call: children enqueued, the parent awaiting with what it waits for", async () => {
      const { storage } = await fresh();
      const ids = await storage.enqueueFlow(tree());
      expect(ids.children.length).toBe(2);
      const parent = (await storage.get(ids.id))!;
      expect(parent.state).toBe(JobState.Awaiting);
      expect(parent.flow).toEqual({ dependsOn: ids.children.map((c) => c.id), on: "success", otherwise: "fail" });
      expect(parent.history.map((h) => h.state)).toEqual([JobState.Awaiting]);
      for (const c of ids.children) expect(await state(storage, c.id)).toBe(JobState.Enqueued);
      const st = await storage.stats();
      expect(st.states.awaiting).toBe(1);
      expect(st.states.enqueued).toBe(2);
      expect((await storage.list({ state: JobState.Awaiting })).items.map((j) => j.id)).toEqual([ids.id]);
      expect((await storage.driver.dependents(ids.children.map((c) => c.id))).sort()).toEqual([ids.id]);
    });

    it("an awaiting parent is never claimed; it is released only when every child has succeeded", async () => {
      const { storage, clock } = await fresh();
      const ids = await storage.enqueueFlow(tree());
      const kids = await claim(storage, clock);
      expect(kids.map((r) => r.id).sort()).toEqual(ids.children.map((c) => c.id).sort());
      const [first, second] = kids as [JobRecord, JobRecord];
      const res = await finish(storage, clock, [first], JobState.Succeeded, { n: 1 });
      expect(res[0]!.dependents).toBe(true);
      expect(await state(storage, ids.id)).toBe(JobState.Awaiting);
      expect(await claim(storage, clock)).toEqual([]);
      await finish(storage, clock, [second], JobState.Succeeded, { n: 2 });
      const parent = (await storage.get(ids.id))!;
      expect(parent.state).toBe(JobState.Enqueued);
      expect(parent.history.at(-1)!.reason).toMatch(/released/);
      const got = await claim(storage, clock);
      expect(got.map((r) => r.id)).toEqual([ids.id]);
      // The flow is kept after release: the parent reads its children through it.
      expect(got[0]!.flow!.dependsOn.sort()).toEqual(ids.children.map((c) => c.id).sort());
      expect(await storage.driver.dependents(ids.children.map((c) => c.id))).toEqual([]);
    });

    it("completions of jobs nobody waits for are not flagged", async () => {
      const { storage, clock } = await fresh();
      await storage.enqueue(new Job("plain"));
      const res = await finish(storage, clock, await claim(storage, clock));
      expect(res[0]!.dependents).toBeFalsy();
    });

    it("a failed child fails the parent at once (DependencyError); the other child's later outcome changes nothing", async () => {
      const { storage, clock } = await fresh();
      const ids = await storage.enqueueFlow(tree());
      const [a, b] = (await claim(storage, clock)) as [JobRecord, JobRecord];
      await finish(storage, clock, [a], JobState.Failed);
      const parent = (await storage.get(ids.id))!;
      expect(parent.state).toBe(JobState.Failed);
      expect(parent.error?.name).toBe("DependencyError");
      expect(parent.error?.code).toBe("DEPENDENCY");
      expect(parent.error?.message).toContain(a.id);
      expect((await storage.stats()).states.failed).toBe(2);
      await finish(storage, clock, [b]);
      expect(await state(storage, ids.id)).toBe(JobState.Failed);
    });

    it('onChildFailure "ignore" and "remove": the parent runs once all have finished, failures included', async () => {
      for (const rule of ["ignore", "remove"] as const) {
        const { storage, clock } = await fresh();
        const ids = await storage.enqueueFlow({ ...tree(), onChildFailure: rule });
        const [a, b] = (await claim(storage, clock)) as [JobRecord, JobRecord];
        await finish(storage, clock, [a], JobState.Failed);
        expect(await state(storage, ids.id)).toBe(JobState.Awaiting);
        await finish(storage, clock, [b]);
        expect(await state(storage, ids.id)).toBe(JobState.Enqueued);
      }
    });

    it("a deleted or cancelled child counts as not succeeded; a cancelled parent stops waiting", async () => {
      const { storage } = await fresh();
      const one = await storage.enqueueFlow(tree());
      expect(await storage.cancel(one.children[0]!.id, { by: "test" })).toBe(true);
      expect(await state(storage, one.id)).toBe(JobState.Failed);

      const two = await storage.enqueueFlow(tree());
      expect(await storage.cancel(two.id)).toBe(true);
      expect(await state(storage, two.id)).toBe(JobState.Deleted);
      expect(await storage.driver.dependents(two.children.map((c) => c.id))).toEqual([]);
    });

    it("failure travels up a nested tree; success releases level by level", async () => {
      const { storage, clock } = await fresh();
      const nested = () => ({ job: new Job("root"), children: [{ job: new Job("mid"), children: [{ job: new Job("leaf") }] }] });
      const bad = await storage.enqueueFlow(nested());
      await storage.delete(bad.children[0]!.children[0]!.id);
      expect(await state(storage, bad.children[0]!.id)).toBe(JobState.Failed);
      expect(await state(storage, bad.id)).toBe(JobState.Failed);

      const good = await storage.enqueueFlow(nested());
      await finish(storage, clock, await claim(storage, clock));
      expect(await state(storage, good.children[0]!.id)).toBe(JobState.Enqueued);
      expect(await state(storage, good.id)).toBe(JobState.Awaiting);
      await finish(storage, clock, await claim(storage, clock));
      expect(await state(storage, good.id)).toBe(JobState.Enqueued);
    });

    it("continueWith: runs on the parent's success; deleted when the parent ends another way", async () => {
      const { storage, clock } = await fresh();
      const ok = await storage.enqueue(new Job("parent", [1]));
      const bad = await storage.enqueue(new Job("parent", [2]));
      const next = await storage.continueWith(ok, new Job("next", [1]));
      const skipped = await storage.continueWith(bad, new Job("next", [2]));
      const onFailure = await storage.continueWith(bad, new Job("cleanup"), { on: "failure" });
      const always = await storage.continueWith(ok, new Job("always"), { on: "any" });
      for (const id of [next, skipped, onFailure, always]) expect(await state(storage, id)).toBe(JobState.Awaiting);
      expect((await storage.get(next))!.flow).toEqual({ dependsOn: [ok], on: "success", otherwise: "delete" });
      const claimed = await claim(storage, clock);
      expect(claimed.map((r) => r.id).sort()).toEqual([ok, bad].sort());
      await finish(
        storage,
        clock,
        claimed.filter((r) => r.id === ok),
      );
      await finish(
        storage,
        clock,
        claimed.filter((r) => r.id === bad),
        JobState.Failed,
      );
      expect(await state(storage, next)).toBe(JobState.Enqueued);
      expect(await state(storage, always)).toBe(JobState.Enqueued);
      expect(await state(storage, skipped)).toBe(JobState.Deleted);
      expect(await state(storage, onFailure)).toBe(JobState.Enqueued);
    });

    it("continueWith on a parent that has already finished decides at once; an unknown parent stores nothing", async () => {
      const { storage, clock } = await fresh();
      const done = await storage.enqueue(new Job("parent"));
      await finish(storage, clock, await claim(storage, clock));
      const late = await storage.continueWith(done, new Job("late"));
      expect(await state(storage, late)).toBe(JobState.Enqueued);
      const before = (await storage.stats()).total;
      await expect(storage.continueWith("no-such-job", new Job("x"))).rejects.toBeInstanceOf(NotFoundError);
      expect((await storage.stats()).total).toBe(before);
    });

    it("bad flows are refused with a ValidationError and store nothing", async () => {
      const { storage } = await fresh();
      const shared = new Job("child");
      const cases: unknown[] = [
        { job: new Job("p"), children: [{ job: shared }, { job: shared }] },
        { job: shared, children: [{ job: new Job("c"), children: [{ job: shared }] }] },
        { job: new Job("p"), children: [{ job: new Job("c", [], { uniqueKey: "k" }) }] },
        { job: new Job("p"), children: [{ job: new Job("c") }], onChildFailure: "explode" },
        { job: new Job("p"), onChildFailure: "fail" },
        { job: { name: "not a job" } },
        { job: new Job("p"), children: [{ job: new Job("") }] },
      ];
      let deep: { job: Job; children?: unknown[] } = { job: new Job("leaf") };
      for (let i = 0; i < 40; i++) deep = { job: new Job("level"), children: [deep] };
      cases.push(deep);
      for (const c of cases) await expect(storage.enqueueFlow(c as never)).rejects.toBeInstanceOf(ValidationError);
      await expect(storage.continueWith("x", new Job("y"), { on: "sometimes" as never })).rejects.toBeInstanceOf(ValidationError);
      expect((await storage.stats()).total).toBe(0);
    });

    it("a finished child stays while its parent waits, past the retention", async () => {
      const { storage, clock } = await fresh();
      // The second child sits in a queue nobody claims here: the parent waits throughout.
      const ids = await storage.enqueueFlow({
        job: new Job("parent"),
        children: [{ job: new Job("child", [1]) }, { job: new Job("child", [2], { queue: "held" }) }],
      });
      const lone = await storage.enqueue(new Job("lone"));
      const claimed = await claim(storage, clock);
      expect(claimed.map((r) => r.id).sort()).toEqual([ids.children[0]!.id, lone].sort());
      await finish(storage, clock, claimed);
      clock.advance(31 * 24 * 3_600_000);
      // Each backend prunes on its own occasions: a reclaim sweep, and writes that finish jobs.
      await storage.driver.reclaimExpired(clock.now(), 100);
      await storage.enqueue(new Job("later"));
      await finish(storage, clock, await claim(storage, clock));
      await storage.driver.reclaimExpired(clock.now(), 100);
      expect(await storage.get(lone)).toBeNull();
      expect(await state(storage, ids.children[0]!.id)).toBe(JobState.Succeeded);
      expect(await state(storage, ids.id)).toBe(JobState.Awaiting);
    });

    it("the maintenance sweep settles waiters whose settling was never done (a process killed between the two steps)", async () => {
      const { storage, clock } = await fresh();
      const ids = await storage.enqueueFlow(tree());
      const kids = await claim(storage, clock);
      // The outcomes only, as a process killed right after writing them leaves things.
      await storage.driver.complete(
        kids.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, reason: "ok", worker: "w" })),
        clock.now(),
      );
      expect(await state(storage, ids.id)).toBe(JobState.Awaiting);
      const report = await storage.sweepAwaiting();
      expect(report.released.map((r) => r.id)).toEqual([ids.id]);
      expect(await state(storage, ids.id)).toBe(JobState.Enqueued);
    });

    it("settling twice applies once; an insert retried with the same ids makes no second tree", async () => {
      const { storage, clock } = await fresh();
      const root = new Job("parent", [], {}, "flow-root");
      const kid = new Job("child", [], {}, "flow-kid");
      await storage.enqueueFlow({ job: root, children: [{ job: kid }] });
      await storage.enqueueFlow({ job: new Job("parent", [], {}, "flow-root"), children: [{ job: new Job("child", [], {}, "flow-kid") }] });
      expect((await storage.stats()).total).toBe(2);
      await finish(storage, clock, await claim(storage, clock));
      const again = await Promise.all([storage.settleWaiters(["flow-root"]), storage.settleWaiters(["flow-root"])]);
      expect(again.every((r) => r.released.length === 0)).toBe(true);
      const parent = (await storage.get("flow-root"))!;
      expect(parent.state).toBe(JobState.Enqueued);
      expect(parent.history.filter((h) => h.state === JobState.Enqueued).length).toBe(1);
    });

    it("engine: a parent reads its children's results with ctx.dependencies()", async () => {
      const { storage, clock } = await fresh();
      const seen: unknown[] = [];
      const registry = new WorkerRegistry()
        .register("square", (job) => WorkerResult.success((job.arguments[0] as number) ** 2))
        .register("sum", async (_job, ctx) => {
          const deps = await ctx.dependencies();
          seen.push(deps.map((d) => d.state));
          return WorkerResult.success(deps.reduce((s, d) => s + (d.result as number), 0));
        });
      const ids = await storage.enqueueFlow({ job: new Job("sum"), children: [1, 2, 3].map((n) => ({ job: new Job("square", [n]) })) });
      const server = new BackgroundJobServer(storage, registry, new ServerConfig("flows").workerCount(4).pollingInterval(20).clock(clock).logger(silentLogger));
      const done = new Promise<void>((resolve) => server.on("job:succeeded", ({ job }) => job.id === ids.id && resolve()));
      await server.start();
      await done;
      await server.stop();
      expect((await storage.get(ids.id))!.result).toBe(14);
      expect(seen).toEqual([[JobState.Succeeded, JobState.Succeeded, JobState.Succeeded]]);
    });
  });
}
