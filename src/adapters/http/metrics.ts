/**
 * GET /metrics: the Prometheus exposition of a JobMetrics collector
 * (core/metrics.ts), with the queue-depth gauges read from the store.
 *
 * A scrape reads the store at most once per `cacheMs` (default 2000 ms),
 * whatever the number of scrapers: concurrent scrapes share the read in
 * flight, and a failed read is remembered as long (`qml_store_up 0`), so a
 * down store is not hammered either. The counters are this process's and
 * are always answered.
 *
 * Who may scrape: a bearer token of its own (`token`, QML_METRICS_TOKEN),
 * which opens /metrics and nothing else, or whatever the API accepts (its
 * admin and read tokens, a session cookie, open mode on loopback).
 */
import { ConfigError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { processMetrics, type JobMetrics, type QueueDepths } from "../../core/metrics.js";
import type { Storage } from "../../core/storage.js";
import { checkTokens, secretsEqual } from "./auth.js";

export interface MetricsOptions {
  /** The collector to expose (default: this process's, `processMetrics()`). */
  collector?: JobMetrics;
  /** A bearer token that may read /metrics only (16+ characters; QML_METRICS_TOKEN). */
  token?: string;
  /** How long one read of the queue depths serves scrapes, in ms (default 2000). */
  cacheMs?: number;
}

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

interface Read {
  depths?: QueueDepths;
  at: number;
}

/** One collector over one store, with the cached depth read. */
export class MetricsEndpoint {
  readonly collector: JobMetrics;
  private readonly token: string | undefined;
  private readonly cacheMs: number;
  private last: Read | undefined;
  private reading: Promise<Read> | undefined;

  constructor(
    private readonly storage: Storage,
    options: MetricsOptions,
    private readonly logger: Logger,
  ) {
    const cacheMs = options.cacheMs ?? 2000;
    if (!Number.isInteger(cacheMs) || cacheMs < 0) throw new ConfigError("metrics.cacheMs must be an integer >= 0", { scope: "http" });
    this.cacheMs = cacheMs;
    this.token = options.token === undefined ? undefined : checkTokens([options.token], "metrics.token")[0];
    this.collector = options.collector ?? processMetrics();
    // Jobs enqueued through this app's store (the API, workers' follow-ups) count here.
    this.collector.observeEnqueues(storage);
  }

  get hasToken(): boolean {
    return this.token !== undefined;
  }

  /** Whether an Authorization header carries the metrics token (compared in constant time). */
  async tokenMatches(authorization: string | undefined): Promise<boolean> {
    if (this.token === undefined || authorization === undefined) return false;
    const m = /^Bearer\s+(\S{1,4096})\s*$/i.exec(authorization);
    return m !== null && (await secretsEqual(m[1]!, this.token));
  }

  async respond(): Promise<Response> {
    const read = await this.depths();
    return new Response(this.collector.render(read.depths, read.depths !== undefined), {
      headers: { "Content-Type": METRICS_CONTENT_TYPE, "Cache-Control": "no-store" },
    });
  }

  private depths(): Promise<Read> {
    const now = Date.now();
    if (this.last && now - this.last.at < this.cacheMs) return Promise.resolve(this.last);
    this.reading ??= this.storage
      .stats({ minutes: 1, hours: 1 })
      .then(
        (s): Read => ({ depths: { queues: s.queues }, at: Date.now() }),
        (error: unknown): Read => {
          this.logger.warn("metrics: could not read the queue depths from the store", { error });
          return { at: Date.now() };
        },
      )
      .then((r) => {
        this.last = r;
        this.reading = undefined;
        return r;
      });
    return this.reading;
  }
}
