/**
 * The serverless consumer: what a Workers Queue batch and an SQS batch do,
 * written once. A runtime turns its event into `Delivery`s, calls
 * `consumeWakeUps`, and turns each `Settlement` back into its platform's
 * answer (Workers: `msg.ack()` / `msg.retry({ delaySeconds })`; Lambda:
 * `batchItemFailures`). The schedule path (`runScheduled`) is the same
 * tick with housekeeping.
 *
 * A batch: decode every message; run one tick without housekeeping on the
 * queues the messages name; read their jobs back in one round trip
 * (`storage.getMany`); then decide each message by the table below, from
 * what the store says now.
 *
 * The decision table. Per message:
 *
 *   the message                                      decision
 *   ──────────────────────────────────────────────   ─────────────────────────────
 *   not a qml wake-up (wake-up.ts)                   dead-letter
 *   for a queue this consumer does not serve         dead-letter
 *   the store unreachable (build, read back)         retry, backoff by delivery
 *
 * Per job it names, read back after the tick (`now` on the consumer's clock):
 *
 *   the job                                          need
 *   ──────────────────────────────────────────────   ─────────────────────────────
 *   succeeded, failed, deleted                       ack (its fate is recorded)
 *   awaiting (a flow's parent, a continuation)       ack (its release sends a wake-up
 *                                                    of its own)
 *   absent, first delivery sent < 10 s ago           retry in 2 s (a read replica,
 *                                                    e.g. Upstash global, may lag
 *                                                    the insert)
 *   absent otherwise                                 ack (gone)
 *   scheduled / awaiting_retry, due later            rearm at runAt
 *   processing under a live lease (elsewhere)        rearm at leaseUntil + 1 s
 *   enqueued, or scheduled / awaiting_retry due      retry, backoff by delivery (due
 *                                                    but not run: the budget ran out,
 *                                                    it would not fit, maxJobs)
 *   processing, lease expired                        reclaim on the store's clock,
 *                                                    then retry, backoff
 *   waiting in a paused queue                        ack (nothing runs it until it is
 *                                                    resumed; the scheduled tick takes
 *                                                    it then)
 *   enqueued with a concurrency key                  ack (it waits for a slot, which
 *                                                    may take longer than redelivery
 *                                                    lasts: the next claim after a slot
 *                                                    frees takes it, this invocation's
 *                                                    or the scheduled tick's)
 *   put off by its rate limit (scheduled)            rearm at runAt, as any scheduled job
 *
 * A rearm whose time lies beyond the notifier's longest delay (Queues
 * 12 h, SQS 15 min; no notifier: no delay at all) is an ack instead: the
 * scheduled tick promotes or reclaims that job when its time comes, and a
 * wake-up then would save nothing.
 *
 * A message names many jobs: the most urgent need wins (retry > rearm >
 * ack). Retry: the whole message comes back (after the shortest delay its
 * jobs asked for), and every id in it is looked at again then; nothing is
 * re-armed for it. Rearm: one fresh wake-up per job to look at later, sent
 * before the message is acked; if that send fails, the message is retried
 * instead. Ack: nothing is left for the message to do.
 *
 * Why rearm and not retry for a waiting job: a retry counts against the
 * platform's redelivery limit and would dead-letter a healthy job that is
 * merely waiting (a retry in an hour, a ten-minute job elsewhere); a fresh
 * message carries the duty instead. So a dead letter is a real signal:
 * the store was unreachable for every retry, the consumers cannot keep up,
 * a job never fits the budget, or a message was not ours. Its jobs stay in
 * the store for the scheduled tick either way.
 *
 * Dead-letter: logged once (first delivery), then refused on each delivery
 * until the platform's redrive moves it to the dead-letter queue
 * (`max_retries` on Queues, `maxReceiveCount` on SQS).
 */
import type { Notifier, WakeUp } from "../../../core/client.js";
import { backoffMs } from "../../../core/backoff.js";
import { systemClock } from "../../../core/clock.js";
import { Emitter, type JobEventMap } from "../../../core/events.js";
import { JobState, type Job } from "../../../core/job.js";
import { processMetrics } from "../../../core/metrics.js";
import { Outbox } from "../../../core/outbox.js";
import type { WorkerRegistry } from "../../../core/registry.js";
import type { Storage } from "../../../core/storage.js";
import { tick, type TickReport } from "../../../core/tick.js";
import type { ResolvedServerlessConfig } from "./config.js";
import { decodeWakeUp, type WakeUpMessage } from "./wake-up.js";

/** One platform message, as a runtime hands it over. */
export interface Delivery {
  /** The platform's message id. */
  id: string;
  body: unknown;
  /** 1 on the first delivery. */
  attempts: number;
  /** When it was first sent (epoch ms), where the platform says. */
  sentAt?: number;
}

/** What the runtime does with a message. A rearm, once its fresh wake-up is sent, settles as an ack. */
export type Settlement = { action: "ack" } | { action: "retry"; delaySeconds: number } | { action: "dead-letter" };

/** One invocation's work: the settings, the jobs, the deadline, and who does it. */
export interface Invocation {
  config: ResolvedServerlessConfig;
  registry: WorkerRegistry;
  /** Sends fresh wake-ups (rearm) and forwards this invocation's enqueues. */
  notifier: Notifier | undefined;
  /** Epoch ms, on `config.clock`, by which the work must be done. */
  deadline: number;
  /** Recorded on the jobs it runs. */
  serverId: string;
}

/** A retried message comes back after 1, 2, 4 … 60 s by delivery attempt. */
const RETRY_BACKOFF = { baseMs: 1000, maxMs: 60_000 };
/** See the table: a fresh wake-up whose job is not visible yet. */
const ABSENT_GRACE_MS = 10_000;
const ABSENT_RETRY_SECONDS = 2;
/** A re-armed wake-up for a leased job arrives this long after the lease would end. */
const LEASE_GRACE_MS = 1_000;

type Need = { kind: "ack"; why: string } | { kind: "retry"; delaySeconds: number; why: string; reclaim?: true } | { kind: "rearm"; at: number; why: string };

/**
 * The storage's outbox, pointed at this invocation's notifier: enqueues
 * made during the invocation (API calls, jobs enqueueing jobs, recurring
 * firings) send their wake-ups through it, once each.
 */
export function outboxFor(storage: Storage, inv: Pick<Invocation, "notifier" | "config">): Outbox {
  return Outbox.for(storage).use(inv.notifier, { replace: true, logger: inv.config.logger });
}

/** The scheduled path: one tick with housekeeping (promote, reclaim, recurring) on every queue served. */
export async function runScheduled(storage: Storage, inv: Invocation): Promise<TickReport> {
  const outbox = outboxFor(storage, inv);
  try {
    return await runTick(storage, inv, inv.config.queues, true);
  } finally {
    await outbox.settled(Math.max(0, inv.deadline - inv.config.clock.now()));
  }
}

/** Logs and acknowledges what reached a dead-letter queue this consumer also reads. Its jobs stay in the store for the scheduled tick. */
export function drainDeadLetters(deliveries: readonly Delivery[], config: ResolvedServerlessConfig): Settlement[] {
  return deliveries.map((d) => {
    config.logger.error("wake-up dead-lettered; its jobs stay in the store for the scheduled tick", { messageId: d.id, body: d.body, attempts: d.attempts });
    return { action: "ack" };
  });
}

/**
 * A batch of wake-ups: runs the tick, reads the named jobs back, and
 * settles each message by the table above. `open` may fail (the store
 * unreachable): every wake-up is then retried, none lost. In-flight
 * wake-ups of enqueues made meanwhile are left to `outboxFor(…).settled()`.
 */
export async function consumeWakeUps(open: () => Promise<Storage>, deliveries: readonly Delivery[], inv: Invocation): Promise<Settlement[]> {
  const { config } = inv;
  const log = config.logger.child({ invocation: "queue", messages: deliveries.length });
  const out: Settlement[] = new Array(deliveries.length);
  const served = new Set(config.queues);
  const pending: Array<{ i: number; d: Delivery; wake: WakeUpMessage }> = [];
  deliveries.forEach((d, i) => {
    const wake = decodeWakeUp(d.body);
    const problem = !wake
      ? "not a qml wake-up"
      : !served.has(wake.queue)
        ? `a wake-up for queue ${JSON.stringify(wake.queue)}, which this consumer does not serve`
        : undefined;
    if (problem) {
      // Once, not on each redelivery on its way to the dead-letter queue.
      if (d.attempts <= 1) log.error(`${problem}; refused until the platform moves it to the dead-letter queue`, { messageId: d.id, queues: config.queues });
      settled(log, out, i, d, "dead-letter", { action: "dead-letter" }, problem);
    } else {
      pending.push({ i, d, wake: wake! });
    }
  });
  if (pending.length === 0) return out;

  const retryAll = (why: string) => {
    for (const p of pending) settled(log, out, p.i, p.d, "retry", { action: "retry", delaySeconds: backoffSeconds(p.d.attempts) }, why);
    return out;
  };

  let storage: Storage;
  try {
    storage = await open();
  } catch (error) {
    log.error("store unavailable; wake-ups will be retried", { error });
    return retryAll("store unavailable");
  }
  outboxFor(storage, inv);

  const named = new Set(pending.map((p) => p.wake.queue));
  try {
    const report = await runTick(
      storage,
      inv,
      config.queues.filter((q) => named.has(q)),
      false,
    );
    log.info("tick done", { ...report });
  } catch (error) {
    // Whatever the tick recorded before failing is in the store: the messages are settled below on what it says.
    log.error("tick failed", { error });
  }

  const ids = [...new Set(pending.flatMap((p) => p.wake.ids))];
  let jobs: Map<string, Job | null>;
  let paused: Set<string>;
  try {
    // Sent together: over an HTTP driver they share one request.
    const [read, pausedQueues] = await Promise.all([storage.getMany(ids), storage.pausedQueues()]);
    jobs = new Map(ids.map((id, i) => [id, read[i] ?? null]));
    paused = new Set(pausedQueues);
  } catch (error) {
    log.error("could not read jobs back; wake-ups will be retried", { error });
    return retryAll("could not read jobs back");
  }

  const now = config.clock.now();
  const horizonMs = inv.notifier ? (inv.notifier.maxDelayMs ?? Number.POSITIVE_INFINITY) : 0;
  const decided = pending.map((p) => ({ ...p, need: messageNeed(p.wake.ids.map((id) => jobNeed(jobs.get(id) ?? null, p.d, now, horizonMs, paused))) }));

  if (decided.some((x) => x.need.kind === "retry" && x.need.reclaim)) await reclaim(storage, inv, now, log);

  // One send for every fresh wake-up of the batch; each message acked only if it went out.
  const rearms = decided.filter((x) => x.need.kind === "rearm");
  let rearmed = false;
  if (rearms.length > 0) {
    const fresh: WakeUp[] = rearms.flatMap((x) =>
      x.wake.ids.flatMap((id) => {
        const n = jobNeed(jobs.get(id) ?? null, x.d, now, horizonMs, paused);
        return n.kind === "rearm" ? [{ id, queue: x.wake.queue, runAt: n.at }] : [];
      }),
    );
    try {
      await inv.notifier!.notify(fresh);
      rearmed = true;
    } catch (error) {
      log.warn("could not send fresh wake-ups; retrying the messages instead", { count: fresh.length, error });
    }
  }

  for (const { i, d, need } of decided) {
    if (need.kind === "retry") settled(log, out, i, d, "retry", { action: "retry", delaySeconds: need.delaySeconds }, need.why);
    else if (need.kind === "ack") settled(log, out, i, d, "ack", { action: "ack" }, need.why);
    else if (rearmed) settled(log, out, i, d, "rearm", { action: "ack" }, need.why);
    else settled(log, out, i, d, "retry", { action: "retry", delaySeconds: backoffSeconds(d.attempts) }, `fresh wake-up not sent: ${need.why}`);
  }
  return out;
}

/** One job's row of the table. */
function jobNeed(job: Job | null, d: Delivery, now: number, horizonMs: number, paused: ReadonlySet<string>): Need {
  const retry = (why: string, reclaim?: true): Need => ({ kind: "retry", delaySeconds: backoffSeconds(d.attempts), why, ...(reclaim ? { reclaim } : {}) });
  const rearm = (at: number, why: string): Need =>
    at - now > horizonMs ? { kind: "ack", why: `${why}, beyond the notifier's reach: left to the scheduled tick` } : { kind: "rearm", at, why };
  if (!job) {
    const young = d.sentAt !== undefined && now - d.sentAt < ABSENT_GRACE_MS;
    return d.attempts <= 1 && young ? { kind: "retry", delaySeconds: ABSENT_RETRY_SECONDS, why: "job not visible yet" } : { kind: "ack", why: "job gone" };
  }
  const runAt = job.runAt?.getTime() ?? now;
  const waiting = job.state === JobState.Enqueued || job.state === JobState.Scheduled || job.state === JobState.AwaitingRetry;
  if (waiting && paused.has(job.queue)) return { kind: "ack", why: `queue ${job.queue} is paused: left to the scheduled tick once resumed` };
  if (job.state === JobState.Enqueued && job.concurrency !== undefined)
    return { kind: "ack", why: `job waits for a slot of ${job.concurrency.key}: the next claim after one frees takes it` };
  switch (job.state) {
    case JobState.Succeeded:
    case JobState.Failed:
    case JobState.Deleted:
      return { kind: "ack", why: `job ${job.state}` };
    case JobState.Awaiting:
      return { kind: "ack", why: "job waits for the jobs it depends on: its release sends a wake-up of its own" };
    case JobState.Scheduled:
    case JobState.AwaitingRetry:
      return runAt > now ? rearm(runAt, `job ${job.state} until ${new Date(runAt).toISOString()}`) : retry("job due, not run yet");
    case JobState.Processing: {
      const until = job.leaseUntil?.getTime();
      if (until !== undefined && until > now) return rearm(until + LEASE_GRACE_MS, "job held by a live lease elsewhere");
      return retry("lease expired", true);
    }
    default:
      return retry("job due, not run yet");
  }
}

/** The message's decision from its jobs' needs: the most urgent wins (retry > rearm > ack). */
function messageNeed(needs: Need[]): Need {
  const retries = needs.filter((n): n is Extract<Need, { kind: "retry" }> => n.kind === "retry");
  if (retries.length > 0) {
    const soonest = retries.reduce((a, b) => (b.delaySeconds < a.delaySeconds ? b : a));
    return retries.some((r) => r.reclaim) ? { ...soonest, reclaim: true } : soonest;
  }
  return needs.find((n) => n.kind === "rearm") ?? needs[0] ?? { kind: "ack", why: "no jobs" };
}

/**
 * The invocation that held a job died: hand it back now rather than at the
 * next scheduled tick, so the retried wake-up finds it enqueued. Lease
 * times are on the store's clock (see tick()), so reclaim by it: an
 * isolate whose clock runs fast cannot take a live lease.
 */
async function reclaim(storage: Storage, inv: Invocation, now: number, log: Invocation["config"]["logger"]): Promise<void> {
  try {
    const storeNow = inv.config.clock === systemClock ? ((await storage.serverTime()) ?? now) : now;
    processMetrics().countReclaimed(await storage.driver.reclaimExpired(storeNow, 1000));
  } catch (error) {
    log.warn("could not reclaim expired leases", { error });
  }
}

async function runTick(storage: Storage, inv: Invocation, queues: string[], maintenance: boolean): Promise<TickReport> {
  const c = inv.config;
  // This isolate's (instance's) /metrics counts what its invocations run and enqueue.
  const metrics = processMetrics();
  const events = new Emitter<JobEventMap>();
  const stop = metrics.observe(events);
  metrics.observeEnqueues(storage);
  try {
    return await tick({
      events,
      storage,
      registry: inv.registry,
      deadline: inv.deadline,
      safetyMs: c.safetyMs,
      queues,
      concurrency: c.concurrency,
      leaseMs: c.leaseMs,
      ...(c.jobTimeoutMs !== undefined ? { jobTimeoutMs: c.jobTimeoutMs } : {}),
      ...(c.maxJobs !== undefined ? { maxJobs: c.maxJobs } : {}),
      ...(c.retryPolicy ? { retryPolicy: c.retryPolicy } : {}),
      serverId: inv.serverId,
      // Left out unless the user set one: tick() then aligns the system clock with the store's.
      ...(c.clock !== systemClock ? { clock: c.clock } : {}),
      logger: c.logger,
      // A consumer only processes; housekeeping is the scheduled tick's (and a
      // stale lease met by a wake-up is reclaimed on its own, see reclaim()).
      maintenance,
    });
  } finally {
    stop();
  }
}

function backoffSeconds(attempts: number): number {
  return Math.round(backoffMs(attempts, RETRY_BACKOFF) / 1000);
}

/** The table's row names the decision; `action` is what the platform is told (a rearm is acked). */
export type Decision = "ack" | "retry" | "rearm" | "dead-letter";

function settled(log: Invocation["config"]["logger"], out: Settlement[], i: number, d: Delivery, decision: Decision, s: Settlement, why: string): void {
  out[i] = s;
  log.debug("wake-up settled", { messageId: d.id, decision, action: s.action, why, ...(s.action === "retry" ? { delaySeconds: s.delaySeconds } : {}) });
}
