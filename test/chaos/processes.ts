/**
 * Processes the chaos tests start, kill and restart: bundled worker
 * processes, private redis-servers (with an append-only file, or with no
 * persistence) and private PostgreSQL clusters.
 *
 * Workers are bundled once per test file with esbuild (a single .mjs with
 * every dependency inside) instead of run through tsx: a restart then costs
 * a plain `node` start-up, which matters when a test kills and restarts
 * workers every few hundred milliseconds on a busy machine.
 *
 * Everything started here is remembered and `stopAll()` (called from each
 * file's afterAll) kills what is left, failures included. Only processes
 * started here are ever signalled.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { WorkerConfig } from "./worker-process.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
export const SKEW_PRELOAD = join(HERE, "fixtures", "skew-clock.mjs");

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/** A path in a temporary directory that removeTempDirs() deletes. */
export function tempPath(name: string): string {
  return join(tempDir("qml-chaos-"), name);
}

let bundled: Promise<string> | undefined;

/** The worker bundle's path (built on first use). */
export function workerBundle(): Promise<string> {
  bundled ??= (async () => {
    const outfile = join(tempDir("qml-chaos-bundle-"), "worker.mjs");
    await build({
      entryPoints: [join(HERE, "worker-process.ts")],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      // CommonJS dependencies (ioredis, pg) call require() for Node builtins.
      banner: { js: "import { createRequire as __qmlRequire } from 'node:module'; const require = __qmlRequire(import.meta.url);" },
      external: ["pg-native", "bufferutil", "utf-8-validate"],
      logLevel: "silent",
    });
    return outfile;
  })();
  return bundled;
}

export interface ChaosWorker {
  readonly serverId: string;
  readonly child: ChildProcessWithoutNullStreams;
  /** Lines printed so far. */
  readonly lines: string[];
  /** Resolves with the first line (printed or to come) matching; rejects if the process exits first. */
  waitFor(re: RegExp, what?: string): Promise<RegExpExecArray>;
  /** Exit code, or 128 + signal number. */
  readonly exited: Promise<number>;
  readonly alive: boolean;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
  send(line: string): void;
  stderr(): string;
}

const SIGNALS: Record<string, number> = { SIGKILL: 9, SIGTERM: 15, SIGABRT: 6 };

export async function spawnWorker(config: WorkerConfig, options: { skewMs?: number } = {}): Promise<ChaosWorker> {
  const bundle = await workerBundle();
  const args = options.skewMs !== undefined ? ["--import", SKEW_PRELOAD, bundle] : [bundle];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, QML_CHAOS_CONFIG: JSON.stringify(config), ...(options.skewMs !== undefined ? { QML_CHAOS_SKEW_MS: String(options.skewMs) } : {}) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  live.add(child);
  const lines: string[] = [];
  let partial = "";
  let err = "";
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpExecArray) => void }> = [];
  let alive = true;
  const exited = new Promise<number>((resolve) => {
    child.once("exit", (code, signal) => {
      alive = false;
      live.delete(child);
      resolve(code ?? 128 + (SIGNALS[signal ?? ""] ?? 0));
    });
  });
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    // Keep the tail only: a crash loop must not fill memory.
    err = (err + d).slice(-8000);
  });
  child.stdout.on("data", (d: string) => {
    partial += d;
    const parts = partial.split("\n");
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const m = waiters[i]!.re.exec(line);
        if (m) {
          waiters[i]!.resolve(m);
          waiters.splice(i, 1);
        }
      }
    }
  });
  child.stdin.on("error", () => {});
  return {
    serverId: config.serverId,
    child,
    lines,
    exited,
    get alive() {
      return alive;
    },
    stderr: () => err,
    waitFor(re, what = String(re)) {
      for (const line of lines) {
        const m = re.exec(line);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        waiters.push({ re, resolve });
        void exited.then((code) =>
          reject(new Error(`worker ${config.serverId} exited (${code}) before ${what}\nstdout: ${lines.slice(-20).join("\n")}\nstderr: ${err}`)),
        );
      });
    },
    async kill() {
      if (alive) child.kill("SIGKILL");
      await exited;
    },
    send(line) {
      if (alive) child.stdin.write(`${line}\n`);
    },
  };
}

/** A worker that is started and has said READY. */
export async function startWorker(config: WorkerConfig, options: { skewMs?: number } = {}): Promise<ChaosWorker> {
  const w = await spawnWorker(config, options);
  await w.waitFor(/^READY /, "READY");
  return w;
}

// ---------------------------------------------------------------- redis

export { freePort } from "../helpers/services.js";
import { freePort } from "../helpers/services.js";

export interface AofRedis {
  url: string;
  port: number;
  /** SIGKILL: no shutdown save, only what the append-only file already holds survives. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A private redis-server on its own port, with `appendfsync always`: every
 * write it acknowledged is on disk, so a SIGKILL and a restart lose none.
 */
export function startAofRedis(): Promise<AofRedis> {
  return startPrivateRedis(["--appendonly", "yes", "--appendfsync", "always"]);
}

/**
 * A private redis-server with no persistence at all (`--save ""
 * --appendonly no`, as the machine's shared one and many caches run): a
 * kill and a restart bring it back empty.
 */
export function startVolatileRedis(): Promise<AofRedis> {
  return startPrivateRedis(["--appendonly", "no"]);
}

async function startPrivateRedis(persistence: string[]): Promise<AofRedis> {
  const port = await freePort();
  const dir = tempDir("qml-chaos-redis-");
  mkdirSync(dir, { recursive: true });
  let child: ChildProcess | undefined;
  const start = async () => {
    const c = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persistence, "--dir", dir, "--logfile", ""], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    live.add(c);
    c.once("exit", () => live.delete(c));
    child = c;
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const onData = (b: Buffer) => {
        out += b.toString();
        if (out.includes("Ready to accept connections")) {
          c.stdout!.off("data", onData);
          c.stdout!.resume();
          resolve();
        }
      };
      c.stdout!.on("data", onData);
      c.stderr!.on("data", (b: Buffer) => (out += b.toString()));
      c.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-2000)}`)));
    });
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once("exit", () => r()));
    c.kill("SIGKILL");
    await gone;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, kill, start, stop: kill };
}

// ---------------------------------------------------------------- postgres

const PG_BIN = process.env.QML_PG_BIN ?? "/usr/lib/postgresql/15/bin";

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** `pg_ctl stop -m immediate`: the postmaster and every backend quit at once, no checkpoint (a crash, recovered from the WAL at the next start). */
  kill(): Promise<void>;
  /** `pg_ctl start` on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

const clusters = new Set<PrivatePostgres>();

/** Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb and postgres refuse to run as root). */
function runPg(bin: string, args: string[], asUser: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(join(PG_BIN, bin), args, { stdio: ["ignore", "pipe", "pipe"], ...(asUser ?? {}) });
    let out = "";
    c.stdout.on("data", (b: Buffer) => (out += b.toString()));
    c.stderr.on("data", (b: Buffer) => (out += b.toString()));
    c.once("error", reject);
    c.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${bin} ${args.join(" ")} exited with ${code}: ${out.slice(-2000)}`))));
  });
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!passwd) throw new Error("running as root and there is no postgres user to run initdb as");
  const [, , uid, gid] = passwd.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * A private PostgreSQL cluster (initdb into a temporary directory, trust
 * auth, its own port and socket directory), so that a test can stop and
 * start the server process itself without touching the machine's shared
 * server on 5432. About 2-3 s for initdb and the first start.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const port = await freePort();
  const user = postgresUser();
  const dir = tempDir("qml-chaos-pg-");
  const data = join(dir, "data");
  if (user) chownSync(dir, user.uid, user.gid);
  await runPg("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "--no-instructions", "-E", "UTF8"], user);
  const pgCtl = (args: string[]) => runPg("pg_ctl", ["-D", data, ...args], user);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=50 -c shared_buffers=16MB`;
  let running = false;
  const cluster: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await pgCtl(["start", "-w", "-t", "60", "-l", join(dir, "log"), "-o", options]);
      running = true;
    },
    async kill() {
      if (!running) return;
      running = false;
      await pgCtl(["stop", "-w", "-m", "immediate"]);
    },
    stop: () => cluster.kill(),
  };
  clusters.add(cluster);
  await cluster.start();
  return cluster;
}

/** Kills every process this module started that is still running, and removes temporary files. */
export async function stopAll(): Promise<void> {
  await Promise.all([...clusters].map((c) => c.kill().catch(() => {})));
  clusters.clear();
  const waits: Array<Promise<void>> = [];
  for (const c of live) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    waits.push(new Promise<void>((r) => c.once("exit", () => r())));
    c.kill("SIGKILL");
  }
  await Promise.all(waits);
  live.clear();
}

/** Removes bundles and data directories (call once per file, after stopAll). */
export function removeTempDirs(): void {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
  bundled = undefined;
}
