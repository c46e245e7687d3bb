/**
 * Compile-time only (`npx tsc -p test/workers/tsconfig.workers-types.json`):
 * the structural types the runtime declares for itself (types.ts) fit
 * Cloudflare's own, so `createWorker(...)` and the reference entry (both
 * typed `WorkerHandlers<Env>`) are valid `ExportedHandler<Env>`s, and a
 * `Queue` binding is a valid `CfQueue` for the notifier.
 */
import type { CfExecutionContext, CfMessageBatch, CfQueue, CfScheduledController, WakeUpMessage, WorkerHandlers } from "../../src/adapters/runtime/cloudflare/types.js";

interface Env {
  QML_QUEUE: Queue<WakeUpMessage>;
}

declare const handlers: WorkerHandlers<Env>;
export const asExported: ExportedHandler<Env> = handlers;

export const binding = (env: Env): CfQueue<WakeUpMessage> => env.QML_QUEUE;
export const context = (ctx: ExecutionContext): CfExecutionContext => ctx;
export const controller = (c: ScheduledController): CfScheduledController => c;
export const batch = (b: MessageBatch<unknown>): CfMessageBatch<unknown> => b;
