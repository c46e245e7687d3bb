/**
 * Every contender, in the order they run. Peers are imported only when
 * selected: they live in
 * bench/node_modules (`npm ci --prefix bench`), which the main install and
 * the repository's typecheck do not need.
 */
import type { QueueAdapter, Store } from "../harness.js";
import { qmlMemory } from "./qml.js";
import { qmlPostgresNeonHttp, qmlPostgresNeonWs, qmlPostgresPg, qmlRedisTcp, qmlRedisUpstash, qmlSqlite } from "./qml-stores.js";

export interface ContenderEntry {
  store: Store;
  /** Needs the bench-only dependencies in bench/node_modules. */
  peer: boolean;
  load(): Promise<QueueAdapter>;
}

/** The specifier is computed so that the root typecheck does not follow it into bench/node_modules. */
async function load(file: string, factory: string): Promise<QueueAdapter> {
  const mod = (await import(new URL(file, import.meta.url).href)) as Record<string, () => QueueAdapter | Promise<QueueAdapter>>;
  const make = mod[factory];
  if (typeof make !== "function") throw new Error(`[bench] ${file} does not export ${factory}`);
  return make();
}

export const CONTENDERS: Record<string, ContenderEntry> = {
  "qml-memory": { store: "memory", peer: false, load: async () => qmlMemory() },
  "qml-memory-keylimit": { store: "memory", peer: false, load: async () => qmlMemory({ keyLimit: true }) },
  "qml-sqlite": { store: "memory", peer: false, load: async () => qmlSqlite() },
  "qml-sqlite-prefetch": { store: "memory", peer: false, load: async () => qmlSqlite({ prefetch: true }) },
  "qml-sqlite-keylimit": { store: "memory", peer: false, load: async () => qmlSqlite({ keyLimit: true }) },
  "qml-redis": { store: "redis", peer: false, load: async () => qmlRedisTcp() },
  "qml-redis-prefetch": { store: "redis", peer: false, load: async () => qmlRedisTcp({ prefetch: true }) },
  "qml-redis-keylimit": { store: "redis", peer: false, load: async () => qmlRedisTcp({ keyLimit: true }) },
  "qml-redis-upstash": { store: "redis", peer: false, load: async () => qmlRedisUpstash() },
  "qml-redis-upstash-prefetch": { store: "redis", peer: false, load: async () => qmlRedisUpstash({ prefetch: true }) },
  bullmq: { store: "redis", peer: true, load: () => load("./bullmq.ts", "bullmq") },
  "qml-pg": { store: "postgres", peer: false, load: async () => qmlPostgresPg() },
  "qml-pg-prefetch": { store: "postgres", peer: false, load: async () => qmlPostgresPg({ prefetch: true }) },
  "qml-pg-keylimit": { store: "postgres", peer: false, load: async () => qmlPostgresPg({ keyLimit: true }) },
  "qml-pg-prefetch-keep0": { store: "postgres", peer: false, load: async () => qmlPostgresPg({ prefetch: true, keepNone: true }) },
  "qml-neon-ws": { store: "postgres", peer: false, load: async () => qmlPostgresNeonWs() },
  "qml-neon-ws-prefetch": { store: "postgres", peer: false, load: async () => qmlPostgresNeonWs({ prefetch: true }) },
  "qml-neon-http": { store: "postgres", peer: false, load: async () => qmlPostgresNeonHttp() },
  "qml-neon-http-prefetch": { store: "postgres", peer: false, load: async () => qmlPostgresNeonHttp({ prefetch: true }) },
  "graphile-worker": { store: "postgres", peer: true, load: () => load("./graphile-worker.ts", "graphileWorker") },
  "graphile-worker-fast": { store: "postgres", peer: true, load: () => load("./graphile-worker.ts", "graphileWorkerFast") },
  "pg-boss": { store: "postgres", peer: true, load: () => load("./pg-boss.ts", "pgBoss") },
};

/**
 * Contenders named by `--only`: exact names, or prefixes ("qml", "graphile"),
 * comma-separated. Keeps the run order.
 */
export function select(only: string[] | undefined): string[] {
  const all = Object.keys(CONTENDERS);
  if (!only || only.length === 0) return all;
  const unknown = only.filter((o) => !all.some((n) => n === o || n.startsWith(o)));
  if (unknown.length > 0) throw new Error(`[bench] unknown contender ${unknown.map((u) => JSON.stringify(u)).join(", ")}; known: ${all.join(", ")}`);
  return all.filter((n) => only.some((o) => n === o || (!all.includes(o) && n.startsWith(o))));
}
