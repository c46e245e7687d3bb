/**
 * AWS Signature Version 4, on WebCrypto.
 *
 * qml ships no AWS SDK (it would be the largest dependency of a Lambda
 * bundle, and it does not run on workerd), yet the client must reach SQS and
 * the Lambda must read Secrets Manager. Both speak the AWS JSON protocol:
 * one signed POST. This is the signer for it, checked against AWS's published
 * SigV4 test suite (test/lambda/sigv4.test.ts).
 *
 * Scope: header-based signing (not presigned URLs), unsigned-payload never
 * (the body hash is always computed), non-S3 path encoding.
 */

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Present for temporary credentials (a Lambda's role, STS). */
  sessionToken?: string;
}

export interface SignRequest {
  method: string;
  url: string | URL;
  /** Headers to send and sign. `host` and `x-amz-date` are added when missing. */
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  region: string;
  service: string;
  credentials: AwsCredentials;
  /** Signing time (default: now). */
  date?: Date;
}

export interface SignedRequest {
  /** Every header to send, including `authorization`; names lowercase. `host` is left out: fetch sets it. */
  headers: Record<string, string>;
  canonicalRequest: string;
  stringToSign: string;
  signedHeaders: string;
  signature: string;
}

const encoder = new TextEncoder();

function bytes(data: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return (typeof data === "string" ? encoder.encode(data) : new Uint8Array(data)) as Uint8Array<ArrayBuffer>;
}

function hex(buf: ArrayBuffer | Uint8Array): string {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", bytes(data)));
}

async function hmac(key: Uint8Array, data: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", bytes(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, bytes(data)));
}

/** kSigning = HMAC chain over date, region, service, "aws4_request". */
export async function signingKey(secretAccessKey: string, dateStamp: string, region: string, service: string): Promise<Uint8Array> {
  const kDate = await hmac(bytes(`AWS4${secretAccessKey}`), dateStamp);
  const kRegion = await hmac(kDate, region);
  const kService = await hmac(kRegion, service);
  return hmac(kService, "aws4_request");
}

/** `20150830T123600Z` */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** RFC 3986 percent-encoding: everything but A-Z a-z 0-9 - _ . ~ */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalUri(pathname: string): string {
  if (pathname === "" || pathname === "/") return "/";
  // URL.pathname is already encoded once; non-S3 services expect each segment encoded again.
  return pathname
    .split("/")
    .map((seg) => uriEncode(seg))
    .join("/");
}

function canonicalQuery(params: URLSearchParams): string {
  const pairs = [...params].map(([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** Header values are trimmed and inner runs of spaces collapsed before signing. */
function canonicalValue(v: string): string {
  return v.trim().replace(/\s+/g, " ");
}

export async function signRequest(req: SignRequest): Promise<SignedRequest> {
  const url = typeof req.url === "string" ? new URL(req.url) : req.url;
  const date = req.date ?? new Date();
  const stamp = amzDate(date);
  const dateStamp = stamp.slice(0, 8);

  const headers = new Map<string, string>();
  for (const [k, v] of Object.entries(req.headers ?? {})) headers.set(k.toLowerCase(), v);
  if (!headers.has("host")) headers.set("host", url.host);
  if (!headers.has("x-amz-date")) headers.set("x-amz-date", stamp);
  if (req.credentials.sessionToken && !headers.has("x-amz-security-token")) headers.set("x-amz-security-token", req.credentials.sessionToken);

  const names = [...headers.keys()].sort();
  const signedHeaders = names.join(";");
  const canonicalHeaders = names.map((n) => `${n}:${canonicalValue(headers.get(n)!)}\n`).join("");
  const payloadHash = await sha256Hex(req.body ?? "");
  const canonicalRequest = [req.method.toUpperCase(), canonicalUri(url.pathname), canonicalQuery(url.searchParams), canonicalHeaders, signedHeaders, payloadHash].join("\n");

  const scope = `${dateStamp}/${req.region}/${req.service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", stamp, scope, await sha256Hex(canonicalRequest)].join("\n");
  const key = await signingKey(req.credentials.secretAccessKey, dateStamp, req.region, req.service);
  const signature = hex(await hmac(key, stringToSign));

  const out: Record<string, string> = {};
  for (const [k, v] of headers) if (k !== "host") out[k] = v;
  out.authorization = `AWS4-HMAC-SHA256 Credential=${req.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { headers: out, canonicalRequest, stringToSign, signedHeaders, signature };
}
