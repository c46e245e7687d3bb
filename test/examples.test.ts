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
  // Per queue, what succeeded and what failed: the timed-out export shows under "low".
  expect(stdout).toMatch(/critical: \{ succeeded: 40, failed: 0 \}/);
  expect(stdout).toMatch(/default: \{ succeeded: 15\d, failed: 0 \}/);
  expect(stdout).toMatch(/low: \{ succeeded: 0, failed: 1 \}/);
});

it("examples/flows.ts runs a flow and two continuations", async () => {
  const { stdout } = await tsx("examples/flows.ts");
  expect(stdout).toContain("album awaiting, notify awaiting");
  expect(stdout).toContain('album succeeded: {"photos":3,"bytes":6000}');
  expect(stdout).toContain('notify succeeded: "told ada@example.com"');
  expect(stdout).toContain("charge failed, refund_hold succeeded");
});

it("examples/workflow.ts runs each step once across a failed try, a sleep and an event", async () => {
  const { stdout } = await tsx("examples/workflow.ts");
  expect(stdout).toContain('suspended: step "charge-card" failed (try 1 of 3); retry in 1000 ms');
  expect(stdout).toContain("event delivered to 1 job(s)");
  expect(stdout).toContain(
    'order succeeded: {"reservation":{"warehouse":"FRA-1","sku":"mug"},"charge":{"chargeId":"ch_1042"},"shipment":{"tracking":"TRK-1042","approvedBy":"grace"}}',
  );
  expect(stdout).toContain("step functions ran: reserve-stock, charge-card, charge-card, ship");
});

it("examples/sqlite_demo.ts keeps its jobs in a file across a restart", async () => {
  const { stdout } = await tsx("examples/sqlite_demo.ts");
  expect(stdout).toContain("first process: 3 jobs succeeded");
  expect(stdout).toMatch(/after a restart: 4 jobs in .*: succeeded 3, scheduled 1/);
});

it("examples/tracing.ts runs a job in the trace that enqueued it", async () => {
  const { stdout } = await tsx("examples/tracing.ts");
  const [, traceId] = /carries traceparent 00-([0-9a-f]{32})-[0-9a-f]{16}-01/.exec(stdout)!;
  const short = traceId!.slice(0, 8);
  expect(stdout).toContain(
    `POST /orders [trace ${short}]\n  enqueue send_receipt [trace ${short}]\n    process send_receipt [trace ${short}] (linked to 1)\n      render receipt [trace ${short}]`,
  );
  expect(stdout).toMatch(/^claim \[trace [0-9a-f]{8}\] \(linked to 1\)$/m);
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

it("examples/encryption.ts seals a card, rotates keys and fails a job whose key was dropped", async () => {
  const { stdout } = await tsx("examples/encryption.ts");
  expect(stdout).toMatch(/^stored: customer 42, card sealed with k1 \(/m);
  expect(stdout).not.toContain("4242424242424242");
  expect(stdout).toContain("a new job is sealed with k2");
  expect(stdout).toContain("handler got customer 42, card ending 4242");
  expect(stdout).toContain("handler got customer 7, card ending 4444");
  expect(stdout).toContain("after rotation: succeeded and succeeded");
  expect(stdout).toContain("without k1: failed (ENCRYPTION_KEY_MISSING)");
});
