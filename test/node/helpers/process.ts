/**
 * Spawned qml servers for the tests: started on a free port, their JSON log
 * lines collected, waited on by event (a line appears, the process exits),
 * never by sleeping; killed in afterAll if a test left one behind.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const MAIN_TS = "src/adapters/runtime/node/main.ts";

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the first log line (present or future) that matches; rejects if the process exits first. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, what?: string): Promise<Record<string, unknown>>;
  /** The exit code (or 128 + signal number when killed by a signal). */
  exited: Promise<number>;
}

const live = new Set<ChildProcessWithoutNullStreams>();

/** Kills what a failed test left running. Only processes this helper started. */
export function killLeftovers(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  live.clear();
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function spawnServer(command: string[], options: { env: Record<string, string | undefined>; cwd?: string }): ServerProcess {
  const child = spawn(command[0]!, command.slice(1), {
    cwd: options.cwd ?? REPO,
    env: options.env as NodeJS.ProcessEnv,
    stdio: ["pipe", "pipe", "pipe"],
  });
  live.add(child);
  let out = "";
  let err = "";
  let partial = "";
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (d: string) => {
    out += d;
    partial += d;
    const parts = partial.split("\n");
    partial = parts.pop()!;
    for (const p of parts) {
      if (p.trim() === "") continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(p) as Record<string, unknown>;
      } catch {
        line = { msg: p, notJson: true };
      }
      lines.push(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.match(line)) {
          waiters[i]!.resolve(line);
          waiters.splice(i, 1);
        }
      }
    }
  });
  child.stderr.on("data", (d: string) => (err += d));
  const exited = new Promise<number>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve(code ?? 128 + (SIGNALS[signal ?? ""] ?? 0));
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logs: () => lines,
    exited,
    waitForLog(match, what = "a log line") {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ match, resolve });
        void exited.then((code) => reject(new Error(`server exited (${code}) before ${what}\nstdout:\n${out.slice(-4000)}\nstderr:\n${err.slice(-4000)}`)));
      });
    },
  };
}

/** The URL the server logged once listening. */
export async function listeningUrl(server: ServerProcess): Promise<string> {
  const line = await server.waitForLog((l) => l.msg === "http listening", "listening");
  return String(line.url);
}

/**
 * Polls `fn` until it returns a value other than undefined: for state that
 * lives in another process or in a store, where no event reaches the test.
 */
export async function eventually<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 20_000, everyMs = 25): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The environment a spawned server gets: this process's, minus qml's own variables (a developer's shell may set some). */
export function baseEnv(extra: Record<string, string>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^QML_(?!TEST_)|^(DATABASE_URL|REDIS_URL|UPSTASH_REDIS_REST_URL|UPSTASH_REDIS_REST_TOKEN|PORT)$/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}
