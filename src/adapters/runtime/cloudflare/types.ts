/**
 * The slice of the Workers runtime this adapter touches, typed structurally.
 *
 * `@cloudflare/workers-types` declares its types as globals that clash with
 * the DOM and Node typings the rest of the repository compiles against, so
 * the adapter names only the members it uses. They are subsets of the real
 * types: `test/workers/` type-checks the handlers against
 * `ExportedHandler<Env>` from `@cloudflare/workers-types` to keep them so.
 */
export type { WakeUpMessage } from "../serverless/wake-up.js";

/** `ExecutionContext`: keeps the invocation alive for work that outlives the handler's return. */
export interface CfExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** `ScheduledController`: one cron trigger firing. */
export interface CfScheduledController {
  /** When the trigger was due, epoch ms. */
  readonly scheduledTime: number;
  readonly cron: string;
}

export interface CfRetryOptions {
  delaySeconds?: number;
}

/** `Message`: one delivery of a queue message, acknowledged or retried one by one. */
export interface CfMessage<Body = unknown> {
  readonly id: string;
  readonly timestamp: Date;
  readonly body: Body;
  /** 1 on the first delivery. */
  readonly attempts: number;
  ack(): void;
  retry(options?: CfRetryOptions): void;
}

/** `MessageBatch`: what a Queue consumer invocation receives. */
export interface CfMessageBatch<Body = unknown> {
  readonly queue: string;
  readonly messages: readonly CfMessage<Body>[];
  ackAll(): void;
  retryAll(options?: CfRetryOptions): void;
}

export interface CfMessageSendRequest<Body = unknown> {
  body: Body;
  contentType?: "text" | "bytes" | "json" | "v8";
  delaySeconds?: number;
}

/** `Queue`: a producer binding. */
export interface CfQueue<Body = unknown> {
  send(body: Body, options?: { contentType?: "text" | "bytes" | "json" | "v8"; delaySeconds?: number }): Promise<unknown>;
  sendBatch(messages: Iterable<CfMessageSendRequest<Body>>, options?: { delaySeconds?: number }): Promise<unknown>;
}

/** The module's handlers, shaped as `ExportedHandler<Env, WakeUpMessage>` expects. */
export interface WorkerHandlers<Env> {
  fetch(request: Request, env: Env, ctx: CfExecutionContext): Promise<Response>;
  scheduled(controller: CfScheduledController, env: Env, ctx: CfExecutionContext): Promise<void>;
  queue(batch: CfMessageBatch<unknown>, env: Env, ctx: CfExecutionContext): Promise<void>;
}
