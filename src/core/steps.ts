/**
 * Durable steps: one job's work spread over many runs (ctx.step).
 *
 * A worker wraps each piece of work in `ctx.step.run(id, fn)`. When `fn`
 * returns, its result is written to the job (StepRecord, `saveSteps`,
 * fenced by the lease) before the worker goes on; when the job runs again
 * (a retry, a reclaim after a crash, the next invocation) that step returns
 * its stored result without calling `fn`. So the code between steps runs
 * again on every run and must be deterministic; the steps themselves run
 * once each, unless a run dies after `fn` returned and before its result
 * was written (at-least-once, as every job is).
 *
 * A run ends early, without failing, by suspending: `step.sleep` and
 * `step.waitForEvent` write a waiting step and throw a StepSuspension; the
 * processor turns it into the outcome `scheduled` (runAt = when the sleep
 * ends or the wait times out, the attempt given back), so the job holds no
 * worker, lease or invocation while it waits, and any server or invocation
 * picks it up when it is due. On an invocation with a deadline (Workers,
 * Lambda), a step whose expected time (the p95 of its earlier runs) no
 * longer fits is not started: the run suspends and the next invocation
 * goes on from that step.
 *
 * Events (`Storage.sendEvent`, `POST /api/events`): a waiting step notes
 * its job in the store's event-waiter index; sending an event reads the
 * index, checks each job's waiting step (name, `match`), stores the event
 * for it (kv, first event wins) and requeues the job. A job that is still
 * running when the event arrives (it has noted itself but not yet
 * suspended) checks for a stored event once its suspension is written, so
 * an event is never missed between the two. Events sent before a wait
 * began are not seen by it.
 */
import { BudgetExceededError, DuplicateStepIdError, LeaseLostError, StepError, StepResultTooLargeError, ValidationError, toErrorInfo } from "./errors.js";
import type { Clock } from "./clock.js";
import type { LeaseRef, StorageDriver } from "./driver.js";
import { FINISHED_STATES, JobState, type JobRecord, type StepRecord } from "./job.js";
import { RetryPolicy, type RetrySpec } from "./retry.js";
import { toJsonValue, validateInt, validateText } from "./rules.js";

/** Longest step id. */
export const MAX_STEP_ID_LENGTH = 200;
/** Largest step result (and event data), serialised: one job's steps are rewritten with each step. */
export const MAX_STEP_RESULT_BYTES = 60 * 1024;
/** Most steps one job may reach. */
export const MAX_STEPS = 500;
/** Largest a job's steps may be in all, serialised: they are one value of the job's row (D1 holds 2 MB per row). */
export const MAX_STEPS_BYTES = 1024 * 1024;
/** Longest event name. */
export const MAX_EVENT_NAME_LENGTH = 200;
/** Longest sleep or wait: a year. */
export const MAX_STEP_WAIT_MS = 366 * 24 * 3_600_000;
/** How long a delivered event is kept for its job after the wait's timeout (its job may be behind a backlog). */
const DELIVERY_KEEP_MS = 7 * 24 * 3_600_000;
/** Most waiters one sendEvent looks at: those it delivers to leave the index, so sending again reaches the rest. */
const MAX_WAITERS_PER_EVENT = 1000;

export interface StepRunOptions {
  /**
   * Tries of `fn` before its error reaches the job (default 1: the first
   * error goes to the job, whose retry policy decides). With more, a failed
   * try suspends the job until the step's retry delay has passed, without
   * using one of the job's attempts; after the last, the job fails with a
   * StepError whose cause is the step's error.
   */
  maxAttempts?: number;
  /** Delay between the step's tries; default exponential from 1 s. */
  retry?: RetrySpec | { toSpec(): RetrySpec };
}

export interface WaitForEventOptions {
  /** The event's name, as `sendEvent(name, data)` sends it. */
  event: string;
  /** Top-level fields the event's data must equal (JSON equality), e.g. `{ orderId: 42 }`. */
  match?: Record<string, unknown>;
  /** How long to wait, ms; then the step returns null. */
  timeout: number;
}

/** An event a waiting step received. */
export interface ReceivedEvent<T = unknown> {
  name: string;
  data: T;
  /** Epoch ms it was sent. */
  at: number;
}

/** `ctx.step`: the durable steps of one run. */
export interface StepTools {
  /** Runs `fn` once for this job: on later runs, returns its stored result (JSON) without calling it. */
  run<T>(id: string, fn: () => T | Promise<T>, options?: StepRunOptions): Promise<T>;
  /** Suspends the job for `ms` (no worker, lease or invocation held); goes on after it, on any server. */
  sleep(id: string, ms: number): Promise<void>;
  /** As `sleep`, until a point in time. */
  sleepUntil(id: string, until: Date | number): Promise<void>;
  /** Suspends the job until an event named `event` (matching `match`) is sent, or `timeout` passes: then null. */
  waitForEvent<T = unknown>(id: string, options: WaitForEventOptions): Promise<ReceivedEvent<T> | null>;
}

/**
 * Thrown by a step to end the run early (not an error): the processor
 * writes the suspension instead of the worker's outcome. A worker that
 * catches it cannot go on: the runner remembers it, and every later step
 * throws it again.
 */
export class StepSuspension extends Error {
  override readonly name = "StepSuspension";
  constructor(
    /** When the job is due again (epoch ms); at or before now: a release that keeps its place in its queue. */
    readonly runAt: number,
    readonly reason: string,
    /** A wait for an event: checked again once the suspension is written. */
    readonly wait?: { event: string; stepId: string },
    /** The attempt stays counted (a step that needs half a budget or more did not fit). */
    readonly countAttempt = false,
  ) {
    super(reason);
  }
}

/** What a run's steps need from the processor. */
export interface StepHost {
  readonly driver: StorageDriver;
  readonly clock: Clock;
  readonly record: JobRecord;
  readonly lease: LeaseRef;
  readonly workerId: string;
  /** The invocation's deadline and whole budget, on Workers and Lambda. */
  readonly deadline?: number;
  readonly budgetMs?: number;
  /** Expected step times: p95 by key, and where a step's time is recorded. */
  estimate(key: string): number | undefined;
  recordTime(key: string, ms: number): void;
  /** Called when a write finds the lease gone: the run is over. */
  leaseLost(): void;
  /** Whether the run was aborted (timeout, cancellation, deadline, shutdown, lost lease). */
  aborted(): boolean;
}

/** The kv key a delivered event is kept under for one job's waiting step. */
export function deliveryKey(jobId: string, stepId: string): string {
  return `qml:event:${jobId}:${stepId}`;
}

function durationKey(name: string, stepId: string): string {
  return `${name}#${stepId}`;
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** Whether `data` has every field of `match`, equal as JSON. */
export function matchesEvent(data: unknown, match: Record<string, unknown> | undefined): boolean {
  if (match === undefined) return true;
  if (data === null || typeof data !== "object" || Array.isArray(data)) return Object.keys(match).length === 0;
  const d = data as Record<string, unknown>;
  return Object.entries(match).every(([k, v]) => Object.hasOwn(d, k) && JSON.stringify(d[k]) === JSON.stringify(v));
}

function sizeOf(value: unknown): number {
  return value === undefined ? 0 : new TextEncoder().encode(JSON.stringify(value)).length;
}

export function validateEventName(name: unknown): string {
  return validateText(name, "event", MAX_EVENT_NAME_LENGTH);
}

/** Event data: JSON, within MAX_STEP_RESULT_BYTES. */
export function validateEventData(data: unknown): unknown {
  const value = toJsonValue(data === undefined ? null : data, "data");
  const size = sizeOf(value);
  if (size > MAX_STEP_RESULT_BYTES) throw new ValidationError(`event data is ${size} bytes serialised; the limit is ${MAX_STEP_RESULT_BYTES}`, "data");
  return value;
}

/** The steps of one run: `ctx.step`. */
export class StepRunner implements StepTools {
  private readonly steps: StepRecord[];
  private readonly seen = new Set<string>();
  /** Set once a step suspended the run. */
  suspension: StepSuspension | undefined;
  /** Whether any step was reached in this run. */
  used = false;
  /** Longest step of this run, ms: what must fit one invocation. */
  longestStepMs = 0;
  /** The step whose function is running, and since when. */
  private current: { key: string; id: string; startedAt: number } | undefined;

  constructor(private readonly host: StepHost) {
    this.steps = clone(host.record.steps) ?? [];
  }

  /** A run cut off at the deadline inside a step: its time so far is a lower bound on the step's. */
  cutOff(now: number): string | undefined {
    const c = this.current;
    if (!c) return undefined;
    this.host.recordTime(c.key, Math.max(0, now - c.startedAt));
    return c.id;
  }

  async run<T>(id: string, fn: () => T | Promise<T>, options: StepRunOptions = {}): Promise<T> {
    const existing = this.enter(id, "run");
    if (typeof fn !== "function") throw new ValidationError("step.run takes a function", "fn");
    const maxAttempts = options.maxAttempts === undefined ? 1 : validateInt(options.maxAttempts, "maxAttempts", 1, 1000);
    if (existing?.status === "completed") return clone(existing.result) as T;
    const { host } = this;
    const key = durationKey(host.record.name, id);
    const startedAt = host.clock.now();
    if (host.deadline !== undefined) {
      const expected = host.estimate(key);
      if (expected !== undefined && host.budgetMs !== undefined && expected > host.budgetMs)
        throw new BudgetExceededError(host.record.id, `its step "${id}" is expected to run ${expected} ms (the p95 of its runs)`, host.budgetMs);
      if (expected !== undefined && startedAt + expected > host.deadline) {
        // A step that needs half a budget or more may never fit behind what
        // runs before it: its release counts an attempt, as a run cut off
        // after half a budget does, so that it ends failed, not released
        // forever.
        const counts = host.budgetMs !== undefined && expected * 2 >= host.budgetMs;
        const { attempts, maxAttempts } = host.record;
        if (counts && attempts >= maxAttempts)
          throw new BudgetExceededError(
            host.record.id,
            `its step "${id}" (p95 ${expected} ms) did not fit what was left of the invocation in each of its ${attempts} attempts`,
            host.budgetMs,
          );
        this.suspend(
          new StepSuspension(
            startedAt,
            counts
              ? `released between steps: step "${id}" (p95 ${expected} ms) would not finish before the invocation's deadline (attempt ${attempts} of ${maxAttempts} counted)`
              : `released between steps: step "${id}" (p95 ${expected} ms) would not finish before the invocation's deadline`,
            undefined,
            counts,
          ),
        );
      }
    }
    const step: StepRecord = existing ?? { id, kind: "run", status: "failed", startedAt };
    if (!existing) this.steps.push(step);
    this.current = { key, id, startedAt };
    let value: T;
    try {
      value = await fn();
    } catch (error) {
      // An aborted run's outcome is the processor's: the step did not fail, it was cut off.
      if (host.aborted()) throw error;
      const now = host.clock.now();
      this.current = undefined;
      this.timed(key, now - startedAt);
      step.status = "failed";
      step.failures = (step.failures ?? 0) + 1;
      step.error = toErrorInfo(error);
      if (maxAttempts > 1 && step.failures < maxAttempts) {
        const retry = options.retry && "toSpec" in options.retry ? options.retry.toSpec() : options.retry;
        const policy = retry ? RetryPolicy.fromSpec(retry) : RetryPolicy.exponential({ baseMs: 1000, maxMs: 3_600_000 });
        const delay = Math.max(0, policy.delayFor(step.failures, error));
        await this.save(`step "${id}" failed (try ${step.failures} of ${maxAttempts}), again in ${delay} ms: ${step.error.message}`);
        this.suspend(new StepSuspension(now + delay, `step "${id}" failed (try ${step.failures} of ${maxAttempts}); retry in ${delay} ms`));
      }
      await this.save(`step "${id}" failed: ${step.error.message}`);
      if (maxAttempts > 1) throw new StepError(id, `step "${id}" failed ${step.failures} times: ${step.error.message}`, { cause: error });
      throw error;
    }
    const now = host.clock.now();
    this.current = undefined;
    this.timed(key, now - startedAt);
    const result = value === undefined ? undefined : toJsonValue(value, `the result of step "${id}"`);
    const size = sizeOf(result);
    if (size > MAX_STEP_RESULT_BYTES)
      throw new StepResultTooLargeError(
        id,
        `the result of step "${id}" is ${size} bytes serialised; the limit is ${MAX_STEP_RESULT_BYTES}: store large data elsewhere and return its key`,
      );
    step.status = "completed";
    step.finishedAt = now;
    step.durationMs = now - startedAt;
    delete step.error;
    if (result === undefined) delete step.result;
    else step.result = result;
    await this.save(`step "${id}" completed`, id);
    return clone(result) as T;
  }

  async sleep(id: string, ms: number): Promise<void> {
    const wait = validateInt(ms, "ms", 0, MAX_STEP_WAIT_MS);
    return this.pause(id, (now) => now + wait);
  }

  async sleepUntil(id: string, until: Date | number): Promise<void> {
    const at = until instanceof Date ? until.getTime() : until;
    if (typeof at !== "number" || !Number.isFinite(at)) throw new ValidationError("sleepUntil takes a Date or epoch milliseconds", "until");
    return this.pause(id, () => at);
  }

  private async pause(id: string, until: (now: number) => number): Promise<void> {
    const existing = this.enter(id, "sleep");
    if (existing?.status === "completed") return;
    const now = this.host.clock.now();
    const step: StepRecord = existing ?? { id, kind: "sleep", status: "waiting", startedAt: now, until: until(now) };
    if (step.until! <= now) {
      step.status = "completed";
      step.finishedAt = now;
      if (!existing) this.steps.push(step);
      await this.save(`step "${id}" slept`);
      return;
    }
    if (!existing) {
      this.steps.push(step);
      await this.save(`step "${id}" sleeps until ${new Date(step.until!).toISOString()}`);
    }
    this.suspend(new StepSuspension(step.until!, `sleeping: step "${id}" until ${new Date(step.until!).toISOString()}`));
  }

  async waitForEvent<T = unknown>(id: string, options: WaitForEventOptions): Promise<ReceivedEvent<T> | null> {
    const existing = this.enter(id, "wait");
    if (existing?.status === "completed") return clone(existing.result) as ReceivedEvent<T> | null;
    if (!options || typeof options !== "object") throw new ValidationError("waitForEvent takes { event, timeout, match? }", "options");
    const event = validateEventName(options.event);
    const timeout = validateInt(options.timeout, "timeout", 1, MAX_STEP_WAIT_MS);
    const match = options.match === undefined ? undefined : (toJsonValue(options.match, "match") as Record<string, unknown>);
    if (match !== undefined && (match === null || typeof match !== "object" || Array.isArray(match)))
      throw new ValidationError("match must be an object of fields", "match");
    const { host } = this;
    const jobId = host.record.id;
    const now = host.clock.now();
    let step = existing;
    if (!step) {
      step = { id, kind: "wait", status: "waiting", startedAt: now, until: now + timeout, event, ...(match !== undefined ? { match } : {}) };
      this.steps.push(step);
      // Saved before it is noted in the index: whoever finds the job there finds the step.
      await this.save(`step "${id}" waits for event "${event}" until ${new Date(step.until!).toISOString()}`);
      await host.driver.addWaiter(step.event!, jobId, step.until! + DELIVERY_KEEP_MS, now);
    }
    const delivered = await host.driver.kvGet(deliveryKey(jobId, id), now);
    if (delivered !== undefined || step.until! <= now) {
      const received = delivered === undefined ? null : (JSON.parse(delivered) as ReceivedEvent<T>);
      step.status = "completed";
      step.finishedAt = now;
      step.result = received;
      await this.save(received ? `step "${id}" received event "${step.event}"` : `step "${id}" timed out waiting for event "${step.event}"`);
      await host.driver.removeWaiters(step.event!, [jobId]);
      return clone(received);
    }
    if (existing) await host.driver.addWaiter(step.event!, jobId, step.until! + DELIVERY_KEEP_MS, now);
    this.suspend(new StepSuspension(step.until!, `waiting: step "${id}" for event "${step.event}"`, { event: step.event!, stepId: id }));
  }

  /** Every step starts here: the suspension rule, the id rules, and the kind an earlier run gave the id. */
  private enter(id: string, kind: StepRecord["kind"]): StepRecord | undefined {
    if (this.suspension) throw this.suspension;
    validateText(id, "step id", MAX_STEP_ID_LENGTH);
    if (this.seen.has(id)) throw new DuplicateStepIdError(id);
    this.seen.add(id);
    this.used = true;
    const existing = this.steps.find((s) => s.id === id);
    if (existing && existing.kind !== kind)
      throw new StepError(
        id,
        `step "${id}" was a ${existing.kind} step in an earlier run of this job and is a ${kind} step now; step ids must be stable across runs`,
      );
    if (!existing && this.steps.length >= MAX_STEPS) throw new StepResultTooLargeError(id, `a job reaches at most ${MAX_STEPS} steps`);
    return existing;
  }

  private timed(key: string, ms: number): void {
    this.host.recordTime(key, Math.max(0, ms));
    this.longestStepMs = Math.max(this.longestStepMs, ms);
  }

  private async save(reason: string, stepId?: string): Promise<void> {
    const { host } = this;
    const size = sizeOf(this.steps);
    if (size > MAX_STEPS_BYTES && stepId !== undefined)
      throw new StepResultTooLargeError(
        stepId,
        `the job's steps would be ${size} bytes serialised with step "${stepId}"; the limit is ${MAX_STEPS_BYTES}: keep large results elsewhere and return their keys`,
      );
    const now = host.clock.now();
    const ok = await host.driver.saveSteps(host.lease, this.steps, { state: JobState.Processing, at: now, reason, worker: host.workerId }, now);
    if (!ok) {
      host.leaseLost();
      throw new LeaseLostError(host.record.id);
    }
  }

  private suspend(s: StepSuspension): never {
    this.suspension = s;
    throw s;
  }
}

async function inChunks<T>(items: T[], size: number, each: (item: T, index: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map((item, j) => each(item, i + j)));
}

/** What sendEvent answers. */
export interface SendEventResult {
  /** Ids of the jobs the event was delivered to (each woken). */
  delivered: string[];
}

/**
 * Delivers an event to the jobs waiting for it (Storage.sendEvent). `wake`
 * requeues suspended jobs (the storage's transition, which announces them).
 */
export async function deliverEvent(
  driver: StorageDriver,
  name: string,
  data: unknown,
  now: number,
  wake: (ids: string[]) => Promise<unknown>,
): Promise<SendEventResult> {
  const ids = await driver.waiters(name, now, MAX_WAITERS_PER_EVENT);
  if (ids.length === 0) return { delivered: [] };
  const records = await driver.get(ids);
  const delivered: string[] = [];
  const stale: string[] = [];
  const envelope = JSON.stringify({ name, data, at: now } satisfies ReceivedEvent);
  // A few at a time: an invocation's subrequests are counted (Workers: 50 on the Free plan).
  await inChunks(ids, 16, async (id, i) => {
    const r = records[i];
    const step = r && !FINISHED_STATES.includes(r.state) ? r.steps?.find((s) => s.kind === "wait" && s.status === "waiting" && s.event === name) : undefined;
    if (!r || !step) {
      // Finished, gone, or past that wait: nothing waits here any more.
      if (!r || FINISHED_STATES.includes(r.state) || !r.steps?.some((s) => s.kind === "wait" && s.status === "waiting")) stale.push(id);
      return;
    }
    if (!matchesEvent(data, step.match)) return;
    const kept = await driver.kvAdd(deliveryKey(id, step.id), envelope, (step.until ?? now) + DELIVERY_KEEP_MS, now);
    if (kept === envelope) delivered.push(id);
  });
  if (delivered.length > 0) await wake(delivered);
  if (delivered.length + stale.length > 0) await driver.removeWaiters(name, [...delivered, ...stale]);
  return { delivered };
}
