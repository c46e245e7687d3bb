/**
 * The AWS JSON protocol over fetch: one SigV4-signed POST with
 * `X-Amz-Target: <Service>.<Operation>` and a JSON body. Enough for SQS
 * (SendMessageBatch) and Secrets Manager (GetSecretValue) without an SDK.
 *
 * Runs wherever fetch and WebCrypto do (Lambda, Node, workerd), so a client
 * on the edge can wake a Lambda consumer too.
 */
import { ConfigError, ErrorCode, QmlError } from "../../../core/errors.js";
import { signRequest, type AwsCredentials } from "./sigv4.js";

export type CredentialsSource = AwsCredentials | (() => AwsCredentials | Promise<AwsCredentials>);

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** A failed AWS call. `retryable` when the service or the network failed, not the request. */
export class AwsRequestError extends QmlError {
  override readonly name = "AwsRequestError";
  /** The AWS error type, e.g. `AWS.SimpleQueueService.NonExistentQueue`, or `NetworkError`. */
  readonly awsCode: string;
  readonly status: number | undefined;
  readonly retryable: boolean;
  constructor(service: string, awsCode: string, message: string, status: number | undefined, retryable: boolean, cause?: unknown) {
    // A request AWS refuses (bad queue, no permission) is configuration; anything else may pass on retry.
    super(retryable ? ErrorCode.StorageUnavailable : ErrorCode.Config, `[qml] [aws] ${service}: ${awsCode}: ${message}`, cause !== undefined ? { cause } : undefined);
    this.awsCode = awsCode;
    this.status = status;
    this.retryable = retryable;
  }
}

function env(): Record<string, string | undefined> {
  // Not on workerd: there credentials must be passed explicitly.
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
}

/** The credentials the Lambda runtime puts in the environment (the function role's, temporary). */
export function envCredentials(): AwsCredentials {
  const e = env();
  const accessKeyId = e.AWS_ACCESS_KEY_ID;
  const secretAccessKey = e.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new ConfigError("[qml] [aws] no credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (pass credentials explicitly outside Lambda)");
  }
  return { accessKeyId, secretAccessKey, ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}) };
}

/**
 * An endpoint override from the environment, as the AWS SDKs read it:
 * `AWS_ENDPOINT_URL_<SERVICE>` (e.g. AWS_ENDPOINT_URL_SQS), then
 * `AWS_ENDPOINT_URL`. For VPC endpoints, LocalStack and local stand-ins.
 */
export function envEndpoint(serviceId: string): string | undefined {
  const e = env();
  return e[`AWS_ENDPOINT_URL_${serviceId}`] || e.AWS_ENDPOINT_URL || undefined;
}

export function envRegion(): string | undefined {
  const e = env();
  return e.AWS_REGION || e.AWS_DEFAULT_REGION || undefined;
}

export async function resolveCredentials(source: CredentialsSource | undefined): Promise<AwsCredentials> {
  if (source === undefined) return envCredentials();
  return typeof source === "function" ? await source() : source;
}

export interface AwsJsonCall {
  /** e.g. `https://sqs.eu-west-1.amazonaws.com/` */
  endpoint: string;
  region: string;
  /** Signing name: `sqs`, `secretsmanager`. */
  service: string;
  /** `AmazonSQS.SendMessageBatch`, `secretsmanager.GetSecretValue`. */
  target: string;
  /** `1.0` (SQS) or `1.1` (Secrets Manager). */
  jsonVersion: "1.0" | "1.1";
  body: unknown;
  credentials?: CredentialsSource;
  fetch?: FetchLike;
  timeoutMs?: number;
}

/** One signed call. Returns the parsed JSON reply; throws AwsRequestError. */
export async function awsJsonRequest<T>(call: AwsJsonCall): Promise<T> {
  const body = JSON.stringify(call.body);
  const credentials = await resolveCredentials(call.credentials);
  const signed = await signRequest({
    method: "POST",
    url: call.endpoint,
    headers: { "content-type": `application/x-amz-json-${call.jsonVersion}`, "x-amz-target": call.target },
    body,
    region: call.region,
    service: call.service,
    credentials,
  });
  const doFetch = call.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(call.endpoint, { method: "POST", headers: signed.headers, body, signal: AbortSignal.timeout(call.timeoutMs ?? 5000) });
  } catch (e) {
    const timedOut = (e as Error)?.name === "TimeoutError" || (e as Error)?.name === "AbortError";
    throw new AwsRequestError(call.service, timedOut ? "Timeout" : "NetworkError", (e as Error)?.message ?? String(e), undefined, true, e);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text.length > 0 ? JSON.parse(text) : {};
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const err = (json ?? {}) as { __type?: string; message?: string; Message?: string };
    // `__type` is "com.amazonaws.sqs#QueueDoesNotExist" or a bare name; keep the name.
    const type = (err.__type ?? res.headers.get("x-amzn-errortype") ?? `HTTP${res.status}`).split("#").pop()!.split(":")[0]!;
    const retryable = res.status >= 500 || res.status === 429 || /Throttl|RequestThrottled|TooManyRequests|ServiceUnavailable|InternalError/i.test(type);
    throw new AwsRequestError(call.service, type, err.message ?? err.Message ?? (text.slice(0, 200) || res.statusText), res.status, retryable);
  }
  if (json === undefined) throw new AwsRequestError(call.service, "MalformedResponse", `reply is not JSON: ${text.slice(0, 200)}`, res.status, true);
  return json as T;
}
