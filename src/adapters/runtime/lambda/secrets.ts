/**
 * Credentials of the store (DATABASE_URL, the Upstash token, the dashboard
 * token) come from one Secrets Manager secret, read once per cold start with
 * the function role's credentials. They never sit in the function's
 * environment, where anyone allowed to read the function configuration
 * would see them.
 *
 * The secret is a JSON object of strings:
 *   {"DATABASE_URL":"postgres://…","QML_DASHBOARD_TOKEN":"…"}
 */
import { ConfigError } from "../../../core/errors.js";
import { awsJsonRequest, envEndpoint, envRegion, type CredentialsSource } from "./aws.js";

export interface SecretOptions {
  /** Name or ARN of the secret. */
  secretId: string;
  /** Default: from an ARN, else AWS_REGION. */
  region?: string;
  /** Default: AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, else `https://secretsmanager.<region>.amazonaws.com/`. */
  endpoint?: string;
  credentials?: CredentialsSource;
  timeoutMs?: number;
}

function regionOf(secretId: string): string | undefined {
  // arn:aws:secretsmanager:<region>:<account>:secret:<name>
  const m = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):/.exec(secretId);
  return m?.[1];
}

export async function getSecretString(o: SecretOptions): Promise<string> {
  const region = o.region ?? regionOf(o.secretId) ?? envRegion();
  if (!region) throw new ConfigError("no region: pass region, a secret ARN, or set AWS_REGION", { scope: "secrets" });
  const endpoint = o.endpoint ?? envEndpoint("SECRETS_MANAGER") ?? `https://secretsmanager.${region}.amazonaws.com${region.startsWith("cn-") ? ".cn" : ""}/`;
  const r = await awsJsonRequest<{ SecretString?: string }>({
    endpoint,
    region,
    service: "secretsmanager",
    target: "secretsmanager.GetSecretValue",
    jsonVersion: "1.1",
    body: { SecretId: o.secretId },
    ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
  });
  if (typeof r.SecretString !== "string")
    throw new ConfigError(`secret ${o.secretId} has no SecretString (binary secrets are not supported)`, { scope: "secrets" });
  return r.SecretString;
}

/** The secret as a map of names to strings. */
export async function getSecretJson(o: SecretOptions): Promise<Record<string, string>> {
  const text = await getSecretString(o);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ConfigError(`secret ${o.secretId} is not JSON: expected {"DATABASE_URL": "…", …}`, { scope: "secrets" });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new ConfigError(`secret ${o.secretId} must be a JSON object of strings`, { scope: "secrets" });
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") throw new ConfigError(`secret ${o.secretId}: ${k} must be a string`, { scope: "secrets" });
    out[k] = val;
  }
  return out;
}
