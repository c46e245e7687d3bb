/**
 * `qml` end to end: the built binary against real stores (a SQLite file in a
 * temporary folder, Redis under a random key prefix, PostgreSQL in a random
 * schema), read back through the test's own Storage on the same store.
 * One set of cases, run unchanged on each backend.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Job, JobState } from "../../src/index.js";
import { DATABASE_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { testStore, type Backend, type TestStore } from "../node/helpers/stores.js";
import { baseEnv, eventually, killLeftovers, listeningUrl, spawnServer } from "../node/helpers/process.js";
import { buildCli, runCli, runJson, type Built } from "./helpers.js";

let built: Built;
beforeAll(async () => {
  built = await buildCli();
}, 120_000);
afterAll(() => {
  killLeftovers();
  built?.cleanup();
});

const tag = () => crypto.randomUUID().slice(0, 8);

function cases(backend: Backend): void {
  let store: TestStore;
  beforeAll(async () => {
    store = await testStore(backend);
  });
  afterAll(async () => {
    await store?.cleanup();
  });
  const qml = (...args: string[]) => runCli(built, args, store.env);
  const json = <T = any>(...args: string[]) => runJson<T>(built, args, store.env);

  it("migrate: creates or upgrades the schema, again without harm", async () => {
    const r = await qml("migrate");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(new RegExp(`^migrated ${backend}`));
  });

  it("enqueue, then get and list --json read it back with every option", async () => {
    const queue = `q-${tag()}`;
    const r = await qml(
      "enqueue",
      "send_email",
      '["a@b.c", 2, {"x": null}]',
      "--queue",
      queue,
      "--priority",
      "7",
      "--delay",
      "3600000",
      "--unique-key",
      `u-${queue}`,
      "--max-attempts",
      "5",
      "--timeout",
      "9000",
      "--metadata",
      '{"tenant":"acme"}',
    );
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    const job = await json("get", id);
    expect(job).toMatchObject({
      id,
      name: "send_email",
      arguments: ["a@b.c", 2, { x: null }],
      queue,
      priority: 7,
      maxAttempts: 5,
      uniqueKey: `u-${queue}`,
      timeout: 9000,
      metadata: { tenant: "acme" },
      state: "scheduled",
    });
    expect(Date.parse(job.runAt) - Date.parse(job.createdAt)).toBe(3_600_000);
    expect(job.history.map((h: { state: string }) => h.state)).toEqual(["scheduled"]);
    // The same unique key: the first job's id.
    expect(await json("enqueue", "send_email", "--queue", queue, "--unique-key", `u-${queue}`)).toEqual({ id });
    const page = await json("list", "--queue", queue, "--state", "scheduled,enqueued");
    expect(page.items.map((j: { id: string }) => j.id)).toEqual([id]);
    expect(page.items[0].history).toBeUndefined();
    expect((await store.storage.get(id))?.state).toBe("scheduled");
    // Human output: a table with the job, and the detail view.
    expect((await qml("list", "--queue", queue)).stdout).toMatch(new RegExp(`^ID .*\\n${id}\\s+scheduled\\s+${queue}\\s+send_email\\s+0/5`));
    expect((await qml("get", id)).stdout).toContain(`metadata    {"tenant":"acme"}`);
    // --run-at, and pages through --cursor.
    const at = "2031-01-02T03:04:05.000Z";
    const second = (await qml("enqueue", "report", "--queue", queue, "--run-at", at)).stdout.trim();
    expect((await json("get", second)).runAt).toBe(at);
    const first = await json("list", "--queue", queue, "--limit", "1", "--sort", "createdAt", "--order", "asc");
    expect(first.items.map((j: { id: string }) => j.id)).toEqual([id]);
    const next = await json("list", "--queue", queue, "--limit", "1", "--sort", "createdAt", "--order", "asc", "--cursor", first.nextCursor);
    expect(next.items.map((j: { id: string }) => j.id)).toEqual([second]);
  });

  it("cancel, requeue (and its alias retry), delete by id; unknown ids exit 3, a refused one 1", async () => {
    const queue = `q-${tag()}`;
    const [a, b] = await store.storage.enqueue([new Job("work", [1], { queue }), new Job("work", [2], { queue })]);
    expect(await qml("cancel", a!, b!)).toMatchObject({ code: 0, stdout: "cancelled 2 of 2 jobs\n" });
    expect((await store.storage.get(a!))?.history.at(-1)).toMatchObject({ state: "deleted", reason: "cancelled by cli" });
    expect(await json("requeue", a!)).toEqual({ action: "requeue", matched: 1, applied: 1, skipped: [] });
    expect((await store.storage.get(a!))?.state).toBe(JobState.Enqueued);
    expect((await qml("retry", b!)).code).toBe(0);
    expect((await store.storage.get(b!))?.state).toBe(JobState.Enqueued);
    expect((await qml("delete", a!)).code).toBe(0);
    expect((await store.storage.get(a!))?.state).toBe(JobState.Deleted);
    // Already deleted: refused, a failure.
    const again = await qml("delete", a!, "--json");
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ matched: 1, applied: 0, skipped: [{ id: a, reason: "is deleted" }] });
    // An id that does not exist: 3, and the others are still done.
    const missing = crypto.randomUUID();
    const r = await qml("cancel", b!, missing);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${missing}: not found`);
    expect((await store.storage.get(b!))?.state).toBe(JobState.Deleted);
    expect((await qml("requeue", missing)).code).toBe(3);
  });

  it("by filter: every matching job, in pages of 500, states defaulting to those the action applies to", async () => {
    const queue = `bulk-${tag()}`;
    const n = 1_203;
    const jobs = Array.from({ length: n }, (_, i) => new Job(i % 3 === 0 ? "odd" : "even", [i], { queue }));
    await store.storage.enqueue(jobs);
    // A name narrows it.
    const byName = await json("cancel", "--queue", queue, "--name", "odd");
    expect(byName).toMatchObject({ action: "cancel", matched: 401, applied: 401, skipped: [] });
    // Without --state, cancel takes the unfinished: the 802 left.
    expect(await json("cancel", "--queue", queue)).toMatchObject({ matched: 802, applied: 802 });
    expect((await store.storage.stats()).queues.find((q) => q.name === queue)?.counts.deleted).toBe(n);
    expect(await json("requeue", "--queue", queue, "--state", "deleted")).toMatchObject({ matched: n, applied: n });
    expect((await store.storage.stats()).queues.find((q) => q.name === queue)?.counts.enqueued).toBe(n);
    const del = await qml("delete", "--queue", queue);
    expect(del).toMatchObject({ code: 0, stdout: `deleted ${n} of ${n} jobs\n` });
    // Not a terminal: no progress bar on stderr.
    expect(del.stderr).toBe("");
    const page = await store.storage.list({ queue, state: JobState.Deleted }, { limit: 500 });
    expect(page.items).toHaveLength(500);
    expect(await json("delete", "--queue", queue)).toMatchObject({ matched: 0, applied: 0 });
    // A state requeue cannot take jobs from: the core's refusal, before anything is listed.
    const refused = await qml("requeue", "--queue", queue, "--state", "processing");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^qml: requeue applies to failed, .*; got "processing"\n$/);
  });

  it("stats --json is the store's stats; the text form has the counts", async () => {
    const queue = `s-${tag()}`;
    await store.storage.enqueue([new Job("a", [], { queue }), new Job("a", [], { queue })]);
    const stats = await json("stats");
    const mine = await store.storage.stats();
    expect(stats.states).toEqual(mine.states);
    expect(stats.total).toBe(mine.total);
    expect(stats.queues.find((q: { name: string }) => q.name === queue)?.counts.enqueued).toBe(2);
    const text = (await qml("stats")).stdout;
    expect(text).toMatch(/^STATE\s+JOBS\n/);
    expect(text).toMatch(new RegExp(`\\n${queue}\\s+0\\s+2\\s`));
  });

  it("send-event: wakes the jobs whose steps wait for it, and refuses bad input with exit 2", async () => {
    // A job as a server leaves it in a waitForEvent step: the step saved, noted in the index, suspended.
    const s = store.storage;
    const queue = `e-${tag()}`;
    const event = `order.approved.${tag()}`;
    const id = await s.enqueue(new Job("send_email", [], { queue }));
    const now = Date.now();
    const [r] = await s.driver.claim({ queues: [queue], limit: 1, owner: "cli-test", leaseMs: 30_000, now });
    const step = { id: "approval", kind: "wait" as const, status: "waiting" as const, startedAt: now, until: now + 60_000, event, match: { order: 7 } };
    expect(await s.driver.saveSteps({ id, token: r!.leaseToken }, [step], { state: JobState.Processing, at: now, reason: "waits" }, now)).toBe(true);
    await s.driver.addWaiter(event, id, now + 120_000, now);
    await s.driver.complete([{ id, token: r!.leaseToken, state: JobState.Scheduled, runAt: now + 60_000, reason: "waiting", worker: "cli-test/1" }], now);
    expect(await json("send-event", event, '{"order": 8}')).toEqual({ name: event, delivered: [] });
    const sent = await qml("send-event", event, '{"order": 7, "by": "ann"}');
    expect(sent).toMatchObject({ code: 0, stdout: `${id}\n`, stderr: "delivered to 1 job\n" });
    expect((await s.get(id))!.state).toBe(JobState.Enqueued);
    expect((await qml("send-event", event, "{not json")).code).toBe(2);
    expect((await qml("send-event", "x".repeat(201))).code).toBe(2);
  });

  it("pause, paused, resume", async () => {
    const queue = `p-${tag()}`;
    expect(await qml("pause", queue)).toMatchObject({ code: 0, stdout: `paused ${queue}\n` });
    expect(await json("paused")).toContain(queue);
    expect(await store.storage.pausedQueues()).toContain(queue);
    expect((await qml("paused")).stdout).toContain(queue);
    expect((await qml("resume", queue)).code).toBe(0);
    expect(await json("paused")).not.toContain(queue);
    expect((await qml("pause", "not a queue!")).code).toBe(2);
  });

  it("recurring add, list, remove", async () => {
    const id = `nightly-${tag()}`;
    const added = await json("recurring", "add", id, "0 3 * * *", "report", '["nightly"]', "--queue", "reports", "--timezone", "Europe/Paris");
    expect(added).toMatchObject({ id, cron: "0 3 * * *", timezone: "Europe/Paris", name: "report", args: ["nightly"], options: { queue: "reports" } });
    expect((await json("recurring", "list")).find((d: { id: string }) => d.id === id)).toMatchObject({ name: "report" });
    expect((await store.storage.listRecurring()).map((d) => d.id)).toContain(id);
    expect((await qml("recurring", "list")).stdout).toMatch(new RegExp(`\\n${id}\\s+0 3 \\* \\* \\*\\s+Europe/Paris\\s+report\\s+reports`));
    expect(await qml("recurring", "remove", id)).toMatchObject({ code: 0, stdout: `removed ${id}\n` });
    expect((await store.storage.listRecurring()).map((d) => d.id)).not.toContain(id);
    expect((await qml("recurring", "remove", id)).code).toBe(3);
    const bad = await qml("recurring", "add", id, "not cron", "report");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("invalid cron expression");
  });

  it("exit 2 for bad flags and input the core refuses, before the store is reached; 3 for an unknown id", async () => {
    const queue = `v-${tag()}`;
    const flag = await qml("enqueue", "work", "--queue", queue, "--no-such-flag");
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("unknown option '--no-such-flag'");
    const name = await qml("enqueue", "not a name!", "--queue", queue);
    expect(name.code).toBe(2);
    expect(name.stderr).toBe(`qml: name must be 1-128 characters of letters, digits, "_", "-", "." or "/"; got "not a name!"\n`);
    expect((await qml("enqueue", "work", "{not json", "--queue", queue)).code).toBe(2);
    expect((await qml("enqueue", "work", '{"a":1}', "--queue", queue)).code).toBe(2);
    expect((await qml("enqueue", "work", "--queue", queue, "--priority", "1.5")).code).toBe(2);
    expect((await qml("enqueue", "work", "--queue", queue, "--delay", "10", "--run-at", "2030-01-01")).code).toBe(2);
    expect((await qml("list", "--state", "nope")).stderr).toBe('qml: unknown state "nope"\n');
    expect((await qml("delete")).code).toBe(2);
    expect((await qml("delete", crypto.randomUUID(), "--queue", queue)).code).toBe(2);
    expect((await store.storage.list({ queue })).items).toEqual([]);
    const get = await qml("get", crypto.randomUUID());
    expect(get.code).toBe(3);
    expect(get.stderr).toMatch(/^qml: job ".*" not found\n$/);
  });
}

describe("sqlite", () => {
  cases("sqlite");

  it("a new file: commands say to migrate (exit 1) until `qml migrate`", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qmlt-cli-sqlite-"));
    try {
      const env = { QML_SQLITE_PATH: join(dir, "sub", "qml.db") };
      const before = await runCli(built, ["list"], env);
      expect(before.code).toBe(1);
      expect(before.stderr).toContain("run `qml migrate`");
      expect(await runCli(built, ["migrate"], env)).toMatchObject({ code: 0, stdout: `migrated sqlite ${env.QML_SQLITE_PATH}\n` });
      expect(await runJson(built, ["list"], env)).toEqual({ items: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("serve: the Node server (migrates, runs its workers); a job `qml enqueue` adds succeeds; SIGTERM drains, exit 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qmlt-cli-serve-"));
    const env = { QML_SQLITE_PATH: join(dir, "qml.db") };
    try {
      // The demo workers (QML_DEMO=seed, the default on SQLite) include send_email.
      const server = spawnServer([process.execPath, built.main, "serve"], { env: baseEnv({ ...env, PORT: "0", QML_POLL_MS: "50" }) });
      const url = await listeningUrl(server);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      await server.waitForLog((l) => l.msg === "enqueued demo jobs", "the demo seed (the server has migrated)");
      const id = (await runCli(built, ["enqueue", "send_email", '["cli@example.com"]'], env)).stdout.trim();
      const job = await eventually(async () => {
        const j = await runJson(built, ["get", id], env);
        return j.state === "succeeded" ? j : undefined;
      }, "the job to succeed");
      expect(job.result).toEqual({ delivered: true });
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithService("redis", await serviceUp("redis"), "redis", () => cases("redis"));

describeWithService("postgres", await serviceUp("postgres"), "postgres", () => {
  cases("postgres");

  it("a new schema: migrate creates it", async () => {
    const schema = `qmlt_cli_${tag()}`;
    const env = { QML_STORAGE: "postgres", DATABASE_URL, QML_POSTGRES_SCHEMA: schema };
    try {
      expect((await runCli(built, ["list"], env)).code).toBe(1);
      expect(await runCli(built, ["migrate"], env)).toMatchObject({ code: 0, stdout: `migrated postgres (schema ${schema})\n` });
      expect(await runJson(built, ["list"], env)).toEqual({ items: [] });
    } finally {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => client.end());
    }
  });
});

describe("the program", () => {
  const env = { QML_STORAGE: "memory" };

  it("--help lists the commands, the store's variables and the exit codes", async () => {
    const r = await runCli(built, ["--help"], env);
    expect(r.code).toBe(0);
    for (const c of ["enqueue", "list", "get", "requeue|retry", "delete", "cancel", "pause", "resume", "paused", "recurring", "stats", "migrate", "serve"])
      expect(r.stdout).toMatch(new RegExp(`\\n  ${c.replace("|", "\\|")} `));
    expect(r.stdout).toContain("QML_STORAGE");
    expect(r.stdout).toMatch(/Exit codes:\n {2}0 .*\n {2}1 .*\n {2}2 .*\n {2}3 /);
    const sub = await runCli(built, ["enqueue", "--help"], env);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain("--unique-key <key>");
    expect((await runCli(built, ["recurring", "--help"], env)).stdout).toMatch(/add \[options\] <id> <cron> <name>/);
  });

  it("no command or an unknown one: usage, exit 2; a bad environment variable: exit 2", async () => {
    expect((await runCli(built, [], env)).code).toBe(2);
    const unknown = await runCli(built, ["frobnicate"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    const badEnv = await runCli(built, ["list"], { QML_STORAGE: "mongo" });
    expect(badEnv).toMatchObject({ code: 2, stderr: 'qml: QML_STORAGE="mongo" is invalid: expected one of sqlite, memory, redis, postgres\n' });
  });

  it("an unreachable store: exit 1 with the driver's reason", async () => {
    const r = await runCli(built, ["list"], { QML_STORAGE: "postgres", DATABASE_URL: "postgres://postgres@127.0.0.1:9/test" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^qml: .*ECONNREFUSED/);
  });

  it("is the package's bin `qml`, next to `qml-server` (which stays first), with a shebang", async () => {
    const pkg = (await import("../../package.json", { with: { type: "json" } })).default as { bin: Record<string, string> };
    expect(Object.entries(pkg.bin)).toEqual([
      ["qml-server", "dist/adapters/runtime/node/main.js"],
      ["qml", "dist/cli/main.js"],
    ]);
    expect(built.main.endsWith(pkg.bin.qml!)).toBe(true);
    expect(readFileSync(built.main, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it("-V prints the package's version", async () => {
    const { version } = (await import("../../package.json", { with: { type: "json" } })).default;
    expect((await runCli(built, ["-V"], env)).stdout).toBe(`${version}\n`);
  });
});
