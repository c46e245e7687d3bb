/**
 * SIGTERM/SIGINT on the stock server (`npm start`), against the real stores
 * (memory storage would die with the process and prove nothing; the SQLite
 * file, the default, outlives it): the drain loses no job and leaves none
 * `processing`; a second signal exits at once.
 */
import { afterAll, afterEach, expect, it } from "vitest";
import { Job, JobState, type Job as JobT } from "../../src/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { MAIN_TS, baseEnv, killLeftovers, spawnServer, type ServerProcess } from "./helpers/process.js";
import { testStore, type Backend, type TestStore } from "./helpers/stores.js";

const FIXTURE = "test/node/fixtures/shutdown-workers.mjs";

function startServer(store: TestStore, extra: Record<string, string>): ServerProcess {
  return spawnServer([process.execPath, "--import", "tsx", MAIN_TS], {
    env: baseEnv({
      ...store.env,
      PORT: "0",
      QML_WORKERS_MODULE: FIXTURE,
      QML_POLL_MS: "20",
      QML_LOG_LEVEL: "info",
      ...extra,
    }),
  });
}

/** Resolves once `n` fixture jobs have started in the server. */
async function jobsStarted(server: ServerProcess, n: number): Promise<void> {
  await server.waitForLog(() => server.logs().filter((l) => l.msg === "fixture job started").length >= n, `${n} fixture jobs to start`);
}

async function all(store: TestStore): Promise<JobT[]> {
  return (await store.storage.list({}, { limit: 500 })).items;
}

afterAll(killLeftovers);

const backends: Backend[] = ["postgres", "redis", "sqlite"];
for (const backend of backends) {
  describeWithService(backend, backend === "sqlite" || (await serviceUp(backend)), `graceful shutdown on ${backend}`, () => {
    let store: TestStore | undefined;
    afterEach(async () => {
      killLeftovers();
      await store?.cleanup();
      store = undefined;
    });

    it("SIGTERM finishes or releases running jobs, claims nothing more, and exits 0", async () => {
      store = await testStore(backend);
      // Five workers and five long jobs that outrank the rest: every worker
      // is busy when the signal comes, and the quick jobs wait behind them.
      const forever = await store.storage.enqueue([0, 1, 2].map(() => new Job("runs_forever", [], { priority: 10, maxAttempts: 1 })));
      const finishing = await store.storage.enqueue([0, 1].map(() => new Job("finishes_after_sigterm", [], { priority: 10 })));
      const waiting = await store.storage.enqueue([0, 1, 2, 3].map((i) => new Job("quick", [i])));

      const server = startServer(store, { QML_WORKERS: "5", QML_SHUTDOWN_TIMEOUT_MS: "3000" });
      await jobsStarted(server, 5);
      expect(
        server
          .logs()
          .filter((l) => l.msg === "fixture job started")
          .every((l) => l.kind !== "quick"),
      ).toBe(true);

      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      expect(server.stdout()).toContain("SIGTERM received: draining");

      const jobs = await all(store);
      expect(jobs).toHaveLength(9);
      expect(jobs.filter((j) => j.state === JobState.Processing)).toEqual([]);
      const byId = new Map(jobs.map((j) => [j.id, j]));
      for (const id of finishing) {
        expect(byId.get(id)).toMatchObject({ state: JobState.Succeeded, attempts: 1, result: { finished: true } });
      }
      for (const id of forever) {
        // Released, not failed: maxAttempts is 1, so a counted attempt would have failed it.
        const job = byId.get(id)!;
        expect(job).toMatchObject({ state: JobState.Enqueued, attempts: 0 });
        expect(job.history.at(-1)!.reason).toMatch(/released/);
      }
      for (const id of waiting) {
        const job = byId.get(id)!;
        expect(job).toMatchObject({ state: JobState.Enqueued, attempts: 0 });
        expect(job.history.map((h) => h.state)).toEqual([JobState.Enqueued]);
      }
    }, 60_000);

    if (backend !== "redis") {
      it("a second signal exits at once; the abandoned leases run out and the jobs come back", async () => {
        store = await testStore(backend);
        const ids = await store.storage.enqueue([0, 1].map(() => new Job("runs_forever", [])));
        const server = startServer(store, { QML_WORKERS: "2", QML_SHUTDOWN_TIMEOUT_MS: "600000" });
        await jobsStarted(server, 2);

        server.child.kill("SIGINT");
        await server.waitForLog((l) => l.msg === "SIGINT received: draining", "the drain to begin");
        server.child.kill("SIGTERM");
        expect(await server.exited).toBe(128 + 15);
        expect(server.stderr()).toContain("second SIGTERM: exiting at once");

        // Nothing was released: the jobs keep their leases until those end…
        for (const id of ids) expect((await store.storage.get(id))!.state).toBe(JobState.Processing);
        // …and then any server reclaims them (here: a clock past the 30 s lease).
        expect(await store.storage.driver.reclaimExpired(Date.now() + 60_000, 10)).toBe(2);
        for (const id of ids) expect((await store.storage.get(id))!.state).toBe(JobState.Enqueued);
      }, 60_000);
    }
  });
}
