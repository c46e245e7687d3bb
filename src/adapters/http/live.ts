/**
 * Live updates. The app runs no jobs (on Workers and Lambda the worker is
 * another invocation), so what it pushes comes from the store: a snapshot
 * of the stats and of the most recently changed jobs, every
 * `liveIntervalMs`, over a WebSocket (`/ws`) or Server-Sent Events
 * (`/api/events`). `/api/live` serves one snapshot for clients that poll.
 *
 * Each connection runs its own timer: on workerd an I/O object (a socket, a
 * pending fetch) may not cross from one request to another, so no loop is
 * shared. What is shared is the last snapshot as plain data, so N open
 * dashboards cost about one pair of store reads per half interval, not N.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { WSContext, WSEvents } from "hono/ws";
import type { JobState } from "../../core/job.js";
import type { QueueStats, StateCounts, Storage, ThroughputBucket } from "../../core/storage.js";
import { toProblem } from "./problem.js";
import type { Logger } from "../../core/logger.js";

export interface RecentJob {
  id: string;
  name: string;
  queue: string;
  state: JobState;
  attempts: number;
  maxAttempts: number;
  updatedAt: string;
}

export interface LiveSnapshot {
  type: "snapshot";
  /** ISO time the snapshot was read. */
  at: string;
  states: StateCounts;
  total: number;
  queues: QueueStats[];
  /** Last 60 minutes, oldest first. */
  perMinute: ThroughputBucket[];
  /** Last 24 hours, oldest first. */
  perHour: ThroughputBucket[];
  /** Most recently changed jobs, newest first. */
  recent: RecentJob[];
}

export interface LiveError {
  type: "error";
  status: number;
  detail: string;
}

const RECENT = 12;

export class LiveFeed {
  private last: { readAt: number; value: LiveSnapshot } | undefined;

  constructor(
    private readonly storage: Storage,
    readonly intervalMs: number,
  ) {}

  async snapshot(): Promise<LiveSnapshot> {
    // Wall time, not the store's clock: this is a cache age, and a test's
    // frozen ManualClock must not freeze the feed.
    const readAt = Date.now();
    if (this.last && readAt - this.last.readAt < this.intervalMs / 2) return this.last.value;
    const [stats, recent] = await Promise.all([
      this.storage.stats({ minutes: 60, hours: 24 }),
      this.storage.list({}, { limit: RECENT, sort: "updatedAt", order: "desc" }),
    ]);
    const value: LiveSnapshot = {
      type: "snapshot",
      at: new Date(this.storage.clock.now()).toISOString(),
      states: stats.states,
      total: stats.total,
      queues: stats.queues,
      perMinute: stats.perMinute,
      perHour: stats.perHour,
      recent: recent.items.map((j) => ({
        id: j.id,
        name: j.name,
        queue: j.queue,
        state: j.state,
        attempts: j.attempts,
        maxAttempts: j.maxAttempts,
        updatedAt: (j.updatedAt ?? new Date(0)).toISOString(),
      })),
    };
    this.last = { readAt, value };
    return value;
  }

  /** A snapshot, or the error a client should show instead (the store may be down for a while). */
  async message(logger?: Logger): Promise<LiveSnapshot | LiveError> {
    try {
      return await this.snapshot();
    } catch (e) {
      const p = toProblem(e, logger);
      return { type: "error", status: p.status, detail: p.detail };
    }
  }
}

/** WebSocket events for one connection. */
export function liveSocketEvents(feed: LiveFeed, logger?: Logger): WSEvents {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let started = false;
  let closed = false;
  const stop = () => {
    closed = true;
    if (timer !== undefined) clearTimeout(timer);
  };
  // workerd's upgrade helper never calls onOpen, so the first client message
  // (the UI sends "hello") starts the feed as well.
  const start = (ws: WSContext) => {
    if (started) return;
    started = true;
    const tick = async () => {
      if (closed) return;
      const msg = await feed.message(logger);
      if (closed) return;
      try {
        ws.send(JSON.stringify(msg));
      } catch {
        stop();
        return;
      }
      timer = setTimeout(tick, feed.intervalMs);
    };
    void tick();
  };
  return {
    onOpen: (_evt, ws) => start(ws),
    onMessage: (_evt, ws) => start(ws),
    onClose: stop,
    onError: stop,
  };
}

/**
 * Server-Sent Events for one client, ended after `maxDurationMs`: a Lambda
 * Function URL holds a response at most 15 minutes (and buffers it when not
 * streaming), and EventSource reconnects by itself after `retry` ms.
 */
export function liveEventStream(c: Context, feed: LiveFeed, maxDurationMs: number, logger?: Logger): Response {
  c.header("X-Accel-Buffering", "no");
  return streamSSE(c, async (stream) => {
    let aborted = false;
    stream.onAbort(() => {
      aborted = true;
    });
    const end = Date.now() + maxDurationMs;
    let id = 0;
    try {
      await stream.writeSSE({ event: "hello", data: "{}", retry: 2000 });
      while (!aborted) {
        const msg = await feed.message(logger);
        if (aborted) break;
        // "error" is EventSource's own event name for a broken connection.
        await stream.writeSSE({ event: msg.type === "error" ? "problem" : "snapshot", data: JSON.stringify(msg), id: String(++id) });
        if (Date.now() + feed.intervalMs > end) break;
        await stream.sleep(feed.intervalMs);
      }
    } catch {
      // The client went away mid-write: nothing to tell anyone.
    }
  });
}
