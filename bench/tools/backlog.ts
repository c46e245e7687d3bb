/**
 * What the process tools share (profile-process.ts, seam-timing.ts): a
 * contender named on the command line, its own database or key prefix with
 * N jobs already waiting, one timed processing run over them, and the
 * clean-up afterwards.
 */
import { CONTENDERS, type ContenderEntry } from "../contenders/index.js";
import { Tracker, payload, type Endpoints, type Namespace, type Payload } from "../harness.js";
import { DATABASE_URL, REDIS_URL, createDatabase, deleteKeys, dropDatabase } from "../services.js";

export interface ToolArgs {
  name: string;
  entry: ContenderEntry;
  n: number;
  concurrency: number;
  /** `--<name>=<value>` from the command line, or `fallback`. */
  flag(name: string, fallback: string): string;
  has(arg: string): boolean;
}

/** `<contender> [--n=] [--concurrency=] …` of `tool`; prints the usage and exits when the contender is unknown. */
export function toolArgs(tool: string, defaultN: number, usage = ""): ToolArgs {
  const [name, ...rest] = process.argv.slice(2);
  const flag = (f: string, d: string) => rest.find((a) => a.startsWith(`--${f}=`))?.slice(f.length + 3) ?? d;
  const entry = name ? CONTENDERS[name] : undefined;
  if (!name || !entry) {
    console.error(`usage: tsx bench/tools/${tool} <${Object.keys(CONTENDERS).join("|")}> [--n=${defaultN}] [--concurrency=20]${usage}`);
    process.exit(1);
  }
  return { name, entry, n: Number(flag("n", String(defaultN))), concurrency: Number(flag("concurrency", "20")), flag, has: (a) => rest.includes(a) };
}

/**
 * Opens the contender on a fresh database / key prefix (`tag` names it),
 * enqueues `n` jobs in bulk, hands the namespace to `use`, and drops
 * everything afterwards, also when `use` throws.
 */
export async function withBacklog<T>(args: ToolArgs, tag: string, extra: Pick<Endpoints, "onStoreCall">, use: (ns: Namespace) => Promise<T>): Promise<T> {
  const runId = Math.random().toString(16).slice(2, 10);
  const prefix = `qb${runId}_${tag}`;
  const databaseUrl = args.entry.store === "postgres" ? await createDatabase(prefix) : DATABASE_URL;
  const adapter = await args.entry.load();
  const ns = await adapter.open(prefix, { redisUrl: REDIS_URL, databaseUrl, ...extra });
  try {
    for (let start = 0; start < args.n; start += 1000) {
      const batch: Payload[] = [];
      for (let i = start; i < Math.min(args.n, start + 1000); i++) batch.push(payload(i));
      await ns.enqueueMany(batch);
    }
    return await use(ns);
  } finally {
    await ns.close();
    await adapter.close?.();
    if (args.entry.store === "postgres") await dropDatabase(prefix);
    if (args.entry.store === "redis") await deleteKeys(`*${prefix}*`);
  }
}

/**
 * Starts a worker pool and waits for every job to run once; `started` runs
 * just before the pool starts, `finished` as soon as the last job ran
 * (before the pool stops). Throughput is from the first handler start to
 * the last.
 */
export async function processAll(
  ns: Namespace,
  args: ToolArgs,
  hooks: { started?(): unknown; finished?(): unknown } = {},
): Promise<{ perSecond: number; exactlyOnce: boolean }> {
  const tracker = new Tracker(args.n);
  await hooks.started?.();
  const worker = await ns.startWorker(args.concurrency, (p) => tracker.hit(p.i));
  await tracker.waitAll(300_000);
  await hooks.finished?.();
  await worker.stop();
  return { perSecond: Math.round(((args.n - 1) / (tracker.lastAt - tracker.firstAt)) * 1000), exactlyOnce: tracker.check().ok };
}
