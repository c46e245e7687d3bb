/**
 * The AWS Lambda runtime: three handlers over one engine. This file only
 * translates Lambda's events; what they do is the serverless consumer's
 * (../serverless):
 *
 * - `scheduleHandler` (EventBridge, every minute): one tick with
 *   housekeeping (promote, reclaim, recurring), then jobs until
 *   `context.getRemainingTimeInMillis()` minus a safety margin.
 * - `sqsHandler` (SQS event source, `ReportBatchItemFailures` on): wake-ups.
 *   The consumer's decision table says ack (the record is deleted), rearm
 *   (a fresh wake-up sent, then deleted), retry or dead-letter (listed in
 *   `batchItemFailures`: it comes back after the visibility timeout, and
 *   after `maxReceiveCount` the redrive policy moves it to the dead-letter
 *   queue).
 * - `httpHandler` (Function URL or API Gateway HTTP API): the dashboard and
 *   REST API (`createApp`) through `hono/aws-lambda`; tokens required.
 *
 *   export const { scheduleHandler, sqsHandler, httpHandler } = createLambdaHandlers({
 *     storage: () => new Storage(postgresBackend(config)), registry, http: { auth: { adminTokens: [token] } },
 *   });
 *
 * Connections: the storage factory runs once per container (on first use)
 * and warm invocations reuse the result, so a Lambda holds at most one
 * store client. For PostgreSQL over TCP keep that client's pool at 1-2
 * connections (N concurrent Lambdas then hold at most 2N connections, and
 * the SQS event source's maximum concurrency caps N), or use the Neon HTTP
 * driver, which holds no connection between queries.
 *
 * Every handler waits for the wake-ups still in flight before it returns
 * (within the invocation's time): a frozen container sends nothing.
 */
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  LambdaFunctionURLEvent,
  SQSBatchResponse,
  SQSEvent,
  ScheduledEvent,
} from "aws-lambda";
import type { Hono } from "hono";
import { handle, type APIGatewayProxyResult, type LambdaEvent } from "hono/aws-lambda";
import type { Notifier } from "../../../core/client.js";
import { ConfigError } from "../../../core/errors.js";
import type { WorkerRegistry } from "../../../core/registry.js";
import type { Storage } from "../../../core/storage.js";
import type { TickReport } from "../../../core/tick.js";
import { createApp } from "../../http/app.js";
import type { TokenAuthOptions } from "../../http/auth.js";
import { resolveServerlessConfig, type ResolvedServerlessConfig, type ServerlessConfig } from "../serverless/config.js";
import { consumeWakeUps, outboxFor, runScheduled, type Invocation } from "../serverless/consumer.js";
import { StoreCache } from "../serverless/store-cache.js";

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
  /** A bearer token that may read GET /metrics only (QML_METRICS_TOKEN); the API's tokens may read it too. */
  metricsToken?: string;
  /** Builds another app instead of the dashboard (it must do its own authentication). */
  app?: (storage: Storage) => Hono<any> | Promise<Hono<any>>;
}

/**
 * The shared settings (queues, budgetMs, safetyMs, concurrency, maxJobs,
 * leaseMs, jobTimeoutMs, retryPolicy, clock, logger; see ServerlessConfig),
 * and Lambda's own. `budgetMs` caps the remaining time an invocation
 * spends; `safetyMs` defaults to 3000 (one store round trip over the
 * internet, twice, with room to spare).
 */
export interface LambdaHandlersOptions extends ServerlessConfig {
  /** Creates the store client. Runs once per container; warm invocations reuse it. */
  storage: () => Storage | Promise<Storage>;
  registry: WorkerRegistry;
  /**
   * Sends wake-ups: for jobs enqueued in this container (through the API,
   * a worker enqueuing a follow-up, a Client on this storage), and the
   * consumer's fresh ones for jobs to look at later. E.g.
   * `createSqsNotifier({ queueUrl })`.
   */
  notifier?: Notifier;
  /** Run `storage.migrate()` once per container before first use (default false). */
  migrate?: boolean;
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

/** Lambda's longest timeout. */
const MAX_FUNCTION_MS = 15 * 60_000;

const LAMBDA = {
  runtime: "lambda",
  budgetMs: undefined,
  maxBudgetMs: MAX_FUNCTION_MS,
  safetyMs: (budgetMs: number | undefined) => Math.min(3000, budgetMs === undefined ? 3000 : Math.floor(budgetMs / 4)),
};

/** The one key of a container's store cache. */
const CONTAINER = {};

export function createLambdaHandlers(o: LambdaHandlersOptions): LambdaHandlers {
  if (typeof o.storage !== "function")
    throw new ConfigError("storage must be a function that creates the store (it runs once per container)", { scope: "lambda" });
  if (!o.registry) throw new ConfigError("registry is required", { scope: "lambda" });
  if (o.http && !o.http.app) {
    const a = o.http.auth as TokenAuthOptions & { open?: unknown };
    if (!a || a.open !== undefined || (a.adminTokens?.length ?? 0) + (a.readTokens?.length ?? 0) === 0) {
      throw new ConfigError("http.auth must list admin or read tokens: a Function URL is public, the API is never open on Lambda", { scope: "lambda" });
    }
  }
  const config: ResolvedServerlessConfig = resolveServerlessConfig(o, LAMBDA);
  const { clock, logger } = config;
  const stores = new StoreCache<object>(o.migrate ? { migrate: true } : {});
  const storage = () => stores.get(CONTAINER, o.storage);

  /** The invocation's work, to end within the time Lambda gives it (and `budgetMs`, if set). */
  function invocation(context: Context): Invocation {
    const remaining = context.getRemainingTimeInMillis();
    const ms = Math.min(Number.isFinite(remaining) ? Math.max(0, remaining) : 0, config.budgetMs ?? Number.POSITIVE_INFINITY);
    return {
      config,
      registry: o.registry,
      notifier: o.notifier,
      deadline: clock.now() + ms,
      serverId: `lambda:${context.functionName || "fn"}:${(context.awsRequestId || crypto.randomUUID()).slice(0, 8)}`,
    };
  }

  /** Waits for the wake-ups still in flight, at most until `until` (epoch ms). */
  async function flush(store: Storage | undefined, inv: Invocation, until: number): Promise<void> {
    if (store) await outboxFor(store, inv).settled(Math.max(0, until - clock.now()));
  }

  const scheduleHandler: ScheduleHandler = async (event, context) => {
    const inv = invocation(context);
    const report = await runScheduled(await storage(), inv);
    logger.info("scheduled tick", { ...report, event: event?.id, time: event?.time });
    return report;
  };

  const sqsHandler: SqsHandler = async (event, context) => {
    const inv = invocation(context);
    const records = event.Records ?? [];
    const deliveries = records.map((r) => ({
      id: r.messageId,
      body: r.body,
      attempts: Number(r.attributes?.ApproximateReceiveCount) || 1,
      ...(Number.isFinite(Number(r.attributes?.SentTimestamp)) ? { sentAt: Number(r.attributes.SentTimestamp) } : {}),
    }));
    let opened: Storage | undefined;
    const settlements = await consumeWakeUps(async () => (opened = await storage()), deliveries, inv);
    await flush(opened, inv, inv.deadline);
    // Retry and dead-letter alike come back; the redrive policy counts the receives.
    return { batchItemFailures: settlements.flatMap((s, i) => (s.action === "ack" ? [] : [{ itemIdentifier: records[i]!.messageId }])) };
  };

  type App = (event: LambdaFunctionURLEvent | APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyResult>;
  let appPromise: Promise<App> | null = null;
  function getApp(): Promise<App> {
    appPromise ??= (async () => {
      const http = o.http;
      if (!http) throw new ConfigError("httpHandler needs the http option (tokens, or an app)", { scope: "lambda" });
      const store = await storage();
      const app = http.app
        ? await http.app(store)
        : createApp({
            storage: store,
            registry: o.registry,
            auth: http.auth,
            liveIntervalMs: 1000,
            sseMaxDurationMs: http.sseMaxDurationMs ?? 1000,
            // Counters of this instance (what its invocations run and enqueue); depth gauges from the store.
            metrics: http.metricsToken !== undefined ? { token: http.metricsToken } : {},
            logger,
            ...(http.basePath !== undefined ? { basePath: http.basePath } : {}),
          });
      const h = handle(app);
      // hono's event type says `body: string | null`; AWS leaves it out when empty, which hono handles.
      return (event, context) => h(event as unknown as LambdaEvent, context) as Promise<APIGatewayProxyResult>;
    })();
    appPromise.catch(() => {
      appPromise = null;
    });
    return appPromise;
  }

  const httpHandler: HttpHandler = async (event, context) => {
    const inv = invocation(context);
    const h = await getApp();
    const store = await storage();
    outboxFor(store, inv);
    const res = await h(event, context);
    // An enqueue through the API is answered only once its wake-up is on its way.
    await flush(store, inv, inv.deadline - 100);
    return res as HttpResult;
  };

  return {
    scheduleHandler,
    sqsHandler,
    httpHandler,
    storage,
    async close() {
      appPromise = null;
      await stores.close(CONTAINER);
    },
  };
}
