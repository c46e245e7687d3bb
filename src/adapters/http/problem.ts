/**
 * Errors as RFC 9457 problem documents (`application/problem+json`).
 *
 * Every failure of the API, whatever raised it (a schema, the core, the
 * store, the auth layer), leaves through `problemResponse`, so a client
 * parses one shape: `{ type, title, status, detail, code, errors? }`.
 */
import { ErrorCode, InvalidStateError, NotFoundError, QmlError, StorageUnavailableError, UnknownJobNameError, ValidationError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `args` or `filter.queue`. */
  field: string;
  message: string;
}

export interface Problem {
  status: number;
  title: string;
  detail: string;
  /** A stable machine-readable code (`VALIDATION`, `UNAUTHORIZED`, …). */
  code: string;
  errors?: FieldIssue[];
  /** Extra response headers (WWW-Authenticate, Retry-After). */
  headers?: Record<string, string>;
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

/** Thrown by handlers and middleware; turned into a problem document by the app's error handler. */
export class HttpProblem extends Error {
  readonly problem: Problem;
  constructor(status: number, code: string, detail: string, extra: { errors?: FieldIssue[]; headers?: Record<string, string> } = {}) {
    super(detail);
    this.name = "HttpProblem";
    this.problem = { status, title: TITLES[status] ?? "Error", detail, code, ...extra };
  }
}

export const badRequest = (detail: string) => new HttpProblem(400, "BAD_REQUEST", detail);
export const unauthorized = (detail: string) => new HttpProblem(401, "UNAUTHORIZED", detail, { headers: { "WWW-Authenticate": 'Bearer realm="qml"' } });
export const forbidden = (code: string, detail: string) => new HttpProblem(403, code, detail);

/** The problem a thrown value stands for. Unknown errors become a 500 that reveals nothing. */
export function toProblem(e: unknown, logger?: Logger): Problem {
  if (e instanceof HttpProblem) return e.problem;
  if (e instanceof StorageUnavailableError) {
    const seconds = Math.max(1, Math.ceil(e.retryAfterMs / 1000));
    return {
      status: 503,
      title: TITLES[503]!,
      code: e.code,
      detail: "the job store is unavailable; retry later",
      headers: { "Retry-After": String(seconds) },
    };
  }
  if (e instanceof UnknownJobNameError)
    return { status: 422, title: TITLES[422]!, code: e.code, detail: e.message, errors: [{ field: "name", message: e.message }] };
  if (e instanceof ValidationError) {
    return { status: 422, title: TITLES[422]!, code: e.code, detail: e.message, errors: [{ field: e.field ?? "", message: e.message }] };
  }
  if (e instanceof NotFoundError) return { status: 404, title: TITLES[404]!, code: e.code, detail: e.message };
  if (e instanceof InvalidStateError) return { status: 409, title: TITLES[409]!, code: e.code, detail: e.message };
  // A driver's message may carry hosts or credentials: log it, never send it.
  logger?.error(e instanceof QmlError && e.code === ErrorCode.Config ? "dashboard misconfigured" : "dashboard request failed", { error: e });
  return { status: 500, title: TITLES[500]!, code: "INTERNAL", detail: "internal error" };
}

export function problemResponse(p: Problem, instance?: string): Response {
  const body: Record<string, unknown> = {
    type: `urn:qml:problem:${p.code.toLowerCase().replace(/_/g, "-")}`,
    title: p.title,
    status: p.status,
    detail: p.detail,
    code: p.code,
  };
  if (instance !== undefined) body.instance = instance;
  if (p.errors && p.errors.length > 0) body.errors = p.errors;
  const headers = new Headers({ "Content-Type": "application/problem+json; charset=utf-8", "Cache-Control": "no-store" });
  for (const [k, v] of Object.entries(p.headers ?? {})) headers.set(k, v);
  return new Response(JSON.stringify(body), { status: p.status, headers });
}
