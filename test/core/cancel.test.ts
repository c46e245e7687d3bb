/** Cancellation: unfinished jobs end `deleted` with who cancelled them; a running one's AbortSignal fires at once in this process. */
import { describe, expect, it } from "vitest";
import { CancelledError, Job, JobState, Storage, WorkerRegistry, createClient, memoryBackend } from "../../src/index.js";
import { testServer, waitForEvents } from "./helpers.js";

describe("cancellation", () => {
  it("cancels scheduled, enqueued and awaiting jobs, recording who did; finished ones are left alone", async () => {
    const storage = new Storage(memoryBackend());
    const [later, now] = await storage.enqueue([new Job("c", [], { delay: 60_000 }), new Job("c", [])]);
    expect(await storage.cancel(later!, { by: "ops (ticket 42)" })).toBe(true);
    const job = (await storage.get(later!))!;
    expect(job.state).toBe(JobState.Deleted);
    expect(job.history.at(-1)).toMatchObject({ state: JobState.Deleted, reason: "cancelled by ops (ticket 42)" });
    expect(await storage.cancel(later!)).toBe(false);
    expect(await storage.cancel(["missing", now!])).toEqual([
      { id: "missing", status: "not_found" },
      { id: now, status: "applied", state: JobState.Deleted },
    ]);
    expect(await createClient({ storage }).cancel((await storage.enqueue(new Job("c", [])))!)).toBe(true);
    expect((await storage.list({ state: JobState.Deleted })).items.map((j) => j.history.at(-1)!.reason).sort()).toEqual([
      "cancelled",
      "cancelled by client",
      "cancelled by ops (ticket 42)",
    ]);
  });

  for (const how of ["cancel", "delete"] as const) {
    it(`${how} of a running job fires its AbortSignal at once, records nothing of the run and frees its slot`, async () => {
      const storage = new Storage(memoryBackend());
      let reason: unknown;
      let after = 0;
      const registry = new WorkerRegistry()
        .register(
          "long",
          (_job, ctx) =>
            new Promise((resolve) =>
              ctx.signal.addEventListener("abort", () => {
                reason = ctx.signal.reason;
                resolve(undefined);
              }),
            ),
        )
        .register("after", () => {
          after++;
        });
      const id = await storage.enqueue(new Job("long", []));
      const server = testServer(storage, registry, (c) => c.workerCount(1).leaseDuration(60_000));
      const started = waitForEvents(server, "job:start");
      const cancelled = waitForEvents(server, "job:cancelled");
      await server.start();
      await started;
      const t0 = performance.now();
      if (how === "cancel") expect(await storage.cancel(id, { by: "a test" })).toBe(true);
      else expect(await storage.delete(id)).toBe(true);
      await cancelled;
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(reason).toBeInstanceOf(CancelledError);
      expect((reason as Error).message).toBe(how === "cancel" ? `job ${id} was cancelled by a test` : `job ${id} was deleted`);
      // The one slot is free again: the next job runs.
      const ran = waitForEvents(server, "job:succeeded");
      await storage.enqueue(new Job("after", []));
      await ran;
      await server.stop();
      expect(after).toBe(1);
      const job = (await storage.get(id))!;
      expect(job.state).toBe(JobState.Deleted);
      expect(job.history.map((h) => h.state)).toEqual([JobState.Enqueued, JobState.Processing, JobState.Deleted]);
    });
  }
});

describe("examples/flow_control.ts", () => {
  it("runs: pause holds the mail job until resumed, debounce runs once with the last arguments, throttle keeps one job, limits hold, cancel stops the export", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "examples/flow_control.ts"], { timeout: 60_000 });
    expect(stdout).toContain("paused: mail; the mail job is enqueued");
    expect(stdout).toContain("resumed: the mail job is succeeded");
    expect(stdout).toContain("throttled: 1 digest job for 3 asks");
    expect(stdout).toMatch(/concurrency: 6 exports, at most [12] at once/);
    // 9 starts at 3 per window need at least 3 windows.
    expect(Number(/rate: 9 calls over (\d+) windows/.exec(stdout)?.[1])).toBeGreaterThanOrEqual(3);
    expect(stdout).toContain("cancelled: the export is deleted (cancelled by the example)");
    expect(stdout).toMatch(/ran: send newsletter; .*reindex \["doc-7",3\]/);
    expect(stdout.match(/reindex/g)).toHaveLength(1);
  }, 60_000);
});
