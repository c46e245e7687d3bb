/**
 * The AWS JSON protocol over fetch, signed with SigV4 by aws4fetch: one
 * POST with `X-Amz-Target: <Service>.<Operation>` and a JSON body. Enough
 * for SQS (SendMessageBatch) and Secrets Manager (GetSecretValue) without
 * an SDK, which would be the largest dependency of a Lambda bundle and
 * does not run on workerd. Runs wherever fetch and WebCrypto do (Lambda,
 * Node, workerd), so a client on the edge can wake a Lambda consumer too.
 */
import { AwsClient } from "aws4fetch";
import { ConfigError, ErrorCode, QmlError } from "../../../core/errors.js";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Present for temporary credentials (a Lambda's role, STS). */
  sessionToken?: string;
}

export type CredentialsSource = AwsCredentials | (() => AwsCredentials | Promise<AwsCredentials>);

/** A failed AWS call. `retryable` when the service or the network failed, not the request. */
export class AwsRequestError extends QmlError {
  override readonly name = "AwsRequestError";
  /** The AWS error type, e.g. `QueueDoesNotExist`, or `NetworkError` / `Timeout`. */
  readonly awsCode: string;
  readonly status: number | undefined;
  readonly retryable: boolean;
  constructor(service: string, awsCode: string, message: string, status: number | undefined, retryable: boolean, cause?: unknown) {
    // A request AWS refuses (bad queue, no permission) is configuration; anything else may pass on retry.
    super(retryable ? ErrorCode.StorageUnavailable : ErrorCode.Config, `${awsCode}: ${message}`, { scope: service, ...(cause !== undefined ? { cause } : {}) });
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
    throw new ConfigError("no credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (pass credentials explicitly outside Lambda)", {
      scope: "aws",
    });
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
  /** Default: the Lambda environment's (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). */
  credentials?: CredentialsSource;
  /** For the whole call, retries included (default 5000 ms). */
  timeoutMs?: number;
}

/**
 * Throttling and 5xx answers are retried by aws4fetch with jittered
 * doubling from 50 ms: two retries cost at most about 150 ms, which an API
 * response waiting on its wake-up can afford (its default of ten could
 * wait 50 s).
 */
const RETRIES = 2;

/** One signed call. Returns the parsed JSON reply; throws AwsRequestError. */
export async function awsJsonRequest<T>(call: AwsJsonCall): Promise<T> {
  const credentials = call.credentials === undefined ? envCredentials() : typeof call.credentials === "function" ? await call.credentials() : call.credentials;
  const aws = new AwsClient({ ...credentials, service: call.service, region: call.region, retries: RETRIES });
  let res: Response;
  try {
    res = await aws.fetch(call.endpoint, {
      method: "POST",
      headers: { "content-type": `application/x-amz-json-${call.jsonVersion}`, "x-amz-target": call.target },
      body: JSON.stringify(call.body),
      signal: AbortSignal.timeout(call.timeoutMs ?? 5000),
    });
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
