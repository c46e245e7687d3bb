/**
 * The HTTP contract, as zod schemas. They check shape and bounds at the
 * edge so a client gets every field's problem at once; the bounds are the
 * core's own (core/config/bounds.ts), and the core validates again when it
 * builds records (it is the last word, and the only one for non-HTTP
 * callers).
 */
import { z } from "zod";
import { bounds } from "../../core/config/bounds.js";
import { ALL_STATES, type JobState } from "../../core/job.js";
import { MAX_FLOW_JOBS } from "../../core/flows.js";
import { MAX_EVENT_NAME_LENGTH } from "../../core/steps.js";
import { MAX_ID_LENGTH, MAX_LIMIT_KEY_LENGTH, MAX_SEARCH_TEXT_LENGTH, MAX_UNIQUE_KEY_LENGTH } from "../../core/rules.js";
import { HttpProblem, type FieldIssue } from "./problem.js";

export const queueName = bounds.queueName;
export const jobName = bounds.jobName;
export const recurringId = bounds.recurringId;
export const jobId = z.string().min(1).max(MAX_ID_LENGTH);
const state = z.enum(ALL_STATES as [JobState, ...JobState[]]);
const args = z.array(z.unknown()).max(10_000);
const metadata = z.record(z.string(), z.unknown());
const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** Comma-separated or repeated `state` values. */
const stateList = z
  .array(z.string())
  .transform((v) =>
    v
      .flatMap((s) => s.split(","))
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  )
  .pipe(z.array(state).max(ALL_STATES.length));

export const listQuery = z
  .object({
    state: stateList.optional(),
    queue: queueName.optional(),
    name: jobName.optional(),
    q: z.string().max(MAX_SEARCH_TEXT_LENGTH).optional(),
    limit: z.coerce.number().int().min(1).max(500).optional(),
    cursor: z.string().max(1000).optional(),
    sort: z.enum(["createdAt", "updatedAt", "runAt"]).optional(),
    order: z.enum(["asc", "desc"]).optional(),
  })
  .strict();

export const statsQuery = z
  .object({
    minutes: z.coerce
      .number()
      .int()
      .min(1)
      .max(24 * 60)
      .optional(),
    hours: z.coerce
      .number()
      .int()
      .min(1)
      .max(24 * 31)
      .optional(),
  })
  .strict();

const limitKey = z.string().min(1).max(MAX_LIMIT_KEY_LENGTH);

/** Encrypt the arguments at rest (true), or these top-level fields of the object arguments (JobOptions.encrypt). */
const encrypt = z.union([z.boolean(), z.array(z.string().min(1).max(200)).min(1).max(100)]);

/** `after`: enqueue as a continuation of job `id` (Storage.continueWith). */
const after = z.object({ id: jobId, on: z.enum(["success", "failure", "any"]).optional() }).strict();

/** The fields of a job that a flow's node and a single enqueue share. */
const jobFields = {
  name: jobName,
  args: args.optional(),
  queue: queueName.optional(),
  priority: bounds.priority.optional(),
  maxAttempts: bounds.maxAttempts.optional(),
  timeout: bounds.timeoutMs.optional(),
  concurrency: z.object({ key: limitKey, limit: bounds.limit }).strict().optional(),
  rateLimit: z.object({ key: limitKey, limit: bounds.limit, interval: bounds.rateIntervalMs }).strict().optional(),
  metadata: metadata.optional(),
  encrypt: encrypt.optional(),
};
export type JobFieldsBody = z.infer<z.ZodObject<typeof jobFields>>;

export const enqueueBody = z
  .object({
    ...jobFields,
    /** Milliseconds from now. */
    delay: bounds.delayMs.optional(),
    /** ISO 8601 with an offset, or epoch milliseconds. */
    runAt: z.union([z.iso.datetime({ offset: true }), z.number().int().min(0)]).optional(),
    uniqueKey: z.string().min(1).max(MAX_UNIQUE_KEY_LENGTH).optional(),
    uniqueMode: z.enum(["first", "debounce"]).optional(),
    uniqueTtl: bounds.uniqueTtlMs.optional(),
    after: after.optional(),
  })
  .strict()
  .refine((b) => b.delay === undefined || b.runAt === undefined, { message: "give delay or runAt, not both", path: ["runAt"] })
  .refine((b) => b.after === undefined || b.uniqueMode !== "debounce", {
    message: 'a continuation cannot be debounced (uniqueMode "debounce")',
    path: ["after"],
  });

/** One job of a flow: the enqueue fields, its children, and what a failed child does to it. */
export interface FlowNodeBody extends JobFieldsBody {
  children?: FlowNodeBody[] | undefined;
  onChildFailure?: "fail" | "ignore" | "remove" | undefined;
}

export const flowNodeBody: z.ZodType<FlowNodeBody> = z.lazy(() =>
  z
    .object({
      ...jobFields,
      children: z.array(flowNodeBody).max(MAX_FLOW_JOBS).optional(),
      onChildFailure: z.enum(["fail", "ignore", "remove"]).optional(),
    })
    .strict(),
);

export const filterBody = z
  .object({
    state: z.union([state, z.array(state).min(1).max(ALL_STATES.length)]).optional(),
    queue: queueName.optional(),
    name: jobName.optional(),
    text: z.string().min(1).max(MAX_SEARCH_TEXT_LENGTH).optional(),
  })
  .strict();

export const bulkBody = z
  .object({
    ids: z.array(jobId).min(1).max(1000).optional(),
    filter: filterBody.optional(),
    /** Most jobs a filter may touch in one request (default 1000). */
    max: int(1, 10_000).optional(),
  })
  .strict()
  .refine((b) => (b.ids === undefined) !== (b.filter === undefined), { message: "give either ids or filter", path: ["ids"] })
  .refine((b) => b.filter === undefined || Object.keys(b.filter).length > 0, {
    message: "filter must name at least one of state, queue, name, text (an empty filter would match every job)",
    path: ["filter"],
  });

export const recurringBody = z
  .object({
    cron: z.string().min(1).max(200),
    name: jobName,
    args: args.optional(),
    queue: queueName.optional(),
    priority: bounds.priority.optional(),
    maxAttempts: bounds.maxAttempts.optional(),
    timeout: bounds.timeoutMs.optional(),
    timezone: z.string().min(1).max(64).optional(),
    metadata: metadata.optional(),
  })
  .strict();

/** POST /api/events: an event for the jobs waiting on it (ctx.step.waitForEvent). `data` is checked by Storage.sendEvent. */
export const eventBody = z
  .object({
    name: z.string().min(1).max(MAX_EVENT_NAME_LENGTH),
    data: z.unknown().optional(),
  })
  .strict();

export type EnqueueBody = z.infer<typeof enqueueBody>;
export type BulkBody = z.infer<typeof bulkBody>;
export type RecurringBody = z.infer<typeof recurringBody>;

/** Parses or throws a 422 problem listing every issue. */
export function parseOr422<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const errors: FieldIssue[] = r.error.issues.slice(0, 20).map((i) => ({ field: i.path.map(String).join("."), message: i.message }));
  const first = errors[0]!;
  throw new HttpProblem(422, "VALIDATION", first.field ? `${first.field}: ${first.message}` : first.message, { errors });
}
