/**
 * The shared consumer suite (test/serverless/consumer-suite.ts) through the
 * Workers Queue handler, in workerd, on every store the Workers path runs
 * on; and what only Workers does: reading its own dead-letter queue.
 */
import { describe, expect, it } from "vitest";
import { runConsumerSuite } from "../serverless/consumer-suite.js";
import { BACKENDS, makeStorage, suiteFor } from "./backends.js";
import { workersHarness } from "./consumer-harness.js";
import { harness } from "./fixtures/worker.js";
import { deliver } from "./helpers.js";

for (const backend of BACKENDS) {
  suiteFor(backend, `serverless consumer on Workers, ${backend}`, () => runConsumerSuite(`workers/${backend}`, workersHarness(backend)));
}

describe("the dead-letter queue, when this Worker reads it", () => {
  it("logs and acknowledges what reaches it; the jobs stay in the store for the cron tick", async () => {
    harness.reset(await makeStorage("memory"));
    const { ids, result } = await deliver([{ v: 1, queue: "default", ids: [crypto.randomUUID()], runAt: Date.now() }, "not a wake-up"], {
      queue: "qml-dlq",
      attempts: 4,
    });
    expect(result.explicitAcks.sort()).toEqual([...ids].sort());
    expect(result.retryMessages).toEqual([]);
  });
});
