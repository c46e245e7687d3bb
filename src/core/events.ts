/** A small typed event emitter (Web Standards only). Events are `noun:verb`. */
import type { ErrorInfo } from "./errors.js";
import type { JobRecord } from "./job.js";

export interface JobEventMap {
  /** A worker started an attempt. */
  "job:start": { job: JobRecord; workerId: string };
  "job:succeeded": { job: JobRecord; workerId: string; durationMs: number; result: unknown };
  /** The attempt failed and another is scheduled. */
  "job:retry": { job: JobRecord; workerId: string; durationMs: number; error: ErrorInfo; runAt: number };
  /** The job failed for good. */
  "job:failed": { job: JobRecord; workerId: string; durationMs: number; error: ErrorInfo };
  /** Handed back to `enqueued` without counting the attempt (shutdown, deadline). */
  "job:released": { job: JobRecord; reason: string };
  /** Its durable steps suspended the run (a sleep, an event wait, a step retry, the deadline between steps): due again at runAt. */
  "job:suspended": { job: JobRecord; runAt: number; reason: string };
  /**
   * An aborted run (timeout, lost lease, deadline, shutdown) whose worker
   * ignored its AbortSignal and is still running: its outcome is recorded,
   * its worker slot stays taken until it returns.
   */
  "job:overrun": { job: JobRecord; workerId: string; reason: string };
  /** A running job was cancelled (or deleted): its AbortSignal fired with a CancelledError. */
  "job:cancelled": { id: string; workerId: string; job: JobRecord };
  /** The outcome was fenced out: the lease had been lost. */
  "job:lost": { id: string; reason: string };
  /** The store refused or failed an operation; the engine retries. */
  "storage:error": { operation: string; error: unknown };
  /** Housekeeping handed back `count` jobs whose lease had expired (the store reports a count, not which jobs). */
  "jobs:reclaimed": { count: number };
  /** A recurring definition enqueued its slot. */
  "recurring:fired": { id: string; slot: number; jobId: string };
}

export type Listener<T> = (payload: T) => void;

export class Emitter<M extends object> {
  private readonly listeners = new Map<keyof M, Set<Listener<never>>>();

  on<K extends keyof M>(event: K, fn: Listener<M[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => set!.delete(fn as Listener<never>);
  }

  once<K extends keyof M>(event: K, fn: Listener<M[K]>): () => void {
    const off = this.on(event, (p) => {
      off();
      fn(p);
    });
    return off;
  }

  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<M[K]>)(payload);
      } catch {
        // a listener's failure must not break the engine
      }
    }
  }

  has<K extends keyof M>(event: K): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }
}
