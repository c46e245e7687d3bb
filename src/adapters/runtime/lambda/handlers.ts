/**
 * The AWS Lambda runtime: three handlers over one engine.
 *
 * - `scheduleHandler` (EventBridge, every minute): one tick — promote due
 *   jobs, reclaim expired leases, fire recurring jobs, then run jobs until
 *   `context.getRemainingTimeInMillis()` minus a safety margin.
 * - `sqsHandler` (SQS event source): wake-ups sent on enqueue. Runs the
 *   queues the messages name, then answers with `batchItemFailures`: only
 *   the records whose jobs are still waiting come back (after the
 *   visibility timeout), the rest are deleted.
 * - `httpHandler` (Function URL or API Gateway HTTP API): the dashboard and
 *   REST API (`createApp`) through `hono/aws-lambda`; tokens required.
 *
 *   export const { scheduleHandler, sqsHandler, httpHandler } = createLambdaHandlers({
 *     storage: () => createPostgresStorage(...), registry, http: { auth: { adminTokens: [token] } },
 *   });
 *
 * Connections: the storage factory runs once per container (on first use)
 * and warm invocations reuse the result, so a Lambda holds at most one
 * store client. For PostgreSQL over TCP keep that client's pool at 1-2
 * connections (N concurrent Lambdas then hold at most 2N connections, and
 * the SQS event source's maximum concurrency caps N), or use the Neon HTTP
 * driver, which holds no connection between queries.
 *
 * What a deadline leaves behind: jobs still running at `deadline - safetyMs`
 * are aborted and released to `enqueued`; if the platform kills the
 * invocation before even that, their leases run out and the next tick
 * reclaims them. Either way no job is lost.
 */
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  LambdaFunctionURLEvent,
  SQSBatchItemFailure,
  SQSBatchResponse,
  SQSEvent,
  ScheduledEvent,
} from "aws-lambda";
import type { Hono } from "hono";
import { handle, type APIGatewayProxyResult, type LambdaEvent } from "hono/aws-lambda";
import type { Notifier, WakeUp } from "../../../core/client.js";
import { systemClock, type Clock } from "../../../core/clock.js";
import { ConfigError } from "../../../core/errors.js";
import { DEFAULT_QUEUE, JobState, validateQueueName } from "../../../core/job.js";
import { JsonLogger, type Logger } from "../../../core/logger.js";
import type { WorkerRegistry } from "../../../core/registry.js";
import type { RetryPolicy } from "../../../core/retry.js";
import type { Storage } from "../../../core/storage.js";
import { tick, type TickReport } from "../../../core/tick.js";
import { createApp } from "../../http/app.js";
import type { TokenAuthOptions } from "../../http/auth.js";
import { decodeWakeUp, type WakeUpMessage } from "./wake-up.js";

export interface LambdaHttpOptions {
  /**
   * Who may use the API and dashboard: admin and read-only tokens (16+
   * characters each; bearer for API clients, a session cookie for the UI).
   * Authentication is not optional here: a Function URL is public.
   */
  auth: TokenAuthOptions;
  /** Mount point, e.g. "/qml" (default: the root). */
  basePath?: string;
  /**
   * Live updates over SSE end after this many ms and the browser reconnects
   * (default 1000: one snapshot per response). A buffered Function URL only
   * sends a response when it ends, so a long SSE response would sit out the
   * function's timeout; short ones turn SSE into polling that works.
   */
  sseMaxDurationMs?: number;
  /** Builds another app instead of the dashboard (it must do its own authentication). */
  app?: (storage: Storage) => Hono<any> | Promise<Hono<any>>;
}

export interface LambdaHandlersOptions {
  /** Creates the store client. Runs once per container; warm invocations reuse it. */
  storage: () => Storage | Promise<Storage>;
  registry: WorkerRegistry;
  /**
   * Sends wake-ups for jobs enqueued in this container (through the API, or
   * by a worker enqueuing a follow-up), e.g. `createSqsNotifier({ queueUrl })`.
   * Handlers wait for pending wake-ups before they return: a frozen
   * container sends nothing. Only this container's enqueues are forwarded
   * (the listener asks for `remote: false`, so no LISTEN or SUBSCRIBE
   * connection is opened for it).
   */
  notifier?: Notifier;
  /** Run `storage.migrate()` once per container before first use (default false). */
  migrate?: boolean;
  /** Queues this function runs, in priority order (default ["default"]). */
  queues?: string[];
  /** Jobs run at once per invocation (default 10). */
  concurrency?: number;
  /** Lease on a claimed job (default 30 s), renewed by heartbeats while it runs. */
  leaseMs?: number;
  /** Timeout for jobs without their own. Jobs that would not fit the invocation's remaining time are left for the next one. */
  jobTimeoutMs?: number;
  /**
   * Time kept before the invocation's end for releasing unfinished jobs,
   * flushing outcomes and answering (default 3000 ms: one store round trip
   * over the internet, twice, with room to spare).
   */
  safetyMs?: number;
  retryPolicy?: RetryPolicy;
  clock?: Clock;
  /** Default: JSON lines on stdout (CloudWatch), level info. */
  logger?: Logger;
  http?: LambdaHttpOptions;
}

export type ScheduleHandler = (event: ScheduledEvent, context: Context) => Promise<TickReport>;
export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;
/** Function URL or API Gateway HTTP API (payload 2.0) in, a structured result out. */
export type HttpResult = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };
export type HttpHandler = (event: LambdaFunctionURLEvent | APIGatewayProxyEventV2, context: Context) => Promise<HttpResult>;

export interface LambdaHandlers {
  scheduleHandler: ScheduleHandler;
  sqsHandler: SqsHandler;
  httpHandler: HttpHandler;
  /** The cached store, created on first call. */
  storage(): Promise<Storage>;
  /** Closes the cached store (tests; Lambda itself never calls it). */
  close(): Promise<void>;
}

const DEFAULT_SAFETY_MS = 3000;

export function createLambdaHandlers(o: LambdaHandlersOptions): LambdaHandlers {
  if (typeof o.storage !== "function") throw new ConfigError("[qml] [lambda] storage must be a function that creates the store (it runs once per container)");
  if (!o.registry) throw new ConfigError("[qml] [lambda] registry is required");
  const queues = [...new Set((o.queues ?? [DEFAULT_QUEUE]).map((q) => validateQueueName(q, "queues")))];
  if (queues.length === 0) throw new ConfigError("[qml] [lambda] queues must not be empty");
  const safetyMs = o.safetyMs ?? DEFAULT_SAFETY_MS;
  if (!Number.isFinite(safetyMs) || safetyMs < 0) throw new ConfigError("[qml] [lambda] safetyMs must be >= 0");
  if (o.http && !o.http.app) {
    const a = o.http.auth as TokenAuthOptions & { open?: unknown };
    if (!a || a.open !== undefined || (a.adminTokens?.length ?? 0) + (a.readTokens?.length ?? 0) === 0) {
      throw new ConfigError("[qml] [lambda] http.auth must list admin or read tokens: a Function URL is public, the API is never open on Lambda");
    }
  }
  const clock = o.clock ?? systemClock;
  // Lambda sends stdout to CloudWatch: JSON lines there are searchable with Logs Insights.
  const logger = o.logger ?? new JsonLogger("info", { component: "lambda" });

  // ------------------------------------------------ per-container state

  let storagePromise: Promise<Storage> | null = null;
  const pendingWakeUps = new Set<Promise<void>>();

  function getStorage(): Promise<Storage> {
    storagePromise ??= (async () => {
      const s = await o.storage();
      try {
        if (o.migrate) await s.migrate();
        if (o.notifier) {
          const notifier = o.notifier;
          // This container's own enqueues only: other processes send their own wake-ups.
          s.onEnqueue((jobs) => {
            const wake: WakeUp[] = jobs.map((j) => ({ id: j.id, queue: j.queue, runAt: j.runAt }));
            const p = notifier
              .notify(wake)
              .catch((e) => logger.warn("wake-up not sent; the job waits for the next tick", { count: wake.length, error: String((e as Error)?.message ?? e) }))
              .finally(() => pendingWakeUps.delete(p));
            pendingWakeUps.add(p);
          }, { remote: false });
        }
      } catch (e) {
        // The next invocation creates a fresh client: this one must not keep its connections.
        await s.close().catch(() => {});
        throw e;
      }
      return s;
    })();
    // A failed cold start (store unreachable) must not poison the container: retry next time.
    storagePromise.catch(() => {
      storagePromise = null;
    });
    return storagePromise;
  }

  /** Waits for wake-ups still in flight, at most until `until` (epoch ms, our clock). */
  async function flushWakeUps(until: number): Promise<void> {
    if (pendingWakeUps.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([...pendingWakeUps]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, until - clock.now()));
      }),
    ]);
    clearTimeout(timer);
  }

  function deadlineOf(context: Context): number {
    const remaining = context.getRemainingTimeInMillis();
    return clock.now() + (Number.isFinite(remaining) ? Math.max(0, remaining) : 0);
  }

  function serverId(context: Context): string {
    return `lambda:${context.functionName || "fn"}:${(context.awsRequestId || crypto.randomUUID()).slice(0, 8)}`;
  }

  function runTick(context: Context, deadline: number, tickQueues: string[], maintenance: boolean, storage: Storage): Promise<TickReport> {
    return tick({
      storage,
      registry: o.registry,
      deadline,
      safetyMs,
      queues: tickQueues,
      maintenance,
      serverId: serverId(context),
      // Left out unless the user set one: tick() then aligns the system clock with the store's.
      ...(clock !== systemClock ? { clock } : {}),
      logger,
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      ...(o.leaseMs !== undefined ? { leaseMs: o.leaseMs } : {}),
      ...(o.jobTimeoutMs !== undefined ? { jobTimeoutMs: o.jobTimeoutMs } : {}),
      ...(o.retryPolicy !== undefined ? { retryPolicy: o.retryPolicy } : {}),
    });
  }

  // ------------------------------------------------------------ handlers

  const scheduleHandler: ScheduleHandler = async (event, context) => {
    const deadline = deadlineOf(context);
    const storage = await getStorage();
    const report = await runTick(context, deadline, queues, true, storage);
    await flushWakeUps(deadline);
    logger.info("scheduled tick", { ...report, event: event?.id, time: event?.time });
    return report;
  };

  const sqsHandler: SqsHandler = async (event, context) => {
    const deadline = deadlineOf(context);
    const failures: SQSBatchItemFailure[] = [];
    const wakeUps: Array<{ messageId: string; message: WakeUpMessage }> = [];
    for (const record of event.Records ?? []) {
      const message = decodeWakeUp(record.body);
      if (!message) {
        // Returned, so after maxReceiveCount it lands in the dead-letter queue where someone can read it.
        logger.error("not a qml wake-up message", { messageId: record.messageId });
        failures.push({ itemIdentifier: record.messageId });
        continue;
      }
      if (!queues.includes(message.queue)) {
        // Retrying cannot help: this function does not run that queue. The job stays stored for whoever does.
        logger.warn("wake-up for a queue this function does not run; dropped", { messageId: record.messageId, queue: message.queue, queues });
        continue;
      }
      wakeUps.push({ messageId: record.messageId, message });
    }
    if (wakeUps.length === 0) return { batchItemFailures: failures };

    const named = new Set(wakeUps.map((w) => w.message.queue));
    try {
      const storage = await getStorage();
      const report = await runTick(context, deadline, queues.filter((q) => named.has(q)), false, storage);
      logger.info("sqs tick", { ...report, records: event.Records.length });
      const waiting = await stillWaiting(storage, wakeUps.flatMap((w) => w.message.ids));
      for (const w of wakeUps) if (w.message.ids.some((id) => waiting.has(id))) failures.push({ itemIdentifier: w.messageId });
    } catch (e) {
      // The store failed us: every wake-up comes back, none is lost.
      logger.error("sqs batch failed; every record will be redelivered", { error: String((e as Error)?.message ?? e) });
      for (const w of wakeUps) failures.push({ itemIdentifier: w.messageId });
    }
    await flushWakeUps(deadline);
    return { batchItemFailures: failures };
  };

  /**
   * Ids whose job still waits to run: enqueued, or due but not yet promoted.
   * Jobs running elsewhere, finished, waiting for a later retry or gone need
   * no wake-up: a lease, a tick or nothing takes care of them.
   */
  async function stillWaiting(storage: Storage, ids: string[]): Promise<Set<string>> {
    const unique = [...new Set(ids)];
    const now = clock.now();
    // One get per id, all in flight at once: over an HTTP driver they share one pipeline.
    const records = await Promise.all(unique.map((id) => storage.getRecord(id)));
    const out = new Set<string>();
    records.forEach((r, i) => {
      if (!r) return;
      if (r.state === JobState.Enqueued) out.add(unique[i]!);
      else if ((r.state === JobState.Scheduled || r.state === JobState.AwaitingRetry) && r.runAt <= now) out.add(unique[i]!);
    });
    return out;
  }

  let appPromise: Promise<(event: LambdaFunctionURLEvent | APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyResult>> | null = null;
  function getApp() {
    appPromise ??= (async () => {
      if (!o.http) throw new ConfigError("[qml] [lambda] httpHandler needs the http option (tokens, or an app)");
      const storage = await getStorage();
      const app = o.http.app
        ? await o.http.app(storage)
        : createApp({
            storage,
            registry: o.registry,
            auth: o.http.auth,
            liveIntervalMs: 1000,
            sseMaxDurationMs: o.http.sseMaxDurationMs ?? 1000,
            logger,
            ...(o.http.basePath !== undefined ? { basePath: o.http.basePath } : {}),
          });
      const h = handle(app);
      // hono's event type says `body: string | null`; AWS leaves it out when empty, which hono handles.
      return (event: LambdaFunctionURLEvent | APIGatewayProxyEventV2, context: Context) => h(event as unknown as LambdaEvent, context) as Promise<APIGatewayProxyResult>;
    })();
    appPromise.catch(() => {
      appPromise = null;
    });
    return appPromise;
  }

  const httpHandler: HttpHandler = async (event, context) => {
    const deadline = deadlineOf(context);
    const h = await getApp();
    const res = await h(event, context);
    // An enqueue through the API is answered only once its wake-up is on its way.
    await flushWakeUps(deadline - 100);
    return res as HttpResult;
  };

  return {
    scheduleHandler,
    sqsHandler,
    httpHandler,
    storage: getStorage,
    async close() {
      const p = storagePromise;
      storagePromise = null;
      appPromise = null;
      if (p) await (await p).close();
    },
  };
}
