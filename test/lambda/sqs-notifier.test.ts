/**
 * The SQS notifier and the secrets reader over SigV4-signed fetch, against
 * a local stand-in of the AWS endpoints that verifies signatures; and the
 * whole path: a client enqueues, the wake-up goes out, the consumer's
 * sqsHandler runs the job.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Job, ManualClock, Storage, memoryBackend, WorkerRegistry, WorkerResult, createClient, silentLogger } from "../../src/index.js";
import { createLambdaHandlers, createSqsNotifier } from "../../src/adapters/runtime/lambda/index.js";
import { AwsRequestError } from "../../src/adapters/runtime/lambda/aws.js";
import { getSecretJson } from "../../src/adapters/runtime/lambda/secrets.js";
import { SqsNotifier, createSqsSender, regionOfQueueUrl } from "../../src/adapters/runtime/lambda/sqs-notifier.js";
import { decodeWakeUp } from "../../src/adapters/runtime/serverless/wake-up.js";
import { functionUrlEvent, lambdaContext, scheduledEvent, sqsEvent } from "./aws-events.js";
import { startAwsStandIn, type AwsStandIn } from "./aws-stand-in.js";

let aws: AwsStandIn;
beforeAll(async () => {
  aws = await startAwsStandIn();
});
afterAll(async () => {
  await aws.close();
});

function notifier(clock = new ManualClock(Date.now()), extra: { maxIdsPerMessage?: number } = {}) {
  return createSqsNotifier({ queueUrl: aws.queueUrl, region: aws.region, credentials: aws.credentials, clock, ...extra });
}

/** Messages the stand-in received since `from`, as one SQS event. */
function deliveredSince(from: number) {
  return sqsEvent(aws.messages.slice(from).map((m) => ({ body: m.body, messageId: m.messageId, sentAt: m.sentAt })));
}

describe("SQS notifier", () => {
  it("sends SendMessageBatch over the AWS JSON protocol, signed (the stand-in verifies the signature)", async () => {
    const before = aws.messages.length;
    const reqs = aws.requests.length;
    const clock = new ManualClock(Date.now());
    await notifier(clock).notify([
      { id: "j1", queue: "default", runAt: clock.now() },
      { id: "j2", queue: "default", runAt: clock.now() },
      { id: "j3", queue: "mail", runAt: clock.now() },
    ]);
    const req = aws.requests[reqs]!;
    expect(req.target).toBe("AmazonSQS.SendMessageBatch");
    expect(req.headers["content-type"]).toBe("application/x-amz-json-1.0");
    expect(req.headers["x-amz-security-token"]).toBe(aws.credentials.sessionToken);
    // aws4fetch signs every header but the few AWS leaves out of signatures (content-type among them).
    expect(req.headers.authorization).toMatch(
      new RegExp(
        `^AWS4-HMAC-SHA256 Credential=${aws.credentials.accessKeyId}/\\d{8}/${aws.region}/sqs/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target, Signature=[0-9a-f]{64}$`,
      ),
    );
    expect(JSON.parse(req.body)).toMatchObject({ QueueUrl: aws.queueUrl, Entries: [{ Id: "0" }, { Id: "1" }] });
    const bodies = aws.messages.slice(before).map((m) => decodeWakeUp(m.body));
    expect(bodies).toEqual([
      { v: 1, queue: "default", ids: ["j1", "j2"], runAt: clock.now() },
      { v: 1, queue: "mail", ids: ["j3"], runAt: clock.now() },
    ]);
  });

  it("a wrong secret is refused by the service, as AWS would", async () => {
    const bad = createSqsNotifier({ queueUrl: aws.queueUrl, region: aws.region, credentials: { ...aws.credentials, secretAccessKey: "not-the-secret" } });
    const err = await bad.notify([{ id: "x", queue: "default", runAt: Date.now() }]).catch((e) => e);
    expect(err).toBeInstanceOf(AwsRequestError);
    expect(err).toMatchObject({ awsCode: "InvalidSignatureException", status: 403, retryable: false, code: "CONFIG" });
  });

  it("delays a wake-up until the job is due (up to 900 s) and sends none for jobs due later", () => {
    const clock = new ManualClock(Date.now());
    const n = new SqsNotifier({ sender: { sendMessageBatch: async () => ({ Successful: [], Failed: [] }) }, clock });
    const entries = n.entriesFor([
      { id: "now", queue: "default", runAt: clock.now() - 5 },
      { id: "soon", queue: "default", runAt: clock.now() + 1500 },
      { id: "edge", queue: "default", runAt: clock.now() + 900_000 },
      { id: "later", queue: "default", runAt: clock.now() + 900_001 },
    ]);
    expect(entries.map((e) => [decodeWakeUp(e.MessageBody)!.ids, e.DelaySeconds])).toEqual([
      [["now"], undefined],
      [["soon"], 2],
      [["edge"], 900],
    ]);
  });

  it("packs a bulk enqueue: 50 ids per message, 10 messages per call", async () => {
    const before = aws.messages.length;
    const reqs = aws.requests.length;
    const clock = new ManualClock(Date.now());
    const jobs = Array.from({ length: 1001 }, (_, i) => ({ id: `bulk-${i}`, queue: "default", runAt: clock.now() }));
    await notifier(clock).notify(jobs);
    expect(aws.requests.length - reqs).toBe(3);
    const sent = aws.messages.slice(before).map((m) => decodeWakeUp(m.body)!);
    expect(sent.length).toBe(21);
    expect(sent.every((m) => m.ids.length <= 50)).toBe(true);
    expect(sent.flatMap((m) => m.ids).sort()).toEqual(jobs.map((j) => j.id).sort());
  });

  it("retries entries SQS failed on its side once; reports what still failed", async () => {
    const before = aws.messages.length;
    aws.failEntries = 1;
    await notifier().notify([{ id: "r1", queue: "default", runAt: Date.now() }]);
    expect(aws.messages.slice(before).map((m) => decodeWakeUp(m.body)!.ids)).toEqual([["r1"]]);

    aws.failEntries = 2;
    const err = await notifier()
      .notify([{ id: "r2", queue: "default", runAt: Date.now() }])
      .catch((e) => e);
    expect(err).toBeInstanceOf(AwsRequestError);
    expect(err).toMatchObject({ awsCode: "InternalError", retryable: true });
    expect(aws.failEntries).toBe(0);
  });

  it("maps AWS and network failures to errors a caller can act on", async () => {
    const missing = createSqsSender({ queueUrl: `${aws.url}/123456789012/nope`, region: aws.region, credentials: aws.credentials });
    await expect(missing.sendMessageBatch([{ Id: "0", MessageBody: "{}" }])).rejects.toMatchObject({
      name: "AwsRequestError",
      awsCode: "QueueDoesNotExist",
      retryable: false,
    });
    const down = createSqsSender({ queueUrl: "http://127.0.0.1:1/123456789012/q", region: "eu-west-1", credentials: aws.credentials, timeoutMs: 2000 });
    await expect(down.sendMessageBatch([{ Id: "0", MessageBody: "{}" }])).rejects.toMatchObject({
      name: "AwsRequestError",
      awsCode: "NetworkError",
      retryable: true,
      code: "STORAGE_UNAVAILABLE",
    });
  });

  it("takes the region from a real queue URL, and the credentials from the Lambda environment", async () => {
    expect(regionOfQueueUrl("https://sqs.ap-southeast-2.amazonaws.com/123456789012/q")).toBe("ap-southeast-2");
    expect(regionOfQueueUrl("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q")).toBe("cn-north-1");
    const saved = { ...process.env };
    try {
      process.env.AWS_ACCESS_KEY_ID = aws.credentials.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = aws.credentials.secretAccessKey;
      process.env.AWS_SESSION_TOKEN = aws.credentials.sessionToken;
      process.env.AWS_REGION = aws.region;
      const before = aws.messages.length;
      await createSqsNotifier({ queueUrl: aws.queueUrl }).notify([{ id: "env", queue: "default", runAt: Date.now() }]);
      expect(aws.messages.length).toBe(before + 1);
    } finally {
      for (const k of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});

describe("Secrets Manager", () => {
  it("reads a JSON secret with GetSecretValue (JSON 1.1, signed for secretsmanager)", async () => {
    aws.secrets.set("qml/test", JSON.stringify({ DATABASE_URL: "postgres://u:p@db/x", QML_DASHBOARD_TOKEN: "t".repeat(32) }));
    const reqs = aws.requests.length;
    const secret = await getSecretJson({ secretId: "qml/test", region: aws.region, endpoint: `${aws.url}/`, credentials: aws.credentials });
    expect(secret).toEqual({ DATABASE_URL: "postgres://u:p@db/x", QML_DASHBOARD_TOKEN: "t".repeat(32) });
    expect(aws.requests[reqs]!.headers["content-type"]).toBe("application/x-amz-json-1.1");
    expect(aws.requests[reqs]!.headers.authorization).toContain(`/${aws.region}/secretsmanager/aws4_request`);
    await expect(getSecretJson({ secretId: "qml/missing", region: aws.region, endpoint: `${aws.url}/`, credentials: aws.credentials })).rejects.toMatchObject({
      awsCode: "ResourceNotFoundException",
    });
    aws.secrets.set("qml/array", "[1]");
    await expect(getSecretJson({ secretId: "qml/array", region: aws.region, endpoint: `${aws.url}/`, credentials: aws.credentials })).rejects.toThrow(
      /JSON object/,
    );
  });
});

describe("enqueue anywhere, run on Lambda", () => {
  let storage: Storage;
  beforeAll(() => {
    storage = new Storage(memoryBackend());
  });

  it("a client enqueue sends a wake-up; the SQS consumer runs the job", async () => {
    const client = createClient({ storage, notifier: notifier(new ManualClock(Date.now())) });
    const from = aws.messages.length;
    const id = await client.enqueue("greet", ["ada"]);
    expect(aws.messages.length).toBe(from + 1);
    const ran: unknown[] = [];
    const consumer = createLambdaHandlers({
      storage: () => storage,
      registry: new WorkerRegistry().register("greet", (job) => {
        ran.push(job.arguments[0]);
        return WorkerResult.success();
      }),
      safetyMs: 100,
      logger: silentLogger,
    });
    const res = await consumer.sqsHandler(deliveredSince(from), lambdaContext(5000));
    expect(res.batchItemFailures).toEqual([]);
    expect(ran).toEqual(["ada"]);
    expect((await storage.get(id))!.state).toBe("succeeded");
  });

  it("an enqueue through the Function URL is answered after its wake-up is sent", async () => {
    const token = "api-token-0123456789abcdef";
    const h = createLambdaHandlers({
      storage: () => storage,
      registry: new WorkerRegistry().register("greet", () => WorkerResult.success()),
      notifier: notifier(),
      http: { auth: { adminTokens: [token] } },
      logger: silentLogger,
    });
    const from = aws.messages.length;
    const res = await h.httpHandler(
      functionUrlEvent({
        method: "POST",
        path: "/api/jobs",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "greet", args: ["grace"] }),
      }),
      lambdaContext(5000),
    );
    expect(res.statusCode).toBe(201);
    const { id } = JSON.parse(res.body) as { id: string };
    // No waiting here: the handler already awaited the send.
    expect(aws.messages.slice(from).map((m) => decodeWakeUp(m.body)!.ids)).toEqual([[id]]);
  });

  it("a worker's follow-up enqueue wakes a consumer too", async () => {
    const from = aws.messages.length;
    const h = createLambdaHandlers({
      storage: () => storage,
      registry: new WorkerRegistry().register("parent", async () => {
        await storage.enqueue(new Job("child", []));
        return WorkerResult.success();
      }),
      notifier: notifier(),
      safetyMs: 100,
      logger: silentLogger,
    });
    await storage.enqueue(new Job("parent", []));
    const report = await h.scheduleHandler(scheduledEvent(), lambdaContext(5000));
    expect(report.succeeded).toBeGreaterThanOrEqual(1);
    const woken = aws.messages.slice(from).flatMap((m) => decodeWakeUp(m.body)!.ids);
    const child = (await storage.list({ name: "child" })).items[0]!;
    expect(woken).toContain(child.id);
  });
});
