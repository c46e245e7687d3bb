/**
 * What /readyz answers: the store is reachable and its schema migrated, and
 * the server is not draining.
 *
 * Probes come often (every load balancer and every kubelet, every few
 * seconds, on every replica), so one check is shared for `cacheMs` and
 * concurrent probes wait on the same one. The check is one primary-key read
 * of a job that does not exist: one round trip on every backend, and on
 * Postgres it also fails when the table is missing (schema not migrated).
 *
 * The endpoint answers strangers (load balancers send no credentials), so
 * what it tells them is the phase, a code and a generic reason
 * (`publicReport`); why the store is unreachable (ECONNREFUSED 10.0.3.7:5432,
 * ENOTFOUND db.internal, database "x" does not exist) maps the network
 * behind the server, and goes to the log and to admin callers only.
 */
import { ConfigError, StorageUnavailableError, type Logger, type Storage } from "../../../index.js";

export type ReadinessPhase = "starting" | "ready" | "draining";

export interface ReadinessReport {
  ok: boolean;
  storage: string;
  phase: ReadinessPhase;
  /** Whether `migrate()` has completed in this process. */
  migrated: boolean;
  /** Why the server is not ready. */
  error?: string;
  code?: string;
  checkedAt: string;
}

export interface ReadinessOptions {
  /** How long one check answers for (default 1000 ms). */
  cacheMs?: number;
  /** A check that takes longer counts as unreachable (default 2000 ms). */
  timeoutMs?: number;
  /** Where the details of a failed check go (once per distinct failure). */
  logger?: Logger;
}

const PROBE_ID = "qml-readyz-probe";

export class Readiness {
  private phase: ReadinessPhase = "starting";
  private startError: unknown;
  private cached: { at: number; report: Promise<ReadinessReport> } | undefined;
  private readonly cacheMs: number;
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;
  private lastLogged: string | undefined;

  constructor(
    private readonly storage: Storage,
    options: ReadinessOptions = {},
  ) {
    this.cacheMs = options.cacheMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.logger = options.logger;
  }

  get current(): ReadinessPhase {
    return this.phase;
  }

  /** The job server started: migrations are applied. */
  markStarted(): void {
    if (this.phase === "starting") this.phase = "ready";
    this.startError = undefined;
    this.cached = undefined;
  }

  /** Start-up failed (store unreachable at boot); reported until a retry succeeds. */
  markStartFailed(error: unknown): void {
    this.startError = error;
    this.cached = undefined;
  }

  /** SIGTERM: load balancers should stop sending traffic while running jobs finish. */
  markDraining(): void {
    this.phase = "draining";
    this.cached = undefined;
  }

  check(): Promise<ReadinessReport> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return this.cached.report;
    const report = this.run().then((r) => this.logged(r));
    this.cached = { at: now, report };
    return report;
  }

  private logged(report: ReadinessReport): ReadinessReport {
    // Start-up failures are logged by the server's start loop; a probe failing after it is logged here.
    const failure = report.ok || report.phase !== "ready" ? undefined : report.error;
    if (failure !== undefined && failure !== this.lastLogged) {
      this.logger?.warn("not ready", { storage: report.storage, phase: report.phase, code: report.code, reason: failure });
    }
    this.lastLogged = failure;
    return report;
  }

  private async run(): Promise<ReadinessReport> {
    const base = { storage: this.storage.kind, phase: this.phase, migrated: this.phase !== "starting" };
    const at = () => new Date().toISOString();
    if (this.phase === "draining") return { ok: false, ...base, error: "the server is shutting down", code: "SHUTDOWN", checkedAt: at() };
    if (this.phase === "starting") {
      const e = this.startError;
      const error = e === undefined ? "starting: migrations not applied yet" : `starting: ${describe(e)}`;
      return { ok: false, ...base, error, ...codeOf(e), checkedAt: at() };
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.storage.driver.get([PROBE_ID]),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new StorageUnavailableError(`${this.storage.kind} did not answer within ${this.timeoutMs} ms`, { scope: "node" })),
            this.timeoutMs,
          );
        }),
      ]);
      return { ok: true, ...base, checkedAt: at() };
    } catch (e) {
      return { ok: false, ...base, error: describe(e), ...codeOf(e), checkedAt: at() };
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * What /readyz tells a caller without an admin token: whether, the phase,
 * the code, and a reason that names no host, address or database.
 */
export function publicReport(report: ReadinessReport): ReadinessReport {
  // No code: "starting: migrations not applied yet"; SHUTDOWN: "the server is shutting down". Both say nothing of the network.
  if (report.ok || report.error === undefined || report.code === undefined || report.code === "SHUTDOWN") return report;
  const reason = report.code === "CONFIG" ? "the store's configuration is refused; see the server's log" : "storage unavailable";
  return { ...report, error: report.phase === "starting" ? `starting: ${reason}` : reason };
}

/** For the log and admin callers: no credentials from a URL in a driver's message, and no novels. */
function describe(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const clean = text.replace(/\/\/[^/@\s]*@/g, "//***@");
  return clean.length > 300 ? `${clean.slice(0, 300)}…` : clean;
}

function codeOf(e: unknown): { code?: string } {
  if (e instanceof StorageUnavailableError || e instanceof ConfigError) return { code: e.code };
  return e === undefined ? {} : { code: "STORAGE_UNAVAILABLE" };
}
