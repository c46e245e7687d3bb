/**
 * The Queue notifier against the real (local) Queue binding.
 */
import { describe, expect, it } from "vitest";
import { QueueNotifier, delaySecondsUntil, MAX_DELAY_SECONDS } from "../../src/adapters/runtime/cloudflare/index.js";
import { testEnv } from "./helpers.js";

describe("QueueNotifier", () => {
  it("sends any number of wake-ups, in batches the binding accepts", async () => {
    const now = Date.now();
    // Due in 12 hours or more: nothing is delivered while the tests run.
    const far = (i: number) => ({ id: crypto.randomUUID(), queue: "default", runAt: now + 13 * 3600_000 + i });
    const tooMany = Array.from({ length: 101 }, (_, i) => ({ body: far(i), contentType: "json" as const, delaySeconds: MAX_DELAY_SECONDS }));
    await expect(testEnv.QML_QUEUE.sendBatch(tooMany)).rejects.toThrow();

    await new QueueNotifier(testEnv.QML_QUEUE).notify(Array.from({ length: 250 }, (_, i) => far(i)));
  });

  it("delays a wake-up until its job is due, within the 12 hours Queues allows", () => {
    const now = Date.UTC(2030, 0, 1);
    expect(delaySecondsUntil(now - 5_000, now)).toBe(0);
    expect(delaySecondsUntil(now + 1, now)).toBe(1);
    expect(delaySecondsUntil(now + 90_500, now)).toBe(91);
    expect(delaySecondsUntil(now + 7 * 24 * 3600_000, now)).toBe(MAX_DELAY_SECONDS);
  });
});
