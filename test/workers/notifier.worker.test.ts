/**
 * The Queue notifier against the real (local) Queue binding.
 */
import { describe, expect, it } from "vitest";
import { MAX_DELAY_SECONDS, QueueNotifier, type CfMessageSendRequest, type CfQueue, type WakeUpMessage } from "../../src/adapters/runtime/cloudflare/index.js";
import { wakeUpMessage } from "../../src/adapters/runtime/serverless/wake-up.js";
import { ManualClock } from "../../src/core/clock.js";
import { testEnv } from "./helpers.js";

describe("QueueNotifier", () => {
  it("sends any number of wake-ups, in batches the binding accepts", async () => {
    const now = Date.now();
    // Due in 11 hours: nothing is delivered while the tests run.
    const later = (i: number) => ({ id: crypto.randomUUID(), queue: `q${i % 3}`, runAt: now + 11 * 3600_000 + i * 1000 });
    const tooMany = Array.from({ length: 101 }, (_, i) => ({
      body: wakeUpMessage("default", [later(i).id], later(i).runAt),
      contentType: "json" as const,
      delaySeconds: MAX_DELAY_SECONDS,
    }));
    await expect(testEnv.QML_QUEUE.sendBatch(tooMany)).rejects.toThrow();

    // 250 distinct delays: 250 messages, in 3 sends of at most 100.
    await new QueueNotifier(testEnv.QML_QUEUE).notify(Array.from({ length: 250 }, (_, i) => later(i)));
  });

  it("groups wake-ups by queue and due second, delays each until due, and sends none beyond 12 hours", async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const now = clock.now();
    const sent: Array<CfMessageSendRequest<WakeUpMessage>> = [];
    const queue: CfQueue<WakeUpMessage> = { send: async () => undefined, sendBatch: async (m) => void sent.push(...m) };
    await new QueueNotifier(queue, { clock }).notify([
      { id: "a", queue: "default", runAt: now - 5_000 },
      { id: "b", queue: "default", runAt: now },
      { id: "c", queue: "mail", runAt: now },
      { id: "d", queue: "default", runAt: now + 90_500 },
      { id: "e", queue: "default", runAt: now + MAX_DELAY_SECONDS * 1000 },
      { id: "f", queue: "default", runAt: now + MAX_DELAY_SECONDS * 1000 + 1 },
    ]);
    expect(sent).toEqual([
      { body: { v: 1, queue: "default", ids: ["a", "b"], runAt: now }, contentType: "json", delaySeconds: 0 },
      { body: { v: 1, queue: "mail", ids: ["c"], runAt: now }, contentType: "json", delaySeconds: 0 },
      { body: { v: 1, queue: "default", ids: ["d"], runAt: now + 90_500 }, contentType: "json", delaySeconds: 91 },
      { body: { v: 1, queue: "default", ids: ["e"], runAt: now + MAX_DELAY_SECONDS * 1000 }, contentType: "json", delaySeconds: MAX_DELAY_SECONDS },
    ]);
  });
});
