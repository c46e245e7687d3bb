/**
 * The HTTP contract, as zod schemas. They check shape and bounds at the
 * edge so a client gets every field's problem at once; the core validates
 * again when it builds records (it is the last word, and the only one for
 * non-HTTP callers).
 */
import { z } from "zod";
import { ALL_STATES, JOB_NAME, MAX_UNIQUE_KEY_LENGTH, QUEUE_NAME, RECURRING_ID, type JobState } from "../../core/job.js";
import { HttpProblem, type FieldIssue } from "./problem.js";

const DAY = 24 * 3600_000;

export const queueName = z.string().regex(QUEUE_NAME, 'queue must be 1-64 characters of letters, digits, "_", "-" or "."');
export const jobName = z.string().regex(JOB_NAME, 'name must be 1-128 characters of letters, digits, "_", "-", "." or "/"');
export const recurringId = z.string().regex(RECURRING_ID, 'recurring id must be 1-128 characters of letters, digits, "_", "-", "." or "/"');
export const jobId = z.string().min(1).max(200);
const state = z.enum(ALL_STATES as [JobState, ...JobState[]]);
const args = z.array(z.unknown()).max(10_000);
const metadata = z.record(z.string(), z.unknown());
const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** Comma-separated or repeated `state` values. */
const stateList = z
  .array(z.string())
  .transform((v) => v.flatMap((s) => s.split(",")).map((s) => s.trim()).filter((s) => s.length > 0))
  .pipe(z.array(state).max(ALL_STATES.length));

export const listQuery = z
  .object({
    state: stateList.optional(),
    queue: queueName.optional(),
    name: jobName.optional(),
    q: z.string().max(200).optional(),
    limit: z.coerce.number().int().min(1).max(500).optional(),
    cursor: z.string().max(1000).optional(),
    sort: z.enum(["createdAt", "updatedAt", "runAt"]).optional(),
    order: z.enum(["asc", "desc"]).optional(),
  })
  .strict();

export const statsQuery = z
  .object({
    minutes: z.coerce.number().int().min(1).max(24 * 60).optional(),
    hours: z.coerce.number().int().min(1).max(24 * 31).optional(),
  })
  .strict();

export const enqueueBody = z
  .object({
    name: jobName,
    args: args.optional(),
    queue: queueName.optional(),
    priority: int(-1_000_000, 1_000_000).optional(),
    maxAttempts: int(1, 1000).optional(),
    /** Milliseconds from now. */
    delay: int(0, 366 * DAY).optional(),
    /** ISO 8601 with an offset, or epoch milliseconds. */
    runAt: z.union([z.iso.datetime({ offset: true }), z.number().int().min(0)]).optional(),
    uniqueKey: z.string().min(1).max(MAX_UNIQUE_KEY_LENGTH).optional(),
    timeout: int(1, 7 * DAY).optional(),
    metadata: metadata.optional(),
  })
  .strict()
  .refine((b) => b.delay === undefined || b.runAt === undefined, { message: "give delay or runAt, not both", path: ["runAt"] });

export const filterBody = z
  .object({
    state: z.union([state, z.array(state).min(1).max(ALL_STATES.length)]).optional(),
    queue: queueName.optional(),
    name: jobName.optional(),
    text: z.string().min(1).max(200).optional(),
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
    priority: int(-1_000_000, 1_000_000).optional(),
    maxAttempts: int(1, 1000).optional(),
    timeout: int(1, 7 * DAY).optional(),
    timezone: z.string().min(1).max(64).optional(),
    metadata: metadata.optional(),
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
