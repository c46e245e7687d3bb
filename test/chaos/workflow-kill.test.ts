/**
 * Durable steps under SIGKILL, on the Node server: workflows of five steps
 * (run, run, sleep, event wait, run) run by 3 Node server processes
 * (fixtures/workflow-worker.ts: startNodeServer, the runtime `npm start`
 * runs) that the test SIGKILLs and restarts; on Redis, PostgreSQL and
 * SQLite (2 processes on one file). The test sends each workflow its event
 * (storage.sendEvent, one event name, matched on the workflow's id) once it
 * waits for it.
 *
 * Each run step's function records its completion in the run log (on the
 * store under test) as its last act, and says so on stdout. Three kinds of
 * kill, in turn:
 *
 * - held: a third of the workflows hold one step's function between its
 *   record and its return; the test kills the process as soon as it says
 *   the step is done. The work is done and its result not stored, as when
 *   a process dies between a step's return and its save: the step must run
 *   again (a repeat is certain).
 * - window: the test kills a process as soon as it says any other step is
 *   done (no hold): the kill lands around the engine's own save, before or
 *   after it.
 * - random: a random process at a random moment (inside a step, a claim, a
 *   sleep, an event wait, a save…).
 *
 * Invariants, per workflow: it succeeded, none is lost; for each run step,
 * its function completed at least once, its result was saved exactly once
 * (one `step "x" completed` in the job's history, by the worker whose
 * completion it stores), and every other completion ran under an earlier
 * lease than the saved one and was cut off by the test's kill of its
 * process after it completed (or by the store taking its lease away: that
 * process said LOST): a step repeats only when its process died between
 * its function's return and its save, and never once its result is
 * stored. The job's lease expiries cover its unsaved completions. The
 * workflow's result is its steps' stored results, and each step was given
 * the stored results of the steps before it (b gets a's, c gets b's and
 * the event); each event was delivered once, with the data sent; the last
 * step completed after the sleep's end.
 *
 * Short: 30 workflows due 300 ms apart (steps of 150 ms, a sleep of 1.2 s),
 * 3 workers per process, leases of 1.5 s, 10 kills (held, window, random in
 * turn) at least 400 ms apart until every workflow has succeeded, each
 * victim restarted at once; a killed process's jobs come back through the
 * Node server's housekeeping (every 5 s) once their leases end. Long
 * (QML_CHAOS_LONG=1): 200 workflows, 40 kills.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import { Job, JobState, type JobRecord } from "../../src/index.js";
import { HISTORY_LIMIT } from "../../src/core/job.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { listAll } from "./analysis.js";
import { figures, pick, scale, timeout, until } from "./helpers.js";
import { removeTempDirs, tempPath } from "./processes.js";
import { openRunLog, type Run, type RunLogSpec } from "./run-log.js";
import { betterSqlite3Path, openStore, sqliteSpec, type StoreSpec } from "./stores.js";
import type { StepResult, WorkflowArgs, WorkflowResult, WorkflowWorkerConfig } from "./fixtures/workflow-worker.js";

const WORKFLOWS = scale(30, 200);
const KILLS = scale(10, 40);
/** Workflow i is due i × STAGGER_MS after the first, so that steps run all through the kills. */
const STAGGER_MS = scale(300, 100);
const STEP_MS = 150;
const NAP_MS = 1200;
/** Far longer than the test takes to kill a process that said DONE. */
const HOLD_MS = 600;
const LEASE_MS = 1500;
const KILL_GAP_MS = scale(400, 800);
/** How long a held or window kill waits for its DONE line before it kills at random instead. */
const TRAP_MS = 5000;
const EVENT = "chaos-wf-go";
/** Times from different processes on this machine (the store-aligned clock against Date.now). */
const CLOCK_SLACK_MS = 500;
const RUN_STEPS = ["a", "b", "c"] as const;
type RunStep = (typeof RUN_STEPS)[number];
type KillKind = "held" | "window" | "random";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
const processOf = (worker: string) => worker.slice(0, worker.lastIndexOf("/"));

// ------------------------------------------------------------ processes

let bundled: Promise<string> | undefined;
function fixtureBundle(): Promise<string> {
  bundled ??= (async () => {
    const outfile = tempPath("workflow-worker.mjs");
    await build({
      entryPoints: [join(import.meta.dirname, "fixtures", "workflow-worker.ts")],
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

interface NodeProcess {
  readonly serverId: string;
  readonly child: ChildProcessWithoutNullStreams;
  ready: boolean;
  alive: boolean;
  /** Set just before the test's SIGKILL: any other exit is a crash. */
  killed: boolean;
  readonly exited: Promise<number>;
}

interface Done {
  job: string;
  step: string;
  worker: string;
  held: boolean;
}

interface Kill {
  kind: KillKind;
  serverId: string;
  /** Date.now() when the test sent SIGKILL. */
  at: number;
  /** The step whose DONE line triggered it (held and window kills). */
  done?: Done;
}

const live = new Set<NodeProcess>();

afterAll(async () => {
  await Promise.all(
    [...live].map((p) => {
      if (p.alive) p.child.kill("SIGKILL");
      return p.exited;
    }),
  );
  removeTempDirs();
});

async function workflowKillRun(label: string, spec: StoreSpec, runLogSpec: RunLogSpec, processes: number): Promise<void> {
  const storage = await openStore(spec);
  const runLog = await openRunLog(runLogSpec);
  const bundle = await fixtureBundle();
  const slots: NodeProcess[] = [];
  const kills: Kill[] = [];
  const crashes: string[] = [];
  /** `${serverId} ${jobId}`: the store refused that process's write for that job. */
  const lost = new Set<string>();
  /** Armed by a held or window kill: the next matching DONE line's process is killed in the line's handler. */
  let trap: { held: boolean; fire: (k: Kill) => void } | undefined;
  const trapped = new Set<string>();
  let shuttingDown = false;
  let generation = 0;
  const ready = () => slots.filter((p) => p.alive && p.ready);

  const killNow = (p: NodeProcess, kind: KillKind, done?: Done): Kill => {
    p.killed = true;
    p.child.kill("SIGKILL");
    return { kind, serverId: p.serverId, at: Date.now(), ...(done ? { done } : {}) };
  };

  const start = (slot: number): NodeProcess => {
    const config: WorkflowWorkerConfig = {
      store: spec,
      runLog: runLogSpec,
      serverId: `wfk-${slot}-${++generation}`,
      workers: 3,
      pollMs: 20,
      leaseMs: LEASE_MS,
      stepMs: STEP_MS,
      napMs: NAP_MS,
      holdMs: HOLD_MS,
      event: EVENT,
    };
    const child = spawn(process.execPath, [bundle], { env: { ...process.env, QML_CHAOS_CONFIG: JSON.stringify(config) }, stdio: ["pipe", "pipe", "pipe"] });
    let err = "";
    let partial = "";
    const p: NodeProcess = {
      serverId: config.serverId,
      child,
      ready: false,
      alive: true,
      killed: false,
      exited: new Promise<number>((resolve) =>
        child.once("exit", (code, signal) => {
          p.alive = false;
          if (!p.killed && !shuttingDown) crashes.push(`${p.serverId} exited (${code ?? signal}): ${err.slice(-2000)}`);
          resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : 0));
        }),
      ),
    };
    live.add(p);
    void p.exited.then(() => live.delete(p));
    child.stdin.on("error", () => {});
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => (err = (err + d).slice(-8000)));
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      partial += d;
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        const [what, ...rest] = line.split(" ");
        if (what === "READY") p.ready = true;
        else if (what === "LOST") lost.add(`${p.serverId} ${rest[0]}`);
        else if (what === "DONE") {
          const done: Done = { job: rest[0]!, step: rest[1]!, worker: rest[2]!, held: rest[3] === "held" };
          const key = `${done.job} ${done.step}`;
          // Never the last process up: jobs must keep flowing while the victim restarts.
          if (trap && trap.held === done.held && p.alive && p.ready && !p.killed && ready().length >= 2 && !trapped.has(key)) {
            trapped.add(key);
            const t = trap;
            trap = undefined;
            t.fire(killNow(p, done.held ? "held" : "window", done));
          }
        }
      }
    });
    return p;
  };

  const ids: string[] = [];
  const eventN = new Map<string, number>();
  const deliveries = new Map<string, number>();
  const sendErrors: string[] = [];
  let sending = true;
  let sender: Promise<void> = Promise.resolve();
  try {
    const holds: Array<WorkflowArgs["hold"]> = ["a", "b", "c"];
    const jobs = Array.from({ length: WORKFLOWS }, (_, i) => {
      const args: WorkflowArgs = i % 3 === 0 ? { hold: holds[(i / 3) % 3]! } : {};
      return new Job("workflow", [args], { maxAttempts: 50, ...(i > 0 ? { delay: i * STAGGER_MS } : {}) });
    });
    ids.push(...(await storage.enqueue(jobs)));
    ids.forEach((id, i) => eventN.set(id, i + 1));

    // Each workflow's event, once it waits for it (a send before the wait began would not reach it).
    sender = (async () => {
      while (sending) {
        try {
          for (const r of await listAll(storage, { state: JobState.Scheduled })) {
            if (!r.steps?.some((s) => s.id === "go" && s.status === "waiting")) continue;
            const { delivered } = await storage.sendEvent(EVENT, { workflow: r.id, n: eventN.get(r.id) });
            for (const id of delivered) deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
          }
        } catch (e) {
          sendErrors.push(String(e));
        }
        await sleep(150);
      }
    })();

    for (let slot = 0; slot < processes; slot++) slots.push(start(slot));
    const succeeded = async () => (await storage.stats({ minutes: 1, hours: 1 })).states.succeeded;
    const plan: KillKind[] = Array.from({ length: KILLS }, (_, i) => (["held", "window", "random"] as const)[i % 3]!);
    for (const kind of plan) {
      await sleep(KILL_GAP_MS);
      if ((await succeeded()) >= WORKFLOWS) break;
      if (!(await until(() => (ready().length >= Math.min(2, processes) ? true : undefined), 30_000))) break;
      let kill: Kill | undefined;
      if (kind !== "random") {
        kill = await new Promise<Kill | undefined>((resolve) => {
          const timer = setTimeout(() => {
            trap = undefined;
            resolve(undefined);
          }, TRAP_MS);
          trap = {
            held: kind === "held",
            fire: (k) => {
              clearTimeout(timer);
              resolve(k);
            },
          };
        });
      }
      if (!kill) {
        if ((await succeeded()) >= WORKFLOWS) break;
        const up = ready();
        if (up.length < Math.min(2, processes)) continue;
        kill = killNow(pick(up), "random");
      }
      kills.push(kill);
      const victim = kill.serverId;
      const slot = slots.findIndex((p) => p.serverId === victim);
      await slots[slot]!.exited;
      slots[slot] = start(slot);
    }
    const allDone = await until(async () => ((await succeeded()) >= WORKFLOWS ? true : undefined), scale(120_000, 900_000), 200);
    sending = false;
    await sender;

    const records = new Map((await listAll(storage)).map((r) => [r.id, r]));
    const a = analyse(ids, records, await runLog.all(), kills, lost, eventN, deliveries);
    const count = (k: KillKind) => kills.filter((x) => x.kind === k).length;
    figures(
      `workflow-kill/${label}`,
      {
        workflows: WORKFLOWS,
        processes,
        kills: kills.length,
        held_kills: count("held"),
        window_kills: count("window"),
        random_kills: count("random"),
        window_kills_after_save: a.windowKillsAfterSave,
        events_delivered: [...deliveries.values()].reduce((x, y) => x + y, 0),
        step_completions: a.completions,
        steps_repeated: a.stepsRepeated,
        repeats_after_kill: a.repeatsAfterKill,
        repeats_after_lost_lease: a.repeatsAfterLost,
        longest_unsaved_ms: a.longestUnsavedMs,
        lease_expiries: a.leaseExpiries,
        unexplained: a.problems.length,
        not_done: a.notDone.length,
      },
      a.problems.length === 0 ? "each step saved once; each repeat from a process killed between its work and its save" : "UNEXPLAINED",
    );
    expect(crashes, "no server process exited but by the test's SIGKILL").toEqual([]);
    expect(allDone, "every workflow should have succeeded").toBe(true);
    expect(a.notDone).toEqual([]);
    expect(a.problems).toEqual([]);
    expect(sendErrors).toEqual([]);
    expect(kills.length, "the run should have killed servers").toBeGreaterThanOrEqual(Math.min(5, KILLS));
    // A held kill cut a step off after its work, before its save: that step ran again.
    expect(count("held"), "at least one kill between a step's work and its save").toBeGreaterThanOrEqual(1);
    expect(a.repeatsAfterKill).toBeGreaterThanOrEqual(count("held"));
  } finally {
    sending = false;
    await sender;
    shuttingDown = true;
    await Promise.all(
      slots.map((p) => {
        if (p.alive) p.child.kill("SIGKILL");
        return p.exited;
      }),
    );
    await runLog.close();
    await storage.close();
  }
}

interface WorkflowAnalysis {
  notDone: string[];
  problems: string[];
  completions: number;
  /** (workflow, step) pairs whose function completed more than once. */
  stepsRepeated: number;
  /** Completions not saved, from a process the test killed after they were recorded. */
  repeatsAfterKill: number;
  /** … from a process that was alive but whose lease the store had taken (it said LOST). */
  repeatsAfterLost: number;
  leaseExpiries: number;
  /** Window kills (no hold) that came after the engine had saved the step: no repeat. */
  windowKillsAfterSave: number;
  /** The longest a killed process had held a completed step's result unsaved, ms (held steps: about HOLD_MS). */
  longestUnsavedMs: number;
}

function analyse(
  ids: string[],
  records: Map<string, JobRecord>,
  runs: Run[],
  kills: Kill[],
  lost: Set<string>,
  eventN: Map<string, number>,
  deliveries: Map<string, number>,
): WorkflowAnalysis {
  const out: WorkflowAnalysis = {
    notDone: [],
    problems: [],
    completions: 0,
    stepsRepeated: 0,
    repeatsAfterKill: 0,
    repeatsAfterLost: 0,
    leaseExpiries: 0,
    windowKillsAfterSave: 0,
    longestUnsavedMs: 0,
  };
  const killedAt = new Map(kills.map((k) => [k.serverId, k.at]));
  const completions = new Map<string, Run[]>();
  for (const run of runs) {
    const key = `${run.id} ${run.note}`;
    completions.set(key, [...(completions.get(key) ?? []), run]);
  }
  const bad = (id: string, what: string) => out.problems.push(`${id}: ${what}`);
  for (const id of ids) {
    const r = records.get(id);
    if (r?.state !== JobState.Succeeded) {
      out.notDone.push(`${id}: ${r?.state ?? "lost"}`);
      continue;
    }
    const stored = new Map((r.steps ?? []).map((s) => [s.id, s]));
    const result = r.result as WorkflowResult;
    const expiries = r.history.filter((h) => h.reason?.startsWith("lease expired")).length;
    out.leaseExpiries += expiries;
    let unsaved = 0;
    const results: Partial<Record<RunStep, StepResult>> = {};
    for (const step of RUN_STEPS) {
      const done = completions.get(`${id} step:${step}`) ?? [];
      out.completions += done.length;
      if (done.length > 1) out.stepsRepeated++;
      const s = stored.get(step);
      if (s?.status !== "completed") {
        bad(id, `step ${step} is ${s?.status ?? "missing"} in a succeeded workflow`);
        continue;
      }
      const saved = s.result as StepResult;
      results[step] = saved;
      const saves = r.history.filter((h) => h.reason === `step "${step}" completed`);
      if (r.history.length < HISTORY_LIMIT && (saves.length !== 1 || saves[0]!.worker !== saved.worker))
        bad(id, `step ${step} saved ${saves.length} times (by ${saves.map((h) => h.worker).join(", ")}), stores ${saved.worker}'s result`);
      const mine = done.filter((d) => d.token === saved.token && d.server === saved.worker);
      if (mine.length !== 1) bad(id, `step ${step}: ${mine.length} completions match its stored result (lease ${saved.token}, ${saved.worker})`);
      if (!same(result[step], saved)) bad(id, `the result's ${step} ${JSON.stringify(result[step])} is not the stored ${JSON.stringify(saved)}`);
      for (const d of done) {
        if (d.token === saved.token && d.server === saved.worker) continue;
        unsaved++;
        if (d.token >= saved.token)
          bad(id, `step ${step} completed under lease ${d.token} (${d.server}), after its result was stored under lease ${saved.token}`);
        const killed = killedAt.get(processOf(d.server));
        // Its run went no further: the job's history has nothing from that worker after the completion (no save, no outcome).
        const after = r.history.filter((h) => h.worker === d.server && h.at > d.at + CLOCK_SLACK_MS);
        if (killed !== undefined && d.at <= killed + CLOCK_SLACK_MS && after.length === 0) {
          out.repeatsAfterKill++;
          out.longestUnsavedMs = Math.max(out.longestUnsavedMs, killed - d.at);
        } else if (lost.has(`${processOf(d.server)} ${id}`)) out.repeatsAfterLost++;
        else
          bad(
            id,
            `step ${step} completed unsaved by ${d.server} (lease ${d.token}), which was not killed right after it (${after.map((h) => `${h.state} "${h.reason ?? ""}"`).join(", ") || "not killed"}) nor lost its lease`,
          );
      }
    }
    if (unsaved > expiries) bad(id, `${unsaved} unsaved step completions but ${expiries} lease expiries`);
    const go = stored.get("go");
    const sent = { workflow: id, n: eventN.get(id) };
    if (go?.status !== "completed" || !same((go.result as { data?: unknown } | null)?.data, sent)) bad(id, `the event step is ${JSON.stringify(go)}`);
    if (!same(result.go, sent)) bad(id, `the result's event ${JSON.stringify(result.go)}, sent ${JSON.stringify(sent)}`);
    if (deliveries.get(id) !== 1) bad(id, `its event was delivered ${deliveries.get(id) ?? 0} times`);
    if (results.a && results.b && !same(results.b.input, results.a))
      bad(id, `step b was given ${JSON.stringify(results.b.input)}, a stored ${JSON.stringify(results.a)}`);
    if (results.b && results.c && !same(results.c.input, { b: results.b, go: sent }))
      bad(id, `step c was given ${JSON.stringify(results.c.input)}, not b's stored result and the event`);
    const nap = stored.get("nap");
    const cDone = (completions.get(`${id} step:c`) ?? []).find((d) => d.token === results.c?.token && d.server === results.c?.worker);
    if (nap?.status !== "completed" || nap.until === undefined) bad(id, `the sleep step is ${JSON.stringify(nap)}`);
    else if (cDone && cDone.at < nap.until - CLOCK_SLACK_MS) bad(id, `step c completed at ${cDone.at}, before the sleep's end ${nap.until}`);
  }
  for (const k of kills) {
    if (!k.done) continue;
    const r = records.get(k.done.job);
    const saver = r?.history.find((h) => h.reason === `step "${k.done!.step}" completed`)?.worker;
    if (k.kind === "held" && saver === k.done.worker) bad(k.done.job, `held step ${k.done.step} was saved by ${saver}, killed before its function returned`);
    if (k.kind === "window" && saver === k.done.worker) out.windowKillsAfterSave++;
  }
  return out;
}

// ------------------------------------------------------------ stores

const keys = prefixes("chaos-wfk");
describeWithService("redis", await serviceUp("redis"), "chaos: workflows on Node servers over redis, servers killed", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it(
    "every workflow finishes; each step saved once; a step repeats only when killed between its work and its save",
    async () => {
      const prefix = keys.next();
      await workflowKillRun("redis", { kind: "redis", url: REDIS_URL, prefix }, { kind: "redis", url: REDIS_URL, key: `${prefix}chaos-runs` }, 3);
    },
    timeout(150_000, 1_200_000),
  );
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: workflows on Node servers over postgres, servers killed", () => {
  afterAll(() => janitor.dropAll());
  it(
    "every workflow finishes; each step saved once; a step repeats only when killed between its work and its save",
    async () => {
      const schema = janitor.next("qml_chaos_wfk");
      await workflowKillRun(
        "postgres",
        { kind: "postgres", driver: "pg", url: DATABASE_URL, schema, maxConnections: 3 },
        { kind: "postgres", url: DATABASE_URL, schema },
        3,
      );
    },
    timeout(150_000, 1_200_000),
  );
});

describe("chaos: workflows on Node servers over sqlite (two processes on one file), servers killed", () => {
  it(
    "every workflow finishes; each step saved once; a step repeats only when killed between its work and its save",
    async () => {
      const runs: RunLogSpec = { kind: "sqlite", path: tempPath("wfk-runs.db"), module: betterSqlite3Path() };
      await workflowKillRun("sqlite", sqliteSpec(tempPath("wfk-jobs.db")), runs, 2);
    },
    timeout(150_000, 1_200_000),
  );
});
