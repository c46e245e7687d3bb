/**
 * The storage conformance suite: one function, run unchanged against every
 * backend and every driver (memory.test.ts, redis-*.test.ts, postgres-*.test.ts).
 *
 * A backend is done when all of this passes. Time is a ManualClock: no test
 * sleeps; leases expire because the clock is moved past them.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  BackgroundJobServer,
  InvalidStateError,
  Job,
  JobState,
  ManualClock,
  NotFoundError,
  RetryPolicy,
  ServerConfig,
  ValidationError,
  WorkerRegistry,
  WorkerResult,
  silentLogger,
  type JobEventMap,
  type JobRecord,
  type Storage,
} from "../../src/index.js";
import { RATE_COUNT_KEEP_MS, type Outcome } from "../../src/core/driver.js";
import { Scheduler } from "../../src/core/scheduler.js";
import { Emitter } from "../../src/core/events.js";
import { runFlowConformance } from "./flows-conformance.js";
import { runStepsConformance } from "./steps-conformance.js";
import { runStepsEngineConformance } from "./steps-engine-conformance.js";

export interface StorageHarness {
  storage: Storage;
  clock: ManualClock;
}

/** Makes a fresh, empty, migrated storage whose convenience clock is `clock`. */
export type StorageFactory = (clock: ManualClock) => Promise<Storage>;

const LEASE = 30_000;
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);

export function runStorageConformance(label: string, factory: StorageFactory): void {
  describe(`storage conformance: ${label}`, () => {
    const opened: Storage[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close().catch(() => {})));
    });

    async function fresh(): Promise<StorageHarness> {
      const clock = new ManualClock(T0);
      const storage = await factory(clock);
      opened.push(storage);
      return { storage, clock };
    }

    async function claimAll(storage: Storage, clock: ManualClock, queues = ["default"], limit = 100, owner = "w1"): Promise<JobRecord[]> {
      return storage.driver.claim({ queues, limit, owner, leaseMs: LEASE, now: clock.now() });
    }

    function outcome(r: JobRecord, state: Outcome["state"], extra: Partial<Outcome> = {}): Outcome {
      return { id: r.id, token: r.leaseToken, state, reason: state, worker: "w1/1", ...extra };
    }

    // ------------------------------------------------------------ enqueue

    describe("enqueue and get", () => {
      it("stores a job and reads it back with its fields, state and history", async () => {
        const { storage } = await fresh();
        const job = new Job("send_email", ["user@example.com", { n: 1 }], {
          queue: "mail",
          priority: 5,
          maxAttempts: 7,
          timeout: 1234,
          metadata: { tenant: "t1" },
          retry: RetryPolicy.fixed(250),
        });
        const id = await storage.enqueue(job);
        expect(id).toBe(job.id);
        expect(job.state).toBe(JobState.Enqueued);
        const got = await storage.get(id);
        expect(got).not.toBeNull();
        expect(got!.name).toBe("send_email");
        expect(got!.arguments).toEqual(["user@example.com", { n: 1 }]);
        expect(got!.queue).toBe("mail");
        expect(got!.priority).toBe(5);
        expect(got!.maxAttempts).toBe(7);
        expect(got!.timeout).toBe(1234);
        expect(got!.metadata).toEqual({ tenant: "t1" });
        expect(got!.retry).toEqual({ kind: "fixed", delayMs: 250 });
        expect(got!.state).toBe(JobState.Enqueued);
        expect(got!.attempts).toBe(0);
        expect(got!.createdAt!.getTime()).toBe(T0);
        expect(got!.history).toHaveLength(1);
        expect(got!.history[0]!.state).toBe(JobState.Enqueued);
        expect(got!.history[0]!.at.getTime()).toBe(T0);
      });

      it("returns null for an unknown id", async () => {
        const { storage } = await fresh();
        expect(await storage.get("00000000-0000-4000-8000-000000000000")).toBeNull();
        expect(await storage.get("'; DROP TABLE jobs; --")).toBeNull();
      });

      it("enqueues many jobs in one call, ids in order", async () => {
        const { storage } = await fresh();
        const jobs = Array.from({ length: 50 }, (_, i) => new Job("bulk", [i]));
        const ids = await storage.enqueue(jobs);
        expect(ids).toEqual(jobs.map((j) => j.id));
        expect((await storage.stats()).states.enqueued).toBe(50);
        expect(await storage.enqueue([])).toEqual([]);
      });

      it("keeps arguments exactly, whatever they contain", async () => {
        const { storage } = await fresh();
        const args = [
          "'; DROP TABLE qml.jobs; --",
          "{hash}:tag*\n\r\t",
          "ünïcödé ✓ 🚀",
          { nested: { deep: [1, 2.5, -3, null, true, false, ""] } },
          "x".repeat(10_000),
          0,
          -0.5,
          1e21,
        ];
        const id = await storage.enqueue(new Job("echo", args));
        expect((await storage.get(id))!.arguments).toEqual(JSON.parse(JSON.stringify(args)));
      });

      it("rejects names and options that could inject into keys or queries, writing nothing", async () => {
        const { storage } = await fresh();
        const badQueues = ["", "a:b", "{x}", "q*", "a\nb", "a b", "x".repeat(65), "../q", "q'--"];
        for (const queue of badQueues) {
          await expect(storage.enqueue(new Job("ok", [], { queue }))).rejects.toBeInstanceOf(ValidationError);
        }
        const badNames = ["", "a:b", "{x}", "n*", "a\nb", "x".repeat(129), "x'; DROP TABLE jobs; --"];
        for (const name of badNames) {
          await expect(storage.enqueue(new Job(name, []))).rejects.toBeInstanceOf(ValidationError);
        }
        await expect(storage.enqueue(new Job("ok", [], { priority: 1.5 }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("ok", [], { maxAttempts: 0 }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("ok", [], { uniqueKey: "" }))).rejects.toBeInstanceOf(ValidationError);
        // A lone surrogate has no UTF-8 form: two such keys must not become one job on any store.
        await expect(storage.enqueue(new Job("ok", [], { uniqueKey: "k\ud800" }))).rejects.toBeInstanceOf(ValidationError);
        const badId = new Job("ok", []);
        badId.id = "bad\u0000id";
        await expect(storage.enqueue(badId)).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("ok", [], { runAt: new Date(NaN) }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("ok", [() => 1] as unknown[]))).rejects.toBeInstanceOf(ValidationError);
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await expect(storage.enqueue(new Job("ok", [cyclic]))).rejects.toBeInstanceOf(ValidationError);
        // A batch with one bad job writes none of it.
        await expect(storage.enqueue([new Job("ok", []), new Job("ok", [], { queue: "bad:queue" })])).rejects.toBeInstanceOf(ValidationError);
        expect((await storage.stats()).total).toBe(0);
        await expect(storage.list({ queue: "a:b" })).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.list({ name: "x'; DROP TABLE jobs; --" })).rejects.toBeInstanceOf(ValidationError);
      });
    });

    // ---------------------------------------------------------- scheduling

    describe("scheduled jobs", () => {
      it("a future runAt or delay makes a scheduled job, claimable once due", async () => {
        const { storage, clock } = await fresh();
        const a = await storage.enqueue(new Job("later", [], { runAt: new Date(T0 + 60_000) }));
        const b = await storage.enqueue(new Job("later", [], { delay: 30_000 }));
        expect((await storage.get(a))!.state).toBe(JobState.Scheduled);
        expect((await storage.get(b))!.runAt!.getTime()).toBe(T0 + 30_000);
        expect(await claimAll(storage, clock)).toHaveLength(0);
        clock.advance(30_000);
        const first = await claimAll(storage, clock);
        expect(first.map((r) => r.id)).toEqual([b]);
        clock.advance(30_000);
        expect((await claimAll(storage, clock)).map((r) => r.id)).toEqual([a]);
      });

      it("a past runAt enqueues at once", async () => {
        const { storage } = await fresh();
        const id = await storage.enqueue(new Job("now", [], { runAt: new Date(T0 - 5000) }));
        expect((await storage.get(id))!.state).toBe(JobState.Enqueued);
      });

      it("promoteDue moves due scheduled jobs to enqueued, with a history entry", async () => {
        const { storage, clock } = await fresh();
        const ids = await storage.enqueue([new Job("s", [], { delay: 1000 }), new Job("s", [], { delay: 2000 }), new Job("s", [], { delay: 60_000 })]);
        clock.advance(2000);
        expect(await storage.driver.promoteDue(clock.now(), 100)).toBe(2);
        expect(await storage.driver.promoteDue(clock.now(), 100)).toBe(0);
        const states = await Promise.all(ids.map(async (id) => (await storage.get(id))!.state));
        expect(states).toEqual([JobState.Enqueued, JobState.Enqueued, JobState.Scheduled]);
        const h = (await storage.get(ids[0]!))!.history;
        expect(h.map((e) => e.state)).toEqual([JobState.Scheduled, JobState.Enqueued]);
        expect(h[1]!.at.getTime()).toBe(T0 + 2000);
      });

      it("promoteDue respects its limit", async () => {
        const { storage, clock } = await fresh();
        await storage.enqueue(Array.from({ length: 5 }, () => new Job("s", [], { delay: 10 })));
        clock.advance(10);
        expect(await storage.driver.promoteDue(clock.now(), 3)).toBe(3);
        expect(await storage.driver.promoteDue(clock.now(), 3)).toBe(2);
      });
    });

    // ---------------------------------------------------------- uniqueness

    describe("unique keys", () => {
      it("a second job with the same key is not created; its id is the first one's", async () => {
        const { storage } = await fresh();
        const first = await storage.enqueue(new Job("u", [1], { uniqueKey: "order:42" }));
        const dupe = new Job("u", [2], { uniqueKey: "order:42" });
        const second = await storage.enqueue(dupe);
        expect(second).toBe(first);
        expect(dupe.id).toBe(first);
        expect((await storage.stats()).total).toBe(1);
        expect((await storage.get(first))!.arguments).toEqual([1]);
      });

      it("dedupes inside one batch and across concurrent enqueues", async () => {
        const { storage } = await fresh();
        const ids = await storage.enqueue([new Job("u", [], { uniqueKey: "k" }), new Job("u", [], { uniqueKey: "k" }), new Job("u", [])]);
        expect(ids[0]).toBe(ids[1]);
        expect(ids[2]).not.toBe(ids[0]);
        const racing = await Promise.all(Array.from({ length: 20 }, () => storage.enqueue(new Job("u", [], { uniqueKey: "race" }))));
        expect(new Set(racing).size).toBe(1);
        expect((await storage.stats()).total).toBe(3);
      });

      it("keeps deduping after the job finished, until it is purged", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("u", [], { uniqueKey: "once" }));
        const [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now());
        expect(await storage.enqueue(new Job("u", [], { uniqueKey: "once" }))).toBe(id);
        clock.advance(1000);
        expect(await storage.purgeFinished({ olderThan: new Date(clock.now()) })).toBe(1);
        expect(await storage.get(id)).toBeNull();
        expect(await storage.enqueue(new Job("u", [], { uniqueKey: "once" }))).not.toBe(id);
      });
    });

    // -------------------------------------------------------------- claim

    describe("claim", () => {
      it("moves jobs to processing under a lease, counting the attempt", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("c", ["a"]));
        const [r] = await claimAll(storage, clock, ["default"], 10, "server-a");
        expect(r!.id).toBe(id);
        expect(r!.args).toEqual(["a"]);
        expect(r!.state).toBe(JobState.Processing);
        expect(r!.attempts).toBe(1);
        expect(r!.leaseOwner).toBe("server-a");
        expect(r!.leaseUntil).toBe(T0 + LEASE);
        expect(r!.leaseToken).toBeGreaterThan(0);
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Processing);
        expect(got.history.at(-1)).toMatchObject({ state: JobState.Processing, worker: "server-a" });
        expect(await claimAll(storage, clock)).toHaveLength(0);
      });

      it("a claimed job's record is the stored one, history included, also through JSON", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("rec", [{ a: 1 }], { metadata: { m: "x" }, uniqueKey: "rec-1" }));
        const [claimed] = await claimAll(storage, clock);
        const stored = (await storage.driver.get([id]))[0]!;
        expect(claimed!.history).toEqual(stored.history);
        expect(claimed!.history.map((h) => h.state)).toEqual([JobState.Enqueued, JobState.Processing]);
        expect(JSON.parse(JSON.stringify(claimed))).toEqual(JSON.parse(JSON.stringify(stored)));
      });

      it("takes higher priority first, then the oldest", async () => {
        const { storage, clock } = await fresh();
        const low = await storage.enqueue(new Job("p", ["low"], { priority: -1 }));
        clock.advance(1);
        const a = await storage.enqueue(new Job("p", ["a"]));
        clock.advance(1);
        const high = await storage.enqueue(new Job("p", ["high"], { priority: 10 }));
        clock.advance(1);
        const b = await storage.enqueue(new Job("p", ["b"]));
        const order = (await claimAll(storage, clock)).map((r) => r.id);
        expect(order).toEqual([high, a, b, low]);
      });

      it("is FIFO among equals, even within one millisecond", async () => {
        const { storage, clock } = await fresh();
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) ids.push(await storage.enqueue(new Job("fifo", [i])));
        const order: string[] = [];
        for (let i = 0; i < 4; i++) order.push(...(await claimAll(storage, clock, ["default"], 5)).map((r) => r.id));
        expect(order).toEqual(ids);
      });

      it("takes queues in the order asked and only those", async () => {
        const { storage, clock } = await fresh();
        const low = await storage.enqueue(new Job("q", [], { queue: "low", priority: 100 }));
        const crit = await storage.enqueue(new Job("q", [], { queue: "critical" }));
        const def = await storage.enqueue(new Job("q", [], { queue: "default" }));
        await storage.enqueue(new Job("q", [], { queue: "other" }));
        const got = (await claimAll(storage, clock, ["critical", "default", "low"], 10)).map((r) => r.id);
        expect(got).toEqual([crit, def, low]);
        expect(await claimAll(storage, clock, ["critical", "default", "low"])).toHaveLength(0);
      });

      it("respects the limit", async () => {
        const { storage, clock } = await fresh();
        await storage.enqueue(Array.from({ length: 10 }, (_, i) => new Job("l", [i])));
        expect(await claimAll(storage, clock, ["default"], 3)).toHaveLength(3);
        expect(await claimAll(storage, clock, ["default"], 100)).toHaveLength(7);
      });

      it("gives each job to exactly one of many concurrent claimers", async () => {
        const { storage, clock } = await fresh();
        const n = 300;
        await storage.enqueue(Array.from({ length: n }, (_, i) => new Job("race", [i])));
        const seen = new Map<string, number>();
        await Promise.all(
          Array.from({ length: 20 }, async (_, w) => {
            for (;;) {
              const got = await claimAll(storage, clock, ["default"], 7, `w${w}`);
              if (got.length === 0) break;
              for (const r of got) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
            }
          }),
        );
        expect(seen.size).toBe(n);
        expect([...seen.values()].every((c) => c === 1)).toBe(true);
        expect((await storage.stats()).states.processing).toBe(n);
      });

      it("claims due retries and scheduled jobs directly", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("d", [], { delay: 5000 }));
        clock.advance(5000);
        const [r] = await claimAll(storage, clock);
        expect(r!.id).toBe(id);
        const states = (await storage.get(id))!.history.map((h) => h.state);
        expect(states[0]).toBe(JobState.Scheduled);
        expect(states.at(-1)).toBe(JobState.Processing);
      });
    });

    // ----------------------------------------------------------- complete

    describe("complete", () => {
      it("records success with its result and history", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("ok", []));
        const [r] = await claimAll(storage, clock);
        clock.advance(250);
        const res = await storage.driver.complete([outcome(r!, JobState.Succeeded, { result: { sent: true }, reason: "succeeded" })], clock.now());
        expect(res).toEqual([{ id, status: "applied" }]);
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Succeeded);
        expect(got.result).toEqual({ sent: true });
        expect(got.finishedAt!.getTime()).toBe(T0 + 250);
        expect(got.leaseOwner).toBeUndefined();
        expect(got.history.map((h) => h.state)).toEqual([JobState.Enqueued, JobState.Processing, JobState.Succeeded]);
        expect(got.history.at(-1)!.worker).toBe("w1/1");
      });

      it("records a retry: not claimable before runAt, then attempt 2", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("flaky", [], { maxAttempts: 3 }));
        const [r] = await claimAll(storage, clock);
        const error = { name: "Error", message: "boom", stack: "Error: boom\n    at x" };
        await storage.driver.complete([outcome(r!, JobState.AwaitingRetry, { runAt: clock.now() + 10_000, error })], clock.now());
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.AwaitingRetry);
        expect(got.error).toEqual(error);
        expect(got.runAt!.getTime()).toBe(T0 + 10_000);
        expect(await claimAll(storage, clock)).toHaveLength(0);
        clock.advance(10_000);
        const [again] = await claimAll(storage, clock);
        expect(again!.attempts).toBe(2);
        expect(again!.leaseToken).toBeGreaterThan(r!.leaseToken);
      });

      it("records failure with the error", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("bad", []));
        const [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.Failed, { error: { name: "TypeError", message: "<script>alert(1)</script>" } })], clock.now());
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Failed);
        expect(got.error).toMatchObject({ name: "TypeError", message: "<script>alert(1)</script>" });
        expect(got.finishedAt).toBeDefined();
      });

      it("a release puts the job back without counting the attempt", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("rel", []));
        const [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.Enqueued, { reason: "released: shutdown" })], clock.now());
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Enqueued);
        expect(got.attempts).toBe(0);
        const [again] = await claimAll(storage, clock);
        expect(again!.attempts).toBe(1);
      });

      it("applies a batch of outcomes in one call and reports each", async () => {
        const { storage, clock } = await fresh();
        await storage.enqueue(Array.from({ length: 10 }, (_, i) => new Job("b", [i])));
        const rs = await claimAll(storage, clock);
        const stale = { ...outcome(rs[0]!, JobState.Succeeded), token: rs[0]!.leaseToken + 1000 };
        const results = await storage.driver.complete([stale, ...rs.slice(1).map((r) => outcome(r, JobState.Succeeded))], clock.now());
        expect(results[0]).toEqual({ id: rs[0]!.id, status: "lost" });
        expect(results.slice(1).every((x) => x.status === "applied")).toBe(true);
        const st = await storage.stats();
        expect(st.states.succeeded).toBe(9);
        expect(st.states.processing).toBe(1);
      });

      it("of two outcomes for one job in one batch, the first applies and the second is lost", async () => {
        const { storage, clock } = await fresh();
        const [a, b] = (await storage.enqueue([new Job("dup", ["a"]), new Job("dup", ["b"])])) as [string, string];
        const claimed = await claimAll(storage, clock);
        const ra = claimed.find((r) => r.id === a)!;
        const rb = claimed.find((r) => r.id === b)!;
        const res = await storage.driver.complete(
          [outcome(ra, JobState.Succeeded), outcome(rb, JobState.Succeeded), outcome(ra, JobState.Failed)],
          clock.now(),
        );
        expect(res.map((r) => [r.id, r.status])).toEqual([
          [a, "applied"],
          [b, "applied"],
          [a, "lost"],
        ]);
        expect((await storage.get(a))!.state).toBe(JobState.Succeeded);
      });

      it("a job completed twice is recorded once", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("twice", []));
        const [r] = await claimAll(storage, clock);
        expect((await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now()))[0]!.status).toBe("applied");
        expect((await storage.driver.complete([outcome(r!, JobState.Failed)], clock.now()))[0]!.status).toBe("lost");
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Succeeded);
        expect(got.history.filter((h) => h.state === JobState.Succeeded || h.state === JobState.Failed)).toHaveLength(1);
      });
    });

    // -------------------------------------------------- leases and fencing

    describe("leases and fencing", () => {
      it("extendLeases renews only the leases still held", async () => {
        const { storage, clock } = await fresh();
        await storage.enqueue([new Job("l", []), new Job("l", [])]);
        const [a, b] = await claimAll(storage, clock);
        clock.advance(LEASE - 1000);
        const owned = await storage.driver.extendLeases(
          [
            { id: a!.id, token: a!.leaseToken },
            { id: b!.id, token: b!.leaseToken + 1 },
            { id: "nope", token: 1 },
          ],
          LEASE,
          clock.now(),
        );
        expect(owned).toEqual([a!.id]);
        expect((await storage.get(a!.id))!.leaseUntil!.getTime()).toBe(clock.now() + LEASE);
        clock.advance(2000); // past b's lease, within a's renewed one
        expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(1);
        expect((await storage.get(a!.id))!.state).toBe(JobState.Processing);
        expect((await storage.get(b!.id))!.state).toBe(JobState.Enqueued);
      });

      it("reclaims expired leases back to enqueued, attempt counted, token bumped", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("hang", [], { maxAttempts: 3 }));
        const [r] = await claimAll(storage, clock);
        clock.advance(LEASE);
        expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(0); // lease ends at exactly now: not yet expired
        clock.advance(1);
        expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(1);
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Enqueued);
        expect(got.attempts).toBe(1);
        expect(got.leaseToken).toBeGreaterThan(r!.leaseToken);
        expect(got.history.at(-1)!.state).toBe(JobState.Enqueued);
        const [again] = await claimAll(storage, clock, ["default"], 10, "w2");
        expect(again!.attempts).toBe(2);
      });

      it("fails a reclaimed job whose attempts are used up", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("hang", [], { maxAttempts: 1 }));
        await claimAll(storage, clock);
        clock.advance(LEASE + 1);
        expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(1);
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Failed);
        expect(got.error?.message).toMatch(/lease expired/);
        expect((await storage.stats()).states.failed).toBe(1);
      });

      it("a stale owner's complete, extend and progress change nothing after a reclaim", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("fence", [], { maxAttempts: 5 }));
        const [stale] = await claimAll(storage, clock, ["default"], 1, "zombie");
        clock.advance(LEASE + 1);
        await storage.driver.reclaimExpired(clock.now(), 100);
        const [fresh2] = await claimAll(storage, clock, ["default"], 1, "new-owner");
        const before = (await storage.get(id))!;

        expect(await storage.driver.complete([outcome(stale!, JobState.Succeeded, { result: "zombie" })], clock.now())).toEqual([{ id, status: "lost" }]);
        expect(await storage.driver.complete([outcome(stale!, JobState.Failed, { error: { name: "E", message: "zombie" } })], clock.now())).toEqual([
          { id, status: "lost" },
        ]);
        expect(await storage.driver.extendLeases([{ id, token: stale!.leaseToken }], LEASE * 10, clock.now())).toEqual([]);
        expect(await storage.driver.setProgress({ id, token: stale!.leaseToken }, 99, clock.now())).toBe(false);

        const after = (await storage.get(id))!;
        expect(after.state).toBe(JobState.Processing);
        expect(after.leaseOwner).toBe("new-owner");
        expect(after.leaseUntil!.getTime()).toBe(before.leaseUntil!.getTime());
        expect(after.progress).toBeUndefined();
        expect(after.history).toHaveLength(before.history.length);

        expect((await storage.driver.complete([outcome(fresh2!, JobState.Succeeded, { result: "real" })], clock.now()))[0]!.status).toBe("applied");
        expect((await storage.get(id))!.result).toBe("real");
      });

      it("records progress for the lease holder", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("prog", []));
        const [r] = await claimAll(storage, clock);
        expect(await storage.driver.setProgress({ id, token: r!.leaseToken }, { pct: 50 }, clock.now())).toBe(true);
        expect((await storage.get(id))!.progress).toEqual({ pct: 50 });
      });

      it("reclaimExpired respects its limit and leaves live leases alone", async () => {
        const { storage, clock } = await fresh();
        await storage.enqueue(Array.from({ length: 5 }, () => new Job("h", [])));
        await claimAll(storage, clock);
        clock.advance(LEASE + 1);
        await storage.enqueue(new Job("h", []));
        await claimAll(storage, clock);
        expect(await storage.driver.reclaimExpired(clock.now(), 3)).toBe(3);
        expect(await storage.driver.reclaimExpired(clock.now(), 10)).toBe(2);
        expect(await storage.driver.reclaimExpired(clock.now(), 10)).toBe(0);
        expect((await storage.stats()).states.processing).toBe(1);
      });
    });

    // ------------------------------------------------ delete and requeue

    describe("delete and requeue", () => {
      it("soft-deletes a job, keeping it and its history", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("del", []));
        clock.advance(10);
        expect(await storage.delete(id)).toBe(true);
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Deleted);
        expect(got.history.at(-1)).toMatchObject({ state: JobState.Deleted });
        expect(await claimAll(storage, clock)).toHaveLength(0);
        expect(await storage.delete(id)).toBe(false);
        expect(await storage.delete("unknown-id")).toBe(false);
      });

      it("deleting a running job fences its worker out", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("del", []));
        const [r] = await claimAll(storage, clock);
        expect(await storage.delete(id)).toBe(true);
        expect((await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now()))[0]!.status).toBe("lost");
        expect((await storage.get(id))!.state).toBe(JobState.Deleted);
        expect((await storage.stats()).states.processing).toBe(0);
      });

      it("requeues a failed job with its attempts reset", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("rq", [], { maxAttempts: 1 }));
        const [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.Failed, { error: { name: "E", message: "x" } })], clock.now());
        clock.advance(100);
        const job = await storage.requeue(id);
        expect(job.state).toBe(JobState.Enqueued);
        expect(job.attempts).toBe(0);
        expect(job.error).toBeUndefined();
        const [again] = await claimAll(storage, clock);
        expect(again!.id).toBe(id);
        expect(again!.attempts).toBe(1);
      });

      it("requeue runs a scheduled job now; refuses enqueued and processing jobs; unknown ids throw", async () => {
        const { storage, clock } = await fresh();
        const s = await storage.enqueue(new Job("rq", [], { delay: 3600_000 }));
        expect((await storage.requeue(s)).state).toBe(JobState.Enqueued);
        await expect(storage.requeue(s)).rejects.toBeInstanceOf(InvalidStateError);
        await claimAll(storage, clock);
        await expect(storage.requeue(s)).rejects.toBeInstanceOf(InvalidStateError);
        await expect(storage.requeue("missing")).rejects.toBeInstanceOf(NotFoundError);
      });

      it("requeue of a running-then-deleted job fences the old worker", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("rq", []));
        const [r] = await claimAll(storage, clock);
        await storage.delete(id);
        await storage.requeue(id);
        expect((await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now()))[0]!.status).toBe("lost");
        expect((await storage.get(id))!.state).toBe(JobState.Enqueued);
      });
    });

    // ---------------------------------------------------------------- list

    describe("list", () => {
      async function seed(storage: Storage, clock: ManualClock) {
        const ids: string[] = [];
        for (let i = 0; i < 12; i++) {
          ids.push(await storage.enqueue(new Job(i % 2 ? "odd" : "even", [`payload-${i}`], { queue: i < 6 ? "alpha" : "beta" })));
          clock.advance(1000);
        }
        return ids;
      }

      it("filters by state, queue, name and text", async () => {
        const { storage, clock } = await fresh();
        const ids = await seed(storage, clock);
        const claimed = await claimAll(storage, clock, ["alpha"], 2);
        expect((await storage.list({ state: JobState.Processing })).items.map((j) => j.id).sort()).toEqual(claimed.map((r) => r.id).sort());
        expect((await storage.list({ queue: "beta" })).items).toHaveLength(6);
        expect((await storage.list({ name: "odd" })).items).toHaveLength(6);
        expect((await storage.list({ name: "odd", queue: "beta" })).items).toHaveLength(3);
        const text = await storage.list({ text: "PAYLOAD-7" });
        expect(text.items.map((j) => j.id)).toEqual([ids[7]]);
        expect((await storage.list({ text: ids[3]!.slice(0, 13) })).items.map((j) => j.id)).toContain(ids[3]);
        expect((await storage.list({ state: [JobState.Enqueued, JobState.Processing] })).items).toHaveLength(12);
        expect((await storage.list({ text: "%" })).items).toHaveLength(0);
        expect((await storage.list({ text: "_" })).items).toHaveLength(0);
      });

      it("pages with a cursor: every job once, in order", async () => {
        const { storage, clock } = await fresh();
        const ids = await seed(storage, clock);
        for (const order of ["desc", "asc"] as const) {
          const seen: string[] = [];
          let cursor: string | undefined;
          for (let i = 0; i < 10; i++) {
            const page = await storage.list({}, { limit: 5, order, ...(cursor ? { cursor } : {}) });
            seen.push(...page.items.map((j) => j.id));
            cursor = page.nextCursor;
            if (!cursor) break;
          }
          expect(seen).toEqual(order === "asc" ? ids : [...ids].reverse());
        }
      });

      it("pages stably among jobs created in the same millisecond", async () => {
        const { storage } = await fresh();
        await storage.enqueue(Array.from({ length: 7 }, (_, i) => new Job("same", [i])));
        const seen = new Set<string>();
        let cursor: string | undefined;
        do {
          const page = await storage.list({}, { limit: 3, ...(cursor ? { cursor } : {}) });
          for (const j of page.items) seen.add(j.id);
          cursor = page.nextCursor;
        } while (cursor);
        expect(seen.size).toBe(7);
      });

      it("rejects a malformed cursor or page size", async () => {
        const { storage } = await fresh();
        await expect(storage.list({}, { cursor: "not-a-cursor" })).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.list({}, { limit: 0 })).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.list({ state: "bogus" as JobState })).rejects.toBeInstanceOf(ValidationError);
      });
    });

    // --------------------------------------------------------------- stats

    describe("stats", () => {
      it("counts by state and by queue, and throughput per minute and hour", async () => {
        const { storage, clock } = await fresh();
        await storage.enqueue([
          new Job("s", [], { queue: "a" }),
          new Job("s", [], { queue: "a" }),
          new Job("s", [], { queue: "b" }),
          new Job("s", [], { queue: "b", delay: 60_000 }),
        ]);
        const rs = await claimAll(storage, clock, ["a", "b"], 3);
        await storage.driver.complete([outcome(rs[0]!, JobState.Succeeded), outcome(rs[1]!, JobState.Failed)], clock.now());
        clock.advance(60_000 + 5);
        await storage.driver.promoteDue(clock.now(), 10);
        const [late] = await claimAll(storage, clock, ["b"], 1);
        const lateClaimed = late!.id;
        // rs[2] (queue b) is still processing; late is the scheduled one
        await storage.driver.complete([outcome(late!, JobState.Succeeded)], clock.now());
        const st = await storage.stats({ minutes: 5, hours: 2 });
        expect(st.total).toBe(4);
        expect(st.states).toMatchObject({ succeeded: 2, failed: 1, processing: 1, enqueued: 0, scheduled: 0 });
        const a = st.queues.find((q) => q.name === "a")!;
        const b = st.queues.find((q) => q.name === "b")!;
        expect(a.counts).toMatchObject({ succeeded: 1, failed: 1 });
        expect(b.counts).toMatchObject({ processing: 1, succeeded: 1 });
        expect(lateClaimed).toBeDefined();
        expect(st.perMinute).toHaveLength(5);
        const m = st.perMinute;
        expect(m.at(-1)).toMatchObject({ succeeded: 1, failed: 0 });
        expect(m.at(-2)).toMatchObject({ succeeded: 1, failed: 1 });
        expect(m.at(-1)!.at - m.at(-2)!.at).toBe(60_000);
        expect(st.perHour).toHaveLength(2);
        expect(st.perHour.at(-1)).toMatchObject({ succeeded: 2, failed: 1 });
      });

      it("is all zeros when empty", async () => {
        const { storage } = await fresh();
        const st = await storage.stats();
        expect(st.total).toBe(0);
        expect(Object.values(st.states).every((n) => n === 0)).toBe(true);
        expect(st.perMinute.every((b) => b.succeeded === 0 && b.failed === 0)).toBe(true);
      });
    });

    // --------------------------------------------------------------- purge

    describe("purge", () => {
      it("hard-deletes finished jobs older than the cutoff only", async () => {
        const { storage, clock } = await fresh();
        const [old] = await storage.enqueue([new Job("p", [])]);
        const [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now());
        clock.advance(10_000);
        const live = await storage.enqueue(new Job("p", []));
        const recent = await storage.enqueue(new Job("p", []));
        await storage.delete(recent);
        expect(await storage.driver.purge([JobState.Succeeded, JobState.Deleted], clock.now() - 5000, 100)).toBe(1);
        expect(await storage.get(old!)).toBeNull();
        expect(await storage.get(live)).not.toBeNull();
        expect(await storage.get(recent)).not.toBeNull();
        expect((await storage.stats()).total).toBe(2);
      });
    });

    // ----------------------------------------------------------- recurring

    describe("recurring", () => {
      it("adds, updates (keeping createdAt), lists and removes definitions", async () => {
        const { storage, clock } = await fresh();
        const def = await storage.addOrUpdateRecurring("daily-report", "0 6 * * *", "report", ["daily"], { queue: "reports", timezone: "Europe/Paris" });
        expect(def.createdAt).toBe(T0);
        clock.advance(5000);
        await storage.addOrUpdateRecurring("daily-report", "0 7 * * *", "report", ["daily2"], { queue: "reports" });
        await storage.addOrUpdateRecurring("hourly", "0 * * * *", "tick", []);
        const list = await storage.listRecurring();
        expect(list.map((d) => d.id)).toEqual(["daily-report", "hourly"]);
        expect(list[0]).toMatchObject({ cron: "0 7 * * *", args: ["daily2"], createdAt: T0, updatedAt: T0 + 5000 });
        expect(list[0]!.options.queue).toBe("reports");
        expect(await storage.deleteRecurring("hourly")).toBe(true);
        expect(await storage.deleteRecurring("hourly")).toBe(false);
        expect((await storage.listRecurring()).map((d) => d.id)).toEqual(["daily-report"]);
      });

      it("rejects invalid cron expressions, time zones and ids", async () => {
        const { storage } = await fresh();
        await expect(storage.addOrUpdateRecurring("x", "not a cron", "job")).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.addOrUpdateRecurring("x", "* * * * *", "job", [], { timezone: "Mars/Olympus" })).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.addOrUpdateRecurring("x:y", "* * * * *", "job")).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.addOrUpdateRecurring("x", "* * * * *", "job", [], { queue: "{bad}" })).rejects.toBeInstanceOf(ValidationError);
        expect(await storage.listRecurring()).toEqual([]);
      });

      it("markRecurringFired moves forward only", async () => {
        const { storage } = await fresh();
        await storage.addOrUpdateRecurring("r", "* * * * *", "job");
        expect(await storage.driver.markRecurringFired("r", T0 + 60_000)).toBe(true);
        expect(await storage.driver.markRecurringFired("r", T0 + 60_000)).toBe(false);
        expect(await storage.driver.markRecurringFired("r", T0)).toBe(false);
        expect(await storage.driver.markRecurringFired("missing", T0)).toBe(false);
        await storage.addOrUpdateRecurring("r", "*/2 * * * *", "job");
        expect((await storage.listRecurring())[0]!.lastSlot).toBe(T0 + 60_000);
      });

      it("fires each slot once, with overlapping schedulers and a clock that jumps back", async () => {
        const { storage, clock } = await fresh();
        await storage.addOrUpdateRecurring("every-minute", "* * * * *", "rec", ["x"]);
        const events = new Emitter<JobEventMap>();
        const schedulers = Array.from({ length: 4 }, () => new Scheduler(storage, events, silentLogger));
        clock.advance(60_000); // 12:01:00, the first slot after creation
        await Promise.all(schedulers.map((s) => s.fireRecurring(clock.now())));
        let jobs = (await storage.list({ name: "rec" })).items;
        expect(jobs).toHaveLength(1);
        expect(jobs[0]!.uniqueKey).toBe(`recurring:every-minute:${new Date(T0 + 60_000).toISOString()}`);
        expect(jobs[0]!.arguments).toEqual(["x"]);
        clock.advance(30_000); // same slot
        await Promise.all(schedulers.map((s) => s.fireRecurring(clock.now())));
        expect((await storage.list({ name: "rec" })).items).toHaveLength(1);
        clock.advance(30_000); // 12:02:00
        await Promise.all(schedulers.map((s) => s.fireRecurring(clock.now())));
        expect((await storage.list({ name: "rec" })).items).toHaveLength(2);
        // Purge the fired jobs so that only lastSlot stands between a jump back and a re-fire.
        await storage.driver.purge([JobState.Enqueued], clock.now() + 1, 100);
        clock.set(T0 + 60_000 + 10); // back to 12:01:00.010
        await Promise.all(schedulers.map((s) => s.fireRecurring(clock.now())));
        jobs = (await storage.list({ name: "rec" })).items;
        expect(jobs).toHaveLength(0);
      });

      it("does not fire a slot from before the definition existed", async () => {
        const { storage, clock } = await fresh();
        clock.advance(30_000); // 12:00:30
        await storage.addOrUpdateRecurring("r", "* * * * *", "rec");
        const s = new Scheduler(storage, new Emitter<JobEventMap>(), silentLogger);
        expect(await s.fireRecurring(clock.now())).toBe(0);
        clock.advance(30_000);
        expect(await s.fireRecurring(clock.now())).toBe(1);
      });
    });

    // ------------------------------------------------------------ history

    describe("history", () => {
      it("records every transition of a full lifecycle in order", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("life", [], { delay: 1000, maxAttempts: 3 }));
        clock.advance(1000);
        await storage.driver.promoteDue(clock.now(), 10);
        let [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.AwaitingRetry, { runAt: clock.now() + 500, error: { name: "E", message: "1" } })], clock.now());
        clock.advance(500);
        [r] = await claimAll(storage, clock);
        clock.advance(LEASE + 1);
        await storage.driver.reclaimExpired(clock.now(), 10);
        [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.Succeeded)], clock.now());
        const h = (await storage.get(id))!.history;
        expect(h.map((e) => e.state)).toEqual([
          JobState.Scheduled,
          JobState.Enqueued,
          JobState.Processing,
          JobState.AwaitingRetry,
          JobState.Enqueued,
          JobState.Processing,
          JobState.Enqueued,
          JobState.Processing,
          JobState.Succeeded,
        ]);
        for (let i = 1; i < h.length; i++) expect(h[i]!.at.getTime()).toBeGreaterThanOrEqual(h[i - 1]!.at.getTime());
      });

      it("keeps history bounded", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("loop", [], { maxAttempts: 1000 }));
        for (let i = 0; i < 40; i++) {
          const [r] = await claimAll(storage, clock);
          await storage.driver.complete([outcome(r!, JobState.Enqueued)], clock.now());
        }
        const h = (await storage.get(id))!.history;
        expect(h.length).toBeLessThanOrEqual(50);
        expect(h.at(-1)!.state).toBe(JobState.Enqueued);
      });
    });

    // ------------------------------------------------ one set of input rules

    describe("input rules, identical on every backend", () => {
      const NUL = "a\u0000b";
      const LONE = "a\ud800b";

      it("refuses U+0000 and unpaired surrogates in an id, writing nothing", async () => {
        const { storage } = await fresh();
        for (const id of [NUL, LONE, "\udc00", "x\u0000"]) {
          const job = new Job("ok", []);
          job.id = id;
          await expect(storage.enqueue(job)).rejects.toMatchObject({ name: "ValidationError", field: "id" });
          expect(await storage.get(id)).toBeNull();
          expect(await storage.delete(id)).toBe(false);
          await expect(storage.requeue(id)).rejects.toBeInstanceOf(NotFoundError);
        }
        expect((await storage.stats()).total).toBe(0);
      });

      it("refuses U+0000 and unpaired surrogates in a unique key, writing nothing", async () => {
        const { storage } = await fresh();
        for (const uniqueKey of [NUL, LONE, "k\ud800", "\u0000"]) {
          await expect(storage.enqueue(new Job("ok", [], { uniqueKey }))).rejects.toMatchObject({ name: "ValidationError", field: "uniqueKey" });
        }
        expect((await storage.stats()).total).toBe(0);
        // Well-formed text of any script is a key like any other.
        const a = await storage.enqueue(new Job("ok", [], { uniqueKey: "ключ:🚀:\u00e9" }));
        expect(await storage.enqueue(new Job("ok", [], { uniqueKey: "ключ:🚀:\u00e9" }))).toBe(a);
      });

      it("keeps U+0000 and unpaired surrogates in arguments exactly", async () => {
        const { storage, clock } = await fresh();
        const args = [NUL, LONE, { [NUL]: LONE, k: ["\udfff", "\u0000\u0000"] }, "\ud83d\ude80"];
        const id = await storage.enqueue(new Job("echo", args));
        expect((await storage.get(id))!.arguments).toEqual(args);
        const [claimed] = await claimAll(storage, clock);
        expect(claimed!.args).toEqual(args);
        expect((await storage.list({ text: "ud800" })).items.length).toBeLessThanOrEqual(1);
      });

      it("refuses U+0000 and unpaired surrogates in metadata keys and values, writing nothing", async () => {
        const { storage } = await fresh();
        for (const metadata of [{ k: NUL }, { k: LONE }, { [NUL]: 1 }, { [LONE]: 1 }, { deep: [{ x: "\udc00" }] }]) {
          await expect(storage.enqueue(new Job("ok", [], { metadata }))).rejects.toMatchObject({ name: "ValidationError", field: "metadata" });
        }
        expect((await storage.stats()).total).toBe(0);
        const id = await storage.enqueue(new Job("ok", [], { metadata: { ключ: "значение ✓", n: 1, nested: { a: [true, null] } } }));
        expect((await storage.get(id))!.metadata).toEqual({ ключ: "значение ✓", n: 1, nested: { a: [true, null] } });
      });

      it("refuses U+0000 and unpaired surrogates in a search text", async () => {
        const { storage } = await fresh();
        await expect(storage.list({ text: NUL })).rejects.toMatchObject({ name: "ValidationError", field: "text" });
        await expect(storage.list({ text: LONE })).rejects.toMatchObject({ name: "ValidationError", field: "text" });
      });

      it("stores the text of a worker's error with U+0000 and unpaired surrogates replaced, the same everywhere", async () => {
        const { storage, clock } = await fresh();
        const registry = new WorkerRegistry().register("bad-text", () => {
          throw new Error(`boom ${NUL} ${LONE}`);
        });
        const id = await storage.enqueue(new Job("bad-text", [], { maxAttempts: 1 }));
        const server = new BackgroundJobServer(
          storage,
          registry,
          new ServerConfig("rules").workerCount(1).pollingInterval(10).clock(clock).logger(silentLogger),
        );
        const failed = new Promise<void>((resolve) => server.on("job:failed", () => resolve()));
        await server.start();
        await failed;
        await server.stop();
        const job = (await storage.get(id))!;
        expect(job.state).toBe(JobState.Failed);
        expect(job.error!.message).toBe("boom a\ufffdb a\ufffdb");
        expect(job.history.at(-1)!.reason).toContain("boom a\ufffdb a\ufffdb");
      });
    });

    // ---------------------------------------------------- batch operations

    describe("batch operations", () => {
      it("reads many jobs in one call, in the order asked, null where absent", async () => {
        const { storage } = await fresh();
        const ids = await storage.enqueue(Array.from({ length: 5 }, (_, i) => new Job("many", [i])));
        const got = await storage.getMany([ids[3]!, "missing", ids[0]!, "bad\u0000id", ids[3]!]);
        expect(got.map((j) => j?.arguments[0] ?? null)).toEqual([3, null, 0, null, 3]);
        const recs = await storage.driver.get([ids[1]!, "nope", ids[2]!]);
        expect(recs.map((r) => r?.id ?? null)).toEqual([ids[1], null, ids[2]]);
        expect(await storage.driver.get([])).toEqual([]);
      });

      it("deletes and requeues many jobs, one result each", async () => {
        const { storage, clock } = await fresh();
        const ids = await storage.enqueue(Array.from({ length: 6 }, (_, i) => new Job("bulk", [i], { maxAttempts: 1 })));
        const claimed = await claimAll(storage, clock, ["default"], 2);
        await storage.driver.complete(
          [outcome(claimed[0]!, JobState.Failed, { error: { name: "E", message: "x" } }), outcome(claimed[1]!, JobState.Succeeded)],
          clock.now(),
        );
        // ids[0] failed, ids[1] succeeded, the rest enqueued.
        const retried = await storage.requeue([ids[0]!, ids[1]!, ids[2]!, "missing"], { from: [JobState.Failed, JobState.AwaitingRetry] });
        expect(retried).toEqual([
          { id: ids[0], status: "applied", state: JobState.Enqueued },
          { id: ids[1], status: "invalid_state", state: JobState.Succeeded },
          { id: ids[2], status: "invalid_state", state: JobState.Enqueued },
          { id: "missing", status: "not_found" },
        ]);
        expect((await storage.get(ids[0]!))!.attempts).toBe(0);
        const deleted = await storage.delete([ids[2]!, ids[3]!, ids[3]!, "bad\u0000"]);
        expect(deleted).toEqual([
          { id: ids[2], status: "applied", state: JobState.Deleted },
          { id: ids[3], status: "applied", state: JobState.Deleted },
          { id: "bad\u0000", status: "not_found" },
        ]);
        expect((await storage.delete([ids[2]!]))[0]!.status).toBe("invalid_state");
        const st = await storage.stats();
        expect(st.states).toMatchObject({ deleted: 2, succeeded: 1, enqueued: 3 });
      });

      it("transitions a thousand jobs in a few calls", async () => {
        const { storage } = await fresh();
        const ids = await storage.enqueue(Array.from({ length: 1000 }, (_, i) => new Job("big", [i])));
        const res = await storage.delete(ids);
        expect(res.filter((r) => r.status === "applied")).toHaveLength(1000);
        expect((await storage.stats()).states.deleted).toBe(1000);
        const back = await storage.requeue(ids);
        expect(back.every((r) => r.status === "applied")).toBe(true);
        expect((await storage.stats()).states.enqueued).toBe(1000);
      });

      it("purgeFinished refuses states that are not finished", async () => {
        const { storage } = await fresh();
        const id = await storage.enqueue(new Job("live", []));
        for (const s of [JobState.Enqueued, JobState.Processing, JobState.Scheduled, JobState.AwaitingRetry]) {
          await expect(storage.purgeFinished({ states: [JobState.Succeeded, s] })).rejects.toMatchObject({ name: "ValidationError", field: "states" });
        }
        expect(await storage.get(id)).not.toBeNull();
        expect(await storage.purgeFinished({ states: [JobState.Succeeded] })).toBe(0);
      });
    });

    // ------------------------------------------------------------ releases

    describe("releases", () => {
      it("a released job keeps its place at the head of its queue", async () => {
        const { storage, clock } = await fresh();
        const first = await storage.enqueue(new Job("head", [1]));
        clock.advance(10);
        const later = await storage.enqueue(new Job("head", [2]));
        const [r] = await claimAll(storage, clock, ["default"], 1);
        expect(r!.id).toBe(first);
        clock.advance(1000);
        await storage.driver.complete([outcome(r!, JobState.Enqueued, { reason: "released" })], clock.now());
        expect((await storage.get(first))!.runAt!.getTime()).toBe(T0);
        const order = (await claimAll(storage, clock, ["default"], 2)).map((x) => x.id);
        expect(order).toEqual([first, later]);
      });

      it("a released job keeps its place among jobs enqueued in the same millisecond", async () => {
        const { storage, clock } = await fresh();
        const ids = await storage.enqueue([new Job("tie", [0]), new Job("tie", [1]), new Job("tie", [2])]);
        const [r] = await claimAll(storage, clock, ["default"], 1);
        expect(r!.id).toBe(ids[0]);
        await storage.driver.complete([outcome(r!, JobState.Enqueued, { reason: "released" })], clock.now());
        expect((await claimAll(storage, clock, ["default"], 3)).map((x) => x.id)).toEqual(ids);
      });

      it("a release that counts its attempt keeps attempts", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("cut", [], { maxAttempts: 5 }));
        const [r] = await claimAll(storage, clock);
        await storage.driver.complete([outcome(r!, JobState.Enqueued, { reason: "cut off", countAttempt: true })], clock.now());
        const got = (await storage.get(id))!;
        expect(got.state).toBe(JobState.Enqueued);
        expect(got.attempts).toBe(1);
        const [again] = await claimAll(storage, clock);
        expect(again!.attempts).toBe(2);
      });
    });

    // --------------------------------------------------------- pause and resume

    describe("paused queues", () => {
      it("a paused queue accepts jobs and claims none; resumed, it claims them in order; other queues go on", async () => {
        const { storage, clock } = await fresh();
        await storage.pauseQueue("mail");
        expect(await storage.pausedQueues()).toEqual(["mail"]);
        const [m1, m2] = await storage.enqueue([new Job("p", [1], { queue: "mail" }), new Job("p", [2], { queue: "mail" })]);
        const other = await storage.enqueue(new Job("p", [3], { queue: "default" }));
        expect((await claimAll(storage, clock, ["mail", "default"], 10)).map((r) => r.id)).toEqual([other]);
        expect((await storage.stats()).states.enqueued).toBe(2);
        await storage.pauseQueue("mail"); // idempotent
        await storage.resumeQueue("mail");
        await storage.resumeQueue("mail");
        expect(await storage.pausedQueues()).toEqual([]);
        expect((await claimAll(storage, clock, ["mail"], 10)).map((r) => r.id)).toEqual([m1, m2]);
      });

      it("a paused queue promotes nothing into a claim either (due scheduled jobs wait)", async () => {
        const { storage, clock } = await fresh();
        await storage.pauseQueue("default");
        const id = await storage.enqueue(new Job("p", [], { delay: 1000 }));
        clock.advance(1000);
        expect(await claimAll(storage, clock)).toEqual([]);
        await storage.resumeQueue("default");
        expect((await claimAll(storage, clock)).map((r) => r.id)).toEqual([id]);
      });

      it("refuses an invalid queue name", async () => {
        const { storage } = await fresh();
        await expect(storage.pauseQueue("a:b")).rejects.toBeInstanceOf(ValidationError);
      });
    });

    // -------------------------------------------------------- deduplication

    describe("deduplication modes", () => {
      it("uniqueTtl: the key dedupes for its window only, however long the job is kept", async () => {
        const { storage, clock } = await fresh();
        const first = await storage.enqueue(new Job("t", [1], { uniqueKey: "report:7", uniqueTtl: 60_000 }));
        clock.advance(59_999);
        expect(await storage.enqueue(new Job("t", [2], { uniqueKey: "report:7", uniqueTtl: 60_000 }))).toBe(first);
        clock.advance(1);
        const second = await storage.enqueue(new Job("t", [3], { uniqueKey: "report:7", uniqueTtl: 60_000 }));
        expect(second).not.toBe(first);
        expect((await storage.get(first))!.state).toBe(JobState.Enqueued);
        expect((await storage.get(first))!.uniqueKey).toBeUndefined();
        expect((await storage.get(second))!.uniqueKey).toBe("report:7");
        expect(await storage.enqueue(new Job("t", [4], { uniqueKey: "report:7" }))).toBe(second);
      });

      it("debounce: a newer enqueue replaces the pending job's arguments and delay, keeping its id", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("d", [1], { uniqueKey: "search:ada", uniqueMode: "debounce", delay: 1000 }));
        clock.advance(500);
        const again = new Job("d", [2], { uniqueKey: "search:ada", uniqueMode: "debounce", delay: 1000 });
        expect(await storage.enqueue(again)).toBe(id);
        const job = (await storage.get(id))!;
        expect(job.arguments).toEqual([2]);
        expect(job.runAt!.getTime()).toBe(clock.now() + 1000);
        expect(job.state).toBe(JobState.Scheduled);
        expect(job.history.at(-1)).toMatchObject({ state: JobState.Scheduled, reason: "debounced" });
        expect((await storage.stats()).total).toBe(1);
        clock.advance(999);
        expect(await claimAll(storage, clock)).toEqual([]);
        clock.advance(1);
        const [claimed] = await claimAll(storage, clock);
        expect(claimed!.args).toEqual([2]);
      });

      it("debounce: once the job runs, a newer enqueue makes a new job and the key moves to it", async () => {
        const { storage, clock } = await fresh();
        const id = await storage.enqueue(new Job("d", [1], { uniqueKey: "k", uniqueMode: "debounce" }));
        await claimAll(storage, clock);
        const next = await storage.enqueue(new Job("d", [2], { uniqueKey: "k", uniqueMode: "debounce" }));
        expect(next).not.toBe(id);
        expect((await storage.get(id))!.state).toBe(JobState.Processing);
        expect((await storage.get(next))!.arguments).toEqual([2]);
        expect(await storage.enqueue(new Job("d", [3], { uniqueKey: "k", uniqueMode: "debounce" }))).toBe(next);
        expect((await storage.get(next))!.arguments).toEqual([3]);
      });

      it("debounce within one batch: the last one wins", async () => {
        const { storage } = await fresh();
        const ids = await storage.enqueue([1, 2, 3].map((n) => new Job("d", [n], { uniqueKey: "b", uniqueMode: "debounce" })));
        expect(new Set(ids).size).toBe(1);
        expect((await storage.get(ids[0]!))!.arguments).toEqual([3]);
      });

      it("refuses a mode or a window without a key, and a window out of bounds", async () => {
        const { storage } = await fresh();
        await expect(storage.enqueue(new Job("d", [], { uniqueMode: "debounce" }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("d", [], { uniqueTtl: 1000 }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("d", [], { uniqueKey: "k", uniqueTtl: 0 }))).rejects.toBeInstanceOf(ValidationError);
        expect((await storage.stats()).total).toBe(0);
      });
    });

    // --------------------------------------------------- concurrency and rate limits

    describe("concurrency and rate limits", () => {
      const key = (limit: number) => ({ concurrency: { key: "customer:42", limit } });

      it("claims at most the limit of one key across claimers; other jobs are not held back", async () => {
        const { storage, clock } = await fresh();
        const keyed = await storage.enqueue([1, 2, 3, 4].map((n) => new Job("c", [n], key(2))));
        const free = await storage.enqueue(new Job("c", [0]));
        const first = await claimAll(storage, clock, ["default"], 10, "w1");
        expect(first.map((r) => r.id).sort()).toEqual([keyed[0], keyed[1], free].sort());
        expect(await claimAll(storage, clock, ["default"], 10, "w2")).toEqual([]);
        expect((await storage.get(keyed[2]!))!.state).toBe(JobState.Enqueued);
        const back = (await storage.get(keyed[0]!))!;
        expect(back.concurrency).toEqual({ key: "customer:42", limit: 2 });
      });

      it("every way out of processing frees the slot: success, retry, release, failure, lease expiry, delete", async () => {
        const { storage, clock } = await fresh();
        const ids = await storage.enqueue([1, 2, 3, 4, 5, 6, 7].map((n) => new Job("c", [n], key(1))));
        const take = async () => {
          const got = await claimAll(storage, clock, ["default"], 10);
          expect(got.length).toBe(1);
          expect(await claimAll(storage, clock, ["default"], 10)).toEqual([]);
          return got[0]!;
        };
        let r = await take();
        await storage.driver.complete([outcome(r, JobState.Succeeded)], clock.now());
        r = await take();
        await storage.driver.complete([outcome(r, JobState.AwaitingRetry, { runAt: clock.now() + 60_000 })], clock.now());
        r = await take();
        await storage.driver.complete([outcome(r, JobState.Enqueued)], clock.now());
        r = await take();
        await storage.driver.complete([outcome(r, JobState.Failed)], clock.now());
        r = await take();
        clock.advance(LEASE + 1);
        expect(await storage.driver.reclaimExpired(clock.now(), 100)).toBe(1);
        r = await take();
        await storage.delete(r.id);
        r = await take();
        expect(ids).toContain(r.id);
      });

      it("a waiting job deleted after a slot freed does not leave the others of its key waiting", async () => {
        const { storage, clock } = await fresh();
        const [a, b, c] = await storage.enqueue([1, 2, 3].map((n) => new Job("c", [n], key(1))));
        const [held] = await claimAll(storage, clock);
        expect(held!.id).toBe(a);
        expect(await claimAll(storage, clock)).toEqual([]);
        await storage.driver.complete([outcome(held!, JobState.Succeeded)], clock.now());
        await storage.delete(b!);
        expect((await claimAll(storage, clock)).map((r) => r.id)).toEqual([c]);
      });

      it("a full key does not hold back jobs of other keys behind it", async () => {
        const { storage, clock } = await fresh();
        await storage.enqueue([1, 2, 3, 4, 5].map((n) => new Job("c", [n], { priority: 10, concurrency: { key: "a", limit: 1 } })));
        const b = await storage.enqueue(new Job("c", [], { concurrency: { key: "b", limit: 1 } }));
        expect((await claimAll(storage, clock, ["default"], 1)).length).toBe(1);
        expect((await claimAll(storage, clock, ["default"], 1)).map((r) => r.id)).toEqual([b]);
      });

      it("rate: at most the limit starts per window; the rest are scheduled for the windows that have room, in order", async () => {
        const { storage, clock } = await fresh();
        const rate = { rateLimit: { key: "api:stripe", limit: 2, interval: 1000 } };
        const ids = await storage.enqueue([1, 2, 3, 4, 5].map((n) => new Job("r", [n], rate)));
        const first = await claimAll(storage, clock, ["default"], 10);
        expect(first.map((r) => r.id)).toEqual(ids.slice(0, 2));
        const later = await storage.getMany(ids.slice(2));
        expect(later.map((j) => j!.state)).toEqual([JobState.Scheduled, JobState.Scheduled, JobState.Scheduled]);
        expect(later.map((j) => j!.runAt!.getTime() - T0)).toEqual([1000, 1000, 2000]);
        expect(later[0]!.history.at(-1)!.reason).toMatch(/^rate limited \(api:stripe\)/);
        expect(later[0]!.attempts).toBe(0);
        expect(await claimAll(storage, clock, ["default"], 10)).toEqual([]);
        clock.advance(1000);
        const fresh5 = await storage.enqueue(new Job("r", [6], rate));
        expect((await claimAll(storage, clock, ["default"], 10)).map((r) => r.id)).toEqual(ids.slice(2, 4));
        expect((await storage.get(fresh5))!.runAt!.getTime() - T0).toBe(2000);
        clock.advance(1000);
        expect((await claimAll(storage, clock, ["default"], 10)).map((r) => r.id).sort()).toEqual([ids[4], fresh5].sort());
      });

      it("rate: a start held for a window that passed is not used later; the job takes a new one", async () => {
        const { storage, clock } = await fresh();
        const rate = { rateLimit: { key: "r", limit: 1, interval: 1000 } };
        const [a, b] = await storage.enqueue([new Job("r", [1], rate), new Job("r", [2], rate)]);
        expect((await claimAll(storage, clock)).map((r) => r.id)).toEqual([a]);
        expect((await storage.get(b!))!.runAt!.getTime() - T0).toBe(1000);
        clock.advance(5500);
        const c = await storage.enqueue(new Job("r", [3], rate));
        const got = await claimAll(storage, clock);
        expect(got.length).toBe(1);
        expect((await storage.getMany([b!, c])).filter((j) => j!.state === JobState.Scheduled).length).toBe(1);
      });

      it("rate: a claim whose clock lags the housekeeping's does not hand out a window's starts twice", async () => {
        // Two servers' store-aligned clocks differ by up to half a round
        // trip: one may run the housekeeping in the next window while the
        // other still claims in this one. The key's count must outlive that
        // by RATE_COUNT_KEEP_MS.
        const { storage, clock } = await fresh();
        const rate = { rateLimit: { key: "r", limit: 2, interval: 1000 } };
        await storage.enqueue([1, 2].map((n) => new Job("r", [n], rate)));
        expect((await claimAll(storage, clock, ["default"], 10)).length).toBe(2);
        const late = await storage.enqueue([3, 4].map((n) => new Job("r", [n], rate)));
        await storage.driver.reclaimExpired(clock.now() + 1000 + RATE_COUNT_KEEP_MS - 1, 100);
        expect(await claimAll(storage, clock, ["default"], 10)).toEqual([]);
        const put = await storage.getMany(late);
        expect(put.map((j) => [j!.state, j!.runAt!.getTime() - T0])).toEqual([
          [JobState.Scheduled, 1000],
          [JobState.Scheduled, 1000],
        ]);
      });

      it("rate: a key's count is forgotten by the housekeeping RATE_COUNT_KEEP_MS after its last window, so keys used once do not pile up", async () => {
        // Only a claim whose clock was put back past the keep can tell the
        // count is gone: its window's starts are handed out afresh.
        const { storage, clock } = await fresh();
        const rate = { rateLimit: { key: "once", limit: 1, interval: 1000 } };
        await storage.enqueue(new Job("r", [1], rate));
        expect((await claimAll(storage, clock)).length).toBe(1);
        await storage.driver.reclaimExpired(T0 + 1000 + RATE_COUNT_KEEP_MS, 100);
        const again = await storage.enqueue(new Job("r", [2], rate));
        expect((await claimAll(storage, clock)).map((r) => r.id)).toEqual([again]);
      });

      it("concurrency and rate together: neither limit is exceeded", async () => {
        const { storage, clock } = await fresh();
        const both = { concurrency: { key: "k", limit: 1 }, rateLimit: { key: "k", limit: 5, interval: 1000 } };
        await storage.enqueue([1, 2, 3].map((n) => new Job("x", [n], both)));
        const got = await claimAll(storage, clock);
        expect(got.length).toBe(1);
        await storage.driver.complete([outcome(got[0]!, JobState.Succeeded)], clock.now());
        expect((await claimAll(storage, clock)).length).toBe(1);
        expect(await claimAll(storage, clock)).toEqual([]);
      });

      it("a job put off by its rate limit holds no concurrency slot", async () => {
        const { storage, clock } = await fresh();
        const both = { concurrency: { key: "k", limit: 2 }, rateLimit: { key: "r", limit: 1, interval: 1000 } };
        const [a, b] = await storage.enqueue([new Job("x", [1], both), new Job("x", [2], both)]);
        const [ran] = await claimAll(storage, clock);
        expect(ran!.id).toBe(a);
        expect((await storage.get(b!))!.state).toBe(JobState.Scheduled);
        await storage.driver.complete([outcome(ran!, JobState.Succeeded)], clock.now());
        const slot = { concurrency: { key: "k", limit: 2 } };
        await storage.enqueue([new Job("y", [3], slot), new Job("y", [4], slot)]);
        const next = await claimAll(storage, clock);
        expect(next.map((r) => r.name)).toEqual(["y", "y"]);
      });

      it("refuses a limit of 0, a key over the length limit and a window out of bounds, storing nothing", async () => {
        const { storage } = await fresh();
        await expect(storage.enqueue(new Job("c", [], key(0)))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("c", [], { concurrency: { key: "x".repeat(201), limit: 1 } }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("c", [], { concurrency: { key: "a\u0000b", limit: 1 } }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue(new Job("c", [], { rateLimit: { key: "r", limit: 1, interval: 1 } }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.enqueue([new Job("ok", []), new Job("c", [], { rateLimit: { key: "r", limit: 0, interval: 1000 } })])).rejects.toBeInstanceOf(
          ValidationError,
        );
        expect((await storage.stats()).total).toBe(0);
      });
    });

    // ----------------------------------------------------------- estimates

    describe("duration estimates", () => {
      it("are written and read back, a write replacing only the names it carries", async () => {
        const { storage, clock } = await fresh();
        expect(await storage.driver.readEstimates()).toEqual({});
        await storage.driver.writeEstimates({ send_email: 1200, "resize/image": 30_000 }, clock.now());
        await storage.driver.writeEstimates({ send_email: 900 }, clock.now());
        expect(await storage.driver.readEstimates()).toEqual({ send_email: 900, "resize/image": 30_000 });
        await storage.driver.writeEstimates({}, clock.now());
        expect(Object.keys(await storage.driver.readEstimates())).toHaveLength(2);
      });
    });

    // ---------------------------------------------------------- the clock

    describe("serverTime", () => {
      it("is the store's clock (close to this machine's here) or undefined", async () => {
        const { storage } = await fresh();
        const t = await storage.serverTime();
        if (t !== undefined) {
          expect(Number.isSafeInteger(t)).toBe(true);
          expect(Math.abs(t - Date.now())).toBeLessThan(60_000);
        } else {
          expect(storage.kind).toBe("memory");
        }
      });
    });

    // -------------------------------------------------------------- engine

    runFlowConformance(fresh);
    runStepsConformance(fresh);
    runStepsEngineConformance(fresh);

    describe("engine on this storage", () => {
      it("100 jobs with 20 workers: each runs exactly once", async () => {
        const { storage, clock } = await fresh();
        const runs = new Map<number, number>();
        const registry = new WorkerRegistry().register("count", async (job) => {
          const n = job.arguments[0] as number;
          runs.set(n, (runs.get(n) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 1));
          return WorkerResult.success(n * 2);
        });
        await storage.enqueue(Array.from({ length: 100 }, (_, i) => new Job("count", [i])));
        const server = new BackgroundJobServer(
          storage,
          registry,
          new ServerConfig("conformance").workerCount(20).pollingInterval(20).clock(clock).logger(silentLogger),
        );
        const done = new Promise<void>((resolve) => {
          let n = 0;
          server.on("job:succeeded", () => {
            if (++n === 100) resolve();
          });
        });
        await server.start();
        await done;
        await server.stop();
        expect(runs.size).toBe(100);
        expect([...runs.values()].every((c) => c === 1)).toBe(true);
        const st = await storage.stats();
        expect(st.states.succeeded).toBe(100);
        expect(st.states.processing).toBe(0);
        const one = (await storage.list({ text: "" }, { limit: 1 })).items[0]!;
        expect(one.result).toBe((one.arguments[0] as number) * 2);
      });
    });
  });
}
