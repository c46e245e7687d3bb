/**
 * Lambda inputs exactly as AWS sends them (shapes copied from the AWS
 * documentation's sample events), and a Context whose remaining time the
 * test drives.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Context, LambdaFunctionURLEvent, SQSEvent, SQSRecord, ScheduledEvent } from "aws-lambda";
import type { Clock } from "../../src/index.js";

export const ACCOUNT = "123456789012";
export const REGION = "eu-west-1";
export const QUEUE_ARN = `arn:aws:sqs:${REGION}:${ACCOUNT}:qml-wake-ups`;

/** EventBridge "Scheduled Event" for a rule with `rate(1 minute)`. */
export function scheduledEvent(at: Date = new Date()): ScheduledEvent {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: ACCOUNT,
    time: at.toISOString().replace(/\.\d{3}Z$/, "Z"),
    region: REGION,
    resources: [`arn:aws:events:${REGION}:${ACCOUNT}:rule/qml-tick`],
    detail: {},
  };
}

export interface SqsMessageInput {
  body: string;
  messageId?: string;
  receiveCount?: number;
  sentAt?: number;
}

export function sqsRecord(m: SqsMessageInput): SQSRecord {
  const sent = m.sentAt ?? Date.now();
  return {
    messageId: m.messageId ?? randomUUID(),
    receiptHandle: `AQEB${Buffer.from(randomUUID()).toString("base64")}`,
    body: m.body,
    attributes: {
      ApproximateReceiveCount: String(m.receiveCount ?? 1),
      SentTimestamp: String(sent),
      SenderId: "AROAEXAMPLEROLEID:qml-api",
      ApproximateFirstReceiveTimestamp: String(sent + 5),
    },
    messageAttributes: {},
    md5OfBody: createHash("md5").update(m.body).digest("hex"),
    eventSource: "aws:sqs",
    eventSourceARN: QUEUE_ARN,
    awsRegion: REGION,
  };
}

export function sqsEvent(messages: SqsMessageInput[]): SQSEvent {
  return { Records: messages.map(sqsRecord) };
}

export interface UrlRequest {
  method: string;
  path: string;
  query?: string;
  headers?: Record<string, string>;
  body?: string;
  base64?: boolean;
}

/** A Lambda Function URL request (payload format 2.0). */
export function functionUrlEvent(r: UrlRequest): LambdaFunctionURLEvent {
  const domainPrefix = "abcdefghijklmnopqrstuvwxyz012345";
  const domainName = `${domainPrefix}.lambda-url.${REGION}.on.aws`;
  const now = Date.now();
  const headers: Record<string, string> = {
    host: domainName,
    "user-agent": "curl/8.5.0",
    accept: "*/*",
    "x-amzn-tls-version": "TLSv1.3",
    "x-amzn-tls-cipher-suite": "TLS_AES_128_GCM_SHA256",
    "x-amzn-trace-id": `Root=1-${Math.floor(now / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)}`,
    "x-forwarded-proto": "https",
    "x-forwarded-port": "443",
    "x-forwarded-for": "203.0.113.7",
    ...Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
  };
  const query = r.query ?? "";
  const qsp: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(query)) qsp[k] = qsp[k] === undefined ? v : `${qsp[k]},${v}`;
  const event: LambdaFunctionURLEvent = {
    version: "2.0",
    routeKey: "$default",
    rawPath: r.path,
    rawQueryString: query,
    headers,
    requestContext: {
      accountId: "anonymous",
      apiId: domainPrefix,
      domainName,
      domainPrefix,
      http: { method: r.method, path: r.path, protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: headers["user-agent"]! },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    isBase64Encoded: r.base64 ?? false,
  };
  if (query) event.queryStringParameters = qsp;
  if (r.body !== undefined) event.body = r.base64 ? Buffer.from(r.body).toString("base64") : r.body;
  return event;
}

/**
 * A Lambda Context. The remaining time counts down on `clock` from
 * `remainingMs`; a test with a ManualClock moves it by hand.
 */
export function lambdaContext(
  remainingMs: number,
  clock: Clock = { now: () => Date.now() },
  functionName = "qml-worker",
): Context & { setRemaining(ms: number): void } {
  let deadline = clock.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${functionName}`,
    memoryLimitInMB: "512",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `2030/01/01/[$LATEST]${randomUUID().replace(/-/g, "")}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - clock.now()),
    setRemaining(ms: number) {
      deadline = clock.now() + ms;
    },
    done() {},
    fail() {},
    succeed() {},
  };
}
