/**
 * Helpers for the workerd tests: call the Worker under test the way the
 * platform does (a Request, a cron firing, a Queue batch) and read state
 * back through its API.
 */
import { SELF, createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:test";
import { vi } from "vitest";
import type { Clock } from "../../src/core/clock.js";
import worker, { ADMIN_TOKEN, type TestEnv } from "./fixtures/worker.js";

export const testEnv = env as unknown as TestEnv;

export interface ApiReply<T = Record<string, unknown>> {
  status: number;
  body: T;
}

/** A request to the Worker's fetch handler through its service binding, as an admin. */
export async function api<T = Record<string, unknown>>(
  path: string,
  init: { method?: string; body?: unknown; token?: string | null } = {},
): Promise<ApiReply<T>> {
  const headers: Record<string, string> = {};
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? ADMIN_TOKEN}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const res = await SELF.fetch(`https://qml.test${path}`, {
    method: init.method ?? (init.body !== undefined ? "POST" : "GET"),
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as T };
}

export interface JobJson {
  id: string;
  name: string;
  state: string;
  attempts: number;
  result?: unknown;
  error?: { message: string };
  leaseOwner?: string;
  history: Array<{ state: string; reason?: string; worker?: string }>;
}

/** Polls the API until the job reaches `state` (the Queue consumer runs on its own schedule). */
export async function waitForState(id: string, state: string, timeout = 15_000): Promise<JobJson> {
  return vi.waitUntil(
    async () => {
      const r = await api<{ job: JobJson }>(`/api/jobs/${id}`);
      return r.status === 200 && r.body.job.state === state ? r.body.job : undefined;
    },
    { timeout, interval: 50 },
  );
}

/** One cron firing, awaited to the end of its waitUntil work. */
export async function runCron(clock: Clock, envOverride?: Record<string, unknown>, handler = worker): Promise<void> {
  const ctx = createExecutionContext();
  const controller = createScheduledController({ scheduledTime: new Date(clock.now()), cron: "* * * * *" });
  await handler.scheduled(controller, (envOverride ?? testEnv) as TestEnv, ctx);
  await waitOnExecutionContext(ctx);
}

/** What `getQueueResult` reports (FetcherQueueResult in @cloudflare/workers-types). */
export interface QueueResult {
  outcome: string;
  ackAll: boolean;
  retryBatch: { retry: boolean; delaySeconds?: number };
  explicitAcks: string[];
  retryMessages: Array<{ msgId: string; delaySeconds?: number }>;
}

let seq = 0;

/** Hands `bodies` to the Queue handler as one batch and returns what it did with each message. */
export async function deliver(
  bodies: unknown[],
  options: { queue?: string; attempts?: number; timestamp?: Date } = {},
): Promise<{ ids: string[]; result: QueueResult }> {
  const messages = bodies.map((body) => ({
    id: `msg-${++seq}`,
    timestamp: options.timestamp ?? new Date(Date.now() - 60_000),
    attempts: options.attempts ?? 1,
    body,
  }));
  const batch = createMessageBatch(options.queue ?? "qml-wakeups", messages);
  const ctx = createExecutionContext();
  await worker.queue(batch, testEnv, ctx);
  const result = (await getQueueResult(batch, ctx)) as QueueResult;
  return { ids: messages.map((m) => m.id), result };
}
