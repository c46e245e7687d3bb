/**
 * A local stand-in for the two AWS endpoints qml calls (SQS SendMessageBatch
 * and Secrets Manager GetSecretValue), speaking the AWS JSON protocol. It
 * checks what the real services check before anything else: the SigV4
 * signature (recomputed from the request with the known secret, by the
 * signer that sigv4.test.ts holds to AWS's published test suite), the
 * credential scope, the clock skew, the target and content type, and the
 * request's shape and limits. This machine cannot reach AWS; this is the
 * edge we stand in for, nothing inside qml is mocked.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { randomUUID, createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { AwsV4Signer } from "aws4fetch";
import type { AwsCredentials } from "../../src/adapters/runtime/lambda/index.js";

export interface StoredMessage {
  messageId: string;
  body: string;
  delaySeconds: number;
  sentAt: number;
}

export interface AwsStandIn {
  url: string;
  queueUrl: string;
  region: string;
  credentials: AwsCredentials;
  messages: StoredMessage[];
  requests: Array<{ target: string; headers: IncomingMessage["headers"]; body: string }>;
  /** The next N entries SendMessageBatch receives fail on the service's side (SenderFault false). */
  failEntries: number;
  secrets: Map<string, string>;
  close(): Promise<void>;
}

function parseAuthorization(h: string | undefined) {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
    h ?? "",
  );
  if (!m) return null;
  return { accessKeyId: m[1]!, date: m[2]!, region: m[3]!, service: m[4]!, signedHeaders: m[5]!.split(";"), signature: m[6]! };
}

function parseAmzDate(s: string | undefined): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s ?? "");
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : null;
}

export async function startAwsStandIn(o: { region?: string; credentials?: AwsCredentials } = {}): Promise<AwsStandIn> {
  const region = o.region ?? "eu-west-1";
  const credentials = o.credentials ?? { accessKeyId: "AKIDSTANDIN", secretAccessKey: `secret-${randomUUID()}`, sessionToken: `token-${randomUUID()}` };
  const state = { messages: [] as StoredMessage[], requests: [] as AwsStandIn["requests"], failEntries: 0, secrets: new Map<string, string>() };
  let queueUrl = "";

  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const target = String(req.headers["x-amz-target"] ?? "");
    state.requests.push({ target, headers: req.headers, body });
    const json10 = "application/x-amz-json-1.0";
    const reply = (status: number, payload: unknown, type = json10) => {
      res.writeHead(status, { "content-type": type, "x-amzn-requestid": randomUUID() });
      res.end(JSON.stringify(payload));
    };
    const error = (status: number, type: string, message: string) => reply(status, { __type: type, message });

    // --- authentication, as AWS does it
    const auth = parseAuthorization(req.headers.authorization);
    if (!auth) return error(400, "com.amazon.coral.service#IncompleteSignatureException", "Authorization header is missing or malformed");
    if (auth.accessKeyId !== credentials.accessKeyId)
      return error(403, "com.amazon.coral.service#UnrecognizedClientException", "The security token included in the request is invalid.");
    const date = parseAmzDate(req.headers["x-amz-date"] as string | undefined);
    if (!date || Math.abs(date.getTime() - Date.now()) > 5 * 60_000)
      return error(403, "com.amazon.coral.service#InvalidSignatureException", "Signature expired or x-amz-date missing");
    if (auth.region !== region)
      return error(403, "com.amazon.coral.service#InvalidSignatureException", `Credential should be scoped to a valid region: ${region}`);
    for (const required of ["host", "x-amz-date"])
      if (!auth.signedHeaders.includes(required)) return error(403, "com.amazon.coral.service#InvalidSignatureException", `${required} must be signed`);
    if (
      credentials.sessionToken &&
      (req.headers["x-amz-security-token"] !== credentials.sessionToken || !auth.signedHeaders.includes("x-amz-security-token"))
    ) {
      return error(403, "com.amazon.coral.service#UnrecognizedClientException", "The security token included in the request is invalid.");
    }
    const signedSubset: Record<string, string> = {};
    for (const h of auth.signedHeaders) {
      const v = req.headers[h];
      if (v === undefined) return error(403, "com.amazon.coral.service#InvalidSignatureException", `signed header ${h} is missing`);
      signedSubset[h] = Array.isArray(v) ? v.join(",") : v;
    }
    // Exactly the headers the request says it signed, at the time it says it signed them.
    const expected = await new AwsV4Signer({
      method: req.method ?? "POST",
      url: `http://${req.headers.host}${req.url}`,
      headers: signedSubset,
      body,
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      region,
      service: auth.service,
      datetime: String(req.headers["x-amz-date"]),
      allHeaders: true,
    }).signature();
    if (expected !== auth.signature) {
      return error(403, "com.amazon.coral.service#InvalidSignatureException", "The request signature we calculated does not match the signature you provided.");
    }

    // --- the operations
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return error(400, "com.amazon.coral.service#SerializationException", "body is not JSON");
    }
    if (target === "AmazonSQS.SendMessageBatch") {
      if (auth.service !== "sqs" || req.headers["content-type"] !== json10)
        return error(400, "com.amazon.coral.service#UnknownOperationException", "wrong service or content type");
      if (input.QueueUrl !== queueUrl) return error(400, "com.amazonaws.sqs#QueueDoesNotExist", "The specified queue does not exist.");
      const entries = input.Entries as Array<{ Id?: unknown; MessageBody?: unknown; DelaySeconds?: unknown }> | undefined;
      if (!Array.isArray(entries) || entries.length === 0)
        return error(400, "com.amazonaws.sqs#EmptyBatchRequest", "The batch request doesn't contain any entries.");
      if (entries.length > 10) return error(400, "com.amazonaws.sqs#TooManyEntriesInBatchRequest", "Maximum number of entries per request are 10.");
      if (new Set(entries.map((e) => e.Id)).size !== entries.length)
        return error(400, "com.amazonaws.sqs#BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id.");
      if (Buffer.byteLength(body) > 262_144 + 2048)
        return error(400, "com.amazonaws.sqs#BatchRequestTooLong", "Batch requests cannot be longer than 262144 bytes.");
      const Successful: unknown[] = [];
      const Failed: unknown[] = [];
      for (const e of entries) {
        if (typeof e.Id !== "string" || !/^[A-Za-z0-9_-]{1,80}$/.test(e.Id) || typeof e.MessageBody !== "string" || e.MessageBody.length === 0) {
          return error(400, "com.amazonaws.sqs#InvalidBatchEntryId", "entry Id or MessageBody is invalid");
        }
        if (e.DelaySeconds !== undefined && (!Number.isInteger(e.DelaySeconds) || (e.DelaySeconds as number) < 0 || (e.DelaySeconds as number) > 900)) {
          Failed.push({ Id: e.Id, SenderFault: true, Code: "InvalidParameterValue", Message: "DelaySeconds must be 0-900" });
          continue;
        }
        if (state.failEntries > 0) {
          state.failEntries--;
          Failed.push({ Id: e.Id, SenderFault: false, Code: "InternalError", Message: "We encountered an internal error. Please try again." });
          continue;
        }
        const messageId = randomUUID();
        state.messages.push({ messageId, body: e.MessageBody, delaySeconds: (e.DelaySeconds as number | undefined) ?? 0, sentAt: Date.now() });
        Successful.push({ Id: e.Id, MessageId: messageId, MD5OfMessageBody: createHash("md5").update(e.MessageBody).digest("hex") });
      }
      return reply(200, { Successful, Failed });
    }
    if (target === "secretsmanager.GetSecretValue") {
      const json11 = "application/x-amz-json-1.1";
      if (auth.service !== "secretsmanager" || req.headers["content-type"] !== json11)
        return error(400, "UnknownOperationException", "wrong service or content type");
      const secret = state.secrets.get(String(input.SecretId));
      if (secret === undefined) return reply(400, { __type: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret." }, json11);
      return reply(
        200,
        {
          ARN: `arn:aws:secretsmanager:${region}:123456789012:secret:${String(input.SecretId)}-AbCdEf`,
          Name: input.SecretId,
          SecretString: secret,
          VersionId: randomUUID(),
          CreatedDate: Date.now() / 1000,
        },
        json11,
      );
    }
    return error(400, "com.amazon.coral.service#UnknownOperationException", `unknown target ${target}`);
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  queueUrl = `${url}/123456789012/qml-wake-ups`;
  return {
    url,
    queueUrl,
    region,
    credentials,
    get messages() {
      return state.messages;
    },
    get requests() {
      return state.requests;
    },
    get failEntries() {
      return state.failEntries;
    },
    set failEntries(n: number) {
      state.failEntries = n;
    },
    secrets: state.secrets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
