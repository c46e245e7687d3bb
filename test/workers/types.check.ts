/**
 * Compile-time only (`npx tsc -p test/workers/tsconfig.workers-types.json`):
 * the structural types the runtime declares for itself (types.ts) fit
 * Cloudflare's own, so `createWorker(...)` and the reference entry (both
 * typed `WorkerHandlers<Env>`) are valid `ExportedHandler<Env>`s, a
 * `Queue` binding is a valid `CfQueue` for the notifier, and a D1 binding
 * a valid `D1DatabaseLike` for the SQLite backend's D1 driver.
 */
import type {
  CfExecutionContext,
  CfMessageBatch,
  CfQueue,
  CfScheduledController,
  WakeUpMessage,
  WorkerHandlers,
} from "../../src/adapters/runtime/cloudflare/types.js";
import type { D1DatabaseLike, D1PreparedStatementLike } from "../../src/adapters/storage/sqlite/drivers/d1.js";

interface Env {
  QML_QUEUE: Queue<WakeUpMessage>;
  QML_DB: D1Database;
}

declare const handlers: WorkerHandlers<Env>;
export const asExported: ExportedHandler<Env> = handlers;

export const binding = (env: Env): CfQueue<WakeUpMessage> => env.QML_QUEUE;
export const context = (ctx: ExecutionContext): CfExecutionContext => ctx;
export const controller = (c: ScheduledController): CfScheduledController => c;
export const batch = (b: MessageBatch<unknown>): CfMessageBatch<unknown> => b;
export const d1 = (env: Env): D1DatabaseLike => env.QML_DB;
export const d1Statement = (s: D1PreparedStatement): D1PreparedStatementLike => s;
