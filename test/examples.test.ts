/** The README's runnable examples run. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { describeWithService, serviceUp } from "./helpers/services.js";

const run = promisify(execFile);
const tsx = (file: string) => run(process.execPath, ["--import", "tsx", file], { timeout: 60_000, env: { ...process.env, QML_LOG_LEVEL: "warn" } });

it("examples/basic_job.ts runs the quick start", async () => {
  const { stdout } = await tsx("examples/basic_job.ts");
  expect(stdout).toMatch(/job [0-9a-f-]{36} is succeeded after 1 attempt\(s\)/);
  expect(stdout).toContain("Sending email to: user@example.com");
});

it("examples/processing_demo.ts processes every job", async () => {
  const { stdout } = await tsx("examples/processing_demo.ts");
  expect(stdout).toMatch(/failed: slow_export \(TIMEOUT/);
  expect(stdout).toMatch(/40 retried/);
  expect(stdout).toMatch(/by queue: \{ critical: 40, default: 15\d/);
});

describeWithService("redis and postgres", (await serviceUp("redis")) && (await serviceUp("postgres")), "examples on the real stores", () => {
  it("examples/storage_demo.ts runs the same operations on memory, Redis and PostgreSQL", async () => {
    const { stdout } = await tsx("examples/storage_demo.ts");
    for (const label of ["=== memory ===", "=== redis (ioredis) ===", "=== postgres (pg) ==="]) expect(stdout).toContain(label);
    expect(stdout.match(/send_email is succeeded/g)).toHaveLength(3);
  });

  it("examples/postgres_simple.ts runs", async () => {
    const { stdout } = await tsx("examples/postgres_simple.ts");
    expect(stdout).toMatch(/succeeded: 2/);
  });
});
