/**
 * Jobs: list (filter, search, cursor pages, sort), enqueue, read one with
 * its history, act on one (retry, requeue, delete), and act on many
 * (POST /api/jobs/bulk/:action over ids or a filter).
 *
 * A bulk action costs a bounded number of store round trips whatever the
 * number of jobs: a filter is listed in pages of 500, then the ids go to
 * one batched transition (`storage.requeue(ids)` / `storage.delete(ids)`),
 * whose chunks of 500 are sent together. For the default max of 1,000 jobs
 * that is two list pages and one transition call: within the 50
 * subrequests a Workers invocation may make on the Free plan
 * (test/workers/bulk.worker.test.ts counts them).
 */
import { Hono } from "hono";
import { InvalidStateError, NotFoundError, UnknownJobNameError, ValidationError } from "../../../core/errors.js";
import { Job, JobState, type JobOptions } from "../../../core/job.js";
import type { ActionResult, FlowNode, ListFilter, Storage } from "../../../core/storage.js";
import { queryObject, readJson, type AppDeps, type AppEnv } from "../context.js";
import type { Principal } from "../auth.js";
import { HttpProblem } from "../problem.js";
import { bulkBody, enqueueBody, flowNodeBody, jobId, listQuery, parseOr422, type BulkBody, type FlowNodeBody, type JobFieldsBody } from "../schemas.js";

type Action = "retry" | "requeue" | "delete" | "cancel";
const ACTIONS: readonly Action[] = ["retry", "requeue", "delete", "cancel"];
/** What a retry applies to; a requeue takes any finished or waiting job. */
const RETRYABLE: JobState[] = [JobState.Failed, JobState.AwaitingRetry];
/** What a cancel applies to: jobs not finished. */
const CANCELLABLE: JobState[] = [JobState.Awaiting, JobState.Scheduled, JobState.Enqueued, JobState.Processing, JobState.AwaitingRetry];
/** The flow tree a job page draws: at most this many jobs, this many levels down. */
const FLOW_TREE_MAX = 200;
const FLOW_TREE_DEPTH = 8;
const DEFAULT_BULK_MAX = 1000;
const LIST_PAGE = 500;
const MAX_SKIPPED_REPORTED = 100;

export interface BulkResult {
  action: Action;
  matched: number;
  applied: number;
  /** The first 100 jobs the action did not apply to, and why. */
  skipped: Array<{ id: string; reason: string }>;
  /** More jobs matched the filter than `max`; run the action again for the rest. */
  truncated: boolean;
}

/** A body's `encrypt`: a request the server can only grant with keys, so a 422 without them, not a 500. */
function encryptOption(storage: Storage, value: boolean | string[]): JobOptions["encrypt"] {
  if (value !== false && !storage.encryption) throw new ValidationError("this server has no encryption keys (QML_ENCRYPTION_KEYS)", "encrypt");
  return value;
}

export function jobRoutes(deps: AppDeps): Hono<AppEnv> {
  const { storage, registry } = deps;
  const r = new Hono<AppEnv>();

  r.get("/api/jobs", async (c) => {
    const q = parseOr422(listQuery, queryObject(c));
    const filter: ListFilter = {};
    if (q.state && q.state.length > 0) filter.state = q.state;
    if (q.queue !== undefined) filter.queue = q.queue;
    if (q.name !== undefined) filter.name = q.name;
    if (q.q !== undefined && q.q.length > 0) filter.text = q.q;
    const page = await storage.list(filter, {
      ...(q.limit !== undefined ? { limit: q.limit } : {}),
      ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      ...(q.sort !== undefined ? { sort: q.sort } : {}),
      ...(q.order !== undefined ? { order: q.order } : {}),
    });
    return c.json({ items: page.items.map(summary), nextCursor: page.nextCursor ?? null });
  });

  r.post("/api/jobs", async (c) => {
    const b = parseOr422(enqueueBody, await readJson(c));
    if (registry && !registry.has(b.name)) throw new UnknownJobNameError(b.name);
    const opts = jobOptions(storage, b);
    if (b.delay !== undefined) opts.delay = b.delay;
    if (b.runAt !== undefined) opts.runAt = new Date(b.runAt);
    if (b.uniqueKey !== undefined) opts.uniqueKey = b.uniqueKey;
    if (b.uniqueMode !== undefined) opts.uniqueMode = b.uniqueMode;
    if (b.uniqueTtl !== undefined) opts.uniqueTtl = b.uniqueTtl;
    const job = new Job(b.name, b.args ?? [], opts);
    const id = b.after ? await storage.continueWith(b.after.id, job, b.after.on ? { on: b.after.on } : {}) : await storage.enqueue(job);
    const created = job.createdAt !== undefined;
    const stored = await storage.get(id);
    return c.json({ id, created, job: stored ? stored.toJSON() : null }, created ? 201 : 200);
  });

  // Registered before /api/jobs/:id/… so that "bulk" is never read as an id.
  r.post("/api/jobs/bulk/:action", async (c) => {
    const action = c.req.param("action") as Action;
    if (!ACTIONS.includes(action)) throw new HttpProblem(404, "NOT_FOUND", `unknown bulk action; use ${ACTIONS.join(", ")}`);
    const b = parseOr422(bulkBody, await readJson(c));
    return c.json(await bulk(storage, action, b, who(c.get("principal"))));
  });

  r.post("/api/flows", async (c) => {
    const b = parseOr422(flowNodeBody, await readJson(c));
    const toNode = (n: FlowNodeBody): FlowNode => {
      if (registry && !registry.has(n.name)) throw new UnknownJobNameError(n.name);
      return {
        job: new Job(n.name, n.args ?? [], jobOptions(storage, n)),
        ...(n.children ? { children: n.children.map(toNode) } : {}),
        ...(n.onChildFailure ? { onChildFailure: n.onChildFailure } : {}),
      };
    };
    return c.json({ flow: await storage.enqueueFlow(toNode(b)) }, 201);
  });

  r.get("/api/jobs/:id/flow", async (c) => {
    const id = parseOr422(jobId, c.req.param("id"));
    const job = await storage.get(id);
    if (!job) throw new NotFoundError("job", id);
    return c.json(await flowOf(storage, job));
  });

  r.get("/api/jobs/:id", async (c) => {
    const id = parseOr422(jobId, c.req.param("id"));
    const job = await storage.get(id);
    if (!job) throw new NotFoundError("job", id);
    return c.json({ job: job.toJSON() });
  });

  for (const action of ACTIONS) {
    r.post(`/api/jobs/:id/${action}`, async (c) => {
      const id = parseOr422(jobId, c.req.param("id"));
      return c.json({ job: (await applyOne(storage, action, id, who(c.get("principal")))).toJSON() });
    });
  }
  r.delete("/api/jobs/:id", async (c) => {
    const id = parseOr422(jobId, c.req.param("id"));
    return c.json({ job: (await applyOne(storage, "delete", id, who(c.get("principal")))).toJSON() });
  });

  return r;
}

/** The options both a single enqueue and a flow's node take. */
function jobOptions(storage: Storage, b: JobFieldsBody): JobOptions {
  const opts: JobOptions = {};
  if (b.queue !== undefined) opts.queue = b.queue;
  if (b.priority !== undefined) opts.priority = b.priority;
  if (b.maxAttempts !== undefined) opts.maxAttempts = b.maxAttempts;
  if (b.timeout !== undefined) opts.timeout = b.timeout;
  if (b.concurrency !== undefined) opts.concurrency = b.concurrency;
  if (b.rateLimit !== undefined) opts.rateLimit = b.rateLimit;
  if (b.metadata !== undefined) opts.metadata = b.metadata;
  if (b.encrypt !== undefined) opts.encrypt = encryptOption(storage, b.encrypt);
  return opts;
}

interface FlowTreeNode {
  id: string;
  name: string;
  state: JobState | "missing";
  children: FlowTreeNode[];
  /** Jobs left out below this one (the tree's size bound). */
  more?: number;
}

/**
 * A job's flow for its page: the tree of what it waits for (level by
 * level, one read per level, bounded), and the waiting jobs that wait for it.
 */
async function flowOf(storage: Storage, job: Job): Promise<{ tree: FlowTreeNode; neededBy: string[] }> {
  const root: FlowTreeNode = { id: job.id, name: job.name, state: job.state, children: [] };
  let level: Array<{ node: FlowTreeNode; deps: string[] }> = job.flow ? [{ node: root, deps: job.flow.dependsOn }] : [];
  let seen = 1;
  for (let depth = 0; depth < FLOW_TREE_DEPTH && level.length > 0; depth++) {
    const wanted: string[] = [];
    for (const l of level) {
      const room = Math.max(0, FLOW_TREE_MAX - seen - wanted.length);
      const take = l.deps.slice(0, room);
      if (take.length < l.deps.length) l.node.more = l.deps.length - take.length;
      wanted.push(...take);
    }
    const jobs = await storage.getMany(wanted);
    const byId = new Map(wanted.map((id, i) => [id, jobs[i] ?? null]));
    seen += wanted.length;
    const next: typeof level = [];
    for (const l of level) {
      for (const id of l.deps.slice(0, l.deps.length - (l.node.more ?? 0))) {
        const j = byId.get(id) ?? null;
        const node: FlowTreeNode = { id, name: j?.name ?? "?", state: j?.state ?? "missing", children: [] };
        l.node.children.push(node);
        if (j?.flow) next.push({ node, deps: j.flow.dependsOn });
      }
    }
    level = next;
  }
  const neededBy = await storage.driver.dependents([job.id]);
  return { tree: root, neededBy: neededBy.slice(0, 100) };
}

/** A job for lists: everything but the history, which only the detail view needs. */
function summary(job: Job): Record<string, unknown> {
  const { history: _history, ...rest } = job.toJSON();
  return rest;
}

/** Who acted, for a cancelled job's history: the API or the dashboard, and the caller's role. */
function who(p: Principal): string {
  return `${p.via === "bearer" ? "api" : "dashboard"} (${p.role})`;
}

/** The batched store call for an action: one result per id, in bounded round trips. */
function transition(storage: Storage, action: Action, ids: string[], by: string): Promise<ActionResult[]> {
  if (action === "delete") return storage.delete(ids);
  if (action === "cancel") return storage.cancel(ids, { by });
  if (action === "retry") return storage.requeue(ids, { from: RETRYABLE });
  return storage.requeue(ids);
}

/** Why an action did not apply to a job in `state`. */
function refusal(action: Action, state: JobState | undefined): string {
  if (state === undefined) return "not found";
  if (action === "delete") return "is already deleted";
  if (action === "cancel") return `is ${state}; only awaiting, scheduled, enqueued, processing or awaiting_retry jobs can be cancelled`;
  if (action === "retry") return `is ${state}; only failed or awaiting_retry jobs can be retried (requeue runs any finished job again)`;
  return `is ${state}; only failed, succeeded, deleted, scheduled or awaiting_retry jobs can be requeued`;
}

/** One job's action: the job after it, or 404 / 409. The state check and the change are one store call. */
async function applyOne(storage: Storage, action: Action, id: string, by: string): Promise<Job> {
  const [result] = await transition(storage, action, [id], by);
  if (!result || result.status === "not_found") throw new NotFoundError("job", id);
  if (result.status === "invalid_state") throw new InvalidStateError(`job ${id} ${refusal(action, result.state)}`);
  const job = await storage.get(id);
  if (!job) throw new NotFoundError("job", id);
  return job;
}

async function bulk(storage: Storage, action: Action, b: BulkBody, by: string): Promise<BulkResult> {
  const { ids, truncated } = b.ids ? { ids: [...new Set(b.ids)], truncated: false } : await idsMatching(storage, action, b);
  const results = ids.length > 0 ? await transition(storage, action, ids, by) : [];
  const skipped: BulkResult["skipped"] = [];
  let applied = 0;
  for (const result of results) {
    if (result.status === "applied") applied++;
    else if (skipped.length < MAX_SKIPPED_REPORTED) skipped.push({ id: result.id, reason: `job ${refusal(action, result.state)}` });
  }
  return { action, matched: ids.length, applied, skipped, truncated };
}

/** The ids a bulk filter matches, oldest first, at most `max`, listed in pages of 500. */
async function idsMatching(storage: Storage, action: Action, b: BulkBody): Promise<{ ids: string[]; truncated: boolean }> {
  const max = b.max ?? DEFAULT_BULK_MAX;
  const f = b.filter!;
  const filter: ListFilter = {};
  if (f.state !== undefined) filter.state = f.state;
  else if (action === "retry") filter.state = RETRYABLE;
  else if (action === "cancel") filter.state = CANCELLABLE;
  if (f.queue !== undefined) filter.queue = f.queue;
  if (f.name !== undefined) filter.name = f.name;
  if (f.text !== undefined) filter.text = f.text;
  const ids: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await storage.list(filter, { limit: Math.min(LIST_PAGE, max - ids.length), sort: "createdAt", order: "asc", ...(cursor ? { cursor } : {}) });
    for (const j of page.items) ids.push(j.id);
    // A page's cursor is present only when more jobs follow it.
    if (!page.nextCursor) return { ids, truncated: false };
    if (ids.length >= max) return { ids, truncated: true };
    cursor = page.nextCursor;
  }
}
