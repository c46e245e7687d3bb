/**
 * CPU time (user + system, ms) of the processes a contender's work runs
 * in, from /proc: this process, its descendants, the local stand-in
 * gateways (Upstash REST, Neon), PostgreSQL and redis-server. All zero but
 * `self` where /proc is not there. The store's figures are server-wide:
 * read them on a machine where nothing else uses the store.
 */
import { readFileSync, readdirSync } from "node:fs";

export interface CpuSample {
  self: number;
  children: number;
  gateways: number;
  postgres: number;
  redis: number;
}

/** USER_HZ: /proc's clock ticks per second. */
const TICK_MS = 10;

export function cpuSample(): CpuSample {
  const out = { children: 0, gateways: 0, postgres: 0, redis: 0 };
  const self = process.cpuUsage();
  const selfMs = (self.user + self.system) / 1000;
  let dirs: string[];
  try {
    dirs = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return { self: selfMs, ...out };
  }
  const stats = new Map<number, { comm: string; ppid: number; ticks: number; reaped: number }>();
  for (const d of dirs) {
    try {
      const st = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      // Fields after the name: state ppid … utime(12) stime(13) cutime(14) cstime(15), 0-based from state.
      stats.set(Number(d), {
        comm: st.slice(st.indexOf("(") + 1, st.lastIndexOf(")")),
        ppid: Number(f[1]),
        ticks: Number(f[11]) + Number(f[12]),
        reaped: Number(f[13]) + Number(f[14]),
      });
    } catch {
      // exited while we read
    }
  }
  const isDescendant = (pid: number): boolean => {
    for (let p = stats.get(pid)?.ppid; p !== undefined && p > 1; p = stats.get(p)?.ppid) if (p === process.pid) return true;
    return false;
  };
  const isGateway = (pid: number): boolean => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("gateway-process");
    } catch {
      return false;
    }
  };
  for (const [pid, s] of stats) {
    // The postmaster's cutime counts the backends that exited (it reaps them).
    if (s.comm === "postgres") out.postgres += s.ticks + (stats.get(s.ppid)?.comm === "postgres" ? 0 : s.reaped);
    else if (s.comm.startsWith("redis-server")) out.redis += s.ticks;
    else if (pid === process.pid) continue;
    else if (isDescendant(pid)) out.children += s.ticks;
    else if (s.comm === "node" && isGateway(pid)) out.gateways += s.ticks;
  }
  return {
    self: selfMs,
    children: out.children * TICK_MS,
    gateways: out.gateways * TICK_MS,
    postgres: out.postgres * TICK_MS,
    redis: out.redis * TICK_MS,
  };
}

/** CPU µs per job between two samples: the contender's process (with its descendants), the gateways, the store. */
export function cpuPerJob(a: CpuSample, b: CpuSample, jobs: number, store: "memory" | "redis" | "postgres"): CpuPerJob {
  const us = (ms: number) => Math.round(((ms * 1000) / Math.max(1, jobs)) * 10) / 10;
  return {
    process: us(b.self - a.self + b.children - a.children),
    store: store === "redis" ? us(b.redis - a.redis) : store === "postgres" ? us(b.postgres - a.postgres) : 0,
    ...(b.gateways > a.gateways ? { gateways: us(b.gateways - a.gateways) } : {}),
  };
}

export interface CpuPerJob {
  /** The contender's process (its workers, its drivers). */
  process: number;
  /** redis-server or PostgreSQL (0 for memory, SQLite: they run in the process). */
  store: number;
  /** The Upstash or Neon stand-in gateways, for the contenders that go through them. */
  gateways?: number;
}
