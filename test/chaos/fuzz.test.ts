/**
 * Fuzz: random bodies at the REST enqueue API (POST /api/jobs), on memory,
 * Redis and PostgreSQL. A third are valid jobs with awkward but legal
 * content (unicode, control characters, deep JSON, extreme numbers, long
 * keys), a third are valid jobs with one thing broken, a third are not jobs
 * at all (other JSON, truncated JSON, random bytes, wrong content types).
 *
 * Invariants: no 5xx, ever; a valid job is accepted (201, or 200 for a
 * repeated unique key) and stored as sent; an accepted unique key is
 * answered with the job of that very key; a broken body is refused with a
 * 4xx; the store ends up holding exactly the jobs the API said it created,
 * so no invalid body left a job behind.
 *
 * The generator is seeded (QML_CHAOS_SEED to replay a run; the seed is in
 * the figures line). Short: 1,000 bodies per store. Long: 10,000.
 */
import { afterAll, expect, it } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { silentLogger, type Storage } from "../../src/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { SchemaJanitor } from "../postgres/helpers.js";
import { deleteKeys, prefixes } from "../redis/helpers.js";
import { listAll } from "./analysis.js";
import { figures, scale, timeout } from "./helpers.js";
import { openStore, specLabel, type StoreSpec } from "./stores.js";

const BODIES = scale(1000, 10_000);
const TOKEN = "chaos-fuzz-admin-token-0123456789";
const DAY = 24 * 3600_000;

/** mulberry32: small, fast, seedable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * valid: must be accepted. edge: valid for the API but carrying U+0000 or
 * an unpaired surrogate, which a store may refuse (422) but must not choke
 * on. broken, garbage: must be refused with a 4xx.
 */
type Kind = "valid" | "edge" | "broken" | "garbage";
interface Case {
  kind: Kind;
  /** What was changed or generated, for failure messages. */
  what: string;
  body: string | Uint8Array<ArrayBuffer>;
  contentType: string;
}

function generator(rnd: () => number) {
  const int = (min: number, max: number) => min + Math.floor(rnd() * (max - min + 1));
  const chance = (p: number) => rnd() < p;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/";
  const QUEUE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
  const word = (chars: string, min: number, max: number) => Array.from({ length: int(min, max) }, () => chars[int(0, chars.length - 1)]).join("");
  // Strings that have broken parsers, escapers and encoders before.
  const NASTY = [
    "",
    " ",
    "\u0000",
    "a\u0000b",
    "\u0001\u001f\u007f",
    "\ud83d\ude00 emoji",
    "\ud800",
    "\udfff lone low",
    "\u202e right-to-left",
    "\ufeff bom",
    "'; DROP TABLE jobs; --",
    "]] redis.call('FLUSHALL') --[[",
    "{q}:{\\}",
    '"\\u0000"',
    "%s%n%x",
    "<script>alert(1)</script>",
    "__proto__",
    "constructor",
    "\n\r\t",
    "é".normalize("NFD"),
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "x".repeat(10_000),
  ];
  const text = (): string => (chance(0.5) ? pick(NASTY) : Array.from({ length: int(0, 20) }, () => String.fromCharCode(int(0, 0xffff))).join(""));
  const number = (): number => pick([0, -0, 1, -1, 0.5, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, int(-1e9, 1e9)]);
  const json = (depth: number): unknown => {
    const r = rnd();
    if (depth <= 0 || r < 0.4) return pick([null, true, false, number(), text()]);
    if (r < 0.7) return Array.from({ length: int(0, 4) }, () => json(depth - 1));
    const o: Record<string, unknown> = {};
    for (let i = int(0, 4); i > 0; i--) o[chance(0.2) ? pick(NASTY) : word(NAME_CHARS, 1, 10)] = json(depth - 1);
    return o;
  };
  const nest = (levels: number, leaf: unknown): unknown => (levels === 0 ? leaf : [nest(levels - 1, leaf)]);
  const validBody = (): Record<string, unknown> => {
    const b: Record<string, unknown> = { name: word(NAME_CHARS, 1, chance(0.1) ? 128 : 20) };
    if (chance(0.8)) b.args = Array.from({ length: int(0, 5) }, () => json(4));
    if (chance(0.3)) b.queue = word(QUEUE_CHARS, 1, chance(0.1) ? 64 : 12);
    if (chance(0.3)) b.priority = pick([-1_000_000, 0, 1_000_000, int(-1000, 1000)]);
    if (chance(0.3)) b.maxAttempts = pick([1, 1000, int(1, 20)]);
    const when = chance(0.2) ? "delay" : chance(0.2) ? "runAt" : undefined;
    if (when === "delay") b.delay = pick([0, 366 * DAY, int(0, 60_000)]);
    else if (when === "runAt")
      b.runAt = chance(0.5) ? pick(["2030-01-01T00:00:00Z", "1970-01-01T00:00:00.000+00:00", "2099-12-31T23:59:59.999-12:00"]) : int(0, 4_102_444_800_000);
    if (chance(0.3))
      b.uniqueKey = chance(0.3)
        ? pick(NASTY.filter((s) => s.length > 0 && s.length <= 512))
        : `${word(NAME_CHARS, 1, 40)}${chance(0.1) ? "x".repeat(470) : ""}`;
    if (chance(0.2)) b.timeout = pick([1, 7 * DAY, int(1, 60_000)]);
    if (chance(0.3)) b.metadata = { [word(NAME_CHARS, 1, 8)]: json(3), ...(chance(0.2) ? { deep: nest(60, "ok") } : {}) };
    return b;
  };
  const BREAKERS: Array<[string, (b: Record<string, unknown>) => void]> = [
    ["no name", (b) => delete b.name],
    ["empty name", (b) => (b.name = "")],
    ["name with a space", (b) => (b.name = "send email")],
    ["name too long", (b) => (b.name = "n".repeat(129))],
    ["name with a colon", (b) => (b.name = "a:b")],
    ["name not a string", (b) => (b.name = pick([1, null, true, ["x"], { x: 1 }]))],
    ["args not an array", (b) => (b.args = pick([{}, "x", 1, null]))],
    ["args with 10,001 items", (b) => (b.args = Array.from({ length: 10_001 }, () => 0))],
    ["args nested 70 deep", (b) => (b.args = [nest(70, 1)])],
    ["queue with a brace", (b) => (b.queue = "{q}")],
    ["queue too long", (b) => (b.queue = "q".repeat(65))],
    ["queue empty", (b) => (b.queue = "")],
    ["priority too big", (b) => (b.priority = 1_000_001)],
    ["priority not an integer", (b) => (b.priority = 0.5)],
    ["priority a string", (b) => (b.priority = "1")],
    ["maxAttempts 0", (b) => (b.maxAttempts = 0)],
    ["maxAttempts 1001", (b) => (b.maxAttempts = 1001)],
    ["delay negative", (b) => (b.delay = -1)],
    ["delay over a year", (b) => (b.delay = 367 * DAY)],
    ["delay and runAt", (b) => ((b.delay = 10), (b.runAt = "2030-01-01T00:00:00Z"))],
    ["runAt not a date", (b) => (b.runAt = pick(["tomorrow", "2030-13-01T00:00:00Z", "2030-01-01", ""]))],
    ["runAt negative", (b) => (b.runAt = -1)],
    ["uniqueKey empty", (b) => (b.uniqueKey = "")],
    ["uniqueKey too long", (b) => (b.uniqueKey = "k".repeat(513))],
    ["uniqueKey not a string", (b) => (b.uniqueKey = 42)],
    ["timeout 0", (b) => (b.timeout = 0)],
    ["timeout over a week", (b) => (b.timeout = 7 * DAY + 1)],
    ["metadata an array", (b) => (b.metadata = [1])],
    ["metadata null", (b) => (b.metadata = null)],
    ["metadata nested 70 deep", (b) => (b.metadata = { deep: nest(70, 1) })],
    // defineProperty: an own "__proto__" key, as JSON.parse makes it, not a prototype change.
    [
      "unknown field",
      (b) =>
        Object.defineProperty(b, pick(["state", "id", "attempts", "leaseToken", "__proto__", "history"]), {
          value: "x",
          enumerable: true,
          configurable: true,
          writable: true,
        }),
    ],
  ];
  const garbage = (): Case => {
    const r = rnd();
    const ct = "application/json";
    if (r < 0.2) return { kind: "garbage", what: "other JSON", body: JSON.stringify(pick([null, 0, "job", [], [{ name: "a" }], true])), contentType: ct };
    if (r < 0.4) {
      const s = JSON.stringify(validBody());
      return { kind: "garbage", what: "truncated JSON", body: s.slice(0, int(0, Math.max(0, s.length - 1))), contentType: ct };
    }
    if (r < 0.55)
      return { kind: "garbage", what: "random bytes", body: new Uint8Array(Array.from({ length: int(1, 200) }, () => int(0, 255))), contentType: ct };
    if (r < 0.7)
      return {
        kind: "garbage",
        what: "wrong content type",
        body: JSON.stringify(validBody()),
        contentType: pick(["text/plain", "application/x-www-form-urlencoded", "", "application/jsonx", "multipart/form-data"]),
      };
    if (r < 0.8) return { kind: "garbage", what: "whitespace", body: pick(["", " ", "\n\t"]), contentType: ct };
    if (r < 0.82)
      return { kind: "garbage", what: "over the body limit", body: JSON.stringify({ name: "big", args: ["x".repeat(1_100_000)] }), contentType: ct };
    return { kind: "garbage", what: "JSON with duplicate and odd keys", body: `{"name":"a","name":1,"args":[],"\\u0000":1}`, contentType: ct };
  };
  return (): Case => {
    const r = rnd();
    if (r < 0.34) {
      const body = JSON.stringify(validBody());
      // JSON.stringify escapes exactly these: U+0000 and unpaired surrogates (paired ones stay raw).
      const edge = /\\u0000|\\ud[89a-f][0-9a-f]{2}/i.test(body);
      return {
        kind: edge ? "edge" : "valid",
        what: edge ? "valid, with U+0000 or an unpaired surrogate" : "valid",
        body,
        contentType: pick(["application/json", "application/json; charset=utf-8", "application/vnd.api+json"]),
      };
    }
    if (r < 0.67) {
      const b = validBody();
      const [what, breakIt] = pick(BREAKERS);
      breakIt(b);
      return { kind: "broken", what, body: JSON.stringify(b), contentType: "application/json" };
    }
    return garbage();
  };
}

/** JSON with object keys sorted: jsonb does not keep key order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** What an accepted body should have become (the fields a store keeps verbatim). */
function expectedJob(body: Record<string, unknown>): Record<string, unknown> {
  return { name: body.name, arguments: body.args ?? [], queue: body.queue ?? "default", metadata: body.metadata ?? {} };
}

async function fuzz(spec: StoreSpec): Promise<void> {
  const seed = Number(process.env.QML_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const next = generator(prng(seed));
  const storage: Storage = await openStore(spec);
  const app = createApp({ storage, auth: { adminTokens: [TOKEN] }, logger: silentLogger });
  const statuses = new Map<number, number>();
  const serverErrors: string[] = [];
  const misjudged: string[] = [];
  const created = new Set<string>();
  const accepted = new Set<string>();
  const edges = { accepted: 0, refused: 0 };
  /** Accepted valid bodies whose job came back different. */
  const altered: string[] = [];
  /** Accepted bodies answered with a job under another unique key. */
  const wrongKey: string[] = [];
  try {
    for (let i = 0; i < BODIES; i++) {
      const c = next();
      const res = await app.request("/api/jobs", {
        method: "POST",
        headers: { Authorization: `Bearer ${TOKEN}`, ...(c.contentType ? { "Content-Type": c.contentType } : {}) },
        body: c.body,
      });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const text = await res.text();
      const excerpt = () => `${c.kind}/${c.what}: ${res.status} ${text.slice(0, 300)} <- ${typeof c.body === "string" ? c.body.slice(0, 300) : "<bytes>"}`;
      if (res.status >= 500) serverErrors.push(excerpt());
      if (res.status === 201 || res.status === 200) {
        const body = JSON.parse(text) as { id: string; created: boolean; job: Record<string, unknown> | null };
        accepted.add(body.id);
        if (res.status === 201) created.add(body.id);
        const sent = JSON.parse(c.body as string) as Record<string, unknown>;
        if (sent.uniqueKey !== undefined && body.job?.uniqueKey !== sent.uniqueKey)
          wrongKey.push(`${JSON.stringify(sent.uniqueKey)} answered with the job of ${JSON.stringify(body.job?.uniqueKey)}`);
        const want = expectedJob(sent);
        const got = Object.fromEntries(Object.keys(want).map((k) => [k, body.job?.[k]]));
        if (res.status === 201 && c.kind === "valid" && canonical(got) !== canonical(want))
          altered.push(`${canonical(want).slice(0, 200)} became ${canonical(got).slice(0, 200)}`);
      }
      const accepted2xx = res.status === 201 || res.status === 200;
      const refused4xx = res.status >= 400 && res.status < 500;
      const ok = c.kind === "valid" ? accepted2xx : c.kind === "edge" ? accepted2xx || res.status === 422 : refused4xx;
      if (c.kind === "edge") edges[accepted2xx ? "accepted" : "refused"]++;
      if (!ok) misjudged.push(excerpt());
    }
    const stored = await listAll(storage);
    const strays = stored.filter((r) => !accepted.has(r.id)).map((r) => `${r.id} ${r.name}`);
    figures(`fuzz/${specLabel(spec)}`, {
      bodies: BODIES,
      seed,
      "5xx": serverErrors.length,
      ...Object.fromEntries([...statuses].sort(([a], [b]) => a - b).map(([s, n]) => [`http_${s}`, n])),
      edge_accepted: edges.accepted,
      edge_refused: edges.refused,
      created: created.size,
      stored: stored.length,
      stored_from_invalid: strays.length,
      altered: altered.length,
      wrong_unique_key: wrongKey.length,
    });
    expect(serverErrors.slice(0, 10)).toEqual([]);
    expect(misjudged.slice(0, 10)).toEqual([]);
    expect(strays).toEqual([]);
    expect(altered.slice(0, 10)).toEqual([]);
    expect(wrongKey.slice(0, 10)).toEqual([]);
    expect(stored.length).toBe(created.size);
  } finally {
    await storage.close();
  }
}

it("fuzz on memory: no 5xx, no job from an invalid body", () => fuzz({ kind: "memory" }), timeout(55_000, 600_000));

const keys = prefixes("chaos-fuzz");
describeWithService("redis", await serviceUp("redis"), "chaos: fuzz the enqueue API on redis", () => {
  afterAll(() => deleteKeys(REDIS_URL, keys.pattern));
  it("no 5xx, no job from an invalid body", () => fuzz({ kind: "redis", url: REDIS_URL, prefix: keys.next() }), timeout(55_000, 600_000));
});

const janitor = new SchemaJanitor();
describeWithService("postgres", await serviceUp("postgres"), "chaos: fuzz the enqueue API on postgres", () => {
  afterAll(() => janitor.dropAll());
  it(
    "no 5xx, no job from an invalid body",
    () => fuzz({ kind: "postgres", driver: "pg", url: DATABASE_URL, schema: janitor.next("qml_chaos"), maxConnections: 2 }),
    timeout(55_000, 600_000),
  );
});
