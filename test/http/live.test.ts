/** Live updates without a socket: the polling snapshot, Server-Sent Events, and /ws where no WebSocket exists. */
import { describe, expect, it, vi } from "vitest";
import { LiveFeed, type LiveSnapshot } from "../../src/adapters/http/index.js";
import { Job, Storage, memoryBackend } from "../../src/index.js";
import { ORIGIN, call, finish, harness, login, problem } from "./helpers.js";

/** Reads SSE events from a response until `until` says enough (or the stream ends). */
async function readEvents(res: Response, until: (events: Array<{ event: string; data: string }>) => boolean): Promise<Array<{ event: string; data: string }>> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: Array<{ event: string; data: string }> = [];
  let buf = "";
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? "message";
        const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join("\n");
        events.push({ event, data });
      }
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

describe("live snapshots", () => {
  it("GET /api/live returns counts, queues, throughput and the latest changes", async () => {
    const { app, storage, clock } = harness();
    await storage.enqueue(new Job("send_email", ["a"], { queue: "mail" }));
    clock.advance(1000);
    const failed = await finish(storage, clock, "build_report", [], "failed");
    const res = await call(app, "GET", "/api/live");
    expect(res.status).toBe(200);
    const snap = (await res.json()) as LiveSnapshot;
    expect(snap.type).toBe("snapshot");
    expect(snap.states).toMatchObject({ enqueued: 1, failed: 1 });
    expect(snap.total).toBe(2);
    expect(snap.queues.map((q) => q.name)).toEqual(["finish-failed", "mail"]);
    expect(snap.perMinute).toHaveLength(60);
    expect(snap.perHour).toHaveLength(24);
    expect(snap.perMinute.at(-1)!.failed).toBe(1);
    expect(snap.recent[0]).toMatchObject({ id: failed, name: "build_report", state: "failed" });
  });

  it("streams snapshots over Server-Sent Events, following the store", async () => {
    const { app, storage } = harness({ liveIntervalMs: 20 });
    const { cookie } = await login(app);
    const res = await call(app, "GET", "/api/events", { token: null, cookie });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const snapshots = (events: Array<{ event: string; data: string }>) =>
      events.filter((e) => e.event === "snapshot").map((e) => JSON.parse(e.data) as LiveSnapshot);
    let enqueued = false;
    const events = await readEvents(res, (evs) => {
      const snaps = snapshots(evs);
      if (snaps.length > 0 && !enqueued) {
        enqueued = true;
        void storage.enqueue(new Job("send_email"));
      }
      return snaps.some((s) => s.states.enqueued === 1);
    });
    expect(events[0]!.event).toBe("hello");
    const snaps = snapshots(events);
    expect(snaps[0]!.total).toBe(0);
    expect(snaps.at(-1)!.total).toBe(1);
  });

  it("ends an SSE response after sseMaxDurationMs so that the browser reconnects", async () => {
    const { app } = harness({ liveIntervalMs: 10, sseMaxDurationMs: 30 });
    const res = await call(app, "GET", "/api/events");
    const text = await res.text();
    expect(text).toContain("retry: 2000");
    expect(text.match(/event: snapshot/g)!.length).toBeGreaterThanOrEqual(1);
  });

  it("refuses SSE without credentials (401) or from a foreign Origin (403)", async () => {
    const { app } = harness();
    expect((await call(app, "GET", "/api/events", { token: null })).status).toBe(401);
    const { cookie } = await login(app);
    const res = await call(app, "GET", "/api/events", { token: null, cookie, headers: { Origin: "http://evil.test" } });
    expect(res.status).toBe(403);
    expect((await problem(res)).code).toBe("FOREIGN_ORIGIN");
  });

  it("/ws without a WebSocket-capable runtime says so (501), after the Origin and auth checks", async () => {
    const { app } = harness();
    expect((await call(app, "GET", "/ws", { headers: { Upgrade: "websocket", Origin: "http://evil.test" } })).status).toBe(403);
    expect((await call(app, "GET", "/ws", { token: null, headers: { Upgrade: "websocket", Origin: ORIGIN } })).status).toBe(401);
    const res = await call(app, "GET", "/ws", { headers: { Upgrade: "websocket", Origin: ORIGIN } });
    expect(res.status).toBe(501);
    expect((await problem(res)).code).toBe("NO_WEBSOCKET");
  });
});

describe("the live feed, shared by every connection", () => {
  it("reads the store once for the ticks that come while a read is in flight, and serializes each snapshot once", async () => {
    const storage = new Storage(memoryBackend());
    await storage.enqueue(new Job("send_email"));
    const stats = vi.spyOn(storage, "stats");
    const feed = new LiveFeed(storage, 60_000);
    // 500 connections ticking at once on a cold cache: one read.
    const snaps = await Promise.all(Array.from({ length: 500 }, () => feed.snapshot()));
    expect(stats).toHaveBeenCalledTimes(1);
    expect(new Set(snaps).size).toBe(1);

    const stringify = vi.spyOn(JSON, "stringify");
    try {
      const frames = await Promise.all(Array.from({ length: 500 }, () => feed.frame()));
      expect(stringify).toHaveBeenCalledTimes(1);
      expect(frames.every((f) => f.type === "snapshot" && f.text === frames[0]!.text)).toBe(true);
      expect(JSON.parse(frames[0]!.text)).toMatchObject({ type: "snapshot", total: 1 });
    } finally {
      stringify.mockRestore();
    }
  });

  it("a failed read is not cached: the next tick reads again, and clients get the error as a frame", async () => {
    const storage = new Storage(memoryBackend());
    const stats = vi.spyOn(storage, "stats").mockRejectedValueOnce(new Error("store down"));
    const feed = new LiveFeed(storage, 60_000);
    const failed = await feed.frame();
    expect(failed.type).toBe("error");
    expect(JSON.parse(failed.text)).toMatchObject({ type: "error", status: 500 });
    expect((await feed.frame()).type).toBe("snapshot");
    expect(stats).toHaveBeenCalledTimes(2);
  });
});
