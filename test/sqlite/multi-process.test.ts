/**
 * Several processes on one SQLite file: supported (WAL, a busy timeout,
 * every write batch one BEGIN IMMEDIATE transaction). Two processes claim
 * from the same file at once, completing as they go: each job is claimed
 * exactly once, and both get work.
 */
import { spawn } from "node:child_process";
import { afterAll, expect, it } from "vitest";
import { Job, Storage } from "../../src/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { TempFiles } from "./helpers.js";

const files = new TempFiles();
const children: Array<ReturnType<typeof spawn>> = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  files.removeAll();
});

const JOBS = 3000;

function claimer(path: string, owner: string) {
  const child = spawn(process.execPath, ["--import", "tsx", "test/sqlite/fixtures/claimer.ts", path, owner, "7"], { stdio: ["pipe", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on("data", () => out.includes("READY") && resolve());
    child.once("exit", (code) => reject(new Error(`${owner} exited (${code}) before READY: ${err}`)));
  });
  const done = new Promise<string[]>((resolve, reject) =>
    child.once("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) return reject(new Error(`${owner} exited (${code}): ${err}`));
      resolve((JSON.parse(line) as { claimed: string[] }).claimed);
    }),
  );
  return { child, ready, done };
}

it("two processes claiming from one file: every job claimed exactly once, both get work", async () => {
  const path = files.next();
  const storage = new Storage(sqliteBackend(new SqliteConfig(path).withAutoMigrate(true)));
  const ids = await storage.enqueue(Array.from({ length: JOBS }, (_, i) => new Job("shared", [i])));
  const a = claimer(path, "a");
  const b = claimer(path, "b");
  await Promise.all([a.ready, b.ready]);
  a.child.stdin!.write("GO\n");
  b.child.stdin!.write("GO\n");
  const [byA, byB] = await Promise.all([a.done, b.done]);
  const counts = new Map<string, number>();
  for (const id of [...byA, ...byB]) counts.set(id, (counts.get(id) ?? 0) + 1);
  expect(counts.size).toBe(JOBS);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  expect(new Set(counts.keys())).toEqual(new Set(ids));
  expect(byA.length).toBeGreaterThan(0);
  expect(byB.length).toBeGreaterThan(0);
  const st = await storage.stats();
  expect(st.states.processing + st.states.succeeded).toBe(JOBS);
  await storage.close();
}, 60_000);
