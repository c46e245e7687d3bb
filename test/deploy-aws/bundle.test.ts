/**
 * The artifact the stack deploys: the esbuild bundle of deploy/aws/lambda,
 * run in a plain Node process the way the Lambda runtime runs it (one warm
 * container, many invocations), configured only through the environment the
 * stack sets, with its credentials read from "Secrets Manager" and its
 * wake-ups sent to "SQS" (the local stand-in, which checks signatures), and
 * the real Redis / PostgreSQL behind it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, expect, it } from "vitest";
import { bundleHandler, type BundleResult } from "../../deploy/aws/lib/bundle.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { functionUrlEvent, scheduledEvent, sqsEvent } from "../lambda/aws-events.js";
import { startAwsStandIn, type AwsStandIn } from "../lambda/aws-stand-in.js";

const TOKEN = "deploy-test-admin-token-0123456789";
const CONTAINER = join(import.meta.dirname, "fixtures", "lambda-container.mjs");

let bundle: BundleResult;
let aws: AwsStandIn;
beforeAll(async () => {
  [bundle, aws] = await Promise.all([bundleHandler(), startAwsStandIn()]);
});
afterAll(async () => {
  await aws?.close();
  if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
});

class Container {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting = new Map<number, (v: { result?: any; error?: string }) => void>();
  private next = 0;
  readonly ready: Promise<{ exports: string[] }>;
  private stderr = "";

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, [CONTAINER, bundle.file], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stderr.on("data", (d) => (this.stderr += String(d)));
    const lines = createInterface({ input: this.child.stdout });
    let onReady!: (v: { exports: string[] }) => void;
    this.ready = new Promise((resolve, reject) => {
      onReady = resolve;
      this.child.once("exit", (code) => reject(new Error(`container exited (${code}): ${this.stderr}`)));
    });
    lines.on("line", (line) => {
      if (!line.startsWith("{")) return;
      const msg = JSON.parse(line);
      if (msg.ready) return onReady(msg);
      if (typeof msg.id === "number") this.waiting.get(msg.id)?.(msg);
    });
  }

  async invoke(handler: string, event: unknown, remainingMs = 10_000): Promise<any> {
    await this.ready;
    const id = this.next++;
    const reply = new Promise<{ result?: any; error?: string }>((resolve) => this.waiting.set(id, resolve));
    this.child.stdin.write(JSON.stringify({ id, handler, event, remainingMs }) + "\n");
    const r = await reply;
    if (r.error !== undefined) throw new Error(`${handler} failed: ${r.error}\n${this.stderr}`);
    return r.result;
  }

  stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    return exited;
  }
}

/** The environment QmlStack gives the functions, plus what AWS itself provides. */
function lambdaEnv(storage: "redis" | "postgres", extra: Record<string, string>, secretId: string): Record<string, string> {
  return {
    QML_STORAGE: storage,
    QML_SECRET_ID: secretId,
    QML_QUEUE_URL: aws.queueUrl,
    QML_QUEUES: "default",
    QML_LOG_LEVEL: "warn",
    AWS_REGION: aws.region,
    AWS_ACCESS_KEY_ID: aws.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: aws.credentials.secretAccessKey,
    AWS_SESSION_TOKEN: aws.credentials.sessionToken!,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: `${aws.url}/`,
    AWS_LAMBDA_FUNCTION_NAME: `qml-${storage}`,
    ...extra,
  };
}

async function roundTrip(c: Container): Promise<void> {
  const ready = await c.ready;
  expect(ready.exports).toEqual(["httpHandler", "scheduleHandler", "sqsHandler"]);
  const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

  const denied = await c.invoke("httpHandler", functionUrlEvent({ method: "GET", path: "/api/stats" }));
  expect(denied.statusCode).toBe(401);

  const from = aws.messages.length;
  const created = await c.invoke(
    "httpHandler",
    functionUrlEvent({ method: "POST", path: "/api/jobs", headers: auth, body: JSON.stringify({ name: "send_email", args: ["ada@example.com"] }) }),
  );
  expect(created.statusCode).toBe(201);
  const id = JSON.parse(created.body).id as string;
  // The API answered after its wake-up reached "SQS", signed with the function's credentials.
  const delivered = aws.messages.slice(from);
  expect(delivered.map((m) => JSON.parse(m.body).ids)).toEqual([[id]]);

  const batch = await c.invoke("sqsHandler", sqsEvent(delivered.map((m) => ({ body: m.body, messageId: m.messageId }))));
  expect(batch).toEqual({ batchItemFailures: [] });
  const got = await c.invoke("httpHandler", functionUrlEvent({ method: "GET", path: `/api/jobs/${id}`, headers: auth }));
  expect(JSON.parse(got.body).job).toMatchObject({ state: "succeeded", result: { delivered: true } });

  const tick = await c.invoke("scheduleHandler", scheduledEvent());
  expect(tick).toMatchObject({ processed: 0, released: 0 });
}

const keys = prefixes("deploy");
describeWithService("redis", await serviceUp("redis"), "the deployed bundle on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it("serves the API, consumes wake-ups and ticks, with credentials from the secret", async () => {
    aws.secrets.set("qml/redis", JSON.stringify({ REDIS_URL, QML_DASHBOARD_TOKEN: TOKEN }));
    const c = new Container(lambdaEnv("redis", { QML_REDIS_KEY_PREFIX: keys.next() }, "qml/redis"));
    try {
      await roundTrip(c);
    } finally {
      await c.stop();
    }
  });
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "the deployed bundle on postgres", () => {
  afterAll(() => janitor.dropAll());
  it("serves the API, consumes wake-ups and ticks, with credentials from the secret", async () => {
    aws.secrets.set("qml/postgres", JSON.stringify({ DATABASE_URL, QML_DASHBOARD_TOKEN: TOKEN }));
    const c = new Container(lambdaEnv("postgres", { QML_POSTGRES_SCHEMA: janitor.next(), QML_POSTGRES_MAX_CONNECTIONS: "2" }, "qml/postgres"));
    try {
      await roundTrip(c);
    } finally {
      await c.stop();
    }
  });
});
