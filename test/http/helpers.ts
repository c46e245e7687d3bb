/** Shared setup for the dashboard tests: an app over a fresh memory storage, requests through app.request (no socket). */
import { createApp, type AppOptions } from "../../src/adapters/http/index.js";
import { Job, JobState, ManualClock, Storage, memoryBackend, WorkerRegistry, silentLogger } from "../../src/index.js";

export const ADMIN = "admin-token-0123456789abcdef";
export const READER = "read-token-0123456789abcdef";
export const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
export const HOST = "dash.test";
export const ORIGIN = `http://${HOST}`;

export interface Harness {
  app: ReturnType<typeof createApp>;
  storage: Storage;
  clock: ManualClock;
  registry: WorkerRegistry;
}

export function harness(overrides: Partial<AppOptions> = {}): Harness {
  const clock = new ManualClock(T0);
  const storage = new Storage(memoryBackend(), { clock });
  const registry = new WorkerRegistry().register("send_email", () => {}).register("build_report", () => {});
  const app = createApp({ storage, registry, auth: { adminTokens: [ADMIN], readTokens: [READER] }, logger: silentLogger, liveIntervalMs: 20, ...overrides });
  return { app, storage, clock, registry };
}

export interface Req {
  token?: string | null;
  body?: unknown;
  /** Raw body text (sent as is). */
  raw?: string;
  headers?: Record<string, string>;
  cookie?: string;
}

/** A request to the app as a client on http://dash.test would send it. */
export function call(app: Harness["app"], method: string, path: string, r: Req = {}): Promise<Response> {
  const headers: Record<string, string> = { Host: HOST, ...(r.headers ?? {}) };
  const token = r.token === undefined ? ADMIN : r.token;
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (r.cookie) headers.Cookie = r.cookie;
  let body: string | undefined;
  if (r.raw !== undefined) body = r.raw;
  else if (r.body !== undefined) {
    body = JSON.stringify(r.body);
    headers["Content-Type"] ??= "application/json";
  }
  return Promise.resolve(app.request(`${ORIGIN}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) }));
}

export async function problem(res: Response): Promise<{ status: number; code: string; detail: string; errors?: Array<{ field: string; message: string }> }> {
  if (!(res.headers.get("content-type") ?? "").startsWith("application/problem+json")) {
    throw new Error(`expected a problem document, got ${res.status} ${res.headers.get("content-type")}: ${await res.text()}`);
  }
  return (await res.json()) as never;
}

/** Logs in through the form like a browser and returns the cookie and the CSRF token of the session. */
export async function login(app: Harness["app"], token = ADMIN): Promise<{ cookie: string; csrf: string }> {
  const res = await app.request(`${ORIGIN}/login`, {
    method: "POST",
    headers: { Host: HOST, Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
  });
  if (res.status !== 303) throw new Error(`login answered ${res.status}`);
  const set = res.headers.get("set-cookie") ?? "";
  const cookie = set.split(";")[0]!;
  if (!cookie.startsWith("qml_session=")) throw new Error(`no session cookie: ${set}`);
  const s = await app.request(`${ORIGIN}/api/session`, { headers: { Host: HOST, Cookie: cookie } });
  const { csrfToken } = (await s.json()) as { csrfToken: string };
  return { cookie, csrf: csrfToken };
}

/** Puts a job in `failed` (or `succeeded`) through the storage seam, as a worker would. */
export async function finish(
  storage: Storage,
  clock: ManualClock,
  name: string,
  args: unknown[],
  state: "failed" | "succeeded",
  error = { name: "Error", message: "boom", stack: "Error: boom\n    at worker" },
): Promise<string> {
  const job = new Job(name, args, { queue: "finish-" + state, maxAttempts: 1 });
  await storage.enqueue(job);
  const [rec] = await storage.driver.claim({ queues: [job.queue], limit: 1, owner: "w", leaseMs: 30_000, now: clock.now() });
  if (!rec) throw new Error("nothing claimed");
  await storage.driver.complete(
    [
      {
        id: rec.id,
        token: rec.leaseToken,
        state: state === "failed" ? JobState.Failed : JobState.Succeeded,
        reason: state,
        worker: "w/1",
        ...(state === "failed" ? { error } : { result: { ok: true } }),
      },
    ],
    clock.now(),
  );
  return rec.id;
}
