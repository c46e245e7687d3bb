/**
 * examples/cloudflare_client.ts, a producer-only edge function, in workerd:
 * it writes to the same store as the qml Worker and its wake-up reaches that
 * Worker's Queue consumer, which runs the job.
 */
import { expect, it, vi } from "vitest";
import { storageFromEnv } from "../../deploy/cloudflare/src/storage.js";
import client, { type Env as ClientEnv } from "../../examples/cloudflare_client.js";
import { deployEnvFor, freshD1, suiteFor } from "./backends.js";
import { harness } from "./fixtures/worker.js";
import { testEnv } from "./helpers.js";

for (const backend of ["d1", "upstash", "neon"] as const) {
  suiteFor(backend, `edge client on ${backend}`, () => {
    it("enqueues from another Worker; the wake-up gets the job run now and its scheduled twin later", async () => {
      // On D1: the same database bound to both Workers (one `d1_databases` entry in each wrangler.jsonc).
      if (backend === "d1") await freshD1();
      const env = { ...deployEnvFor(backend), QML_QUEUE: testEnv.QML_QUEUE } as ClientEnv;
      // The qml Worker under test reads the same store.
      const storage = await storageFromEnv(env);
      harness.reset(storage);
      harness.wakeUps = true;

      const res = await client.fetch(new Request("https://signup.example/", { method: "POST", body: JSON.stringify({ email: "ada@example.com" }) }), env);
      expect(res.status).toBe(202);
      const { welcome, reminder } = (await res.json()) as { welcome: string; reminder: string };

      // Nothing but the example's wake-up can run it: no cron fires here.
      const done = await vi.waitUntil(
        async () => {
          const job = await storage.get(welcome);
          return job?.state === "succeeded" ? job : undefined;
        },
        { timeout: 10_000, interval: 50 },
      );
      expect(done.result).toEqual({ delivered: true });
      expect(done.history.find((h) => h.state === "processing")?.worker).toMatch(/^cf-queue-/);

      const later = await storage.get(reminder);
      expect(later?.state).toBe("scheduled");
      expect(later!.runAt!.getTime() - done.createdAt!.getTime()).toBeGreaterThanOrEqual(24 * 3600_000 - 5_000);
    });
  });
}
