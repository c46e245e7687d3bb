/**
 * Live updates. The app runs no jobs (on Workers and Lambda the worker is
 * another invocation), so what it pushes comes from the store: a snapshot
 * of the stats and of the most recently changed jobs, every
 * `liveIntervalMs`, over a WebSocket (`/ws`) or Server-Sent Events
 * (`/api/events`). `/api/live` serves one snapshot for clients that poll.
 *
 * Each connection runs its own timer: on workerd an I/O object (a socket, a
 * pending fetch) may not cross from one request to another, so no loop is
 * shared. What is shared is the last snapshot as plain data and as the
 * JSON text sent, and the read in flight, so N open dashboards cost about
 * one set of store reads and one serialization per half interval, not N.
 *
 * Limits (issue 22), because every open connection holds a timer and store
 * reads: connections are counted in total and per session (LiveConnections;
 * per process on Node, per isolate on Workers); a client message larger
 * than LIVE_MAX_MESSAGE_BYTES closes its socket with 1009 (the UI sends
 * "hello" and "ping", and the Node server refuses a larger frame before
 * buffering it); a socket the client has not written to for `idleMs` is
 * closed, and so is one whose client stops reading.
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
  /** Queues paused on every server (they accept jobs and claim none). */
  paused: string[];
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

/** Largest message a live client may send: the UI sends 5-byte words. */
export const LIVE_MAX_MESSAGE_BYTES = 4 * 1024;
/** A client that has not read this much of what it was sent is not reading: its socket is closed. */
const MAX_UNREAD_BYTES = 1024 * 1024;

export interface LiveLimits {
  /** Open live connections (WebSocket and SSE) in this process or isolate (default 200). */
  maxConnections: number;
  /** Of those, per session cookie or bearer token (default 8). */
  maxPerSession: number;
  /** A WebSocket the client has not written to for this long is closed (default 120 000; the UI pings every 25 s). */
  idleMs: number;
}

export const LIVE_LIMITS: LiveLimits = { maxConnections: 200, maxPerSession: 8, idleMs: 120_000 };

/** The limits QML_LIVE_MAX_CONNECTIONS and QML_LIVE_MAX_PER_SESSION set (read by core/config/env.ts); unset ones keep the defaults. */
export function liveLimitsFromEnv(e: { liveMaxConnections?: number | undefined; liveMaxPerSession?: number | undefined }): Partial<LiveLimits> {
  return {
    ...(e.liveMaxConnections !== undefined ? { maxConnections: e.liveMaxConnections } : {}),
    ...(e.liveMaxPerSession !== undefined ? { maxPerSession: e.liveMaxPerSession } : {}),
  };
}

/**
 * Open live connections, in total and per session key (null: counted in
 * the total only, as open mode's loopback clients are). Checked before an
 * upgrade, so that a refusal is a 429 rather than a socket opened only to
 * be closed; taken when the socket opens, so a handshake that never
 * completes holds nothing.
 */
export class LiveConnections {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  constructor(readonly limits: LiveLimits) {}

  get size(): number {
    return this.total;
  }

  /** Why one more connection would be refused, or null when it fits. */
  refusal(key: string | null): string | null {
    if (this.total >= this.limits.maxConnections) return `the server holds its maximum of ${this.limits.maxConnections} live connections`;
    if (key !== null && (this.perKey.get(key) ?? 0) >= this.limits.maxPerSession)
      return `this session holds its maximum of ${this.limits.maxPerSession} live connections; close a tab`;
    return null;
  }

  /** A slot, released by the function returned (once, however often it is called); null when full. */
  acquire(key: string | null): (() => void) | null {
    if (this.refusal(key) !== null) return null;
    this.total++;
    if (key !== null) this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.total--;
      if (key === null) return;
      const n = (this.perKey.get(key) ?? 1) - 1;
      if (n <= 0) this.perKey.delete(key);
      else this.perKey.set(key, n);
    };
  }
}

/** A message for live clients, as the JSON text they are sent. */
export interface LiveFrame {
  type: "snapshot" | "error";
  text: string;
}

export class LiveFeed {
  private last: { readAt: number; value: LiveSnapshot; text?: string } | undefined;
  private reading: Promise<LiveSnapshot> | undefined;

  constructor(
    private readonly storage: Storage,
    readonly intervalMs: number,
  ) {}

  async snapshot(): Promise<LiveSnapshot> {
    // Wall time, not the store's clock: this is a cache age, and a test's
    // frozen ManualClock must not freeze the feed.
    const readAt = Date.now();
    if (this.last && readAt - this.last.readAt < this.intervalMs / 2) return this.last.value;
    // One read at a time: the connections whose ticks come while it is in
    // flight (over a networked store, a round trip of any length) share it
    // rather than each sending its own.
    this.reading ??= this.read(readAt).finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async read(readAt: number): Promise<LiveSnapshot> {
    // Sent together: over an HTTP driver they share one request.
    const [stats, recent, paused] = await Promise.all([
      this.storage.stats({ minutes: 60, hours: 24 }),
      this.storage.list({}, { limit: RECENT, sort: "updatedAt", order: "desc" }),
      this.storage.pausedQueues(),
    ]);
    const value: LiveSnapshot = {
      type: "snapshot",
      at: new Date(this.storage.clock.now()).toISOString(),
      states: stats.states,
      total: stats.total,
      queues: stats.queues,
      paused,
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

  /**
   * What message() gives, as JSON text: a snapshot's text is built once
   * and shared by every connection that sends it (about 6 KB with 84
   * throughput buckets, 500 times a second with 500 dashboards open).
   */
  async frame(logger?: Logger): Promise<LiveFrame> {
    const msg = await this.message(logger);
    if (msg.type === "error") return { type: "error", text: JSON.stringify(msg) };
    const last = this.last;
    if (last?.value !== msg) return { type: "snapshot", text: JSON.stringify(msg) };
    last.text ??= JSON.stringify(msg);
    return { type: "snapshot", text: last.text };
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

export interface LiveSocketOptions {
  connections: LiveConnections;
  /** Session key of the client (see LiveConnections). */
  key: string | null;
  logger?: Logger;
  /** Whether the client's session still holds (see LIVE_RECHECK_MS); absent for credentials that cannot be ended remotely. */
  stillAllowed?: () => Promise<boolean>;
}

/**
 * How often a live connection of a cookie session checks that the session
 * still holds (logout or "end all sessions" on any server ends it): every
 * 2 s, two store reads per open tab, where checking on every snapshot would
 * double the store reads of a 1 s feed.
 */
export const LIVE_RECHECK_MS = 2_000;

/** A check of `stillAllowed` at most every LIVE_RECHECK_MS; a store error counts as allowed (the snapshot meets it too). */
function sessionRecheck(stillAllowed: (() => Promise<boolean>) | undefined): () => Promise<boolean> {
  let next = Date.now() + LIVE_RECHECK_MS;
  return async () => {
    if (!stillAllowed || Date.now() < next) return true;
    next = Date.now() + LIVE_RECHECK_MS;
    return stillAllowed().catch(() => true);
  };
}

/** WebSocket close codes (RFC 6455 §7.4.1). */
const CLOSE = { normal: 1000, policy: 1008, tooBig: 1009, tryAgain: 1013 } as const;

function messageBytes(data: unknown): number {
  if (typeof data === "string") return data.length > LIVE_MAX_MESSAGE_BYTES / 3 ? new TextEncoder().encode(data).length : data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  if (typeof Blob !== "undefined" && data instanceof Blob) return data.size;
  return 0;
}

/** WebSocket events for one connection. */
export function liveSocketEvents(feed: LiveFeed, options: LiveSocketOptions): WSEvents {
  const { connections, key, logger } = options;
  const { idleMs } = connections.limits;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let idle: ReturnType<typeof setTimeout> | undefined;
  let release: (() => void) | undefined;
  let started = false;
  let closed = false;
  const stop = () => {
    closed = true;
    if (timer !== undefined) clearTimeout(timer);
    if (idle !== undefined) clearTimeout(idle);
    release?.();
  };
  const close = (ws: WSContext, code: number, reason: string) => {
    stop();
    try {
      ws.close(code, reason);
    } catch {
      // Already closing.
    }
  };
  const heard = (ws: WSContext) => {
    if (idle !== undefined) clearTimeout(idle);
    idle = setTimeout(() => close(ws, CLOSE.normal, `idle: no message for ${idleMs} ms`), idleMs);
  };
  // Node calls onOpen; the Workers helper (runtime/cloudflare/websocket.ts)
  // does too, and should a runtime not, the first client message (the UI
  // sends "hello") starts the feed.
  const start = (ws: WSContext) => {
    if (started || closed) return;
    started = true;
    release = connections.acquire(key) ?? undefined;
    if (!release) {
      // Another socket of the session, or of the server, opened since this one's upgrade was checked.
      close(ws, CLOSE.tryAgain, "too many live connections");
      return;
    }
    heard(ws);
    const allowed = sessionRecheck(options.stillAllowed);
    const tick = async () => {
      if (closed) return;
      if (!(await allowed())) {
        close(ws, CLOSE.policy, "the session has ended");
        return;
      }
      if (closed) return;
      const frame = await feed.frame(logger);
      if (closed) return;
      const unread = (ws.raw as { bufferedAmount?: unknown } | undefined)?.bufferedAmount;
      if (typeof unread === "number" && unread > MAX_UNREAD_BYTES) {
        close(ws, CLOSE.policy, "the client does not read its messages");
        return;
      }
      try {
        ws.send(frame.text);
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
    onMessage: (evt, ws) => {
      if (closed) return;
      if (messageBytes(evt.data) > LIVE_MAX_MESSAGE_BYTES) {
        close(ws, CLOSE.tooBig, `messages are limited to ${LIVE_MAX_MESSAGE_BYTES} bytes`);
        return;
      }
      start(ws);
      if (!closed) heard(ws);
    },
    onClose: stop,
    onError: stop,
  };
}

/**
 * Server-Sent Events for one client, ended after `maxDurationMs`: a Lambda
 * Function URL holds a response at most 15 minutes (and buffers it when not
 * streaming), and EventSource reconnects by itself after `retry` ms.
 */
export function liveEventStream(
  c: Context,
  feed: LiveFeed,
  maxDurationMs: number,
  release: () => void,
  logger?: Logger,
  stillAllowed?: () => Promise<boolean>,
): Response {
  c.header("X-Accel-Buffering", "no");
  return streamSSE(c, async (stream) => {
    let aborted = false;
    stream.onAbort(() => {
      aborted = true;
    });
    const end = Date.now() + maxDurationMs;
    const allowed = sessionRecheck(stillAllowed);
    let id = 0;
    try {
      await stream.writeSSE({ event: "hello", data: "{}", retry: 2000 });
      while (!aborted) {
        // An ended session's stream stops; the browser's reconnect is then refused (401).
        if (!(await allowed())) break;
        const frame = await feed.frame(logger);
        if (aborted) break;
        // "error" is EventSource's own event name for a broken connection.
        await stream.writeSSE({ event: frame.type === "error" ? "problem" : "snapshot", data: frame.text, id: String(++id) });
        if (Date.now() + feed.intervalMs > end) break;
        await stream.sleep(feed.intervalMs);
      }
    } catch {
      // The client went away mid-write: nothing to tell anyone.
    } finally {
      release();
    }
  });
}
